"""Use cases of the lifecycle's fulfilment stage: allocate lines to warehouses, ask the 3PL, follow parcels.

- `allocate`: configurable rules choose a warehouse per line (destination country, SKU patterns, priority,
  the 3PL's stock); lines nobody has in stock are back-ordered: held at the 3PL until restocked, in their
  own shipment with a later promise. One shipment per warehouse (and back-order), each with its promise.
- `request_fulfilment`: one fulfilment order per shipment at its 3PL (idempotent on the shipment id); the
  lifecycle waits on a task token until the 3PL's signed confirmations say everything shipped.
- `apply_threepl_event`: shipped lines and parcels (partial shipments, several parcels), duplicates and late
  confirmations harmless; each parcel's tracker registered with the carrier.
- `apply_tracking`: carrier events move each parcel (out-of-order events ignored), re-estimate delivery,
  flag failed attempts, exceptions and returns; delivery of every parcel completes the shipment, every
  shipment the order. Each delivery counts in the carrier's on-time share.
- `watch`: shipments late against their promise, or silent too long, are flagged for operators.
- `FulfilmentCompensator`: a cancelled order's shipments are cancelled at the 3PL if not shipped, recalled
  if the 3PL still can, otherwise a return is expected.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from chalicelib.domain.errors import HubError, InvalidInput, NotFound
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus, Parcel, Shipment
from chalicelib.domain.ports import OrderRepository, WorkflowStarter
from chalicelib.domain.status import is_forward
from chalicelib.domain.upstream import UpstreamRejected

DELIVERED = "delivered"
RETURNED = "returned_to_sender"
# Shipment statuses after which nothing more is expected of the 3PL or the carrier.
_SHIPMENT_DONE = frozenset({"delivered", "cancelled", "returned"})
_FLAGS = {"failed_attempt": "failed_attempt", "exception": "exception", RETURNED: "returned_to_sender"}


class AllocationError(HubError):
    """No configured warehouse can ship a line: an operator must add one (or stock); retrying cannot help."""


# --- ports ---------------------------------------------------------------------------------------------


class ThreePL(Protocol):
    """One 3PL provider's API (chalicelib/integrations/threepl/client.py)."""

    def create_fulfillment_order(
        self, request: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]: ...

    def cancel(self, fulfillment_order_id: str) -> dict[str, Any]: ...

    def recall(self, fulfillment_order_id: str) -> list[str]: ...

    def inventory(self, skus: Sequence[str], warehouse: str | None = None) -> list[dict[str, Any]]: ...


class Trackers(Protocol):
    def register(self, tracking_number: str, carrier: str) -> None:
        """Ask the carrier (EasyPost) to track a parcel; idempotent."""
        ...


@dataclass(frozen=True)
class OpenShipment:
    order_id: str
    shipment_id: str
    promised_at: datetime


class FulfilmentStore(Protocol):
    """What the stage keeps beside the orders: task tokens, tracking links, open shipments, carrier stats."""

    def set_token(self, order_id: str, shipment_id: str, kind: str, token: str | None) -> None: ...

    def get_token(self, order_id: str, shipment_id: str, kind: str) -> str | None: ...

    def link_tracking(self, tracking_number: str, order_id: str, shipment_id: str) -> None: ...

    def shipment_for_tracking(self, tracking_number: str) -> tuple[str, str] | None: ...

    def open_shipment(self, order_id: str, shipment_id: str, promised_at: datetime) -> None: ...

    def close_shipment(self, order_id: str, shipment_id: str, promised_at: datetime) -> None: ...

    def open_shipments(self, limit: int = 500) -> list[OpenShipment]: ...

    def record_delivery(self, carrier: str, country: str, on_time: bool) -> None: ...

    def carrier_stats(self) -> list[dict[str, Any]]: ...

    def flag_shipment(self, order_id: str, shipment_id: str, flags: list[str], at: datetime) -> None:
        """Keep an open shipment on the operators' list of flagged ones (late, exception, ...)."""
        ...

    def flagged_shipments(self, limit: int = 50) -> list[dict[str, Any]]:
        """Open shipments with flags, for the status page: order_id, shipment_id, flags, flagged_at."""
        ...


# --- policy --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Warehouse:
    id: str
    provider: str
    countries: tuple[str, ...] = ("*",)
    skus: tuple[str, ...] = ("*",)
    priority: int = 1
    promise_days: int = 5

    def serves(self, sku: str | None, country: str | None) -> bool:
        country_ok = "*" in self.countries or (country or "").upper() in self.countries
        return country_ok and any(fnmatch.fnmatchcase(sku or "", pattern) for pattern in self.skus)


