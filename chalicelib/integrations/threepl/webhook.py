"""3PL shipment-confirmation webhooks: the X-ThreePL-Signature check and the event, in plain Python.

Signature scheme (the hub's documented 3PL contract, see `local/simulators/threepl.py`): each delivery
carries `X-ThreePL-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]` where each `v1` is the lowercase
hex HMAC-SHA256, keyed with the endpoint's webhook secret as UTF-8, of the ASCII `t`, a ".", and the raw
request body byte for byte (never re-serialised JSON). While a secret is rotated the sender puts one
`v1` per active secret; any match passes. Every attempt is signed afresh, so `t` is the attempt's time:
a `t` further than `tolerance` seconds from now, either way, is refused (bounds replays and clock skew).
`X-ThreePL-Event-Id` repeats the body's `id`: the hub's idempotency key for the delivery.

Body: `{"id": "evt_...", "type", "created": <unix>, "data": {"fulfillment_order": {...}, "shipment":
{...} | null}}`; types in `EVENT_TYPES`. The returns desk's `return.received` / `return.inspected`
(`RETURN_EVENT_TYPES`) carry `data.return` and `data.units` instead (`returns.py`), signed the same way.
Deliveries are at least once and unordered: compare the fulfilment order's state, never trust arrival
order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from chalicelib.domain import webhooks
from chalicelib.domain.errors import InvalidInput
from chalicelib.integrations.signed_headers import any_matches, parse_timestamped
from chalicelib.integrations.threepl.returns import RETURN_EVENT_KINDS, order_of, return_event

SIGNATURE_HEADER = "X-ThreePL-Signature"
EVENT_ID_HEADER = "X-ThreePL-Event-Id"
EVENT_TYPES = frozenset({"fulfillment_order.accepted", "shipment.created", "fulfillment_order.cancelled"})
# The returns desk's events (`returns.py`): about a return the hub announced, not a fulfilment order.
RETURN_EVENT_TYPES = frozenset(RETURN_EVENT_KINDS)
DEFAULT_TOLERANCE_S = 300


def verify_threepl_signature(
    secret: str, raw_body: bytes, header: str | None, *, now: float, tolerance: int = DEFAULT_TOLERANCE_S
) -> bool:
    """True when one `v1` in `header` is HMAC-SHA256(secret, "<t>." + raw body) and `t` is within
    `tolerance` seconds of `now`. Comparisons are constant-time; unknown schemes are ignored."""
    if not secret or not header:
        return False
    timestamp, signatures = parse_timestamped(header)
    if timestamp is None or not signatures or abs(now - int(timestamp)) > tolerance:
        return False
    return any_matches(secret, timestamp, raw_body, signatures)


def _read(store: str, request: webhooks.WebhookRequest) -> webhooks.WebhookEvent:
    body = request.body
    if isinstance(body, dict) and body.get("type") in RETURN_EVENT_TYPES:
        returned = return_event(body, store)  # refused here, with a 400, when malformed
        return webhooks.WebhookEvent(body["type"], f"3pl:{store}:{returned.event_id}", order_of(body))
    event = threepl_event(body)
    return webhooks.WebhookEvent(event.type, f"3pl:{store}:{event.id}", event.order_id)


# POST /webhooks/3pl/{provider}: the provider is the connection's store.
THREEPL_WEBHOOK = webhooks.WebhookSpec(
    channel="3pl",
    account=webhooks.from_path("provider"),
    unknown_store="unknown 3PL provider",
    verify=webhooks.timestamped_signature_in(SIGNATURE_HEADER.lower(), verify_threepl_signature),
    read=_read,
    handles=(EVENT_TYPES | RETURN_EVENT_TYPES).__contains__,
)


class ShipmentLine(NamedTuple):
    line_id: str
    sku: str
    quantity: int


class Parcel(NamedTuple):
    carrier: str  # USPS | UPS | FedEx | DHL
    tracking_code: str
    lines: tuple[ShipmentLine, ...]


class FulfilmentLine(NamedTuple):
    """One line of the fulfilment order as the 3PL sees it now; pending = quantity - shipped - cancelled."""

    line_id: str
    sku: str
    quantity: int
    shipped_quantity: int
    cancelled_quantity: int


@dataclass(frozen=True)
class ShippedShipment:
    id: str
    shipped_at: datetime  # timezone-aware
    lines: tuple[ShipmentLine, ...]
    parcels: tuple[Parcel, ...]


@dataclass(frozen=True)
class ThreePLEvent:
    """A verified delivery's event: the fulfilment order as it was when it fired, and its shipment."""

    id: str
    type: str  # one of EVENT_TYPES; callers acknowledge and skip others (a newer 3PL version's)
    created: int
    fulfillment_order_id: str
    reference: str  # the hub's shipment id
    order_id: str  # the hub's order id
    status: str  # accepted | partially_shipped | shipped | cancelled | partially_cancelled
    lines: tuple[FulfilmentLine, ...]
    shipment: ShippedShipment | None


