"""Resolving an inspected return, exactly once: refund to the original method (Stripe, or the channel
that holds the money), store credit or a voucher, or an exchange (a replacement order through the normal
lifecycle, the value difference charged or refunded).

Two writes around one outside call: the money is priced and kept on the return first (never recomputed),
the outside call carries a key derived from the return (a retried task repeats Stripe's first answer, the
replacement order's delivery collapses in the ingest queue), then the return is marked resolved."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain import money
from chalicelib.domain.credit.ledger import issue, mutate_with_movements
from chalicelib.domain.errors import HubError
from chalicelib.domain.order import Order
from chalicelib.domain.outbox import PUBLISHED_CHANNELS
from chalicelib.domain.payment import stripe_intent
from chalicelib.domain.payment_gateway import PaymentGateway, idempotency_key
from chalicelib.domain.ports import OrderRepository
from chalicelib.domain.returns.amounts import return_money
from chalicelib.domain.returns.kit_lines import restocked_units
from chalicelib.domain.returns.model import (
    OrderReturn,
    Resolution,
    ReturnStatus,
    find_return,
    put_return,
    returns_of,
)
from chalicelib.domain.returns.policy import ReturnPolicies
from chalicelib.domain.returns.ports import ReturnsBoard
from chalicelib.domain.returns.steps import (
    change_return,
    load_return,
    next_step,
    reached,
    settle_order_status,
)


class NotInspected(HubError):
    """Resolution asked of a return whose inspection has not come in (the workflow waits for it)."""


class ResolutionUnavailable(HubError):
    """The deployment lacks what this resolution needs (the credit ledger, a way to place orders)."""


# (manual order body, delivery id) → the replacement order's id; queued for the normal lifecycle.
PlaceReplacement = Callable[[dict[str, Any], str], str]


def refundable(order: Order) -> Decimal:
    """What can still go back to the card or channel: captured, less refunded, less refunds under way
    (returns priced but not resolved, refunds requested but not recorded)."""
    pending = Decimal(0)
    for ret in returns_of(order):
        if (
            ret.money is not None
            and ret.status != ReturnStatus.RESOLVED
            and ret.money.method in ("stripe", "channel")
        ):
            pending += ret.money.total
    done = {
        str(h.detail.get("refund_ref"))
        for h in order.history
        if h.event in ("refund_issued", "refund_failed")
    }
    for entry in order.history:
        if entry.event == "refund_requested" and str(entry.detail.get("refund_ref")) not in done:
            pending += Decimal(str(entry.detail.get("amount", "0")))
    return max(order.payment.amount_captured - order.payment.amount_refunded - pending, Decimal(0))


def _method(order: Order, resolution: Resolution) -> str:
    if resolution is Resolution.REFUND:
        if stripe_intent(order):
            return "stripe"
        return "channel" if order.channel in PUBLISHED_CHANNELS else "manual"
    return resolution.value


def price(
    order_id: str, rid: str, *, orders: OrderRepository, policies: ReturnPolicies, now: Callable[[], datetime]
) -> OrderReturn:
    """Price the return once (kept on it); a priced return answers as it is."""

    def change(order: Order, ret: OrderReturn) -> OrderReturn | None:
        if ret.money is not None or ret.final:
            return None
        if not reached(ret, ReturnStatus.INSPECTED):
            raise NotInspected(f"return {rid} is {ret.status.value}: resolution waits for the inspection")
        at = now()
        method = _method(order, ret.resolution)
        priced = return_money(
            order, ret, policies.for_store(order.channel, order.store), at=at, method=method
        )
        if method in ("stripe", "channel"):
            cap = refundable(order)
            if priced.total > cap:
                priced = priced.model_copy(update={"total": cap})
        order.record("return_priced", at, return_id=rid, method=method, amount=f"{priced.total:f}")
        return ret.model_copy(update={"money": priced, "updated_at": at})

    return change_return(orders, order_id, rid, change)


def resolve(
    order_id: str,
    rid: str,
    *,
    orders: OrderRepository,
    policies: ReturnPolicies,
    gateway: Callable[[], PaymentGateway],
    now: Callable[[], datetime],
    place_replacement: PlaceReplacement | None = None,
    board: ReturnsBoard | None = None,
) -> dict[str, Any]:
    """Give back what the priced return says, once; answers the resolved return's summary. A resolved
    return is recorded on `board` (the status page's day list) on every call: a retry after a crash
    between the two writes still records it, and recording twice counts once."""
    ret = price(order_id, rid, orders=orders, policies=policies, now=now)
    if ret.final:
        return _summary(_recorded(ret, board))
    assert ret.money is not None
    order, _ = load_return(orders, order_id, rid)
    method = ret.money.method or "manual"
    reference: str | None = None
    to_card = ret.money.total if method == "stripe" else Decimal(0)
    if method == "stripe" and ret.money.total > 0:
        intent = stripe_intent(order)
        assert intent is not None
        refund = gateway().refund(
            intent,
            money.to_minor(ret.money.total, order.currency),
            idempotency_key=idempotency_key(order_id, f"return:{rid}"),
            reason="requested_by_customer",
        )
        reference = refund.id
    elif method in ("store_credit", "voucher"):
        policy = policies.for_store(order.channel, order.store)
        credited = _issue_credit(orders, order_id, rid, method, policy.credit_expires_days, now=now)
        return _summary(_recorded(credited, board))
    elif method == "exchange":
        reference, to_card = _exchange(order, ret, place_replacement, gateway=gateway)

    def change(order: Order, current: OrderReturn) -> OrderReturn | None:
        if current.final:
            return None
        if to_card > 0:
            order.payment = order.payment.model_copy(
                update={"amount_refunded": order.payment.amount_refunded + to_card}
            )
        return _mark_resolved(order, current, reference, now=now, refunded=to_card)

    return _summary(_recorded(change_return(orders, order_id, rid, change), board))


def _recorded(ret: OrderReturn, board: ReturnsBoard | None) -> OrderReturn:
    if board is not None and ret.status == ReturnStatus.RESOLVED:
        board.closed(ret)
    return ret


def _issue_credit(
    orders: OrderRepository,
    order_id: str,
    rid: str,
    kind: str,
    expires_in_days: int | None,
    *,
    now: Callable[[], datetime],
) -> OrderReturn:
    """Store credit or a voucher for the return's value, written with the return's resolution in one
    transaction (the ledger's movement id is the return's: a retried task issues nothing twice)."""

    def change(order: Order) -> tuple[OrderReturn, list[Any] | None]:
        ret = find_return(order, rid)
        if ret is None or ret.money is None:
            raise NotInspected(f"return {rid} is not priced")
        if ret.final:
            return ret, None
        movement = issue(
            order,
            kind=kind,
            amount=ret.money.total,
            currency=order.currency,
            return_id=rid,
            now=now(),
            expires_in_days=expires_in_days,
        )
        resolved = _mark_resolved(order, ret, movement.code or movement.movement_id, now=now)
        put_return(order, resolved)
        settle_order_status(order)
        return resolved, [movement]

    done: OrderReturn = mutate_with_movements(orders, order_id, change)
    return done


def _mark_resolved(
    order: Order,
    ret: OrderReturn,
    reference: str | None,
    *,
    now: Callable[[], datetime],
    refunded: Decimal = Decimal(0),
) -> OrderReturn:
    """`refunded`: what went back to the card (the channel records it); money the channel holds is the
    channel's to give back (`via` channel), told through the outbox either way."""
    at = now()
    assert ret.money is not None
    via = "channel" if ret.money.method == "channel" else "hub"
    if via == "channel":
        refunded = ret.money.total
    order.record(
        "return_resolved",
        at,
        return_id=ret.return_id,
        external_return_id=ret.external_id,
        method=ret.money.method,
        amount=f"{refunded:f}",
        value=f"{ret.money.total:f}",
        via=via,
        reference=reference,
        reason=", ".join(sorted({ln.reason for ln in ret.lines})),
        lines=[{"line_id": ln.line_id, "quantity": ln.quantity} for ln in ret.lines],
        restock=_restock(ret),
    )
    update: dict[str, Any] = {"status": ReturnStatus.RESOLVED, "updated_at": at}
    update["money"] = ret.money.model_copy(update={"reference": reference})
    if ret.money.method == "manual" and ret.money.total > 0:
        # Neither Stripe nor a channel holds this order's money (cash, a bank transfer): the hub cannot give
        # it back itself, so the operator is told to, on the return and in the overview's flags.
        update["flags"] = sorted({*ret.flags, "refund_by_hand"})
    if ret.money.method == "exchange":
        update["exchange_order_id"] = reference
    return ret.model_copy(update=update)


def _restock(ret: OrderReturn) -> list[dict[str, Any]]:
    """Per returned line, how many units went back to sellable stock (the 3PL's `restock` outcome). Per
    channel line: a kit line's units count as restocked only as whole kits whose every component came back
    in this return and was restocked (components of part of a kit are the 3PL's stock, not the channel's)."""
    out = []
    for line in ret.lines:
        restocked = restocked_units(line, ret.inspected)
        if restocked:
            out.append({"line_id": line.line_id, "quantity": restocked, "restock": True})
        if line.quantity - restocked > 0:
            out.append({"line_id": line.line_id, "quantity": line.quantity - restocked, "restock": False})
    return out


def _summary(ret: OrderReturn) -> dict[str, Any]:
    m = ret.money
    return {
        "order_id": ret.order_id,
        "return_id": ret.return_id,
        "status": ret.status.value,
        "method": m.method if m else None,
        "amount": f"{m.total:f}" if m else None,
        "reference": m.reference if m else None,
        "next": next_step(ret),
    }


def replacement_body(order: Order, ret: OrderReturn) -> tuple[dict[str, Any], Decimal]:
    """The replacement order (manual channel, same customer and address) and its value in goods and tax."""
    wanted = ret.exchange_lines or [{"sku": ln.sku, "quantity": ln.quantity} for ln in ret.lines]
    lines, value = [], Decimal(0)
    for i, item in enumerate(wanted, start=1):
        source = next((ln for ln in order.lines if ln.sku == item.get("sku")), None)
        priced = item.get("unit_price")
        if priced is not None:
            unit, tax_each = money.exact_amount(priced, order.currency), Decimal(0)
        else:
            unit = source.unit_price if source else Decimal(0)
            tax_each = source.tax / source.quantity if source and source.quantity else Decimal(0)
        quantity = int(item["quantity"])
        tax = money.to_amount(tax_each * quantity, order.currency)
        lines.append(
            {
                "line_id": str(i),
                "sku": item.get("sku"),
                "title": str(item.get("title") or (source.title if source else item.get("sku"))),
                "quantity": quantity,
                "unit_price": f"{unit:f}",
                "tax": f"{tax:f}",
            }
        )
        value += unit * quantity + (Decimal(0) if order.totals.taxes_included else tax)
    body = {
        "store": order.store,
        "external_id": f"exchange-{ret.return_id}",
        "external_number": f"EX-{order.external_number or order.external_id}-{ret.number}",
        "currency": order.currency,
        "placed_at": ret.updated_at.isoformat(),
        "customer": order.customer.model_dump(exclude_none=True),
        "lines": lines,
    }
    if order.shipping_address is not None:
        body["shipping_address"] = order.shipping_address.model_dump(exclude_none=True)
    return body, value


def _exchange(
    order: Order, ret: OrderReturn, place: PlaceReplacement | None, *, gateway: Callable[[], PaymentGateway]
) -> tuple[str, Decimal]:
    """Place the replacement, paid by the returned goods' value; a cheaper replacement's difference is
    refunded to the card, a dearer one waits in PAYMENT_PENDING for the customer to pay the rest."""
    if place is None:
        raise ResolutionUnavailable("no way to place a replacement order")
    assert ret.money is not None
    credit = ret.money.total
    body, value = replacement_body(order, ret)
    applied = min(credit, value)
    body["payment"] = {"source": "exchange", "reference": ret.return_id, "amount_captured": f"{applied:f}"}
    replacement = place(body, f"exchange:{ret.return_id}")
    surplus = credit - value
    intent = stripe_intent(order)
    if surplus <= 0 or intent is None:
        return replacement, Decimal(0)
    gateway().refund(
        intent,
        money.to_minor(surplus, order.currency),
        idempotency_key=idempotency_key(order.order_id, f"return:{ret.return_id}:difference"),
        reason="requested_by_customer",
    )
    return replacement, surplus


__all__ = [
    "NotInspected",
    "PlaceReplacement",
    "ResolutionUnavailable",
    "refundable",
    "resolve",
]
