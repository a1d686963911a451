"""An EasyPost tracker event as the domain's TrackingUpdate (what the fulfilment stage applies)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.domain.fulfilment import TrackingUpdate
from chalicelib.integrations.easypost.webhook import normalise, tracker_event


def tracking_update(payload: dict[str, Any]) -> TrackingUpdate:
    """A verified EasyPost tracker event (parsed once, at the webhook) as the fulfilment stage's update."""
    event = tracker_event(payload)
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
