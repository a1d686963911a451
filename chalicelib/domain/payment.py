"""Use case of the lifecycle's payment stage: take the money where it is.

Recovering a failed payment is in payment_recovery.py, undoing a payment in payment_compensation.py.

Where the money is decides what "paid" means:
- a Stripe PaymentIntent with manual capture (`payment.source` "stripe", `payment.reference` "pi_..."): the
  hub captures what is owed (a partial capture when lines were dropped; Stripe releases the rest);
- already captured by the channel (Amazon, Shopify Payments, a paid WooCommerce order): recorded;
- a channel authorisation (Shopify `authorized`): captured through the channel;
- nothing yet (a declined card, a bank transfer not received): the order waits in PAYMENT_PENDING for a
  new payment method, then the payment is tried again, or the order is cancelled when the wait runs out.

Vouchers and store credit named in `payment.credits` are redeemed first (all or none, once: the ledger's
movements are written with the order's history in one transaction); only the rest is owed to the routes
above. A refused redemption (expired, insufficient, unknown, used) waits in PAYMENT_PENDING like a decline.

Every Stripe call carries an idempotency key derived from the order and the step, so a Task retried after
a crash, a webhook racing the synchronous path, or both, end in one capture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from chalicelib.domain import money
from chalicelib.domain.credit.model import CreditRefused
from chalicelib.domain.credit.redemption import pending_credits, redeem_credits, redeemed
from chalicelib.domain.errors import HubError, InvalidInput, NotFound
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.payment_gateway import (
    CaptureLedger,
    PaymentConflict,
    PaymentError,
    PaymentGateway,
    PaymentIntentView,
    PaymentUnavailable,
    RecordedCapture,
    idempotency_key,
)
from chalicelib.domain.ports import OrderRepository
from chalicelib.domain.status import is_forward

STRIPE = "stripe"
# Statuses from which taking the payment makes sense; past PAID a retried Task only reports "paid".
_PAYABLE = frozenset({OrderStatus.APPROVED, OrderStatus.PAYMENT_PENDING, OrderStatus.ON_HOLD})
# PaymentIntent statuses that need the customer (a new or confirmed payment method).
NEEDS_CUSTOMER = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})


class PaymentRoute(StrEnum):
    STRIPE = "stripe"
    CHANNEL_CAPTURED = "channel_captured"
    CHANNEL_AUTHORIZATION = "channel_authorization"
    NOTHING_OWED = "nothing_owed"
    AWAITING = "awaiting"


class PaymentMismatch(HubError):
    """The payment cannot pay this order (another currency): an operator must look; retrying cannot help."""


class PaymentStillProcessing(PaymentUnavailable):
    """Stripe is still processing the payment: try again shortly (the Task's Retry does)."""


@dataclass(frozen=True)
class PaymentPolicy:
    """The payment_recovery setting (domain/runtime_settings.py)."""

    recovery_seconds: int = 48 * 3600
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.recovery_seconds < 1 or self.max_attempts < 1:
            raise InvalidInput("payment recovery needs at least one second and one attempt")


@dataclass(frozen=True)
class ChannelCapture:
    amount: Decimal
    reference: str


class ChannelCapturer(Protocol):
    """Captures a channel's authorisation through the channel (Shopify's orderCapture); idempotent."""

    def capture(self, order: Order, amount: Decimal) -> ChannelCapture: ...


def stripe_intent(order: Order) -> str | None:
    """The order's Stripe PaymentIntent, when the hub holds the money through Stripe."""
    p = order.payment
    if (p.source or "").lower() == STRIPE and p.reference and p.reference.startswith("pi_"):
        return p.reference
    return None


def owed(order: Order) -> Decimal:
    """What the customer owes for the order as it stands (dropped lines are out of the channel's total),
    less what vouchers and store credit paid."""
    return max(order.totals.total - redeemed(order), Decimal(0))


def route(order: Order) -> PaymentRoute:
    due = owed(order)
    if stripe_intent(order) and not (due == 0 and redeemed(order) > 0):
        # (Credits that paid it all leave an authorisation uncaptured: Stripe releases it after 7 days.)
        return PaymentRoute.STRIPE
    if due == 0:
        return PaymentRoute.NOTHING_OWED
    p = order.payment
    if p.amount_captured >= due:
        return PaymentRoute.CHANNEL_CAPTURED
    if order.channel == "shopify" and p.amount_authorized > p.amount_captured:
        return PaymentRoute.CHANNEL_AUTHORIZATION
    return PaymentRoute.AWAITING


def take_payment(
    order_id: str,
    *,
    orders: OrderRepository,
    gateway: Callable[[], PaymentGateway],
    channel_capturer: Callable[[Order], ChannelCapturer | None],
    policy: PaymentPolicy,
    now: Callable[[], datetime],
    captures: CaptureLedger | None = None,
) -> dict[str, Any]:
    """Take the order's money once; answers `paid`, `pending` (wait for the customer) or `cancel`.

    A Stripe capture is also kept in `captures` (by time), so reconciliation finds the window's."""
    stored = orders.get(order_id)
    if stored is None:
        raise NotFound(f"order {order_id} does not exist")
    order = stored.order
    if order.status == OrderStatus.CANCELLED:
        return {"order_id": order_id, "outcome": "cancelled"}
    if order.status not in _PAYABLE and not is_forward(order.status, OrderStatus.PAID):
        return {"order_id": order_id, "outcome": "paid", "already": True}
    if pending_credits(order):
        try:
            redeem_credits(order_id, orders=orders, now=now)
        except CreditRefused as exc:
            return _pending(
                order_id,
                f"credit refused: {exc}",
                f"credit_{exc.reason.value}",
                orders=orders,
                policy=policy,
                now=now,
            )
        reloaded = orders.get(order_id)
        assert reloaded is not None
        order = reloaded.order
    kind = route(order)
    if kind is PaymentRoute.STRIPE:
        return _take_stripe(
            order, orders=orders, gateway=gateway(), policy=policy, now=now, captures=captures
        )
    if kind in (PaymentRoute.CHANNEL_CAPTURED, PaymentRoute.NOTHING_OWED):
        return _record_paid(
            order_id,
            orders=orders,
            now=now,
            event="payment_recorded",
            via=order.payment.source or order.channel,
            route=kind.value,
            captured=order.payment.amount_captured,
        )
    if kind is PaymentRoute.CHANNEL_AUTHORIZATION:
        capturer = channel_capturer(order)
        if capturer is not None:
            done = capturer.capture(order, owed(order))
            return _record_paid(
                order_id,
                orders=orders,
                now=now,
                event="payment_captured",
                via=order.channel,
                route=kind.value,
                captured=done.amount,
                reference=done.reference,
            )
        return _pending(
            order_id, "no way to capture through the channel", None, orders=orders, policy=policy, now=now
        )
    return _pending(order_id, "not paid at the channel yet", None, orders=orders, policy=policy, now=now)


def _take_stripe(
    order: Order,
    *,
    orders: OrderRepository,
    gateway: PaymentGateway,
    policy: PaymentPolicy,
    now: Callable[[], datetime],
    captures: CaptureLedger | None,
) -> dict[str, Any]:
    intent_id = stripe_intent(order)
    assert intent_id is not None
    orders.link_payment(intent_id, order.order_id)
    try:
        intent = gateway.retrieve(intent_id)
    except PaymentError as exc:
        if exc.code == "resource_missing" and order.payment.amount_captured >= owed(order) > 0:
            # Captured by the channel's own Stripe account (not the hub's): the channel's word is recorded.
            return _record_paid(
                order.order_id,
                orders=orders,
                now=now,
                event="payment_recorded",
                via=order.channel,
                route=PaymentRoute.CHANNEL_CAPTURED.value,
                captured=order.payment.amount_captured,
                note="PaymentIntent not in the hub's Stripe account",
            )
        raise
    if intent.currency.upper() != order.currency:
        raise PaymentMismatch(
            f"PaymentIntent {intent_id} is in {intent.currency.upper()}, the order in {order.currency}"
        )
    if intent.status == "requires_capture":
        intent = _capture(order, intent, gateway)
    if intent.status == "succeeded":
        return _record_stripe(order, intent, orders=orders, now=now, captures=captures)
    if intent.status == "processing":
        raise PaymentStillProcessing(f"PaymentIntent {intent_id} is still processing")
    if intent.status in NEEDS_CUSTOMER:
        reason = "declined" if intent.last_error_code else intent.status
        return _pending(
            order.order_id, reason, intent.last_decline_code, orders=orders, policy=policy, now=now
        )
    # canceled: this intent can never pay; a new one must be attached (POST .../payment/retry).
    return _pending(
        order.order_id, f"payment intent {intent.status}", None, orders=orders, policy=policy, now=now
    )


def _capture(order: Order, intent: PaymentIntentView, gateway: PaymentGateway) -> PaymentIntentView:
    due = money.to_minor(owed(order), order.currency)
    amount = min(due, intent.amount_capturable)
    # One key per order and intent: a retried Task, or a second caller, replays the first capture.
    key = idempotency_key(order.order_id, f"capture:{intent.id}")
    try:
        return gateway.capture(
            intent.id, amount if amount < intent.amount_capturable else None, idempotency_key=key
        )
    except PaymentConflict:
        # Captured meanwhile (another path, the dashboard): what Stripe holds now is the truth.
        return gateway.retrieve(intent.id)


def _record_stripe(
    order: Order,
    intent: PaymentIntentView,
    *,
    orders: OrderRepository,
    now: Callable[[], datetime],
    captures: CaptureLedger | None,
) -> dict[str, Any]:
    captured = money.from_minor(intent.amount_received, order.currency)
    authorised = money.from_minor(intent.amount, order.currency)
    due = owed(order)
    if captures is not None:
        # Before the order's write: a failure here fails the Task, whose retry captures nothing twice
        # (idempotency key) and records again; a second entry for the intent is read as one.
        captures.record_capture(RecordedCapture(intent.id, order.order_id, captured, order.currency, now()))
    return _record_paid(
        order.order_id,
        orders=orders,
        now=now,
        event="payment_captured",
        via=STRIPE,
        route=PaymentRoute.STRIPE.value,
        captured=captured,
        authorised=authorised,
        reference=intent.id,
        released=f"{max(authorised - captured, Decimal(0)):f}",
        short=f"{due - captured:f}" if captured < due else None,
        radar_risk=intent.risk_level,
    )


def _record_paid(
    order_id: str,
    *,
    orders: OrderRepository,
    now: Callable[[], datetime],
    event: str,
    via: str,
    route: str,
    captured: Decimal,
    authorised: Decimal | None = None,
    reference: str | None = None,
    **detail: Any,
) -> dict[str, Any]:
    def change(order: Order) -> dict[str, Any]:
        p = order.payment
        if (
            p.status == "captured"
            and p.amount_captured >= captured
            and any(h.event in ("payment_captured", "payment_recorded") for h in order.history)
        ):
            return {"order_id": order_id, "outcome": "paid", "already": True}
        order.payment = p.model_copy(
            update={
                "status": "captured",
                "amount_captured": max(p.amount_captured, captured),
                "amount_authorized": max(p.amount_authorized, authorised or captured),
                "reference": reference or p.reference,
            }
        )
        if is_forward(order.status, OrderStatus.PAID) or order.status == OrderStatus.ON_HOLD:
            order.status = OrderStatus.PAID
        order.record(
            event,
            now(),
            via=via,
            route=route,
            amount=f"{captured:f}",
            **{k: v for k, v in detail.items() if v is not None},
        )
        return {"order_id": order_id, "outcome": "paid", "amount": f"{captured:f}"}

    result: dict[str, Any] = mutate(orders, order_id, change)
    return result


def _pending(
    order_id: str,
    reason: str,
    decline_code: str | None,
    *,
    orders: OrderRepository,
    policy: PaymentPolicy,
    now: Callable[[], datetime],
) -> dict[str, Any]:
    def change(order: Order) -> dict[str, Any]:
        attempt = 1 + sum(1 for h in order.history if h.event == "payment_failed")
        if attempt > policy.max_attempts:
            return {"order_id": order_id, "outcome": "cancel", "attempt": attempt - 1, "reason": reason}
        if order.status != OrderStatus.CANCELLED:
            order.status = OrderStatus.PAYMENT_PENDING
        order.payment = order.payment.model_copy(update={"status": "pending"})
        order.record(
            "payment_failed",
            now(),
            reason=reason,
            decline_code=decline_code,
            attempt=attempt,
            waits_seconds=policy.recovery_seconds,
        )
        return {
            "order_id": order_id,
            "outcome": "pending",
            "attempt": attempt,
            "reason": reason,
            "recovery_seconds": policy.recovery_seconds,
        }

    result: dict[str, Any] = mutate(orders, order_id, change)
    return result
