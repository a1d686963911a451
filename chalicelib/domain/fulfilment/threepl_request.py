"""Asking the 3PL: one fulfilment order per shipment (idempotent on the shipment id), then wait for them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.domain.fulfilment.allocation import allocate
from chalicelib.domain.fulfilment.policy import FulfilmentPolicy
from chalicelib.domain.fulfilment.ports import FulfilmentStore, ThreePL
from chalicelib.domain.fulfilment.shipments import (
    WHOLE_ORDER,
    all_shipped,
    find_shipment,
    load_order,
    order_outcome,
    replace_shipment,
    resume_if_shipped,
    resume_waiting,
)
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus, Shipment
from chalicelib.domain.ports import OrderRepository, WorkflowStarter
from chalicelib.domain.status import is_forward


def fulfil_order(
    order_id: str,
    task_token: str,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
    threepl: Callable[[str], ThreePL],
    policy: FulfilmentPolicy,
    now: Callable[[], datetime],
) -> dict[str, Any]:
    """The lifecycle's fulfilment step, one wait per order: allocate (once), send every shipment to its 3PL
    (once each), and keep the waiting task's token until all of them have shipped (or were cancelled).

    Each step is recorded in the order's history (`allocated`, `fulfilment_requested` per shipment); a retry
    (a 3PL unreachable for the second shipment) repeats nothing that was done."""
    # The token first: a confirmation arriving while the requests go out must find it.
    store.set_token(order_id, WHOLE_ORDER, "shipped", task_token)
    allocation = allocate(order_id, orders=orders, threepl=threepl, policy=policy, now=now)
    for shipment in allocation["shipments"]:
        send_to_threepl(
            order_id, shipment["shipment_id"], orders=orders, store=store, threepl=threepl, now=now
        )
    order = load_order(orders, order_id)
    if all_shipped(order):
        resume_waiting(store, workflow, order_id, WHOLE_ORDER, kind="shipped", output=order_outcome(order))
    return {"order_id": order_id, **order_outcome(order)}


def request_fulfilment(
    order_id: str,
    shipment_id: str,
    task_token: str,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
    threepl: Callable[[str], ThreePL],
    now: Callable[[], datetime],
) -> dict[str, Any]:
    """Send the shipment to its 3PL (once) and keep the waiting task's token until it has all shipped.

    Per shipment: only executions started before the lifecycle waited once per order call it."""
    store.set_token(order_id, shipment_id, "shipped", task_token)
    send_to_threepl(order_id, shipment_id, orders=orders, store=store, threepl=threepl, now=now)
    current = resume_if_shipped(order_id, shipment_id, orders=orders, store=store, workflow=workflow)
    return {
        "order_id": order_id,
        "shipment_id": shipment_id,
        "fulfilment_order_id": current.fulfilment_order_id,
    }


def send_to_threepl(
    order_id: str,
    shipment_id: str,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    threepl: Callable[[str], ThreePL],
    now: Callable[[], datetime],
) -> None:
    """One fulfilment order at the shipment's 3PL (idempotent on the shipment id), recorded once."""
    found = load_order(orders, order_id)
    shipment = find_shipment(found, shipment_id)
    if shipment.fulfilment_order_id is not None or shipment.status == "cancelled":
        return
    answer = threepl(shipment.provider or "default").create_fulfillment_order(
        _request(found, shipment), idempotency_key=shipment_id
    )

    def change(order: Order) -> None:
        current = find_shipment(order, shipment_id)
        if current.fulfilment_order_id is None:
            status = current.status if current.status not in ("allocated", "backordered") else "requested"
            replace_shipment(
                order, current.model_copy(update={"fulfilment_order_id": answer["id"], "status": status})
            )
            if is_forward(order.status, OrderStatus.FULFILMENT_REQUESTED):
                order.status = OrderStatus.FULFILMENT_REQUESTED
            order.record(
                "fulfilment_requested",
                now(),
                shipment_id=shipment_id,
                warehouse=current.warehouse,
                provider=current.provider,
                fulfilment_order_id=answer["id"],
                backordered=current.status == "backordered",
            )

    mutate(orders, order_id, change)
    if shipment.promised_at is not None:
        store.open_shipment(order_id, shipment_id, shipment.promised_at)


def _request(order: Order, shipment: Shipment) -> dict[str, Any]:
    address = order.shipping_address.model_dump() if order.shipping_address else {}
    return {
        "reference": shipment.shipment_id,
        "order_id": order.order_id,
        "warehouse": shipment.warehouse,
        "shipping_method": "standard",
        "ship_to": address,
        "lines": shipment.lines,
        "promised_by": shipment.promised_at.isoformat() if shipment.promised_at else None,
    }
