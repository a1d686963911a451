"""What every step of the fulfilment stage shares: an order's shipments read and replaced, waits resumed."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from chalicelib.domain.errors import NotFound
from chalicelib.domain.fulfilment.ports import FulfilmentStore
from chalicelib.domain.order import Order, Shipment
from chalicelib.domain.ports import OrderRepository, WorkflowStarter

DELIVERED = "delivered"
RETURNED = "returned_to_sender"
# Shipment statuses after which nothing more is expected of the 3PL or the carrier.
SHIPMENT_DONE = frozenset({"delivered", "cancelled", "returned"})


def load_order(orders: OrderRepository, order_id: str) -> Order:
    stored = orders.get(order_id)
    if stored is None:
        raise NotFound(f"order {order_id} does not exist")
    return stored.order


def find_shipment(order: Order, shipment_id: str) -> Shipment:
    for shipment in order.shipments:
        if shipment.shipment_id == shipment_id:
            return shipment
    raise NotFound(f"order {order.order_id} has no shipment {shipment_id}")


def replace_shipment(order: Order, shipment: Shipment) -> None:
    order.shipments = [shipment if s.shipment_id == shipment.shipment_id else s for s in order.shipments]


def fully_shipped(shipment: Shipment) -> bool:
    shipped: dict[str, int] = defaultdict(int)
    for line in shipment.shipped_lines:
        shipped[str(line["line_id"])] += int(line["quantity"])
    return all(shipped[str(line["line_id"])] >= int(line["quantity"]) for line in shipment.lines)


def resume_waiting(
    store: FulfilmentStore,
    workflow: WorkflowStarter,
    order_id: str,
    shipment_id: str,
    *,
    kind: str,
    output: dict[str, Any],
) -> bool:
    """Complete the lifecycle's task waiting on this shipment (`shipped` or `delivered`), once."""
    token = store.get_token(order_id, shipment_id, kind)
    if token is None:
        return False
    store.set_token(order_id, shipment_id, kind, None)
    return workflow.complete_task(token, output)


def resume_if_shipped(
    order_id: str,
    shipment_id: str,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
) -> Shipment:
    """Wake the wait for the 3PL once the shipment has all shipped (or was cancelled); answer the shipment."""
    current = find_shipment(load_order(orders, order_id), shipment_id)
    if fully_shipped(current) or current.status == "cancelled":
        outcome = "cancelled" if current.status == "cancelled" else "shipped"
        resume_waiting(store, workflow, order_id, shipment_id, kind="shipped", output={"outcome": outcome})
    return current
