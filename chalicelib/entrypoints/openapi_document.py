"""The hub's HTTP API as an OpenAPI 3.1 document, generated from the Chalice app's routes.

Every route of `app.routes` is in it (the paths and methods come from there, not from a list); a route's
request body comes from its model where it has one (pydantic's `model_json_schema`, or the schema of the
parser's documented shape), its answers from `ANSWERS` (the README's "HTTP API" table). A route without an
entry in `ANSWERS` is still listed, marked `x-undocumented`: a test fails on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from chalice import Blueprint, Response

from chalicelib.domain.connections import connection_body_schema
from chalicelib.domain.manual_channel import ManualOrder
from chalicelib.domain.returns.model import Outcome, Resolution
from chalicelib.domain.returns.policy import REASONS
from chalicelib.entrypoints.status_page import COOKIE

bp = Blueprint(__name__)

TITLE, VERSION = "order-hub", "1.0.0"

# Open without the operator's token: each has its own check (signature, sign-in form) or none.
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/status/login", "/status/logout"})
PUBLIC_PREFIXES = ("/webhooks/",)

_ERROR = {"type": "object", "properties": {"Code": {"type": "string"}, "Message": {"type": "string"}}}
_LINES = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["line_id", "quantity"],
        "properties": {"line_id": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}},
    },
}
_AMOUNT = {"type": "string", "pattern": r"^\d+(\.\d+)?$"}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _return_request() -> dict[str, Any]:
    """`returns.intake.parse_return_request`'s shape (a parser, not a pydantic model)."""
    line = _object(
        {
            "line_id": {"type": "string", "minLength": 1},
            "quantity": {"type": "integer", "minimum": 1},
            "reason": {"enum": sorted(REASONS), "default": "other"},
        },
        ("line_id", "quantity"),
    )
    exchange_line = _object(
        {"sku": {"type": "string", "minLength": 1}, "quantity": {"type": "integer", "minimum": 1}},
        ("sku", "quantity"),
    )
    return _object(
        {
            "lines": {"type": "array", "items": line, "minItems": 1, "maxItems": 250},
            "resolution": {"enum": [r.value for r in Resolution], "default": "refund"},
            "exchange": _object({"lines": {"type": "array", "items": exchange_line, "minItems": 1}}),
            "override": {"type": "object", "required": ["rule"], "properties": {"rule": {"type": "string"}}},
            "label": {"type": "boolean", "default": True},
        },
        ("lines",),
    )


def _return_action() -> dict[str, Any]:
    unit = _object(
        {
            "line_id": {"type": "string"},
            "quantity": {"type": "integer", "minimum": 1},
            "outcome": {"enum": [o.value for o in Outcome]},
        },
        ("line_id", "quantity", "outcome"),
    )
    return {
        "type": "object",
        "properties": {
            "units": {"type": "array", "items": unit},
            "reason": {"type": "string"},
            "expected_status": {"type": "string"},
        },
    }


# (method, path) → the request body's JSON Schema.
REQUEST_BODIES: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
    ("POST", "/api/orders"): ManualOrder.model_json_schema,
    ("POST", "/api/connections"): connection_body_schema,
    ("POST", "/api/orders/{order_id}/returns"): _return_request,
    ("POST", "/api/orders/{order_id}/returns/{return_id}/{action}"): _return_action,
    ("POST", "/api/orders/{order_id}/refunds"): lambda: _object(
        {"amount": _AMOUNT, "reason": {"type": "string", "maxLength": 500}, "lines": _LINES},
        ("amount", "reason"),
    ),
    ("POST", "/api/orders/{order_id}/review"): lambda: _object(
        {"decision": {"enum": ["approve", "reject"]}}, ("decision",)
    ),
    ("POST", "/api/orders/{order_id}/cancel"): lambda: _object({"reason": {"type": "string"}}),
    ("POST", "/api/orders/{order_id}/payment/retry"): lambda: _object(
        {"payment_intent": {"type": "string", "pattern": "^pi_"}}
    ),
    ("POST", "/api/deliveries/replay"): lambda: _object(
        {"delivery_id": {"type": "string"}}, ("delivery_id",)
    ),
    # The value's schema is its setting's (GET /api/settings/{name} shows the default's shape).
    ("PUT", "/api/settings/{name}"): lambda: _object(
        {"value": {}, "expected_version": {"type": "integer", "minimum": 0}}, ("value",)
    ),
}

