"""Following parcels: carrier events move each parcel; delivery completes the shipment, then the order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.fulfilment.ports import FulfilmentStore
from chalicelib.domain.fulfilment.shipments import (
    DELIVERED,
    RETURNED,
    SHIPMENT_DONE,
    WHOLE_ORDER,
    all_delivered,
    find_shipment,
    fully_shipped,
    load_order,
    order_outcome,
    replace_shipment,
    resume_if_delivered,
    resume_waiting,
)
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus, Parcel, Shipment
from chalicelib.domain.ports import OrderRepository, WorkflowStarter
from chalicelib.domain.status import is_forward

_FLAGS = {"failed_attempt": "failed_attempt", "exception": "exception", RETURNED: "returned_to_sender"}


def await_order_delivery(
    order_id: str,
    task_token: str,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
) -> dict[str, Any]:
    """The lifecycle's one wait for the carriers: keep its token until every shipment is delivered (or back
    at the sender, or cancelled); a delivery that came before the wait resumes it at once."""
    store.set_token(order_id, WHOLE_ORDER, "delivered", task_token)
    order = load_order(orders, order_id)
    if all_delivered(order):
        resume_waiting(store, workflow, order_id, WHOLE_ORDER, kind="delivered", output=order_outcome(order))
    return {"order_id": order_id, **order_outcome(order)}


def await_delivery(
    order_id: str,
    shipment_id: str,
    task_token: str,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
) -> dict[str, Any]:
    """Keep the waiting task's token until every parcel is delivered (or back at the sender).

    Per shipment: only executions started before the lifecycle waited once per order call it."""
    store.set_token(order_id, shipment_id, "delivered", task_token)
    shipment = find_shipment(load_order(orders, order_id), shipment_id)
    if shipment.status in SHIPMENT_DONE:
        resume_waiting(
            store, workflow, order_id, shipment_id, kind="delivered", output={"outcome": shipment.status}
        )
    return {"order_id": order_id, "shipment_id": shipment_id, "status": shipment.status}


@dataclass(frozen=True)
class TrackingUpdate:
    event_id: str
    tracking_number: str
    carrier: str
    status: str  # normalised (chalicelib/integrations/easypost/webhook.py)
    status_detail: str | None
    at: datetime
    estimated_at: datetime | None = None


def apply_tracking(
    update: TrackingUpdate,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
    now: Callable[[], datetime],
) -> str:
    """Move one parcel; answers applied | stale | unmatched."""
    link = store.shipment_for_tracking(update.tracking_number)
    if link is None:
        return "unmatched"
    order_id, shipment_id = link
    delivered_now: list[tuple[str, str, bool]] = []

    def change(order: Order) -> str:
        delivered_now.clear()
        shipment = find_shipment(order, shipment_id)
        parcel = next((p for p in shipment.parcels if p.tracking_number == update.tracking_number), None)
        if parcel is None:
            return "unmatched"
        if _is_stale(parcel, update):
            return "stale"
        if update.status == DELIVERED and parcel.status != DELIVERED:
            delivered_now.append(_delivery(order, shipment, update))
        if update.status == RETURNED:
            _return_arrived(order, shipment_id, update.at)
        replace_shipment(order, _moved(shipment, parcel, update))
        _deliver_order_if_all_delivered(order)
        order.record(
            "tracking",
            now(),
            shipment_id=shipment_id,
            tracking_number=update.tracking_number,
            status=update.status,
            detail=update.status_detail,
            estimated_at=update.estimated_at.isoformat() if update.estimated_at else None,
        )
        return "applied"

    outcome: str = mutate(orders, order_id, change)
    if outcome != "applied":
        return outcome
    for carrier, country, on_time in delivered_now:
        store.record_delivery(carrier, country, on_time)
    order = load_order(orders, order_id)
    shipment = find_shipment(order, shipment_id)
    if shipment.flags and shipment.status not in SHIPMENT_DONE:
        store.flag_shipment(order_id, shipment_id, list(shipment.flags), now())
    if shipment.status in SHIPMENT_DONE:
        # Also takes it off the flagged list (a shipment without a promise has no open item).
        store.close_shipment(order_id, shipment_id, shipment.promised_at or now())
        resume_if_delivered(order, shipment_id, store=store, workflow=workflow)
    return outcome


def _is_stale(parcel: Parcel, update: TrackingUpdate) -> bool:
    if parcel.last_event_at is not None and update.at < parcel.last_event_at:
        return True  # an older event after a newer one: the parcel does not go back
    unchanged = parcel.status == update.status and parcel.estimated_at == (
        update.estimated_at or parcel.estimated_at
    )
    return unchanged and parcel.last_event_at == update.at  # the same event again


def _delivery(order: Order, shipment: Shipment, update: TrackingUpdate) -> tuple[str, str, bool]:
    """The carrier, destination country and punctuality of a parcel delivered now, for the carrier stats."""
    promised = shipment.promised_at
    on_time = promised is None or update.at <= promised
    country = (order.shipping_address.country if order.shipping_address else None) or "??"
    return update.carrier, country, on_time


def _return_arrived(order: Order, shipment_id: str, at: datetime) -> None:
    # A return the cancellation expected has come back: the goods are home.
    order.returns = [
        {**r, "status": "returned", "returned_at": at.isoformat()}
        if r.get("shipment_id") == shipment_id and r.get("status") == "return_expected"
        else r
        for r in order.returns
    ]


def _moved(shipment: Shipment, parcel: Parcel, update: TrackingUpdate) -> Shipment:
    """The shipment with the parcel moved: its flags, estimate and status follow its parcels."""
    moved = parcel.model_copy(
        update={
            "status": update.status,
            "status_detail": update.status_detail,
            "estimated_at": update.estimated_at or parcel.estimated_at,
            "last_event_at": update.at,
            "delivered_at": update.at if update.status == DELIVERED else parcel.delivered_at,
        }
    )
    parcels = [moved if p.tracking_number == parcel.tracking_number else p for p in shipment.parcels]
    flags = list(shipment.flags)
    flag = _FLAGS.get(update.status)
    if flag and flag not in flags:
        flags.append(flag)
    estimates = [p.estimated_at for p in parcels if p.estimated_at]
    changes: dict[str, Any] = {
        "parcels": parcels,
        "flags": flags,
        "last_event_at": update.at,
        "estimated_at": max(estimates) if estimates else shipment.estimated_at,
    }
    if fully_shipped(shipment) and all(p.status == DELIVERED for p in parcels):
        changes.update(status="delivered", delivered_at=update.at)
    elif update.status == RETURNED and shipment.status != "cancelled":
        changes.update(status="returned")
    return shipment.model_copy(update=changes)


def _deliver_order_if_all_delivered(order: Order) -> None:
    active = [s for s in order.shipments if s.status != "cancelled"]
    if (
        active
        and all(s.status == "delivered" for s in active)
        and is_forward(order.status, OrderStatus.DELIVERED)
    ):
        order.status = OrderStatus.DELIVERED


def complete_order(order_id: str, *, orders: OrderRepository, now: Callable[[], datetime]) -> dict[str, Any]:
    """Every shipment delivered: COMPLETED. A shipment back at the sender: ON_HOLD for an operator."""

    def change(order: Order) -> dict[str, Any]:
        active = [s for s in order.shipments if s.status != "cancelled"]
        nothing_to_ship = not order.shipments and any(h.event == "nothing_to_ship" for h in order.history)
        if nothing_to_ship or (active and all(s.status == "delivered" for s in active)):
            if is_forward(order.status, OrderStatus.COMPLETED):
                order.status = OrderStatus.COMPLETED
                order.record("completed", now())
        elif order.status not in (OrderStatus.CANCELLED, OrderStatus.COMPLETED, OrderStatus.ON_HOLD):
            order.status = OrderStatus.ON_HOLD
            order.record(
                "held",
                now(),
                reason="shipments not all delivered",
                shipments={s.shipment_id: s.status for s in order.shipments},
            )
        return {"order_id": order_id, "status": order.status.value}

    result: dict[str, Any] = mutate(orders, order_id, change)
    return result
