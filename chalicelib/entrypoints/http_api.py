"""HTTP routes for health, manual order intake and order queries."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from chalice import Blueprint, NotFoundError, Response

from chalicelib.composition import services
from chalicelib.domain.delivery import Delivery
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.manual_channel import CHANNEL as MANUAL
from chalicelib.domain.manual_channel import bind_idempotency_key, idempotency_key, normalise_manual
from chalicelib.domain.order import OrderStatus
from chalicelib.domain.validation import validate_order
from chalicelib.entrypoints.errors import http_errors, json_body
from chalicelib.entrypoints.health import health_report
from chalicelib.entrypoints.intake import enqueue

bp = Blueprint(__name__)

MAX_PAGE = 100


@bp.route("/health", methods=["GET"])
def health() -> Response:
    report = health_report(services())
    return Response(body=report, status_code=200 if report["status"] == "ok" else 503)


@bp.route("/api/orders", methods=["POST"], content_types=["application/json"])
@http_errors
def create_manual_order() -> Response:
    """Accept an order in canonical form (channel `manual`): validate, enqueue, answer 202."""
    request = bp.current_request
    body = json_body(request)
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object")
    order = normalise_manual(body)  # rejects what the queue handler could never process
    svc = services()
    validate_order(order, now=svc.now())  # ... and what ingestion would refuse
    raw = _bytes(request.raw_body)
    key = idempotency_key(request.headers.get("idempotency-key"))
    delivery_id = f"manual:{key}" if key else "manual:" + hashlib.sha256(raw).hexdigest()
    delivery = Delivery(
        delivery_id=delivery_id,
        channel=MANUAL,
        store=order.store,
        topic="orders/create",
        received_at=svc.now(),
        payload=body,
        external_id=order.external_id,
    )
    if key:
        bind_idempotency_key(delivery, raw, svc.raw_archive)
    enqueue(svc, delivery, raw)
    return Response(
        body={"order_id": order.order_id, "delivery_id": delivery_id, "status": "accepted"},
        status_code=202,
    )


@bp.route("/api/orders", methods=["GET"])
@http_errors
def list_orders() -> dict[str, Any]:
    params = _query(bp.current_request.query_params)
    status = _status(params.get("status"))
    try:
        limit = min(max(int(params.get("limit", "50")), 1), MAX_PAGE)
    except ValueError as exc:
        raise InvalidInput("limit must be an integer") from exc
    page = services().orders.list_orders(
        status=status,
        channel=params.get("channel"),
        store=params.get("store"),
        limit=limit,
        cursor=params.get("cursor"),
    )
    return {"orders": [o.to_json() for o in page.orders], "next_cursor": page.next_cursor}


@bp.route("/api/orders/{order_id}", methods=["GET"])
def get_order(order_id: str) -> dict[str, Any]:
    stored = services().orders.get(order_id)
    if stored is None:
        raise NotFoundError(f"order {order_id} does not exist")
    return stored.order.to_json()


@bp.route("/api/orders/by-channel/{channel}/{external_id}", methods=["GET"])
@http_errors
def get_order_by_channel(channel: str, external_id: str) -> dict[str, Any]:
    params = _query(bp.current_request.query_params)
    matches = services().orders.find_by_external_id(channel, external_id)
    if "store" in params:
        matches = [m for m in matches if m.order.store == params["store"]]
    if not matches:
        raise NotFoundError(f"no {channel} order {external_id}")
    if len(matches) > 1:
        stores = sorted(m.order.store for m in matches)
        raise InvalidInput(f"several stores have this order, pass ?store= one of {stores}")
    return matches[0].order.to_json()


def _status(value: str | None) -> OrderStatus | None:
    if not value:
        return None
    try:
        return OrderStatus(value.upper())
    except ValueError:
        raise InvalidInput(f"unknown status {value!r}") from None


def _bytes(body: str | bytes) -> bytes:
    return body.encode() if isinstance(body, str) else body


def _query(params: Mapping[str, str] | None) -> dict[str, str]:
    return dict(params or {})


@bp.route("/api/orders/{order_id}/review", methods=["POST"], content_types=["application/json"])
@http_errors
def review_order(order_id: str) -> dict[str, Any]:
    """An operator's fraud review, `{"decision": "approve" | "reject"}`; 409 unless the order waits."""
    from chalicelib.domain import review

    body = json_body(bp.current_request)
    decision = body.get("decision") if isinstance(body, dict) else None
    svc = services()
    return review.review(order_id, str(decision), orders=svc.orders, workflow=svc.workflow, now=svc.now)


@bp.route("/api/orders/{order_id}/cancel", methods=["POST"], content_types=["application/json"])
@http_errors
def cancel_order(order_id: str) -> dict[str, Any]:
    """Cancel from any stage (`{"reason": "..."}` optional); 409 once it is completed or refunded."""
    from chalicelib.domain import cancellation

    body = json_body(bp.current_request)
    reason = str(body.get("reason") or "operator request") if isinstance(body, dict) else "operator request"
    svc = services()
    return cancellation.cancel(order_id, reason, source="operator", **svc.wind_down_with())


@bp.route("/api/orders/{order_id}/payment/retry", methods=["POST"], content_types=["application/json"])
@http_errors
def retry_payment(order_id: str) -> dict[str, Any]:
    """Try a PAYMENT_PENDING order's payment again now, optionally `{"payment_intent": "pi_..."}` (a new
    one the customer paid with); 409 unless the order waits for a payment."""
    from chalicelib.domain import payment_recovery

    body = json_body(bp.current_request)
    intent = body.get("payment_intent") if isinstance(body, dict) else None
    if intent is not None and not isinstance(intent, str):
        raise InvalidInput("payment_intent must be a string")
    svc = services()
    return payment_recovery.retry_payment(
        order_id, orders=svc.orders, workflow=svc.workflow, now=svc.now, payment_intent=intent
    )


@bp.route("/api/carriers/performance", methods=["GET"])
@http_errors
def carrier_performance() -> dict[str, Any]:
    """Per carrier and destination country: deliveries and the share on time against the promise."""
    return {"carriers": services().store().carrier_stats()}


@bp.route("/api/orders/{order_id}/publications/{publication_id}/retry", methods=["POST"])
@http_errors
def retry_publication(order_id: str, publication_id: str) -> dict[str, Any]:
    """Put a failed milestone back in the order's outbox; the next publishing run sends it."""
    from chalicelib.domain import publishing

    return publishing.retry_publication(order_id, publication_id, orders=services().orders)
