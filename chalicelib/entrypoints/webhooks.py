"""Channel webhooks: verify, reject or enqueue, answer. Parsing and persistence happen behind the queue."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from chalice import Blueprint, Response

from chalicelib.composition import services
from chalicelib.domain.connections import credentials
from chalicelib.domain.delivery import Delivery
from chalicelib.entrypoints.intake import enqueue
from chalicelib.observability import count, logger

bp = Blueprint(__name__)

# Bigger bodies are refused before any HMAC work (Shopify's largest orders stay far below this).
MAX_BODY_BYTES = 2 * 1024 * 1024
JSON_AND_FORM = ["application/json", "application/x-www-form-urlencoded"]


def _raw_body() -> bytes:
    raw = bp.current_request.raw_body
    return raw.encode() if isinstance(raw, str) else bytes(raw or b"")


def _answer(status: int, message: str, **extra: Any) -> Response:
    return Response(body={"message": message, **extra}, status_code=status)


def _reject(channel: str, store: str | None, reason: str, status: int, message: str) -> Response:
    # Never the body, never the signature: only who and why.
    services()  # built before counting: the count also feeds the status page's aggregates
    logger.warning("webhook rejected", extra={"channel": channel, "store": store, "reason": reason})
    count("WebhookRejected", channel=channel, store=store, reason=reason)
    return _answer(status, message)


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw.decode("utf-8"))  # RFC 8259: JSON between systems is UTF-8
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@bp.route("/webhooks/shopify", methods=["POST"], content_types=["application/json"])
def shopify_webhook() -> Response:
    from chalicelib.integrations.shopify.eventbridge import shopify_delivery
    from chalicelib.integrations.shopify.webhook import TOPICS, verify_shopify_hmac

    raw = _raw_body()
    if len(raw) > MAX_BODY_BYTES:
        return _reject("shopify", None, "too_large", 413, "body over 2 MB")
    headers = bp.current_request.headers
    shop = headers.get("x-shopify-shop-domain", "")
    svc = services()
    found = credentials("shopify", shop, connections=svc.connections, secrets=svc.secrets)
    if found is None:
        return _reject("shopify", None, "unknown_store", 401, "unknown shop")
    connection, secrets = found
    store = connection.store
    if not verify_shopify_hmac(secrets["webhook_secret"], raw, headers.get("x-shopify-hmac-sha256")):
        return _reject("shopify", store, "bad_signature", 401, "invalid signature")
    topic = headers.get("x-shopify-topic", "")
    if topic not in TOPICS:
        count("WebhookIgnoredTopic", channel="shopify", store=store, reason=topic[:64] or "none")
        return _answer(200, "topic not handled", topic=topic)
    payload = _json(raw)
    if payload is None:
        return _reject("shopify", store, "malformed", 400, "body is not a JSON object")
    delivery = shopify_delivery(store, topic, headers, payload, svc.now())
    if delivery is None:
        return _reject("shopify", store, "malformed", 400, "missing event id or order id")
    enqueue(svc, delivery, raw)
    return _answer(200, "accepted")


@bp.route("/webhooks/woocommerce", methods=["POST"], content_types=JSON_AND_FORM)
def woocommerce_webhook() -> Response:
    from chalicelib.integrations.woocommerce.webhook import TOPICS, is_ping, verify_wc_signature

    raw = _raw_body()
    if len(raw) > MAX_BODY_BYTES:
        return _reject("woocommerce", None, "too_large", 413, "body over 2 MB")
    headers = bp.current_request.headers
    if is_ping(headers.get("content-type"), raw) is not None:
        # WooCommerce's unsigned creation ping: anything but exactly 200 fails the webhook's creation.
        count("WebhookPing", channel="woocommerce")
        return _answer(200, "pong")
    svc = services()
    source = headers.get("x-wc-webhook-source", "")
    found = credentials("woocommerce", source, connections=svc.connections, secrets=svc.secrets)
    if found is None:
        return _reject("woocommerce", None, "unknown_store", 401, "unknown store")
    connection, secrets = found
    store = connection.store
    if not verify_wc_signature(secrets["webhook_secret"], raw, headers.get("x-wc-webhook-signature")):
        return _reject("woocommerce", store, "bad_signature", 401, "invalid signature")
    topic = headers.get("x-wc-webhook-topic", "")
    if topic not in TOPICS:
        count("WebhookIgnoredTopic", channel="woocommerce", store=store, reason=topic[:64] or "none")
        return _answer(200, "topic not handled", topic=topic)
    payload = _json(raw)
    if payload is None or "id" not in payload:
        return _reject("woocommerce", store, "malformed", 400, "body is not a JSON order")
    # Core's Delivery-ID is wp_hash(webhook id . time()): shared by every delivery of that webhook in
    # the same second. With the body's hash it names one delivery; a true duplicate is byte-identical.
    body_hash = hashlib.sha256(raw).hexdigest()[:32]
    delivery_key = f"{headers.get('x-wc-webhook-delivery-id', '')}:{body_hash}"
    delivery = Delivery(
        delivery_id=f"woocommerce:{store}:{delivery_key}",
        channel="woocommerce",
        store=store,
        topic=topic,
        received_at=svc.now(),
        payload=payload,
        external_id=str(payload["id"]),
    )
    enqueue(svc, delivery, raw)
    return _answer(200, "accepted")


@bp.route("/webhooks/stripe", methods=["POST"], content_types=["application/json"])
def stripe_webhook() -> Response:
    """Stripe events for the connected account, verified from Stripe-Signature (5-minute tolerance)."""
    from chalicelib.domain.connections import STRIPE_ACCOUNT
    from chalicelib.domain.errors import InvalidInput
    from chalicelib.domain.payment_events import HANDLED, intent_of
    from chalicelib.integrations.stripe.webhook import SIGNATURE_HEADER, parse_event, verify_stripe_signature

    raw = _raw_body()
    if len(raw) > MAX_BODY_BYTES:
        return _reject("stripe", None, "too_large", 413, "body over 2 MB")
    svc = services()
    found = credentials("stripe", STRIPE_ACCOUNT, connections=svc.connections, secrets=svc.secrets)
    if found is None:
        return _reject("stripe", None, "unknown_store", 401, "no Stripe account connected")
    header = bp.current_request.headers.get(SIGNATURE_HEADER.lower())
    now = svc.now().timestamp()
    if not verify_stripe_signature(found[1]["webhook_secret"], raw, header, now=now):
        return _reject("stripe", STRIPE_ACCOUNT, "bad_signature", 401, "invalid signature")
    try:
        event = parse_event(raw)
    except InvalidInput as exc:
        return _reject("stripe", STRIPE_ACCOUNT, "malformed", 400, str(exc))
    intent_id = intent_of(event.type, event.object)
    if event.type not in HANDLED or intent_id is None:
        count("WebhookIgnoredTopic", channel="stripe", store=STRIPE_ACCOUNT, reason=event.type[:64])
        return _answer(200, "event type not handled", type=event.type)
    delivery = Delivery(
        delivery_id=f"stripe:{event.id}",
        channel="stripe",
        store=STRIPE_ACCOUNT,
        topic=event.type,
        received_at=svc.now(),
        payload=_json(raw),
        external_id=intent_id,
    )
    enqueue(svc, delivery, raw)
    return _answer(200, "accepted")


@bp.route("/webhooks/3pl/{provider}", methods=["POST"], content_types=["application/json"])
def threepl_webhook(provider: str) -> Response:
    """A 3PL's signed shipment confirmations (X-ThreePL-Signature, see integrations/threepl/webhook.py)."""
    from chalicelib.domain.errors import InvalidInput
    from chalicelib.integrations.threepl.webhook import EVENT_TYPES, SIGNATURE_HEADER, parse_threepl_event
    from chalicelib.integrations.threepl.webhook import verify_threepl_signature as verify

    raw = _raw_body()
    if len(raw) > MAX_BODY_BYTES:
        return _reject("3pl", None, "too_large", 413, "body over 2 MB")
    svc = services()
    found = credentials("3pl", provider, connections=svc.connections, secrets=svc.secrets)
    if found is None:
        return _reject("3pl", None, "unknown_store", 401, "unknown 3PL provider")
    header = bp.current_request.headers.get(SIGNATURE_HEADER.lower())
    if not verify(found[1]["webhook_secret"], raw, header, now=svc.now().timestamp()):
        return _reject("3pl", provider, "bad_signature", 401, "invalid signature")
    try:
        event = parse_threepl_event(raw)
    except InvalidInput as exc:
        return _reject("3pl", provider, "malformed", 400, str(exc))
    if event.type not in EVENT_TYPES:
        count("WebhookIgnoredTopic", channel="3pl", store=provider, reason=event.type[:64])
        return _answer(200, "event type not handled", type=event.type)
    delivery = Delivery(
        delivery_id=f"3pl:{provider}:{event.id}",
        channel="3pl",
        store=provider,
        topic=event.type,
        received_at=svc.now(),
        payload=_json(raw),
        external_id=event.order_id,
    )
    enqueue(svc, delivery, raw)
    return _answer(200, "accepted")


