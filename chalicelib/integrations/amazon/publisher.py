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

import time
from collections.abc import Callable
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
from chalicelib.integrations.amazon.order_feed import (
    ORDER_ACKNOWLEDGEMENT_FEED,
    ProcessingReport,
    cancel_reason,
    order_acknowledgement_feed,
    parse_processing_report,
)
from chalicelib.integrations.amazon.shipment import carrier_code, package_reference_id, packages_for
from chalicelib.integrations.amazon.spapi import SpApiClient

logger = Logger(service="order-hub", child=True)

_XML = "text/xml; charset=UTF-8"
_FEED_DONE, _FEED_FATAL, _FEED_CANCELLED = "DONE", "FATAL", "CANCELLED"


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
        packages = packages_for(order, milestone)
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
