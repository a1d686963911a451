"""Undoing a cancelled order's payment: void an authorisation, refund a capture, exactly once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.domain import money
from chalicelib.domain.order import Order
from chalicelib.domain.payment import NEEDS_CUSTOMER, PaymentStillProcessing, stripe_intent
from chalicelib.domain.payment_gateway import PaymentGateway, idempotency_key


class PaymentCompensator:
    """Undoes the payment of a cancelled order: voids an authorisation, refunds a capture, exactly once.

    Money the channel holds (Amazon, Shopify Payments, a paid WooCommerce order) is the channel's to
    give back when it is told of the cancellation (publishing); this compensator leaves it and says so.
    """

    name = "payment"

    def __init__(self, gateway: Callable[[], PaymentGateway]) -> None:
        self._gateway = gateway

    def compensate(self, order: Order, reason: str) -> dict[str, Any] | None:
        intent_id = stripe_intent(order)
        if intent_id is None:
            p = order.payment
            if p.amount_captured > 0 or p.amount_authorized > 0:
                held = max(p.amount_captured, p.amount_authorized)
                return {"action": "left_to_channel", "amount": f"{held:f}"}
            return None
        gateway = self._gateway()
        intent = gateway.retrieve(intent_id)
        if intent.status in ("requires_capture", *NEEDS_CUSTOMER):
            voided = gateway.cancel(
                intent_id,
                reason=_stripe_reason(order),
                idempotency_key=idempotency_key(order.order_id, f"void:{intent_id}"),
            )
            held = money.from_minor(intent.amount_capturable, order.currency)
            return {
                "action": "voided",
                "payment_intent": intent_id,
                "amount": f"{held:f}",
                "payment": {"status": "voided"},
                "stripe_status": voided.status,
            }
        if intent.status == "succeeded":
            remaining = intent.amount_received - intent.amount_refunded
            if remaining <= 0:
                return None
            refund = gateway.refund(
                intent_id,
                remaining,
                idempotency_key=idempotency_key(order.order_id, f"refund-cancel:{intent_id}"),
                reason="fraudulent" if _stripe_reason(order) == "fraudulent" else "requested_by_customer",
            )
            refunded = money.from_minor(intent.amount_refunded + refund.amount, order.currency)
            return {
                "action": "refunded",
                "payment_intent": intent_id,
                "refund": refund.id,
                "amount": f"{money.from_minor(refund.amount, order.currency):f}",
                "payment": {"status": "refunded", "amount_refunded": refunded},
            }
        if intent.status == "processing":
            raise PaymentStillProcessing(f"PaymentIntent {intent_id} is processing: cancel again shortly")
        return None  # canceled already: nothing left to undo


def _stripe_reason(order: Order) -> str:
    if order.fraud.decision == "reject":
        return "fraudulent"
    for entry in reversed(order.history):
        if entry.event == "cancelled":
            source = str(entry.detail.get("source", ""))
            if source in ("fraud", "review"):
                return "fraudulent"
            if source.startswith("payment"):
                return "abandoned"
            break
    return "requested_by_customer"
