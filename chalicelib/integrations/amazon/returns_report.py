"""ReturnsReport for Amazon: merchant-fulfilled returns read from the Reports API (createReport, getReport
until processed, getReportDocument, the document from its pre-signed URL), parsed by `returns_xml`."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from chalicelib.domain.order import utcnow
from chalicelib.domain.returns.events import ChannelReturn
from chalicelib.integrations.amazon.errors import SpApiError, SpApiUnavailable
from chalicelib.integrations.amazon.returns_xml import REPORT_TYPE, MalformedReport, parse_returns_report

logger = Logger(service="order-hub", child=True)

# Amazon builds this report over at most 60 days of data: a longer window is read as several reports.
MAX_REPORT_SPAN = timedelta(days=60)
# Amazon refuses a dataEndTime after its own "now": stay a little behind, in case our clock runs ahead.
CLOCK_MARGIN = timedelta(minutes=2)


class ReportFailed(SpApiError):
    """Amazon gave up building the report (FATAL), or it was cancelled before it started: nothing was read."""


class ReportNotReady(SpApiUnavailable):
    """The report was still being built when the reader stopped waiting: read again later."""


class ReportsApi(Protocol):
    """The Reports 2021-06-30 calls the reader needs (`SpApiClient`)."""

    def create_report(
        self, report_type: str, marketplace_ids: list[str], data_start: datetime, data_end: datetime
    ) -> str: ...

    def get_report(self, report_id: str) -> dict[str, Any]: ...

    def get_report_document(self, report_document_id: str) -> dict[str, Any]: ...

    def download_report_document(self, document: dict[str, Any]) -> bytes: ...


class AmazonReturnsReport:
    """One Amazon store's merchant-fulfilled returns since a time (`returns_since`).

    getReport is polled with exponential backoff (`poll_first` seconds, doubling up to `poll_cap`) for at
    most `patience` seconds, then ReportNotReady. FATAL (or an explicit cancellation) raises ReportFailed;
    CANCELLED after processing started is Amazon's "no data" (SP-API has no DONE_NO_DATA) and reads as no
    returns. `skipped` holds, after each call, the returns left out as malformed (RMA id and why).
    """

    def __init__(
        self,
        client: ReportsApi,
        store: str,
        marketplace_id: str,
        *,
        now: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        poll_first: float = 5.0,
        poll_cap: float = 60.0,
        patience: float = 600.0,
    ) -> None:
        self._client = client
        self.store = store
        self._marketplace_id = marketplace_id
        self._now = now
        self._sleep = sleep
        self._poll_first = poll_first
        self._poll_cap = poll_cap
        self._patience = patience
        self.skipped: list[str] = []

    def __repr__(self) -> str:
        return f"AmazonReturnsReport(store={self.store!r})"

    def returns_since(self, since: Any) -> list[ChannelReturn]:
        """Every return Amazon reports as requested in [since, now], one report per 60 days of window."""
        if not isinstance(since, datetime) or since.tzinfo is None:
            raise ValueError("since must be a datetime with a time zone")
        end = self._now().astimezone(UTC) - CLOCK_MARGIN
        start = min(since.astimezone(UTC), end)
        self.skipped = []
        found: dict[str, ChannelReturn] = {}
        while True:
            until = min(end, start + MAX_REPORT_SPAN)
            for ret in self._read(start, until):
                found[ret.external_return_id] = ret  # an RMA in two adjoining reports counts once
            if until >= end:
                return list(found.values())
            start = until

    def _read(self, start: datetime, end: datetime) -> list[ChannelReturn]:
        report_id = self._client.create_report(REPORT_TYPE, [self._marketplace_id], start, end)
        report = self._processed(report_id)
        document_id = report.get("reportDocumentId")
        if report["processingStatus"] == "CANCELLED" or not document_id:
            return []
        document = self._client.get_report_document(str(document_id))
        content = self._client.download_report_document(document)
        try:
            parsed = parse_returns_report(content, self.store, read_at=self._now())
        except MalformedReport as exc:
            raise ReportFailed(f"returns report {report_id}: {exc}", operation="getReportDocument") from exc
        for why in parsed.skipped:
            logger.warning("amazon return skipped", extra={"store": self.store, "report_id": report_id,
                                                           "why": why})  # fmt: skip
        self.skipped.extend(parsed.skipped)
        return parsed.returns

    def _processed(self, report_id: str) -> dict[str, Any]:
        """getReport until processing ended (DONE, CANCELLED, FATAL), waiting longer each time."""
        waited, delay = 0.0, self._poll_first
        while True:
            report = self._client.get_report(report_id)
            status = report["processingStatus"]
            if status == "DONE":
                return report
            if status == "FATAL":
                raise ReportFailed(f"returns report {report_id} ended FATAL", operation="getReport",
                                   code="FATAL")  # fmt: skip
            if status == "CANCELLED":
                # Amazon cancels a report with no data itself, after it started processing; a report
                # cancelled while still queued (cancelReport) never started and said nothing.
                if report.get("processingStartTime"):
                    return report
                raise ReportFailed(f"returns report {report_id} was cancelled", operation="getReport",
                                   code="CANCELLED")  # fmt: skip
            if waited + delay > self._patience:
                raise ReportNotReady(
                    f"returns report {report_id} still {status} after {waited:.0f}s",
                    operation="getReport",
                    code=status,
                    retry_after=delay,
                )
            self._sleep(delay)
            waited += delay
            delay = min(self._poll_cap, delay * 2)
