"""moto's server, as the local stack runs it: `python -m local.moto_server -H host -p port`.

One change to moto, for volume: moto's Step Functions interpreter parses a state machine's definition
(ANTLR, ~0.5 s of CPU for the order lifecycle) at the start of every execution, and each execution keeps its
own parse alive (~1.3 MB), so thousands of orders cost minutes of CPU and gigabytes. The parse depends on the
definition's text alone, and the evaluation components it builds hold no per-run state (retry counts,
inputs and outputs live in each execution's environment; Map and Parallel build their workers per run),
so a definition is parsed once and its program shared, as Step Functions itself compiles a definition once.
"""

from __future__ import annotations

import functools
import sys

from moto import server
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

PARSED_DEFINITIONS = 64  # distinct definitions kept: the hub has two state machines


def share_parsed_definitions() -> None:
    parse = AmazonStateLanguageParser.parse
    if not hasattr(parse, "cache_info"):
        AmazonStateLanguageParser.parse = staticmethod(  # type: ignore[method-assign]
            functools.lru_cache(maxsize=PARSED_DEFINITIONS)(parse)
        )


def main(argv: list[str] | None = None) -> None:
    share_parsed_definitions()
    server.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
