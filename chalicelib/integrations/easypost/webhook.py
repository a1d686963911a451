"""EasyPost tracker webhooks: the X-Hmac-Signature check, the Event envelope, the hub's tracking statuses."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from chalicelib.domain import webhooks
from chalicelib.domain.connections import CARRIER_ACCOUNT
from chalicelib.domain.errors import InvalidInput

SIGNATURE_HEADER = "X-Hmac-Signature"
SIGNATURE_PREFIX = "hmac-sha256-hex="
TRACKER_EVENTS = frozenset({"tracker.created", "tracker.updated"})
# EasyPost's documented Tracker.status values; anything else is read as "unknown".
EASYPOST_STATUSES = frozenset(
    {
        "unknown",
        "pre_transit",
        "in_transit",
        "out_for_delivery",
        "delivered",
        "available_for_pickup",
        "return_to_sender",
        "failure",
        "cancelled",
        "error",
    }
)
# EasyPost keeps a failed attempt that the carrier will retry under in_transit (its FAQ "Failed
# deliveries, second attempts"); the status_detail is then the only machine-readable sign of it.
# `delivery_attempted` is not in EasyPost's documented list; it is accepted for carriers that pass it on.
_ATTEMPT_DETAILS = frozenset({"delivery_exception", "delivery_attempted"})
# Details that mean the parcel is gone or broken whatever the status says: someone has to act.
_EXCEPTION_DETAILS = frozenset({"lost", "damaged"})


def verify_easypost_signature(secret: str, raw_body: bytes, header: str | None) -> bool:
    """True when `header` is `hmac-sha256-hex=` + the hex HMAC-SHA256 of the raw body under `secret`.

    The key is the webhook secret NFKD-normalised and UTF-8 encoded, exactly as EasyPost's client
    libraries compute it (an NFC-keyed HMAC does not match for secrets with accents). EasyPost signs no
    timestamp, so a captured delivery can be replayed: idempotency on the event id is what makes a
    replay harmless, not this check. The header is only sent when the webhook has a secret set.
    """
    if not secret or not header:
        return False
    scheme, sep, digest = header.strip().partition("=")
    if not sep or f"{scheme}=" != SIGNATURE_PREFIX:
        return False
    try:
        given = digest.strip().lower().encode("ascii")
    except UnicodeEncodeError:
        return False
    key = unicodedata.normalize("NFKD", secret).encode("utf-8")
    expected = hmac.new(key, raw_body, hashlib.sha256).hexdigest().encode("ascii")
    return hmac.compare_digest(expected, given)


def _description(request: webhooks.WebhookRequest) -> str | None:
    """The event's kind, read before the body: None when the body is no JSON object (`read` says why)."""
    body = request.body
    return str(body.get("description") or "") if isinstance(body, dict) else None


def _read(store: str, request: webhooks.WebhookRequest) -> webhooks.WebhookEvent:
    event = tracker_event(request.body)
    return webhooks.WebhookEvent(event.description, f"easypost:{event.event_id}", event.tracking_code)


# Other EasyPost events (batches, refunds, ...) are not the hub's: acknowledged, counted.
EASYPOST_WEBHOOK = webhooks.WebhookSpec(
    channel="easypost",
    account=webhooks.fixed(CARRIER_ACCOUNT),
    unknown_store="no EasyPost account connected",
    verify=webhooks.signature_in(SIGNATURE_HEADER.lower(), verify_easypost_signature),
    read=_read,
    handles=lambda topic: topic.startswith("tracker."),
    early_topic=_description,
)


