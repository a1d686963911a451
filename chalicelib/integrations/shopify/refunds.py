"""Shopify refunds as the publisher writes them: the queries, the amount, and the transactions that pay it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib.domain.publishing import Milestone, PublishRejected

REFUND_STATE_QUERY = """
query OrderRefunds($id: ID!) {
  order(id: $id) {
    id presentmentCurrencyCode
    refunds(first: 50) { id note }
    transactions(first: 50) {
      id kind status gateway
      amountSet { presentmentMoney { amount currencyCode } }
      parentTransaction { id }
    }
  }
}
"""
# The idempotency key goes in as a literal (a UUID, nothing to escape), as Shopify's examples write it.
REFUND_CREATE = """
mutation RefundCreate($input: RefundInput!) {
  refundCreate(input: $input) @idempotent(key: %s) {
    refund { id note }
    userErrors { field message }
  }
}
"""


def refund_amount(milestone: Milestone) -> Decimal:
    try:
        amount = Decimal(str(milestone.amount))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount <= 0:
        raise PublishRejected(f"shopify: refund amount must be positive, not {milestone.amount!r}")
    return amount


def refund_transactions(order: str, transactions: Sequence[Any], amount: Decimal) -> list[dict[str, Any]]:
    """REFUND transactions taking `amount` from the order's successful sales and captures, oldest first."""
    nodes = [t for t in transactions if isinstance(t, Mapping) and t.get("status") == "SUCCESS"]
    refunded: dict[str, Decimal] = {}
    for node in nodes:
        parent = (node.get("parentTransaction") or {}).get("id")
        if node.get("kind") == "REFUND" and parent:
            refunded[parent] = refunded.get(parent, Decimal(0)) + _money(node)
    left, result = amount, []
    for node in nodes:
        if node.get("kind") not in ("SALE", "CAPTURE") or left <= 0:
            continue
        take = min(left, _money(node) - refunded.get(str(node["id"]), Decimal(0)))
        if take <= 0:
            continue
        result.append(
            {
                "orderId": order,
                "parentId": node["id"],
                "amount": f"{take:f}",
                "gateway": node.get("gateway"),
                "kind": "REFUND",
            }
        )
        left -= take
    if left > 0:
        raise PublishRejected(f"shopify: only {amount - left:f} of {amount:f} is left to refund")
    return result


def _money(transaction: Mapping[str, Any]) -> Decimal:
    money = ((transaction.get("amountSet") or {}).get("presentmentMoney")) or {}
    try:
        return Decimal(str(money.get("amount")))
    except InvalidOperation:
        return Decimal(0)
