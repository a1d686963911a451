"""Reconciliation against in-memory ports: missing orders restored once, drift applied, watermark kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.domain.errors import HubError
from chalicelib.domain.reconciliation import (
    FIRST_LOOKBACK,
    OVERLAP,
    ChannelOrder,
    ReconciliationReport,
    reconcile_store,
)
from tests.fakes import InMemoryOrderRepository, RecordingWorkflow

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Runs:
    def __init__(self) -> None:
        self.marks: dict[tuple[str, str], datetime] = {}
        self.saved: list[ReconciliationReport] = []

    def watermark(self, channel: str, store: str) -> datetime | None:
        return self.marks.get((channel, store))

    def set_watermark(self, channel: str, store: str, at: datetime) -> None:
        self.marks[(channel, store)] = at

    def save_report(self, report: ReconciliationReport) -> None:
        self.saved.append(report)

    def reports(self, limit: int = 50) -> list[dict[str, Any]]:
        return [r.to_json() for r in reversed(self.saved)][:limit]


def manual(external_id: str, updated: str) -> ChannelOrder:
    payload = {
        "external_id": external_id,
        "currency": "EUR",
        "placed_at": "2026-11-23T10:00:00Z",
        "updated_at": updated,
        "lines": [{"title": "Mug", "quantity": 1, "unit_price": "5.00"}],
    }
    return ChannelOrder(external_id, updated, "order", payload)


def run(repo, runs, found, *, at=NOW):
    asked: list[datetime] = []

    def pull(since: datetime):
        asked.append(since)
        yield from found

    report = reconcile_store(
        "manual", "default", pull, orders=repo, workflow=RecordingWorkflow(), runs=runs, now=lambda: at
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
    from chalicelib.domain.reconciliation import reconcile_payments

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
