"""An in-memory ReconciliationStore (watermarks, reports, the capture ledger); a contract test holds it to
the DynamoDB one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.domain.payment_gateway import RecordedCapture
from chalicelib.domain.reconciliation import ReconciliationReport


class InMemoryReconciliationStore:
    def __init__(self) -> None:
        self.marks: dict[tuple[str, str], datetime] = {}
        self.saved: list[ReconciliationReport] = []
        self.captures: list[RecordedCapture] = []

    def watermark(self, channel: str, store: str) -> datetime | None:
        return self.marks.get((channel, store))

    def set_watermark(self, channel: str, store: str, at: datetime) -> None:
        self.marks[(channel, store)] = at

    def save_report(self, report: ReconciliationReport) -> None:
        self.saved.append(report)

    def reports(self, limit: int = 50) -> list[dict[str, Any]]:
        return [r.to_json() for r in reversed(self.saved)][:limit]

    def record_capture(self, capture: RecordedCapture) -> None:
        if capture not in self.captures:
            self.captures.append(capture)

    def recorded_captures(self, since: datetime) -> list[RecordedCapture]:
        return sorted((c for c in self.captures if c.recorded_at >= since), key=lambda c: c.recorded_at)
