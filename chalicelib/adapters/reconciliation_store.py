"""ReconciliationStore on the single table: a watermark item per store, a report item per run (90 days)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from chalicelib.adapters.models import ReconciliationModel
from chalicelib.domain.reconciliation import ReconciliationReport

REPORTS_KEPT = timedelta(days=90)


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
        return [
            dict(item.report or {})
            for item in ReconciliationModel.query("RECON#RUNS", scan_index_forward=False, limit=limit)
        ]
