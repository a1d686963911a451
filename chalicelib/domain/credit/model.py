"""The store-credit and voucher ledger's words: accounts, movements, balances and the rules a movement
must pass (the same rules the DynamoDB adapter writes as transaction conditions)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from chalicelib.domain.errors import HubError


class MovementKind(StrEnum):
    ISSUE = "issue"  # a return resolved as credit or voucher: the liability grows
    REDEEM = "redeem"  # an order paid with it: the liability shrinks
    REVERSE = "reverse"  # a redemption undone (the order was cancelled)
    EXPIRE = "expire"  # what was left when the expiry passed


class CreditKind(StrEnum):
    STORE_CREDIT = "store_credit"
    VOUCHER = "voucher"


class Refusal(StrEnum):
    """Why the ledger refused a movement (the order's `payment_failed` records it as decline code)."""

    UNKNOWN = "unknown"  # no such voucher or no credit on the account
    EXPIRED = "expired"
    INSUFFICIENT = "insufficient"  # less left than asked
    USED = "used"  # nothing left
    CURRENCY = "currency"  # the account holds another currency
    NO_CUSTOMER = "no_customer"  # store credit needs the customer's e-mail


class CreditRefused(HubError):
    """A movement the ledger's rules refuse; nothing was written (neither the order nor the ledger)."""

    def __init__(self, reason: Refusal, account: str, detail: str = "") -> None:
        self.reason = reason
        self.account = account
        super().__init__(f"{reason.value}: {mask_account(account)}{f' ({detail})' if detail else ''}")


class DuplicateMovement(HubError):
    """Movements already in the ledger (by id): done before, so left out of a retried write."""

    def __init__(self, movement_ids: list[str]) -> None:
        self.movement_ids = movement_ids
        super().__init__(f"{len(movement_ids)} movement(s) already applied")


# --- accounts and codes ----------------------------------------------------------------------------

# Crockford-like: no 0/O, 1/I to misread; 32 symbols, so 16 of them are 80 random bits.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 16
_CODE = re.compile(rf"[{CODE_ALPHABET}]{{{CODE_LENGTH}}}")
VOUCHER_PREFIX = "voucher:"
CREDIT_PREFIX = "credit:"


def new_voucher_code() -> str:
    """An unguessable code, grouped for reading aloud: `ABCD-EFGH-JKLM-NPQR`."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def normalise_code(text: object) -> str | None:
    """A code as a customer typed it (any case, spaces or dashes anywhere) in its canonical form; None
    when it cannot be a code of ours."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    raw = re.sub(r"[\s-]", "", text).upper()
    if not _CODE.fullmatch(raw):
        return None
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def voucher_account(code: str) -> str:
    return f"{VOUCHER_PREFIX}{code}"


def customer_key(email: str) -> str:
    """The customer's key in the ledger: never the e-mail itself."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def credit_account(channel: str, store: str, email: str) -> str:
    return f"{CREDIT_PREFIX}{channel}:{store}:{customer_key(email)}"


def mask_account(account: str) -> str:
    """An account fit for messages and logs: a voucher's code is a bearer secret, only its end shows."""
    if account.startswith(VOUCHER_PREFIX):
        return f"voucher:…{account[-4:]}"
    return account[:24] + "…" if len(account) > 24 else account


# --- movements and balances -------------------------------------------------------------------------


@dataclass(frozen=True)
class CreditMovement:
    """One entry of the ledger. `amount` is signed (issue and reverse add, redeem and expire take away),
    in the currency's minor units (EUR 12.50, JPY 1200)."""

    movement_id: str  # deterministic: issue:<return_id>, redeem:<order_id>:<account>, reverse:<id>, ...
    account: str
    kind: MovementKind
    amount: Decimal
    currency: str
    order_id: str
    at: datetime
    return_id: str | None = None
    expires_at: datetime | None = None  # issue only
    code: str | None = None  # voucher only

    def to_detail(self) -> dict[str, Any]:
        """The movement as the order's history keeps it (JSON-safe)."""
        detail: dict[str, Any] = {
            "movement_id": self.movement_id,
            "account": self.account,
            "amount": f"{self.amount:f}",
            "currency": self.currency,
        }
        for name in ("return_id", "code"):
            if getattr(self, name) is not None:
                detail[name] = getattr(self, name)
        if self.expires_at is not None:
            detail["expires_at"] = self.expires_at.isoformat()
        return detail


@dataclass(frozen=True)
class CreditBalance:
    account: str
    amount: Decimal
    currency: str
    expires_at: datetime | None = None
    code: str | None = None
    # active | expired | spent (nothing left): the status at the time the balance was read
    status: str = "active"

    def expired_at(self, at: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= at


def status_at(balance: CreditBalance, at: datetime) -> CreditBalance:
    if balance.expired_at(at):
        status = "expired"
    elif balance.amount <= 0:
        status = "spent"
    else:
        status = "active"
    return replace(balance, status=status)


def refusal(balance: CreditBalance | None, movement: CreditMovement) -> Refusal | None:
    """Why the ledger refuses `movement` on `balance` (None: it passes). The DynamoDB adapter writes these
    rules as the balance item's condition; this is how the fake applies them and how a failed condition
    is explained."""
    if movement.kind is MovementKind.ISSUE:
        if balance is not None and balance.currency != movement.currency:
            return Refusal.CURRENCY
        return None
    if balance is None:
        return Refusal.UNKNOWN
    if balance.currency != movement.currency:
        return Refusal.CURRENCY
    if movement.kind is MovementKind.REDEEM:
        if balance.expired_at(movement.at):
            return Refusal.EXPIRED
        if balance.amount <= 0:
            return Refusal.USED
        if balance.amount < -movement.amount:
            return Refusal.INSUFFICIENT
    if movement.kind is MovementKind.EXPIRE and balance.amount != -movement.amount:
        return Refusal.INSUFFICIENT  # the balance moved since it was read: expire what is there now
    return None


def apply_movement(balance: CreditBalance | None, movement: CreditMovement) -> CreditBalance:
    """The balance after `movement`; CreditRefused when the rules refuse it."""
    refused = refusal(balance, movement)
    if refused is not None:
        raise CreditRefused(refused, movement.account)
    if balance is None:
        return CreditBalance(
            movement.account, movement.amount, movement.currency, movement.expires_at, movement.code
        )
    expires = movement.expires_at if movement.kind is MovementKind.ISSUE else None
    return replace(balance, amount=balance.amount + movement.amount, expires_at=expires or balance.expires_at)


class CreditLedger(Protocol):
    """The ledger's read side (its writes go with the order's, through `OrderRepository.save`)."""

    def balance(self, account: str) -> CreditBalance | None: ...

    def voucher(self, code: str) -> CreditBalance | None: ...

    def movements(self, account: str, limit: int = 50) -> list[CreditMovement]:
        """Newest first."""
        ...

    def liabilities(self) -> dict[str, Decimal]:
        """What is owed in vouchers and credit, per currency (one kept total each, never a scan)."""
        ...
