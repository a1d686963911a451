"""A 3PL's webhook event as the domain's ThreePLUpdate (what the fulfilment stage applies)."""

from __future__ import annotations

from chalicelib.domain.fulfilment import ShippedParcel, ThreePLUpdate
from chalicelib.integrations.threepl.webhook import parse_threepl_event


def threepl_update(raw: bytes) -> ThreePLUpdate:
    """A verified 3PL event (its raw body) as the update the fulfilment stage applies."""
    event = parse_threepl_event(raw)
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