class TrackingStatus(StrEnum):
    """The hub's carrier-neutral view of where a parcel is.

    `normalise` maps EasyPost's (status, status_detail) onto it:

    ====================== ================================== ====================
    EasyPost status        status_detail                      TrackingStatus
    ====================== ================================== ====================
    pre_transit            any                                PRE_TRANSIT
    in_transit             delivery_exception (an attempt     FAILED_ATTEMPT
                           the carrier will retry)
    in_transit             lost, damaged                      EXCEPTION
    in_transit             anything else (delays included:    IN_TRANSIT
                           they show in est_delivery_date)
    out_for_delivery       delivery_exception                 FAILED_ATTEMPT
    out_for_delivery       lost, damaged                      EXCEPTION
    out_for_delivery       anything else                      OUT_FOR_DELIVERY
    available_for_pickup   any                                AVAILABLE_FOR_PICKUP
    delivered              any                                DELIVERED
    return_to_sender       any                                RETURNED_TO_SENDER
    failure                any                                EXCEPTION
    cancelled, error       any                                EXCEPTION
    unknown, or a value    any                                UNKNOWN
    EasyPost does not list
    ====================== ================================== ====================

    Decisions: AVAILABLE_FOR_PICKUP is its own status, neither a failure nor a delivery: it is the
    normal last step of a parcel sent to a locker or pickup point, and also where a carrier leaves one
    after giving up on doorstep attempts; either way the customer has to collect it, and the order is
    not delivered until the carrier says `delivered`. `failure` is EXCEPTION, not FAILED_ATTEMPT: EasyPost
    only reports it once the carrier has stopped trying, so an operator has to act. `delivery_attempted`
    (not an EasyPost value) is read like `delivery_exception`.
    """

    UNKNOWN = "UNKNOWN"
    PRE_TRANSIT = "PRE_TRANSIT"
    IN_TRANSIT = "IN_TRANSIT"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    FAILED_ATTEMPT = "FAILED_ATTEMPT"
    AVAILABLE_FOR_PICKUP = "AVAILABLE_FOR_PICKUP"
    DELIVERED = "DELIVERED"
    RETURNED_TO_SENDER = "RETURNED_TO_SENDER"
    EXCEPTION = "EXCEPTION"


_BY_STATUS = {
    "pre_transit": TrackingStatus.PRE_TRANSIT,
    "in_transit": TrackingStatus.IN_TRANSIT,
    "out_for_delivery": TrackingStatus.OUT_FOR_DELIVERY,
    "available_for_pickup": TrackingStatus.AVAILABLE_FOR_PICKUP,
    "delivered": TrackingStatus.DELIVERED,
    "return_to_sender": TrackingStatus.RETURNED_TO_SENDER,
    "failure": TrackingStatus.EXCEPTION,
    "cancelled": TrackingStatus.EXCEPTION,
    "error": TrackingStatus.EXCEPTION,
}
_FINAL = frozenset({TrackingStatus.DELIVERED, TrackingStatus.RETURNED_TO_SENDER})


def normalise(status: str | None, status_detail: str | None = None) -> TrackingStatus:
    """EasyPost's status and status_detail as a TrackingStatus (the table on TrackingStatus)."""
    raw = (status or "").strip().lower()
    detail = (status_detail or "").strip().lower()
    if raw in ("in_transit", "out_for_delivery"):
        if detail in _ATTEMPT_DETAILS:
            return TrackingStatus.FAILED_ATTEMPT
        if detail in _EXCEPTION_DETAILS:
            return TrackingStatus.EXCEPTION
    return _BY_STATUS.get(raw, TrackingStatus.UNKNOWN)


def is_final(status: TrackingStatus) -> bool:
    """True when no later carrier event can move the parcel on: delivered, or back with the sender.

    EXCEPTION is not final: carriers find lost parcels and error trackers recover.
    """
    return status in _FINAL


