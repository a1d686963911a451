"""Shopify webhooks delivered through Amazon EventBridge (partner event source → rule → ingest queue)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
