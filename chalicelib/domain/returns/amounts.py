"""What a return gives back, to the cent: the returned units' share of what was paid, tax, shipping,
fees, label cost and credit bonus, as the store's returns policy says."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from chalicelib.domain import money
from chalicelib.domain.order import Line, Order
from chalicelib.domain.returns.kit_lines import line_units, units_before
from chalicelib.domain.returns.model import (
    OrderReturn,
    Resolution,
    ReturnLine,
    ReturnMoney,
    delivered_at,
    delivered_units,
    returns_of,
    units_back,
)
from chalicelib.domain.returns.policy import WITHDRAWAL_DAYS, ReturnPolicy


def within_withdrawal(order: Order, at: datetime) -> bool:
    """Within the withdrawal right's seven days of delivery (no fee, no label charge, no refusal)."""
    received = delivered_at(order)
    return received is not None and at - received <= timedelta(days=WITHDRAWAL_DAYS)


def _line(order: Order, line_id: str) -> Line:
    return next(line for line in order.lines if line.line_id == line_id)


def line_share(order: Order, line: Line, units: int | Fraction) -> tuple[Decimal, Decimal]:
    """(goods, tax) paid for `units` of `line` (a kit's part: a fraction of a unit): the line total less
    its part of the order-level discount, pro rata per unit; tax pro rata (zero when prices include it: it
    is inside the goods)."""
    if line.quantity <= 0 or units <= 0:
        return Decimal(0), Decimal(0)
    part = Fraction(units)
    subtotal = sum((ln.total for ln in order.lines), Decimal(0))
    discount_share = order.totals.discount * line.total / subtotal if subtotal > 0 else Decimal(0)
    per = Decimal(part.denominator * line.quantity)
    goods = (line.total - discount_share) * part.numerator / per
    tax = Decimal(0) if order.totals.taxes_included else line.tax * part.numerator / per
    return money.to_amount(goods, order.currency), money.to_amount(tax, order.currency)


def returned_share(order: Order, ret: OrderReturn, rl: ReturnLine) -> tuple[Decimal, Decimal]:
    """(goods, tax) of the line's units in `ret`: the line's value up to and with this return less its
    value up to the return before (by number), each rounded once, so the returns of a line, kit
    components included, add up to what was paid for it to the cent."""
    line = _line(order, rl.line_id)
    before = units_before(order, ret, rl)
    goods, tax = line_share(order, line, before + line_units(rl))
    goods_before, tax_before = line_share(order, line, before)
    return goods - goods_before, tax - tax_before


def completes_return(order: Order, ret: OrderReturn) -> bool:
    """With this return, every delivered unit of the order has come back."""
    back = units_back([*(r for r in returns_of(order) if r.return_id != ret.return_id), ret])
    return all(back.get(lid, 0) >= units for lid, units in delivered_units(order).items() if units > 0)


def return_money(
    order: Order, ret: OrderReturn, policy: ReturnPolicy, *, at: datetime, method: str
) -> ReturnMoney:
    """The return's money, computed once when it is resolved (kept on the return afterwards)."""
    withdrawal = within_withdrawal(order, ret.requested_at)
    goods = tax = fee = Decimal(0)
    for rl in ret.lines:
        g, t = returned_share(order, ret, rl)
        goods, tax = goods + g, tax + t
        if policy.fee_applies(rl.reason) and not withdrawal:
            fee += g * policy.restocking_fee_percent / 100
    reasons = {rl.reason for rl in ret.lines}
    shipping = Decimal(0)
    if (withdrawal or reasons & set(policy.refund_shipping_for)) and completes_return(order, ret):
        shipping = order.totals.shipping
    label_cost = Decimal(0)
    if ret.label is not None and ret.label.paid_by == "customer" and not withdrawal:
        label_cost = ret.label.cost
    fee = money.to_amount(fee, order.currency)
    total = max(goods + tax + shipping - fee - label_cost, Decimal(0))
    bonus = Decimal(0)
    if ret.resolution in (Resolution.STORE_CREDIT, Resolution.VOUCHER):
        bonus = money.to_amount(total * policy.store_credit_bonus_percent / 100, order.currency)
    return ReturnMoney(
        lines=goods,
        tax=tax,
        shipping=shipping,
        restocking_fee=fee,
        label_cost=label_cost,
        bonus=bonus,
        total=total + bonus,
        method=method,
    )
