"""Use case: cancel an order from any stage, stop its lifecycle and undo what was done, exactly once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NotRequired, Protocol, TypedDict, Unpack

from chalicelib.domain.errors import ConcurrentUpdate, NotFound
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.ports import OrderRepository, WorkflowStarter

# Past these, cancelling is a return or a refund, not a cancellation.
_NOT_CANCELLABLE = frozenset(
    {OrderStatus.DELIVERED, OrderStatus.COMPLETED, OrderStatus.RETURNED, OrderStatus.REFUNDED}
)


class CancellationConflict(ConcurrentUpdate):
    """The order is past the point where it can be cancelled."""


class Compensator(Protocol):
    """Undoes one stage's effects for a cancelled order (payment: void or refund; fulfilment: cancel at
    the 3PL; publishing: tell the channel). Must be idempotent: it may run again after a crash."""

    name: str

    def compensate(self, order: Order, reason: str) -> dict[str, Any] | None:
        """What it undid (recorded in the order's history), or None when there was nothing to undo.

        An optional `"payment"` entry holds updates of the order's `payment` part (status, refunded).
        """
        ...


class WindDownWith(TypedDict):
    """What `wind_down` (and so `cancel`) works with. `stop_workflow=False` is for the lifecycle's own
    cancelling Task (it must not abort its execution)."""

    orders: OrderRepository
    workflow: WorkflowStarter
    now: Callable[[], datetime]
    compensators: NotRequired[Sequence[Compensator]]
    stop_workflow: NotRequired[bool]


def cancel(order_id: str, reason: str, *, source: str, **using: Unpack[WindDownWith]) -> dict[str, Any]:
    """Cancel (idempotent: an order already cancelled answers as it is), stop the lifecycle, compensate."""
    orders, now = using["orders"], using["now"]
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
    return {
        "order_id": order_id,
        "status": OrderStatus.CANCELLED.value,
        "already_cancelled": not newly,
        **wind_down(order_id, f"cancelled by {source}: {reason}", **using),
    }


def wind_down(
    order_id: str,
    cause: str,
    *,
    orders: OrderRepository,
    workflow: WorkflowStarter,
    now: Callable[[], datetime],
    compensators: Sequence[Compensator] = (),
    stop_workflow: bool = True,
) -> dict[str, Any]:
    """After an order is CANCELLED (here, or at its channel): stop what waits, undo what was done.

    Safe to repeat: waiting tokens are cleared, a stopped execution stays stopped, and each compensator
    acts only on what is still left to undo (its own idempotency keys guard the retries).
    """
    orders.set_review_token(order_id, None)
    orders.set_payment_token(order_id, None)
    stopped = False
    if stop_workflow:
        current = orders.get(order_id)
        arn = current.execution_arn if current else None
        stopped = workflow.stop(order_id, cause[:1000], execution_arn=arn)
    done = []
    for compensator in compensators:
        current = orders.get(order_id)
        if current is None:
            break
        outcome = compensator.compensate(current.order, cause)
        if outcome is not None:
            done.append({"compensator": compensator.name, **outcome})
    if done:

        def record(order: Order) -> None:
            for outcome in done:
                update = outcome.get("payment")
                if isinstance(update, dict):
                    order.payment = order.payment.model_copy(update=update)
            order.record(
                "compensated",
                now(),
                actions=[{k: _plain(v) for k, v in o.items() if k != "payment"} for o in done],
            )

        mutate(orders, order_id, record)
    return {"lifecycle_stopped": stopped, "compensations": [_public(o) for o in done]}


def _plain(value: Any) -> Any:
    return f"{value:f}" if isinstance(value, Decimal) else value


def _public(outcome: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in outcome.items() if k != "payment"}
