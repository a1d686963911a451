"""Returns and refunds over the API (DESIGN.md §7): open a return, read it, act on it, refund without one."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.composition import services
from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.manual_channel import idempotency_key
from chalicelib.domain.returns import intake, receiving, refunds
from chalicelib.domain.returns.model import returns_of
from chalicelib.entrypoints.errors import http_errors, json_body

bp = Blueprint(__name__)


def _public(ret: Any) -> dict[str, Any]:
    body: dict[str, Any] = ret.model_dump(mode="json", exclude_none=True, exclude={"request_hash"})
    return body


@bp.route("/api/orders/{order_id}/returns", methods=["POST"], content_types=["application/json"])
@http_errors
def open_return(order_id: str) -> Response:
    """201 with the new return; the same Idempotency-Key and body again: 200 with the same return."""
    request = bp.current_request
    parsed = intake.parse_return_request(json_body(request))
    svc = services()
    ret, created = intake.request_return(
        order_id,
        parsed,
        orders=svc.orders,
        workflow=svc.returns(),
        policies=svc.return_policies,
        now=svc.now,
        source="api",
        idempotency_key=idempotency_key(request.headers.get("idempotency-key")),
    )
    return Response(body=_public(ret), status_code=201 if created else 200)


@bp.route("/api/orders/{order_id}/returns", methods=["GET"])
@http_errors
def list_returns(order_id: str) -> dict[str, Any]:
    svc = services()
    stored = svc.orders.get(order_id)
    if stored is None:
        raise NotFound(f"order {order_id} does not exist")
    return {"order_id": order_id, "returns": [_public(r) for r in returns_of(stored.order)]}


@bp.route("/api/orders/{order_id}/returns/{return_id}", methods=["GET"])
@http_errors
def get_return(order_id: str, return_id: str) -> dict[str, Any]:
    return _public(intake.get_return(order_id, return_id, orders=services().orders))


@bp.route(
    "/api/orders/{order_id}/returns/{return_id}/{action}",
    methods=["POST"],
    content_types=["application/json"],
)
@http_errors
def act_on_return(order_id: str, return_id: str, action: str) -> dict[str, Any]:
    """receive | inspect (`units`: [{"line_id", "quantity", "outcome"}]) | reject (`reason`); with
    `expected_status` (what the operator saw), a return that moved on meanwhile answers 409."""
    body = json_body(bp.current_request) or {}
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object")
    svc = services()
    ret = receiving.operator_action(
        order_id,
        return_id,
        action,
        body,
        orders=svc.orders,
        store=svc.store(),
        workflow=svc.workflow,
        now=svc.now,
    )
    return _public(ret)


@bp.route("/api/orders/{order_id}/refunds", methods=["POST"], content_types=["application/json"])
@http_errors
def refund_order(order_id: str) -> Response:
    """A refund without a return: `{"amount", "reason", "lines"?}`; 201, or 200 for a repeated key."""
    request = bp.current_request
    svc = services()
    made, created = refunds.refund(
        order_id,
        json_body(request),
        orders=svc.orders,
        gateway=svc.payments,
        now=svc.now,
        key=idempotency_key(request.headers.get("idempotency-key")),
    )
    return Response(body=made, status_code=201 if created else 200)
