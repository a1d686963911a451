"""Operator authentication: a bearer token on every /api/* request, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from chalice import Response

from chalicelib.composition import services

PROTECTED_PREFIXES = ("/api/",)


def is_authorised(header: str | None, expected: str | None) -> bool:
    if not expected or not header:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def require_operator_token(event: Any, get_response: Callable[[Any], Response]) -> Response:
    if not event.path.startswith(PROTECTED_PREFIXES):
        return get_response(event)
    if is_authorised(event.headers.get("authorization"), services().operator_token()):
        return get_response(event)
    return Response(
        body={"Code": "UnauthorizedError", "Message": "operator token required"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="order-hub"'},
    )


def operator_label(header: str | None) -> str:
    """Who made a change, for an audit trail: a short hash of the credential, never the credential."""
    import hashlib

    _, _, token = (header or "").partition(" ")
    return "operator:" + hashlib.sha256(token.strip().encode()).hexdigest()[:12]
