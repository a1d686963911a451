"""Webhook intake: one pipeline runs any sender's WebhookSpec, then hands the delivery to the ingest queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.composition import Services, deduplication_id
from chalicelib.domain.channel_events import OrderSnapshot
from chalicelib.domain.connections import credentials
from chalicelib.domain.delivery import Delivery
from chalicelib.domain.errors import InvalidInput, TooLarge
from chalicelib.domain.validation import validate_order
from chalicelib.domain.webhooks import NotJson, WebhookRequest, WebhookSpec
from chalicelib.observability import count, logger

# SQS messages stop at 256 KiB; a bigger body travels by claim check through the raw archive.
MAX_INLINE_BYTES = 200 * 1024
# The queue message as the queue adapter writes it (JSON, ASCII): SQS's 256 KiB less room for attributes.
MAX_MESSAGE_CHARS = 250 * 1024
# Bigger bodies are refused before any HMAC work (Shopify's largest orders stay far below this).
MAX_BODY_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Answer:
    """The webhook's answer: status and `{"message": ..., **extra}`; `delivery` when one was accepted."""

    status: int
    message: str
    extra: dict[str, Any] = field(default_factory=dict)
    delivery: Delivery | None = None

    @property
    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.extra}


# What becomes of an accepted delivery: (services, delivery, exact body).
HandOff = Callable[[Services, Delivery, bytes], None]


def enqueue(svc: Services, delivery: Delivery, raw: bytes) -> None:
    """Queue the delivery with its exact body; the consumer archives it (one call before the answer)."""
    large = len(raw) > MAX_INLINE_BYTES
    try:
        text = None if large else raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and len(json.dumps(replace(delivery, raw=text).to_message())) > MAX_MESSAGE_CHARS:
        # Escaped in the message (quotes, non-ASCII as \uXXXX) it would pass SQS's limit: claim check.
        text, large = None, True
    if text is None:
        svc.raw_archive.put(delivery, raw)
        delivery = replace(delivery, payload=None if large else delivery.payload, raw=None)
    else:
        delivery = replace(delivery, raw=text)
    svc.ingest_queue.send(
        delivery.to_message(),
        group_id=delivery.message_group(),
        deduplication_id=deduplication_id(delivery.delivery_id),
    )
    # Whoever archives the body keeps the status page's count of it: here a claim-checked body; an inline
    # one is archived and counted by the consumer (queue_records.ingest_record), so the answer waits for
    # one AWS call (the SendMessage), not two.
    count("WebhookAccepted", channel=delivery.channel, store=delivery.store, aggregate=text is None)


def receive(
    spec: WebhookSpec,
    request: WebhookRequest,
    svc: Services,
    *,
    signed: bool = True,
    hand_off: HandOff = enqueue,
) -> Answer:
    """Verify, refuse or accept one delivery, and answer. `signed=False` only for a route whose trust comes
    from elsewhere (Shopify's EventBridge partner source); `hand_off` is where accepted deliveries go."""
    channel = spec.channel
    if len(request.raw) > MAX_BODY_BYTES:
        return _reject(channel, None, "too_large", 413, "body over 2 MB")
    if spec.is_ping is not None and spec.is_ping(request):
        count("WebhookPing", channel=channel)
        return Answer(200, "pong")
    found = credentials(channel, spec.account(request), connections=svc.connections, secrets=svc.secrets)
    if found is None:
        return _reject(channel, None, "unknown_store", 401, spec.unknown_store)
    connection, secrets = found
    store, now = connection.store, svc.now()
    if signed and not spec.verify(secrets["webhook_secret"], request.raw, request.headers, now):
        return _reject(channel, store, "bad_signature", 401, "invalid signature")
    early = spec.early_topic(request) if spec.early_topic is not None else None
    if early is not None and not spec.handles(early):
        return _ignored(spec, store, early)
    if isinstance(request.body, NotJson) and request.body.refused:
        # Beyond a JSON limit (nesting, number, NaN, byte order mark, encoding): no reader runs on it.
        return _reject(channel, store, "malformed", 400, request.body.refused)
    try:
        event = spec.read(store, request)
    except InvalidInput as exc:
        return _reject(channel, store, "malformed", 400, str(exc))
    if not spec.handles(event.topic) or event.external_id is None:
        return _ignored(spec, store, event.topic)
    payload = request.body if isinstance(request.body, dict) else None
    if event.topic in spec.order_topics and payload is not None:
        # Ingestion would park an order that breaks the rules: refuse it now, while the sender listens.
        try:
            check_order(svc, channel, event.topic, payload, store)
        except TooLarge as exc:
            return _reject(channel, store, "too_large", 413, str(exc))
        except InvalidInput as exc:
            return _reject(channel, store, "invalid", 400, str(exc))
    delivery = Delivery(event.delivery_id, channel, store, event.topic, now, payload, event.external_id)
    hand_off(svc, delivery, request.raw)
    return Answer(200, "accepted", delivery=delivery)


def check_order(svc: Services, channel: str, topic: str, payload: dict[str, Any], store: str) -> None:
    """The channel's normaliser and `validate_order` on a body that is a whole order, as ingestion runs
    them (pure: no I/O); InvalidInput (InvalidOrder, TooLarge) when ingestion would refuse it."""
    normaliser = svc.normalisers.get(channel)
    if normaliser is None:
        return
    event = normaliser(topic, payload, store)
    if isinstance(event, OrderSnapshot):
        validate_order(event.order, now=svc.now())


def _reject(channel: str, store: str | None, reason: str, status: int, message: str) -> Answer:
    # Never the body, never the signature: only who and why.
    logger.warning("webhook rejected", extra={"channel": channel, "store": store, "reason": reason})
    count("WebhookRejected", channel=channel, store=store, reason=reason)
    return Answer(status, message)


def _ignored(spec: WebhookSpec, store: str, topic: str) -> Answer:
    count("WebhookIgnoredTopic", channel=spec.channel, store=store, reason=topic[:64] or "none")
    return Answer(200, spec.ignored_message, {spec.ignored_key: topic})
