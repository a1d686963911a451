"""An in-memory PaymentGateway with Stripe's rules for manual-capture PaymentIntents and idempotency keys."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from chalicelib.domain.order import Order
from chalicelib.domain.payment import ChannelCapture
from chalicelib.domain.payment_gateway import (
    CaptureView,
    PaymentConflict,
    PaymentError,
    PaymentIntentView,
    PaymentUnavailable,
    RefundView,
)


class FakeGateway:
    def __init__(self) -> None:
        self.intents: dict[str, PaymentIntentView] = {}
        self.refunds: list[RefundView] = []
        # Every capture, as Stripe's `payment_intent.succeeded` events list them (stamped by `clock`).
        self.captures: list[CaptureView] = []
        self.clock: Callable[[], datetime] = lambda: datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
        self.calls: list[tuple[str, str, int | None, str | None]] = []  # op, intent, amount, key
        self._replies: dict[str, object] = {}
        self.unavailable = 0
        self._lock = threading.Lock()

    def add(self, intent_id: str, amount: int, *, status: str = "requires_capture", currency: str = "eur",
            decline: str | None = None, risk_level: str | None = "normal") -> None:  # fmt: skip
        self.intents[intent_id] = PaymentIntentView(
            id=intent_id,
            status=status,
            amount=amount,
            amount_capturable=amount if status == "requires_capture" else 0,
            amount_received=amount if status == "succeeded" else 0,
            currency=currency,
            capture_method="manual",
            risk_level=risk_level,
            risk_score=20,
            card_fingerprint="fp_1",
            last_error_code="card_declined" if decline else None,
            last_decline_code=decline,
        )

    def _outage(self) -> None:
        if self.unavailable:
            self.unavailable -= 1
            raise PaymentUnavailable("stripe retrieve: 503")

    def retrieve(self, payment_intent_id: str) -> PaymentIntentView:
        self._outage()
        if payment_intent_id not in self.intents:
            raise PaymentError(
                f"No such payment_intent: '{payment_intent_id}'", code="resource_missing", status=404
            )
        return self.intents[payment_intent_id]

    def capture(
        self, payment_intent_id: str, amount_minor: int | None, *, idempotency_key: str
    ) -> PaymentIntentView:
        with self._lock:
            self._outage()
            if idempotency_key in self._replies:
                return self._replies[idempotency_key]  # type: ignore[return-value]
            intent = self.intents[payment_intent_id]
            self.calls.append(("capture", payment_intent_id, amount_minor, idempotency_key))
            if intent.status != "requires_capture":
                raise PaymentConflict(
                    "payment_intent_unexpected_state", code="payment_intent_unexpected_state"
                )
            done = self._captured(intent, amount_minor)
            self._replies[idempotency_key] = done
            return done

    def capture_outside(self, payment_intent_id: str, amount_minor: int | None = None) -> PaymentIntentView:
        """A capture made in the Stripe dashboard, not through the hub."""
        with self._lock:
            return self._captured(self.intents[payment_intent_id], amount_minor)

    def _captured(self, intent: PaymentIntentView, amount_minor: int | None) -> PaymentIntentView:
        amount = intent.amount_capturable if amount_minor is None else amount_minor
        done = replace(intent, status="succeeded", amount_received=amount, amount_capturable=0)
        self.intents[intent.id] = done
        self.captures.append(CaptureView(intent.id, amount, intent.currency, self.clock()))
        return done

    def cancel(self, payment_intent_id: str, *, reason: str, idempotency_key: str) -> PaymentIntentView:
        with self._lock:
            if idempotency_key in self._replies:
                return self._replies[idempotency_key]  # type: ignore[return-value]
            self.calls.append(("cancel", payment_intent_id, None, idempotency_key))
            intent = self.intents[payment_intent_id]
            done = replace(intent, status="canceled", amount_capturable=0, cancellation_reason=reason)
            self.intents[payment_intent_id] = done
            self._replies[idempotency_key] = done
            return done

    def refund(self, payment_intent_id: str, amount_minor: int | None, *, idempotency_key: str,
               reason: str | None = None) -> RefundView:  # fmt: skip
        with self._lock:
            if idempotency_key in self._replies:
                return self._replies[idempotency_key]  # type: ignore[return-value]
            intent = self.intents[payment_intent_id]
            amount = (
                amount_minor if amount_minor is not None else intent.amount_received - intent.amount_refunded
            )
            self.calls.append(("refund", payment_intent_id, amount, idempotency_key))
            self.intents[payment_intent_id] = replace(intent, amount_refunded=intent.amount_refunded + amount)
            refund = RefundView(f"re_{len(self.refunds) + 1}", "succeeded", amount, intent.currency,
                                payment_intent_id, reason)  # fmt: skip
            self.refunds.append(refund)
            self._replies[idempotency_key] = refund
            return refund

    def refunds_since(self, since: object) -> list[RefundView]:
        return list(self.refunds)

    def captures_since(self, since: datetime) -> list[CaptureView]:
        return [c for c in reversed(self.captures) if c.captured_at >= since]


@dataclass
class FakeChannelCapturer:
    captured: list[Decimal]

    def capture(self, order: Order, amount: Decimal) -> ChannelCapture:
        self.captured.append(amount)
        return ChannelCapture(amount=amount, reference=f"gid://shopify/OrderTransaction/{len(self.captured)}")
