"""Publishes order milestones to Amazon for merchant-fulfilled (MFN) orders through SP-API.

What is sent, and why this way (checked against the SP-API documentation, 2026):

- shipped → Orders v0 `confirmShipment` (POST /orders/v0/orders/{orderId}/shipmentConfirmation), one
  call per parcel. Amazon's guide ("Confirm the shipment status") says it supports every use case of the
  order fulfilment feeds, multiple tracking ids included (one call per package, each with its own
  packageReferenceId), and its MFN blog recommends it over POST_ORDER_FULFILLMENT_DATA for its
  synchronous answer and clearer errors. The feed only wins for bulk batches, which the hub does not send.
  packageReferenceId must be a positive number (sent as a string); it is derived from the publication id
  and the parcel's index, so a repeat carries the same id, which Amazon treats as an edit of that package.
- cancelled → the order acknowledgement feed POST_ORDER_ACKNOWLEDGEMENT_DATA (XML, StatusCode Failure
  with a CancelReason per item) through Feeds 2021-06-30: createFeedDocument → upload → createFeed →
  getFeed → getFeedDocument → the XML processing report, whose per-message errors become
  PublishRejected. Order feeds are not among the deprecated XML listings feeds. The newer Orders API
  2026-01-01 has a `cancelOrder` operation (PUT .../orders/{orderId}/cancellation with a
  cancelReasonCode); its model was not yet in the published selling-partner-api-models this was built
  against, so its answers could not be verified: a candidate to move to once they can.
- delivered, paid, refunded → nothing: Amazon tracks delivery from the carrier's tracking itself, and it
  collects and refunds the buyer's money (refunds go through Amazon's own flows, not the order).

Errors: 429 still throttled after the client's retries → PublishThrottled; 5xx and transport failures →
PublishUnavailable; other 4xx → PublishRejected with Amazon's code and message.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.domain.order import Order
from chalicelib.domain.publishing import (
    Milestone,
    PublishRejected,
    PublishThrottled,
    PublishUnavailable,
)
from chalicelib.integrations.amazon.errors import SpApiAuthError, SpApiError, SpApiThrottled
from chalicelib.integrations.amazon.spapi import SpApiClient

logger = Logger(service="order-hub", child=True)

ORDER_ACKNOWLEDGEMENT_FEED = "POST_ORDER_ACKNOWLEDGEMENT_DATA"
_XML = "text/xml; charset=UTF-8"
_FEED_DONE, _FEED_FATAL, _FEED_CANCELLED = "DONE", "FATAL", "CANCELLED"

# Amazon's CarrierCode values for the carriers the hub meets, keyed by name without case or punctuation.
# Anything else goes as carrierCode "Other" with the hub's carrier name as carrierName.
CARRIER_CODES: dict[str, str] = {
    "usps": "USPS",
    "ups": "UPS",
    "upsmailinnovations": "UPS Mail Innovations",
    "fedex": "FedEx",
    "fedexsmartpost": "FedEx SmartPost",
    "dhl": "DHL",
    "dhlexpress": "DHL",
    "dhlecommerce": "DHL eCommerce",
    "ontrac": "OnTrac",
    "lasership": "Lasership",
    "amazonshipping": "Amazon Shipping",
    "canadapost": "Canada Post",
    "royalmail": "Royal Mail",
    "parcelforce": "Parcelforce",
    "dpd": "DPD",
    "gls": "GLS",
    "hermes": "Hermes",
    "evri": "Evri",
    "deutschepost": "Deutsche Post",
    "australiapost": "Australia Post",
    "japanpost": "Japan Post",
    "yamato": "Yamato Transport",
    "yamatotransport": "Yamato Transport",
    "sagawa": "Sagawa Express",
    "sagawaexpress": "Sagawa Express",
}

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


class AmazonPublisher:
    """The ChannelPublisher for one Amazon seller in one marketplace (one per connection, as the client is).

    `feed_wait` bounds how long a cancellation polls its feed before answering PublishUnavailable (the
    caller retries, and a retry finds the order already Canceled or submits again).
    """

    def __init__(
        self,
        client: SpApiClient,
        marketplace_id: str,
        *,
        feed_wait: float = 20.0,
        feed_poll_interval: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._marketplace_id = marketplace_id
        self._feed_wait = feed_wait
        self._poll_interval = feed_poll_interval
        self._sleep = sleep
        self._clock = clock

    def publish(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        try:
            if milestone.kind == "shipped":
                return self._shipped(order, milestone)
            if milestone.kind == "cancelled":
                return self._cancelled(order, milestone)
        except SpApiError as exc:
            raise _translate(exc) from exc
        if milestone.kind == "delivered":
            return {"skipped": "Amazon follows delivery from the carrier's tracking of MFN packages"}
        if milestone.kind in ("paid", "refunded"):
            return {"skipped": f"Amazon collects and refunds the buyer's money itself ({milestone.kind})"}
        raise PublishRejected(f"unknown milestone kind {milestone.kind!r}")

    # --- shipped -----------------------------------------------------------------------------

    def _shipped(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        packages = _packages(order, milestone)
        if not packages:
            raise PublishRejected(
                f"shipped milestone {milestone.publication_id} carries no parcel to confirm"
            )
        ship_date = _iso(milestone.at)
        # The order's own marketplace: one seller's connection sells in several (Amazon.com, .ca, .co.jp...).
        marketplace = self._marketplace_of(order.external_id)
        answered: list[dict[str, Any]] = []
        for index, (parcel, items) in enumerate(packages):
            reference = package_reference_id(milestone.publication_id, index)
            carrier = str(parcel.get("carrier") or "")
            code = carrier_code(carrier)
            detail: dict[str, Any] = {
                "packageReferenceId": reference,
                "carrierCode": code,
                "trackingNumber": str(parcel["tracking_number"]),
                "shipDate": ship_date,
                "orderItems": items,
            }
            if code == "Other":
                detail["carrierName"] = carrier or "Other"
            if parcel.get("service"):
                detail["shippingMethod"] = str(parcel["service"])
            repeat = False
            try:
                self._client.confirm_shipment(order.external_id, marketplace, detail)
            except SpApiError as exc:
                if exc.status != 400 or not self._already_shipped(order.external_id, items):
                    raise
                # Amazon refuses to touch a package of an order it considers fulfilled: ours is there.
                repeat = True
                logger.info(
                    "amazon package already confirmed",
                    extra={"order_id": order.order_id, "package_reference_id": reference},
                )
            answered.append(
                {"package_reference_id": reference, "tracking_number": detail["trackingNumber"],
                 "carrier_code": code, "already_confirmed": repeat}
            )  # fmt: skip
        return {"packages": answered}

    def _marketplace_of(self, amazon_order_id: str) -> str:
        found = self._client.get_order(amazon_order_id).get("MarketplaceId")
        return str(found) if found else self._marketplace_id

    def _already_shipped(self, amazon_order_id: str, items: list[dict[str, Any]]) -> bool:
        shipped = {
            str(i.get("OrderItemId")): int(i.get("QuantityShipped") or 0)
            for i in self._client.get_order_items(amazon_order_id)
        }
        return all(shipped.get(i["orderItemId"], 0) >= i["quantity"] for i in items)

    # --- cancelled ---------------------------------------------------------------------------

    def _cancelled(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        amazon_order_id = order.external_id
        current = self._client.get_order(amazon_order_id)
        status = current.get("OrderStatus")
        marketplace = str(current.get("MarketplaceId") or self._marketplace_id)
        if status == "Canceled":
            return {"already_cancelled": True}
        if status in ("Shipped", "PartiallyShipped", "InvoiceUnconfirmed"):
            raise PublishRejected(
                f"Amazon order {amazon_order_id} is {status}: it can no longer be cancelled"
            )
        reason = cancel_reason(milestone.reason)
        items = [line.line_id for line in order.lines]
        document = order_acknowledgement_feed(order.store, amazon_order_id, items, reason)
        feed_id = self._client.submit_feed(ORDER_ACKNOWLEDGEMENT_FEED, [marketplace], document, _XML)
        logger.info(
            "amazon cancellation feed submitted", extra={"order_id": order.order_id, "feed_id": feed_id}
        )
        feed = self._await_feed(feed_id)
        report = self._report(feed)
        # Our message is MessageID 1; a FATAL feed reports against MessageID 0 (the document itself).
        errors = (report.errors_for("1") or report.errors_for("0")) if report else []
        if feed["processingStatus"] == _FEED_DONE and report is not None and not errors:
            if report.processed == 0:
                raise PublishRejected(f"feed {feed_id}: Amazon processed no message of the cancellation")
            return {"feed_id": feed_id, "cancel_reason": reason}
        if self._client.get_order(amazon_order_id).get("OrderStatus") == "Canceled":
            # A duplicate (an earlier attempt's feed won the race): the order is cancelled all the same.
            return {"feed_id": feed_id, "cancel_reason": reason, "already_cancelled": True}
        if errors:
            first = errors[0]
            raise PublishRejected(
                f"Amazon rejected the cancellation (feed {feed_id}): {first.message_code} {first.description}"
            )
        raise PublishRejected(f"feed {feed_id} ended {feed['processingStatus']} without cancelling")

    def _await_feed(self, feed_id: str) -> dict[str, Any]:
        deadline = self._clock() + self._feed_wait
        while True:
            feed = self._client.get_feed(feed_id)
            status = feed["processingStatus"]
            if status in (_FEED_DONE, _FEED_FATAL):
                return feed
            if status == _FEED_CANCELLED:
                raise PublishUnavailable(f"feed {feed_id} was cancelled before processing: send it again")
            if self._clock() + self._poll_interval > deadline:
                raise PublishUnavailable(f"feed {feed_id} is still {status}: try again later")
            self._sleep(self._poll_interval)

    def _report(self, feed: dict[str, Any]) -> ProcessingReport | None:
        document_id = feed.get("resultFeedDocumentId")
        if not isinstance(document_id, str) or not document_id:
            return None
        content = self._client.download_feed_document(self._client.get_feed_document(document_id))
        return parse_processing_report(content)


# --- building blocks (pure) ------------------------------------------------------------------


def package_reference_id(publication_id: str, parcel_index: int) -> str:
    """A positive number, stable for (publication, parcel): 12 digits of the publication's hash + index."""
    digest = int.from_bytes(hashlib.sha256(publication_id.encode()).digest()[:8], "big")
    return str((10**12 + digest % 10**12) * 100 + parcel_index + 1)


