"""The SQS handlers' work, one record at a time: a failing record fails alone (queue_handlers batches)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib import resources
from chalicelib.composition import Services, services, shopify_partner_event, webhook_spec
from chalicelib.domain import ingest as ingest_use_case
from chalicelib.domain.delivery import Delivery
from chalicelib.domain.errors import MalformedDelivery
from chalicelib.domain.ingest import IngestResult, Outcome
from chalicelib.domain.parking import ParkedMessage, is_permanent
from chalicelib.entrypoints import amazon_delivery
from chalicelib.entrypoints.intake import receive
from chalicelib.observability import count, logger, seconds, tally


def resolve(delivery: Delivery, svc: Services) -> Delivery:
    """Fetch a claim-checked body from the raw archive."""
    if delivery.payload is not None:
        return delivery
    archived = svc.raw_archive.get(delivery.delivery_id)
    if archived is None:
        raise MalformedDelivery(f"delivery {delivery.delivery_id} is neither inline nor archived")
    try:
        payload = json.loads(archived.raw)
    except ValueError as exc:
        raise MalformedDelivery(f"archived delivery {delivery.delivery_id} is not JSON") from exc
    return delivery.with_payload(payload)


def from_shopify_event(body: dict[str, Any], raw: str, svc: Services) -> Delivery | None:
    """A Shopify webhook that came through EventBridge, as the delivery its HTTPS twin would be."""
    from chalicelib.domain.webhooks import WebhookRequest

    partner = shopify_partner_event(body)
    if partner is None:
        raise MalformedDelivery("not a Shopify EventBridge event")
    headers, payload = partner
    request = WebhookRequest(raw.encode(), headers, body=payload)
    # Not HMAC-signed: trust comes from the partner event source (see eventbridge.unwrap).
    answer = receive(webhook_spec("shopify"), request, svc, signed=False, hand_off=_archive_eventbridge)
    if answer.delivery is None and answer.status != 200:
        raise MalformedDelivery(f"Shopify EventBridge event refused: {answer.message}")
    return answer.delivery


def _archive_eventbridge(svc: Services, delivery: Delivery, raw: bytes) -> None:
    """Already on the ingest queue: archived as received, then applied by this very record."""
    svc.raw_archive.put(delivery, raw)
    count("WebhookAccepted", channel="shopify", store=delivery.store, reason="eventbridge")


def _json_body(record: SQSRecord, what: str) -> Any:
    """The record's body read as JSON; MalformedDelivery (permanent: parked) when it cannot be."""
    try:
        return json.loads(record.body)
    except (ValueError, RecursionError) as exc:
        raise MalformedDelivery(f"{what} is not JSON (or nested too deep)") from exc


def _first_receive(record: SQSRecord) -> bool:
    """The record's first delivery to a consumer (a retried one was counted on its first)."""
    attributes = record.raw_event.get("attributes") or {}
    return str(attributes.get("ApproximateReceiveCount", "1")) == "1"


def ingest_record(record: SQSRecord) -> None:
    svc = services()
    body = _json_body(record, "queued delivery")
    if isinstance(body, dict) and shopify_partner_event(body) is not None:
        converted = from_shopify_event(body, record.body, svc)
        if converted is None:
            return
        delivery = converted
    else:
        delivery = Delivery.from_message(record.body)
        if delivery.raw is not None:
            svc.raw_archive.put(delivery, delivery.raw.encode("utf-8"))
            if _first_receive(record):  # the edge left this count to its archiver (intake.enqueue)
                tally("WebhookAccepted", channel=delivery.channel, store=delivery.store)
        delivery = resolve(delivery, svc)
    if amazon_delivery.is_notification(delivery):
        # A replayed Amazon delivery: its archive holds the notification, so the order is read again.
        delivery = amazon_delivery.refetched(delivery, svc)
    if delivery.channel == "stripe":
        apply_stripe(delivery, svc)
        return
    if delivery.channel in ("3pl", "easypost"):
        apply_fulfilment(delivery, svc)
        return
    result = ingest(delivery, svc)
    logger.info(
        "delivery applied",
        extra={
            "delivery_id": delivery.delivery_id,
            "channel": delivery.channel,
            "outcome": result.outcome.value,
            "order_id": result.order_id,
        },
    )
    name = "DeliveryDuplicate" if result.outcome is Outcome.DUPLICATE else "DeliveryProcessed"
    count(name, channel=delivery.channel, store=delivery.store, reason=result.outcome.value)
    seconds("DeliveryLag", (svc.now() - delivery.received_at).total_seconds(), channel=delivery.channel)


