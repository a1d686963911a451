"""A refund without a return (goodwill, price adjustment): exact amounts, never above what is left, once
per Idempotency-Key, and two at once never over-refund (the amount is reserved in the order first)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain import money
from chalicelib.domain.errors import IdempotencyKeyReused, InvalidInput, NotFound
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.outbox import PUBLISHED_CHANNELS
from chalicelib.domain.payment import stripe_intent
from chalicelib.domain.payment_gateway import PaymentError, PaymentGateway, idempotency_key
from chalicelib.domain.ports import OrderRepository
from chalicelib.domain.returns.errors import ReturnNotAllowed, ReturnRefused
from chalicelib.domain.returns.intake import request_hash
from chalicelib.domain.returns.resolution import refundable
from chalicelib.domain.upstream import UpstreamUnavailable

_KEYS = {"amount", "reason", "lines"}


def parse_refund(body: Any, currency: str) -> tuple[Decimal, str, list[dict[str, Any]]]:
    """`{"amount": "12.50", "reason": "...", "lines": [{"line_id", "quantity"}]?}`; InvalidInput (400)."""
    if not isinstance(body, dict) or set(body) - _KEYS:
        raise InvalidInput('body must be {"amount": "<decimal string>", "reason": "...", "lines"?: [...]}')
    raw = body.get("amount")
    if not isinstance(raw, str):
        raise InvalidInput('amount must be a decimal string, e.g. "12.50"')
    try:
        amount = money.exact_amount(raw, currency)
    except money.MoneyError as exc:
        raise InvalidInput(f"amount: {exc}") from exc
    if amount <= 0:
        raise InvalidInput("amount must be more than zero")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise InvalidInput("reason must be a non-empty string of at most 500 characters")
    lines = body.get("lines", [])
    if not isinstance(lines, list) or not all(
        isinstance(ln, dict)
        and isinstance(ln.get("line_id"), str)
        and isinstance(ln.get("quantity"), int)
        and not isinstance(ln.get("quantity"), bool)
        and ln["quantity"] > 0
        for ln in lines
    ):
        raise InvalidInput('lines must be [{"line_id": "...", "quantity": <whole number ≥ 1>}]')
    return amount, reason.strip(), [{"line_id": ln["line_id"], "quantity": ln["quantity"]} for ln in lines]


def refund(
    order_id: str,
    body: Any,
    *,
    orders: OrderRepository,
    gateway: Callable[[], PaymentGateway],
    now: Callable[[], datetime],
    key: str | None = None,
    operator: str = "operator",
) -> tuple[dict[str, Any], bool]:
    """Refund an amount of the order's captured money; (the refund, created)."""
    stored = orders.get(order_id)
    if stored is None:
        raise NotFound(f"order {order_id} does not exist")
    amount, reason, lines = parse_refund(body, stored.order.currency)
    digest = request_hash(body)

    def reserve(order: Order) -> tuple[dict[str, Any], bool]:
        for entry in order.history:
            if entry.event == "refund_requested" and key is not None and entry.detail.get("key") == key:
                if entry.detail.get("hash") != digest:
                    raise IdempotencyKeyReused(
                        f"Idempotency-Key {key!r} was already used with another refund"
                    )
                return dict(entry.detail), False
        if order.status == OrderStatus.CANCELLED:
            raise ReturnNotAllowed(f"order {order_id} is cancelled: its payment was already undone")
        known = {line.line_id for line in order.lines}
        unknown = [ln["line_id"] for ln in lines if ln["line_id"] not in known]
        if unknown:
            raise ReturnRefused("unknown_line", f"the order has no line {unknown[0]!r}")
        left = refundable(order)
        if amount > left:
            raise ReturnRefused("refund_exceeds_captured", f"{amount:f} asked, {left:f} left to refund")
        number = 1 + sum(1 for h in order.history if h.event == "refund_requested")
        detail = {
            "refund_ref": f"rf{number}",
            "amount": f"{amount:f}",
            "reason": reason,
            "lines": lines,
            "by": operator,
            "key": key,
            "hash": digest,
            "method": "stripe"
            if stripe_intent(order)
            else ("channel" if order.channel in PUBLISHED_CHANNELS else "manual"),
        }
        order.record("refund_requested", now(), **detail)
        return detail, True

    detail, created = mutate(orders, order_id, reserve)
    return _carry_out(order_id, detail, orders=orders, gateway=gateway, now=now), created


def _carry_out(
    order_id: str,
    detail: dict[str, Any],
    *,
    orders: OrderRepository,
    gateway: Callable[[], PaymentGateway],
    now: Callable[[], datetime],
) -> dict[str, Any]:
    ref = str(detail["refund_ref"])
    stored = orders.get(order_id)
    assert stored is not None
    order = stored.order
    finished = next(
        (
            h
            for h in order.history
            if h.event in ("refund_issued", "refund_failed") and h.detail.get("refund_ref") == ref
        ),
        None,
    )
    if finished is not None:
        return _public(
            order_id, {**detail, **finished.detail, "status": finished.event.removeprefix("refund_")}
        )
    amount = Decimal(str(detail["amount"]))
    outcome: dict[str, Any] = {"refund_ref": ref, "amount": f"{amount:f}"}
    intent = stripe_intent(order)
    if detail.get("method") == "stripe" and intent:
        try:
            made = gateway().refund(
                intent,
                money.to_minor(amount, order.currency),
                idempotency_key=idempotency_key(order_id, f"refund:{ref}"),
                reason="requested_by_customer",
            )
        except PaymentError as exc:
            if isinstance(exc, UpstreamUnavailable):
                raise  # the reservation stays: the same request again uses the same Stripe key
            outcome = {**outcome, "error": f"{exc.code or 'refused'}: {str(exc)[:200]}"}

            def failed(order: Order) -> None:
                order.record("refund_failed", now(), **outcome)

            mutate(orders, order_id, failed)
            raise ReturnRefused("refund_refused", f"Stripe refused the refund ({exc.code or exc})") from exc
        outcome["refund"] = made.id
    via = "channel" if detail.get("method") == "channel" else "hub"

    def issued(order: Order) -> None:
        if any(h.event == "refund_issued" and h.detail.get("refund_ref") == ref for h in order.history):
            return
        if via == "hub" and detail.get("method") == "stripe":
            order.payment = order.payment.model_copy(
                update={"amount_refunded": order.payment.amount_refunded + amount}
            )
        order.record(
            "refund_issued",
            now(),
            **outcome,
            via=via,
            method=detail.get("method"),
            reason=detail.get("reason"),
            lines=detail.get("lines", []),
        )
        if order.payment.amount_refunded >= order.totals.total > 0:
            order.status = OrderStatus.REFUNDED
        elif order.status in (OrderStatus.COMPLETED, OrderStatus.DELIVERED):
            order.status = OrderStatus.PARTIALLY_REFUNDED

    mutate(orders, order_id, issued)
    return _public(order_id, {**detail, **outcome, "via": via, "status": "issued"})


def _public(order_id: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"order_id": order_id, **{k: v for k, v in detail.items() if k not in ("hash", "key")}}
