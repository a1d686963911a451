"""The `t=<unix>,v1=<hex>[,v1=<hex>...]` signature header Stripe uses and the 3PL contract copies."""

from __future__ import annotations

import hashlib
import hmac

_SCHEME = "v1"


def parse_timestamped(header: str) -> tuple[str | None, list[str]]:
    """The header's `t` (None when absent or not digits) and its `v1` signatures; other schemes ignored."""
    timestamp: str | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamp = value
        elif key == _SCHEME:
            signatures.append(value)
    if timestamp is not None and not (timestamp.isascii() and timestamp.isdigit()):
        timestamp = None
    return timestamp, signatures


def any_matches(secret: str, timestamp: str, raw_body: bytes, signatures: list[str]) -> bool:
    """True when one signature is the hex HMAC-SHA256 of "<t>." + raw body under the UTF-8 secret.

    Every candidate is compared (constant time each), so the time taken says nothing about which matched."""
    payload = timestamp.encode() + b"." + raw_body
    expected = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest().encode()
    matched = False
    for signature in signatures:
        try:
            given = signature.encode("ascii")
        except UnicodeEncodeError:
            continue
        matched |= hmac.compare_digest(expected, given)
    return matched
