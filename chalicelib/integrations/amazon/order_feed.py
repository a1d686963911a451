"""The order acknowledgement feed that cancels an Amazon order, and the feed processing report's reading."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from chalicelib.integrations.amazon.errors import SpApiError

ORDER_ACKNOWLEDGEMENT_FEED = "POST_ORDER_ACKNOWLEDGEMENT_DATA"

# CancelReason values of the OrderAcknowledgement schema, chosen from the hub's free-text reason.
_CANCEL_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("inventory", "stock", "unavailable"), "NoInventory"),
    (("address", "undeliverable"), "ShippingAddressUndeliverable"),
    (("price", "pricing"), "PricingError"),
    (("exchange",), "CustomerExchange"),
    (("buyer", "customer"), "BuyerCanceled"),
    (("fraud", "risk"), "RiskAssessmentInformationNotValid"),
)
_DEFAULT_CANCEL_REASON = "GeneralAdjustment"


@dataclass(frozen=True)
class ReportResult:
    """One message's outcome in a feed processing report (errors and warnings only; successes are counted)."""

    message_id: str
    code: str  # Error | Warning
    message_code: str
    description: str


@dataclass(frozen=True)
class ProcessingReport:
    status: str
    processed: int
    successful: int
    with_error: int
    results: tuple[ReportResult, ...]

    def errors_for(self, message_id: str) -> list[ReportResult]:
        return [r for r in self.results if r.message_id == message_id and r.code.lower() == "error"]


def cancel_reason(reason: str | None) -> str:
    text = (reason or "").lower()
    for words, code in _CANCEL_REASONS:
        if any(word in text for word in words):
            return code
    return _DEFAULT_CANCEL_REASON


def order_acknowledgement_feed(
    merchant_id: str, amazon_order_id: str, order_item_ids: list[str], cancel_reason: str
) -> bytes:
    """An OrderAcknowledgement feed (one message) cancelling the order: StatusCode Failure, a CancelReason
    for every item."""
    envelope = ET.Element(
        "AmazonEnvelope",
        {
            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsi:noNamespaceSchemaLocation": "amzn-envelope.xsd",
        },
    )
    header = ET.SubElement(envelope, "Header")
    ET.SubElement(header, "DocumentVersion").text = "1.01"
    ET.SubElement(header, "MerchantIdentifier").text = merchant_id
    ET.SubElement(envelope, "MessageType").text = "OrderAcknowledgement"
    message = ET.SubElement(envelope, "Message")
    ET.SubElement(message, "MessageID").text = "1"
    ET.SubElement(message, "OperationType").text = "Update"
    acknowledgement = ET.SubElement(message, "OrderAcknowledgement")
    ET.SubElement(acknowledgement, "AmazonOrderID").text = amazon_order_id
    ET.SubElement(acknowledgement, "StatusCode").text = "Failure"
    for item_id in order_item_ids:
        item = ET.SubElement(acknowledgement, "Item")
        ET.SubElement(item, "AmazonOrderItemCode").text = item_id
        ET.SubElement(item, "CancelReason").text = cancel_reason
    document: bytes = ET.tostring(envelope, encoding="utf-8", xml_declaration=True)
    return document


def parse_processing_report(content: bytes) -> ProcessingReport:
    """A feed processing report, XML (AmazonEnvelope/ProcessingReport) or JSON (header/issues/summary)."""
    text = content.lstrip()
    if text.startswith(b"{"):
        return _json_report(text)
    if b"<!DOCTYPE" in text or b"<!ENTITY" in text:
        raise SpApiError("feed processing report carries a DTD: refused", operation="getFeedDocument")
    try:
        root = ET.fromstring(text)  # noqa: S314 (no DTD, checked above)
    except ET.ParseError as exc:
        raise SpApiError("feed processing report is not XML", operation="getFeedDocument") from exc
    report = root.find(".//ProcessingReport")
    if report is None:
        raise SpApiError("feed processing report without ProcessingReport", operation="getFeedDocument")
    summary = report.find("ProcessingSummary")

    def count(tag: str) -> int:
        node = summary.find(tag) if summary is not None else None
        return int(node.text or 0) if node is not None and (node.text or "").strip().isdigit() else 0

    results = tuple(
        ReportResult(
            message_id=(r.findtext("MessageID") or "").strip(),
            code=(r.findtext("ResultCode") or "").strip(),
            message_code=(r.findtext("ResultMessageCode") or "").strip(),
            description=(r.findtext("ResultDescription") or "").strip(),
        )
        for r in report.findall("Result")
    )
    return ProcessingReport(
        status=(report.findtext("StatusCode") or "").strip(),
        processed=count("MessagesProcessed"),
        successful=count("MessagesSuccessful"),
        with_error=count("MessagesWithError"),
        results=results,
    )


def _json_report(text: bytes) -> ProcessingReport:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise SpApiError("feed processing report is not JSON", operation="getFeedDocument") from exc
    summary = body.get("summary") or {}
    results = tuple(
        ReportResult(
            message_id=str(issue.get("messageId", "")),
            code="Error" if str(issue.get("severity", "")).upper() == "ERROR" else "Warning",
            message_code=str(issue.get("code", "")),
            description=str(issue.get("message", "")),
        )
        for issue in body.get("issues") or []
        if isinstance(issue, dict)
    )
    processed = int(summary.get("messagesProcessed") or 0)
    return ProcessingReport(
        status=str((body.get("header") or {}).get("reportStatus") or ""),
        processed=processed,
        successful=int(summary.get("messagesAccepted") or 0),
        with_error=int(summary.get("errors") or 0),
        results=results,
    )
