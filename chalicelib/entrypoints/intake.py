"""Hands an accepted delivery to the ingest queue: its exact body inline, or by claim check when large."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.composition import Services, deduplication_id
from chalicelib.domain.delivery import Delivery
from chalicelib.observability import count

# SQS messages stop at 256 KiB; a bigger body travels by claim check through the raw archive.
MAX_INLINE_BYTES = 200 * 1024


def enqueue(svc: Services, delivery: Delivery, raw: bytes) -> None:
    """Queue the delivery with its exact body; the consumer archives it (one call before the answer)."""
    try:
        text = raw.decode("utf-8") if len(raw) <= MAX_INLINE_BYTES else None
    except UnicodeDecodeError:
        text = None
    if text is None:
        svc.raw_archive.put(delivery, raw)
        large = len(raw) > MAX_INLINE_BYTES
        delivery = replace(delivery, payload=None if large else delivery.payload, raw=None)
    else:
        delivery = replace(delivery, raw=text)
    svc.ingest_queue.send(
        delivery.to_message(),
        group_id=delivery.message_group(),
        deduplication_id=deduplication_id(delivery.delivery_id),
    )
    count("WebhookAccepted", channel=delivery.channel, store=delivery.store)
