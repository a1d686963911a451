"""What the 3PL simulator's fulfilment orders and returns desk share: the error answer, field checks, ids."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any


class Refusal(Exception):
    """A refused request: `{"error": {"code", "message"[, "field"]}}` with `status`."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.field = status, code, field

    def body(self) -> dict[str, Any]:
        error = {"code": self.code, "message": str(self)}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except (UnicodeDecodeError, ValueError):
        raise Refusal(400, "malformed_json", "the body is not JSON") from None


def text(source: Mapping[str, Any], name: str, where: str | None = None, *, optional: bool = False) -> Any:
    value = source.get(name)
    if optional and value in (None, ""):
        return value
    if not isinstance(value, str) or not value.strip():
        raise Refusal(422, "invalid_request", f"{where or name} must be a non-empty string", where or name)
    return value


def validated_lines(lines: Any, stocked: Callable[[str], bool]) -> list[dict[str, Any]]:
    """`[{"line_id", "sku", "quantity"}]`: at least one, distinct line ids, SKUs the warehouse
    `stocked`, whole quantities of at least 1; else a 422 naming the field (`lines[1].sku`)."""
    if not isinstance(lines, list) or not lines:
        raise Refusal(422, "invalid_request", "at least one line is required", "lines")
    valid: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        where = f"lines[{i}]"
        if not isinstance(line, dict):
            raise Refusal(422, "invalid_request", "a line must be an object", where)
        line_id, sku = text(line, "line_id", f"{where}.line_id"), text(line, "sku", f"{where}.sku")
        if any(seen["line_id"] == line_id for seen in valid):
            raise Refusal(422, "invalid_request", "duplicate line_id", f"{where}.line_id")
        if not stocked(sku):
            raise Refusal(422, "invalid_request", f"unknown sku {sku!r} in this warehouse", f"{where}.sku")
        quantity = line.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise Refusal(422, "invalid_request", "quantity must be a positive integer", f"{where}.quantity")
        valid.append({"line_id": line_id, "sku": sku, "quantity": quantity})
    return valid


class IdempotencyKeys:
    """Idempotency-Key → (the first body's fingerprint, what it created). Only successes are remembered."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[str, str]] = {}

    @staticmethod
    def fingerprint(body: Any) -> str:
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def replayed(self, idem: str | None, fingerprint: str) -> str | None:
        """What this key created before (None: a new key); a 409 when it came with another body."""
        if not idem or idem not in self._keys:
            return None
        known, created = self._keys[idem]
        if known != fingerprint:
            message = f"Idempotency-Key {idem!r} was first used with a different request"
            raise Refusal(409, "idempotency_conflict", message)
        return created

    def again(
        self, idem: str | None, fingerprint: str, *, first: str, created: str, field: str, value: str
    ) -> None:
        """A create naming what exists (`field` = `value`, first sent with fingerprint `first`): a replay
        (the key now names it too), or a 409 when the body differs."""
        if first != fingerprint:
            message = f"{field} {value!r} was first used with a different request"
            raise Refusal(409, "idempotency_conflict", message, field)
        self.remember(idem, fingerprint, created)

    def remember(self, idem: str | None, fingerprint: str, created: str) -> None:
        if idem:
            self._keys[idem] = (fingerprint, created)


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"
