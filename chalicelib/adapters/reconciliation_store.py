"""ReconciliationStore on the single table: a watermark item per store, a report item per run (90 days),
and the hub's Stripe captures by day (the capture ledger)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from chalicelib.adapters.models import ReconciliationModel
from chalicelib.domain.payment_gateway import RecordedCapture
from chalicelib.domain.reconciliation import ReconciliationReport

REPORTS_KEPT = timedelta(days=90)
CAPTURES_KEPT = timedelta(days=90)
# Keys a report gained later: an older stored report answers them empty, so readers see one shape.
_ADDED_LISTS = ("drift_flagged", "external_refunds", "external_captures", "captures_not_in_stripe")


class DynamoReconciliationStore:
    def watermark(self, channel: str, store: str) -> datetime | None:
        try:
            return ReconciliationModel.get("RECON#WATERMARK", f"{channel}#{store}", consistent_read=True).at
        except ReconciliationModel.DoesNotExist:
            return None

    def set_watermark(self, channel: str, store: str, at: datetime) -> None:
        ReconciliationModel("RECON#WATERMARK", f"{channel}#{store}", at=at).save()

    def save_report(self, report: ReconciliationReport) -> None:
        ReconciliationModel(
            "RECON#RUNS",
            f"{report.started_at.isoformat()}#{report.channel}#{report.store}",
            report=report.to_json(),
            expires_at=report.started_at + REPORTS_KEPT,
        ).save()

    def reports(self, limit: int = 50) -> list[dict[str, Any]]:
        found = []
        for item in ReconciliationModel.query("RECON#RUNS", scan_index_forward=False, limit=limit):
            report = dict(item.report or {})
            for key in _ADDED_LISTS:
                report.setdefault(key, [])
            found.append(report)
        return found

    def record_capture(self, capture: RecordedCapture) -> None:
        # One partition per UTC day, sorted by time: a window is a query per day it touches, never a scan.
        at = capture.recorded_at.astimezone(UTC)
        ReconciliationModel(
            f"RECON#CAPTURES#{at.date().isoformat()}",
            f"{at.isoformat()}#{capture.payment_intent_id}",
            at=at,
            report={
                "payment_intent": capture.payment_intent_id,
                "order_id": capture.order_id,
                "amount": f"{capture.amount:f}",
                "currency": capture.currency,
            },
            expires_at=at + CAPTURES_KEPT,
        ).save()

    def recorded_captures(self, since: datetime) -> list[RecordedCapture]:
        start = since.astimezone(UTC)
        day, today = start.date(), datetime.now(UTC).date()
        found: list[RecordedCapture] = []
        while day <= today:
            for item in ReconciliationModel.query(
                f"RECON#CAPTURES#{day.isoformat()}", ReconciliationModel.sk >= start.isoformat()
            ):
                entry = dict(item.report or {})
                found.append(
                    RecordedCapture(
                        payment_intent_id=str(entry["payment_intent"]),
                        order_id=str(entry["order_id"]),
                        amount=Decimal(str(entry["amount"])),
                        currency=str(entry["currency"]),
                        recorded_at=item.at or start,
                    )
                )
            day += timedelta(days=1)
        return found