@dataclass(frozen=True)
class FulfilmentPolicy:
    """HUB_FULFILMENT_POLICY: `{"warehouses": [{"id", "provider", "countries", "skus", "priority",
    "promise_days"}], "silent_after_hours": 48}`."""

    warehouses: tuple[Warehouse, ...] = (Warehouse("main", "default"),)
    silent_after: timedelta = timedelta(hours=48)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> FulfilmentPolicy:
        try:
            warehouses = tuple(
                Warehouse(
                    id=str(w["id"]),
                    provider=str(w["provider"]),
                    countries=tuple(str(c).upper() if c != "*" else "*" for c in w.get("countries", ["*"])),
                    skus=tuple(str(s) for s in w.get("skus", ["*"])),
                    priority=int(w.get("priority", 1)),
                    promise_days=int(w.get("promise_days", 5)),
                )
                for w in config.get("warehouses", [])
            )
            silent = timedelta(hours=float(config.get("silent_after_hours", 48)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"HUB_FULFILMENT_POLICY: {exc}") from exc
        return cls(warehouses=warehouses or cls.warehouses, silent_after=silent)


# --- allocation ------------------------------------------------------------------------------------------


# Long on purpose: checks, warehouse choice and the shipments written read as one retry-safe flow.
def allocate(
    order_id: str,
    *,
    orders: OrderRepository,
    threepl: Callable[[str], ThreePL],
    policy: FulfilmentPolicy,
    now: Callable[[], datetime],
) -> dict[str, Any]:
    """Split the order into shipments (once: a retry answers the same shipments)."""
    stored = orders.get(order_id)
    if stored is None:
        raise NotFound(f"order {order_id} does not exist")
    if stored.order.shipments:
        return _allocation(stored.order)
    order = stored.order
    address = order.shipping_address
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

        def nothing(current: Order) -> dict[str, Any]:
            if not any(h.event == "nothing_to_ship" for h in current.history):
                current.record("nothing_to_ship", now(), reason=reason, lines_without_sku=skipped)
            return _allocation(current)

        unshipped: dict[str, Any] = mutate(orders, order_id, nothing)
        return unshipped
    country = address.country
    ranked = sorted(policy.warehouses, key=lambda w: (w.priority, w.id))
    stock = _Stock(threepl)
    # Keyed by the policy entry (its rank) and back-order: one shipment each, with its own promise.
    groups: dict[tuple[int, bool], list[dict[str, Any]]] = defaultdict(list)
    waits: dict[tuple[int, bool], datetime | None] = {}
    at = now()
    for line in physical:  # a dropped line (quantity 0) ships nowhere
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
    shipments = []
    for number, ((rank, backordered), lines) in enumerate(sorted(groups.items()), start=1):
        warehouse = ranked[rank]
        start = waits.get((rank, backordered)) or at
        shipments.append(
            Shipment(
                shipment_id=f"{order_id}-{number}",
                lines=lines,
                status="backordered" if backordered else "allocated",
                warehouse=warehouse.id,
                provider=warehouse.provider,
                promised_at=start + timedelta(days=warehouse.promise_days),
            )
        )

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


# --- the 3PL ---------------------------------------------------------------------------------------------


def _shipment(order: Order, shipment_id: str) -> Shipment:
    for shipment in order.shipments:
        if shipment.shipment_id == shipment_id:
            return shipment
    raise NotFound(f"order {order.order_id} has no shipment {shipment_id}")


def _replace(order: Order, shipment: Shipment) -> None:
    order.shipments = [shipment if s.shipment_id == shipment.shipment_id else s for s in order.shipments]


def _fully_shipped(shipment: Shipment) -> bool:
    shipped: dict[str, int] = defaultdict(int)
    for line in shipment.shipped_lines:
        shipped[str(line["line_id"])] += int(line["quantity"])
    return all(shipped[str(line["line_id"])] >= int(line["quantity"]) for line in shipment.lines)


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
    stored = orders.get(order_id)
    if stored is None:
        raise NotFound(f"order {order_id} does not exist")
    shipment = _shipment(stored.order, shipment_id)
    if shipment.fulfilment_order_id is None and shipment.status != "cancelled":
        answer = threepl(shipment.provider or "default").create_fulfillment_order(
            _request(stored.order, shipment), idempotency_key=shipment_id
        )

        def change(order: Order) -> None:
            current = _shipment(order, shipment_id)
            if current.fulfilment_order_id is None:
                status = current.status if current.status not in ("allocated", "backordered") else "requested"
                _replace(
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
    current = _shipment(_must(orders, order_id), shipment_id)
    if _fully_shipped(current) or current.status == "cancelled":
        _resume(store, workflow, order_id, shipment_id, kind="shipped", output={"outcome": _outcome(current)})
    return {
        "order_id": order_id,
        "shipment_id": shipment_id,
        "fulfilment_order_id": current.fulfilment_order_id,
    }


def _outcome(shipment: Shipment) -> str:
    return "cancelled" if shipment.status == "cancelled" else "shipped"


def _must(orders: OrderRepository, order_id: str) -> Order:
    stored = orders.get(order_id)
    if stored is None:
        raise NotFound(f"order {order_id} does not exist")
    return stored.order


def _resume(
    store: FulfilmentStore,
    workflow: WorkflowStarter,
    order_id: str,
    shipment_id: str,
    *,
    kind: str,
    output: dict[str, Any],
) -> bool:
    token = store.get_token(order_id, shipment_id, kind)
    if token is None:
        return False
    store.set_token(order_id, shipment_id, kind, None)
    return workflow.complete_task(token, output)


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


@dataclass(frozen=True)
class ShippedParcel:
    carrier: str
    tracking_number: str
    lines: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ThreePLUpdate:
    """A 3PL event, as the hub needs it (integrations/threepl/webhook.py parses the wire format)."""

    event_id: str
    type: str
    order_id: str
    shipment_id: str
    fulfilment_order_id: str | None = None
    provider_shipment_id: str | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    parcels: list[ShippedParcel] = field(default_factory=list)
    at: datetime | None = None


def apply_threepl_event(
    update: ThreePLUpdate,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
    trackers: Trackers,
    now: Callable[[], datetime],
) -> str:
    """Apply a 3PL event once; answers applied | duplicate | unmatched | ignored."""
    stored = orders.get(update.order_id)
    if stored is None or not any(s.shipment_id == update.shipment_id for s in stored.order.shipments):
        return "unmatched"
    if update.type == "shipment.created":
        outcome = _shipped(update, orders=orders, now=now)
        # Always (re)link and (re)register: a retry after a failed registration must still track them.
        for parcel in update.parcels:
            store.link_tracking(parcel.tracking_number, update.order_id, update.shipment_id)
            trackers.register(parcel.tracking_number, parcel.carrier)
    elif update.type == "fulfillment_order.cancelled":
        outcome = _cancelled_at_3pl(update, orders=orders, now=now)
    else:
        return "ignored"
    current = _shipment(_must(orders, update.order_id), update.shipment_id)
    if _fully_shipped(current) or current.status == "cancelled":
        _resume(
            store,
            workflow,
            update.order_id,
            update.shipment_id,
            kind="shipped",
            output={"outcome": _outcome(current)},
        )
    return outcome


def _shipped(update: ThreePLUpdate, *, orders: OrderRepository, now: Callable[[], datetime]) -> str:
    def change(order: Order) -> str:
        shipment = _shipment(order, update.shipment_id)
        if update.provider_shipment_id in shipment.provider_shipments:
            return "duplicate"
        parcels = [
            *shipment.parcels,
            *(
                Parcel(tracking_number=p.tracking_number, carrier=p.carrier, lines=p.lines)
                for p in update.parcels
            ),
        ]
        shipped = [*shipment.shipped_lines, *update.lines]
        updated = shipment.model_copy(
            update={
                "shipped_lines": shipped,
                "parcels": parcels,
                "provider_shipments": [*shipment.provider_shipments, update.provider_shipment_id or ""],
                "carrier": shipment.carrier or (parcels[0].carrier if parcels else None),
                "tracking_number": shipment.tracking_number
                or (parcels[0].tracking_number if parcels else None),
                "last_event_at": update.at or now(),
            }
        )
        status = "shipped" if _fully_shipped(updated) else "partially_shipped"
        updated = updated.model_copy(
            update={"status": status if shipment.status != "cancelled" else "cancelled"}
        )
        _replace(order, updated)
        _order_shipping_status(order)
        order.record(
            "shipped",
            now(),
            shipment_id=update.shipment_id,
            complete=status == "shipped",
            order_complete=order.status == OrderStatus.SHIPPED,
            lines=update.lines,
            parcels=[{"carrier": p.carrier, "tracking_number": p.tracking_number} for p in update.parcels],
        )
        return "applied"

    result: str = mutate(orders, update.order_id, change)
    return result


def _order_shipping_status(order: Order) -> None:
    active = [s for s in order.shipments if s.status != "cancelled"]
    if not active:
        return
    if all(s.status in ("shipped", "delivered", "returned") for s in active):
        target = OrderStatus.SHIPPED
    elif any(s.shipped_lines for s in active):
        target = OrderStatus.PARTIALLY_SHIPPED
    else:
        return
    if is_forward(order.status, target):
        order.status = target


def _cancelled_at_3pl(update: ThreePLUpdate, *, orders: OrderRepository, now: Callable[[], datetime]) -> str:
    def change(order: Order) -> str:
        shipment = _shipment(order, update.shipment_id)
        if shipment.status == "cancelled":
            return "duplicate"
        flags = shipment.flags
        if order.status != OrderStatus.CANCELLED:
            flags = [*flags, "cancelled_by_3pl"]  # not asked by the hub: an operator must look
        _replace(order, shipment.model_copy(update={"status": "cancelled", "flags": flags}))
        order.record(
            "fulfilment_cancelled",
            now(),
            shipment_id=update.shipment_id,
            by_hub=order.status == OrderStatus.CANCELLED,
        )
        return "applied"

    result: str = mutate(orders, update.order_id, change)
    return result


# --- tracking --------------------------------------------------------------------------------------------


def await_delivery(
    order_id: str,
    shipment_id: str,
    task_token: str,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
) -> dict[str, Any]:
    """Keep the waiting task's token until every parcel is delivered (or back at the sender)."""
    store.set_token(order_id, shipment_id, "delivered", task_token)
    shipment = _shipment(_must(orders, order_id), shipment_id)
    if shipment.status in _SHIPMENT_DONE:
        _resume(store, workflow, order_id, shipment_id, kind="delivered", output={"outcome": shipment.status})
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


# Long on purpose: matching, fencing and applying one tracking event read as one sequence.
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
        shipment = _shipment(order, shipment_id)
        parcel = next((p for p in shipment.parcels if p.tracking_number == update.tracking_number), None)
        if parcel is None:
            return "unmatched"
        if parcel.last_event_at is not None and update.at < parcel.last_event_at:
            return "stale"  # an older event after a newer one: the parcel does not go back
        unchanged = parcel.status == update.status and parcel.estimated_at == (
            update.estimated_at or parcel.estimated_at
        )
        if unchanged and parcel.last_event_at == update.at:
            return "stale"  # the same event again
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
        everything_shipped = _fully_shipped(shipment)
        if update.status == DELIVERED and parcel.status != DELIVERED:
            promised = shipment.promised_at
            on_time = promised is None or update.at <= promised
            country = (order.shipping_address.country if order.shipping_address else None) or "??"
            delivered_now.append((update.carrier, country, on_time))
        if everything_shipped and all(p.status == DELIVERED for p in parcels):
            changes.update(status="delivered", delivered_at=update.at)
        elif update.status == RETURNED and shipment.status != "cancelled":
            changes.update(status="returned")
        if update.status == RETURNED:
            # A return the cancellation expected has come back: the goods are home.
            order.returns = [
                {**r, "status": "returned", "returned_at": update.at.isoformat()}
                if r.get("shipment_id") == shipment_id and r.get("status") == "return_expected"
                else r
                for r in order.returns
            ]
        _replace(order, shipment.model_copy(update=changes))
        active = [s for s in order.shipments if s.status != "cancelled"]
        if (
            active
            and all(s.status == "delivered" for s in active)
            and is_forward(order.status, OrderStatus.DELIVERED)
        ):
            order.status = OrderStatus.DELIVERED
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
    shipment = _shipment(_must(orders, order_id), shipment_id)
    if shipment.flags and shipment.status not in _SHIPMENT_DONE:
        store.flag_shipment(order_id, shipment_id, list(shipment.flags), now())
    if shipment.status in _SHIPMENT_DONE:
        # Also takes it off the flagged list (a shipment without a promise has no open item).
        store.close_shipment(order_id, shipment_id, shipment.promised_at or now())
        _resume(store, workflow, order_id, shipment_id, kind="delivered", output={"outcome": shipment.status})
    return outcome


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


# --- watching --------------------------------------------------------------------------------------------


def watch(
    *, orders: OrderRepository, store: FulfilmentStore, policy: FulfilmentPolicy, now: Callable[[], datetime]
) -> dict[str, int]:
    """Flag open shipments late against their promise (or estimated past it) or silent too long.

    Reads only the open-shipments partition (shipments in flight), never the order table."""
    at = now()
    flagged = {"late": 0, "silent": 0, "checked": 0}
    for item in store.open_shipments():
        flagged["checked"] += 1
        stored = orders.get(item.order_id)
        if stored is None:
            continue
        shipment = next((s for s in stored.order.shipments if s.shipment_id == item.shipment_id), None)
        if shipment is None or shipment.status in _SHIPMENT_DONE:
            store.close_shipment(item.order_id, item.shipment_id, item.promised_at)
            continue
        wanted = []
        late = (shipment.promised_at and shipment.promised_at < at) or (
            shipment.promised_at and shipment.estimated_at and shipment.estimated_at > shipment.promised_at
        )
        if late and "late" not in shipment.flags:
            wanted.append("late")
        last = shipment.last_event_at or _requested_at(stored.order, shipment.shipment_id)
        if last is not None and at - last > policy.silent_after and "silent" not in shipment.flags:
            wanted.append("silent")
        if not wanted:
            continue

        def change(order: Order, sid: str = shipment.shipment_id, add: list[str] = wanted) -> None:
            current = _shipment(order, sid)
            new = [f for f in add if f not in current.flags]
            if new:
                _replace(order, current.model_copy(update={"flags": [*current.flags, *new]}))
                order.record("shipment_flagged", at, shipment_id=sid, flags=new)

        mutate(orders, item.order_id, change)
        store.flag_shipment(item.order_id, item.shipment_id, sorted({*shipment.flags, *wanted}), at)
        for name in wanted:
            flagged[name] += 1
    return flagged


def _requested_at(order: Order, shipment_id: str) -> datetime | None:
    for entry in order.history:
        if entry.event == "fulfilment_requested" and entry.detail.get("shipment_id") == shipment_id:
            return entry.at
    return None


# --- cancellation ----------------------------------------------------------------------------------------


class AlreadyShippedError(UpstreamRejected):
    """Raised by a ThreePL adapter's cancel when everything has shipped."""


class RecallRefused(UpstreamRejected):
    """Raised by a ThreePL adapter's recall when the parcels are with the carrier."""


class FulfilmentCompensator:
    """Undoes fulfilment for a cancelled order: cancel at the 3PL what has not shipped, recall what the 3PL
    still holds, and expect a return for what the carrier has. Idempotent (it acts on current statuses)."""

    name = "fulfilment"

    def __init__(
        self,
        orders: OrderRepository,
        threepl: Callable[[str], ThreePL],
        now: Callable[[], datetime],
        *,
        already_shipped: tuple[type[Exception], ...] = (AlreadyShippedError,),
        recall_refused: tuple[type[Exception], ...] = (RecallRefused,),
    ) -> None:
        self._orders = orders
        self._threepl = threepl
        self._now = now
        self._already_shipped = already_shipped
        self._recall_refused = recall_refused

    def compensate(self, order: Order, reason: str) -> dict[str, Any] | None:
        actions: list[dict[str, Any]] = []
        updates: dict[str, dict[str, Any]] = {}
        returns: list[dict[str, Any]] = []
        for shipment in order.shipments:
            if shipment.status in _SHIPMENT_DONE or shipment.fulfilment_order_id is None:
                if shipment.status in ("allocated", "backordered"):
                    updates[shipment.shipment_id] = {"status": "cancelled"}
                continue
            client = self._threepl(shipment.provider or "default")
            if not _fully_shipped(shipment):
                try:
                    client.cancel(shipment.fulfilment_order_id)
                    actions.append({"shipment_id": shipment.shipment_id, "action": "cancelled_at_3pl"})
                    if not shipment.shipped_lines:
                        updates[shipment.shipment_id] = {"status": "cancelled"}
                        continue
                except self._already_shipped:
                    pass
            if shipment.parcels and not any("return" in r.get("status", "") for r in order.returns
                                            if r.get("shipment_id") == shipment.shipment_id):  # fmt: skip
                try:
                    recalled = client.recall(shipment.fulfilment_order_id)
                    actions.append(
                        {"shipment_id": shipment.shipment_id, "action": "recalled", "parcels": recalled}
                    )
                    updates[shipment.shipment_id] = {"status": "cancelled"}
                except self._recall_refused:
                    actions.append({"shipment_id": shipment.shipment_id, "action": "return_expected"})
                    returns.append(
                        {
                            "shipment_id": shipment.shipment_id,
                            "status": "return_expected",
                            "reason": reason[:200],
                            "parcels": [p.tracking_number for p in shipment.parcels],
                        }
                    )
        if not actions and not updates:
            return None
        if updates or returns:

            def change(current: Order) -> None:
                for sid, update in updates.items():
                    _replace(current, _shipment(current, sid).model_copy(update=update))
                known = {r.get("shipment_id") for r in current.returns}
                current.returns = [*current.returns, *(r for r in returns if r["shipment_id"] not in known)]

            mutate(self._orders, order.order_id, change)
        return {"action": "fulfilment_undone", "shipments": actions} if actions else None
