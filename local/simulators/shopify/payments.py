"""The shop's payments: transactions, captures from authorizations, settling, risk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from local.simulators.shopify.nodes import gql_transaction
from local.simulators.shopify.records import Capture, CaptureRejected
from local.simulators.shopify.store import Store
from local.simulators.shopify.values import capture_amount, legacy_id_of, make_gid, money_text, risk_summary


class Payments(Store):
    """Payment transactions per order, as GraphQL OrderTransaction objects show them."""

    def transactions(self, order_id: int) -> list[dict[str, Any]]:
        """The order's payment transactions as GraphQL OrderTransaction objects, oldest first."""
        with self._lock:
            return self._gql_transactions(self._order(order_id))

    def captures(self, order_id: int) -> list[Capture]:
        """Every successful capture taken from the order's authorizations, oldest first."""
        with self._lock:
            order = self._order(order_id)
            return [
                Capture(
                    make_gid("OrderTransaction", t["id"]),
                    make_gid("OrderTransaction", t["parent_id"]),
                    t["amount"],
                    order["presentment_currency"],
                    t["final_capture"],
                )
                for t in self._transactions.get(order["id"], [])
                if t["kind"] == "CAPTURE" and t["status"] == "SUCCESS"
            ]

    def set_risk(self, order_id: int, recommendation: str, levels: Sequence[str] = ()) -> None:
        """Set the order's `risk`: the summary's recommendation and one assessment per risk level.

        Orders start with ACCEPT and one LOW assessment (Shopify's own analysis of a clean order).
        """
        summary = risk_summary(recommendation, levels)
        with self._lock:
            self._risk[self._order(order_id)["id"]] = summary

    def mark_paid(self, order_id: int) -> dict[str, Any]:
        """Capture the payment of an authorized or pending order."""
        with self._lock:
            order = self._order(order_id)
            if order["financial_status"] not in ("pending", "authorized", "partially_paid"):
                raise ValueError(f"order {order_id} is {order['financial_status']}, not payable")
            now = self._stamp()
            self._settle(order, now)
            order["financial_status"] = "paid"
            order["total_outstanding"] = money_text(Decimal(0), order["currency"])
            return self._touch(order, now, "orders/paid", "orders/updated")

    def capture(
        self,
        order_id: int,
        parent_transaction_id: int | str,
        amount: str | Decimal,
        *,
        currency: str | None = None,
        final_capture: bool | None = None,
    ) -> dict[str, Any]:
        """Capture from an authorization as `orderCapture` does; returns the capture transaction (GraphQL).

        Raises CaptureRejected (Shopify's userError) for an unknown or voided parent, one already
        captured, another currency than the presentment currency, or more than is left to capture.
        A single-capture authorization is spent by its one capture (the rest is released); a
        multi-capturable one stays open until `final_capture` or until nothing is left. The order
        becomes paid or partially_paid and sends orders/paid (when paid in full) and orders/updated.
        """
        with self._lock:
            order = self._orders.get(legacy_id_of(order_id, "Order") or 0)
            if order is None:
                raise CaptureRejected("id", "Order does not exist")
            txns = self._transactions.get(order["id"], [])
            parent_id = legacy_id_of(parent_transaction_id, "OrderTransaction")
            auth = next((t for t in txns if t["id"] == parent_id), None)
            if auth is None:
                raise CaptureRejected("parentTransactionId", "Parent transaction does not exist")
            if auth["kind"] != "AUTHORIZATION" or auth["status"] != "SUCCESS":
                raise CaptureRejected(
                    "parentTransactionId", "Parent transaction is not a successful authorization"
                )
            if any(t["kind"] == "VOID" and t["parent_id"] == auth["id"] for t in txns):
                raise CaptureRejected("parentTransactionId", "The authorization has been voided")
            remaining = self._capturable(order, auth)
            if remaining <= 0:
                raise CaptureRejected("parentTransactionId", "The authorization has already been captured")
            cur = order["presentment_currency"]
            if currency is not None and str(currency).upper() != cur:
                raise CaptureRejected("currency", f"Currency must be the order's presentment currency {cur}")
            value = capture_amount(amount, cur)
            if value > remaining:
                capturable = money_text(remaining, cur)
                message = f"Amount cannot be greater than the capturable amount of {capturable} {cur}"
                raise CaptureRejected("amount", message)
            now = self._stamp()
            capture = self._add_transaction(
                order, "CAPTURE", value, now=now, parent_id=auth["id"], final_capture=final_capture
            )
            if not auth["multi_capturable"] or final_capture is True or value == remaining:
                auth["open"] = False
            paid = self._paid(order)
            order["total_outstanding"] = money_text(
                max(Decimal(0), Decimal(order["total_price"]) - paid), cur
            )
            in_full = Decimal(order["total_outstanding"]) == 0
            order["financial_status"] = "paid" if in_full else "partially_paid"
            self._touch(order, now, *(("orders/paid",) if in_full else ()), "orders/updated")
            return self._gql_transactions(order)[txns.index(capture)]

    def _add_transaction(
        self,
        order: Mapping[str, Any],
        kind: str,
        amount: Decimal,
        *,
        now: str,
        parent_id: int | None = None,
        final_capture: bool | None = None,
        txn_id: int | None = None,
    ) -> dict[str, Any]:
        authorization = kind == "AUTHORIZATION"
        txn = {
            "id": txn_id or self._new_txn_id(),
            "kind": kind,
            "status": "SUCCESS",
            "amount": amount,
            "gateway": order["payment_gateway_names"][0] if order["payment_gateway_names"] else "manual",
            "created_at": now,
            "parent_id": parent_id,
            "multi_capturable": authorization and self.multi_capture,
            "open": authorization,  # an authorization is capturable until captured, closed or voided
            "final_capture": final_capture,
        }
        self._transactions.setdefault(int(order["id"]), []).append(txn)
        return txn

    def _capturable(self, order: Mapping[str, Any], auth: Mapping[str, Any]) -> Decimal:
        if not auth["open"]:
            return Decimal(0)
        children = self._transactions.get(int(order["id"]), [])
        taken = sum(
            (t["amount"] for t in children if t["kind"] == "CAPTURE" and t["parent_id"] == auth["id"]),
            Decimal(0),
        )
        return Decimal(auth["amount"]) - taken

    def _paid(self, order: Mapping[str, Any]) -> Decimal:
        kinds = ("CAPTURE", "SALE")
        txns = self._transactions.get(int(order["id"]), [])
        return sum((t["amount"] for t in txns if t["kind"] in kinds and t["status"] == "SUCCESS"), Decimal(0))

    def _settle(self, order: dict[str, Any], now: str) -> None:
        """mark_paid's money: capture what open authorizations hold, a manual sale for the rest."""
        outstanding = Decimal(order["total_outstanding"])
        for auth in list(self._transactions.get(int(order["id"]), [])):
            if auth["kind"] != "AUTHORIZATION" or not auth["open"]:
                continue
            take = min(outstanding, self._capturable(order, auth))
            if take > 0:
                self._add_transaction(order, "CAPTURE", take, now=now, parent_id=auth["id"])
                outstanding -= take
            auth["open"] = False
        if outstanding > 0:
            self._add_transaction(order, "SALE", outstanding, now=now)

    def _gql_transactions(self, order: Mapping[str, Any]) -> list[dict[str, Any]]:
        txns = self._transactions.get(int(order["id"]), [])
        kinds = {t["id"]: t["kind"] for t in txns}
        cur = order["presentment_currency"]
        return [gql_transaction(t, kinds, cur, self._capturable(order, t)) for t in txns]
