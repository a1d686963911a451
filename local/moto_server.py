"""moto's server, as the local stack runs it: `python -m local.moto_server -H host -p port`.

Two changes to moto:

- DynamoDB one request at a time. moto's DynamoDB is not thread-safe: an update is checked, then applied
  attribute by attribute in place, so a racing conditional write can pass on the same version, and a read
  can see half an update (seen as a lost write: an order's shipments gone under a webhook's update, which
  AWS never allows). The lock is held for moto's own work only (a few ms), here inside moto, so every
  client is served consistently; held in a client's process instead, it also covered the network and
  that process's wait for its GIL, and became the local stack's bottleneck under load.
- Transactions snapshot what they touch. moto's TransactWriteItems deep-copies every table it names before
  it starts, to roll back on a failed condition: O(table) per transaction (~20 MB copied for a table of a
  few hundred orders, the local stack's main cost at volume). Here it keeps a copy of the items the
  transaction names (at most 100) and puts exactly those back when the transaction is cancelled.
- SQS reads the clock cheaply. moto works out each message's visibility through datetime arithmetic (and an
  import) per message, and a FIFO SendMessage counts the queue's messages three times over: with a backlog
  of a few hundred messages every send cost tens of milliseconds. The same milliseconds since the epoch,
  from time.time().
- The list of moto's services is read once. moto's server finds which service a request is for by listing
  its own package directory (an os.listdir and ~150 stat calls) for every request, under a lock every
  request takes: under load, requests queued there.
- For volume: moto's Step Functions interpreter parses a state machine's definition
(ANTLR, ~0.5 s of CPU for the order lifecycle) at the start of every execution, and each execution keeps its
own parse alive (~1.3 MB), so thousands of orders cost minutes of CPU and gigabytes. The parse depends on the
definition's text alone, and the evaluation components it builds hold no per-run state (retry counts,
inputs and outputs live in each execution's environment; Map and Parallel build their workers per run),
so a definition is parsed once and its program shared, as Step Functions itself compiles a definition once.
"""

from __future__ import annotations

import copy
import functools
import sys
import threading
import time
from typing import Any

import moto.backends as moto_backends
import moto.dynamodb.models as dynamodb_models
import moto.sqs.models as sqs_models
from moto import server
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

PARSED_DEFINITIONS = 64  # distinct definitions kept: the hub has two state machines


def share_parsed_definitions() -> None:
    parse = AmazonStateLanguageParser.parse
    if not hasattr(parse, "cache_info"):
        AmazonStateLanguageParser.parse = staticmethod(  # type: ignore[method-assign]
            functools.lru_cache(maxsize=PARSED_DEFINITIONS)(parse)
        )


def one_dynamodb_request_at_a_time() -> None:
    call_action = DynamoHandler.call_action
    if getattr(call_action, "serialised", False):
        return
    lock = threading.Lock()

    @functools.wraps(call_action)
    def serialised(self: DynamoHandler) -> Any:
        with lock:
            return call_action(self)

    serialised.serialised = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = serialised  # type: ignore[method-assign]


class _TablesKept:
    """`copy` as moto's DynamoDB models see it while a transaction runs: a table is not copied whole."""

    active = False

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if self.active and isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def _item_keys(
    backend: DynamoDBBackend, transact_items: list[dict[str, Any]]
) -> list[tuple[Table, Any, Any]]:
    keys = []
    for entry in transact_items:
        for op in entry.values():
            name = op.get("TableName") if isinstance(op, dict) else None
            table = backend.tables.get(name) if isinstance(name, str) else None
            attributes = (op.get("Key") or op.get("Item") or {}) if table is not None else {}
            if table is None or table.hash_key_attr not in attributes:
                continue
            hash_key = DynamoType(attributes[table.hash_key_attr])
            range_attr = table.range_key_attr
            range_key = (
                DynamoType(attributes[range_attr]) if range_attr and range_attr in attributes else None
            )
            keys.append((table, hash_key, range_key))
    return keys


def _stored(table: Table, hash_key: Any, range_key: Any) -> Any:
    found = table.items.get(hash_key)
    return found.get(range_key) if range_key is not None and isinstance(found, dict) else found


def _put_back(table: Table, hash_key: Any, range_key: Any, item: Any) -> None:
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
    elif item is None:
        table.items.get(hash_key, {}).pop(range_key, None)
    else:
        table.items[hash_key][range_key] = item


def transactions_snapshot_their_items() -> None:
    transact = DynamoDBBackend.transact_write_items
    if getattr(transact, "snapshots_items", False):
        return
    tables_kept = _TablesKept()
    setattr(dynamodb_models, "copy", tables_kept)  # noqa: B010 - the module global moto's models call

    @functools.wraps(transact)
    def snapshots_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        before = [
            (table, h, r, copy.deepcopy(_stored(table, h, r)))
            for table, h, r in _item_keys(self, transact_items)
        ]
        tables_kept.active = True
        try:
            transact(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(before):
                _put_back(table, hash_key, range_key, item)
            raise
        finally:
            tables_kept.active = False

    snapshots_items.snapshots_items = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = snapshots_items  # type: ignore[method-assign]


def sqs_reads_the_clock_cheaply() -> None:
    slow = getattr(sqs_models, "unix_time_millis")  # noqa: B009 - a module global, not exported
    if getattr(slow, "cheap", False):
        return

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else float(slow(dt))

    unix_time_millis.cheap = True  # type: ignore[attr-defined]
    setattr(sqs_models, "unix_time_millis", unix_time_millis)  # noqa: B010 - the module global moto calls


def services_listed_once() -> None:
    listing = moto_backends.list_of_moto_modules
    if not hasattr(listing, "cache_info"):
        cached = functools.cache(lambda: tuple(listing()))
        setattr(moto_backends, "list_of_moto_modules", cached)  # noqa: B010 - the module global moto calls


def main(argv: list[str] | None = None) -> None:
    services_listed_once()
    one_dynamodb_request_at_a_time()
    sqs_reads_the_clock_cheaply()
    transactions_snapshot_their_items()
    share_parsed_definitions()
    server.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
