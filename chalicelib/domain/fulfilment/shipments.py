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
# The lifecycle waits once per order (not per shipment): its tokens are kept under this key.
WHOLE_ORDER = "*"


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


def all_shipped(order: Order) -> bool:
    """Every shipment left its 3PL in full, or was cancelled (an order without shipments waits for none)."""
    return all(fully_shipped(s) or s.status == "cancelled" for s in order.shipments)


def all_delivered(order: Order) -> bool:
    """Nothing more to expect of a carrier: each shipment not cancelled is delivered or back at the sender."""
    return all(s.status in SHIPMENT_DONE for s in order.shipments)


def order_outcome(order: Order) -> dict[str, Any]:
    """What a resumed order-level wait hands the lifecycle: where each shipment stands, for the console."""
    statuses = {s.shipment_id: s.status for s in order.shipments}
    active = [status for status in statuses.values() if status != "cancelled"]
    if not statuses:
        outcome = "nothing_to_ship"
    elif not active:
        outcome = "cancelled"
    elif all(status == DELIVERED for status in active):
        outcome = DELIVERED
    else:
        outcome = "shipped" if all(status != "returned" for status in active) else "returned"
    return {"outcome": outcome, "shipments": statuses}


def resume_if_shipped(
    order_id: str,
    shipment_id: str,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
) -> Shipment:
    """Wake the wait for the 3PL once the shipment has all shipped (or was cancelled); answer the shipment.

    The order's wait (`WHOLE_ORDER`) wakes when every shipment has; an execution started before the lifecycle
    waited per order waits per shipment, and is woken per shipment."""
    order = load_order(orders, order_id)
    current = find_shipment(order, shipment_id)
    if all_shipped(order) and resume_waiting(
        store, workflow, order_id, WHOLE_ORDER, kind="shipped", output=order_outcome(order)
    ):
        return current
    if fully_shipped(current) or current.status == "cancelled":
        outcome = "cancelled" if current.status == "cancelled" else "shipped"
        resume_waiting(store, workflow, order_id, shipment_id, kind="shipped", output={"outcome": outcome})
    return current


def resume_if_delivered(
    order: Order, shipment_id: str, *, store: FulfilmentStore, workflow: WorkflowStarter
) -> None:
    """Wake the wait for the carrier once every shipment is done (per shipment for earlier executions)."""
    if all_delivered(order) and resume_waiting(
        store, workflow, order.order_id, WHOLE_ORDER, kind="delivered", output=order_outcome(order)
    ):
        return
    shipment = find_shipment(order, shipment_id)
    if shipment.status in SHIPMENT_DONE:
        resume_waiting(
            store,
            workflow,
            order.order_id,
            shipment_id,
            kind="delivered",
            output={"outcome": shipment.status},
        )
