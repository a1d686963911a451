"""Each Lambda function's handler module loads only Chalice and the hub's thin layers: the domain
(pydantic), AWS SDKs, Powertools and vendor libraries load with the work that uses them
(bench/cold_import.py times it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from infra.stacks.model import load_app

ROOT = Path(__file__).resolve().parents[2]

# What a handler module must not load at import (each costs 50-300 ms cold on these machines).
HEAVY = (
    "pydantic",
    "boto3",
    "botocore",
    "pynamodb",
    "aws_lambda_powertools",
    "stripe",
    "requests",
    "urllib3",
)

# The REST API's one function (app.app) loads every route module; not yet thin (bench/cold_import.py).
NOT_YET_THIN = {"app"}

PROBE = """
import importlib, json, sys
module = importlib.import_module(sys.argv[1])
getattr(module, sys.argv[2])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def handler_modules() -> dict[str, str]:
    """Handler module → one of its handlers, for every function except the API's."""
    app = load_app(ROOT)
    found: dict[str, str] = {}
    for fn in [*app.pure_lambda_functions, *app.event_sources]:
        module, attribute = fn.handler_string.rsplit(".", 1)
        found.setdefault(module, attribute)
    return {m: a for m, a in found.items() if m not in NOT_YET_THIN}


def test_every_function_handler_module_imports_no_heavy_library():
    modules = handler_modules()
    assert len(modules) >= 5
    loaded_heavy = {}
    for module, attribute in modules.items():
        done = subprocess.run(
            [sys.executable, "-c", PROBE, module, attribute],
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        )
        top_level = set(json.loads(done.stdout))
        heavy = sorted(top_level & set(HEAVY))
        if heavy:
            loaded_heavy[module] = heavy
    assert loaded_heavy == {}


def test_the_wiring_names_the_manual_channel_as_the_domain_does():
    from chalicelib import wiring
    from chalicelib.domain.manual_channel import CHANNEL

    assert wiring.MANUAL == CHANNEL and CHANNEL in wiring.channel_normalisers()
