"""The shop's returns (Admin API 2025-07+): requested, approved or declined, processed, closed.

A return holds return line items (each one of a fulfillment's line items) and, once open, one reverse
fulfillment order whose line items take the dispositions. `returnProcess` confirms quantities, restocks
or disposes, and refunds through `financialTransfer.issueRefund` (a Refund on the order, refunds/create);
without it, nothing is refunded. Webhook bodies are the REST-style Return payloads Shopify documents.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from local.simulators.shopify.records import MutationRejected
from local.simulators.shopify.shop import Shop
from local.simulators.shopify.values import gql_connection, legacy_id_of, make_gid, money_text

REASONS = frozenset(
    {"COLOR", "DEFECTIVE", "NOT_AS_DESCRIBED", "OTHER", "SIZE_TOO_LARGE", "SIZE_TOO_SMALL", "STYLE"}
    | {"UNKNOWN", "UNWANTED", "WRONG_ITEM"}
)
DISPOSITIONS = frozenset({"RESTOCKED", "NOT_RESTOCKED", "PROCESSING_REQUIRED", "MISSING"})
_LIVE = ("REQUESTED", "OPEN", "CLOSED")  # statuses whose units cannot be returned again


class ShopReturns(Shop):
    """Customer and merchant actions on returns, each emitting the `returns/*` webhook Shopify sends."""

    def request_return(self, order_id: int, lines: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """A customer asks to return units (`lines`: {line_item_id, quantity, reason?, note?}): REQUESTED,
        returns/request. Raises MutationRejected as `returnRequest` answers it."""
        with self._lock:
            return _public(
                open_return(self, int(order_id), _by_line_item(self, int(order_id), lines), "REQUESTED")
            )

    def create_return(self, order_id: int, lines: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The merchant opens a return at once (`returnCreate`): OPEN, returns/approve."""
        with self._lock:
            return _public(
                open_return(self, int(order_id), _by_line_item(self, int(order_id), lines), "OPEN")
            )

    def approve_return(self, return_id: int | str) -> dict[str, Any]:
        with self._lock:
            return _public(approve(self, return_id))

    def decline_return(
        self, return_id: int | str, reason: str = "OTHER", note: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            return _public(decline(self, return_id, reason, note))

    def close_return(self, return_id: int | str) -> dict[str, Any]:
        with self._lock:
            return _public(close(self, return_id))

    def returns(self, order_id: int) -> list[dict[str, Any]]:
        """The order's returns as GraphQL Return objects, oldest first."""
        with self._lock:
            return [gql_return(r) for r in self._returns.values() if r["order_id"] == int(order_id)]


def _public(ret: Mapping[str, Any]) -> dict[str, Any]:
    return gql_return(ret)


def find(sim: Shop, return_id: int | str | None) -> dict[str, Any]:
    found = sim._returns.get(legacy_id_of(return_id, "Return") or 0)
    if found is None:
        raise MutationRejected(["id"], "Return does not exist.", "NOT_FOUND")
    return found


def _by_line_item(sim: Shop, order_id: int, lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return line item inputs naming fulfillment line items, from line item ids (the first fulfillment
    that still has the units)."""
    owned = [
        (line_id, fli) for f in sim._fulfillments.get(order_id, []) for line_id, fli in f["line_ids"].items()
    ]
    result = []
    for line in lines:
        fli = next((f for lid, f in owned if lid == int(line["line_item_id"])), None)
        result.append(
            {
                "fulfillmentLineItemId": make_gid("FulfillmentLineItem", fli),
                "quantity": line["quantity"],
                "returnReason": str(line.get("reason") or "UNKNOWN").upper(),
                "returnReasonNote": line.get("note") or "",
            }
        )
    return result


def returnable(sim: Shop, order_id: int) -> dict[int, tuple[int, int]]:
    """Fulfillment line item id → (line item id, units still returnable)."""
    found: dict[int, tuple[int, int]] = {}
    for f in sim._fulfillments.get(order_id, []):
        if f["status"] != "SUCCESS":
            continue
        for line_id, fli in f["line_ids"].items():
            found[fli] = (line_id, f["lines"][line_id])
    for ret in sim._returns.values():
        if ret["order_id"] == order_id and ret["status"] in _LIVE:
            for rli in ret["lines"]:
                line_id, left = found[rli["fli"]]
                found[rli["fli"]] = (line_id, left - rli["quantity"])
    return found


def open_return(sim: Shop, order_id: int, items: Any, status: str) -> dict[str, Any]:
    """returnRequest (REQUESTED) or returnCreate (OPEN) with ReturnLineItemInput-like `items`."""
    order = sim._orders.get(order_id)
    if order is None:
        raise MutationRejected(["input", "orderId"], "Order does not exist.", "NOT_FOUND")
    if not isinstance(items, list) or not items:
        raise MutationRejected(["input", "returnLineItems"], "Return line items can't be blank.", "BLANK")
    left = returnable(sim, order_id)
    lines = []
    for index, item in enumerate(items):
        where = ["input", "returnLineItems", str(index)]
        fli = legacy_id_of(
            item.get("fulfillmentLineItemId") if isinstance(item, dict) else None, "FulfillmentLineItem"
        )
        quantity = item.get("quantity") if isinstance(item, dict) else None
        if fli is None or fli not in left:
            raise MutationRejected(
                [*where, "fulfillmentLineItemId"], "Fulfillment line item does not exist.", "NOT_FOUND"
            )
        if not isinstance(quantity, int) or not 0 < quantity <= left[fli][1]:
            message = f"Quantity {quantity} is not returnable: {left[fli][1]} left."
            raise MutationRejected([*where, "quantity"], message, "INVALID")
        reason = str(item.get("returnReason") or "UNKNOWN").upper()
        if reason not in REASONS:
            raise MutationRejected(
                [*where, "returnReason"], f"Return reason {reason} is not valid.", "INVALID"
            )
        left[fli] = (left[fli][0], left[fli][1] - quantity)
        lines.append(
            {"id": sim._new_gql_id(), "fli": fli, "line_item_id": left[fli][0], "quantity": quantity,
             "processed": 0, "reason": reason, "note": str(item.get("returnReasonNote") or ""),
             "customer_note": item.get("customerNote")}
        )  # fmt: skip
    ret: dict[str, Any] = {
        "id": sim._new_gql_id(), "order_id": order_id, "status": status, "lines": lines, "rfo": None,
        "decline": None, "refund_ids": [],
        "name": f"{order['name']}-R{1 + sum(1 for r in sim._returns.values() if r['order_id'] == order_id)}",
    }  # fmt: skip
    sim._returns[ret["id"]] = ret
    if status == "OPEN":
        _open_reverse_fulfillment(sim, ret)
    sim._emit("returns/request" if status == "REQUESTED" else "returns/approve", rest_return(ret), order_id)
    return ret


def _open_reverse_fulfillment(sim: Shop, ret: dict[str, Any]) -> None:
    ret["rfo"] = {
        "id": sim._new_gql_id(),
        "lines": [{"id": sim._new_gql_id(), "rli": rli["id"], "dispositions": []} for rli in ret["lines"]],
    }


def approve(sim: Shop, return_id: int | str | None) -> dict[str, Any]:
    ret = find(sim, return_id)
    if ret["status"] != "REQUESTED":
        raise MutationRejected(
            ["input", "id"], f"Return is {ret['status'].lower()}, not requested.", "INVALID_STATE"
        )
    ret["status"] = "OPEN"
    _open_reverse_fulfillment(sim, ret)
    sim._emit("returns/approve", rest_return(ret), ret["order_id"])
    return ret


def decline(sim: Shop, return_id: int | str | None, reason: str, note: str | None) -> dict[str, Any]:
    ret = find(sim, return_id)
    if ret["status"] != "REQUESTED":
        raise MutationRejected(
            ["input", "id"], f"Return is {ret['status'].lower()}, not requested.", "INVALID_STATE"
        )
    ret["status"], ret["decline"] = "DECLINED", {"reason": reason.upper(), "note": note}
    # Shopify's returns/decline body names the return only (no order, no lines).
    body = {"id": ret["id"], "admin_graphql_api_id": make_gid("Return", ret["id"]), "status": "declined",
            "decline": {"reason": reason.lower(), "note": note}}  # fmt: skip
    sim._emit("returns/decline", body, ret["order_id"])
    return ret


def close(sim: Shop, return_id: int | str | None) -> dict[str, Any]:
    ret = find(sim, return_id)
    if ret["status"] != "OPEN":
        raise MutationRejected(["id"], f"Return is {ret['status'].lower()}, not open.", "INVALID_STATE")
    ret["status"] = "CLOSED"
    body = {"id": ret["id"], "admin_graphql_api_id": make_gid("Return", ret["id"]),
            "order_id": ret["order_id"], "status": "closed"}  # fmt: skip
    sim._emit("returns/close", body, ret["order_id"])
    return ret


_Disposal = tuple[
    dict[str, Any], int, str, int | None
]  # reverse fulfillment order line, units, type, location


def process(sim: Shop, given: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    """returnProcess: confirm quantities, dispose per reverse fulfillment order line item, refund."""
    ret = find(sim, given.get("returnId"))
    if ret["status"] != "OPEN":
        message = f"Return is {ret['status'].lower()}: only an open return can be processed."
        raise MutationRejected(["input", "returnId"], message, "INVALID_STATE")
    wanted = _wanted(ret, given)
    order = sim._order(ret["order_id"])
    parents = _refund_parents(sim, order, given)
    now = sim._stamp()
    items: list[tuple[int, int, str]] = []
    for rli, quantity, disposals in wanted:
        rli["processed"] += quantity
        restocked = sum(c for _l, c, k, _loc in disposals if k == "RESTOCKED")
        for rfo_line, count, kind, location in disposals:
            rfo_line["dispositions"].append({"type": kind, "quantity": count, "location_id": location})
        items += [(rli["line_item_id"], restocked, "return")] if restocked else []
        items += [(rli["line_item_id"], quantity - restocked, "no_restock")] if quantity > restocked else []
    if parents:
        total = sum((a for _p, a in parents), Decimal(0))
        try:
            refund = sim._refund(order, None, total, note=given.get("note"), now=now, parents=parents,
                                 idempotency_key=key, via="api", items=items)  # fmt: skip
        except ValueError as exc:
            raise MutationRejected(["input", "financialTransfer"], str(exc), "INVALID") from None
        ret["refund_ids"].append(refund["id"])
        sim._touch(order, now, "orders/updated")
    return {"return": gql_return(ret)}


def _wanted(
    ret: Mapping[str, Any], given: Mapping[str, Any]
) -> list[tuple[dict[str, Any], int, list[_Disposal]]]:
    """The return line items to process, each with its quantity and dispositions, checked."""
    by_id = {rli["id"]: rli for rli in ret["lines"]}
    wanted = []
    for index, item in enumerate(given.get("returnLineItems") or []):
        where = ["input", "returnLineItems", str(index)]
        rli = by_id.get(legacy_id_of(item.get("id"), "ReturnLineItem") or 0)
        if rli is None:
            raise MutationRejected([*where, "id"], "Return line item does not exist.", "NOT_FOUND")
        quantity = item.get("quantity")
        unprocessed = rli["quantity"] - rli["processed"]
        if not isinstance(quantity, int) or not 0 < quantity <= unprocessed:
            message = f"Quantity {quantity} exceeds the unprocessed quantity {unprocessed}."
            raise MutationRejected([*where, "quantity"], message, "INVALID")
        disposals = [
            _disposal(ret, rli, d, [*where, "dispositions", str(i)])
            for i, d in enumerate(item.get("dispositions") or [])
        ]
        if sum(c for _l, c, _k, _loc in disposals) > quantity:
            raise MutationRejected(where, "Dispositions exceed the quantity processed.", "INVALID")
        wanted.append((rli, quantity, disposals))
    if not wanted:
        raise MutationRejected(["input", "returnLineItems"], "Nothing to process.", "BLANK")
    return wanted


def _disposal(ret: Mapping[str, Any], rli: Mapping[str, Any], given: Any, where: list[str]) -> _Disposal:
    lines = {line["id"]: line for line in ret["rfo"]["lines"]}
    wanted_id = given.get("reverseFulfillmentOrderLineItemId") if isinstance(given, dict) else None
    rfo_line = lines.get(legacy_id_of(wanted_id, "ReverseFulfillmentOrderLineItem") or 0)
    if rfo_line is None or rfo_line["rli"] != rli["id"]:
        raise MutationRejected(where, "Reverse fulfillment order line item does not exist.", "NOT_FOUND")
    kind, count = str(given.get("dispositionType")), given.get("quantity")
    if kind not in DISPOSITIONS or not isinstance(count, int) or count <= 0:
        raise MutationRejected(where, "Disposition is invalid.", "INVALID")
    location = legacy_id_of(given.get("locationId"), "Location")
    if kind == "RESTOCKED" and location is None:
        raise MutationRejected(where, "A location is required to restock.", "INVALID")
    return rfo_line, count, kind, location


def _refund_parents(
    sim: Shop, order: Mapping[str, Any], given: Mapping[str, Any]
) -> list[tuple[int, Decimal]]:
    """financialTransfer.issueRefund.orderTransactions as (parent sale or capture, amount)."""
    transfer = given.get("financialTransfer") or {}
    issue = transfer.get("issueRefund") if isinstance(transfer, Mapping) else None
    if not isinstance(issue, Mapping):
        return []
    txns = {t["id"]: t for t in sim._transactions.get(int(order["id"]), [])}
    parents: list[tuple[int, Decimal]] = []
    for index, txn in enumerate(issue.get("orderTransactions") or []):
        where = ["input", "financialTransfer", "issueRefund", "orderTransactions", str(index)]
        parent = txns.get(legacy_id_of(txn.get("parentId"), "OrderTransaction") or 0)
        if parent is None or parent["kind"] not in ("SALE", "CAPTURE") or parent["status"] != "SUCCESS":
            raise MutationRejected(
                [*where, "parentId"], "Parent transaction is not a successful sale or capture", "INVALID"
            )
        money = txn.get("transactionAmount") or {}
        try:
            amount = Decimal(str(money.get("amount")))
        except InvalidOperation:
            amount = Decimal(0)
        refunds = [t for t in txns.values() if t["kind"] == "REFUND" and t["parent_id"] == parent["id"]]
        taken = sum((t["amount"] for t in refunds), Decimal(0))
        taken += sum((a for p, a in parents if p == parent["id"]), Decimal(0))
        if not amount.is_finite() or amount <= 0 or amount > parent["amount"] - taken:
            left = money_text(parent["amount"] - taken, order["presentment_currency"])
            raise MutationRejected(
                [*where, "transactionAmount"], f"Refund amount must be between 0 and {left}", "INVALID"
            )
        parents.append((parent["id"], amount))
    return parents


def rest_return(ret: Mapping[str, Any]) -> dict[str, Any]:
    """The returns/request and returns/approve webhook body."""
    return {
        "id": ret["id"], "admin_graphql_api_id": make_gid("Return", ret["id"]),
        "status": ret["status"].lower(),
        "order": {"id": ret["order_id"], "admin_graphql_api_id": make_gid("Order", ret["order_id"])},
        "total_return_line_items": len(ret["lines"]), "name": ret["name"],
        "return_line_items": [
            {"id": rli["id"], "admin_graphql_api_id": make_gid("ReturnLineItem", rli["id"]),
             "fulfillment_line_item": {
                 "id": rli["fli"], "admin_graphql_api_id": make_gid("FulfillmentLineItem", rli["fli"]),
                 "line_item": {"id": rli["line_item_id"],
                               "admin_graphql_api_id": make_gid("LineItem", rli["line_item_id"])}},
             "quantity": rli["quantity"], "return_reason": rli["reason"].lower(),
             "return_reason_note": rli["note"], "customer_note": rli["customer_note"]}
            for rli in ret["lines"]
        ],
        "exchange_line_items": [], "total_exchange_line_items": 0, "return_shipping_fees": [],
    }  # fmt: skip


def gql_return(ret: Mapping[str, Any]) -> dict[str, Any]:
    """The GraphQL Return object."""

    def fli(rli: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": make_gid("FulfillmentLineItem", rli["fli"]),
            "lineItem": {"id": make_gid("LineItem", rli["line_item_id"])},
        }

    rlis = {rli["id"]: rli for rli in ret["lines"]}
    rfo = ret["rfo"]
    return copy.deepcopy({
        "id": make_gid("Return", ret["id"]), "name": ret["name"], "status": ret["status"],
        "order": {"id": make_gid("Order", ret["order_id"])},
        "totalQuantity": sum(rli["quantity"] for rli in ret["lines"]),
        "decline": ret["decline"],
        "returnLineItems": gql_connection([
            {"id": make_gid("ReturnLineItem", rli["id"]), "quantity": rli["quantity"],
             "processedQuantity": rli["processed"], "unprocessedQuantity": rli["quantity"] - rli["processed"],
             "returnReason": rli["reason"], "returnReasonNote": rli["note"],
             "customerNote": rli["customer_note"],
             "fulfillmentLineItem": fli(rli)}
            for rli in ret["lines"]
        ]),
        "reverseFulfillmentOrders": gql_connection([] if rfo is None else [{
            "id": make_gid("ReverseFulfillmentOrder", rfo["id"]), "status": "OPEN",
            "lineItems": gql_connection([
                {"id": make_gid("ReverseFulfillmentOrderLineItem", line["id"]),
                 "totalQuantity": rlis[line["rli"]]["quantity"],
                 "fulfillmentLineItem": fli(rlis[line["rli"]]),
                 "dispositions": [
                     {"type": d["type"], "quantity": d["quantity"],
                      "location": {"id": make_gid("Location", d["location_id"])}
                      if d["location_id"] else None}
                     for d in line["dispositions"]
                 ]}
                for line in rfo["lines"]
            ]),
        }]),
        "refunds": gql_connection([{"id": make_gid("Refund", r)} for r in ret["refund_ids"]]),
    })  # fmt: skip
