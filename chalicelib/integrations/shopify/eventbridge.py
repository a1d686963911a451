"""Shopify webhooks delivered through Amazon EventBridge (partner event source → rule → ingest queue)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chalicelib.domain.delivery import Delivery
from chalicelib.domain.errors import MalformedDelivery

PARTNER_SOURCE_PREFIX = "aws.partner/shopify.com"


def is_shopify_event(body: Mapping[str, Any]) -> bool:
    """An EventBridge event from a Shopify partner event source (as an SQS target receives it)."""
    return "detail-type" in body and str(body.get("source", "")).startswith(PARTNER_SOURCE_PREFIX)


def unwrap(body: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The webhook headers (lower-cased names) and payload from `detail.metadata` and `detail.payload`.

    EventBridge deliveries are not HMAC-signed (only HTTPS ones are): trust comes from the partner
    event source, which only Shopify can publish to, and from the rule that routes it here.
    """
    detail = body.get("detail")
    if not isinstance(detail, Mapping):
        raise MalformedDelivery("Shopify EventBridge event without detail")
    metadata, payload = detail.get("metadata"), detail.get("payload")
    if not isinstance(metadata, Mapping) or not isinstance(payload, Mapping):
        raise MalformedDelivery("Shopify EventBridge event without metadata or payload")
    headers = {str(k).lower(): str(v) for k, v in metadata.items()}
    for required in ("x-shopify-topic", "x-shopify-shop-domain"):
        if not headers.get(required):
            raise MalformedDelivery(f"Shopify EventBridge event without {required}")
    return headers, dict(payload)


def shopify_delivery(
    store: str, topic: str, headers: Mapping[str, str], payload: dict[str, Any], received_at: datetime
) -> Delivery | None:
    """The delivery of one Shopify webhook, HTTPS or EventBridge alike; None without the ids it needs.

    One merchant action gives one Event-Id to each topic it fires, and retries keep it: the same id
    for both routes of one event, so that both at once still apply it once.
    """
    external_id = payload.get("order_id") if topic.startswith("refunds/") else payload.get("id")
    event_id = headers.get("x-shopify-event-id") or headers.get("x-shopify-webhook-id")
    if not event_id or external_id is None:
        return None
    return Delivery(
        delivery_id=f"shopify:{store}:{event_id}:{topic}",
        channel="shopify",
        store=store,
        topic=topic,
        received_at=received_at,
        payload=payload,
        external_id=str(external_id),
    )
