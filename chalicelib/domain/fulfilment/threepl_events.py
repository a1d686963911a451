"""The 3PL's events: shipped lines and parcels (partial, several parcels) and cancellations, each once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.domain.fulfilment.ports import FulfilmentStore, Trackers
from chalicelib.domain.fulfilment.shipments import (
    find_shipment,
    fully_shipped,
    load_order,
    replace_shipment,
    resume_if_delivered,
    resume_if_shipped,
)
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus, Parcel
from chalicelib.domain.ports import OrderRepository, WorkflowStarter
from chalicelib.domain.status import is_forward


@dataclass(frozen=True)
class ShippedParcel:
    carrier: str
    tracking_number: str
    lines: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ThreePLUpdate:
    """A 3PL event, as the hub needs it (integrations/threepl/webhook.py parses the wire format)."""

    event_id: str
    type: str
    order_id: str
    shipment_id: str
    fulfilment_order_id: str | None = None
    provider_shipment_id: str | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    parcels: list[ShippedParcel] = field(default_factory=list)
    at: datetime | None = None


def apply_threepl_event(
    update: ThreePLUpdate,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
    trackers: Trackers,
    now: Callable[[], datetime],
) -> str:
    """Apply a 3PL event once; answers applied | duplicate | unmatched | ignored."""
    stored = orders.get(update.order_id)
    if stored is None or not any(s.shipment_id == update.shipment_id for s in stored.order.shipments):
        return "unmatched"
    if update.type == "shipment.created":
        outcome = _shipped(update, orders=orders, now=now)
        # Always (re)link and (re)register: a retry after a failed registration must still track them.
        for parcel in update.parcels:
            store.link_tracking(parcel.tracking_number, update.order_id, update.shipment_id)
            trackers.register(parcel.tracking_number, parcel.carrier)
    elif update.type == "fulfillment_order.cancelled":
        outcome = _cancelled_at_3pl(update, orders=orders, now=now)
    else:
        return "ignored"
    resume_if_shipped(update.order_id, update.shipment_id, orders=orders, store=store, workflow=workflow)
    if update.type == "fulfillment_order.cancelled":
        # A shipment cancelled while the order waits for its deliveries leaves nothing to wait for.
        order = load_order(orders, update.order_id)
        resume_if_delivered(order, update.shipment_id, store=store, workflow=workflow)
    return outcome


def _shipped(update: ThreePLUpdate, *, orders: OrderRepository, now: Callable[[], datetime]) -> str:
    def change(order: Order) -> str:
        shipment = find_shipment(order, update.shipment_id)
        if update.provider_shipment_id in shipment.provider_shipments:
            return "duplicate"
        parcels = [
            *shipment.parcels,
            *(
                Parcel(tracking_number=p.tracking_number, carrier=p.carrier, lines=p.lines)
                for p in update.parcels
            ),
        ]
        shipped = [*shipment.shipped_lines, *update.lines]
        updated = shipment.model_copy(
            update={
                "shipped_lines": shipped,
                "parcels": parcels,
                "provider_shipments": [*shipment.provider_shipments, update.provider_shipment_id or ""],
                "carrier": shipment.carrier or (parcels[0].carrier if parcels else None),
                "tracking_number": shipment.tracking_number
                or (parcels[0].tracking_number if parcels else None),
                "last_event_at": update.at or now(),
            }
        )
        status = "shipped" if fully_shipped(updated) else "partially_shipped"
        updated = updated.model_copy(
            update={"status": status if shipment.status != "cancelled" else "cancelled"}
        )
        replace_shipment(order, updated)
        _order_shipping_status(order)
        order.record(
            "shipped",
            now(),
            shipment_id=update.shipment_id,
            complete=status == "shipped",
            order_complete=order.status == OrderStatus.SHIPPED,
            lines=update.lines,
            parcels=[{"carrier": p.carrier, "tracking_number": p.tracking_number} for p in update.parcels],
        )
        return "applied"

    result: str = mutate(orders, update.order_id, change)
    return result


def _order_shipping_status(order: Order) -> None:
    active = [s for s in order.shipments if s.status != "cancelled"]
    if not active:
        return
    if all(s.status in ("shipped", "delivered", "returned") for s in active):
        target = OrderStatus.SHIPPED
    elif any(s.shipped_lines for s in active):
        target = OrderStatus.PARTIALLY_SHIPPED
    else:
        return
    if is_forward(order.status, target):
        order.status = target


def _cancelled_at_3pl(update: ThreePLUpdate, *, orders: OrderRepository, now: Callable[[], datetime]) -> str:
    def change(order: Order) -> str:
        shipment = find_shipment(order, update.shipment_id)
        if shipment.status == "cancelled":
            return "duplicate"
        flags = shipment.flags
        if order.status != OrderStatus.CANCELLED:
            flags = [*flags, "cancelled_by_3pl"]  # not asked by the hub: an operator must look
        replace_shipment(order, shipment.model_copy(update={"status": "cancelled", "flags": flags}))
        order.record(
            "fulfilment_cancelled",
            now(),
            shipment_id=update.shipment_id,
            by_hub=order.status == OrderStatus.CANCELLED,
        )
        return "applied"

    result: str = mutate(orders, update.order_id, change)
    return result
