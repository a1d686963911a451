"""Watching shipments in flight: late against their promise, or silent too long, flagged for operators."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from chalicelib.domain.fulfilment.policy import FulfilmentPolicy
from chalicelib.domain.fulfilment.ports import FulfilmentStore
from chalicelib.domain.fulfilment.shipments import SHIPMENT_DONE, find_shipment, replace_shipment
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order
from chalicelib.domain.ports import OrderRepository


def watch(
    *, orders: OrderRepository, store: FulfilmentStore, policy: FulfilmentPolicy, now: Callable[[], datetime]
) -> dict[str, int]:
    """Flag open shipments late against their promise (or estimated past it) or silent too long.

    Reads only the open-shipments partition (shipments in flight), never the order table."""
    at = now()
    flagged = {"late": 0, "silent": 0, "checked": 0}
    for item in store.open_shipments():
        flagged["checked"] += 1
        stored = orders.get(item.order_id)
        if stored is None:
            continue
        shipment = next((s for s in stored.order.shipments if s.shipment_id == item.shipment_id), None)
        if shipment is None or shipment.status in SHIPMENT_DONE:
            store.close_shipment(item.order_id, item.shipment_id, item.promised_at)
            continue
        wanted = []
        late = (shipment.promised_at and shipment.promised_at < at) or (
            shipment.promised_at and shipment.estimated_at and shipment.estimated_at > shipment.promised_at
        )
        if late and "late" not in shipment.flags:
            wanted.append("late")
        last = shipment.last_event_at or _requested_at(stored.order, shipment.shipment_id)
        if last is not None and at - last > policy.silent_after and "silent" not in shipment.flags:
            wanted.append("silent")
        if not wanted:
            continue

        def change(order: Order, sid: str = shipment.shipment_id, add: list[str] = wanted) -> None:
            current = find_shipment(order, sid)
            new = [f for f in add if f not in current.flags]
            if new:
                replace_shipment(order, current.model_copy(update={"flags": [*current.flags, *new]}))
                order.record("shipment_flagged", at, shipment_id=sid, flags=new)

        mutate(orders, item.order_id, change)
        store.flag_shipment(item.order_id, item.shipment_id, sorted({*shipment.flags, *wanted}), at)
        for name in wanted:
            flagged[name] += 1
    return flagged


def _requested_at(order: Order, shipment_id: str) -> datetime | None:
    for entry in order.history:
        if entry.event == "fulfilment_requested" and entry.detail.get("shipment_id") == shipment_id:
            return entry.at
    return None
