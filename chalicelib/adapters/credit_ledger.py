"""The credit ledger on DynamoDB (single table): balances, movements and per-currency totals, written only
inside the order's own transaction (`DynamoOrderRepository.save(..., movements=...)`).

Items (model `CreditModel`), amounts in minor units:
- `CREDIT#<account>` / `BALANCE`: what the account holds, its currency, expiry and voucher code;
- `CREDIT#<account>` / `MOV#<at>#<movement_id>`: the account's movements, newest last (read newest first);
- `CREDITMOV#<movement_id>` / `MOVEMENT`: the movement's once-only marker (put only if absent);
- `CREDIT#LIABILITIES` / `CUR#<currency>`: the outstanding total of vouchers and credit in that currency.
The balance item's update carries the ledger's rules (`credit.model.refusal`) as its condition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from chalicelib.adapters.models import CreditModel
from chalicelib.domain import money
from chalicelib.domain.credit.model import (
    CreditBalance,
    CreditMovement,
    CreditRefused,
    DuplicateMovement,
    MovementKind,
    refusal,
    status_at,
    voucher_account,
)
from chalicelib.domain.errors import ConcurrentUpdate, DuplicateDelivery

LIABILITIES = "CREDIT#LIABILITIES"
BALANCE = "BALANCE"


def timestamp(at: datetime) -> str:
    """One fixed format (UTC, microseconds, Z), so timestamps compare as text in conditions and keys."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str | None) -> datetime | None:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) if text else None


def account_pk(account: str) -> str:
    return f"CREDIT#{account}"


def marker_key(movement_id: str) -> tuple[str, str]:
    return f"CREDITMOV#{movement_id}", "MOVEMENT"


@dataclass(frozen=True)
class LedgerWrite:
    """One item of the order's transaction. `tag` names it when the transaction is cancelled:
    ("marker", movement_id), ("listing", movement_id), ("balance", account) or ("liability", currency)."""

    tag: tuple[str, str]
    item: CreditModel
    condition: Any = None
    actions: list[Any] | None = None  # None: a put of `item`


def ledger_writes(movements: Sequence[CreditMovement]) -> tuple[list[LedgerWrite], list[LedgerWrite]]:
    """The puts and the updates that write `movements` (one balance update per account, one total update
    per currency: an item appears once in a transaction)."""
    puts: list[LedgerWrite] = []
    updates: list[LedgerWrite] = []
    totals: dict[str, int] = {}
    for m in movements:
        minor = money.to_minor(m.amount, m.currency)
        attrs = _movement_attributes(m, minor)
        marker = CreditModel(*marker_key(m.movement_id), **attrs)
        puts.append(LedgerWrite(("marker", m.movement_id), marker, CreditModel.pk.does_not_exist()))
        listing = CreditModel(account_pk(m.account), f"MOV#{timestamp(m.at)}#{m.movement_id}", **attrs)
        puts.append(LedgerWrite(("listing", m.movement_id), listing))
        balance = CreditModel(account_pk(m.account), BALANCE)
        updates.append(
            LedgerWrite(
                ("balance", m.account), balance, _balance_condition(m, minor), _balance_actions(m, minor)
            )
        )
        totals[m.currency] = totals.get(m.currency, 0) + minor
    for currency, minor in totals.items():
        total = CreditModel(LIABILITIES, f"CUR#{currency}")
        actions = [CreditModel.amount_minor.add(minor), CreditModel.currency.set(currency)]
        updates.append(LedgerWrite(("liability", currency), total, None, actions))
    return puts, updates


def _movement_attributes(m: CreditMovement, minor: int) -> dict[str, Any]:
    return {
        "account": m.account,
        "amount_minor": minor,
        "currency": m.currency,
        "kind": m.kind.value,
        "movement_id": m.movement_id,
        "order_id": m.order_id,
        "return_id": m.return_id,
        "at": timestamp(m.at),
        "expires_at": timestamp(m.expires_at) if m.expires_at else None,
        "code": m.code,
    }


