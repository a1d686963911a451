"""A return's refund as WooCommerce REST refunds: line items with their share of the line's total and
taxes, `restock_items`, and `api_refund` only when the store holds the money (via "channel").

WooCommerce restocks per refund, not per line (`restock_items` applies to every line of the refund), so
a return whose lines are partly restocked becomes two refunds: the restocked lines, then the others, each
with its own marker (`<publication_id>:restock`, `<publication_id>:keep`) so each is written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from chalicelib.domain.publishing import Milestone, PublishRejected


def _money(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
    return amount if amount.is_finite() else Decimal(0)


def _quantize(amount: Decimal, places: Decimal) -> Decimal:
    return amount.quantize(places, rounding=ROUND_HALF_EVEN)


def refund_parts(store_order: Mapping[str, Any], milestone: Milestone) -> list[tuple[str, dict[str, Any]]]:
    """(publication id of the part, refund body without reason) for each refund the return needs."""
    try:
        amount = Decimal(str(milestone.amount))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0:
        raise PublishRejected(f"refund milestone {milestone.publication_id} carries no amount")
    places = Decimal(1) if store_order.get("currency") == "JPY" else Decimal("0.01")
    items = {str(i.get("id")): i for i in store_order.get("line_items") or () if isinstance(i, Mapping)}
    restocked = {
        str(r.get("line_id")): int(r.get("quantity") or 0) for r in milestone.restock if r.get("restock")
    }
    groups: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for line in milestone.lines:
        line_id, quantity = str(line.get("line_id")), line.get("quantity")
        item = items.get(line_id)
        if (
            item is None
            or not isinstance(quantity, int)
            or not 0 < quantity <= int(item.get("quantity") or 0)
        ):
            raise PublishRejected(
                f"woocommerce: order has no line {line_id} with {quantity!r} units to refund"
            )
        back = min(restocked.get(line_id, 0), quantity)
        for restock, count in ((True, back), (False, quantity - back)):
            if count > 0:
                groups[restock].append(_row(item, count, places))
    parts = [(restock, rows) for restock, rows in groups.items() if rows]
    totals = [sum((_row_total(r) for r in rows), Decimal(0)) for _restock, rows in parts]
    whole = sum(totals, Decimal(0))
    result, left = [], amount
    for index, ((restock, rows), total) in enumerate(zip(parts, totals, strict=True)):
        last = index == len(parts) - 1
        share = left if last else _quantize(amount * total / whole if whole else Decimal(0), places)
        left -= share
        suffix = "" if len(parts) == 1 else (":restock" if restock else ":keep")
        body = {
            "amount": f"{share:f}",
            "line_items": rows,
            "restock_items": restock,
            "api_refund": milestone.via == "channel",
        }
        result.append((f"{milestone.publication_id}{suffix}", body))
    return result


def _row(item: Mapping[str, Any], quantity: int, places: Decimal) -> dict[str, Any]:
    """One line item's share of a refund: `quantity` of its units, their total and their taxes."""
    share = Decimal(quantity) / Decimal(int(item.get("quantity") or 1))
    taxes = [t for t in item.get("taxes") or () if isinstance(t, Mapping) and t.get("id") is not None]
    return {
        "id": item.get("id"),
        "quantity": quantity,
        "refund_total": f"{_quantize(_money(item.get('total')) * share, places):f}",
        "refund_tax": [
            {"id": t["id"], "refund_total": f"{_quantize(_money(t.get('total')) * share, places):f}"}
            for t in taxes
        ],
    }


def _row_total(row: Mapping[str, Any]) -> Decimal:
    return _money(row["refund_total"]) + sum(
        (_money(t["refund_total"]) for t in row["refund_tax"]), Decimal(0)
    )