_AUTH = {"401": "no operator token, or a wrong one"}
_PAGE = {"200": "the HTML page", "303": "not signed in: to the sign-in form", "404": "unknown"}
_ACTION = {
    "303": "done (or refused, with a flash message): back to the page",
    "401": "no session",
    "403": "bad CSRF token",
    "404": "unknown",
}
_UNSUPPORTED = {"415": "a content type the route does not take (no body is taken as JSON)"}
# The status pages refuse in HTML; Chalice's own refusals (415) are JSON everywhere.
_HTML_OR_ERROR = {"application/json": {"schema": _ERROR}, "text/html": {"schema": {"type": "string"}}}
_WEBHOOK = {
    "200": "accepted (queued) or ignored",
    "400": "malformed",
    "401": "missing or wrong signature",
    "404": "unknown store",
    "413": "too large",
    "415": "a content type the route does not take",
}

# (method, path) → {status: description}: the README's "HTTP API" table.
ANSWERS: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/health"): {"200": "every component answers", "503": "a component fails"},
    ("GET", "/openapi.json"): {"200": "this document"},
    ("POST", "/api/orders"): {
        "202": "accepted",
        "400": "malformed or breaks the order's rules",
        "409": "Idempotency-Key reused with another body",
        "413": "too large",
    },
    ("GET", "/api/orders"): {"200": "orders, newest first, and next_cursor", "400": "bad filter or cursor"},
    ("GET", "/api/orders/{order_id}"): {"200": "the canonical order", "404": "unknown"},
    ("GET", "/api/orders/by-channel/{channel}/{external_id}"): {
        "200": "the canonical order",
        "404": "unknown",
    },
    ("POST", "/api/connections"): {
        "200": "re-registered (secrets rotated)",
        "201": "registered",
        "400": "malformed",
    },
    ("GET", "/api/connections"): {"200": "connections, without secrets"},
    ("GET", "/api/settings"): {"200": "every runtime setting: name, meaning, version, value, default"},
    ("GET", "/api/settings/{name}"): {"200": "the setting", "404": "unknown setting"},
    ("PUT", "/api/settings/{name}"): {
        "200": "the setting's new version, and the change as recorded",
        "400": "malformed",
        "404": "unknown setting",
        "409": "not the expected_version, or another change first",
        "422": "its schema refuses the value (the reason says why)",
    },
    ("GET", "/api/settings/{name}/history"): {
        "200": "every version, newest first: value, when, by whom, what changed",
        "404": "unknown setting",
    },
    ("DELETE", "/api/connections/{connection_id}"): {"204": "removed", "404": "unknown"},
    ("POST", "/api/dlq/{queue}/redrive"): {"200": "{queue, moved, remaining}", "404": "unknown queue"},
    ("POST", "/api/orders/{order_id}/review"): {
        "200": "the decided order",
        "400": "malformed",
        "404": "unknown",
        "409": "not in FRAUD_REVIEW",
    },
    ("POST", "/api/orders/{order_id}/cancel"): {
        "200": "cancelled (idempotent)",
        "404": "unknown",
        "409": "delivered, completed, returned or refunded",
    },
    ("POST", "/api/orders/{order_id}/payment/retry"): {
        "200": "{workflow_resumed}",
        "400": "malformed",
        "404": "unknown",
        "409": "not waiting for a payment",
    },
    ("GET", "/api/carriers/performance"): {"200": "per carrier and country: deliveries, share on time"},
    ("POST", "/api/orders/{order_id}/publications/{publication_id}/retry"): {
        "200": "back in the outbox",
        "404": "unknown",
        "409": "not failed",
    },
    ("POST", "/api/reconciliation/run"): {"200": "the run's reports"},
    ("GET", "/api/reconciliation/runs"): {"200": "the latest reports"},
    ("POST", "/api/orders/{order_id}/returns"): {
        "200": "the same return (same Idempotency-Key and body)",
        "201": "the return",
        "400": "malformed",
        "404": "unknown order",
        "409": "cannot be returned, or the key reused with another body",
        "422": "a rule refuses it",
    },
    ("GET", "/api/orders/{order_id}/returns"): {"200": "the order's returns", "404": "unknown order"},
    ("GET", "/api/orders/{order_id}/returns/{return_id}"): {"200": "the return", "404": "unknown"},
    ("POST", "/api/orders/{order_id}/returns/{return_id}/{action}"): {
        "200": "the return",
        "400": "malformed",
        "404": "unknown",
        "409": "not in the status seen",
    },
    ("POST", "/api/orders/{order_id}/refunds"): {
        "200": "the same refund (repeated Idempotency-Key)",
        "201": "refunded",
        "400": "malformed",
        "404": "unknown",
        "409": "cancelled order",
        "422": "refund_exceeds_captured",
    },
    ("GET", "/api/credit/vouchers/{code}"): {"200": "the voucher", "404": "unknown or malformed code"},
    ("GET", "/api/credit/liabilities"): {"200": "owed per currency"},
    ("POST", "/api/deliveries/replay"): {
        "202": "queued under a new id",
        "400": "malformed",
        "404": "not archived",
    },
    ("POST", "/webhooks/shopify"): _WEBHOOK,
    ("POST", "/webhooks/woocommerce"): _WEBHOOK,
    ("POST", "/webhooks/stripe"): _WEBHOOK,
    ("POST", "/webhooks/3pl/{provider}"): _WEBHOOK,
    ("POST", "/webhooks/carriers/{carrier}"): _WEBHOOK,
    ("GET", "/status/login"): {"200": "the sign-in form"},
    ("POST", "/status/login"): {"303": "signed in: to the page asked for", "401": "wrong token"},
    ("POST", "/status/logout"): {"303": "signed out: to the sign-in form"},
}


