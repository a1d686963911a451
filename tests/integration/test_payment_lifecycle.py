"""The payment stage on the local stack: Stripe (simulated, driven through the real `stripe` library),
sales recovery, cancellation with compensation, the Stripe webhook racing the capture, Task failures."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from chalicelib import resources
from chalicelib.domain.order import derive_order_id
from tests.integration.conftest import (
    PAYMENT_RECOVERY_SECONDS,
    WAIT_SECONDS,
    events,
    has_event,
    status_is,
)
from tests.orders import manual_body

STORE = "it-payments"


def order_body(
    external_id: str, intent_id: str | None, *, quantity: int = 1, **overrides: Any
) -> dict[str, Any]:
    body: dict[str, Any] = manual_body(
        STORE,
        external_id,
        customer={"email": f"{external_id.lower()}@example.com", "name": "Buyer"},
        lines=[
            {"line_id": "1", "sku": "MUG", "title": "Mug", "quantity": quantity, "unit_price": "12.50"},
            {"line_id": "2", "sku": "CAP", "title": "Cap", "quantity": 1, "unit_price": "7.50"},
        ],
        totals={"shipping": "0.00"},
    )
    if intent_id is not None:
        body["payment"] = {"source": "stripe", "reference": intent_id}
    body.update(overrides)
    return body


def place(stack, stripe, card: str, *, amount: int = 2000, **kwargs: Any) -> tuple[str, str]:
    """A checkout: the customer's card authorised (or declined) on a manual-capture PaymentIntent,
    then the order handed to the hub. Returns (order id, PaymentIntent id)."""
    intent = stripe.create_payment_intent(amount, "eur", card)
    external_id = f"PAY-{uuid.uuid4().hex[:8]}"
    posted = stack.api("POST", "/api/orders", json=order_body(external_id, intent["id"], **kwargs))
    assert posted.status_code == 202, posted.text
    return derive_order_id("manual", STORE, external_id), intent["id"]


def order_when(stack, order_id: str, predicate, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
    return stack.order_when(order_id, predicate, timeout=timeout)


def execution(stack, order_id: str) -> dict[str, Any]:
    return stack.execution(order_id)


def finished(stack, order_id: str, status: str) -> None:
    stack.finished(order_id, status)


def captures(stripe, intent_id: str) -> int:
    return stripe.executed_count("POST", f"/v1/payment_intents/{intent_id}/capture")


def test_an_approved_order_is_captured_once_and_paid(stack, stripe):
    order_id, intent_id = place(stack, stripe, "pm_card_visa")
    # Nothing to ship: PAID is a moment on the way to COMPLETED, so the end is waited on (the capture is
    # in the history and the payment part).
    paid = order_when(stack, order_id, has_event("completed"))
    assert paid["status"] == "COMPLETED"
    assert paid["fraud"]["decision"] == "approve"
    assert paid["payment"]["amount_captured"] == "20.00"
    assert paid["payment"]["status"] == "captured"
    assert events(paid).count("payment_captured") == 1
    finished(stack, order_id, "SUCCEEDED")
    intent = stripe.payment_intent(intent_id)
    assert intent["status"] == "succeeded" and intent["amount_received"] == 2000
    assert captures(stripe, intent_id) == 1


def test_dropped_lines_are_captured_partially_and_the_rest_released(stack, stripe):
    # Authorised for 2 mugs + 1 cap (32.50); the order as it stands is 1 mug + 1 cap (20.00).
    order_id, intent_id = place(stack, stripe, "pm_card_visa", amount=3250)
    paid = order_when(stack, order_id, has_event("payment_captured"))
    captured = next(h for h in paid["history"] if h["event"] == "payment_captured")
    assert captured["detail"]["amount"] == "20.00" and captured["detail"]["released"] == "12.50"
    intent = stripe.payment_intent(intent_id)
    assert intent["amount_received"] == 2000 and intent["amount_capturable"] == 0


def test_radar_highest_risk_is_rejected_and_the_intent_cancelled(stack, stripe):
    order_id, intent_id = place(stack, stripe, "pm_card_chargeDeclinedFraudulent")
    cancelled = order_when(stack, order_id, lambda o: "compensated" in events(o))
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["fraud"]["decision"] == "reject"
    assert any("Radar" in reason for reason in cancelled["fraud"]["reasons"])
    finished(stack, order_id, "SUCCEEDED")
    intent = stripe.payment_intent(intent_id)
    assert intent["status"] == "canceled" and intent["cancellation_reason"] == "fraudulent"
    assert captures(stripe, intent_id) == 0


def test_a_declined_card_waits_for_a_new_method_then_is_paid(stack, stripe):
    order_id, intent_id = place(stack, stripe, "pm_card_chargeDeclined")
    pending = order_when(stack, order_id, lambda o: "payment_recovery_requested" in events(o))
    assert pending["status"] == "PAYMENT_PENDING"
    failed = next(h for h in pending["history"] if h["event"] == "payment_failed")
    assert failed["detail"]["decline_code"] == "generic_decline" and failed["detail"]["attempt"] == 1
    assert execution(stack, order_id)["status"] == "RUNNING"

    # The customer comes back with another card: Stripe's webhook wakes the order, the hub captures.
    stripe.confirm_payment_intent(intent_id, "pm_card_visa")
    paid = order_when(stack, order_id, has_event("payment_captured"))
    assert paid["payment"]["amount_captured"] == "20.00"
    assert "payment_retry" in events(paid)
    finished(stack, order_id, "SUCCEEDED")
    assert captures(stripe, intent_id) == 1


def test_a_declined_card_never_replaced_is_cancelled_when_the_wait_runs_out(stack, stripe):
    order_id, intent_id = place(stack, stripe, "pm_card_chargeDeclinedInsufficientFunds")
    assert order_when(stack, order_id, has_event("payment_recovery_requested"))
    cancelled = order_when(
        stack, order_id, has_event("compensated"), timeout=PAYMENT_RECOVERY_SECONDS + WAIT_SECONDS
    )
    assert cancelled["status"] == "CANCELLED"
    reason = next(h for h in cancelled["history"] if h["event"] == "cancelled")["detail"]
    assert reason["source"] == "payment_timeout"
    intent = stripe.payment_intent(intent_id)
    assert intent["status"] == "canceled" and intent["cancellation_reason"] == "abandoned"
    finished(stack, order_id, "SUCCEEDED")


def test_an_operator_can_retry_with_a_new_payment_intent(stack, stripe):
    order_id, _ = place(stack, stripe, "pm_card_chargeDeclined")
    order_when(stack, order_id, lambda o: "payment_recovery_requested" in events(o))
    replacement = stripe.create_payment_intent(2000, "eur", "pm_card_mastercard")
    answer = stack.api(
        "POST", f"/api/orders/{order_id}/payment/retry", json={"payment_intent": replacement["id"]}
    )
    assert answer.status_code == 200 and answer.json()["workflow_resumed"] is True
    paid = order_when(stack, order_id, has_event("payment_captured"))
    assert paid["payment"]["reference"] == replacement["id"]
    assert captures(stripe, replacement["id"]) == 1
    again = stack.api("POST", f"/api/orders/{order_id}/payment/retry", json={})
    assert again.status_code == 409


def test_cancelling_before_payment_voids_the_authorisation(stack, stripe):
    # High value: the order waits in the fraud review, authorised but not captured.
    order_id, intent_id = place(stack, stripe, "pm_card_visa", amount=250750, quantity=200)
    order_when(stack, order_id, lambda o: "review_requested" in events(o))
    answer = stack.api("POST", f"/api/orders/{order_id}/cancel", json={"reason": "customer changed mind"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["compensations"][0]["action"] == "voided"
    assert body["compensations"][0]["amount"] == "2507.50"
    intent = stripe.payment_intent(intent_id)
    assert intent["status"] == "canceled" and intent["cancellation_reason"] == "requested_by_customer"
    assert stripe.refunds_for(intent_id) == []
    order = stack.api("GET", f"/api/orders/{order_id}").json()
    assert order["status"] == "CANCELLED" and order["payment"]["status"] == "voided"
    # Idempotent: cancelling again undoes nothing more.
    again = stack.api("POST", f"/api/orders/{order_id}/cancel", json={})
    assert again.status_code == 200 and again.json()["already_cancelled"] is True
    assert again.json()["compensations"] == []


def test_cancelling_after_capture_refunds_what_was_captured(stack, stripe, threepl):
    # Paid and at the warehouse, which holds it: the order cannot ship (or complete) before it is cancelled.
    address = {
        "name": "Ada Buyer",
        "line1": "1 Harbour St",
        "city": "Boston",
        "region": "MA",
        "postal_code": "02110",
    }
    external_id = f"PAY-{uuid.uuid4().hex[:8]}"
    order_id = derive_order_id("manual", STORE, external_id)
    threepl.hold_order(order_id)
    intent = stripe.create_payment_intent(3250, "eur", "pm_card_visa")
    body = order_body(external_id, intent["id"], shipping_address={**address, "country": "US"})
    assert stack.api("POST", "/api/orders", json=body).status_code == 202
    intent_id = intent["id"]
    held = order_when(stack, order_id, has_event("fulfilment_requested"))
    assert "payment_captured" in events(held)
    answer = stack.api("POST", f"/api/orders/{order_id}/cancel", json={"reason": "out of stock"})
    assert answer.status_code == 200, answer.text
    by_name = {c["compensator"]: c for c in answer.json()["compensations"]}
    assert by_name["payment"]["action"] == "refunded"
    refunds = stripe.refunds_for(intent_id)
    assert [r["amount"] for r in refunds] == [2000]  # what was captured, not what was authorised
    order = stack.api("GET", f"/api/orders/{order_id}").json()
    assert order["payment"]["amount_refunded"] == "20.00" and order["status"] == "CANCELLED"
    again = stack.api("POST", f"/api/orders/{order_id}/cancel", json={})
    assert again.status_code == 200 and len(stripe.refunds_for(intent_id)) == 1


def test_the_stripe_webhook_racing_the_capture_ends_in_one_capture(stack, stripe):
    # The capture executes at Stripe but its answer is lost: the library retries with the same
    # idempotency key while payment_intent.succeeded is already on its way to the hub.
    stripe.lose_next_response("/capture")
    stripe.duplicate_rate = 1.0  # and every event arrives twice
    try:
        order_id, intent_id = place(stack, stripe, "pm_card_visa")
        paid = order_when(stack, order_id, has_event("payment_captured"))
        assert stripe.flush(timeout=WAIT_SECONDS)
    finally:
        stripe.duplicate_rate = 0.0
    assert captures(stripe, intent_id) == 1
    sent = [e for e in stripe.events_of("payment_intent.succeeded") if e["data"]["object"]["id"] == intent_id]
    assert len(sent) == 1
    # The hub has accepted every copy (flush): once the ingest queue is empty, each has been applied.
    stack.drained(resources.INGEST_QUEUE.name)
    order = stack.api("GET", f"/api/orders/{order_id}").json()
    assert events(order).count("payment_captured") == 1
    assert order["payment"]["amount_captured"] == "20.00" == paid["payment"]["amount_captured"]


def test_a_transient_stripe_outage_is_retried_by_the_task(stack, stripe):
    # Three answers each outlast the library's own retries (two): the fraud check goes on without Radar's
    # signal, TakePayment fails and Step Functions retries it after a backoff.
    stripe.fail_next(6, 503)
    order_id, intent_id = place(stack, stripe, "pm_card_visa")
    paid = order_when(stack, order_id, has_event("payment_captured"))
    assert paid["payment"]["amount_captured"] == "20.00"
    history = stack.client("stepfunctions").get_execution_history(
        executionArn=execution(stack, order_id)["arn"], maxResults=1000
    )["events"]
    failures = [e for e in history if e["type"] in ("TaskFailed", "LambdaFunctionFailed")]
    assert failures, "the Task should have failed once before succeeding"
    assert captures(stripe, intent_id) == 1


def test_a_permanent_failure_is_visible_to_operators(stack, stripe):
    intent = stripe.create_payment_intent(2000, "usd", "pm_card_visa")  # the order is in EUR
    external_id = f"PAY-{uuid.uuid4().hex[:8]}"
    stack.api("POST", "/api/orders", json=order_body(external_id, intent["id"]))
    order_id = derive_order_id("manual", STORE, external_id)
    failed = order_when(stack, order_id, status_is("FAILED"))
    entry = next(h for h in failed["history"] if h["event"] == "failed")
    assert entry["detail"]["error"] == "PaymentMismatch"
    assert "USD" in entry["detail"]["cause"]
    finished(stack, order_id, "FAILED")
    listed = stack.api("GET", "/api/orders", params={"status": "FAILED", "limit": 100}).json()
    assert order_id in [o["order_id"] for o in listed["orders"]]
    assert captures(stripe, intent["id"]) == 0


@pytest.mark.parametrize("bad", ["t=1,v1=deadbeef", None])
def test_stripe_webhooks_with_bad_signatures_are_refused(stack, bad):
    import requests

    headers = {"Content-Type": "application/json"}
    if bad:
        headers["Stripe-Signature"] = bad
    answer = requests.post(
        f"{stack.hub_url}/webhooks/stripe", data=b'{"id": "evt_1"}', headers=headers, timeout=5
    )
    assert answer.status_code == 401
