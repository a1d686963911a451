"""Publishes order milestones to Shopify through the Admin GraphQL API (ShopifyPublisher)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.order import Order
from chalicelib.domain.publishing import (
    Milestone,
    PublishRejected,
    PublishThrottled,
    PublishUnavailable,
)
from chalicelib.integrations.shopify.admin import ShopifyAdmin, order_gid
from chalicelib.integrations.shopify.errors import (
    ShopifyAuthError,
    ShopifyError,
    ShopifyRejected,
    ShopifyUnavailable,
)

logger = Logger(service="order-hub", child=True)

MARKER_PREFIX = "order-hub:"  # refund notes and cancellation staff notes carry "order-hub:<publication_id>"
_OPEN_FULFILLMENT_ORDERS = frozenset({"OPEN", "IN_PROGRESS"})
_PAID = frozenset({"PAID", "PARTIALLY_REFUNDED", "REFUNDED"})
_DEFAULT_THROTTLE_WAIT = 2.0
# Shopify builds tracking links for the companies it knows, spelled exactly as its list does.
_COMPANIES = {
    "ups": "UPS",
    "usps": "USPS",
    "fedex": "FedEx",
    "dhl": "DHL Express",
    "dhl_express": "DHL Express",
}
_CANCEL_REASONS = (
    ("fraud", "FRAUD"),
    ("declin", "DECLINED"),
    ("payment", "DECLINED"),
    ("inventory", "INVENTORY"),
    ("stock", "INVENTORY"),
    ("staff", "STAFF"),
    ("operator", "STAFF"),
    ("customer", "CUSTOMER"),
)

# Two reads rather than one: Shopify refuses a query whose requested cost (every `first` multiplied
# through its nesting) passes 1000 points, and a smaller one also leaves more of the bucket to others.
# The pages cover 10 fulfillments and 5 fulfillment orders of 50 lines each, far beyond a usual order.
_FULFILLMENTS = """
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
_FULFILLMENT_ORDERS = """
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
_FULFILLMENT_CREATE = """
mutation FulfillmentCreate($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status trackingInfo(first: 20) { company number url } }
    userErrors { field message }
  }
}
"""
_EVENT_CREATE = """
mutation FulfillmentEventCreate($fulfillmentEvent: FulfillmentEventInput!) {
  fulfillmentEventCreate(fulfillmentEvent: $fulfillmentEvent) {
    fulfillmentEvent { id status happenedAt }
    userErrors { field message }
  }
}
"""
_ORDER_STATUS = """
query OrderStatus($id: ID!) {
  order(id: $id) { id cancelledAt displayFinancialStatus canMarkAsPaid }
}
"""
_ORDER_CANCEL = """
mutation OrderCancel(
  $orderId: ID!, $reason: OrderCancelReason!, $refundMethod: OrderCancelRefundMethodInput,
  $restock: Boolean!, $notifyCustomer: Boolean, $staffNote: String
) {
  orderCancel(
    orderId: $orderId, reason: $reason, refundMethod: $refundMethod, restock: $restock,
    notifyCustomer: $notifyCustomer, staffNote: $staffNote
  ) {
    job { id done }
    orderCancelUserErrors { field message code }
  }
}
"""
_REFUND_STATE = """
query OrderRefunds($id: ID!) {
  order(id: $id) {
    id presentmentCurrencyCode
    refunds(first: 50) { id note }
    transactions(first: 50) {
      id kind status gateway
      amountSet { presentmentMoney { amount currencyCode } }
      parentTransaction { id }
    }
  }
}
"""
# The idempotency key goes in as a literal (a UUID, nothing to escape), as Shopify's examples write it.
_REFUND_CREATE = """
mutation RefundCreate($input: RefundInput!) {
  refundCreate(input: $input) @idempotent(key: %s) {
    refund { id note }
    userErrors { field message }
  }
}
"""
_MARK_AS_PAID = """
mutation OrderMarkAsPaid($input: OrderMarkAsPaidInput!) {
  orderMarkAsPaid(input: $input) {
    order { id displayFinancialStatus }
    userErrors { field message }
  }
}
"""


class ShopifyPublisher:
    """The ChannelPublisher for Shopify: one shop's ShopifyAdmin, one call per milestone.

    Every milestone reads the order first and writes only what is missing, so publishing the same
    milestone again (or after a lost answer) changes nothing: shipped and delivered recognise their
    fulfillment by its tracking numbers, cancelled by `cancelledAt`, refunded by the refund note
    `order-hub:<publication_id>` (plus an @idempotent key), paid by the financial status.
    Raises PublishRejected (userErrors, refused token, unknown order, a milestone that does not fit
    the order), PublishThrottled (THROTTLED or 429 beyond the admin's waits), PublishUnavailable
    (5xx and transport failures beyond its retries). Needs Admin API 2026-01 or later (the @idempotent
    directive; orderCancel's refundMethod is 2025-07+): shopify.graphql.API_VERSION is 2026-10.
    """

    def __init__(self, admin: ShopifyAdmin) -> None:
        self._admin = admin
        self._handlers: dict[str, Callable[[Order, Milestone], dict[str, Any]]] = {
            "shipped": self._shipped,
            "delivered": self._delivered,
            "cancelled": self._cancelled,
            "refunded": self._refunded,
            "paid": self._paid,
        }

    def publish(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        handler = self._handlers.get(milestone.kind)
        if handler is None:
            raise PublishRejected(f"shopify: no such milestone {milestone.kind!r}")
        if order.channel != "shopify":
            raise PublishRejected(f"shopify: order {order.order_id} belongs to {order.channel}")
        with _translated(milestone):
            result = handler(order, milestone)
        logger.info(
            "shopify milestone published",
            extra={
                "order_id": order.order_id,
                "channel": "shopify",
                "milestone": milestone.kind,
                "publication_id": milestone.publication_id,
                **result,
            },
        )
        return result

    # --- shipped --------------------------------------------------------------------------------

    def _shipped(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        numbers = _tracking_numbers(milestone)
        created: list[str] = []
        seen: dict[str, Any] = {}  # what the last read found; write_once always reads before writing

        def done() -> list[str] | None:
            state = self._fulfilment_state(order)
            ours = _fulfillments_carrying(state, numbers, milestone)
            missing = _still_to_ship(order, milestone, ours)
            seen.update(state=state, ours=ours, missing=missing)
            if missing is not None and not missing:
                return [str(f["id"]) for f in ours] or created
            return None

        def write() -> list[str]:
            ours, missing = seen["ours"], seen["missing"]
            for location_items in _allocate(seen["state"], missing):
                fulfillment = {
                    "lineItemsByFulfillmentOrder": location_items,
                    "notifyCustomer": True,
                    **({"trackingInfo": _tracking_input(milestone, numbers)} if numbers else {}),
                }
                payload = self._admin.mutate(
                    "fulfillmentCreate", _FULFILLMENT_CREATE, {"fulfillment": fulfillment}
                )
                created.append(str((payload.get("fulfillment") or {}).get("id")))
            return list(dict.fromkeys([*(str(f["id"]) for f in ours), *created]))

        ids, replayed = self._admin.write_once(done, write)
        return {"fulfillment_id": ids[0] if ids else None, "fulfillment_ids": ids, "replayed": replayed}

    def _fulfilment_state(self, order: Order, *, with_open_orders: bool = True) -> Mapping[str, Any]:
        """The order's fulfillments and (for shipping) its fulfillment orders, as one mapping."""
        state = dict(self._order_node(order, "orderFulfillments", _FULFILLMENTS))
        if with_open_orders:
            open_orders = self._order_node(order, "orderFulfillmentOrders", _FULFILLMENT_ORDERS)
            state["fulfillmentOrders"] = open_orders.get("fulfillmentOrders")
        return state

    def _order_node(self, order: Order, operation: str, document: str) -> Mapping[str, Any]:
        node = self._admin.query(operation, document, {"id": order_gid(order.external_id)}).get("order")
        if not isinstance(node, Mapping):
            raise PublishRejected(f"shopify: no order {order.external_id} in {order.store}")
        return node

    # --- delivered ------------------------------------------------------------------------------

    def _delivered(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        numbers = _tracking_numbers(milestone)

        def target() -> Mapping[str, Any]:
            fulfillments = _live(self._fulfilment_state(order, with_open_orders=False))
            if numbers:
                matching = [f for f in fulfillments if set(numbers) & set(_numbers_of(f))]
            else:
                matching = fulfillments if len(fulfillments) == 1 else []
            if not matching:
                raise PublishRejected(
                    f"shopify: no fulfillment of order {order.external_id} carries tracking "
                    f"{', '.join(numbers) or '(none)'}: publish the shipped milestone first"
                )
            return matching[0]

        def done() -> str | None:
            fulfillment = target()
            return str(fulfillment["id"]) if _delivered_already(fulfillment) else None

        def write() -> str:
            fulfillment_id = str(target()["id"])
            event = {
                "fulfillmentId": fulfillment_id,
                "status": "DELIVERED",
                "happenedAt": _iso(milestone),
            }
            self._admin.mutate("fulfillmentEventCreate", _EVENT_CREATE, {"fulfillmentEvent": event})
            return fulfillment_id

        fulfillment_id, replayed = self._admin.write_once(done, write)
        return {"fulfillment_id": fulfillment_id, "replayed": replayed}

    # --- cancelled ------------------------------------------------------------------------------

    def _cancelled(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        gid = order_gid(order.external_id)
        # The hub gives back through Stripe what it holds; Shopify gives back what its gateway took.
        refund = order.payment.source != "stripe"

        def done() -> str | None:
            cancelled_at = self._status(order).get("cancelledAt")
            return str(cancelled_at) if cancelled_at else None

        def write() -> str:
            variables = {
                "orderId": gid,
                "reason": _cancel_reason(milestone.reason),
                "refundMethod": {"originalPaymentMethodsRefund": refund},
                "restock": True,
                "notifyCustomer": True,
                "staffNote": f"{MARKER_PREFIX}{milestone.publication_id}",
            }
            payload = self._admin.mutate("orderCancel", _ORDER_CANCEL, variables)
            return str((payload.get("job") or {}).get("id") or "")

        answer, replayed = self._admin.write_once(done, write)
        key = "cancelled_at" if replayed else "job_id"
        return {key: answer, "refund": refund, "replayed": replayed}

    def _status(self, order: Order) -> Mapping[str, Any]:
        return self._order_node(order, "orderStatus", _ORDER_STATUS)

    # --- refunded -------------------------------------------------------------------------------

    def _refunded(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        amount = _amount(milestone)
        note = f"{MARKER_PREFIX}{milestone.publication_id}"
        gid = order_gid(order.external_id)
        key = str(uuid.uuid5(uuid.NAMESPACE_URL, f"order-hub/{order.store}/{milestone.publication_id}"))

        def state() -> Mapping[str, Any]:
            return self._order_node(order, "orderRefunds", _REFUND_STATE)

        def done() -> str | None:
            refunds = [r for r in state().get("refunds") or () if isinstance(r, Mapping)]
            return next((str(r["id"]) for r in refunds if r.get("note") == note), None)

        def write() -> str:
            node = state()
            currency = str(node.get("presentmentCurrencyCode") or order.currency)
            if currency != order.currency:
                raise PublishRejected(
                    f"shopify: order {order.external_id} was paid in {currency}, the refund is in "
                    f"{order.currency}; refund it in Shopify's admin"
                )
            transactions = _refund_transactions(gid, node.get("transactions") or (), amount)
            refund_input = {
                "orderId": gid,
                "note": note,
                "notify": True,
                "currency": currency,
                "transactions": transactions,
            }
            document = _REFUND_CREATE % json.dumps(key)
            # The @idempotent key makes sending it again after a lost answer safe.
            payload = self._admin.mutate(
                "refundCreate", document, {"input": refund_input}, replay_unsure=True
            )
            return str((payload.get("refund") or {}).get("id"))

        if order.payment.source == "stripe":
            return {"skipped": "the hub refunded through Stripe: Shopify holds no payment to refund"}
        refund_id, replayed = self._admin.write_once(done, write)
        return {"refund_id": refund_id, "amount": f"{amount:f}", "replayed": replayed}

    # --- paid -----------------------------------------------------------------------------------

    def _paid(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        def done() -> str | None:
            status = str(self._status(order).get("displayFinancialStatus") or "")
            return status if status in _PAID else None

        def write() -> str:
            node = self._status(order)
            if not node.get("canMarkAsPaid"):
                raise PublishRejected(
                    f"shopify: order {order.external_id} is {node.get('displayFinancialStatus')} "
                    "and cannot be marked as paid"
                )
            variables = {"input": {"id": order_gid(order.external_id)}}
            payload = self._admin.mutate("orderMarkAsPaid", _MARK_AS_PAID, variables)
            return str((payload.get("order") or {}).get("displayFinancialStatus") or "PAID")

        status, replayed = self._admin.write_once(done, write)
        return {"financial_status": status, "replayed": replayed}


# --- milestone helpers ---------------------------------------------------------------------------------


@contextmanager
def _translated(milestone: Milestone) -> Iterator[None]:
    """Shopify's errors as the publishing errors the outbox understands, keeping the cause."""
    what = f"shopify {milestone.kind} {milestone.publication_id}"
    try:
        yield
    except ShopifyUnavailable as exc:
        if exc.code == "THROTTLED" or exc.status == 429:
            wait = exc.retry_after if exc.retry_after is not None else _DEFAULT_THROTTLE_WAIT
            raise PublishThrottled(f"{what}: {exc}", retry_after=wait) from exc
        raise PublishUnavailable(f"{what}: {exc}") from exc
    except (ShopifyRejected, ShopifyAuthError, InvalidInput) as exc:
        raise PublishRejected(f"{what}: {exc}") from exc
    except ShopifyError as exc:
        if exc.status is not None and exc.status >= 500:
            raise PublishUnavailable(f"{what}: {exc}") from exc
        raise PublishRejected(f"{what}: {exc}") from exc


def _tracking_numbers(milestone: Milestone) -> list[str]:
    numbers = [str(p.get("tracking_number") or "").strip() for p in milestone.parcels]
    return list(dict.fromkeys(n for n in numbers if n))


def _tracking_input(milestone: Milestone, numbers: Sequence[str]) -> dict[str, Any]:
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


def _live(state: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    fulfillments = [f for f in state.get("fulfillments") or () if isinstance(f, Mapping)]
    return [f for f in fulfillments if f.get("status") not in ("CANCELLED", "ERROR", "FAILURE")]


def _numbers_of(fulfillment: Mapping[str, Any]) -> list[str]:
    return [str(t.get("number")) for t in fulfillment.get("trackingInfo") or () if t.get("number")]


def _lines_of(fulfillment: Mapping[str, Any]) -> dict[str, int]:
    lines: dict[str, int] = {}
    for node in _nodes(fulfillment.get("fulfillmentLineItems")):
        line_id = _legacy(str((node.get("lineItem") or {}).get("id") or ""))
        lines[line_id] = lines.get(line_id, 0) + int(node.get("quantity") or 0)
    return lines


def _fulfillments_carrying(
    state: Mapping[str, Any], numbers: Sequence[str], milestone: Milestone
) -> list[Mapping[str, Any]]:
    """The live fulfillments this shipment already made: same tracking numbers (or, with none, same lines)."""
    live = _live(state)
    if numbers:
        return [f for f in live if set(_numbers_of(f)) == set(numbers)]
    wanted = {str(line["line_id"]): int(line["quantity"]) for line in milestone.lines}
    return [f for f in live if not _numbers_of(f) and _lines_of(f) == wanted]


def _still_to_ship(
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


def _allocate(state: Mapping[str, Any], missing: dict[str, int] | None) -> list[list[dict[str, Any]]]:
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


def _delivered_already(fulfillment: Mapping[str, Any]) -> bool:
    if fulfillment.get("displayStatus") == "DELIVERED":
        return True
    return any(e.get("status") == "DELIVERED" for e in _nodes(fulfillment.get("events")))


def _cancel_reason(reason: str | None) -> str:
    text = (reason or "").lower()
    return next((code for word, code in _CANCEL_REASONS if word in text), "OTHER")


def _amount(milestone: Milestone) -> Decimal:
    try:
        amount = Decimal(str(milestone.amount))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount <= 0:
        raise PublishRejected(f"shopify: refund amount must be positive, not {milestone.amount!r}")
    return amount


def _refund_transactions(order: str, transactions: Sequence[Any], amount: Decimal) -> list[dict[str, Any]]:
    """REFUND transactions taking `amount` from the order's successful sales and captures, oldest first."""
    nodes = [t for t in transactions if isinstance(t, Mapping) and t.get("status") == "SUCCESS"]
    refunded: dict[str, Decimal] = {}
    for node in nodes:
        parent = (node.get("parentTransaction") or {}).get("id")
        if node.get("kind") == "REFUND" and parent:
            refunded[parent] = refunded.get(parent, Decimal(0)) + _money(node)
    left, result = amount, []
    for node in nodes:
        if node.get("kind") not in ("SALE", "CAPTURE") or left <= 0:
            continue
        take = min(left, _money(node) - refunded.get(str(node["id"]), Decimal(0)))
        if take <= 0:
            continue
        result.append(
            {
                "orderId": order,
                "parentId": node["id"],
                "amount": f"{take:f}",
                "gateway": node.get("gateway"),
                "kind": "REFUND",
            }
        )
        left -= take
    if left > 0:
        raise PublishRejected(f"shopify: only {amount - left:f} of {amount:f} is left to refund")
    return result


def _money(transaction: Mapping[str, Any]) -> Decimal:
    money = ((transaction.get("amountSet") or {}).get("presentmentMoney")) or {}
    try:
        return Decimal(str(money.get("amount")))
    except InvalidOperation:
        return Decimal(0)


def _nodes(connection: Any) -> list[Mapping[str, Any]]:
    if not isinstance(connection, Mapping):
        return []
    return [n for n in connection.get("nodes") or () if isinstance(n, Mapping)]


def _legacy(gid: str) -> str:
    return gid.rsplit("/", 1)[-1]


def _iso(milestone: Milestone) -> str:
    return milestone.at.isoformat().replace("+00:00", "Z")
