"""Use case: cancel an order from any stage, stop its lifecycle and undo what was done, exactly once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.errors import ConcurrentUpdate, NotFound
from chalicelib.domain.lifecycle import mutate
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.ports import OrderRepository, WorkflowStarter

# Past these, cancelling is a return or a refund, not a cancellation.
_NOT_CANCELLABLE = frozenset({OrderStatus.COMPLETED, OrderStatus.RETURNED, OrderStatus.REFUNDED})


class CancellationConflict(ConcurrentUpdate):
    """The order is past the point where it can be cancelled."""


class Compensator(Protocol):
    """Undoes one stage's effects for a cancelled order (payment: void or refund; fulfilment: cancel at
    the 3PL; publishing: tell the channel). Must be idempotent: it may run again after a crash."""

    name: str

    def compensate(self, order: Order, reason: str) -> dict[str, Any] | None:
        """What it undid (recorded in the order's history), or None when there was nothing to undo."""
        ...


def cancel(
    order_id: str,
    reason: str,
    *,
    source: str,
    orders: OrderRepository,
    workflow: WorkflowStarter,
    now: Callable[[], datetime],
    compensators: Sequence[Compensator] = (),
) -> dict[str, Any]:
    """Cancel (idempotent: an order already cancelled answers as it is), stop the lifecycle, compensate."""
    stored = orders.get(order_id)
    if stored is None:
        raise NotFound(f"order {order_id} does not exist")
    if stored.order.status in _NOT_CANCELLABLE:
        raise CancellationConflict(f"order {order_id} is {stored.order.status.value}: return or refund it")

    def change(order: Order) -> bool:
        if order.status == OrderStatus.CANCELLED:
            return False
        previous = order.status
        order.status = OrderStatus.CANCELLED
        order.record("cancelled", now(), source=source, reason=reason[:500], previous_status=previous.value)
        return True

    newly: bool = mutate(orders, order_id, change)
    orders.set_review_token(order_id, None)
    stopped = workflow.stop(order_id, f"cancelled by {source}: {reason}"[:1000])
    done = []
    cancelled = orders.get(order_id)
    for compensator in compensators:
        outcome = compensator.compensate(cancelled.order if cancelled else stored.order, reason)
        if outcome is not None:
            done.append({"compensator": compensator.name, **outcome})
    if done:

        def record(order: Order) -> None:
            order.record("compensated", now(), actions=done)

        mutate(orders, order_id, record)
    return {
        "order_id": order_id,
        "status": OrderStatus.CANCELLED.value,
        "already_cancelled": not newly,
        "lifecycle_stopped": stopped,
        "compensations": done,
    }
