"""An EasyPost tracker event as the domain's TrackingUpdate (what the fulfilment stage applies)."""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.domain.fulfilment import TrackingUpdate
from chalicelib.integrations.easypost.webhook import normalise, parse_tracker_event


def tracking_update(raw: bytes) -> TrackingUpdate:
    """A verified EasyPost tracker event (its raw body) as the update the fulfilment stage applies."""
    event = parse_tracker_event(raw)
    at = event.last_detail_at or event.updated_at or event.created_at or datetime.now(UTC)
    return TrackingUpdate(
        event_id=event.event_id,
        tracking_number=event.tracking_code,
        carrier=event.carrier or "unknown",
        status=normalise(event.status, event.status_detail).value.lower(),
        status_detail=event.status_detail,
        at=at,
        estimated_at=event.est_delivery_date,
    )
