"""Paying an order with vouchers and store credit: redeemed once, before the rest is taken, and given
back once when the order is cancelled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain import money
from chalicelib.domain.credit.ledger import mutate_with_movements, recorded_movements, reverse
from chalicelib.domain.credit.model import (
    CreditKind,
    CreditMovement,
    CreditRefused,
    MovementKind,
    Refusal,
    credit_account,
    normalise_code,
    voucher_account,
)
from chalicelib.domain.order import Order
from chalicelib.domain.ports import OrderRepository

MAX_CREDITS = 10  # per order: each is a few items of one DynamoDB transaction (at most 100)


@dataclass(frozen=True)
class CreditRequest:
    """One entry of `payment.credits`: pay `amount` of the order from a voucher or the customer's credit."""

    kind: CreditKind
    amount: Decimal
    code: str | None = None


def credit_requests(order: Order) -> list[CreditRequest]:
    """The order's `payment.credits`, read defensively: an entry that cannot be one is left out here (the
    edge refuses it with a 400; a channel's odd entry must not crash the payment stage)."""
    found = []
    for entry in order.payment.credits[:MAX_CREDITS]:
        if not isinstance(entry, dict):
            continue
        try:
            kind = CreditKind(str(entry.get("kind")))
            amount = money.exact_amount(entry.get("amount"), order.currency)
        except (ValueError, money.MoneyError):
            continue
        code = normalise_code(entry.get("code")) if kind is CreditKind.VOUCHER else None
        if amount > 0:
            found.append(CreditRequest(kind, amount, code if code else entry.get("code")))
    return found


def redeemed(order: Order) -> Decimal:
    """What vouchers and credit paid of the order (redemptions less their reversals)."""
    taken = sum(
        (-Decimal(str(m["amount"])) for m in recorded_movements(order, MovementKind.REDEEM)), Decimal(0)
    )
    back = sum(
        (Decimal(str(m["amount"])) for m in recorded_movements(order, MovementKind.REVERSE)), Decimal(0)
    )
    return max(taken - back, Decimal(0))


def _account(order: Order, request: CreditRequest) -> str:
    if request.kind is CreditKind.VOUCHER:
        if not isinstance(request.code, str) or normalise_code(request.code) != request.code:
            raise CreditRefused(Refusal.UNKNOWN, voucher_account(str(request.code or "")[:64]))
        return voucher_account(request.code)
    if not order.customer.email:
        raise CreditRefused(Refusal.NO_CUSTOMER, f"credit:{order.channel}:{order.store}")
    return credit_account(order.channel, order.store, order.customer.email)


def redemptions(order: Order, at: datetime) -> list[CreditMovement]:
    """The movements that redeem the order's credits (ids per order and account: once each)."""
    by_account: dict[str, CreditMovement] = {}
    for request in credit_requests(order):
        account = _account(order, request)
        earlier = by_account.get(account)  # named twice (a channel's odd entry): one redemption of both
        by_account[account] = CreditMovement(
            movement_id=f"redeem:{order.order_id}:{account}",
            account=account,
            kind=MovementKind.REDEEM,
            amount=-request.amount + (earlier.amount if earlier else Decimal(0)),
            currency=order.currency,
            order_id=order.order_id,
            at=at,
            code=request.code,
        )
    return list(by_account.values())


def redeem_credits(order_id: str, *, orders: OrderRepository, now: Callable[[], datetime]) -> dict[str, Any]:
    """Redeem every credit the order's payment names, all or none, once. CreditRefused when the ledger
    refuses one (nothing redeemed then); answers what is redeemed in total."""

    def change(order: Order) -> tuple[dict[str, Any], list[CreditMovement] | None]:
        done = {str(m.get("movement_id")) for m in recorded_movements(order, MovementKind.REDEEM)}
        movements = [m for m in redemptions(order, now()) if m.movement_id not in done]
        if not movements:
            return {"redeemed": f"{redeemed(order):f}", "already": True}, None
        total = redeemed(order) - sum((m.amount for m in movements), Decimal(0))
        return {"redeemed": f"{total:f}", "movements": [m.movement_id for m in movements]}, movements

    result: dict[str, Any] = mutate_with_movements(orders, order_id, change)
    return result


def pending_credits(order: Order) -> bool:
    """Whether some of the order's credits are not redeemed yet."""
    done = {str(m.get("movement_id")) for m in recorded_movements(order, MovementKind.REDEEM)}
    try:
        return any(m.movement_id not in done for m in redemptions(order, order.updated_at))
    except CreditRefused:
        return True


class CreditCompensator:
    """Gives a cancelled order's redemptions back to their vouchers and credit accounts, once each."""

    name = "credit"

    def __init__(self, orders: OrderRepository, now: Callable[[], datetime]) -> None:
        self._orders = orders
        self._now = now

    def compensate(self, order: Order, reason: str) -> dict[str, Any] | None:
        if not recorded_movements(order, MovementKind.REDEEM):
            return None

        def change(current: Order) -> tuple[list[CreditMovement], list[CreditMovement] | None]:
            undone = {str(m.get("movement_id")) for m in recorded_movements(current, MovementKind.REVERSE)}
            movements = [
                reverse(m, order_id=current.order_id, at=self._now())
                for m in recorded_movements(current, MovementKind.REDEEM)
                if f"reverse:{m.get('movement_id')}" not in undone
            ]
            return movements, movements or None

        reversed_now: list[CreditMovement] = mutate_with_movements(self._orders, order.order_id, change)
        if not reversed_now:
            return None
        return {
            "action": "credit_reversed",
            "amount": f"{sum((m.amount for m in reversed_now), Decimal(0)):f}",
            "movements": [m.movement_id for m in reversed_now],
        }
