"""Reconciliation against in-memory ports: missing orders restored once, drift applied or flagged, watermark
kept; Stripe's refunds and captures against the hub's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from chalicelib.composition import channel_normalisers
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

    return reconcile(channel, store, pull, repo, runs, at=at), asked[0]


def reconcile(channel, store, pull, repo, runs, *, at):
    wiring = {"normalisers": channel_normalisers(), "workflow": RecordingWorkflow()}
    return reconcile_store(channel, store, pull, orders=repo, runs=runs, now=lambda: at, **wiring)


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

    report = reconcile("manual", "default", broken, repo, runs, at=NOW)
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

    from chalicelib.domain.mutation import mutate

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


# --- drift at an equal stamp ------------------------------------------------------------------------------

STAMP = "2026-11-23T10:00:00"
WOO_STORE = "https://shop.example/"


def woo(status: str, total: str = "19.90", stamp: str = STAMP) -> ChannelOrder:
    payload = {
        "id": 5181,
        "status": status,
        "currency": "EUR",
        "date_created_gmt": "2026-11-23T09:00:00",
        "date_modified_gmt": stamp,
        "total": total,
        "billing": {"last_name": "Buyer"},
        "payment_method": "",
        "line_items": [{"id": 851, "name": "Gift card", "quantity": 1, "total": total}],
    }
    return ChannelOrder("5181", stamp, "order.updated", payload)


def woo_run(repo, runs, order: ChannelOrder):
    report, _ = run(repo, runs, [order], channel="woocommerce", store=WOO_STORE)
    return report


def stored_woo(repo):
    [stored] = repo.find_by_external_id("woocommerce", "5181")
    return stored.order


def test_drift__other_totals_at_the_stamp_the_hub_applied_are_flagged_not_applied_each_run():
    repo, runs = InMemoryOrderRepository(), Runs()
    assert woo_run(repo, runs, woo("processing")).missing_restored == ["5181"]
    version = repo.get(stored_woo(repo).order_id).version

    for _ in range(2):  # the second run finds its own delivery recorded (a duplicate): flagged again
        report = woo_run(repo, runs, woo("processing", total="29.90"))
        assert report.in_sync == 0 and report.drift_applied == []
        [flagged] = report.drift_flagged
        assert flagged["external_id"] == "5181" and flagged["order_id"] == stored_woo(repo).order_id
        assert flagged["fields"] == ["totals"]
        assert flagged["channel_value"]["totals"]["total"] == "29.90"
        assert flagged["hub_value"]["totals"]["total"] == "19.90"
        assert flagged["updated_at"].startswith("2026-11-23T10:00:00")

    assert stored_woo(repo).totals.total == Decimal("19.90")  # not applied
    assert repo.get(stored_woo(repo).order_id).version == version
    assert woo_run(repo, runs, woo("processing")).in_sync == 1  # the same content: in sync, nothing flagged
    assert runs.saved[-1].drift_flagged == []


def test_drift__another_state_at_that_stamp_is_flagged_a_cancellation_included_never_applied():
    repo, runs = InMemoryOrderRepository(), Runs()
    woo_run(repo, runs, woo("processing"))
    behind = woo_run(repo, runs, woo("pending"))  # the store went back to pending, same stamp
    assert [(f["fields"], f["channel_value"], f["hub_value"]) for f in behind.drift_flagged] == [
        (["status"], {"status": "open"}, {"status": "paid"})
    ]
    # Cancelled in the store without its stamp moving: flagged for an operator, the order is not wound down.
    cancelled = woo_run(repo, runs, woo("cancelled", total="0.00"))
    assert cancelled.drift_applied == [] and cancelled.in_sync == 0
    [flagged] = cancelled.drift_flagged
    assert flagged["fields"] == ["status", "totals"]
    assert flagged["channel_value"]["status"] == "cancelled" and flagged["hub_value"]["status"] == "paid"
    assert stored_woo(repo).status.value != "CANCELLED"


def test_drift__a_webhook_applied_stamp_is_compared_the_same_way():
    from chalicelib.domain.delivery import Delivery
    from chalicelib.domain.ingest import ingest

    repo, runs = InMemoryOrderRepository(), Runs()
    webhook = woo("processing")
    ingest(
        Delivery("wc-delivery-1", "woocommerce", WOO_STORE, "order.updated", NOW, webhook.payload, "5181"),
        normalisers=channel_normalisers(),
        orders=repo,
        workflow=RecordingWorkflow(),
        now=lambda: NOW,
    )
    # First sight of that stamp by reconciliation (no delivery of its own recorded yet): still flagged.
    report = woo_run(repo, runs, woo("cancelled"))
    assert [f["fields"] for f in report.drift_flagged] == [["status"]] and report.drift_applied == []
    assert stored_woo(repo).status.value != "CANCELLED"
    assert woo_run(repo, runs, webhook).in_sync == 1


def test_drift__a_cancelled_order_shown_refunded_at_that_stamp_is_its_cancellation_not_drift():
    repo, runs = InMemoryOrderRepository(), Runs()
    woo_run(repo, runs, woo("cancelled"))  # the cancellation, then its refund in the same second
    refunded = woo_run(repo, runs, woo("refunded"))
    assert refunded.drift_flagged == [] and refunded.in_sync == 1
    # The other way round is not the same outcome: refunded, then shown cancelled at that stamp.
    repo, runs = InMemoryOrderRepository(), Runs()
    woo_run(repo, runs, woo("refunded"))
    assert [f["fields"] for f in woo_run(repo, runs, woo("cancelled")).drift_flagged] == [["status"]]


def test_drift__a_newer_stamp_is_applied_not_flagged_and_the_report_keeps_its_old_keys():
    repo, runs = InMemoryOrderRepository(), Runs()
    woo_run(repo, runs, woo("processing"))
    newer = woo_run(repo, runs, woo("processing", total="29.90", stamp="2026-11-23T10:05:00"))
    assert newer.drift_applied == ["5181"] and newer.drift_flagged == []
    assert stored_woo(repo).totals.total == Decimal("29.90")
    data = newer.to_json()
    old_keys = {"seen", "missing_restored", "drift_applied", "in_sync", "errors", "external_refunds"}
    new_keys = {"drift_flagged", "external_captures", "captures_not_in_stripe"}
    assert old_keys | new_keys <= set(data) and isinstance(data["drift_flagged"], list)


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
