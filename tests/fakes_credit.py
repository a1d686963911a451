"""The credit ledger in memory: the same rules as the DynamoDB adapter's conditions (`credit.model`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal

from chalicelib.domain.credit.ledger import issue, mutate_with_movements
from chalicelib.domain.credit.model import (
    CreditBalance,
    CreditMovement,
    DuplicateMovement,
    apply_movement,
    status_at,
    voucher_account,
)
from chalicelib.domain.order import Order
from chalicelib.domain.ports import OrderRepository


class InMemoryCreditLedger:
    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now
        self.balances: dict[str, CreditBalance] = {}
        self.applied: dict[str, CreditMovement] = {}
        self.totals: dict[str, Decimal] = {}

    def apply(self, movements: Sequence[CreditMovement]) -> None:
        """All or nothing, as the adapter's transaction (the caller holds the repository's lock)."""
        repeated = [m.movement_id for m in movements if m.movement_id in self.applied]
        if repeated:
            raise DuplicateMovement(repeated)
        balances = dict(self.balances)
        for movement in movements:
            balances[movement.account] = apply_movement(balances.get(movement.account), movement)
        self.balances = balances
        for movement in movements:
            self.applied[movement.movement_id] = movement
            self.totals[movement.currency] = self.totals.get(movement.currency, Decimal(0)) + movement.amount

    def balance(self, account: str) -> CreditBalance | None:
        found = self.balances.get(account)
        if found is None or self._now is None:
            return found
        return status_at(found, self._now())

    def voucher(self, code: str) -> CreditBalance | None:
        return self.balance(voucher_account(code))

    def movements(self, account: str, limit: int = 50) -> list[CreditMovement]:
        mine = [m for m in self.applied.values() if m.account == account]
        return sorted(mine, key=lambda m: (m.at, m.movement_id), reverse=True)[:limit]

    def liabilities(self) -> dict[str, Decimal]:
        return dict(self.totals)


def issue_with(
    orders: OrderRepository,
    order_id: str,
    *,
    kind: str,
    amount: str,
    return_id: str,
    at: datetime,
    days: int | None = 365,
) -> CreditMovement:
    """Resolve a (pretend) return of `order_id` as credit: the issue written with that order, as the
    returns resolution does."""

    def change(order: Order) -> tuple[CreditMovement, list[CreditMovement]]:
        movement = issue(
            order,
            kind=kind,
            amount=Decimal(amount),
            currency=order.currency,
            return_id=return_id,
            now=at,
            expires_in_days=days,
        )
        return movement, [movement]

    movement: CreditMovement = mutate_with_movements(orders, order_id, change)
    return movement
