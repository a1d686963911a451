"""Hands an accepted delivery to the ingest queue: keep the exact bytes, then enqueue."""

from __future__ import annotations

from chalicelib.composition import Services, deduplication_id
from chalicelib.domain.delivery import Delivery
from chalicelib.observability import count

# SQS messages stop at 256 KiB; a bigger body travels by claim check through the raw archive.
MAX_INLINE_BYTES = 200 * 1024


def enqueue(svc: Services, delivery: Delivery, raw: bytes) -> None:
    """Keep the exact bytes, then queue the delivery (by claim check when the body is large)."""
    svc.raw_archive.put(delivery, raw)
    if len(raw) > MAX_INLINE_BYTES:
        delivery = Delivery(
            delivery.delivery_id,
            delivery.channel,
            delivery.store,
            delivery.topic,
            delivery.received_at,
            None,
            delivery.external_id,
        )
    svc.ingest_queue.send(
        delivery.to_message(),
        group_id=delivery.message_group(),
        deduplication_id=deduplication_id(delivery.delivery_id),
    )
    count("WebhookAccepted", channel=delivery.channel, store=delivery.store)
