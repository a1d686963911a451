"""The parcel comes back: the carrier's tracking of the return parcel, the 3PL's receipt and inspection
(signed events), or an operator recording them by hand. Each moves the return forward only (a duplicate,
late or reordered event changes nothing) and wakes the return workflow's wait."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.fulfilment.ports import FulfilmentStore
from chalicelib.domain.order import Order
from chalicelib.domain.ports import OrderRepository, WorkflowStarter
from chalicelib.domain.returns.errors import ReturnStepConflict
from chalicelib.domain.returns.events import ReturnedUnit, ReturnEvent
from chalicelib.domain.returns.kit_lines import expected_units, resolve_unit
from chalicelib.domain.returns.kits import counted
from chalicelib.domain.returns.model import InspectedUnit, OrderReturn, Outcome, ReturnLine, ReturnStatus
from chalicelib.domain.returns.steps import change_return, reached, resume_return


def is_return_id(key: str) -> bool:
    """A return id (`<order_id>-r<number>`), as tracking links and task tokens key returns; shipment ids
    never take that shape."""
    _, sep, number = key.rpartition("-r")
    return bool(sep) and number.isdigit()


def order_of_return(rid: str) -> str:
    """The order id inside a return id (`<order_id>-r<number>`)."""
    order_id, sep, number = rid.rpartition("-r")
    if not sep or not order_id or not number.isdigit():
        raise NotFound(f"{rid!r} is not a return id")
    return order_id


def apply_return_event(
    event: ReturnEvent,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
    now: Callable[[], datetime],
) -> dict[str, Any]:
    """A 3PL's `return.received` / `return.inspected`. Units must be the return's: an event naming a SKU
    or more units than the return holds is refused and recorded on the return, changing nothing else."""
    order_id = order_of_return(event.return_id)
    seen = f"{event.provider}:{event.event_id}"

    def change(order: Order, ret: OrderReturn) -> OrderReturn | None:
        if seen in ret.flags:
            return None
        if ret.final:
            if ret.status != ReturnStatus.RESOLVED:
                order.record(
                    "return_event_refused",
                    now(),
                    return_id=ret.return_id,
                    kind=event.kind,
                    status=ret.status.value,
                )
                return ret.model_copy(update={"flags": [*ret.flags, seen]})
            return None
        problem = _units_problem(ret, event.units, inspected=event.kind == "inspected")
        if problem:
            order.record(
                "return_event_refused", now(), return_id=ret.return_id, kind=event.kind, problem=problem
            )
            return ret.model_copy(
                update={"flags": [*ret.flags, seen], "refusal": {"rule": "event_units", "detail": problem}}
            )
        if event.kind == "received":
            return _received(order, ret, event.at, source=event.provider, seen=seen)
        return _inspected(order, ret, event, seen=seen)

    ret = change_return(orders, order_id, event.return_id, change)
    resume_return(store, workflow, ret)
    return {"order_id": order_id, "return_id": ret.return_id, "status": ret.status.value}


def _units_problem(ret: OrderReturn, units: tuple[ReturnedUnit, ...], *, inspected: bool) -> str | None:
    expected = expected_units(ret)
    got: dict[str, int] = {}
    for unit in units:
        line_id, sku = resolve_unit(ret, unit)
        key = str(sku or line_id or "")
        if key not in expected:
            return f"{key or 'a unit'} is not in this return"
        if inspected and unit.outcome is None:
            return f"{key}: an inspected unit without an outcome"
        got[key] = got.get(key, 0) + unit.quantity
    over = [k for k, n in got.items() if n > expected[k]]
    if over:
        return f"more units than returned for {', '.join(sorted(over))}"
    return None


def _received(
    order: Order, ret: OrderReturn, at: datetime, *, source: str, seen: str | None
) -> OrderReturn | None:
    if reached(ret, ReturnStatus.RECEIVED):
        return ret.model_copy(update={"flags": [*ret.flags, seen]}) if seen else None
    order.record("return_received", at, return_id=ret.return_id, source=source)
    return ret.model_copy(
        update={
            "status": ReturnStatus.RECEIVED,
            "received_at": at,
            "updated_at": at,
            "flags": [*ret.flags, *([seen] if seen else [])],
        }
    )


def _inspected(order: Order, ret: OrderReturn, event: ReturnEvent, *, seen: str | None) -> OrderReturn | None:
    if reached(ret, ReturnStatus.INSPECTED):
        return ret.model_copy(update={"flags": [*ret.flags, seen]}) if seen else None
    inspected = [
        InspectedUnit(line_id=line_id, sku=sku, quantity=u.quantity, outcome=u.outcome or Outcome.RESTOCK)
        for u in event.units
        for line_id, sku in [resolve_unit(ret, u)]
    ]
    at = event.at
    order.record(
        "return_inspected",
        at,
        return_id=ret.return_id,
        source=event.provider,
        outcomes=[{"sku": u.sku, "quantity": u.quantity, "outcome": u.outcome.value} for u in inspected],
    )
    return ret.model_copy(
        update={
            "status": ReturnStatus.INSPECTED,
            "received_at": ret.received_at or at,
            "inspected": inspected,
            "updated_at": at,
            "flags": [*ret.flags, *([seen] if seen else [])],
        }
    )


def apply_return_tracking(
    order_id: str, rid: str, status: str, at: datetime, *, orders: OrderRepository
) -> dict[str, Any]:
    """The carrier's word on the return parcel: moving → in transit (delivered to the warehouse stays in
    transit until the 3PL has counted what is inside)."""

    def change(order: Order, ret: OrderReturn) -> OrderReturn | None:
        if status in ("pre_transit", "unknown") or reached(ret, ReturnStatus.IN_TRANSIT) or ret.final:
            return None
        order.record("return_in_transit", at, return_id=rid, carrier_status=status)
        return ret.model_copy(update={"status": ReturnStatus.IN_TRANSIT, "updated_at": at})

    ret = change_return(orders, order_id, rid, change)
    return {"order_id": order_id, "return_id": rid, "status": ret.status.value}


def operator_action(
    order_id: str,
    rid: str,
    action: str,
    body: dict[str, Any],
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
    now: Callable[[], datetime],
    operator: str = "operator",
) -> OrderReturn:
    """An operator records the receipt or inspection by hand, or rejects the return. `expected_status`
    (the status the operator saw) guards against two operators acting at once: the second is told."""
    expected = body.get("expected_status")

    def change(order: Order, ret: OrderReturn) -> OrderReturn | None:
        if expected is not None and ret.status.value != expected:
            raise ReturnStepConflict(f"return {rid} is {ret.status.value} now, not {expected}: reload it")
        at = now()
        if action == "receive":
            if reached(ret, ReturnStatus.RECEIVED) or ret.final:
                raise ReturnStepConflict(f"return {rid} is {ret.status.value}: already received")
            return _received(order, ret, at, source=operator, seen=None)
        if action == "inspect":
            units = _operator_units(ret, body.get("units"))
            if reached(ret, ReturnStatus.INSPECTED) or ret.final:
                raise ReturnStepConflict(f"return {rid} is {ret.status.value}: already inspected")
            event = ReturnEvent(
                event_id=f"op-{at.timestamp()}",
                provider=operator,
                kind="inspected",
                return_id=rid,
                at=at,
                units=units,
            )
            problem = _units_problem(ret, units, inspected=True)
            if problem:
                raise InvalidInput(problem)
            return _inspected(order, ret, event, seen=None)
        if action == "reject":
            if reached(ret, ReturnStatus.INSPECTED) or ret.final:
                raise ReturnStepConflict(f"return {rid} is {ret.status.value}: too late to reject")
            reason = str(body.get("reason") or "rejected by an operator")[:300]
            order.record("return_rejected", at, return_id=rid, by=operator, reason=reason)
            return ret.model_copy(
                update={
                    "status": ReturnStatus.REJECTED,
                    "updated_at": at,
                    "refusal": {"rule": "operator", "detail": reason},
                }
            )
        raise NotFound(f"no return action {action!r} (receive, inspect, reject)")

    ret = change_return(orders, order_id, rid, change)
    resume_return(store, workflow, ret)
    return ret


def _operator_units(ret: OrderReturn, raw: Any) -> tuple[ReturnedUnit, ...]:
    """An operator's `units` ([{"line_id", "quantity", "outcome", "sku"?}]; `sku` names a kit's component;
    a kit line without it grades all its components); None: every unit restocked."""
    if raw is None:
        return tuple(u for ln in ret.lines for u in _whole_line(ln, Outcome.RESTOCK))
    if not isinstance(raw, list) or not raw:
        raise InvalidInput('units must be [{"line_id", "quantity", "outcome", "sku"?}]')
    units: list[ReturnedUnit] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidInput(f"units[{i}] must be an object")
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise InvalidInput(f"units[{i}].quantity must be a whole number of at least 1")
        outcome = item.get("outcome")
        if outcome not in Outcome.__members__.values():
            raise InvalidInput(f"units[{i}].outcome must be one of {[o.value for o in Outcome]}")
        line = next((ln for ln in ret.lines if ln.line_id == item.get("line_id")), None)
        if line is None:
            raise InvalidInput(f"units[{i}].line_id is not a line of this return")
        sku = item.get("sku")
        if sku is None and line.kit:
            if quantity != line.quantity:
                raise InvalidInput(
                    f"units[{i}]: line {line.line_id} is a kit: name the component (sku) graded, "
                    f"or grade all {line.quantity} kit(s)"
                )
            units.extend(_whole_line(line, Outcome(str(outcome))))
            continue
        if sku is not None and sku not in (counted(line.components) if line.kit else {line.sku}):
            raise InvalidInput(f"units[{i}].sku is not returned on line {line.line_id}")
        units.append(
            ReturnedUnit(
                quantity=quantity, sku=sku or line.sku, line_id=line.line_id, outcome=Outcome(str(outcome))
            )
        )
    return tuple(units)


def _whole_line(line: ReturnLine, outcome: Outcome) -> list[ReturnedUnit]:
    """Every unit of a return line with one outcome (a kit line: each of its components)."""
    parts = counted(line.components).items() if line.kit else [(line.sku, line.quantity)]
    return [ReturnedUnit(quantity=n, sku=sku, line_id=line.line_id, outcome=outcome) for sku, n in parts]