@bp.route("/webhooks/carriers/{carrier}", methods=["POST"], content_types=["application/json"])
def carrier_webhook(carrier: str) -> Response:
    """Carrier tracking events; EasyPost's, verified from X-Hmac-Signature exactly as EasyPost signs."""
    from chalicelib.domain.connections import CARRIER_ACCOUNT
    from chalicelib.domain.errors import InvalidInput
    from chalicelib.integrations.easypost.webhook import (
        SIGNATURE_HEADER,
        parse_tracker_event,
        verify_easypost_signature,
    )

    if carrier != "easypost":
        return _answer(404, f"no carrier integration {carrier!r} (easypost is)")
    raw = _raw_body()
    if len(raw) > MAX_BODY_BYTES:
        return _reject("easypost", None, "too_large", 413, "body over 2 MB")
    svc = services()
    found = credentials("easypost", CARRIER_ACCOUNT, connections=svc.connections, secrets=svc.secrets)
    if found is None:
        return _reject("easypost", None, "unknown_store", 401, "no EasyPost account connected")
    header = bp.current_request.headers.get(SIGNATURE_HEADER.lower())
    if not verify_easypost_signature(found[1]["webhook_secret"], raw, header):
        return _reject("easypost", CARRIER_ACCOUNT, "bad_signature", 401, "invalid signature")
    body = _json(raw)
    description = str((body or {}).get("description") or "")
    if body is not None and not description.startswith("tracker."):
        # Other EasyPost events (batches, refunds, ...) are not the hub's: acknowledged, counted.
        count("WebhookIgnoredTopic", channel="easypost", store=CARRIER_ACCOUNT, reason=description[:64])
        return _answer(200, "event type not handled", type=description)
    try:
        event = parse_tracker_event(raw)
    except InvalidInput as exc:
        return _reject("easypost", CARRIER_ACCOUNT, "malformed", 400, str(exc))
    delivery = Delivery(
        delivery_id=f"easypost:{event.event_id}",
        channel="easypost",
        store=CARRIER_ACCOUNT,
        topic=event.description,
        received_at=svc.now(),
        payload=body,
        external_id=event.tracking_code,
    )
    enqueue(svc, delivery, raw)
    return _answer(200, "accepted")
