"""Use cases of the credit ledger: issue credit or a voucher for a return, write an order's change and its
ledger movements as one transaction, and the history entries that make every movement happen once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from chalicelib.domain import money
from chalicelib.domain.credit.model import (
    CreditKind,
    CreditMovement,
    CreditRefused,
    DuplicateMovement,
    MovementKind,
    Refusal,
    credit_account,
    new_voucher_code,
    voucher_account,
)
from chalicelib.domain.errors import ConcurrentUpdate, NotFound
from chalicelib.domain.order import Order
from chalicelib.domain.outbox import sync_outbox
from chalicelib.domain.ports import OrderRepository

MAX_ATTEMPTS = 5
HISTORY_PREFIX = "credit_"  # credit_issue, credit_redeem, credit_reverse, credit_expire

# What a change returns: its result, and the movements to write with the order (None: leave the order as
# it is, write nothing).
Change = Callable[[Order], tuple[Any, Sequence[CreditMovement] | None]]


def recorded_movements(order: Order, kind: MovementKind | None = None) -> list[dict[str, Any]]:
    """The movements written with this order (their history entries' details), oldest first."""
    wanted = {f"{HISTORY_PREFIX}{k.value}" for k in ([kind] if kind else MovementKind)}
    return [dict(h.detail) for h in order.history if h.event in wanted]


def issue(
    order: Order,
    *,
    kind: CreditKind | str,
    amount: Decimal,
    currency: str,
    return_id: str,
    now: datetime,
    expires_in_days: int | None,
) -> CreditMovement:
    """The movement that gives a return's value back as store credit (the customer's account) or as a new
    voucher. Pure: a retry finds the voucher code the first attempt kept in the order's history."""
    kind = CreditKind(kind)
    movement_id = f"issue:{return_id}"
    earlier = next((m for m in recorded_movements(order) if m.get("movement_id") == movement_id), None)
    code: str | None = None
    if kind is CreditKind.VOUCHER:
        code = str(earlier["code"]) if earlier and earlier.get("code") else new_voucher_code()
        account = voucher_account(code)
    else:
        if not order.customer.email:
            raise CreditRefused(Refusal.NO_CUSTOMER, f"credit:{order.channel}:{order.store}")
        account = credit_account(order.channel, order.store, order.customer.email)
    value = money.to_amount(amount, currency)
    if value <= 0:
        raise ValueError(f"credit must be positive, not {value:f}")
    return CreditMovement(
        movement_id=movement_id,
        account=account,
        kind=MovementKind.ISSUE,
        amount=value,
        currency=currency.upper(),
        order_id=order.order_id,
        at=now,
        return_id=return_id,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
        code=code,
    )


def reverse(recorded: dict[str, Any], *, order_id: str, at: datetime) -> CreditMovement:
    """The movement that undoes a recorded redemption (gives the amount back to its account)."""
    amount = Decimal(str(recorded["amount"]))
    return CreditMovement(
        movement_id=f"reverse:{recorded['movement_id']}",
        account=str(recorded["account"]),
        kind=MovementKind.REVERSE,
        amount=-amount,
        currency=str(recorded["currency"]),
        order_id=order_id,
        at=at,
        code=recorded.get("code"),
    )


def mutate_with_movements(orders: OrderRepository, order_id: str, change: Change) -> Any:
    """Load, change and save an order together with its ledger movements, as ONE transaction.

    Each movement is recorded in the order's history (`credit_<kind>`), so a movement already there is
    never written again; one the ledger already holds (DuplicateMovement) is done and left out. A
    concurrent writer makes it reload and change again; CreditRefused leaves order and ledger as they were.
    """
    done_elsewhere: set[str] = set()
    attempts = 0
    while attempts < MAX_ATTEMPTS:
        stored = orders.get(order_id)
        if stored is None:
            raise NotFound(f"order {order_id} does not exist")
        order = stored.order.model_copy(deep=True)
        result, movements = change(order)
        if movements is None:
            return result
        known = {str(m.get("movement_id")) for m in recorded_movements(order)}
        fresh = _unique([m for m in movements if m.movement_id not in known])
        for movement in fresh:
            order.record(f"{HISTORY_PREFIX}{movement.kind.value}", movement.at, **movement.to_detail())
        sync_outbox(order, order.history[-1].at if order.history else order.updated_at)
        try:
            orders.save(
                order,
                expected_version=stored.version,
                replacing=stored.order.status,
                movements=[m for m in fresh if m.movement_id not in done_elsewhere],
            )
        except DuplicateMovement as exc:
            new = set(exc.movement_ids) - done_elsewhere
            if not new:
                raise
            done_elsewhere.update(new)  # the ledger has them: write the order without them
            continue
        except ConcurrentUpdate:
            attempts += 1
            continue
        return result
    raise ConcurrentUpdate(f"order {order_id} kept changing under {MAX_ATTEMPTS} attempts")


def _unique(movements: list[CreditMovement]) -> list[CreditMovement]:
    """One movement per account in one write (a balance is one item, once per transaction)."""
    seen: set[str] = set()
    for movement in movements:
        if movement.account in seen:
            raise ValueError(f"two movements on one account in one change ({movement.movement_id})")
        seen.add(movement.account)
    return movements
