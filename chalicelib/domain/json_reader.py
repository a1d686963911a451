"""The one JSON reader for bytes from outside (webhooks and API bodies): RFC 8259 with limits, or a refusal.

Python's `json` accepts what the rest of the hub cannot hold or was never sent as JSON: NaN and Infinity,
numbers of any length (a 45-digit total, `1e400` read as infinity), nesting deep enough to exhaust the
stack (RecursionError, a 500), given bytes, a leading byte order mark, and an object holding one key twice.
Each of these is refused here with a message that names the limit, so every door answers 400 before
anything is stored or queued.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from chalicelib.domain.errors import InvalidInput, TooLarge

# As much as a webhook may carry (see entrypoints/intake.MAX_BODY_BYTES); API bodies are far smaller.
MAX_JSON_BYTES = 2 * 1024 * 1024
# Real payloads nest a handful of levels (Shopify's deepest is about 6); DynamoDB stops at 32.
MAX_DEPTH = 64
# Characters in one number literal: ids and amounts stay far below; DynamoDB keeps 38 digits.
MAX_NUMBER_CHARS = 40

_BOM = b"\xef\xbb\xbf"
# A JSON string literal (unrolled so that long strings cost one pass) and the brackets left outside them.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
# An escaped UTF-16 surrogate: paired ones are one character; a lone one is not text and cannot be stored.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JsonRefused(InvalidInput):
    """The bytes are not JSON the hub accepts; the message says why (answered 400, never retried)."""


class BodyTooLarge(JsonRefused, TooLarge):
    """Over the size limit: refused before parsing (answered 413)."""


class JsonSyntaxError(JsonRefused):
    """Not JSON at all (as opposed to JSON beyond a limit)."""


def read_json(raw: bytes, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The body as JSON within the limits above, or JsonRefused. RFC 8259: JSON between systems is UTF-8,
    without a byte order mark (§8.1: senders must not add one; refused rather than stripped, so that what
    the hub stores is byte for byte what was signed and sent)."""
    if len(raw) > max_bytes:
        raise BodyTooLarge(f"body over {max_bytes // 1024} KiB")
    if raw.startswith(_BOM):
        raise JsonRefused("body starts with a byte order mark (JSON is UTF-8 without one)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonRefused(f"body is not UTF-8 (byte {exc.start})") from None
    _check_depth(text)
    try:
        value = json.loads(
            text,
            parse_constant=_no_constant,
            parse_float=_float,
            parse_int=_int,
            object_pairs_hook=_object,
        )
    except JsonRefused:
        raise
    except RecursionError:  # defensive: _check_depth already bounds the nesting
        raise JsonRefused(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise JsonSyntaxError(f"body is not JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text):
        _check_text(value)
    return value


def _check_depth(text: str) -> None:
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise JsonRefused(f"JSON nested deeper than {MAX_DEPTH} levels")
        else:
            depth -= 1


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are unique. A repeated key is refused: readers disagree on which one wins
    (Python's last, others the first), so the hub and the sender could read different orders from one
    signed body."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonRefused(f"duplicate key {key[:40]!r} in a JSON object")
            seen.add(key)
    return value


def _no_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number")


def _long(literal: str) -> None:
    if len(literal) > MAX_NUMBER_CHARS:
        raise JsonRefused(f"a number longer than {MAX_NUMBER_CHARS} characters ({literal[:12]}...)")


def _int(literal: str) -> int:
    _long(literal)
    return int(literal)


def _float(literal: str) -> float:
    _long(literal)
    value = float(literal)
    if not math.isfinite(value):
        raise JsonRefused(f"the number {literal} is out of range")
    return value


def _check_text(value: Any) -> None:
    """No lone surrogate anywhere: not encodable as UTF-8, so nothing downstream could store it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise JsonRefused("a string holds a lone UTF-16 surrogate (not text)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
