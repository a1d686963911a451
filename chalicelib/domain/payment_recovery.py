"""Recovering a failed payment: the order waits for the customer (or an operator) to pay another way."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import ConcurrentUpdate, InvalidInput, NotFound
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.payment import STRIPE, PaymentRoute, route, stripe_intent
from chalicelib.domain.ports import OrderRepository, WorkflowStarter


class PaymentConflictError(ConcurrentUpdate):
    """The order is not waiting for a payment (paid already, cancelled, or never asked)."""


def request_payment_method(
    order_id: str,
    task_token: str,
    *,
    orders: OrderRepository,
    workflow: WorkflowStarter,
    now: Callable[[], datetime],
) -> dict[str, Any]:
    """Park the order until the customer pays another way: keep the waiting task's token beside it.

    The customer's path: a Stripe order is paid again by confirming its PaymentIntent with a new payment
    method (Stripe's webhook resumes the lifecycle); a channel order by paying at the channel (its order
    webhook does); an operator can resume it with POST /api/orders/{id}/payment/retry. A payment that
    arrived between the failed attempt and this task (its webhook found no token yet) resumes it at once.
    """
    orders.set_payment_token(order_id, task_token)

    def change(order: Order) -> dict[str, Any]:
        path = "confirm the PaymentIntent with a new payment method" if stripe_intent(order) else "channel"
        order.record("payment_recovery_requested", now(), customer_path=path)
        return {"order_id": order_id, "status": order.status.value, "customer_path": path}

    result: dict[str, Any] = mutate(orders, order_id, change)
    stored = orders.get(order_id)
    if stored is not None and paid_since_last_attempt(stored.order):
        resumed = resume_payment(order_id, "paid_meanwhile", orders=orders, workflow=workflow, now=now)
        result["resumed"] = resumed
    return result


def paid_since_last_attempt(order: Order) -> bool:
    """True when money arrived after the last failed attempt (a Stripe authorisation, a channel payment)."""
    if route(order) in (PaymentRoute.CHANNEL_CAPTURED, PaymentRoute.NOTHING_OWED):
        return True
    for entry in reversed(order.history):
        if entry.event == "payment_failed":
            return False
        if entry.event in ("payment_authorised_at_stripe", "payment_captured_at_stripe"):
            return True
    return False


def resume_payment(
    order_id: str,
    trigger: str,
    *,
    orders: OrderRepository,
    workflow: WorkflowStarter,
    now: Callable[[], datetime],
    payment_intent: str | None = None,
) -> bool:
    """Wake the payment wait (a new method, a payment at the channel, an operator); False when none waits."""
    token = orders.get_payment_token(order_id)
    if token is None:
        return False
    if payment_intent is not None and not payment_intent.startswith("pi_"):
        raise InvalidInput("payment_intent must be a Stripe PaymentIntent id (pi_...)")

    def change(order: Order) -> None:
        if order.status != OrderStatus.PAYMENT_PENDING:
            raise PaymentConflictError(f"order {order_id} is {order.status.value}, not waiting for payment")
        if payment_intent is not None:
            order.payment = order.payment.model_copy(
                update={"source": STRIPE, "reference": payment_intent, "status": "pending"}
            )
        order.record("payment_retry", now(), trigger=trigger, payment_intent=payment_intent)

    mutate(orders, order_id, change)
    if payment_intent is not None:
        orders.link_payment(payment_intent, order_id)
    orders.set_payment_token(order_id, None)
    return workflow.complete_task(token, {"trigger": trigger})


def retry_payment(
    order_id: str,
    *,
    orders: OrderRepository,
    workflow: WorkflowStarter,
    now: Callable[[], datetime],
    payment_intent: str | None = None,
) -> dict[str, Any]:
    """An operator's retry (optionally with a new PaymentIntent); 409 unless the order waits for payment."""
    stored = orders.get(order_id)
    if stored is None:
        raise NotFound(f"order {order_id} does not exist")
    if stored.order.status != OrderStatus.PAYMENT_PENDING or orders.get_payment_token(order_id) is None:
        raise PaymentConflictError(
            f"order {order_id} is {stored.order.status.value}, not waiting for a payment"
        )
    resumed = resume_payment(
        order_id, "operator", orders=orders, workflow=workflow, now=now, payment_intent=payment_intent
    )
    return {"order_id": order_id, "workflow_resumed": resumed}
