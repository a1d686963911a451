"""Asking the 3PL: one fulfilment order per shipment (idempotent on the shipment id), then wait for it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.domain.fulfilment.ports import FulfilmentStore, ThreePL
from chalicelib.domain.fulfilment.shipments import (
    find_shipment,
    load_order,
    replace_shipment,
    resume_if_shipped,
)
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus, Shipment
from chalicelib.domain.ports import OrderRepository, WorkflowStarter
from chalicelib.domain.status import is_forward


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
    """Send the shipment to its 3PL (once) and keep the waiting task's token until it has all shipped."""
    store.set_token(order_id, shipment_id, "shipped", task_token)
    found = load_order(orders, order_id)
    shipment = find_shipment(found, shipment_id)
    if shipment.fulfilment_order_id is None and shipment.status != "cancelled":
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
    current = resume_if_shipped(order_id, shipment_id, orders=orders, store=store, workflow=workflow)
    return {
        "order_id": order_id,
        "shipment_id": shipment_id,
        "fulfilment_order_id": current.fulfilment_order_id,
    }


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
