"""Shopify order transactions as the payment stage reads them: authorizations and their captures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib.integrations.shopify.errors import ShopifyError

_CAPTURED = frozenset({"SUCCESS", "PENDING"})


@dataclass(frozen=True)
class CaptureResult:
    """A CAPTURE transaction; `replayed` when it was found already done instead of captured now."""

    transaction_id: str  # gid://shopify/OrderTransaction/...
    status: str  # SUCCESS | PENDING | ...
    amount: Decimal
    currency: str  # presentment currency
    parent_transaction_id: str
    replayed: bool = False


@dataclass(frozen=True)
class Authorization:
    """A successful AUTHORIZATION transaction and what was captured against it so far."""

    transaction_id: str  # gid://shopify/OrderTransaction/...
    amount: Decimal  # presentment money
    currency: str
    captured: Decimal  # by its successful (and pending) captures
    capturable: bool = True  # Shopify's manuallyCapturable: False once spent, closed, voided or expired
    captures: tuple[CaptureResult, ...] = ()

    @property
    def remaining(self) -> Decimal:
        """What a capture may still take from this authorization."""
        return max(Decimal(0), self.amount - self.captured) if self.capturable else Decimal(0)


def authorizations(transactions: list[Any]) -> list[Authorization]:
    nodes = [t for t in transactions if isinstance(t, Mapping)]
    auths = [t for t in nodes if t.get("kind") == "AUTHORIZATION" and t.get("status") == "SUCCESS"]
    captures: dict[str, list[CaptureResult]] = {str(a.get("id")): [] for a in auths}
    for node in nodes:
        parent = (node.get("parentTransaction") or {}).get("id")
        # A pending capture is money on its way: counting it keeps a second call from capturing again.
        if node.get("kind") == "CAPTURE" and node.get("status") in _CAPTURED and parent in captures:
            captures[parent].append(capture_result(node, parent))
    result = []
    for auth in auths:
        amount, currency = _money(auth)
        taken = tuple(captures[str(auth.get("id"))])
        result.append(
            Authorization(
                transaction_id=str(auth.get("id")),
                amount=amount,
                currency=currency,
                captured=sum((c.amount for c in taken), Decimal(0)),
                capturable=bool(auth.get("manuallyCapturable", True)),
                captures=taken,
            )
        )
    return result


def capture_result(transaction: Mapping[str, Any], parent: str) -> CaptureResult:
    amount, currency = _money(transaction)
    parent_id = (transaction.get("parentTransaction") or {}).get("id") or parent
    return CaptureResult(
        transaction_id=str(transaction.get("id")),
        status=str(transaction.get("status") or ""),
        amount=amount,
        currency=currency,
        parent_transaction_id=str(parent_id),
    )


def _money(transaction: Mapping[str, Any]) -> tuple[Decimal, str]:
    money = ((transaction.get("amountSet") or {}).get("presentmentMoney")) or {}
    try:
        return Decimal(str(money["amount"])), str(money["currencyCode"])
    except (KeyError, InvalidOperation) as exc:
        raise ShopifyError(f"transaction {transaction.get('id')} has no readable amount") from exc
