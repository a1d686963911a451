"""Return lines of kits: the components a line brings back (checked against the kit units returned and
what came back before), the RMA lines the 3PL receives them on, what they are worth in kits, and how many
whole kits the inspection restocked."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from chalicelib.domain.order import Order
from chalicelib.domain.returns.errors import ReturnRefused
from chalicelib.domain.returns.events import ReturnedUnit
from chalicelib.domain.returns.kits import Kits, counted, kit_units, per_kit, snapshot, whole_kits
from chalicelib.domain.returns.model import (
    InspectedUnit,
    OrderReturn,
    Outcome,
    ReturnLine,
    ReturnStatus,
    components_back,
    returns_of,
)


def with_components(order: Order, rl: ReturnLine, kits: Kits, *, delivered: int) -> ReturnLine:
    """`rl` (its SKU known) with its kit's definition and the components coming back: those the request
    names, or every component of its kit units still with the customer. ReturnRefused `unknown_component`
    (not a kit, or not a component of it) or `too_many_components` (more than the returned kit units hold,
    or than came back before: no component comes back twice)."""
    parts = kits.get(rl.sku or "")
    if parts is None:
        if rl.components:
            raise ReturnRefused("unknown_component", f"line {rl.line_id} ({rl.sku}) is not a kit")
        return rl
    each = per_kit(snapshot(parts))
    back = components_back(returns_of(order), rl.line_id)
    left = {sku: max(delivered * n - back.get(sku, 0), 0) for sku, n in each.items()}
    room = {sku: min(rl.quantity * n, left[sku]) for sku, n in each.items()}
    if not rl.components:
        components = [{"sku": sku, "quantity": n} for sku, n in room.items() if n > 0]
        if not components:
            raise ReturnRefused(
                "too_many_components", f"line {rl.line_id}: every component of its kits came back already"
            )
        return rl.model_copy(update={"kit": snapshot(parts), "components": components})
    for sku, n in counted(rl.components).items():
        if sku not in each:
            raise ReturnRefused("unknown_component", f"{sku} is not a component of {rl.sku}")
        if n > room[sku]:
            raise ReturnRefused(
                "too_many_components",
                f"line {rl.line_id}: {n} {sku} asked; {rl.quantity} kit(s) hold {rl.quantity * each[sku]}, "
                f"{left[sku]} delivered and not returned",
            )
    ordered = sorted(rl.components, key=lambda c: list(each).index(c["sku"]))
    return rl.model_copy(update={"kit": snapshot(parts), "components": ordered})


def line_units(rl: ReturnLine) -> Fraction:
    """The line's units in this return, in units of the order line: a kit line's components by their
    share of the kit (two of its three equal components are 2/3 of a kit)."""
    if rl.kit:
        return kit_units(rl.kit, counted(rl.components))
    return Fraction(rl.quantity)


def units_before(order: Order, ret: OrderReturn, rl: ReturnLine) -> Fraction:
    """The order line's units in the order's earlier returns (by number; rejected and expired aside), as
    `line_units` counts them: pricing the difference of running totals refunds a line to the cent."""
    earlier = [
        r
        for r in returns_of(order)
        if r.number < ret.number and r.status not in (ReturnStatus.REJECTED, ReturnStatus.EXPIRED)
    ]
    if rl.kit:
        return kit_units(rl.kit, components_back(earlier, rl.line_id))
    return Fraction(sum(ln.quantity for r in earlier for ln in r.lines if ln.line_id == rl.line_id))


def rma_line_id(rl: ReturnLine, sku: str) -> str:
    """The RMA line a kit's component is received on (distinct per component); a plain line's own id."""
    return f"{rl.line_id}:{sku}" if rl.kit else rl.line_id


def rma_lines(ret: OrderReturn) -> list[dict[str, Any]]:
    """What the 3PL is told to expect: one RMA line per plain line, one per component of a kit line."""
    out: list[dict[str, Any]] = []
    for rl in ret.lines:
        parts = counted(rl.components).items() if rl.kit else [(rl.sku, rl.quantity)]
        out.extend({"line_id": rma_line_id(rl, str(sku)), "sku": sku, "quantity": int(n)} for sku, n in parts)
    return out


def resolve_unit(ret: OrderReturn, unit: ReturnedUnit | InspectedUnit) -> tuple[str | None, str | None]:
    """(the return's line id, the SKU) a 3PL's unit is about: by its RMA line, its line, or its SKU."""
    for rl in ret.lines:
        skus = list(counted(rl.components)) if rl.kit else [rl.sku]
        for sku in skus:
            if unit.line_id is not None and unit.line_id == rma_line_id(rl, str(sku)):
                return rl.line_id, sku
    by_line = next((rl for rl in ret.lines if rl.line_id == unit.line_id), None)
    if by_line is not None and not by_line.kit:
        return by_line.line_id, unit.sku or by_line.sku
    for rl in ret.lines:
        if unit.sku is not None and (unit.sku == rl.sku or unit.sku in counted(rl.components)):
            return rl.line_id, unit.sku
    return unit.line_id, unit.sku


def restocked_units(rl: ReturnLine, inspected: list[InspectedUnit]) -> int:
    """Units of the order line back in sellable stock: a kit line counts only whole kits whose every
    component was restocked (a kit missing a component, or with one scrapped, is not a kit to sell)."""
    restocked = [u for u in inspected if u.line_id == rl.line_id and u.outcome == Outcome.RESTOCK]
    if not rl.kit:
        return min(sum(u.quantity for u in restocked), rl.quantity)
    skus: dict[str, int] = {}
    for u in restocked:
        skus[str(u.sku)] = skus.get(str(u.sku), 0) + u.quantity
    return min(whole_kits(rl.kit, skus), rl.quantity)


def expected_units(ret: OrderReturn) -> Mapping[str, int]:
    """SKU (or line id, for a line without one) → units the 3PL should find in the parcel."""
    expected: dict[str, int] = {}
    for rl in ret.lines:
        parts = counted(rl.components).items() if rl.kit else [(str(rl.sku or rl.line_id), rl.quantity)]
        for sku, n in parts:
            expected[sku] = expected.get(sku, 0) + n
    return expected