@dataclass(frozen=True)
class TrackerEvent:
    """What the hub keeps of a tracker Event: no addresses, locations or `signed_by` names."""

    event_id: str  # evt_...: the idempotency key of the delivery
    description: str  # tracker.created | tracker.updated
    mode: str | None  # test | production
    created_at: datetime | None
    tracker_id: str  # trk_...
    tracking_code: str
    carrier: str | None
    status: str  # EasyPost's raw status
    status_detail: str | None
    updated_at: datetime | None  # the tracker's own updated_at: orders updates that arrive out of order
    est_delivery_date: datetime | None
    last_detail_at: datetime | None  # the newest TrackingDetail
    last_detail_message: str | None
    previous_status: str | None  # from previous_attributes, when the status changed
    public_url: str | None

    @property
    def tracking_status(self) -> TrackingStatus:
        return normalise(self.status, self.status_detail)


def parse_tracker_event(raw_body: bytes) -> TrackerEvent:
    """The tracker Event of a verified delivery; anything else, or a malformed one, raises InvalidInput."""
    return tracker_event(webhooks.load_json(raw_body))


def tracker_event(parsed: Any) -> TrackerEvent:
    """The tracker Event of an already parsed body (`NOT_JSON` when it was not JSON)."""
    body = webhooks.json_object(parsed, "easypost event")
    if body.get("object") not in (None, "Event"):
        raise InvalidInput(f"easypost event: object is {str(body.get('object'))[:40]!r}, not 'Event'")
    event_id = _required_str(body, "id", "event")
    description = _required_str(body, "description", "event")
    if description not in TRACKER_EVENTS:
        raise InvalidInput(f"easypost event: {description[:60]!r} is not a tracker event")
    tracker = body.get("result")
    if not isinstance(tracker, dict) or tracker.get("object") not in (None, "Tracker"):
        raise InvalidInput("easypost event: result is not a Tracker")
    previous = body.get("previous_attributes")
    if previous is not None and not isinstance(previous, dict):
        raise InvalidInput("easypost event: previous_attributes is not an object")
    last_at, last_message = _newest_detail(tracker.get("tracking_details"))
    return TrackerEvent(
        event_id=event_id,
        description=description,
        mode=_optional_str(body, "mode", "event"),
        created_at=_datetime(body.get("created_at"), "event created_at"),
        tracker_id=_required_str(tracker, "id", "tracker"),
        tracking_code=_required_str(tracker, "tracking_code", "tracker"),
        carrier=_optional_str(tracker, "carrier", "tracker"),
        status=_required_str(tracker, "status", "tracker"),
        status_detail=_optional_str(tracker, "status_detail", "tracker"),
        updated_at=_datetime(tracker.get("updated_at"), "tracker updated_at"),
        est_delivery_date=_datetime(tracker.get("est_delivery_date"), "est_delivery_date"),
        last_detail_at=last_at,
        last_detail_message=last_message,
        previous_status=_optional_str(previous or {}, "status", "previous_attributes"),
        public_url=_optional_str(tracker, "public_url", "tracker"),
    )


def _newest_detail(details: Any) -> tuple[datetime | None, str | None]:
    if details is None:
        return None, None
    if not isinstance(details, list):
        raise InvalidInput("easypost event: tracking_details is not a list")
    newest: tuple[datetime, str | None] | None = None
    for detail in details:
        if not isinstance(detail, dict):
            raise InvalidInput("easypost event: a tracking detail is not an object")
        at = _datetime(detail.get("datetime"), "tracking detail datetime")
        if at is None:
            continue
        message = _optional_str(detail, "message", "tracking detail")
        # `>=`: of details stamped alike, the later one in EasyPost's (chronological) list wins.
        if newest is None or at >= newest[0]:
            newest = (at, message)
    return newest if newest is not None else (None, None)


def _required_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"easypost event: {where} {key} is missing")
    return value


def _optional_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"easypost event: {where} {key} is not a string")
    return value


def _datetime(value: Any, what: str) -> datetime | None:
    """An aware datetime from EasyPost's ISO 8601 text; without an offset it is UTC, as EasyPost says."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"easypost event: {what} is not a string")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)  # 3.11+: "Z", fractions and bare dates included
    except ValueError:
        raise InvalidInput(f"easypost event: {what} is not a date: {text[:40]!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
