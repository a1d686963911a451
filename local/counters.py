"""Optional request counter of the local AWS endpoint: what each AWS service was asked, for the cost model.

Off unless `HUB_LOCAL_COUNTERS=1`. When on, the gateway records every request it answers or forwards:
- per service (from the SigV4 credential scope: `dynamodb`, `sqs`, `states`, `secretsmanager`, ...) and
  operation (`X-Amz-Target`, else the query protocol's `Action`); Lambda Invoke as `lambda` / `Invoke`;
- SQS `ReceiveMessage` that returned nothing separately (`ReceiveMessage (empty)`): idle polling costs per
  hour, not per order; requests to a FIFO queue are marked ` [fifo]` (priced higher);
- DynamoDB read request units computed from the items each read returned (4 KB units, half for eventually
  consistent reads, double in a transaction), and every written item's key with its write count, so a
  reader can price the writes from the items' stored sizes (`GET /_local/counters`, then size the keys).

It is a lock and a few dicts; DynamoDB bodies are parsed only while counting.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
from typing import Any
from urllib.parse import parse_qs

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")

_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def classify(method: str, headers: Any, path: str, query: str, body: bytes) -> tuple[str, str]:
    """(service, operation) of one AWS request as it reaches the endpoint."""
    match = _SCOPE.search(headers.get("Authorization") or "")
    service = match.group(1) if match else "unsigned"
    target = headers.get("X-Amz-Target")
    if target:
        return service, target.rsplit(".", 1)[-1]
    action = parse_qs(query).get("Action")
    if not action and body and "x-www-form-urlencoded" in (headers.get("Content-Type") or ""):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    if action:
        return service, action[0]
    return service, f"{method} /{path.lstrip('/').split('/', 1)[0]}"


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB's item-size rules (wire format: {"S": "..."} etc.)."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = len(data.lstrip("-").replace(".", "").strip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return math.ceil(len(data) * 3 / 4)  # base64 on the wire
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(attribute_size({"N": n}) for n in data)
    if kind == "BS":
        return sum(math.ceil(len(b) * 3 / 4) for b in data)
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + attribute_size(v) for k, v in data.items())
    return 0


def item_size(item: dict[str, Any] | None) -> int:
    """Bytes of one item: attribute names plus values (DynamoDB's own rule for capacity units)."""
    if not item:
        return 0
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def read_units(size: int, *, consistent: bool, transactional: bool = False) -> float:
    units = max(1, math.ceil(size / 4096))
    if transactional:
        return 2.0 * units
    return float(units) if consistent else units / 2


class RequestCounter:
    """Counts requests per service and operation; DynamoDB read units and written keys besides."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key_schemas: dict[str, list[str]] = {}  # table → key attribute names (seen at CreateTable)
        self.reset()

    def reset(self) -> dict[str, Any]:
        with self._lock:
            before = self._snapshot_locked() if hasattr(self, "_requests") else {}
            self._requests: dict[str, dict[str, int]] = {}
            self._read_units: dict[str, float] = {}
            self._read_items: dict[str, int] = {}
            # table → key (json) → {"writes", "transactional", "deletes", "put_bytes"}
            self._writes: dict[str, dict[str, dict[str, int]]] = {}
        return before

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot_locked()

    def _snapshot_locked(self) -> dict[str, Any]:
        return {
            "requests": {s: dict(ops) for s, ops in self._requests.items()},
            "dynamodb": {
                "read_units": dict(self._read_units),
                "read_items": dict(self._read_items),
                "writes": {t: {k: dict(v) for k, v in keys.items()} for t, keys in self._writes.items()},
                "key_schemas": dict(self._key_schemas),
            },
        }

    def count(self, service: str, operation: str) -> None:
        with self._lock:
            ops = self._requests.setdefault(service, {})
            ops[operation] = ops.get(operation, 0) + 1

    def record(self, service: str, operation: str, request: bytes, status: int, response: bytes) -> None:
        """One forwarded AWS request and moto's answer."""
        if service == "sqs":
            if operation == "ReceiveMessage" and status == 200 and b"MessageId" not in response:
                operation = "ReceiveMessage (empty)"
            if b".fifo" in request:  # FIFO requests cost more than standard ones
                operation += " [fifo]"
        self.count(service, operation)
        if service == "dynamodb" and (
            operation in _READS or operation in _WRITES or operation == "CreateTable"
        ):
            # A shape we do not price is still counted as a request.
            with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                self._dynamodb(operation, json.loads(request or b"{}"), status, response)

    def _dynamodb(self, operation: str, body: dict[str, Any], status: int, response: bytes) -> None:
        if operation == "CreateTable":
            with self._lock:
                self._key_schemas[body["TableName"]] = [k["AttributeName"] for k in body["KeySchema"]]
            return
        if operation in _WRITES:
            self._dynamodb_writes(operation, body)
            return
        answer = json.loads(response) if status == 200 else {}
        units: list[tuple[str, float, int]] = []  # (operation, units, items)
        if operation == "GetItem":
            item = answer.get("Item")
            units.append(
                (
                    operation,
                    read_units(item_size(item), consistent=bool(body.get("ConsistentRead"))),
                    int(bool(item)),
                )
            )
        elif operation in ("Query", "Scan"):
            items = answer.get("Items", [])
            size = sum(item_size(i) for i in items)
            scanned = answer.get("ScannedCount", len(items))
            if items and scanned > len(items):  # filtered out: read, not returned; size them like the rest
                size = size * scanned // len(items)
            consistent = bool(body.get("ConsistentRead")) and "IndexName" not in body
            units.append((operation, read_units(size, consistent=consistent), scanned))
        elif operation == "BatchGetItem":
            for table, items in answer.get("Responses", {}).items():
                consistent = bool(body["RequestItems"].get(table, {}).get("ConsistentRead"))
                for item in items:
                    units.append((operation, read_units(item_size(item), consistent=consistent), 1))
        elif operation == "TransactGetItems":
            for entry in answer.get("Responses", []):
                units.append(
                    (
                        operation,
                        read_units(item_size(entry.get("Item")), consistent=True, transactional=True),
                        1,
                    )
                )
        with self._lock:
            for op, value, items_read in units:
                self._read_units[op] = self._read_units.get(op, 0.0) + value
                self._read_items[op] = self._read_items.get(op, 0) + items_read

    def _dynamodb_writes(self, operation: str, body: dict[str, Any]) -> None:
        actions: list[tuple[str, str, dict[str, Any], bool]] = []  # (kind, table, key or item, transactional)
        if operation == "PutItem":
            actions.append(("Put", body["TableName"], body["Item"], False))
        elif operation in ("UpdateItem", "DeleteItem"):
            actions.append((operation.removesuffix("Item"), body["TableName"], body["Key"], False))
        elif operation == "BatchWriteItem":
            for table, requests in body["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        actions.append(("Put", table, request["PutRequest"]["Item"], False))
                    else:
                        actions.append(("Delete", table, request["DeleteRequest"]["Key"], False))
        else:  # TransactWriteItems
            for entry in body["TransactItems"]:
                ((kind, action),) = entry.items()
                actions.append((kind, action["TableName"], action.get("Item") or action["Key"], True))
        with self._lock:
            for kind, table, attributes, transactional in actions:
                names = self._key_schemas.get(table) or sorted(attributes)
                key = json.dumps({n: attributes.get(n) for n in names}, sort_keys=True)
                entry = self._writes.setdefault(table, {}).setdefault(
                    key,
                    {"writes": 0, "transactional": 0, "deletes": 0, "condition_checks": 0, "put_bytes": 0},
                )
                if kind == "ConditionCheck":
                    entry["condition_checks"] += 1
                    continue
                entry["writes"] += 1
                entry["transactional"] += transactional
                entry["deletes"] += kind == "Delete"
                if kind == "Put":
                    entry["put_bytes"] = max(entry["put_bytes"], item_size(attributes))
