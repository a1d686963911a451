"""Changing an order safely: load, change, save conditionally (retrying on a concurrent writer), with the
channel's outbox kept in step in the same write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.domain.errors import ConcurrentUpdate, NotFound
from chalicelib.domain.order import Order
from chalicelib.domain.outbox import sync_outbox
from chalicelib.domain.ports import OrderRepository

MAX_ATTEMPTS = 5


def mutate(
    orders: OrderRepository,
    order_id: str,
    change: Callable[[Order], Any],
    *,
    unchanged: Callable[[Any], bool] | None = None,
) -> Any:
    """Load, change and conditionally save an order, reloading when another writer got there first.
    `unchanged(result)` true means the change decided to leave the order as it was: nothing is written."""
    for _ in range(MAX_ATTEMPTS):
        stored = orders.get(order_id)
        if stored is None:
            raise NotFound(f"order {order_id} does not exist")
        order = stored.order.model_copy(deep=True)
        result = change(order)
        if unchanged is not None and unchanged(result):
            return result
        # A milestone enters the channel's outbox in the same write as the change that made it.
        sync_outbox(order, order.history[-1].at if order.history else order.updated_at)
        try:
            orders.save(order, expected_version=stored.version, replacing=stored.order.status)
        except ConcurrentUpdate:
            continue
        return result
    raise ConcurrentUpdate(f"order {order_id} kept changing under {MAX_ATTEMPTS} attempts")