def _balance_actions(m: CreditMovement, minor: int) -> list[Any]:
    actions = [
        CreditModel.amount_minor.add(minor),
        CreditModel.account.set(m.account),
        CreditModel.currency.set(m.currency),
        CreditModel.updated_at.set(timestamp(m.at)),
    ]
    if m.kind is MovementKind.ISSUE:
        actions.append(CreditModel.kind.set("voucher" if m.code else "store_credit"))
        if m.code:
            actions.append(CreditModel.code.set(m.code))
        if m.expires_at:
            actions.append(CreditModel.expires_at.set(timestamp(m.expires_at)))
    return actions


def _balance_condition(m: CreditMovement, minor: int) -> Any:
    """`credit.model.refusal` as a DynamoDB condition on the account's balance item."""
    same_currency = CreditModel.currency == m.currency
    if m.kind is MovementKind.ISSUE:
        if m.code:  # a new voucher: its account must be new
            return CreditModel.pk.does_not_exist()
        return CreditModel.pk.does_not_exist() | same_currency
    condition = CreditModel.pk.exists() & same_currency
    if m.kind is MovementKind.REDEEM:
        unexpired = CreditModel.expires_at.does_not_exist() | (CreditModel.expires_at > timestamp(m.at))
        return condition & (CreditModel.amount_minor >= -minor) & unexpired
    if m.kind is MovementKind.EXPIRE:
        return condition & (CreditModel.amount_minor == -minor)
    return condition


def _balance(item: CreditModel) -> CreditBalance:
    currency = item.currency or "XXX"
    return CreditBalance(
        account=item.account or item.pk.removeprefix("CREDIT#"),
        amount=money.from_minor(int(item.amount_minor or 0), currency) if item.currency else Decimal(0),
        currency=currency,
        expires_at=_parse_time(item.expires_at),
        code=item.code,
    )


def _movement(item: CreditModel) -> CreditMovement:
    currency = item.currency or "XXX"
    at = _parse_time(item.at)
    return CreditMovement(
        movement_id=item.movement_id or "",
        account=item.account or "",
        kind=MovementKind(item.kind),
        amount=money.from_minor(int(item.amount_minor or 0), currency),
        currency=currency,
        order_id=item.order_id or "",
        at=at or datetime.min.replace(tzinfo=UTC),
        return_id=item.return_id,
        expires_at=_parse_time(item.expires_at),
        code=item.code,
    )


def stored_balance(account: str) -> CreditBalance | None:
    """The account's balance as stored (consistent read), without a status."""
    try:
        return _balance(CreditModel.get(account_pk(account), BALANCE, consistent_read=True))
    except CreditModel.DoesNotExist:
        return None


def translate_cancellation(
    exc: Exception, failed: list[tuple[str, str]], movements: Sequence[CreditMovement]
) -> None:
    """The domain error of the items whose conditions failed, by precedence: a repeated delivery, another
    writer's order version, movements already in the ledger, then the ledger's rules on a balance."""
    kinds = {kind for kind, _ in failed}
    if "delivery" in kinds:
        raise DuplicateDelivery(next(name for kind, name in failed if kind == "delivery")) from exc
    if "order" in kinds:
        raise ConcurrentUpdate(next(name for kind, name in failed if kind == "order")) from exc
    if "marker" in kinds:
        raise DuplicateMovement([name for kind, name in failed if kind == "marker"]) from exc
    for movement in movements:
        if ("balance", movement.account) in failed:
            refused = refusal(stored_balance(movement.account), movement)
            if refused is None:  # the balance moved between the write and this read: try again
                raise ConcurrentUpdate(movement.order_id) from exc
            raise CreditRefused(refused, movement.account) from exc


class DynamoCreditLedger:
    """The ledger's read side (`CreditLedger`)."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now

    def balance(self, account: str) -> CreditBalance | None:
        found = stored_balance(account)
        return status_at(found, self._now()) if found else None

    def voucher(self, code: str) -> CreditBalance | None:
        return self.balance(voucher_account(code))

    def movements(self, account: str, limit: int = 50) -> list[CreditMovement]:
        items = CreditModel.query(
            account_pk(account), CreditModel.sk.startswith("MOV#"), scan_index_forward=False, limit=limit
        )
        return [_movement(item) for item in items]

    def liabilities(self) -> dict[str, Decimal]:
        return {
            str(item.currency): money.from_minor(int(item.amount_minor or 0), str(item.currency))
            for item in CreditModel.query(LIABILITIES)
            if item.currency
        }
