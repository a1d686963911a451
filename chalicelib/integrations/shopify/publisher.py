"""Publishes order milestones to Shopify through the Admin GraphQL API (ShopifyPublisher)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
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
from chalicelib.integrations.shopify.fulfillments import (
    EVENT_CREATE,
    FULFILLMENT_CREATE,
    FULFILLMENT_ORDERS_QUERY,
    FULFILLMENTS_QUERY,
    allocate,
    delivered_already,
    fulfillments_carrying,
    live_fulfillments,
    numbers_of,
    still_to_ship,
    tracking_input,
    tracking_numbers,
)
from chalicelib.integrations.shopify.refunds import (
    REFUND_CREATE,
    REFUND_STATE_QUERY,
    refund_amount,
    refund_transactions,
)
from chalicelib.integrations.shopify.return_refunds import ReturnRefunds

logger = Logger(service="order-hub", child=True)

MARKER_PREFIX = "order-hub:"  # refund notes and cancellation staff notes carry "order-hub:<publication_id>"
_PAID = frozenset({"PAID", "PARTIALLY_REFUNDED", "REFUNDED"})
_DEFAULT_THROTTLE_WAIT = 2.0
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
        self._returns = ReturnRefunds(admin, lambda m: f"{MARKER_PREFIX}{m.publication_id}")
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
        numbers = tracking_numbers(milestone)
        created: list[str] = []
        seen: dict[str, Any] = {}  # what the last read found; write_once always reads before writing

        def done() -> list[str] | None:
            state = self._fulfilment_state(order)
            ours = fulfillments_carrying(state, numbers, milestone)
            missing = still_to_ship(order, milestone, ours)
            seen.update(state=state, ours=ours, missing=missing)
            if missing is not None and not missing:
                return [str(f["id"]) for f in ours] or created
            return None

        def write() -> list[str]:
            ours, missing = seen["ours"], seen["missing"]
            for location_items in allocate(seen["state"], missing):
                fulfillment = {
                    "lineItemsByFulfillmentOrder": location_items,
                    "notifyCustomer": True,
                    **({"trackingInfo": tracking_input(milestone, numbers)} if numbers else {}),
                }
                payload = self._admin.mutate(
                    "fulfillmentCreate", FULFILLMENT_CREATE, {"fulfillment": fulfillment}
                )
                created.append(str((payload.get("fulfillment") or {}).get("id")))
            return list(dict.fromkeys([*(str(f["id"]) for f in ours), *created]))

        ids, replayed = self._admin.write_once(done, write)
        return {"fulfillment_id": ids[0] if ids else None, "fulfillment_ids": ids, "replayed": replayed}

    def _fulfilment_state(self, order: Order, *, with_open_orders: bool = True) -> Mapping[str, Any]:
        """The order's fulfillments and (for shipping) its fulfillment orders, as one mapping."""
        state = dict(self._order_node(order, "orderFulfillments", FULFILLMENTS_QUERY))
        if with_open_orders:
            open_orders = self._order_node(order, "orderFulfillmentOrders", FULFILLMENT_ORDERS_QUERY)
            state["fulfillmentOrders"] = open_orders.get("fulfillmentOrders")
        return state

    def _order_node(self, order: Order, operation: str, document: str) -> Mapping[str, Any]:
        node = self._admin.query(operation, document, {"id": order_gid(order.external_id)}).get("order")
        if not isinstance(node, Mapping):
            raise PublishRejected(f"shopify: no order {order.external_id} in {order.store}")
        return node

    # --- delivered ------------------------------------------------------------------------------

    def _delivered(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        numbers = tracking_numbers(milestone)

        def target() -> Mapping[str, Any]:
            fulfillments = live_fulfillments(self._fulfilment_state(order, with_open_orders=False))
            if numbers:
                matching = [f for f in fulfillments if set(numbers) & set(numbers_of(f))]
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
            return str(fulfillment["id"]) if delivered_already(fulfillment) else None

        def write() -> str:
            fulfillment_id = str(target()["id"])
            event = {
                "fulfillmentId": fulfillment_id,
                "status": "DELIVERED",
                "happenedAt": _iso(milestone),
            }
            self._admin.mutate("fulfillmentEventCreate", EVENT_CREATE, {"fulfillmentEvent": event})
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
        if milestone.return_id:
            # A return's refund: the units (and, via the channel, the money) per return_refunds.py.
            return self._returns.publish(order, milestone)
        amount = refund_amount(milestone)
        note = f"{MARKER_PREFIX}{milestone.publication_id}"
        gid = order_gid(order.external_id)
        key = str(uuid.uuid5(uuid.NAMESPACE_URL, f"order-hub/{order.store}/{milestone.publication_id}"))

        def state() -> Mapping[str, Any]:
            return self._order_node(order, "orderRefunds", REFUND_STATE_QUERY)

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
            transactions = refund_transactions(gid, node.get("transactions") or (), amount)
            refund_input = {
                "orderId": gid,
                "note": note,
                "notify": True,
                "currency": currency,
                "transactions": transactions,
            }
            document = REFUND_CREATE % json.dumps(key)
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


def _cancel_reason(reason: str | None) -> str:
    text = (reason or "").lower()
    return next((code for word, code in _CANCEL_REASONS if word in text), "OTHER")


def _iso(milestone: Milestone) -> str:
    return milestone.at.isoformat().replace("+00:00", "Z")
