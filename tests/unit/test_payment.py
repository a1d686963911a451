"""The payment stage's use cases against an in-memory Stripe-shaped gateway."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.cancellation import cancel
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import OrderStatus
from chalicelib.domain.payment import (
    PaymentMismatch,
    PaymentPolicy,
    PaymentRoute,
    PaymentStillProcessing,
    route,
    take_payment,
)
from chalicelib.domain.payment_compensation import PaymentCompensator
from chalicelib.domain.payment_events import apply_stripe_event
from chalicelib.domain.payment_gateway import PaymentError
from chalicelib.domain.payment_recovery import PaymentConflictError, request_payment_method, retry_payment
from tests.fakes import RecordingWorkflow
from tests.fakes_payments import FakeChannelCapturer, FakeGateway

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = PaymentPolicy(recovery_seconds=60, max_attempts=2)


def now() -> datetime:
    return NOW


def manual(external_id: str = "P-1", *, payment: dict[str, Any] | None = None, quantity: int = 1):
    body: dict[str, Any] = {
        "external_id": external_id,
        "currency": "EUR",
        "placed_at": "2026-11-23T10:00:00Z",
        "lines": [{"title": "Lamp", "quantity": quantity, "unit_price": "20.00"}],
    }
    if payment is not None:
        body["payment"] = payment
    return normalise_manual(body)


def approved(repo, order) -> str:
    order.status = OrderStatus.APPROVED
    repo.save(order, expected_version=None)
    return order.order_id


def pay(repo, gateway, order_id, capturer=None):
    return take_payment(
        order_id,
        orders=repo,
        gateway=lambda: gateway,
        channel_capturer=lambda o: capturer,
        policy=POLICY,
        now=now,
    )


@pytest.fixture
def gateway():
    return FakeGateway()


def stripe_order(repo, gateway, amount=2000, **kwargs):
    gateway.add("pi_1", amount, **kwargs)
    return approved(repo, manual(payment={"source": "stripe", "reference": "pi_1"}))


def events(repo, order_id):
    return [h.event for h in repo.get(order_id).order.history]


def test_route__by_where_the_money_is():
    assert route(manual(payment={"source": "stripe", "reference": "pi_9"})) is PaymentRoute.STRIPE
    assert (
        route(manual(payment={"source": "cash", "amount_captured": "20.00"})) is PaymentRoute.CHANNEL_CAPTURED
    )
    assert route(manual()) is PaymentRoute.AWAITING
    shopify = manual().model_copy(update={"channel": "shopify"})
    shopify.payment = shopify.payment.model_copy(update={"amount_authorized": Decimal("20.00")})
    assert route(shopify) is PaymentRoute.CHANNEL_AUTHORIZATION


def test_stripe__captures_what_is_owed_once_with_an_order_derived_key(repo, gateway):
    order_id = stripe_order(repo, gateway)
    assert pay(repo, gateway, order_id)["outcome"] == "paid"
    assert pay(repo, gateway, order_id) == {"order_id": order_id, "outcome": "paid", "already": True}
    assert [c[0] for c in gateway.calls] == ["capture"]
    _, _, amount, key = gateway.calls[0]
    assert amount is None and key == f"order-hub:{order_id}:capture:pi_1:0"
    stored = repo.get(order_id).order
    assert stored.status == OrderStatus.PAID and stored.payment.amount_captured == Decimal("20.00")
    assert events(repo, order_id).count("payment_captured") == 1


def test_stripe__partial_capture_when_lines_were_dropped(repo, gateway):
    order_id = stripe_order(repo, gateway, amount=3000)
    pay(repo, gateway, order_id)
    assert gateway.calls[0][2] == 2000  # the order's 20.00 of the 30.00 authorised
    captured = next(h for h in repo.get(order_id).order.history if h.event == "payment_captured")
    assert captured.detail["released"] == "10.00"


def test_stripe__a_capture_that_already_happened_is_recorded_not_repeated(repo, gateway):
    order_id = stripe_order(repo, gateway, status="succeeded")
    assert pay(repo, gateway, order_id)["outcome"] == "paid"
    assert gateway.calls == []
    assert repo.get(order_id).order.status == OrderStatus.PAID


def test_stripe__concurrent_tasks_end_in_one_capture(repo, gateway):
    order_id = stripe_order(repo, gateway)
    results: list[str] = []

    def run():
        results.append(pay(repo, gateway, order_id)["outcome"])

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["paid"] * 4
    assert len([c for c in gateway.calls if c[0] == "capture"]) == 1
    assert events(repo, order_id).count("payment_captured") == 1


def test_stripe__decline_waits_then_attempts_run_out(repo, gateway):
    order_id = stripe_order(repo, gateway, status="requires_payment_method", decline="insufficient_funds")
    first = pay(repo, gateway, order_id)
    assert first == {
        "order_id": order_id,
        "outcome": "pending",
        "attempt": 1,
        "reason": "declined",
        "recovery_seconds": 60,
    }
    assert repo.get(order_id).order.status == OrderStatus.PAYMENT_PENDING
    assert pay(repo, gateway, order_id)["attempt"] == 2
    assert pay(repo, gateway, order_id)["outcome"] == "cancel"


def test_stripe__processing_is_transient_and_another_currency_is_permanent(repo, gateway):
    order_id = stripe_order(repo, gateway, status="processing")
    with pytest.raises(PaymentStillProcessing):
        pay(repo, gateway, order_id)
    gateway.add("pi_usd", 2000, currency="usd")
    other = approved(repo, manual("P-2", payment={"source": "stripe", "reference": "pi_usd"}))
    with pytest.raises(PaymentMismatch, match="USD"):
        pay(repo, gateway, other)


def test_channel_money__recorded_or_captured_through_the_channel(repo, gateway):
    paid = approved(repo, manual(payment={"source": "cash", "amount_captured": "20.00"}))
    assert pay(repo, gateway, paid)["outcome"] == "paid"
    assert "payment_recorded" in events(repo, paid)
    order = manual("P-3").model_copy(update={"channel": "shopify"})
    order.payment = order.payment.model_copy(update={"amount_authorized": Decimal("20.00")})
    shopify = approved(repo, order)
    capturer = FakeChannelCapturer([])
    assert pay(repo, gateway, shopify, capturer)["outcome"] == "paid"
    assert capturer.captured == [Decimal("20.00")]
    assert repo.get(shopify).order.payment.amount_captured == Decimal("20.00")


def test_recovery__a_payment_that_arrived_before_the_wait_resumes_it_at_once(repo, gateway):
    workflow = RecordingWorkflow()
    order_id = stripe_order(repo, gateway, status="requires_payment_method", decline="generic_decline")
    pay(repo, gateway, order_id)
    # The webhook came while no token was kept yet: it records, and cannot resume.
    gateway.add("pi_1", 2000)
    resource = {"id": "pi_1", "amount_capturable": 2000}
    result = apply_stripe_event(
        "evt_1", "payment_intent.amount_capturable_updated", resource, orders=repo, workflow=workflow, now=now
    )
    assert result.outcome == "applied" and workflow.completed == []
    answer = request_payment_method(order_id, "tok-1", orders=repo, workflow=workflow, now=now)
    assert answer["resumed"] is True and workflow.completed == [("tok-1", {"trigger": "paid_meanwhile"})]
    assert repo.get_payment_token(order_id) is None


def test_recovery__operator_retry_with_a_new_intent(repo, gateway):
    workflow = RecordingWorkflow()
    order_id = stripe_order(repo, gateway, status="requires_payment_method", decline="generic_decline")
    pay(repo, gateway, order_id)
    request_payment_method(order_id, "tok-2", orders=repo, workflow=workflow, now=now)
    answer = retry_payment(order_id, orders=repo, workflow=workflow, now=now, payment_intent="pi_new")
    assert answer["workflow_resumed"] is True
    assert repo.get(order_id).order.payment.reference == "pi_new"
    assert repo.order_for_payment("pi_new") == order_id
    with pytest.raises(PaymentConflictError):
        retry_payment(order_id, orders=repo, workflow=workflow, now=now)


def test_stripe_events__duplicates_unknown_intents_and_refunds(repo, gateway):
    workflow = RecordingWorkflow()
    order_id = stripe_order(repo, gateway)
    pay(repo, gateway, order_id)
    kwargs = {"orders": repo, "workflow": workflow, "now": now}
    succeeded = {"id": "pi_1", "amount_received": 2000}
    assert apply_stripe_event("evt_s", "payment_intent.succeeded", succeeded, **kwargs).outcome == "applied"
    assert apply_stripe_event("evt_s", "payment_intent.succeeded", succeeded, **kwargs).outcome == "duplicate"
    assert events(repo, order_id).count("payment_captured_at_stripe") == 0  # the capture was recorded first
    unknown = {"id": "pi_other", "amount_received": 1}
    assert apply_stripe_event("evt_u", "payment_intent.succeeded", unknown, **kwargs).outcome == "unmatched"
    assert apply_stripe_event("evt_x", "customer.created", {"id": "cus_1"}, **kwargs).outcome == "ignored"
    refund = {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 500}
    assert apply_stripe_event("evt_r", "charge.refunded", refund, **kwargs).outcome == "applied"
    order = repo.get(order_id).order
    assert order.payment.amount_refunded == Decimal("5.00") and order.status == OrderStatus.PARTIALLY_REFUNDED


def test_compensator__voids_an_authorisation_and_refunds_a_capture_once(repo, gateway):
    workflow = RecordingWorkflow()
    compensators = (PaymentCompensator(lambda: gateway),)
    held = stripe_order(repo, gateway)
    answer = cancel(held, "changed mind", source="operator", orders=repo, workflow=workflow, now=now,
                    compensators=compensators)  # fmt: skip
    assert answer["compensations"] == [
        {"compensator": "payment", "action": "voided", "payment_intent": "pi_1", "amount": "20.00",
         "stripe_status": "canceled"}
    ]  # fmt: skip
    assert gateway.intents["pi_1"].cancellation_reason == "requested_by_customer"
    assert repo.get(held).order.payment.status == "voided"

    gateway.add("pi_2", 2000)
    paid = approved(repo, manual("P-9", payment={"source": "stripe", "reference": "pi_2"}))
    pay(repo, gateway, paid)
    for _ in range(2):
        cancel(paid, "out of stock", source="operator", orders=repo, workflow=workflow, now=now,
               compensators=compensators)  # fmt: skip
    assert [r.amount for r in gateway.refunds] == [2000]
    order = repo.get(paid).order
    assert order.payment.amount_refunded == Decimal("20.00") and order.payment.status == "refunded"


def test_compensator__fraud_rejection_voids_as_fraudulent_and_channel_money_is_left_to_the_channel(
    repo, gateway
):
    order_id = stripe_order(repo, gateway)
    stored = repo.get(order_id).order
    stored.fraud = stored.fraud.model_copy(update={"decision": "reject"})
    assert PaymentCompensator(lambda: gateway).compensate(stored, "x")["action"] == "voided"
    assert gateway.intents["pi_1"].cancellation_reason == "fraudulent"
    cash = manual("P-5", payment={"source": "cash", "amount_captured": "20.00"})
    assert PaymentCompensator(lambda: gateway).compensate(cash, "x") == {
        "action": "left_to_channel",
        "amount": "20.00",
    }
    assert PaymentCompensator(lambda: gateway).compensate(manual("P-6"), "x") is None


def test_stripe__an_intent_of_another_account_paid_at_the_channel_is_recorded_else_fails(repo, gateway):
    paid = manual(payment={"source": "stripe", "reference": "pi_elsewhere", "amount_captured": "20.00"})
    order_id = approved(repo, paid)
    assert pay(repo, gateway, order_id)["outcome"] == "paid"
    recorded = next(h for h in repo.get(order_id).order.history if h.event == "payment_recorded")
    assert recorded.detail["route"] == "channel_captured"
    unpaid = approved(repo, manual("P-7", payment={"source": "stripe", "reference": "pi_missing"}))
    with pytest.raises(PaymentError, match="No such payment_intent"):
        pay(repo, gateway, unpaid)
