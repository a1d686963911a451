"""Use cases behind the order lifecycle's Lambda tasks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import ConcurrentUpdate, NotFound
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.ports import OrderRepository
from chalicelib.domain.publishing import sync_outbox
from chalicelib.domain.totals import totals_issues

_MAX_ATTEMPTS = 5

# Statuses an order never leaves through the lifecycle's own failure path.
_FINAL = {OrderStatus.CANCELLED, OrderStatus.COMPLETED, OrderStatus.REFUNDED}


def mutate(orders: OrderRepository, order_id: str, change: Callable[[Order], Any]) -> Any:
    """Load, change and conditionally save an order, reloading when another writer got there first."""
    for _ in range(_MAX_ATTEMPTS):
        stored = orders.get(order_id)
        if stored is None:
            raise NotFound(f"order {order_id} does not exist")
        order = stored.order.model_copy(deep=True)
        result = change(order)
        # A milestone enters the channel's outbox in the same write as the change that made it.
        sync_outbox(order, order.history[-1].at if order.history else order.updated_at)
        try:
            orders.save(order, expected_version=stored.version)
        except ConcurrentUpdate:
            continue
        return result
    raise ConcurrentUpdate(f"order {order_id} kept changing under {_MAX_ATTEMPTS} attempts")


def validate_order(order_id: str, *, orders: OrderRepository, now: Callable[[], datetime]) -> dict[str, Any]:
    """Check the order's figures; a mismatch is recorded and flagged, and the order goes on."""

    def change(order: Order) -> dict[str, Any]:
        issues = totals_issues(order)
        order.record("validated", now(), totals_consistent=not issues, issues=issues)
        return {"order_id": order_id, "totals_consistent": not issues, "issues": issues}

    result: dict[str, Any] = mutate(orders, order_id, change)
    return result


def record_failure(
    order_id: str,
    error: str,
    cause: str,
    *,
    orders: OrderRepository,
    now: Callable[[], datetime],
) -> dict[str, Any]:
    """Park the order in FAILED with the reason, for an operator to act on."""

    def change(order: Order) -> dict[str, Any]:
        previous = order.status
        if previous not in _FINAL:
            order.status = OrderStatus.FAILED
        order.record("failed", now(), error=error, cause=cause[:1000], previous=previous.value)
        return {"order_id": order_id, "status": order.status.value, "error": error}

    try:
        result: dict[str, Any] = mutate(orders, order_id, change)
    except NotFound:
        # Nothing to mark: the execution still ends in its Fail state, visible in Step Functions.
        return {"order_id": order_id, "status": None, "error": error, "recorded": False}
    return result