def _answers(method: str, path: str) -> tuple[dict[str, str], bool]:
    """(status → description, documented?) for one operation."""
    known = ANSWERS.get((method, path))
    if known is not None:
        return known, True
    if path.startswith("/status"):  # the status pages: one shape for pages, one for their actions
        return (_PAGE if method == "GET" else _ACTION), True
    return {"default": "undocumented"}, False


def _operation(method: str, path: str, route: Any) -> dict[str, Any]:
    answers, documented = _answers(method, path)
    public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
    if not public and not path.startswith("/status"):
        answers = {**answers, **_AUTH}
    types = list(getattr(route, "content_types", None) or ["application/json"])
    if method in ("POST", "PUT", "PATCH") and "application/json" not in types:
        answers = {**answers, **_UNSUPPORTED}
    refusal = _HTML_OR_ERROR if path.startswith("/status") else {"application/json": {"schema": _ERROR}}
    operation: dict[str, Any] = {
        "operationId": f"{route.view_name}_{method.lower()}",
        "responses": {
            status: {
                "description": text,
                **({"content": refusal} if status[0] == "4" else {}),
            }
            for status, text in sorted(answers.items())
        },
    }
    if not documented:
        operation["x-undocumented"] = True
    if public:
        operation["security"] = []
    elif path.startswith("/status"):
        operation["security"] = [{"session": []}, {"operator": []}]
    params = re.findall(r"{(\w+)}", path)
    if params:
        operation["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
        ]
    body = REQUEST_BODIES.get((method, path))
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body()}}}
    elif method in ("POST", "PUT", "PATCH"):
        operation["requestBody"] = {"required": False, "content": {t: {"schema": {}} for t in types}}
    return operation


def openapi_document(routes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes` (Chalice's `app.routes`: path → method → route entry)."""
    paths: dict[str, dict[str, Any]] = {}
    for path in sorted(routes):
        for method in sorted(routes[path]):
            paths.setdefault(path, {})[method.lower()] = _operation(method, path, routes[path][method])
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION},
        "paths": paths,
        "security": [{"operator": []}],
        "components": {
            "securitySchemes": {
                "operator": {"type": "http", "scheme": "bearer", "description": "HUB_OPERATOR_TOKEN"},
                "session": {"type": "apiKey", "in": "cookie", "name": COOKIE},
            }
        },
    }


@bp.route("/openapi.json", methods=["GET"])
def openapi_json() -> Response:
    """The document of every route the app serves (public, like /health: it holds no secret)."""
    return Response(body=openapi_document(bp.current_app.routes), status_code=200)
