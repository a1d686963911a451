"""Allocation: each line to a warehouse by the policy and the 3PLs' stock, one shipment per warehouse."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.errors import HubError
from chalicelib.domain.fulfilment.policy import FulfilmentPolicy, Warehouse
from chalicelib.domain.fulfilment.ports import ThreePL
from chalicelib.domain.fulfilment.shipments import load_order
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Line, Order, Shipment
from chalicelib.domain.ports import OrderRepository


class AllocationError(HubError):
    """No configured warehouse can ship a line: an operator must add one (or stock); retrying cannot help."""


def allocate(
    order_id: str,
    *,
    orders: OrderRepository,
    threepl: Callable[[str], ThreePL],
    policy: FulfilmentPolicy,
    now: Callable[[], datetime],
) -> dict[str, Any]:
    """Split the order into shipments (once: a retry answers the same shipments)."""
    order = load_order(orders, order_id)
    if order.shipments:
        return _allocation(order)
    address = order.shipping_address
    withheld = [m for m in order.missing if m.startswith("shipping_address")]
    if withheld:
        # The channel withheld the address (not "no address": not nothing to ship): an operator must act,
        # then retry once a later read filled it in.
        raise AllocationError(f"order {order_id} cannot ship: missing {', '.join(withheld)}")
    if address is not None and not (address.line1 and address.country):
        # Amazon gives the street only with a Restricted Data Token: an operator must complete it.
        raise AllocationError(
            f"the shipping address of order {order_id} is incomplete (no street or country)"
        )
    # A line without a SKU is nothing a warehouse can pick (a fee, a custom service): it is not shipped.
    physical = [line for line in order.lines if line.quantity > 0 and line.sku]
    skipped = [line.line_id for line in order.lines if line.quantity > 0 and not line.sku]
    if address is None or not physical:
        # Nothing can be sent without an address (collected in store, a service, a digital good).
        reason = "the order has no shipping address" if address is None else "no line has a SKU"
        return _nothing_to_ship(order_id, reason, skipped, orders=orders, now=now)
    shipments = _plan(order_id, physical, address.country, policy=policy, stock=_Stock(threepl), at=now())
    return _record_allocation(order_id, shipments, skipped, orders=orders, now=now)


def _nothing_to_ship(
    order_id: str, reason: str, skipped: list[str], *, orders: OrderRepository, now: Callable[[], datetime]
) -> dict[str, Any]:
    def change(current: Order) -> dict[str, Any]:
        if not any(h.event == "nothing_to_ship" for h in current.history):
            current.record("nothing_to_ship", now(), reason=reason, lines_without_sku=skipped)
        return _allocation(current)

    unshipped: dict[str, Any] = mutate(orders, order_id, change)
    return unshipped


def _plan(
    order_id: str,
    lines: Sequence[Line],
    country: str | None,
    *,
    policy: FulfilmentPolicy,
    stock: _Stock,
    at: datetime,
) -> list[Shipment]:
    """One shipment per policy entry and back-order, each promised from when its goods can leave."""
    ranked = sorted(policy.warehouses, key=lambda w: (w.priority, w.id))
    # Keyed by the policy entry (its rank) and back-order: one shipment each, with its own promise.
    groups: dict[tuple[int, bool], list[dict[str, Any]]] = defaultdict(list)
    waits: dict[tuple[int, bool], datetime | None] = {}
    for line in lines:  # a dropped line (quantity 0) ships nowhere
        candidates = [w for w in ranked if w.serves(line.sku, country)]
        if not candidates:
            raise AllocationError(f"no warehouse ships SKU {line.sku!r} to {country or 'an unknown country'}")
        chosen = next((w for w in candidates if stock.available(w, line.sku or "") >= line.quantity), None)
        backordered = chosen is None
        warehouse = chosen or candidates[0]
        key = (ranked.index(warehouse), backordered)
        groups[key].append({"line_id": line.line_id, "sku": line.sku, "quantity": line.quantity})
        if backordered:
            expected = stock.expected(warehouse, line.sku or "")
            previous = waits.get(key)
            waits[key] = max(d for d in (expected, previous, at) if d is not None)
    return [
        Shipment(
            shipment_id=f"{order_id}-{number}",
            lines=grouped,
            status="backordered" if backordered else "allocated",
            warehouse=ranked[rank].id,
            provider=ranked[rank].provider,
            promised_at=(waits.get((rank, backordered)) or at) + timedelta(days=ranked[rank].promise_days),
        )
        for number, ((rank, backordered), grouped) in enumerate(sorted(groups.items()), start=1)
    ]


def _record_allocation(
    order_id: str,
    shipments: list[Shipment],
    skipped: list[str],
    *,
    orders: OrderRepository,
    now: Callable[[], datetime],
) -> dict[str, Any]:
    def change(current: Order) -> dict[str, Any]:
        if current.shipments:
            return _allocation(current)
        current.shipments = shipments
        current.record(
            "allocated",
            now(),
            lines_without_sku=skipped,
            shipments=[
                {
                    "shipment_id": s.shipment_id,
                    "warehouse": s.warehouse,
                    "status": s.status,
                    "lines": len(s.lines),
                }
                for s in shipments
            ],
        )
        return _allocation(current)

    result: dict[str, Any] = mutate(orders, order_id, change)
    return result


def _allocation(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "shipments": [{"shipment_id": s.shipment_id} for s in order.shipments],
    }


class _Stock:
    """The 3PLs' inventory, asked once per warehouse and SKU during one allocation."""

    def __init__(self, threepl: Callable[[str], ThreePL]) -> None:
        self._threepl = threepl
        self._seen: dict[tuple[str, str], dict[str, Any]] = {}

    def _item(self, warehouse: Warehouse, sku: str) -> dict[str, Any]:
        key = (warehouse.id, sku)
        if key not in self._seen:
            items = self._threepl(warehouse.provider).inventory([sku], warehouse.id)
            found = next((i for i in items if i.get("sku") == sku), None)
            self._seen[key] = found or {"available": 0}
        return self._seen[key]

    def available(self, warehouse: Warehouse, sku: str) -> int:
        return int(self._item(warehouse, sku).get("available") or 0)

    def expected(self, warehouse: Warehouse, sku: str) -> datetime | None:
        raw = self._item(warehouse, sku).get("expected_at")
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if raw else None