# Another writer changed the order between ingestion's read and its write (the lifecycle, the outbox): the
# delivery is applied again on the fresh order at once, rather than after the queue's visibility timeout.
INGEST_ATTEMPTS = 4


def ingest(delivery: Delivery, svc: Services) -> IngestResult:
    """A sales channel's delivery applied to the hub's orders (the ingest use case). Ingestion is
    idempotent (the delivery id is written with the change), so applying it again is safe."""
    from chalicelib.domain.errors import ConcurrentUpdate

    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            return ingest_use_case.ingest(
                delivery,
                normalisers=svc.normalisers,
                orders=svc.orders,
                workflow=svc.workflow,
                now=svc.now,
                compensators=svc.compensators,
                channel_returns=svc.record_channel_return,
            )
        except ConcurrentUpdate as exc:
            # Only a lost race is retried here; its subclasses are refusals (not cancellable, ...).
            if type(exc) is not ConcurrentUpdate or attempt == INGEST_ATTEMPTS:
                raise
            count("IngestConflict", channel=delivery.channel, store=delivery.store, reason="retried")
    raise AssertionError("unreachable")


def apply_stripe(delivery: Delivery, svc: Services) -> None:
    """A verified Stripe event (queued by POST /webhooks/stripe, grouped by PaymentIntent)."""
    from chalicelib.domain.payment_events import apply_stripe_event

    payload = delivery.payload or {}
    data = payload.get("data")
    resource = data.get("object") if isinstance(data, dict) else None
    if not isinstance(resource, dict) or not isinstance(payload.get("id"), str):
        raise MalformedDelivery("queued Stripe event without id or data.object")
    result = apply_stripe_event(
        payload["id"], delivery.topic, resource, orders=svc.orders, workflow=svc.workflow, now=svc.now
    )
    logger.info(
        "stripe event applied",
        extra={"delivery_id": delivery.delivery_id, "outcome": result.outcome, "order_id": result.order_id},
    )
    name = "DeliveryDuplicate" if result.outcome == "duplicate" else "DeliveryProcessed"
    count(name, channel="stripe", store=delivery.store, reason=result.outcome)


def apply_fulfilment(delivery: Delivery, svc: Services) -> None:
    """A verified 3PL confirmation (grouped by order) or carrier tracking event (grouped by parcel)."""
    import contextlib

    from chalicelib.domain import fulfilment
    from chalicelib.domain.errors import DuplicateDelivery
    from chalicelib.domain.returns.receiving import apply_return_tracking, is_return_id

    if svc.orders.has_delivery(delivery.delivery_id):
        count("DeliveryDuplicate", channel=delivery.channel, store=delivery.store, reason="duplicate")
        return
    payload = delivery.payload or {}  # parsed once, at the webhook: read as it is, never re-serialised
    order_id: str | None
    if delivery.channel == "3pl" and delivery.topic in RETURN_TOPICS:
        order_id, outcome = apply_return(delivery, payload, svc)
    elif delivery.channel == "3pl":
        update = svc.threepl_update(payload)
        order_id = update.order_id
        outcome = fulfilment.apply_threepl_event(
            update,
            orders=svc.orders,
            store=svc.store(),
            workflow=svc.workflow,
            trackers=svc.trackers,
            now=svc.now,
        )
    else:
        tracking = svc.tracking_update(payload)
        link = svc.store().shipment_for_tracking(tracking.tracking_number)
        order_id = link[0] if link else None
        if link is not None and is_return_id(link[1]):
            # A return parcel on its way back to the warehouse.
            outcome = apply_return_tracking(
                link[0], link[1], tracking.status, tracking.at, orders=svc.orders
            )["status"]
        else:
            outcome = fulfilment.apply_tracking(
                tracking, orders=svc.orders, store=svc.store(), workflow=svc.workflow, now=svc.now
            )
    if order_id is not None and outcome != "unmatched":
        with contextlib.suppress(DuplicateDelivery):
            svc.orders.record_delivery(delivery.delivery_id, order_id)
    logger.info(
        "fulfilment event applied",
        extra={"delivery_id": delivery.delivery_id, "outcome": outcome, "order_id": order_id},
    )
    count("DeliveryProcessed", channel=delivery.channel, store=delivery.store, reason=outcome)