def parse_threepl_event(raw_body: bytes) -> ThreePLEvent:
    """The event of a verified delivery; a malformed body raises InvalidInput naming what is wrong."""
    return threepl_event(webhooks.load_json(raw_body))


def threepl_event(parsed: Any) -> ThreePLEvent:
    """The event of an already parsed body (`NOT_JSON` when it was not JSON)."""
    body = webhooks.json_object(parsed, "3pl event")
    event_id, event_type = _text(body, "id", "id"), _text(body, "type", "type")
    created = body.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        raise InvalidInput("3pl event: created is not a unix timestamp")
    data = body.get("data")
    if not isinstance(data, dict):
        raise InvalidInput("3pl event: data is missing")
    order = data.get("fulfillment_order")
    if not isinstance(order, dict):
        raise InvalidInput("3pl event: data.fulfillment_order is missing")
    raw_shipment = data.get("shipment")
    if raw_shipment is None and event_type == "shipment.created":
        raise InvalidInput("3pl event: a shipment.created event without data.shipment")
    where = "data.fulfillment_order"
    return ThreePLEvent(
        id=event_id,
        type=event_type,
        created=created,
        fulfillment_order_id=_text(order, "id", f"{where}.id"),
        reference=_text(order, "reference", f"{where}.reference"),
        order_id=_text(order, "order_id", f"{where}.order_id"),
        status=_text(order, "status", f"{where}.status"),
        lines=tuple(_fulfilment_line(item, f"{where}.lines[{i}]") for i, item in _items(order, where)),
        shipment=None if raw_shipment is None else _shipment(raw_shipment),
    )


def _shipment(raw: Any) -> ShippedShipment:
    where = "data.shipment"
    if not isinstance(raw, dict):
        raise InvalidInput(f"3pl event: {where} is not an object")
    shipped_at_text = _text(raw, "shipped_at", f"{where}.shipped_at")
    try:
        shipped_at = datetime.fromisoformat(shipped_at_text)
    except ValueError:
        shipped_at = None
    if shipped_at is None or shipped_at.tzinfo is None:
        raise InvalidInput(f"3pl event: {where}.shipped_at is not an ISO date-time with offset")
    lines = tuple(_shipment_line(item, f"{where}.lines[{i}]") for i, item in _items(raw, where))
    parcels = []
    for i, parcel in _items(raw, where, "parcels"):
        at = f"{where}.parcels[{i}]"
        parcel_lines = tuple(_shipment_line(item, f"{at}.lines[{j}]") for j, item in _items(parcel, at))
        carrier, code = (
            _text(parcel, "carrier", f"{at}.carrier"),
            _text(parcel, "tracking_code", f"{at}.tracking_code"),
        )
        parcels.append(Parcel(carrier, code, parcel_lines))
    if _units(lines) != _units(line for p in parcels for line in p.lines):
        raise InvalidInput(f"3pl event: {where}.parcels do not hold exactly the shipment's lines")
    return ShippedShipment(_text(raw, "id", f"{where}.id"), shipped_at, lines, tuple(parcels))


def _items(container: Mapping[str, Any], where: str, name: str = "lines") -> list[tuple[int, Any]]:
    items = container.get(name)
    if not isinstance(items, list) or not items:
        raise InvalidInput(f"3pl event: {where}.{name} is missing or empty")
    return list(enumerate(items))


def _shipment_line(raw: Any, where: str) -> ShipmentLine:
    if not isinstance(raw, dict):
        raise InvalidInput(f"3pl event: {where} is not an object")
    quantity = _count(raw, "quantity", where, minimum=1)
    return ShipmentLine(
        _text(raw, "line_id", f"{where}.line_id"), _text(raw, "sku", f"{where}.sku"), quantity
    )


def _fulfilment_line(raw: Any, where: str) -> FulfilmentLine:
    line = _shipment_line(raw, where)
    shipped = _count(raw, "shipped_quantity", where)
    cancelled = _count(raw, "cancelled_quantity", where) if "cancelled_quantity" in raw else 0
    if shipped + cancelled > line.quantity:
        raise InvalidInput(f"3pl event: {where} has more units shipped and cancelled than ordered")
    return FulfilmentLine(line.line_id, line.sku, line.quantity, shipped, cancelled)


def _units(lines: Iterable[ShipmentLine]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.line_id] = totals.get(line.line_id, 0) + line.quantity
    return totals


def _count(raw: Mapping[str, Any], name: str, where: str, *, minimum: int = 0) -> int:
    value = raw.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidInput(f"3pl event: {where}.{name} is not an integer of at least {minimum}")
    return value


def _text(raw: Mapping[str, Any], name: str, where: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"3pl event: {where} is missing or not a string")
    return value
