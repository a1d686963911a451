"""Stripe API simulator: PaymentIntents, Refunds, idempotency keys, test cards and signed webhook events."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Unpack
from urllib.parse import parse_qsl, unquote

from local.simulators.kit import (
    Delivery,
    FaultQueue,
    Outgoing,
    Post,
    Reply,
    Request,
    WebhookKnobs,
    WebhookSender,
    WebhookSimulatorServer,
    event_sender,
)

log = logging.getLogger("local.stripe")

API_VERSION = "2026-10-28.endive"  # what stripe-python 16.1 pins; events carry it as the account's version
# Sandbox accounts retry an undelivered event three times over a few hours (live mode: up to 3 days).
RETRY_DELAYS_S = (600.0, 3600.0, 3.0 * 3600)
CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation", "requires_action")
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


@dataclass(frozen=True)
class TestCard:
    brand: str
    last4: str
    decline_code: str | None = None  # None: authorised
    message: str = ""
    risk_level: str = "normal"
    risk_score: int = 20
    blocked: bool = False  # Radar, not the issuer, refused it


TEST_CARDS: dict[str, TestCard] = {
    "pm_card_visa": TestCard("visa", "4242"),
    "pm_card_mastercard": TestCard("mastercard", "4444"),
    "pm_card_chargeDeclined": TestCard("visa", "0002", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": TestCard(
        "visa", "9995", "insufficient_funds", "Your card has insufficient funds."
    ),
    # Radar's default thresholds: 65+ is elevated, 75+ highest.
    "pm_card_riskLevelElevated": TestCard("visa", "9235", risk_level="elevated", risk_score=72),
    "pm_card_chargeDeclinedFraudulent": TestCard(
        "visa", "0019", "fraudulent", "Your card was declined.", "highest", 91, blocked=True
    ),
    # Stripe's 4000 0000 0000 0119: the card network failed while processing (retrying may succeed).
    "pm_card_chargeDeclinedProcessingError": TestCard(
        "visa", "0119", "processing_error", "An error occurred while processing your card. Try again."
    ),
}


class StripeError(Exception):
    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.status, self.error = status, error


def _invalid(message: str, *, code: str | None = None, param: str | None = None) -> StripeError:
    error = {"type": "invalid_request_error", "message": message}
    error.update({k: v for k, v in (("code", code), ("param", param)) if v})
    return StripeError(404 if code == "resource_missing" else 400, error)


class StripeSimulator(WebhookSimulatorServer):
    """Plays one Stripe account in test mode for the real `stripe` library (HUB_STRIPE_API_BASE = `url`).

    Any `sk_test_` key is accepted unless `api_key` pins one. With `webhook_url` and `webhook_secret`,
    every state change emits its event, signed as Stripe signs (`Stripe-Signature: t=...,v1=...`), sent
    from a background thread and retried on non-2xx after `RETRY_DELAYS_S` × `time_scale`;
    `duplicate_rate` sends some events twice. `fail_next` and `latency` inject faults; `latency` is
    spent by `sleep` (time.sleep by default) before each request is answered.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        webhook_secret: str | None = None,
        latency: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        **knobs: Unpack[WebhookKnobs],
    ) -> None:
        super().__init__(name="stripe-sim", log=log, methods=("GET", "POST", "DELETE"), **knobs)
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.latency = latency
        self._sleep = sleep
        self._lock = threading.RLock()
        self._intents: dict[str, dict[str, Any]] = {}
        self._charges: dict[str, dict[str, Any]] = {}
        self._refunds: dict[str, dict[str, Any]] = {}
        self._idempotent: dict[
            tuple[str, str], tuple[str, int, bytes]
        ] = {}  # (key, idem) → (fp, status, body)
        self._faults = FaultQueue()
        self._lose_responses: list[str] = []  # path fragments: execute, then drop the connection
        # Requests Stripe executed (not answered from the idempotency cache): method, path, key.
        self.executed: list[tuple[str, str, str | None]] = []
        self.events: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, str | None, int]] = []  # method, path, Idempotency-Key, status
        self._webhooks: WebhookSender[dict[str, Any], Delivery] = self._run(
            event_sender(self._post, self, self._rng, RETRY_DELAYS_S, name="stripe-sim-webhooks")
        )
        self.deliveries: list[Delivery] = self._webhooks.deliveries

    # --- knobs and inspection ----------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next `n` API requests answer `status` (500, 503, 429) unexecuted; 0 drops the connection."""
        self._faults.add(n, status)

    def lose_next_response(self, path_contains: str) -> None:
        """The next request whose path contains `path_contains` is executed, then its answer is lost
        (the connection drops): the client cannot know it worked, as after a network failure."""
        with self._lock:
            self._lose_responses.append(path_contains)

    def executed_requests(self) -> list[tuple[str, str, str | None]]:
        """What Stripe executed so far (method, path, Idempotency-Key): its own ledger, for checks."""
        with self._lock:
            return list(self.executed)

    def executed_count(self, method: str, path_suffix: str) -> int:
        with self._lock:
            return sum(1 for m, p, _ in self.executed if m == method and p.endswith(path_suffix))

    def create_payment_intent(
        self, amount: int, currency: str, payment_method: str, *, capture_method: str = "manual"
    ) -> dict[str, Any]:
        """What a checkout does with the publishable key: create and confirm (declines keep the intent)."""
        request = {"id": _new_id("req"), "idempotency_key": None}
        with self._lock:
            intent = self._create_intent(
                {"amount": amount, "currency": currency, "capture_method": capture_method}, request
            )
            # A decline leaves the intent waiting for another payment method, as on Stripe.
            with contextlib.suppress(StripeError):
                self._confirm(intent, {"payment_method": payment_method}, request)
            return copy.deepcopy(intent)

    def confirm_payment_intent(self, intent_id: str, payment_method: str) -> dict[str, Any]:
        """The customer tries again with another payment method (Stripe.js confirmCardPayment)."""
        request = {"id": _new_id("req"), "idempotency_key": None}
        with self._lock:
            intent = self._intents[intent_id]
            with contextlib.suppress(StripeError):
                self._confirm(intent, {"payment_method": payment_method}, request)
            return copy.deepcopy(intent)

    def payment_intent(self, intent_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._intents[intent_id])

    def charge(self, charge_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._charges[charge_id])

    def refunds_for(self, intent_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._refunds.values() if r["payment_intent"] == intent_id]

    def events_of(self, event_type: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(e) for e in self.events if e["type"] == event_type]

    def flush(self, timeout: float) -> bool:
        """Wait until no webhook is queued or being sent; False when `timeout` passes first."""
        return self._webhooks.flush(timeout)

    # --- HTTP entry --------------------------------------------------------------------------

    def _reply(self, request: Request) -> Reply | None:
        answer = self.handle(request.method, request.path, request.query, request.text(), request.headers)
        if answer is None:
            return None
        status, data, extra = answer
        version = {"Stripe-Version": request.headers.get("stripe-version") or API_VERSION}
        return Reply(status, data, {"Content-Type": "application/json", **version, **extra})

    def handle(
        self, method: str, path: str, query: str, body: str, headers: Mapping[str, str]
    ) -> tuple[int, bytes, dict[str, str]] | None:
        """One API request → (status, JSON body, extra headers); None means drop the connection."""
        if self.latency > 0:
            self._sleep(self.latency)
        idem = headers.get("idempotency-key")
        extra = {"Request-Id": _new_id("req")}
        if idem:
            extra["Idempotency-Key"] = idem
        fault = self._faults.take()
        failure = fault.status if fault is not None else None
        with self._lock:
            lose = next((f for f in self._lose_responses if f in path), None)
            if lose is not None and failure is None:
                self._lose_responses.remove(lose)
        if lose is not None and failure is None:
            self._authorised(method, path, query=query, body=body, headers=headers, idem=idem, extra=extra)
            self._record(method, path, idem, 0)
            return None
        if failure == 0:
            self._record(method, path, idem, 0)
            return None
        if failure is not None:
            status, answer = failure, _injected_error(failure)
        else:
            status, answer, replayed = self._authorised(
                method, path, query=query, body=body, headers=headers, idem=idem, extra=extra
            )
            if replayed is not None:
                self._record(method, path, idem, status)
                return status, replayed, {**extra, "Idempotent-Replayed": "true"}
        self._record(method, path, idem, status)
        return status, json.dumps(answer).encode(), extra

    def _authorised(
        self,
        method: str,
        path: str,
        *,
        query: str,
        body: str,
        headers: Mapping[str, str],
        idem: str | None,
        extra: dict[str, str],
    ) -> tuple[int, dict[str, Any], bytes | None]:
        auth = headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key:
            message = "You did not provide an API key. Provide it in the Authorization header (Bearer auth)."
            return 401, {"error": {"type": "invalid_request_error", "message": message}}, None
        if not key.startswith("sk_test_") or (self.api_key is not None and key != self.api_key):
            shown = f"{key[:8]}{'*' * 4}{key[-4:]}" if len(key) > 12 else "****"
            return 401, _error("invalid_request_error", f"Invalid API Key provided: {shown}"), None
        params = _unflatten(parse_qsl(body if method == "POST" else query, keep_blank_values=True))
        fingerprint = hashlib.sha256(json.dumps([method, path, params], sort_keys=True).encode()).hexdigest()
        with self._lock:
            if method == "POST" and idem:
                saved = self._idempotent.get((key, idem))
                if saved is not None:
                    if saved[0] != fingerprint:
                        message = (
                            "Keys for idempotent requests can only be used with the same parameters they were"
                            f" first used with. Try using a key other than '{idem}' if you meant to execute"
                            " a different request."
                        )
                        return 400, _error("idempotency_error", message), None
                    return saved[1], {}, saved[2]
            self.executed.append((method, path, idem))
            try:
                status, answer = 200, self._route(method, path, params, extra["Request-Id"], idem)
            except StripeError as exc:
                status, answer = exc.status, {"error": exc.error}
            if method == "POST" and idem:
                # Stripe keeps the first result for a key, errors included (it began executing).
                self._idempotent[(key, idem)] = (fingerprint, status, json.dumps(answer).encode())
        return status, answer, None

    def _record(self, method: str, path: str, idem: str | None, status: int) -> None:
        with self._lock:
            self.requests.append((method, path, idem, status))

    def _route(
        self, method: str, path: str, params: dict[str, Any], request_id: str, idem: str | None
    ) -> dict[str, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        request = {"id": request_id, "idempotency_key": idem}
        expand = set(params.get("expand") or [])
        if parts[:2] == ["v1", "payment_intents"]:
            if method == "POST" and len(parts) == 2:
                return self._expanded(self._create_intent(params, request), expand)
            if len(parts) >= 3:
                intent = self._intents.get(parts[2])
                if intent is None:
                    raise _invalid(
                        f"No such payment_intent: '{parts[2]}'", code="resource_missing", param="intent"
                    )
                action = parts[3] if len(parts) == 4 else None
                if method == "GET" and len(parts) == 3:
                    return self._expanded(intent, expand)
                if method == "POST" and action in ("capture", "cancel", "confirm"):
                    getattr(self, f"_{action}")(intent, params, request)
                    return self._expanded(intent, expand)
        if parts[:2] == ["v1", "refunds"]:
            answer = self._route_refunds(method, parts, params, request)
            if answer is not None:
                return answer
        if parts[:2] == ["v1", "events"] and method == "GET" and len(parts) in (2, 3):
            return self._route_events(parts, params)
        if parts[:2] == ["v1", "charges"] and method == "GET" and len(parts) == 3:
            if parts[2] not in self._charges:
                raise _invalid(f"No such charge: '{parts[2]}'", code="resource_missing", param="id")
            return copy.deepcopy(self._charges[parts[2]])
        message = f"Unrecognized request URL ({method}: /{'/'.join(parts)})."
        raise StripeError(404, {"type": "invalid_request_error", "message": message})

    def _expanded(self, intent: dict[str, Any], expand: set[str]) -> dict[str, Any]:
        view = copy.deepcopy(intent)
        if "latest_charge" in expand and view["latest_charge"]:
            view["latest_charge"] = copy.deepcopy(self._charges[view["latest_charge"]])
        return view

    # --- PaymentIntents ----------------------------------------------------------------------

    def _create_intent(self, params: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        amount = _positive_int(params.get("amount"), "amount")
        currency = str(params.get("currency") or "").lower()
        if len(currency) != 3:
            raise _invalid("Missing required param: currency.", code="parameter_missing", param="currency")
        capture_method = params.get("capture_method") or "automatic_async"
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise _invalid(f"Invalid capture_method: {capture_method}", param="capture_method")
        intent_id = _new_id("pi")
        intent: dict[str, Any] = {
            "id": intent_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_received": 0, "currency": currency, "capture_method": capture_method,
            "client_secret": f"{intent_id}_secret_{secrets.token_urlsafe(18)}",
            "confirmation_method": "automatic",
            "created": int(time.time()), "description": params.get("description"), "livemode": False,
            "metadata": dict(params.get("metadata") or {}), "payment_method": None,
            "payment_method_types": ["card"], "status": "requires_payment_method", "latest_charge": None,
            "last_payment_error": None, "cancellation_reason": None, "canceled_at": None,
        }  # fmt: skip
        self._intents[intent_id] = intent
        if params.get("payment_method"):
            intent["payment_method"] = self._card(params["payment_method"])[0]
            intent["status"] = "requires_confirmation"
        if _truthy(params.get("confirm")):
            self._confirm(intent, {}, request)
        return intent

    def _card(self, payment_method: Any) -> tuple[str, TestCard]:
        card = TEST_CARDS.get(str(payment_method))
        if card is None:
            raise _invalid(
                f"No such PaymentMethod: '{payment_method}'", code="resource_missing", param="payment_method"
            )
        return str(payment_method), card

    def _confirm(self, intent: dict[str, Any], params: dict[str, Any], request: dict[str, Any]) -> None:
        if params.get("payment_method"):
            intent["payment_method"] = self._card(params["payment_method"])[0]
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise _unexpected_state(intent, "confirm", ("requires_payment_method", "requires_confirmation"))
        if not intent["payment_method"]:
            raise _invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        pm, card = self._card(intent["payment_method"])
        charge = self._new_charge(intent, pm, card)
        intent["latest_charge"] = charge["id"]
        if card.decline_code is not None:
            error = {
                "type": "card_error", "code": "card_declined", "decline_code": card.decline_code,
                "message": card.message, "charge": charge["id"],
                "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                "payment_method": {"id": pm, "object": "payment_method", "type": "card"},
            }  # fmt: skip
            intent.update(status="requires_payment_method", last_payment_error=error)
            self._emit("payment_intent.payment_failed", intent, request)
            raise StripeError(402, {**error, "payment_intent": copy.deepcopy(intent)})
        intent["last_payment_error"] = None
        if intent["capture_method"] == "manual":
            intent.update(status="requires_capture", amount_capturable=intent["amount"])
            self._emit("payment_intent.amount_capturable_updated", intent, request)
        else:
            intent.update(status="succeeded", amount_received=intent["amount"])
            self._emit("payment_intent.succeeded", intent, request)

    def _new_charge(self, intent: dict[str, Any], pm: str, card: TestCard) -> dict[str, Any]:
        declined = card.decline_code is not None
        captured = not declined and intent["capture_method"] != "manual"
        score = card.risk_score + self._rng.randint(-3, 3)
        outcome = {
            "network_status": "not_sent_to_network" if card.blocked else
                              ("declined_by_network" if declined else "approved_by_network"),
            "reason": "highest_risk_level" if card.blocked else (card.decline_code if declined else None),
            "risk_level": card.risk_level, "risk_score": score,
            "seller_message": "Stripe blocked this payment as too risky." if card.blocked else
                              ("The bank did not return any further details with this decline." if declined
                               else "Payment complete."),
            "type": "blocked" if card.blocked else ("issuer_declined" if declined else "authorized"),
        }  # fmt: skip
        charge: dict[str, Any] = {
            "id": _new_id("ch"), "object": "charge", "amount": intent["amount"],
            "amount_captured": intent["amount"] if captured else 0, "amount_refunded": 0,
            "captured": captured,
            "created": int(time.time()), "currency": intent["currency"], "livemode": False,
            "metadata": dict(intent["metadata"]), "paid": not declined, "payment_intent": intent["id"],
            "payment_method": pm, "refunded": False, "status": "failed" if declined else "succeeded",
            "failure_code": "card_declined" if declined else None,
            "failure_message": card.message if declined else None, "outcome": outcome,
            "payment_method_details": {"type": "card", "card": {
                "brand": card.brand, "last4": card.last4, "exp_month": 12, "exp_year": 2034,
                "funding": "credit",
                "country": "US", "fingerprint": hashlib.sha256(pm.encode()).hexdigest()[:16],
            }},
        }  # fmt: skip
        self._charges[charge["id"]] = charge
        return charge

    def _capture(self, intent: dict[str, Any], params: dict[str, Any], request: dict[str, Any]) -> None:
        if intent["status"] != "requires_capture":
            raise _unexpected_state(intent, "captured", ("requires_capture",))
        amount = intent["amount_capturable"]
        if params.get("amount_to_capture") is not None:
            amount = _positive_int(params["amount_to_capture"], "amount_to_capture")
            if amount > intent["amount_capturable"]:
                raise _invalid(
                    f"The amount to capture ({amount}) is greater than the amount capturable"
                    f" ({intent['amount_capturable']}).",
                    code="amount_too_large",
                    param="amount_to_capture",
                )
        # A partial capture releases the rest of the authorisation: nothing more can be captured.
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self._charges[intent["latest_charge"]].update(captured=True, amount_captured=amount)
        self._emit("payment_intent.succeeded", intent, request)

    def _cancel(self, intent: dict[str, Any], params: dict[str, Any], request: dict[str, Any]) -> None:
        if intent["status"] not in CANCELABLE:
            raise _unexpected_state(intent, "canceled", (*CANCELABLE, "processing"))
        reason = params.get("cancellation_reason")
        if reason is not None and reason not in CANCELLATION_REASONS:
            raise _invalid(f"Invalid cancellation_reason: must be one of {', '.join(CANCELLATION_REASONS)}",
                           param="cancellation_reason")  # fmt: skip
        if intent["status"] == "requires_capture":
            # Voiding the authorisation returns the held amount to the card.
            charge = self._charges[intent["latest_charge"]]
            charge.update(refunded=True, amount_refunded=charge["amount"])
        intent.update(status="canceled", amount_capturable=0, cancellation_reason=reason,
                      canceled_at=int(time.time()))  # fmt: skip
        self._emit("payment_intent.canceled", intent, request)

    # --- Refunds -----------------------------------------------------------------------------

    def _create_refund(self, params: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        charge = self._refundable_charge(params)
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if remaining <= 0:
            raise _invalid(
                f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
            )
        amount = remaining
        if params.get("amount") is not None:
            amount = _positive_int(params["amount"], "amount")
            if amount > remaining:
                raise _invalid(
                    f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
                    code="amount_too_large",
                    param="amount",
                )
        reason = params.get("reason")
        if reason is not None and reason not in REFUND_REASONS:
            raise _invalid(f"Invalid reason: must be one of {', '.join(REFUND_REASONS)}", param="reason")
        refund = {
            "id": _new_id("re"), "object": "refund", "amount": amount, "charge": charge["id"],
            "created": int(time.time()), "currency": charge["currency"],
            "metadata": dict(params.get("metadata") or {}),
            "payment_intent": charge["payment_intent"], "reason": reason, "status": "succeeded",
        }  # fmt: skip
        self._refunds[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        self._emit("charge.refunded", charge, request)
        return refund

    def _route_refunds(
        self, method: str, parts: list[str], params: dict[str, Any], request: dict[str, Any]
    ) -> dict[str, Any] | None:
        if method == "POST" and len(parts) == 2:
            return copy.deepcopy(self._create_refund(params, request))
        if method == "GET" and len(parts) == 2:
            return self._list_refunds(params)
        if method == "GET" and len(parts) == 3:
            if parts[2] not in self._refunds:
                raise _invalid(f"No such refund: '{parts[2]}'", code="resource_missing", param="id")
            return copy.deepcopy(self._refunds[parts[2]])
        return None

    def _list_refunds(self, params: dict[str, Any]) -> dict[str, Any]:
        """GET /v1/refunds: newest first, `created[gte|gt|lte|lt]`, paged."""
        ordered = sorted(self._refunds.values(), key=lambda r: (r["created"], r["id"]), reverse=True)
        return _paged(_created_within(ordered, params), params, "refund", "/v1/refunds")

    def _route_events(self, parts: list[str], params: dict[str, Any]) -> dict[str, Any]:
        if len(parts) == 2:
            return self._list_events(params)
        found = next((e for e in self.events if e["id"] == parts[2]), None)
        if found is None:
            raise _invalid(f"No such event: '{parts[2]}'", code="resource_missing", param="id")
        return copy.deepcopy(found)

    def _list_events(self, params: dict[str, Any]) -> dict[str, Any]:
        """GET /v1/events: newest first, `type` (a trailing `*` is a wildcard) or `types[]` (up to 20),
        `created[gte|gt|lte|lt]`, paged."""
        kind, kinds = params.get("type"), params.get("types")
        if kind is not None and kinds is not None:
            raise _invalid("You may pass either `type` or `types`, but not both.", param="types")
        if kinds is not None and (not isinstance(kinds, list) or not 1 <= len(kinds) <= 20):
            raise _invalid("Invalid array: types must be a list of 1 to 20 event types", param="types")
        newest_first = list(reversed(self.events))  # emitted in order; several share one `created` second
        if kinds is not None:
            newest_first = [e for e in newest_first if e["type"] in kinds]
        elif kind is not None:
            prefix = str(kind)[:-1] if str(kind).endswith("*") else None
            newest_first = [
                e
                for e in newest_first
                if (e["type"].startswith(prefix) if prefix is not None else e["type"] == kind)
            ]
        return _paged(_created_within(newest_first, params), params, "event", "/v1/events")

    def refund_outside(self, intent_id: str, amount: int) -> dict[str, Any]:
        """A refund made in the Stripe dashboard, not by the hub (its webhook goes out as any other)."""
        request = {"id": _new_id("req"), "idempotency_key": None}
        with self._lock:
            return copy.deepcopy(
                self._create_refund({"payment_intent": intent_id, "amount": amount}, request)
            )

    def capture_outside(self, intent_id: str, amount: int | None = None) -> dict[str, Any]:
        """A capture made in the Stripe dashboard, not by the hub (`payment_intent.succeeded` goes out as any
        other event); `amount` captures part of the hold and releases the rest."""
        request = {"id": _new_id("req"), "idempotency_key": None}
        with self._lock:
            intent = self._intents[intent_id]
            self._capture(intent, {"amount_to_capture": amount}, request)
            return copy.deepcopy(intent)

    def _refundable_charge(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("payment_intent"):
            intent = self._intents.get(str(params["payment_intent"]))
            if intent is None:
                raise _invalid(f"No such payment_intent: '{params['payment_intent']}'",
                               code="resource_missing", param="payment_intent")  # fmt: skip
            if intent["status"] != "succeeded":
                raise _invalid(
                    f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                    code="charge_not_refundable",
                )
            return self._charges[intent["latest_charge"]]
        if params.get("charge"):
            charge = self._charges.get(str(params["charge"]))
            if charge is None:
                raise _invalid(
                    f"No such charge: '{params['charge']}'", code="resource_missing", param="charge"
                )
            if not charge["captured"]:
                raise _invalid(f"Charge {charge['id']} has not been captured.", code="charge_not_refundable")
            return charge
        message = "One of the following params should be provided for this request: payment_intent or charge."
        raise _invalid(message, code="parameter_missing")

    # --- webhooks ----------------------------------------------------------------------------

    def _emit(self, event_type: str, resource: dict[str, Any], request: dict[str, Any]) -> None:
        event = {
            "id": _new_id("evt"), "object": "event", "api_version": API_VERSION, "created": int(time.time()),
            "data": {"object": copy.deepcopy(resource)}, "livemode": False,
            "pending_webhooks": 1 if self.webhook_url else 0, "request": dict(request), "type": event_type,
        }  # fmt: skip
        self.events.append(event)
        if self.webhook_url and self.webhook_secret:
            self._webhooks.send(event)

    def _post(self, outgoing: Outgoing[dict[str, Any]]) -> Post:
        assert self.webhook_url is not None and self.webhook_secret is not None
        body = json.dumps(outgoing.event, indent=2).encode()  # Stripe sends pretty-printed JSON
        timestamp = str(int(time.time()))  # each attempt is signed afresh, with its own t
        signature = hmac.new(self.webhook_secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": f"t={timestamp},v1={signature.hexdigest()}",
        }
        return Post(self.webhook_url, body, headers)


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


def _injected_error(status: int) -> dict[str, Any]:
    if status == 429:
        message = (
            "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests."
        )
        return {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": message}}
    return _error("api_error", "Sorry, something went wrong. We've already been notified of the problem.")


def _unexpected_state(intent: dict[str, Any], verb: str, allowed: tuple[str, ...]) -> StripeError:
    error = _invalid(
        f"This PaymentIntent could not be {verb} because it has a status of {intent['status']}. Only a"
        f" PaymentIntent with one of the following statuses may be {verb}: {', '.join(allowed)}.",
        code="payment_intent_unexpected_state",
    )
    error.error["payment_intent"] = copy.deepcopy(intent)
    return error


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(18).replace('-', 'A').replace('_', 'z')}"


def _positive_int(value: Any, name: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise _invalid(f"Invalid integer: {value}", param=name) from None
    if number <= 0:
        raise _invalid(f"This value must be greater than or equal to 1 ({name}).", param=name)
    return number


def _created_within(items: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Stripe's `created` filter: an exact timestamp, or a range of gt, gte, lt, lte."""
    created = params.get("created")
    if created is None:
        return items
    if not isinstance(created, dict):
        created = {"eq": created}
    try:
        bounds = {op: int(str(value)) for op, value in created.items()}
    except ValueError:
        raise _invalid("Invalid timestamp: must be an integer Unix timestamp", param="created") from None
    tests = {
        "eq": lambda c, b: c == b,
        "gt": lambda c, b: c > b,
        "gte": lambda c, b: c >= b,
        "lt": lambda c, b: c < b,
        "lte": lambda c, b: c <= b,
    }
    unknown = set(bounds) - set(tests)
    if unknown:
        raise _invalid(f"Received unknown parameter: created[{sorted(unknown)[0]}]", param="created")
    return [i for i in items if all(tests[op](i["created"], bound) for op, bound in bounds.items())]


def _paged(newest_first: list[dict[str, Any]], params: dict[str, Any], kind: str, url: str) -> dict[str, Any]:
    """One page of a list endpoint: `limit` (1-100, default 10), `starting_after` / `ending_before` (an id on
    the list), `has_more` when more follow in that direction."""
    try:
        limit = int(params.get("limit") or 10)
    except ValueError:
        raise _invalid(f"Invalid integer: {params.get('limit')}", param="limit") from None
    if not 1 <= limit <= 100:
        raise _invalid("Invalid integer: limit must be between 1 and 100", param="limit")
    after, before = params.get("starting_after"), params.get("ending_before")
    ids = [i["id"] for i in newest_first]
    for name, cursor in (("starting_after", after), ("ending_before", before)):
        if cursor and cursor not in ids:
            raise _invalid(f"No such {kind}: '{cursor}'", code="resource_missing", param=name)
    if after:
        rest = newest_first[ids.index(after) + 1 :]
        page, more = rest[:limit], len(rest) > limit
    elif before:
        rest = newest_first[: ids.index(before)]
        page, more = rest[-limit:], len(rest) > limit
    else:
        page, more = newest_first[:limit], len(newest_first) > limit
    return {"object": "list", "data": copy.deepcopy(page), "has_more": more, "url": url}


def _truthy(value: Any) -> bool:
    return str(value).lower() == "true"


def _unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding back into nested values: a[b]=1 → {"a": {"b": "1"}}, a[0]=x → {"a": ["x"]}."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        head, _, rest = raw_key.partition("[")
        keys = [head, *rest[:-1].split("][")] if rest else [head]
        node = root
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1] if keys[-1] else str(len(node))] = value
    listed: dict[str, Any] = _listify(root)
    return listed


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {k: _listify(v) for k, v in value.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items
