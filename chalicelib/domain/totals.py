"""Checks that an order's own totals add up; a mismatch is flagged for operators, never hidden."""

from __future__ import annotations

from decimal import Decimal

from chalicelib.domain.order import Order


def totals_issues(order: Order) -> list[str]:
    """Every way the order's figures disagree with each other, in words an operator can act on."""
    issues: list[str] = []
    for line in order.lines:
        expected = line.unit_price * line.quantity - line.discount
        if line.total != expected:
            issues.append(
                f"line {line.line_id}: total {line.total:f} != {line.quantity} x "
                f"{line.unit_price:f} - {line.discount:f}"
            )
    t = order.totals
    line_sum = sum((line.total for line in order.lines), Decimal(0))
    if t.subtotal != line_sum:
        issues.append(f"subtotal {t.subtotal:f} != sum of lines {line_sum:f}")
    if t.taxes_included:
        expected_total = t.subtotal - t.discount + t.shipping
        formula = "subtotal - discount + shipping (tax included)"
    else:
        expected_total = t.subtotal - t.discount + t.shipping + t.tax
        formula = "subtotal - discount + shipping + tax"
    if t.total != expected_total:
        issues.append(f"total {t.total:f} != {formula} = {expected_total:f}")
    return issues