# A 3PL's returns desk events: about a return the hub announced, applied by the returns stage.
RETURN_TOPICS = frozenset({"return.received", "return.inspected"})


def apply_return(delivery: Delivery, payload: dict[str, Any], svc: Services) -> tuple[str | None, str]:
    """A 3PL's receipt or inspection of a return: (the order it belongs to, the outcome)."""
    from chalicelib.domain.returns import receiving

    event = svc.return_event(payload, delivery.store)
    result = receiving.apply_return_event(
        event, orders=svc.orders, store=svc.store(), workflow=svc.workflow, now=svc.now
    )
    order_id = result.get("order_id") if isinstance(result, dict) else None
    outcome = result.get("outcome") if isinstance(result, dict) else None
    return (order_id if isinstance(order_id, str) else None), str(outcome or "applied")


def parking(queue: resources.QueueSpec, handler: Callable[[SQSRecord], None]) -> Callable[[SQSRecord], None]:
    """The record handler, with a permanent failure parked at once (domain/parking.py) instead of raised.

    A parked record counts as done for the batch: SQS deletes it and its FIFO group moves on. A transient
    failure is raised, as is a permanent one that could not be parked: the queue retries it.
    """

    def run(record: SQSRecord) -> None:
        try:
            handler(record)
        except Exception as exc:
            if not is_permanent(exc) or not park(queue, record, exc):
                raise

    return run


def park(queue: resources.QueueSpec, record: SQSRecord, error: BaseException) -> bool:
    svc = services()
    if svc.parking is None:
        return False
    attributes = {
        name: attribute.string_value
        for name, attribute in (record.message_attributes or {}).items()
        if attribute is not None and attribute.string_value is not None
    }
    message = ParkedMessage.of(
        error,
        body=record.body,
        message_id=record.message_id,
        group_id=record.attributes.message_group_id,
        parked_at=svc.now(),
        receive_count=int(record.attributes.approximate_receive_count or 1),
        attributes=attributes,
    )
    try:
        svc.parking.park(queue.key, message)
    except Exception:
        logger.exception(
            "parking failed: the message stays for the queue's retries", extra={"queue": queue.name}
        )
        return False
    channel, store = _sender(
        record.body, "amazon" if queue is resources.AMAZON_NOTIFICATIONS_QUEUE else "unknown"
    )
    logger.warning(
        "delivery parked",
        extra={
            "queue": queue.name,
            "message_id": record.message_id,
            "reason": message.reason,
            "error": message.error,
            "channel": channel,
            "store": store,
        },
    )
    count("DeliveryParked", channel=channel, store=store, reason=message.reason)
    return True


def _sender(body: str, default: str) -> tuple[str, str | None]:
    """The channel and store a queued body names, when it names them (a poison body may not parse)."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return default, None
    if not isinstance(message, dict):
        return default, None
    channel, store = message.get("channel"), message.get("store")
    return (
        channel[:64] if isinstance(channel, str) else default,
        store[:250] if isinstance(store, str) else None,
    )


def amazon_notification_record(record: SQSRecord) -> None:
    """An SP-API ORDER_CHANGE notification: fetch the order (notifications are triggers, not truth)."""
    svc = services()
    body = _json_body(record, "notification")
    change = svc.amazon_notification(body)
    if change is None:
        count("WebhookIgnoredTopic", channel="amazon", reason=str(body.get("NotificationType"))[:64])
        return
    delivery_id = f"amazon:{change.notification_id}"
    if svc.orders.has_delivery(delivery_id):
        count("DeliveryDuplicate", channel="amazon", store=change.seller_id, reason="duplicate")
        return
    # Parked in the DLQ at once when the seller is not connected: once it is, an operator redrives it.
    delivery = amazon_delivery.order_delivery(svc, change, delivery_id)
    svc.raw_archive.put(delivery, record.body.encode())
    count("WebhookAccepted", channel="amazon", store=delivery.store)
    result = ingest(delivery, svc)
    name = "DeliveryDuplicate" if result.outcome is Outcome.DUPLICATE else "DeliveryProcessed"
    count(name, channel="amazon", store=delivery.store, reason=result.outcome.value)
    seconds("DeliveryLag", (svc.now() - change.event_time).total_seconds(), channel="amazon")