def carrier_code(carrier: str) -> str:
    return CARRIER_CODES.get(re.sub(r"[^a-z0-9]", "", carrier.lower()), "Other")


def cancel_reason(reason: str | None) -> str:
    text = (reason or "").lower()
    for words, code in _CANCEL_REASONS:
        if any(word in text for word in words):
            return code
    return _DEFAULT_CANCEL_REASON


def _packages(order: Order, milestone: Milestone) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(parcel, orderItems) per parcel: the parcel's own lines, else the order's record of that parcel;
    a lone parcel carries the whole shipment; several parcels without lines share its units out."""
    known = {
        p.tracking_number: p.lines
        for s in order.shipments
        if s.shipment_id == milestone.shipment_id
        for p in s.parcels
    }
    parcels = [p for p in milestone.parcels if p.get("tracking_number")]
    if len(parcels) == 1 and not parcels[0].get("lines"):
        return [(parcels[0], _items(milestone.lines))]
    packages: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    unassigned: list[dict[str, Any]] = []
    for parcel in parcels:
        lines = parcel.get("lines") or known.get(str(parcel["tracking_number"]))
        if lines:
            packages.append((parcel, _items(lines)))
        else:
            unassigned.append(parcel)
    if unassigned:
        packages.extend(_share_out(unassigned, milestone.lines, packages))
    return packages


def _share_out(
    parcels: list[dict[str, Any]],
    lines: list[dict[str, Any]],
    packages: list[tuple[dict[str, Any], list[dict[str, Any]]]],
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    # Units not yet in a package, dealt round-robin; a parcel left without a unit is not confirmed
    # (Amazon wants at least one item per package) — its tracking still reaches the buyer through the rest.
    taken: dict[str, int] = {}
    for _, items in packages:
        for item in items:
            taken[item["orderItemId"]] = taken.get(item["orderItemId"], 0) + item["quantity"]
    units = [
        item["orderItemId"]
        for item in _items(lines)
        for _ in range(max(0, item["quantity"] - taken.pop(item["orderItemId"], 0)))
    ]
    shares: list[dict[str, int]] = [{} for _ in parcels]
    for position, item_id in enumerate(units):
        share = shares[position % len(parcels)]
        share[item_id] = share.get(item_id, 0) + 1
    return [
        (parcel, [{"orderItemId": k, "quantity": v} for k, v in share.items()])
        for parcel, share in zip(parcels, shares, strict=True)
        if share
    ]


def _items(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[str, int] = {}
    for line in lines:
        quantity = int(line.get("quantity") or 0)
        if quantity > 0:
            merged[str(line["line_id"])] = merged.get(str(line["line_id"]), 0) + quantity
    return [{"orderItemId": item_id, "quantity": quantity} for item_id, quantity in merged.items()]


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


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise PublishRejected("milestone time must carry a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _translate(exc: SpApiError) -> Exception:
    text = str(exc)
    if isinstance(exc, SpApiThrottled):
        return PublishThrottled(text, retry_after=exc.retry_after or 60.0)
    if isinstance(exc, SpApiAuthError):
        return PublishRejected(text)
    if exc.status is None or exc.status >= 500:
        return PublishUnavailable(text)
    return PublishRejected(text)
