"""The payment service port (Stripe-shaped): views, errors and idempotency keys, free of any SDK."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.upstream import UpstreamError, UpstreamRejected, UpstreamUnavailable

# Stripe refuses idempotency keys longer than 255 characters.
_MAX_KEY_LENGTH = 255


class PaymentError(UpstreamError):
    """Stripe refused or failed a payment call; `code`, `decline_code` and `status` come from Stripe."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        decline_code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.decline_code = decline_code
        self.request_id = request_id


class PaymentDeclined(PaymentError, UpstreamRejected):
    """The card was declined (by the issuer, or blocked by Radar): ask the customer for another method."""


class PaymentConflict(PaymentError, UpstreamRejected):
    """The PaymentIntent is not in a state that allows this (already captured, canceled, refunded...)."""


class PaymentUnavailable(PaymentError, UpstreamUnavailable):
    """Stripe could not be reached, failed, or throttled us after the library's retries: retry later."""


@dataclass(frozen=True)
class PaymentIntentView:
    """What the hub needs of a PaymentIntent; amounts in the currency's minor units."""

    id: str
    status: str
    amount: int
    amount_capturable: int
    amount_received: int
    currency: str
    capture_method: str | None = None
    latest_charge_id: str | None = None
    risk_score: int | None = None
    risk_level: str | None = None
    outcome_type: str | None = None
    card_fingerprint: str | None = None
    cancellation_reason: str | None = None
    last_error_code: str | None = None
    last_decline_code: str | None = None
    # Refunded so far on the latest charge (0 when it was not expanded or has none).
    amount_refunded: int = 0


@dataclass(frozen=True)
class RefundView:
    id: str
    status: str | None
    amount: int
    currency: str
    payment_intent_id: str | None
    reason: str | None


@dataclass(frozen=True)
class CaptureView:
    """Money Stripe captured on a PaymentIntent, and when (its `payment_intent.succeeded` event)."""

    payment_intent_id: str
    amount: int  # amount_received, minor units
    currency: str
    captured_at: datetime
    charge_id: str | None = None


@dataclass(frozen=True)
class RecordedCapture:
    """A capture the hub's payment stage recorded on an order (the hub's side of reconciliation)."""

    payment_intent_id: str
    order_id: str
    amount: Decimal
    currency: str
    recorded_at: datetime


class CaptureLedger(Protocol):
    """The hub's captures by time, so reconciliation can list a window's without reading every order."""

    def record_capture(self, capture: RecordedCapture) -> None:
        """Keep one capture (idempotent for the same PaymentIntent and time)."""
        ...

    def recorded_captures(self, since: datetime) -> list[RecordedCapture]:
        """Every capture recorded at or after `since`, oldest first."""
        ...


def idempotency_key(order_id: str, step: str, attempt: int = 0) -> str:
    """The Idempotency-Key for one payment step of one order: the same step retried reuses it.

    Bump `attempt` only for a deliberately new try (e.g. after a new payment method), never for a retry.
    """
    if not order_id or not step or attempt < 0:
        raise InvalidInput("idempotency_key needs an order id, a step and a non-negative attempt")
    key = f"order-hub:{order_id}:{step}:{attempt}"
    if len(key) <= _MAX_KEY_LENGTH:
        return key
    # Hash instead of truncating, so two long order ids never collide on a common prefix.
    return f"order-hub:{hashlib.sha256(key.encode()).hexdigest()}"


class PaymentGateway(Protocol):
    """One payment account's operations on PaymentIntents (amounts in minor units).

    Every mutating call carries an idempotency key: the same key repeats the first answer.
    """

    def retrieve(self, payment_intent_id: str) -> PaymentIntentView: ...

    def capture(
        self, payment_intent_id: str, amount_minor: int | None, *, idempotency_key: str
    ) -> PaymentIntentView: ...

    def cancel(self, payment_intent_id: str, *, reason: str, idempotency_key: str) -> PaymentIntentView: ...

    def refund(
        self,
        payment_intent_id: str,
        amount_minor: int | None,
        *,
        idempotency_key: str,
        reason: str | None = None,
    ) -> RefundView: ...

    def refunds_since(self, since: datetime) -> list[RefundView]:
        """Every refund created since `since`, whoever made it (reconciliation)."""
        ...

    def captures_since(self, since: datetime) -> list[CaptureView]:
        """Every capture Stripe made since `since`, whoever asked for it (reconciliation)."""
        ...
