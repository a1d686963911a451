"""The lifecycle's fraud stage on the local stack: review waits on a task token until an operator decides."""

from __future__ import annotations

import uuid

from chalicelib.domain.order import derive_order_id
from tests.integration.conftest import has_event, status_is
from tests.orders import manual_body


def high_value_order(external_id: str, stripe=None) -> dict:
    body = manual_body(
        "it-fraud",
        external_id,
        customer={"email": f"{external_id.lower()}@example.com"},
        lines=[{"title": "E-bike", "quantity": 1, "unit_price": "2400.00"}],
    )
    if stripe is not None:
        intent = stripe.create_payment_intent(240000, "eur", "pm_card_visa")
        body["payment"] = {"source": "stripe", "reference": intent["id"]}
    return body


def test_a_reviewed_order_waits_then_goes_on_when_an_operator_approves(stack, stripe):
    external_id = f"FR-{uuid.uuid4().hex[:8]}"
    body = high_value_order(external_id, stripe)
    assert stack.api("POST", "/api/orders", json=body).status_code == 202
    order_id = derive_order_id("manual", "it-fraud", external_id)
    waiting = stack.order_when(order_id, status_is("FRAUD_REVIEW"))
    assert waiting["fraud"]["decision"] == "review" and waiting["fraud"]["score"] >= 40
    stack.order_when(order_id, has_event("review_requested"))
    assert "token" not in str(stack.api("GET", f"/api/orders/{order_id}").json()).lower()
    assert stack.execution(order_id)["status"] == "RUNNING"

    answer = stack.api("POST", f"/api/orders/{order_id}/review", json={"decision": "approve"})
    assert answer.status_code == 200 and answer.json()["workflow_resumed"] is True
    # Nothing to ship: PAID is a moment on the way to COMPLETED, so the capture's entry is waited on.
    paid = stack.order_when(order_id, has_event("payment_captured"))
    history = [h["event"] for h in paid["history"]]
    assert history.index("review_approved") < history.index("payment_captured")
    assert paid["payment"]["amount_captured"] == "2400.00"
    assert stripe.payment_intent(body["payment"]["reference"])["amount_received"] == 240000
    stack.finished(order_id, "SUCCEEDED")
    again = stack.api("POST", f"/api/orders/{order_id}/review", json={"decision": "reject"})
    assert again.status_code == 409


def test_an_operator_rejection_cancels_and_bad_decisions_are_refused(stack, stripe):
    external_id = f"FR-{uuid.uuid4().hex[:8]}"
    body = high_value_order(external_id, stripe)
    stack.api("POST", "/api/orders", json=body)
    order_id = derive_order_id("manual", "it-fraud", external_id)
    stack.order_when(order_id, status_is("FRAUD_REVIEW"))
    stack.order_when(order_id, has_event("review_requested"))
    assert stack.api("POST", f"/api/orders/{order_id}/review", json={"decision": "maybe"}).status_code == 400
    assert stack.api("POST", "/api/orders/ord_nope/review", json={"decision": "approve"}).status_code == 404
    assert stack.api("POST", f"/api/orders/{order_id}/review", json={"decision": "reject"}).status_code == 200
    stack.order_when(order_id, status_is("CANCELLED"))
    stack.finished(order_id, "SUCCEEDED")
    # The reviewer's rejection voids the authorisation, as fraudulent.
    intent = stripe.payment_intent(body["payment"]["reference"])
    assert intent["status"] == "canceled" and intent["cancellation_reason"] == "fraudulent"


def test_cancelling_an_order_waiting_for_review_stops_its_lifecycle(stack):
    """The stop is requested while the execution runs (`lifecycle_stopped`). The emulator only marks an
    execution ABORTED once its worker wakes, which a task-token wait does not do, so that is not polled."""
    external_id = f"FR-{uuid.uuid4().hex[:8]}"
    stack.api("POST", "/api/orders", json=high_value_order(external_id))
    order_id = derive_order_id("manual", "it-fraud", external_id)
    stack.order_when(order_id, status_is("FRAUD_REVIEW"))
    stack.finished(order_id, "RUNNING")
    answer = stack.api(
        "POST", f"/api/orders/{order_id}/cancel", json={"reason": "customer changed their mind"}
    )
    assert answer.status_code == 200
    assert answer.json()["lifecycle_stopped"] is True and answer.json()["already_cancelled"] is False
    cancelled = stack.order_when(order_id, status_is("CANCELLED"))
    assert cancelled["history"][-1]["detail"]["previous_status"] == "FRAUD_REVIEW"
    assert (
        stack.api("POST", f"/api/orders/{order_id}/review", json={"decision": "approve"}).status_code == 409
    )
    again = stack.api("POST", f"/api/orders/{order_id}/cancel")
    assert again.status_code == 200 and again.json()["already_cancelled"] is True
    assert stack.api("POST", "/api/orders/ord_nope/cancel").status_code == 404
