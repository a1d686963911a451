"""Shopify Admin API for the payment stage: order risk, authorizations, orderCapture (read before write)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.fraud import ShopifyRisk
from chalicelib.integrations.shopify.errors import ShopifyError, ShopifyNotFound, ShopifyRejected
from chalicelib.integrations.shopify.graphql import ShopifyGraphql
from chalicelib.integrations.shopify.transactions import (
    Authorization,
    CaptureResult,
    authorizations,
    capture_result,
)

logger = Logger(service="order-hub", child=True)

# OrderCaptureInput.finalCapture exists from 2024-07 on; older versions reject the field outright.
FINAL_CAPTURE_SINCE = "2024-07"
_GID = re.compile(r"^gid://shopify/(?P<type>[A-Za-z]+)/(?P<id>\d+)$")

_RISK_QUERY = """
query OrderRisk($id: ID!) {
  order(id: $id) { id risk { recommendation assessments { riskLevel } } }
}
"""
_TRANSACTIONS_QUERY = """
query OrderTransactions($id: ID!) {
  order(id: $id) {
    id
    transactions {
      id kind status manuallyCapturable
      amountSet { presentmentMoney { amount currencyCode } }
      parentTransaction { id }
    }
  }
}
"""
_CAPTURE_MUTATION = """
mutation OrderCapture($input: OrderCaptureInput!) {
  orderCapture(input: $input) {
    transaction {
      id kind status errorCode
      amountSet { presentmentMoney { amount currencyCode } }
      parentTransaction { id }
    }
    userErrors { field message }
  }
}
"""


def order_gid(order_id: str | int) -> str:
    """`gid://shopify/Order/N` from a legacy numeric id or a gid."""
    return _gid(order_id, "Order")


def transaction_gid(transaction_id: str | int) -> str:
    """`gid://shopify/OrderTransaction/N` from a legacy numeric id or a gid."""
    return _gid(transaction_id, "OrderTransaction")


def _gid(value: str | int, type_name: str) -> str:
    text = str(value).strip()
    if text.isdigit():
        return f"gid://shopify/{type_name}/{text}"
    match = _GID.match(text)
    if match is None or match["type"] != type_name:
        raise InvalidInput(f"not a Shopify {type_name} id: {text[:80]!r}")
    return text


class ShopifyAdmin(ShopifyGraphql):
    """One shop's Admin GraphQL API (ShopifyGraphql: pacing, retries, query/mutate/write_once), with
    the payment stage's reads and its capture. Build one per connection and reuse it."""

    # --- reads --------------------------------------------------------------------------------

    def order_risk(self, order_id: str) -> ShopifyRisk | None:
        """The order's `risk` summary (recommendation and assessment levels); None when it has none."""
        order = self._order("orderRisk", _RISK_QUERY, order_id)
        risk = order.get("risk")
        return ShopifyRisk.from_graphql(risk if isinstance(risk, Mapping) else None)

    def capturable_authorizations(self, order_id: str) -> list[Authorization]:
        """Every successful AUTHORIZATION of the order with its successful captures, oldest first.

        Fully captured, closed or voided ones are listed too (`capturable` False, `remaining` 0), so
        a caller can tell "already captured" from "never authorized".
        """
        order = self._order("orderTransactions", _TRANSACTIONS_QUERY, order_id)
        transactions = order.get("transactions")
        return authorizations(transactions if isinstance(transactions, list) else [])

    # --- capture ------------------------------------------------------------------------------

    def capture(
        self,
        order_id: str,
        parent_transaction_id: str,
        amount: Decimal,
        currency: str,
        *,
        final_capture: bool = True,
        captured_before: Decimal = Decimal(0),
    ) -> CaptureResult:
        """Capture `amount` (presentment currency) from an authorization; safe to call again.

        Shopify's orderCapture takes no idempotency key, so a read comes before every write: when
        the authorization already has successful captures totalling `captured_before + amount` or
        more, the earlier capture is returned (`replayed=True`) and nothing is captured again. The
        same read follows a rejection (another caller may have won) and an answer that never came
        (timeout, 5xx: the capture may have happened), before any retry. A deliberate further partial
        capture of a multi-capturable authorization passes what was captured before it.

        `final_capture` is sent from API version 2024-07 on (the field does not exist before; there
        Shopify's default applies: a single-capture authorization is spent by its one capture, a
        multi-capturable one stays open). Raises ShopifyRejected for userErrors or a failed capture,
        ShopifyUnavailable when Shopify stays unreachable, throttled or failing.
        """
        order, parent = order_gid(order_id), transaction_gid(parent_transaction_id)
        if not amount.is_finite() or amount <= 0:
            raise InvalidInput(f"capture amount must be positive, not {amount}")
        target = captured_before + amount
        result, _ = self.write_once(
            lambda: self._existing_capture(order, parent, amount, target),
            lambda: self._order_capture(order, parent, amount, currency, final_capture),
        )
        return result

    def _existing_capture(
        self, order: str, parent: str, amount: Decimal, target: Decimal
    ) -> CaptureResult | None:
        auth = next((a for a in self.capturable_authorizations(order) if a.transaction_id == parent), None)
        if auth is None or not auth.captures or auth.captured < target:
            return None
        same = [c for c in auth.captures if c.amount == amount]
        logger.info(
            "shopify capture already done",
            extra={"operation": "orderCapture", "order_id": order, "captured": f"{auth.captured:f}"},
        )
        return replace((same or list(auth.captures))[-1], replayed=True)

    def _order_capture(
        self, order: str, parent: str, amount: Decimal, currency: str, final_capture: bool
    ) -> CaptureResult:
        fields: dict[str, Any] = {
            "id": order,
            "parentTransactionId": parent,
            "amount": f"{amount:f}",
            "currency": currency.upper(),
        }
        if self.api_version == "unstable" or self.api_version >= FINAL_CAPTURE_SINCE:
            fields["finalCapture"] = final_capture
        # mutate() raises ShopifyRejected for userErrors; an answer that never came is not sent again here.
        payload = self.mutate("orderCapture", _CAPTURE_MUTATION, {"input": fields}, replay_unsure=False)
        transaction = payload.get("transaction")
        if not isinstance(transaction, Mapping):
            raise ShopifyError("orderCapture answered without a transaction", operation="orderCapture")
        result = capture_result(transaction, parent)
        if result.status in ("FAILURE", "ERROR"):
            code = transaction.get("errorCode") or result.status
            raise ShopifyRejected(f"orderCapture failed at the gateway: {code}", operation="orderCapture")
        logger.info(
            "shopify capture",
            extra={"operation": "orderCapture", "order_id": order, "status": result.status},
        )
        return result

    def _order(self, operation: str, query: str, order_id: str) -> Mapping[str, Any]:
        gid = order_gid(order_id)
        order = self.query(operation, query, {"id": gid}).get("order")
        if not isinstance(order, Mapping):
            raise ShopifyNotFound(f"no order {gid} in {self.shop}", operation=operation)
        return order
