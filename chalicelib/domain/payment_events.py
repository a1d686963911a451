"""Use case: apply one verified Stripe webhook event to the order its PaymentIntent pays, exactly once.

The webhook never captures: capturing belongs to the lifecycle's TakePayment Task alone (with its
idempotency key). An event only records what Stripe says happened, or wakes an order that waits for a
payment, so whether it arrives before, during or after the capture call, the order ends with one capture.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain import money
from chalicelib.domain.errors import DuplicateDelivery
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.payment import stripe_intent
from chalicelib.domain.payment_recovery import resume_payment
from chalicelib.domain.ports import OrderRepository, WorkflowStarter
from chalicelib.domain.status import is_forward

# Events the hub acts on; every other type is acknowledged and counted.
HANDLED = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.amount_capturable_updated",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "charge.refunded",
    }
)


@dataclass(frozen=True)
class EventResult:
    outcome: str  # applied | duplicate | ignored | unmatched | stale
    order_id: str | None = None


def intent_of(event_type: str, resource: dict[str, Any]) -> str | None:
    """The PaymentIntent an event is about (the object itself, or a charge's `payment_intent`)."""
    if event_type.startswith("payment_intent."):
        value = resource.get("id")
    else:
        value = resource.get("payment_intent")
        if isinstance(value, dict):
            value = value.get("id")
    return value if isinstance(value, str) and value.startswith("pi_") else None


# Long on purpose: finding the order, fencing the event and its effect read as one sequence.
def apply_stripe_event(
    event_id: str,
    event_type: str,
    resource: dict[str, Any],
    *,
    orders: OrderRepository,
    workflow: WorkflowStarter,
    now: Callable[[], datetime],
) -> EventResult:
    delivery_id = f"stripe:{event_id}"
    if event_type not in HANDLED:
        return EventResult("ignored")
    intent_id = intent_of(event_type, resource)
    order_id = orders.order_for_payment(intent_id) if intent_id else None
    if order_id is None:
        # Not (yet) one of ours: the lifecycle reads the PaymentIntent itself when it gets there.
        return EventResult("unmatched")
    if orders.has_delivery(delivery_id):
        return EventResult("duplicate", order_id)
    stored = orders.get(order_id)
    if stored is None or stripe_intent(stored.order) != intent_id:
        # An intent the order no longer uses (replaced during recovery): history, not state.
        _mark(orders, delivery_id, order_id)
        return EventResult("stale", order_id)

    resume = False

    def change(order: Order) -> None:
        nonlocal resume
        cur = order.currency
        if event_type == "payment_intent.succeeded":
            received = money.from_minor(int(resource.get("amount_received") or 0), cur)
            if received > order.payment.amount_captured:
                order.payment = order.payment.model_copy(
                    update={"status": "captured", "amount_captured": received}
                )
                order.record("payment_captured_at_stripe", now(), event_id=event_id, amount=f"{received:f}")
            resume = order.status == OrderStatus.PAYMENT_PENDING
        elif event_type == "payment_intent.amount_capturable_updated":
            capturable = money.from_minor(int(resource.get("amount_capturable") or 0), cur)
            order.payment = order.payment.model_copy(
                update={"amount_authorized": max(order.payment.amount_authorized, capturable)}
            )
            order.record("payment_authorised_at_stripe", now(), event_id=event_id, amount=f"{capturable:f}")
            resume = order.status == OrderStatus.PAYMENT_PENDING
        elif event_type == "payment_intent.payment_failed":
            error = resource.get("last_payment_error") or {}
            order.record(
                "payment_declined_at_stripe",
                now(),
                event_id=event_id,
                decline_code=error.get("decline_code") if isinstance(error, dict) else None,
            )
        elif event_type == "payment_intent.canceled":
            order.record(
                "payment_canceled_at_stripe",
                now(),
                event_id=event_id,
                reason=resource.get("cancellation_reason"),
            )
        elif event_type == "charge.refunded":
            refunded = money.from_minor(int(resource.get("amount_refunded") or 0), cur)
            if refunded > order.payment.amount_refunded:
                order.payment = order.payment.model_copy(update={"amount_refunded": refunded})
                order.record("refund_at_stripe", now(), event_id=event_id, amount_refunded=f"{refunded:f}")
                _refund_status(order, refunded)

    mutate(orders, order_id, change)
    _mark(orders, delivery_id, order_id)
    if resume:
        # The order waits in PAYMENT_PENDING: the lifecycle's TakePayment runs again and captures once.
        resume_payment(order_id, f"stripe:{event_type}", orders=orders, workflow=workflow, now=now)
    return EventResult("applied", order_id)


def _refund_status(order: Order, refunded: Decimal) -> None:
    if order.status in (OrderStatus.CANCELLED, OrderStatus.RECEIVED, OrderStatus.APPROVED):
        return  # a cancellation's own refund, or money returned before the order was paid
    target = (
        OrderStatus.REFUNDED if refunded >= order.payment.amount_captured else OrderStatus.PARTIALLY_REFUNDED
    )
    if is_forward(order.status, target):
        order.status = target


def _mark(orders: OrderRepository, delivery_id: str, order_id: str) -> None:
    # A concurrent copy of the event may have got there first; its change is the same.
    with contextlib.suppress(DuplicateDelivery):
        orders.record_delivery(delivery_id, order_id)
