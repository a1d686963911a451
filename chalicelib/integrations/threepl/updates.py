"""A 3PL's webhook event as the domain's ThreePLUpdate (what the fulfilment stage applies)."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.fulfilment import ShippedParcel, ThreePLUpdate
from chalicelib.integrations.threepl.webhook import threepl_event


def threepl_update(payload: dict[str, Any]) -> ThreePLUpdate:
    """A verified 3PL event (parsed once, at the webhook) as the update the fulfilment stage applies."""
    event = threepl_event(payload)
    shipment = event.shipment
    return ThreePLUpdate(
        event_id=event.id,
        type=event.type,
        order_id=event.order_id,
        shipment_id=event.reference,
        fulfilment_order_id=event.fulfillment_order_id,
        provider_shipment_id=shipment.id if shipment else None,
        lines=[{"line_id": ln.line_id, "sku": ln.sku, "quantity": ln.quantity} for ln in shipment.lines]
        if shipment
        else [],
        parcels=[
            ShippedParcel(
                carrier=p.carrier,
                tracking_number=p.tracking_code,
                lines=[{"line_id": ln.line_id, "quantity": ln.quantity} for ln in p.lines],
            )
            for p in (shipment.parcels if shipment else ())
        ],
        at=shipment.shipped_at if shipment else None,
    )
