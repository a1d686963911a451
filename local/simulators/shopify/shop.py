"""The shop's order lifecycle: placing, editing, cancelling, fulfilling and refunding orders."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from local.simulators.shopify.nodes import (
    fulfillment_record,
    gql_fulfillment,
    gql_fulfillment_order,
    gql_node,
    gql_refund,
)
from local.simulators.shopify.orders import (
    OrderSpec,
    build_fulfillment,
    build_order,
    build_refund,
    tracking_url_for,
)
from local.simulators.shopify.payments import Payments
from local.simulators.shopify.records import (
    Cancellation,
    FulfillmentEventRecord,
    FulfillmentRecord,
    RefundRecord,
)
from local.simulators.shopify.values import (
    gql_connection,
    make_gid,
    money_set,
    money_text,
    risk_summary,
    set_sum,
)


class Shop(Payments):
    """Actions (`create_order`, `update_order`, `mark_paid`, `cancel_order`, `fulfil_order`,
    `refund_order`) change the store and emit the webhooks Shopify emits for them.

    Every order gets one OPEN fulfillment order per location its lines ship from (`locations`; an item
    may name its `location_id`), which `fulfillmentCreate` and `fulfil_order` draw from. What was done is
    kept for tests: `fulfillments`, `fulfillment_events`, `cancellations`, `refunds`, `fulfillment_orders`.
    """

    def fulfillment_orders(self, order_id: int) -> list[dict[str, Any]]:
        """The order's fulfillment orders as GraphQL FulfillmentOrder objects."""
        with self._lock:
            return [gql_fulfillment_order(fo) for fo in self._fulfillment_orders.get(int(order_id), [])]

    def fulfillments(self, order_id: int) -> list[FulfillmentRecord]:
        """Every fulfillment of the order, oldest first."""
        with self._lock:
            return [fulfillment_record(f) for f in self._fulfillments.get(int(order_id), [])]

    def fulfillment_events(self, order_id: int) -> list[FulfillmentEventRecord]:
        """Every fulfillment event created on the order's fulfillments, oldest first."""
        with self._lock:
            return [
                FulfillmentEventRecord(
                    make_gid("FulfillmentEvent", e["id"]),
                    make_gid("Fulfillment", f["id"]),
                    e["status"],
                    e["happened_at"],
                )
                for f in self._fulfillments.get(int(order_id), [])
                for e in f["events"]
            ]

    def cancellations(self, order_id: int) -> list[Cancellation]:
        with self._lock:
            return list(self._cancellations.get(int(order_id), []))

    def refunds(self, order_id: int) -> list[RefundRecord]:
        with self._lock:
            return list(self._refund_records.get(int(order_id), []))

    def create_order(
        self,
        *,
        currency: str | None = None,
        items: Sequence[Mapping[str, Any]] | None = None,
        shipping: Sequence[str] | None = None,
        discount: Mapping[str, str] | None = None,
        financial_status: str | None = None,
        taxes_included: bool = False,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Place an order as a checkout would: orders/create, and orders/paid when captured at once.

        None picks at random (seeded); `items` [{title, price, quantity, sku?, variant_title?}],
        `shipping` (prices of the shipping lines, [] for none), `discount` ({code, type:
        percentage|fixed_amount|shipping, value}, {} for none). `overrides` replace top-level fields
        of the finished order as given (they may make it inconsistent on purpose).
        """
        with self._lock:
            spec = OrderSpec.pick(
                self._rng,
                currency=currency,
                items=items,
                shipping=shipping,
                discount=discount,
                financial_status=financial_status,
                taxes_included=taxes_included,
            )
            now = self._stamp()
            order = build_order(
                spec,
                order_id=self._new_id(),
                number=self._next_number,
                now=now,
                new_id=self._new_id,
                shop_domain=self.shop_domain,
            )
            self._next_number += 1
            order.update(overrides)
            self._orders[order["id"]] = order
            self._fulfillment_orders[order["id"]] = self._new_fulfillment_orders(order, spec.items)
            self._risk[order["id"]] = risk_summary("ACCEPT", ["LOW"])
            if order["financial_status"] in ("authorized", "paid"):
                kind = "AUTHORIZATION" if order["financial_status"] == "authorized" else "SALE"
                self._add_transaction(order, kind, Decimal(order["total_price"]), now=now)
            self._emit("orders/create", order, order["id"])
            if order["financial_status"] == "paid":
                self._emit("orders/paid", order, order["id"])
            return copy.deepcopy(order)

    def update_order(self, order_id: int, **changes: Any) -> dict[str, Any]:
        """Change top-level fields (note, tags, email, shipping_address, ...) as a merchant edit does."""
        with self._lock:
            order = self._order(order_id)
            order.update({k: v for k, v in changes.items() if k != "id"})
            return self._touch(order, self._stamp(), "orders/updated")

    def cancel_order(
        self, order_id: int, *, reason: str = "customer", refund: bool = False
    ) -> dict[str, Any]:
        """Cancel as the admin does: voids an authorization; `refund` also refunds a paid order in full."""
        with self._lock:
            order = self._order(order_id)
            if order["cancelled_at"]:
                raise ValueError(f"order {order_id} is already cancelled")
            now = self._stamp()
            self._cancel(order, reason.upper(), refund=refund, restock=True, notify=False, note=None, now=now)
            return self._touch(order, now, "orders/cancelled", "orders/updated")

    def _cancel(
        self,
        order: dict[str, Any],
        reason: str,
        *,
        refund: bool,
        restock: bool,
        notify: bool,
        note: str | None,
        now: str,
        via: str = "admin",
    ) -> None:
        """The cancellation itself (the caller emits the orders/* topics)."""
        if refund and order["financial_status"] in ("paid", "partially_refunded"):
            self._refund(order, None, None, note="Order cancelled", now=now)
        elif order["financial_status"] in ("pending", "authorized"):
            order["financial_status"] = "voided"
            for auth in self._transactions.get(order["id"], []):
                if auth["kind"] == "AUTHORIZATION" and auth["open"]:
                    auth["open"] = False
                    self._add_transaction(order, "VOID", auth["amount"], now=now, parent_id=auth["id"])
        order["cancelled_at"] = now
        order["cancel_reason"] = reason.lower()
        for fo in self._fulfillment_orders.get(order["id"], []):
            if fo["status"] in ("OPEN", "IN_PROGRESS", "SCHEDULED", "ON_HOLD"):
                fo["status"] = "CLOSED"
        record = Cancellation(reason.upper(), refund, restock, notify, note, now, via)
        self._cancellations.setdefault(order["id"], []).append(record)

    def fulfil_order(
        self,
        order_id: int,
        line_item_ids: Sequence[int] | None = None,
        *,
        tracking_number: str | None = None,
        tracking_company: str = "UPS",
    ) -> dict[str, Any]:
        """Ship the rest of some or all lines, one fulfillment per location; orders/fulfilled once all is."""
        with self._lock:
            order = self._order(order_id)
            if order["cancelled_at"]:
                raise ValueError(f"order {order_id} is cancelled")
            by_location: dict[int, list[tuple[dict[str, Any], dict[str, Any], int]]] = {}
            for fo in self._fulfillment_orders.get(order["id"], []):
                if fo["status"] not in ("OPEN", "IN_PROGRESS"):
                    continue
                for item in fo["line_items"]:
                    if item["remaining"] > 0 and (
                        line_item_ids is None or item["line_item_id"] in line_item_ids
                    ):
                        by_location.setdefault(fo["location_id"], []).append((fo, item, item["remaining"]))
            if not by_location:
                raise ValueError(f"order {order_id}: nothing left to fulfil among {line_item_ids}")
            tracking = tracking_number or f"1Z{self._rng.randrange(10**15):015d}"
            now = self._stamp()
            for allocations in by_location.values():
                self._fulfil(
                    order, allocations, company=tracking_company, numbers=[tracking], urls=[], notify=False,
                    now=now, fulfillment_id=self._new_id(), via="admin",
                )  # fmt: skip
            return self._touch(order, now, *self._fulfilled_topics(order))

    def _fulfilled_topics(self, order: Mapping[str, Any]) -> tuple[str, ...]:
        # Shopify's own topic for a partial shipment; the hub acknowledges it as an unhandled topic.
        done = order["fulfillment_status"] == "fulfilled"
        return ("orders/fulfilled" if done else "orders/partially_fulfilled", "orders/updated")

    def _fulfil(
        self,
        order: dict[str, Any],
        allocations: Sequence[tuple[dict[str, Any], dict[str, Any], int]],
        *,
        company: str | None,
        numbers: Sequence[str],
        urls: Sequence[str],
        notify: bool,
        now: str,
        fulfillment_id: int,
        via: str,
    ) -> dict[str, Any]:
        """Take (fulfillment order, its line item, quantity) off what is left; record the fulfillment."""
        lines: dict[int, int] = {}
        for _fo, item, quantity in allocations:
            item["remaining"] -= quantity
            lines[item["line_item_id"]] = lines.get(item["line_item_id"], 0) + quantity
        for fo in {id(fo): fo for fo, _item, _q in allocations}.values():
            fo["status"] = "CLOSED" if all(i["remaining"] == 0 for i in fo["line_items"]) else "IN_PROGRESS"
        by_id = {li["id"]: li for li in order["line_items"]}
        shipped = []
        for line_id, quantity in lines.items():
            line = by_id[line_id]
            line["fulfillable_quantity"] = max(0, line["fulfillable_quantity"] - quantity)
            line["fulfillment_status"] = "fulfilled" if line["fulfillable_quantity"] == 0 else "partial"
            shipped.append({**copy.deepcopy(line), "quantity": quantity})
        links = list(urls) or [u for u in (tracking_url_for(company, n) for n in numbers) if u]
        location = allocations[0][0]["location_id"]
        order["fulfillments"].append(
            build_fulfillment(
                fulfillment_id, order, shipped, numbers=numbers, urls=links, company=company, now=now,
                location_id=location,
            )
        )  # fmt: skip
        done = all(li["fulfillable_quantity"] == 0 for li in order["line_items"])
        order["fulfillment_status"] = "fulfilled" if done else "partial"
        record = {
            "id": fulfillment_id, "location_id": location, "lines": lines, "company": company,
            "numbers": list(numbers), "urls": links, "notify": notify, "status": "SUCCESS",
            "created_at": now, "updated_at": now, "events": [], "via": via,
            "name": order["fulfillments"][-1]["name"],
            "line_ids": {line_id: self._new_gql_id() for line_id in lines},
        }  # fmt: skip
        self._fulfillments.setdefault(order["id"], []).append(record)
        return record

    def _new_fulfillment_orders(
        self, order: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """One OPEN fulfillment order per location the order's lines ship from."""
        by_location: dict[int, list[Mapping[str, Any]]] = {}
        for item, line in zip(items, order["line_items"], strict=False):
            by_location.setdefault(int(item.get("location_id") or self.locations[0]), []).append(line)
        return [
            {
                "id": self._new_gql_id(), "order_id": order["id"], "location_id": location, "status": "OPEN",
                "line_items": [
                    {"id": self._new_gql_id(), "line_item_id": li["id"], "total": li["quantity"],
                     "remaining": li["fulfillable_quantity"]}
                    for li in lines
                ],
            }
            for location, lines in by_location.items()
        ]  # fmt: skip

    def refund_order(
        self,
        order_id: int,
        line_item_ids: Sequence[int] | None = None,
        amount: str | Decimal | None = None,
        *,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Refund lines (their full remaining quantity) and/or an amount; neither refunds everything left.

        Emits refunds/create (the refund resource) then orders/updated; returns the refund.
        """
        with self._lock:
            order, now = self._order(order_id), self._stamp()
            refund = self._refund(order, line_item_ids, amount, note=note, now=now)
            self._touch(order, now, "orders/updated")
            return copy.deepcopy(refund)

    def _refund(
        self,
        order: dict[str, Any],
        line_item_ids: Sequence[int] | None,
        amount: str | Decimal | None,
        *,
        note: str | None,
        now: str,
        parents: Sequence[tuple[int, Decimal]] = (),
        idempotency_key: str | None = None,
        via: str = "admin",
        items: Sequence[tuple[int, int, str]] = (),
    ) -> dict[str, Any]:
        """Record a refund and emit refunds/create; the caller emits the orders/* topics.

        `parents` (transaction id, amount) are the sales and captures refundCreate names; without them
        the refund is one REFUND transaction of no particular parent, as the admin's refunds here are.
        `items` (line item id, quantity, restock type): part of lines (see build_refund); with them the
        refund may move no money.
        """
        if order["financial_status"] not in ("paid", "partially_paid", "partially_refunded"):
            raise ValueError(f"order {order['id']} is {order['financial_status']}: nothing to refund")
        refund = build_refund(
            order,
            line_item_ids,
            amount,
            refund_id=self._new_id(),
            transaction_id=self._new_id(),
            note=note,
            now=now,
            items=items,
        )
        order["refunds"].append(refund)
        # A goods-only refund (no money moved) carries no transaction.
        paper = (refund["transactions"] or [{"id": None, "amount": "0"}])[0]
        if refund["transactions"] and parents:
            for index, (parent_id, part) in enumerate(parents):
                txn_id = paper["id"] if index == 0 else None
                self._add_transaction(order, "REFUND", part, now=now, txn_id=txn_id, parent_id=parent_id)
        elif refund["transactions"]:
            self._add_transaction(order, "REFUND", Decimal(paper["amount"]), now=now, txn_id=paper["id"])
        # Whole lines refunded stop being fulfillable; part-line refunds (returns) are of shipped units.
        refunded_lines = {rl["line_item_id"] for rl in refund["refund_line_items"]} if not items else set()
        for fo in self._fulfillment_orders.get(order["id"], []):
            for item in fo["line_items"]:
                if item["line_item_id"] in refunded_lines:
                    item["remaining"] = 0
            if fo["status"] in ("OPEN", "IN_PROGRESS") and all(i["remaining"] == 0 for i in fo["line_items"]):
                fo["status"] = "CLOSED"
        record = RefundRecord(
            make_gid("Refund", refund["id"]),
            Decimal(paper["amount"]),
            order["presentment_currency"],
            note,
            tuple(make_gid("OrderTransaction", parent) for parent, _ in parents),
            idempotency_key,
            via,
        )
        self._refund_records.setdefault(order["id"], []).append(record)
        cur = order["currency"]
        refunded = sum(
            (Decimal(t["amount"]) for r in order["refunds"] for t in r["transactions"]), Decimal(0)
        )
        captured = Decimal(order["total_price"]) - Decimal(order["total_outstanding"])
        if refunded > 0:
            order["financial_status"] = "refunded" if refunded >= captured else "partially_refunded"
        lines = refund["refund_line_items"]
        current = {
            "current_total_price": Decimal(order["total_price"]) - refunded,
            "current_subtotal_price": Decimal(order["current_subtotal_price"])
            - set_sum(lines, "subtotal_set"),
            "current_total_tax": Decimal(order["current_total_tax"]) - set_sum(lines, "total_tax_set"),
        }
        for name, value in current.items():
            order[name] = money_text(value, cur)
            order[f"{name}_set"] = money_set(order[name], cur)
        self._emit("refunds/create", refund, order["id"])
        return refund

    def graphql_order(self, order_id: int) -> dict[str, Any] | None:
        """The `order(id:)` node: the orders connection's fields plus risk and transactions."""
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                return None
            risk = copy.deepcopy(self._risk.get(order_id) or risk_summary("NONE", []))
            cur = order["presentment_currency"]
            payable = order["financial_status"] in ("pending", "authorized", "partially_paid")
            return {
                **gql_node(order),
                "presentmentCurrencyCode": cur,
                "canMarkAsPaid": payable
                and not order["cancelled_at"]
                and Decimal(order["total_outstanding"]) > 0,
                "risk": risk,
                "transactions": self._gql_transactions(order),
                "fulfillments": [gql_fulfillment(f) for f in self._fulfillments.get(order_id, [])],
                "fulfillmentOrders": gql_connection(
                    [gql_fulfillment_order(fo) for fo in self._fulfillment_orders.get(order_id, [])]
                ),
                "refunds": [gql_refund(r, cur) for r in order["refunds"]],
            }
