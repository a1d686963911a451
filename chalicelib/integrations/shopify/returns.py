"""Shopify `returns/*` webhook bodies (REST-style Return resource) read as the domain's ChannelReturn."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.returns.events import ChannelReturn, ChannelReturnLine
from chalicelib.domain.validation import MAX_QUANTITY
from chalicelib.integrations.shopify.fields import objects_of, text_of, timestamp_of

CHANNEL = "shopify"
RETURN_GID = "gid://shopify/Return/"

# Each topic's payload: request and approve carry the return with its line items; decline carries only
# the return and its `decline`; close, reopen and cancel the return's id, `order_id` and status.
RETURN_TOPICS = frozenset(
    {
        "returns/request",
        "returns/approve",
        "returns/decline",
        "returns/close",
        "returns/reopen",
        "returns/cancel",
    }
)
_TOPIC_STATUS = {
    "returns/request": "requested",
    "returns/approve": "open",
    "returns/decline": "declined",
    "returns/close": "closed",
    "returns/reopen": "open",
    "returns/cancel": "cancelled",
}
# Return.status in REST spelling (Shopify writes "canceled").
_STATUS = {
    "requested": "requested",
    "open": "open",
    "declined": "declined",
    "closed": "closed",
    "canceled": "cancelled",
    "cancelled": "cancelled",
}
# Shopify's ReturnReason (lower-cased in webhooks) → the returns policy's reasons (policy.REASONS).
REASONS = {
    "color": "colour",
    "defective": "defective",
    "not_as_described": "not_as_described",
    "other": "other",
    "size_too_large": "size",
    "size_too_small": "size",
    "style": "changed_mind",
    "unknown": "other",
    "unwanted": "unwanted",
    "wrong_item": "wrong_item",
}


def return_gid(payload: Mapping[str, Any]) -> str | None:
    """The Return's GraphQL id (`admin_graphql_api_id`, or built from the numeric `id`)."""
    gid = text_of(payload.get("admin_graphql_api_id"))
    if gid and gid.startswith(RETURN_GID):
        return gid
    legacy = payload.get("id")
    if isinstance(legacy, int) and not isinstance(legacy, bool) and legacy > 0:
        return f"{RETURN_GID}{legacy}"
    if isinstance(legacy, str) and legacy.strip().isdigit():
        return f"{RETURN_GID}{legacy.strip()}"
    return None


def return_order_id(payload: Mapping[str, Any]) -> str | None:
    """The numeric id of the return's order: `order.id` (request, approve) or `order_id` (close, cancel).
    None for `returns/decline`, whose body names no order."""
    order = payload.get("order")
    candidates = [order.get("id"), order.get("admin_graphql_api_id")] if isinstance(order, Mapping) else []
    for value in [*candidates, payload.get("order_id")]:
        text = str(value).rsplit("/", 1)[-1].strip() if value is not None else ""
        if text.isdigit() and not isinstance(value, bool):
            return text
    return None


def read_return(topic: str, payload: Mapping[str, Any], store: str) -> ChannelReturn:
    """One `returns/*` body as a ChannelReturn. External ids are Shopify's: the Return gid and the numeric
    order and line item ids (the canonical order's `external_id` and `line_id`). Bodies without line items
    (decline, close, reopen, cancel) give a return with no lines: a status change of a known return."""
    where = f"shopify {topic}"
    if not isinstance(payload, Mapping):
        raise InvalidInput(f"{where}: the body is not a JSON object")
    gid = return_gid(payload)
    if gid is None:
        raise InvalidInput(f"{where}: no return id (admin_graphql_api_id or id)")
    status = _STATUS.get((text_of(payload.get("status")) or "").lower()) or _TOPIC_STATUS.get(topic)
    if status is None:
        raise InvalidInput(f"{where}: unknown return status {payload.get('status')!r}")
    items = payload.get("return_line_items")
    if items is not None and not isinstance(items, list):
        raise InvalidInput(f"{where}: return_line_items is not a list")
    lines = tuple(_line(item, f"{where} return_line_items[{i}]") for i, item in enumerate(items or []))
    if topic == "returns/request" and not lines:
        raise InvalidInput(f"{where}: a return request needs at least one return line item")
    tracking, carrier, label = _reverse_delivery(payload)
    return ChannelReturn(
        channel=CHANNEL,
        store=store,
        external_order_id=return_order_id(payload) or "",
        external_return_id=gid,
        status=status,
        lines=lines,
        at=_at(payload, where),
        label_provided=label,
        tracking_number=tracking,
        carrier=carrier,
        resolution="exchange" if objects_of(payload.get("exchange_line_items")) else "refund",
    )


def _line(item: Any, where: str) -> ChannelReturnLine:
    if not isinstance(item, Mapping):
        raise InvalidInput(f"{where}: not an object")
    fulfillment_item = item.get("fulfillment_line_item")
    line_item = fulfillment_item.get("line_item") if isinstance(fulfillment_item, Mapping) else None
    raw_id = line_item.get("id") if isinstance(line_item, Mapping) else item.get("line_item_id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, int | str) or not str(raw_id).strip().isdigit():
        raise InvalidInput(f"{where}: no line item id (fulfillment_line_item.line_item.id)")
    quantity = item.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 < quantity <= MAX_QUANTITY:
        raise InvalidInput(f"{where}: quantity must be a whole number 1..{MAX_QUANTITY}, got {quantity!r}")
    reason = REASONS.get((text_of(item.get("return_reason")) or "").lower(), "other")
    return ChannelReturnLine(quantity=quantity, line_id=str(raw_id).strip(), reason=reason)


def _reverse_delivery(payload: Mapping[str, Any]) -> tuple[str | None, str | None, bool]:
    """(tracking number, carrier, whether a label was given) of the return's first reverse delivery
    that carries a shipping deliverable (Shopify's return label or the customer's own tracking)."""
    for delivery in objects_of(payload.get("reverse_deliveries")):
        deliverable = delivery.get("shipping_deliverable")
        if not isinstance(deliverable, Mapping):
            continue
        raw = deliverable.get("tracking")
        tracking: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        label = deliverable.get("label")
        has_label = isinstance(label, Mapping) and bool(text_of(label.get("public_file_url")))
        return text_of(tracking.get("tracking_number")), text_of(tracking.get("carrier_name")), has_label
    return None, None, False


def _at(payload: Mapping[str, Any], where: str) -> datetime:
    """When the return last changed: its own stamps when the body has them (the documented bodies do
    not), else the moment it was read."""
    for key in ("updated_at", "closed_at", "declined_at", "requested_at", "created_at"):
        if payload.get(key):
            return timestamp_of(payload[key], f"{where} {key}")
    return datetime.now(UTC)
