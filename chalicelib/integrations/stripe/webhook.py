"""Stripe webhook deliveries: the Stripe-Signature check and the event envelope, in plain Python."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.domain import webhooks
from chalicelib.domain.connections import STRIPE_ACCOUNT
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.payment_events import HANDLED, intent_of
from chalicelib.integrations.signed_headers import any_matches, parse_timestamped

SIGNATURE_HEADER = "Stripe-Signature"
DEFAULT_TOLERANCE_S = 300


def verify_stripe_signature(
    secret: str, raw_body: bytes, header: str | None, *, now: float, tolerance: int = DEFAULT_TOLERANCE_S
) -> bool:
    """True when one `v1` signature in `header` is the HMAC-SHA256 of "<t>.<raw body>" under `secret`.

    The secret is the endpoint's whole `whsec_...` string, used as UTF-8 (not decoded). Other schemes
    (`v0`) are ignored; several `v1` can be present while a secret is being rolled, and any match passes.
    A `t` older than `now - tolerance` is refused, to bound replays; like Stripe's SDK, a future `t` is not.
    """
    if not secret or not header:
        return False
    timestamp, signatures = parse_timestamped(header)
    if timestamp is None or not signatures:
        return False
    if tolerance > 0 and int(timestamp) < now - tolerance:
        return False
    return any_matches(secret, timestamp, raw_body, signatures)


@dataclass(frozen=True)
class StripeEvent:
    """A snapshot event: `object` is the resource (PaymentIntent, Charge...) as it was when it fired."""

    id: str
    type: str
    created: int
    object: dict[str, Any]
    api_version: str | None


def parse_event(raw_body: bytes) -> StripeEvent:
    """The event envelope of a verified delivery; thin (v2) events and malformed bodies raise InvalidInput."""
    return stripe_event(webhooks.load_json(raw_body))


def stripe_event(parsed: Any) -> StripeEvent:
    """The event envelope of an already parsed body (`NOT_JSON` when it was not JSON)."""
    body = webhooks.json_object(parsed, "stripe event")
    kind = body.get("object")
    if kind == "v2.core.event":
        # Thin events carry no snapshot: they need a fetch through the v2 API, which the hub does not use.
        raise InvalidInput("stripe event: thin (v2.core.event) events are not accepted here")
    if kind is not None and kind != "event":
        raise InvalidInput(f"stripe event: object is {kind!r}, not 'event'")
    event_id, event_type, created = body.get("id"), body.get("type"), body.get("created")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidInput("stripe event: id is missing")
    if not isinstance(event_type, str) or not event_type:
        raise InvalidInput("stripe event: type is missing")
    if not isinstance(created, int) or isinstance(created, bool):
        raise InvalidInput("stripe event: created is not a unix timestamp")
    data = body.get("data")
    resource = data.get("object") if isinstance(data, dict) else None
    if not isinstance(resource, dict):
        raise InvalidInput("stripe event: data.object is missing")
    api_version = body.get("api_version")
    if api_version is not None and not isinstance(api_version, str):
        raise InvalidInput("stripe event: api_version is not a string")
    return StripeEvent(
        id=event_id, type=event_type, created=created, object=resource, api_version=api_version
    )


def _read(store: str, request: webhooks.WebhookRequest) -> webhooks.WebhookEvent:
    event = stripe_event(request.body)
    # Grouped by PaymentIntent; an event about no PaymentIntent is one the hub does not follow.
    return webhooks.WebhookEvent(event.type, f"stripe:{event.id}", intent_of(event.type, event.object))


# Events for the connected account, verified from Stripe-Signature (5-minute tolerance).
STRIPE_WEBHOOK = webhooks.WebhookSpec(
    channel="stripe",
    account=webhooks.fixed(STRIPE_ACCOUNT),
    unknown_store="no Stripe account connected",
    verify=webhooks.timestamped_signature_in(SIGNATURE_HEADER.lower(), verify_stripe_signature),
    read=_read,
    handles=HANDLED.__contains__,
)
