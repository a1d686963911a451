"""Kits (bundles) as the returns policy defines them: a kit SKU's components, each's part of the kit's
price, and how many whole kits a set of returned components makes.

`kits` in returns_policy: {"<kit sku>": [{"sku": "<component sku>", "quantity": n, "share": "0.6"?}]}.
`quantity` is per kit unit; `share` is the component's (all `quantity` units') part of the kit's price,
given for every component or for none (then by quantity: each unit of the kit weighs the same).
A return line keeps the definition it was opened with (`ReturnLine.kit`, as `snapshot` writes it), so a
later change of the policy never reprices or recounts a return already opened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from chalicelib.domain.errors import InvalidInput

MAX_COMPONENTS = 50


@dataclass(frozen=True)
class KitComponent:
    sku: str
    quantity: int  # units of this component in one kit
    share: Decimal | None = None  # part of one kit's price (all `quantity` units); None: by quantity


Kits = Mapping[str, tuple[KitComponent, ...]]


def _share(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(f"returns policy: {where} must be a decimal string")
    try:
        share = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidInput(f"returns policy: {where} is not a number") from exc
    if not share.is_finite() or share <= 0:
        raise InvalidInput(f"returns policy: {where} must be more than 0")
    return share


def _component(raw: Any, where: str) -> KitComponent:
    if not isinstance(raw, Mapping) or set(raw) - {"sku", "quantity", "share"}:
        raise InvalidInput(f'returns policy: {where} must be {{"sku", "quantity", "share"?}}')
    sku, quantity = raw.get("sku"), raw.get("quantity")
    if not isinstance(sku, str) or not sku.strip():
        raise InvalidInput(f"returns policy: {where}.sku must be a non-empty string")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise InvalidInput(f"returns policy: {where}.quantity must be a whole number of at least 1")
    share = _share(raw["share"], f"{where}.share") if raw.get("share") is not None else None
    return KitComponent(sku=sku, quantity=quantity, share=share)


def parse_kits(raw: Any) -> dict[str, tuple[KitComponent, ...]]:
    """The policy's `kits`, validated: InvalidInput naming the kit and the rule it breaks."""
    if not isinstance(raw, Mapping):
        raise InvalidInput('returns policy: kits must be {"<kit sku>": [{"sku", "quantity", "share"?}]}')
    kits: dict[str, tuple[KitComponent, ...]] = {}
    for kit_sku, components in raw.items():
        where = f"kits[{kit_sku!r}]"
        if not isinstance(components, list) or not 0 < len(components) <= MAX_COMPONENTS:
            raise InvalidInput(f"returns policy: {where} must list 1 to {MAX_COMPONENTS} components")
        parts = tuple(_component(c, f"{where}[{i}]") for i, c in enumerate(components))
        if len({p.sku for p in parts}) != len(parts):
            raise InvalidInput(f"returns policy: {where} names a component twice")
        if any(p.sku == kit_sku for p in parts):
            raise InvalidInput(f"returns policy: {where} lists itself as a component")
        given = [p.share for p in parts if p.share is not None]
        if given and len(given) != len(parts):
            raise InvalidInput(f"returns policy: {where}: give a share for every component or for none")
        if given and sum(given, Decimal(0)) != 1:
            raise InvalidInput(f"returns policy: {where}: the shares must add up to 1")
        kits[str(kit_sku)] = parts
    nested = sorted(f"{k} contains {p.sku}" for k, parts in kits.items() for p in parts if p.sku in kits)
    if nested:
        raise InvalidInput(f"returns policy: no kit inside a kit ({'; '.join(nested)})")
    return kits


def snapshot(parts: Sequence[KitComponent]) -> list[dict[str, Any]]:
    """The definition as a return line keeps it: [{"sku", "quantity", "share"?}]."""
    return [
        {"sku": p.sku, "quantity": p.quantity, **({"share": f"{p.share:f}"} if p.share is not None else {})}
        for p in parts
    ]


def per_kit(kit: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Component SKU → units in one kit, from a kept definition."""
    return {str(c["sku"]): int(c["quantity"]) for c in kit}


def unit_weights(kit: Sequence[Mapping[str, Any]]) -> dict[str, Fraction]:
    """Component SKU → one unit's part of one kit's price (the weights of a whole kit add up to 1)."""
    units = per_kit(kit)
    if kit and all(c.get("share") is not None for c in kit):
        return {str(c["sku"]): Fraction(Decimal(str(c["share"]))) / units[str(c["sku"])] for c in kit}
    total = sum(units.values())
    return {sku: Fraction(1, total) for sku in units} if total else {}


def kit_units(kit: Sequence[Mapping[str, Any]], components: Mapping[str, int]) -> Fraction:
    """What `components` (SKU → units) are worth in kits: 1 for a whole kit, the shares for part of one."""
    weights = unit_weights(kit)
    return sum((weights.get(sku, Fraction(0)) * n for sku, n in components.items()), Fraction(0))


def whole_kits(kit: Sequence[Mapping[str, Any]], components: Mapping[str, int]) -> int:
    """How many whole kits `components` make (every component of a kit present)."""
    units = per_kit(kit)
    if not units:
        return 0
    return min(components.get(sku, 0) // n for sku, n in units.items())


def counted(components: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """[{"sku", "quantity"}] → SKU → units."""
    out: dict[str, int] = {}
    for c in components:
        out[str(c.get("sku"))] = out.get(str(c.get("sku")), 0) + int(c.get("quantity") or 0)
    return out


def parse_components(raw: Any, where: str) -> list[dict[str, Any]]:
    """A request line's `components` ([{"sku", "quantity"}], each SKU once); [] when absent; InvalidInput."""
    if raw is None:
        return []
    shape = f'{where}.components must be a list of 1 to {MAX_COMPONENTS} {{"sku", "quantity"}}'
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_COMPONENTS:
        raise InvalidInput(shape)
    out: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - {"sku", "quantity"}:
            raise InvalidInput(shape)
        sku, quantity = item.get("sku"), item.get("quantity")
        if not isinstance(sku, str) or not sku:
            raise InvalidInput(f"{where}.components[{i}].sku must be a non-empty string")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise InvalidInput(f"{where}.components[{i}].quantity must be a whole number of at least 1")
        if any(c["sku"] == sku for c in out):
            raise InvalidInput(f"{where}.components names {sku!r} twice")
        out.append({"sku": sku, "quantity": quantity})
    return out
