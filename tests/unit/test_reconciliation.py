"""Reconciliation against in-memory ports: missing orders restored once, drift applied, watermark kept;
Stripe's refunds and captures against the hub's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from chalicelib.domain.errors import HubError
from chalicelib.domain.reconciliation import (
    FIRST_LOOKBACK,
    OVERLAP,
    ChannelOrder,
    reconcile_store,
)
from tests.fakes import InMemoryOrderRepository, RecordingWorkflow
from tests.fakes_reconciliation import InMemoryReconciliationStore as Runs

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def manual(external_id: str, updated: str) -> ChannelOrder:
    payload = {
        "external_id": external_id,
        "currency": "EUR",
        "placed_at": "2026-11-23T10:00:00Z",
        "updated_at": updated,
        "lines": [{"title": "Mug", "quantity": 1, "unit_price": "5.00"}],
    }
    return ChannelOrder(external_id, updated, "order", payload)


def run(repo, runs, found, *, at=NOW, channel="manual", store="default"):
    asked: list[datetime] = []

    def pull(since: datetime):
        asked.append(since)
        yield from found

    report = reconcile_store(
        channel, store, pull, orders=repo, workflow=RecordingWorkflow(), runs=runs, now=lambda: at
    )
    return report, asked[0]


def test_missing_orders_are_restored_once_and_the_watermark_moves():
    repo, runs = InMemoryOrderRepository(), Runs()
    report, since = run(
        repo, runs, [manual("A", "2026-11-23T10:00:00Z"), manual("B", "2026-11-23T10:00:00Z")]
    )
    assert since == NOW - FIRST_LOOKBACK
    assert report.missing_restored == ["A", "B"] and report.in_sync == 0 and runs.marks
    later = NOW + timedelta(minutes=15)
    again, since = run(repo, runs, [manual("A", "2026-11-23T10:00:00Z")], at=later)
    assert since == NOW - OVERLAP
    assert again.missing_restored == [] and again.in_sync == 1
    newer, _ = run(repo, runs, [manual("A", "2026-11-23T11:00:00Z")], at=later)
    assert newer.drift_applied == ["A"]


def test_a_failing_channel_keeps_the_watermark_and_reports_why():
    repo, runs = InMemoryOrderRepository(), Runs()

    def broken(since: datetime):
        yield manual("A", "2026-11-23T10:00:00Z")
        raise HubError("503 from the store")

    report = reconcile_store(
        "manual", "default", broken, orders=repo, workflow=RecordingWorkflow(), runs=runs, now=lambda: NOW
    )
    assert report.missing_restored == ["A"] and "503" in report.errors[0]
    assert runs.marks == {} and runs.saved == [report]


def test_payments__a_refund_the_hub_did_not_make_is_reported_its_own_are_not():
    from chalicelib.domain.payment_gateway import RefundView
    from chalicelib.domain.payment_reconciliation import reconcile_payments

    repo, runs = InMemoryOrderRepository(), Runs()
    run(repo, runs, [manual("A", "2026-11-23T10:00:00Z")])
    order_id = repo.find_by_external_id("manual", "A")[0].order.order_id
    repo.link_payment("pi_A", order_id)

    def record(order):
        order.record(
            "compensated", NOW, actions=[{"compensator": "payment", "action": "refunded", "refund": "re_hub"}]
        )

    from chalicelib.domain.lifecycle import mutate

    mutate(repo, order_id, record)
    refunds = [
        RefundView("re_hub", "succeeded", 500, "eur", "pi_A", None),
        RefundView("re_dash", "succeeded", 250, "eur", "pi_A", "requested_by_customer"),
        RefundView("re_other", "succeeded", 100, "usd", "pi_unknown", None),
    ]
    report = reconcile_payments(refunds_since=lambda since: refunds, orders=repo, runs=runs, now=lambda: NOW)
    assert report.in_sync == 1
    assert [(r["refund"], r["order_id"], r["amount"]) for r in report.external_refunds] == [
        ("re_dash", order_id, "2.50"),
        ("re_other", None, "1.00"),
    ]


def test_an_order_that_moves_while_it_is_compared_is_compared_again():
    repo, runs = InMemoryOrderRepository(), Runs()
    run(repo, runs, [manual("A", "2026-11-23T10:00:00Z")])
    repo.fail_next_saves = 2  # its lifecycle wrote twice meanwhile
    report, _ = run(repo, runs, [manual("A", "2026-11-23T11:00:00Z")])
    assert report.drift_applied == ["A"] and report.errors == []


# --- Stripe captures ---------------------------------------------------------------------------------------


def stripe_order(repo, external_id: str, intent_id: str, status: str = "APPROVED") -> str:
    from chalicelib.domain.manual_channel import normalise_manual
    from chalicelib.domain.order import OrderStatus

    order = normalise_manual(
        {
            "external_id": external_id,
            "currency": "EUR",
            "placed_at": "2026-11-23T10:00:00Z",
            "lines": [{"title": "Lamp", "quantity": 1, "unit_price": "20.00"}],
            "payment": {"source": "stripe", "reference": intent_id},
        }
    )
    order.status = OrderStatus(status)
    repo.save(order, expected_version=None)
    repo.link_payment(intent_id, order.order_id)
    return order.order_id


def paid_by_hub(repo, gateway, runs, external_id: str, intent_id: str, *, at=NOW - timedelta(hours=1)) -> str:
    from chalicelib.domain.payment import PaymentPolicy, take_payment

    gateway.add(intent_id, 2000)
    order_id = stripe_order(repo, external_id, intent_id)
    result = take_payment(
        order_id,
        orders=repo,
        gateway=lambda: gateway,
        channel_capturer=lambda order: None,
        policy=PaymentPolicy(),
        now=lambda: at,
        captures=runs,
    )
    assert result["outcome"] == "paid"
    return order_id


def reconcile_stripe(repo, gateway, runs, at=NOW):
    from chalicelib.domain.payment_reconciliation import reconcile_payments

    return reconcile_payments(
        refunds_since=gateway.refunds_since,
        captures_since=gateway.captures_since,
        retrieve=gateway.retrieve,
        orders=repo,
        runs=runs,
        now=lambda: at,
    )


def findings(found: list[dict]) -> set[tuple]:
    return {
        (f["payment_intent"], f["order_id"], f.get("reason"), f["amount"], f["hub_amount"]) for f in found
    }


def test_captures__the_hubs_own_are_in_sync_captures_made_elsewhere_are_reported_with_their_order():
    from dataclasses import replace

    from tests.fakes_payments import FakeGateway

    repo, runs, gateway = InMemoryOrderRepository(), Runs(), FakeGateway()
    paid_by_hub(repo, gateway, runs, "A", "pi_A")
    assert [(c.payment_intent_id, c.amount) for c in runs.captures] == [("pi_A", 20)]  # the ledger

    # Captured in the dashboard while the order waits for its fraud review (the hub never captured it).
    gateway.add("pi_B", 5000)
    in_review = stripe_order(repo, "B", "pi_B", status="FRAUD_REVIEW")
    gateway.capture_outside("pi_B", 3000)
    # A PaymentIntent of no order of the hub's, in another currency.
    gateway.add("pi_X", 700, currency="usd")
    gateway.capture_outside("pi_X")
    # The hub recorded 20.00; Stripe's event says 15.00 was captured.
    other = paid_by_hub(repo, gateway, runs, "C", "pi_C")
    gateway.captures[-1] = replace(gateway.captures[-1], amount=1500)

    report = reconcile_stripe(repo, gateway, runs)
    assert findings(report.external_captures) == {
        ("pi_B", in_review, "not_captured_by_hub", "30.00", None),
        ("pi_X", None, "unknown_payment_intent", "7.00", None),
        ("pi_C", other, "amount_differs", "15.00", "20.00"),
    }
    [b] = [f for f in report.external_captures if f["payment_intent"] == "pi_B"]
    assert b["order_status"] == "FRAUD_REVIEW" and b["currency"] == "EUR"
    assert b["captured_at"] == "2026-11-23T11:00:00+00:00"
    assert report.in_sync == 1 and report.seen == 4
    assert report.captures_not_in_stripe == [] and report.errors == []
    assert runs.marks[("stripe", "default")] == NOW


def test_captures__a_fresh_one_of_an_order_being_paid_waits_for_the_next_run():
    from tests.fakes_payments import FakeGateway

    repo, runs, gateway = InMemoryOrderRepository(), Runs(), FakeGateway()
    gateway.add("pi_D", 2000)
    order_id = stripe_order(repo, "D", "pi_D")  # APPROVED: its payment Task may be between capture and write
    gateway.clock = lambda: NOW - timedelta(seconds=30)
    gateway.capture_outside("pi_D")
    first = reconcile_stripe(repo, gateway, runs)
    assert first.external_captures == [] and first.in_sync == 0
    later = reconcile_stripe(repo, gateway, runs, at=NOW + timedelta(minutes=5))  # still in the overlap
    assert findings(later.external_captures) == {("pi_D", order_id, "not_captured_by_hub", "20.00", None)}


def test_captures__what_the_hub_recorded_is_checked_with_stripe_when_the_window_does_not_show_it():
    from chalicelib.domain.payment_gateway import RecordedCapture
    from tests.fakes_payments import FakeGateway

    repo, runs, gateway = InMemoryOrderRepository(), Runs(), FakeGateway()
    # Captured at checkout three days ago (automatic capture), recorded by the hub's payment stage now.
    gateway.clock = lambda: NOW - timedelta(days=3)
    gateway.add("pi_E", 2000, status="succeeded")
    checkout = paid_by_hub(repo, gateway, runs, "E", "pi_E", at=NOW - timedelta(minutes=5))
    # The hub recorded captures Stripe does not hold: an authorisation never captured, an unknown intent.
    gateway.add("pi_F", 2000)
    at = NOW - timedelta(minutes=3)
    runs.record_capture(RecordedCapture("pi_F", "order-F", Decimal("20.00"), "EUR", at))
    runs.record_capture(RecordedCapture("pi_G", "order-G", Decimal("9.50"), "EUR", at))
    runs.record_capture(RecordedCapture("pi_G", "order-G", Decimal("9.50"), "EUR", at + timedelta(seconds=1)))

    report = reconcile_stripe(repo, gateway, runs)
    assert report.external_captures == []
    assert [
        (f["payment_intent"], f["order_id"], f["stripe_status"]) for f in report.captures_not_in_stripe
    ] == [
        ("pi_F", "order-F", "requires_capture"),
        ("pi_G", "order-G", "missing"),
    ]
    assert [(f["hub_amount"], f["amount"]) for f in report.captures_not_in_stripe] == [
        ("20.00", "0.00"),
        ("9.50", None),
    ]
    assert report.in_sync == 1 and checkout  # pi_E: Stripe's PaymentIntent agrees

    gateway.unavailable = 1  # Stripe fails while the hub's captures are checked: say why, keep the watermark
    failed = reconcile_stripe(repo, gateway, runs, at=NOW + timedelta(minutes=15))
    assert "PaymentUnavailable" in failed.errors[0] and runs.marks[("stripe", "default")] == NOW
