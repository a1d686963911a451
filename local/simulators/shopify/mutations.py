"""The publishing mutations of the GraphQL subset: fulfillments, events, cancels, refunds, mark as paid."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from local.simulators.shopify.nodes import gql_fulfillment, gql_refund, rest_event
from local.simulators.shopify.records import CANCEL_REASONS, FULFILLMENT_EVENT_STATUSES, MutationRejected
from local.simulators.shopify.shop import Shop
from local.simulators.shopify.values import capture_amount, legacy_id_of, make_gid, money_text, utc_text


def _input(args: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = args.get(name)
    if not isinstance(value, dict):
        raise MutationRejected([name], f"{name} is required")
    return value


def _m_fulfillment_create(sim: Shop, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    given = _input(args, "fulfillment")
    groups = given.get("lineItemsByFulfillmentOrder") or []
    where = ["fulfillment", "lineItemsByFulfillmentOrder"]
    if not isinstance(groups, list) or not groups:
        raise MutationRejected(where, "Line items by fulfillment order can't be blank.")
    tracking = given.get("trackingInfo") or {}
    numbers = list(tracking.get("numbers") or ([tracking["number"]] if tracking.get("number") else []))
    urls = list(tracking.get("urls") or ([tracking["url"]] if tracking.get("url") else []))
    with sim._lock:
        owners = {fo["id"]: fo for fos in sim._fulfillment_orders.values() for fo in fos}
        allocations: list[tuple[dict[str, Any], dict[str, Any], int]] = []
        for index, group in enumerate(groups):
            fo = owners.get(legacy_id_of(group.get("fulfillmentOrderId"), "FulfillmentOrder") or 0)
            if fo is None:
                raise MutationRejected([*where, str(index)], "Fulfillment order does not exist.")
            if fo["status"] not in ("OPEN", "IN_PROGRESS"):
                gid, status = make_gid("FulfillmentOrder", fo["id"]), fo["status"].lower()
                message = f"Fulfillment order {gid} has an unfulfillable status= {status}."
                raise MutationRejected([*where, str(index)], message)
            items = {i["id"]: i for i in fo["line_items"]}
            wanted = group.get("fulfillmentOrderLineItems") or [
                {"id": make_gid("FulfillmentOrderLineItem", i["id"]), "quantity": i["remaining"]}
                for i in fo["line_items"] if i["remaining"] > 0
            ]  # fmt: skip
            for item in wanted:
                found = items.get(legacy_id_of(item.get("id"), "FulfillmentOrderLineItem") or 0)
                quantity = int(item.get("quantity") or 0)
                if found is None:
                    raise MutationRejected(
                        [*where, str(index)], "Fulfillment order line item does not exist."
                    )
                if not 0 < quantity <= found["remaining"]:
                    message = f"Invalid quantity {quantity}: {found['remaining']} left to fulfill."
                    raise MutationRejected([*where, str(index)], message)
                allocations.append((fo, found, quantity))
        fos = {fo["id"]: fo for fo, _i, _q in allocations}.values()
        if len({fo["order_id"] for fo in fos}) > 1 or len({fo["location_id"] for fo in fos}) > 1:
            raise MutationRejected(
                where, "All fulfillment orders must belong to the same order and location."
            )
        if not allocations:
            raise MutationRejected(where, "There is nothing left to fulfill.")
        order = sim._order(next(iter(fos))["order_id"])
        now = sim._stamp()
        record = sim._fulfil(
            order, allocations, company=tracking.get("company"), numbers=numbers, urls=urls,
            notify=bool(given.get("notifyCustomer")), now=now, fulfillment_id=sim._new_gql_id(), via="api",
        )  # fmt: skip
        sim._touch(order, now, *sim._fulfilled_topics(order))
        return {"fulfillment": gql_fulfillment(record)}


def _m_fulfillment_event_create(sim: Shop, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    given = _input(args, "fulfillmentEvent")
    status = str(given.get("status") or "")
    if status not in FULFILLMENT_EVENT_STATUSES:
        raise MutationRejected(
            ["fulfillmentEvent", "status"], f"Status {status!r} is not a fulfillment event status."
        )
    wanted = legacy_id_of(given.get("fulfillmentId"), "Fulfillment")
    with sim._lock:
        found = [(oid, f) for oid, fs in sim._fulfillments.items() for f in fs if f["id"] == wanted]
        if not found:
            raise MutationRejected(["fulfillmentEvent", "fulfillmentId"], "Fulfillment does not exist.")
        order_id, fulfillment = found[0]
        now = sim._stamp()
        event: dict[str, Any] = {
            "id": sim._new_gql_id(),
            "status": status,
            "happened_at": str(given.get("happenedAt") or utc_text(now)),
        }
        fulfillment["events"].append(event)
        fulfillment["updated_at"] = now
        order = sim._order(order_id)
        rest = next(f for f in order["fulfillments"] if f["id"] == fulfillment["id"])
        rest["shipment_status"] = status.lower()
        rest["updated_at"] = now
        sim._emit("fulfillment_events/create", rest_event(event, fulfillment, order, now), order_id)
        sim._touch(order, now, "orders/updated")
        node = {
            "id": make_gid("FulfillmentEvent", event["id"]),
            "status": status,
            "happenedAt": event["happened_at"],
        }
        return {"fulfillmentEvent": node}


def _m_order_cancel(sim: Shop, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    reason = str(args.get("reason") or "")
    if reason not in CANCEL_REASONS:
        raise MutationRejected(["reason"], f"Reason {reason!r} is not an order cancel reason.", "INVALID")
    method = args.get("refundMethod") if isinstance(args.get("refundMethod"), dict) else {}
    refund = bool(method.get("originalPaymentMethodsRefund")) if method else bool(args.get("refund"))
    with sim._lock:
        order = sim._orders.get(legacy_id_of(args.get("orderId"), "Order") or 0)
        if order is None:
            raise MutationRejected(["orderId"], "Order does not exist", "NOT_FOUND")
        if order["cancelled_at"]:
            raise MutationRejected(["orderId"], "Order has already been cancelled", "INVALID")
        if any(f["status"] == "SUCCESS" for f in sim._fulfillments.get(order["id"], [])):
            message = "Cannot cancel an order with fulfillments: cancel the fulfillments first"
            raise MutationRejected(["orderId"], message, "INVALID")
        now = sim._stamp()
        sim._cancel(
            order, reason, refund=refund, restock=bool(args.get("restock")),
            notify=bool(args.get("notifyCustomer")), note=args.get("staffNote"), now=now, via="api",
        )  # fmt: skip
        sim._touch(order, now, "orders/cancelled", "orders/updated")
        return {"job": {"id": f"gid://shopify/Job/{uuid.uuid4()}", "done": True}}


def _m_refund_create(sim: Shop, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    given = _input(args, "input")
    transactions = given.get("transactions") or []
    items = refund_line_items(given.get("refundLineItems"))
    if not isinstance(transactions, list) or not (transactions or items):
        raise MutationRejected(["input", "transactions"], "A refund needs transactions to give money back.")
    with sim._lock:
        order = sim._orders.get(legacy_id_of(given.get("orderId"), "Order") or 0)
        if order is None:
            raise MutationRejected(["input", "orderId"], "Order does not exist")
        cur = order["presentment_currency"]
        if given.get("currency") not in (None, cur):
            raise MutationRejected(["input", "currency"], f"Currency must be the presentment currency {cur}")
        txns = {t["id"]: t for t in sim._transactions.get(order["id"], [])}
        parents: list[tuple[int, Decimal]] = []
        for index, txn in enumerate(transactions):
            where = ["input", "transactions", str(index)]
            parent = txns.get(legacy_id_of(txn.get("parentId"), "OrderTransaction") or 0)
            if txn.get("kind") != "REFUND":
                raise MutationRejected([*where, "kind"], "Kind must be REFUND")
            if parent is None or parent["kind"] not in ("SALE", "CAPTURE") or parent["status"] != "SUCCESS":
                raise MutationRejected(
                    [*where, "parentId"], "Parent transaction is not a successful sale or capture"
                )
            amount = capture_amount(str(txn.get("amount")), cur) if txn.get("amount") else Decimal(0)
            taken = sum(
                (
                    t["amount"]
                    for t in txns.values()
                    if t["kind"] == "REFUND" and t["parent_id"] == parent["id"]
                ),
                Decimal(0),
            ) + sum((a for p, a in parents if p == parent["id"]), Decimal(0))
            if amount <= 0 or amount > parent["amount"] - taken:
                left = money_text(parent["amount"] - taken, cur)
                raise MutationRejected(
                    [*where, "amount"], f"Refund amount must be between 0 and {left} {cur}"
                )
            parents.append((parent["id"], amount))
        total = sum((a for _p, a in parents), Decimal(0))
        now = sim._stamp()
        try:
            refund = sim._refund(
                order, None, total, note=given.get("note"), now=now, parents=parents,
                idempotency_key=key, via="api", items=items,
            )  # fmt: skip
        except ValueError as exc:
            raise MutationRejected(["input"], str(exc)) from None
        sim._touch(order, now, "orders/updated")
        return {"refund": gql_refund(refund, cur), "order": {"id": make_gid("Order", order["id"])}}


_RESTOCK_TYPES = {"RETURN": "return", "NO_RESTOCK": "no_restock", "CANCEL": "cancel"}


def refund_line_items(given: Any) -> list[tuple[int, int, str]]:
    """RefundInput.refundLineItems as (line item id, quantity, REST restock type)."""
    if given is None:
        return []
    if not isinstance(given, list):
        raise MutationRejected(["input", "refundLineItems"], "Refund line items must be a list")
    items = []
    for index, item in enumerate(given):
        where = ["input", "refundLineItems", str(index)]
        line_id = legacy_id_of(item.get("lineItemId") if isinstance(item, dict) else None, "LineItem")
        quantity = item.get("quantity") if isinstance(item, dict) else None
        restock = _RESTOCK_TYPES.get(str(item.get("restockType") or "NO_RESTOCK")) if line_id else None
        if line_id is None or not isinstance(quantity, int) or quantity <= 0 or restock is None:
            raise MutationRejected(where, "Refund line item is invalid")
        items.append((line_id, quantity, restock))
    return items


def _m_order_mark_as_paid(sim: Shop, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    given = _input(args, "input")
    order_id = legacy_id_of(given.get("id"), "Order") or 0
    with sim._lock:
        order = sim._orders.get(order_id)
        if order is None:
            raise MutationRejected(["input", "id"], "Order does not exist")
        if order["cancelled_at"] or order["financial_status"] not in (
            "pending",
            "authorized",
            "partially_paid",
        ):
            raise MutationRejected(["input", "id"], "Order cannot be marked as paid.")
        sim.mark_paid(order_id)
        status = str(sim._order(order_id)["financial_status"]).upper()
        return {"order": {"id": make_gid("Order", order_id), "displayFinancialStatus": status}}


MUTATIONS: dict[str, Callable[[Shop, Mapping[str, Any], str | None], dict[str, Any]]] = {
    "fulfillmentCreate": _m_fulfillment_create,
    "fulfillmentEventCreate": _m_fulfillment_event_create,
    "orderCancel": _m_order_cancel,
    "refundCreate": _m_refund_create,
    "orderMarkAsPaid": _m_order_mark_as_paid,
}
