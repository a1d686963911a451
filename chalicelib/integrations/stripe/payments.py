"""Stripe payments via the `stripe` library: PaymentIntent capture, cancel and refunds; errors translated."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.payment_gateway import (
    CaptureView,
    PaymentConflict,
    PaymentDeclined,
    PaymentError,
    PaymentIntentView,
    PaymentUnavailable,
    RefundView,
    idempotency_key,
)

if TYPE_CHECKING:
    import stripe
    from stripe.params import PaymentIntentCaptureParams, RefundCreateParams

logger = Logger(service="order-hub", child=True)

# Error codes that mean "the payment is not in a state that allows this": retrying cannot help,
# the caller must look at the PaymentIntent again.
_CONFLICT_CODES = frozenset(
    {
        "payment_intent_unexpected_state",
        "charge_already_captured",
        "charge_already_refunded",
        "charge_not_refundable",
        "charge_expired_for_capture",
        "amount_too_large",
    }
)
CANCELLATION_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer", "abandoned"})
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


class StripePayments:
    """One Stripe account's payment operations. Build once per key and reuse (the client pools connections).

    `api_base` points the library elsewhere (HUB_STRIPE_API_BASE, e.g. the local simulator). The
    library retries connection errors, 409 and 5xx itself (`max_network_retries`, reusing the
    Idempotency-Key), so every error that reaches the caller is final for this call.
    """

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout: float = 30.0,
    ) -> None:
        if not api_key:
            raise InvalidInput("a Stripe secret key is required")
        import stripe

        self._api_base = api_base.rstrip("/") if api_base else None
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": self._api_base} if self._api_base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    def __repr__(self) -> str:
        # Never let the secret key reach a log line through an accidental %r.
        return f"StripePayments(api_base={self._api_base or 'https://api.stripe.com'!r})"

    def retrieve(self, payment_intent_id: str) -> PaymentIntentView:
        with _translated("retrieve", payment_intent_id):
            intent = self._client.v1.payment_intents.retrieve(
                payment_intent_id, params={"expand": ["latest_charge"]}
            )
        return _intent_view(intent)

    def capture(
        self, payment_intent_id: str, amount_minor: int | None, *, idempotency_key: str
    ) -> PaymentIntentView:
        """Capture `amount_minor` (all that is capturable when None); Stripe releases the rest."""
        if amount_minor is not None and amount_minor <= 0:
            raise InvalidInput(f"capture amount must be positive, not {amount_minor}")
        params: PaymentIntentCaptureParams = {"expand": ["latest_charge"]}
        if amount_minor is not None:
            params["amount_to_capture"] = amount_minor
        with _translated("capture", payment_intent_id):
            intent = self._client.v1.payment_intents.capture(
                payment_intent_id, params=params, options={"idempotency_key": idempotency_key}
            )
        return _intent_view(intent)

    def cancel(self, payment_intent_id: str, *, reason: str, idempotency_key: str) -> PaymentIntentView:
        """Void the authorisation (or abandon an unpaid intent); a captured intent needs `refund` instead."""
        if reason not in CANCELLATION_REASONS:
            raise InvalidInput(f"cancellation reason must be one of {sorted(CANCELLATION_REASONS)}")
        with _translated("cancel", payment_intent_id):
            intent = self._client.v1.payment_intents.cancel(
                payment_intent_id,
                params={"cancellation_reason": reason, "expand": ["latest_charge"]},
                options={"idempotency_key": idempotency_key},
            )
        return _intent_view(intent)

    def refunds_since(self, since: datetime) -> list[RefundView]:
        """Every refund created since `since` (newest first, all pages): for reconciliation."""
        found: list[RefundView] = []
        with _translated("list_refunds", "-"):
            page = self._client.v1.refunds.list(
                params={"created": {"gte": int(since.timestamp())}, "limit": 100}
            )
            for refund in page.auto_paging_iter():
                found.append(_refund_view(refund))
        return found

    def captures_since(self, since: datetime) -> list[CaptureView]:
        """Every capture since `since` (newest first, all pages), from its `payment_intent.succeeded` event.

        An event is created when the money is captured; a Charge's `created` is its authorisation, so listing
        charges by `created` misses a hold captured later (the hub's own manual captures). Stripe lists
        events of the last 30 days only."""
        found: list[CaptureView] = []
        with _translated("list_events", "-"):
            page = self._client.v1.events.list(
                params={
                    "types": ["payment_intent.succeeded"],
                    "created": {"gte": int(since.timestamp())},
                    "limit": 100,
                }
            )
            for event in page.auto_paging_iter():
                # The PaymentIntent as it was when the money was captured (a snapshot, not expandable).
                snapshot = _field(_field(event, "data"), "object")
                intent = snapshot.to_dict() if hasattr(snapshot, "to_dict") else dict(snapshot or {})
                created = _number(event, "created")
                if not intent.get("id") or created is None:
                    continue  # not a capture the hub can name: reconciliation reads the intents too
                found.append(
                    CaptureView(
                        payment_intent_id=str(intent["id"]),
                        amount=int(intent.get("amount_received") or 0),
                        currency=str(intent.get("currency") or ""),
                        captured_at=datetime.fromtimestamp(created, UTC),
                        charge_id=_id_of(intent.get("latest_charge")),
                    )
                )
        return found

    def refund(
        self,
        payment_intent_id: str,
        amount_minor: int | None,
        *,
        idempotency_key: str,
        reason: str | None = None,
    ) -> RefundView:
        """Refund `amount_minor` of the captured amount (everything still unrefunded when None)."""
        if amount_minor is not None and amount_minor <= 0:
            raise InvalidInput(f"refund amount must be positive, not {amount_minor}")
        if reason is not None and reason not in REFUND_REASONS:
            raise InvalidInput(f"refund reason must be one of {sorted(REFUND_REASONS)}")
        params: RefundCreateParams = {"payment_intent": payment_intent_id}
        if amount_minor is not None:
            params["amount"] = amount_minor
        if reason is not None:
            params["reason"] = reason
        with _translated("refund", payment_intent_id):
            refund = self._client.v1.refunds.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        return _refund_view(refund)


def _refund_view(refund: Any) -> RefundView:
    return RefundView(
        id=str(_field(refund, "id") or ""),
        status=_text(refund, "status"),
        amount=_whole(refund, "amount"),
        currency=str(_field(refund, "currency") or ""),
        payment_intent_id=_id_of(_field(refund, "payment_intent")),
        reason=_text(refund, "reason"),
    )


def _intent_view(intent: stripe.PaymentIntent) -> PaymentIntentView:
    charge = _field(intent, "latest_charge")
    expanded = None if charge is None or isinstance(charge, str) else charge
    outcome = _field(expanded, "outcome")
    card = _field(_field(expanded, "payment_method_details"), "card")
    error = _field(intent, "last_payment_error")
    return PaymentIntentView(
        id=str(_field(intent, "id") or ""),
        status=str(_field(intent, "status") or ""),
        amount=_whole(intent, "amount"),
        amount_capturable=_whole(intent, "amount_capturable"),
        amount_received=_whole(intent, "amount_received"),
        currency=str(_field(intent, "currency") or ""),
        capture_method=_text(intent, "capture_method"),
        latest_charge_id=_id_of(charge),
        risk_score=_number(outcome, "risk_score"),
        risk_level=_text(outcome, "risk_level"),
        outcome_type=_text(outcome, "type"),
        card_fingerprint=_text(card, "fingerprint"),
        cancellation_reason=_text(intent, "cancellation_reason"),
        last_error_code=_text(error, "code"),
        last_decline_code=_text(error, "decline_code"),
        amount_refunded=_whole(expanded, "amount_refunded"),
    )


def _field(obj: Any, name: str) -> Any:
    """An optional field of a Stripe object (or a plain dict); None when absent, never AttributeError.

    The API omits fields by version, by expansion and by state; a StripeObject raises on a missing one."""
    if obj is None or isinstance(obj, str):
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _text(obj: Any, name: str) -> str | None:
    value = _field(obj, name)
    return value if isinstance(value, str) else None


def _number(obj: Any, name: str) -> int | None:
    value = _field(obj, name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _whole(obj: Any, name: str) -> int:
    """An amount in minor units; 0 when absent."""
    return _number(obj, name) or 0


def _id_of(value: Any) -> str | None:
    """The id of an expandable field, whether Stripe sent the id or the expanded object."""
    if value is None or isinstance(value, str):
        return value
    return _text(value, "id")


@contextmanager
def _translated(operation: str, payment_intent_id: str) -> Iterator[None]:
    import stripe

    try:
        yield
    except stripe.StripeError as exc:
        error = _payment_error(operation, exc)
        # Only Stripe's classification goes to the log: never the key, the body or card details.
        logger.warning(
            "stripe call failed",
            extra={
                "operation": operation,
                "payment_intent": payment_intent_id,
                "error_class": type(error).__name__,
                "stripe_code": error.code,
                "decline_code": error.decline_code,
                "http_status": error.status,
                "request_id": error.request_id,
            },
        )
        raise error from exc


def _payment_error(operation: str, exc: stripe.StripeError) -> PaymentError:
    import stripe

    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    details = body.get("error")
    if not isinstance(details, dict):
        details = {}
    code = exc.code or details.get("code")
    decline_code = details.get("decline_code")
    status = exc.http_status
    message = f"stripe {operation}: {exc.user_message or type(exc).__name__}"
    kind: Callable[..., PaymentError] = PaymentError
    if isinstance(exc, stripe.CardError):
        kind = PaymentDeclined
    elif isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError | stripe.APIError):
        kind = PaymentUnavailable
    elif isinstance(exc, stripe.IdempotencyError):
        # The key was first used with other parameters: the step it names already did something else.
        kind, code = PaymentConflict, code or "idempotency_error"
    elif code in _CONFLICT_CODES:
        kind = PaymentConflict
    elif status is not None and (status >= 500 or status == 409):
        kind = PaymentUnavailable
    return kind(
        message,
        code=code if isinstance(code, str) else None,
        decline_code=decline_code if isinstance(decline_code, str) else None,
        status=status,
        request_id=exc.request_id,
    )


__all__ = [
    "PaymentConflict",
    "PaymentDeclined",
    "PaymentError",
    "PaymentIntentView",
    "PaymentUnavailable",
    "RefundView",
    "StripePayments",
    "idempotency_key",
]
