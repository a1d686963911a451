"""Shopify fulfillments as the publisher reads and writes them: the queries, what a shipment still needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.domain.order import Order
from chalicelib.domain.publishing import Milestone, PublishRejected

_OPEN_FULFILLMENT_ORDERS = frozenset({"OPEN", "IN_PROGRESS"})
# Shopify builds tracking links for the companies it knows, spelled exactly as its list does.
_COMPANIES = {
    "ups": "UPS",
    "usps": "USPS",
    "fedex": "FedEx",
    "dhl": "DHL Express",
    "dhl_express": "DHL Express",
}

# Two reads rather than one: Shopify refuses a query whose requested cost (every `first` multiplied
# through its nesting) passes 1000 points, and a smaller one also leaves more of the bucket to others.
# The pages cover 10 fulfillments and 5 fulfillment orders of 50 lines each, far beyond a usual order.
FULFILLMENTS_QUERY = """
query OrderFulfillments($id: ID!) {
  order(id: $id) {
    id
    fulfillments(first: 10) {
      id status displayStatus
      trackingInfo(first: 5) { company number url }
      events(last: 3) { nodes { status happenedAt } }
      fulfillmentLineItems(first: 25) { nodes { quantity lineItem { id } } }
    }
  }
}
"""
FULFILLMENT_ORDERS_QUERY = """
query OrderFulfillmentOrders($id: ID!) {
  order(id: $id) {
    id
    fulfillmentOrders(first: 5) {
      nodes {
        id status
        assignedLocation { location { id } }
        lineItems(first: 50) { nodes { id remainingQuantity lineItem { id } } }
      }
    }
  }
}
"""
FULFILLMENT_CREATE = """
mutation FulfillmentCreate($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status trackingInfo(first: 20) { company number url } }
    userErrors { field message }
  }
}
"""
EVENT_CREATE = """
mutation FulfillmentEventCreate($fulfillmentEvent: FulfillmentEventInput!) {
  fulfillmentEventCreate(fulfillmentEvent: $fulfillmentEvent) {
    fulfillmentEvent { id status happenedAt }
    userErrors { field message }
  }
}
"""


def tracking_numbers(milestone: Milestone) -> list[str]:
    numbers = [str(p.get("tracking_number") or "").strip() for p in milestone.parcels]
    return list(dict.fromkeys(n for n in numbers if n))


def tracking_input(milestone: Milestone, numbers: Sequence[str]) -> dict[str, Any]:
    carriers = [str(p.get("carrier") or "").strip() for p in milestone.parcels if p.get("carrier")]
    # One fulfillment has one company: parcels of one shipment travel with one carrier.
    company = _COMPANIES.get(carriers[0].lower(), carriers[0]) if carriers else None
    tracking: dict[str, Any] = {"numbers": list(numbers)}
    urls = {str(p.get("tracking_number")): p.get("tracking_url") for p in milestone.parcels}
    if all(urls.get(n) for n in numbers):
        tracking["urls"] = [urls[n] for n in numbers]
    if company:
        tracking["company"] = company
    return tracking


def live_fulfillments(state: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    fulfillments = [f for f in state.get("fulfillments") or () if isinstance(f, Mapping)]
    return [f for f in fulfillments if f.get("status") not in ("CANCELLED", "ERROR", "FAILURE")]


def numbers_of(fulfillment: Mapping[str, Any]) -> list[str]:
    return [str(t.get("number")) for t in fulfillment.get("trackingInfo") or () if t.get("number")]


def _lines_of(fulfillment: Mapping[str, Any]) -> dict[str, int]:
    lines: dict[str, int] = {}
    for node in _nodes(fulfillment.get("fulfillmentLineItems")):
        line_id = _legacy(str((node.get("lineItem") or {}).get("id") or ""))
        lines[line_id] = lines.get(line_id, 0) + int(node.get("quantity") or 0)
    return lines


def fulfillments_carrying(
    state: Mapping[str, Any], numbers: Sequence[str], milestone: Milestone
) -> list[Mapping[str, Any]]:
    """The live fulfillments this shipment already made: same tracking numbers (or, with none, same lines)."""
    live = live_fulfillments(state)
    if numbers:
        return [f for f in live if set(numbers_of(f)) == set(numbers)]
    wanted = {str(line["line_id"]): int(line["quantity"]) for line in milestone.lines}
    return [f for f in live if not numbers_of(f) and _lines_of(f) == wanted]


def still_to_ship(
    order: Order, milestone: Milestone, ours: Sequence[Mapping[str, Any]]
) -> dict[str, int] | None:
    """Line id → quantity not yet in `ours`; None stands for "every open line" (a milestone without lines)."""
    if not milestone.lines:
        return None if not ours else {}
    shipped: dict[str, int] = {}
    for fulfillment in ours:
        for line_id, quantity in _lines_of(fulfillment).items():
            shipped[line_id] = shipped.get(line_id, 0) + quantity
    known = {line.line_id for line in order.lines}
    missing: dict[str, int] = {}
    for line in milestone.lines:
        line_id, quantity = str(line.get("line_id")), int(line.get("quantity") or 0)
        if line_id not in known:
            raise PublishRejected(f"shopify: order {order.external_id} has no line {line_id}")
        take = min(quantity, shipped.get(line_id, 0))
        shipped[line_id] = shipped.get(line_id, 0) - take
        if quantity > take:
            missing[line_id] = missing.get(line_id, 0) + quantity - take
    return missing


def allocate(state: Mapping[str, Any], missing: dict[str, int] | None) -> list[list[dict[str, Any]]]:
    """`missing` spread over the open fulfillment orders' line items, one list per location.

    fulfillmentCreate takes fulfillment orders of a single location, so a shipment whose lines
    Shopify assigned to two locations becomes two fulfillments with the same tracking.
    """
    orders = [
        fo for fo in _nodes(state.get("fulfillmentOrders")) if fo.get("status") in _OPEN_FULFILLMENT_ORDERS
    ]
    left = dict(missing) if missing is not None else None
    by_location: dict[str, list[dict[str, Any]]] = {}
    for fo in orders:
        items = []
        for item in _nodes(fo.get("lineItems")):
            remaining = int(item.get("remainingQuantity") or 0)
            line_id = _legacy(str((item.get("lineItem") or {}).get("id") or ""))
            want = remaining if left is None else min(remaining, left.get(line_id, 0))
            if want <= 0:
                continue
            items.append({"id": item["id"], "quantity": want})
            if left is not None:
                left[line_id] -= want
        if items:
            location = str((((fo.get("assignedLocation") or {}).get("location")) or {}).get("id") or "")
            by_location.setdefault(location, []).append(
                {"fulfillmentOrderId": fo["id"], "fulfillmentOrderLineItems": items}
            )
    short = {line_id: qty for line_id, qty in (left or {}).items() if qty > 0}
    if short or not by_location:
        detail = ", ".join(f"line {k} × {v}" for k, v in short.items()) or "nothing open"
        raise PublishRejected(f"shopify: the open fulfillment orders cannot ship {detail}")
    return list(by_location.values())


def delivered_already(fulfillment: Mapping[str, Any]) -> bool:
    if fulfillment.get("displayStatus") == "DELIVERED":
        return True
    return any(e.get("status") == "DELIVERED" for e in _nodes(fulfillment.get("events")))


def _nodes(connection: Any) -> list[Mapping[str, Any]]:
    if not isinstance(connection, Mapping):
        return []
    return [n for n in connection.get("nodes") or () if isinstance(n, Mapping)]


def _legacy(gid: str) -> str:
    return gid.rsplit("/", 1)[-1]
