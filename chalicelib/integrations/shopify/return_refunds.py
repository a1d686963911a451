"""A return's refund told to Shopify: `returnProcess` for a Shopify return, `refundCreate` with refund
line items for a return the hub started.

Who moves the money decides what Shopify is asked to do. via "channel": Shopify holds the payment and
refunds it (financialTransfer / refund transactions). via "hub": the hub refunded through Stripe, and
Shopify only learns which units came back and whether they were restocked: returnProcess without a
financialTransfer (Shopify's refunds go to the order's own transactions or to store credit, so an
outside refund has no money form there; processing the return still confirms the units, records the
dispositions and closes the loop in Shopify's reports), or refundCreate with refund line items and no
transactions (a goods-only refund that restocks).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from chalicelib.domain.order import Order
from chalicelib.domain.publishing import Milestone, PublishRejected
from chalicelib.integrations.shopify.admin import ShopifyAdmin, order_gid
from chalicelib.integrations.shopify.refunds import (
    REFUND_CREATE,
    REFUND_STATE_QUERY,
    refund_amount,
    refund_transactions,
)

RETURN_QUERY = """
query ReturnToProcess($id: ID!) {
  return(id: $id) {
    id status order { id }
    returnLineItems(first: 100) {
      nodes { ... on ReturnLineItem { id quantity processedQuantity unprocessedQuantity
        fulfillmentLineItem { id lineItem { id } } } }
    }
    reverseFulfillmentOrders(first: 10) {
      nodes { lineItems(first: 100) { nodes { id fulfillmentLineItem { id lineItem { id } } } } }
    }
  }
}
"""
LOCATIONS_QUERY = """
query FulfilledFrom($id: ID!) {
  order(id: $id) {
    id
    fulfillments(first: 50) { location { id } fulfillmentLineItems(first: 100) { nodes { lineItem { id } } } }
  }
}
"""
RETURN_APPROVE = """
mutation ReturnApprove($input: ReturnApproveRequestInput!) {
  returnApproveRequest(input: $input) {
    return { id status }
    userErrors { field message code }
  }
}
"""
RETURN_PROCESS = """
mutation ReturnProcess($input: ReturnProcessInput!) {
  returnProcess(input: $input) @idempotent(key: %s) {
    return { id status }
    userErrors { field message code }
  }
}
"""


def _nodes(value: Any) -> list[Mapping[str, Any]]:
    nodes = value.get("nodes") if isinstance(value, Mapping) else value
    return [n for n in nodes or () if isinstance(n, Mapping)] if isinstance(nodes, list) else []


def _line_item_id(node: Mapping[str, Any]) -> str:
    item = (node.get("fulfillmentLineItem") or {}).get("lineItem") or {}
    return str(item.get("id") or "").rsplit("/", 1)[-1]


def returned_units(milestone: Milestone) -> dict[str, tuple[int, int]]:
    """line_id → (units returned, of which restocked), from the milestone's lines and restock."""
    units: dict[str, list[int]] = {}
    for line in milestone.lines:
        quantity = line.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
            raise PublishRejected(f"shopify: refund line {line!r} has no positive quantity")
        units.setdefault(str(line.get("line_id")), [0, 0])[0] += quantity
    for entry in milestone.restock:
        if entry.get("restock") is True and str(entry.get("line_id")) in units:
            units[str(entry["line_id"])][1] += int(entry.get("quantity") or 0)
    if not units:
        raise PublishRejected(f"shopify: return refund {milestone.publication_id} names no lines")
    return {lid: (n, min(restocked, n)) for lid, (n, restocked) in units.items()}


class ReturnRefunds:
    """The `refunded` milestone of a return, published once (`write_once`: read, then write what is
    missing; the refund's note `order-hub:<publication_id>` and an @idempotent key make repeats no-ops)."""

    def __init__(self, admin: ShopifyAdmin, note_of: Callable[[Milestone], str]) -> None:
        self._admin = admin
        self._note_of = note_of

    def publish(self, order: Order, milestone: Milestone) -> dict[str, Any]:
        money = milestone.via == "channel"
        amount = refund_amount(milestone) if money else Decimal(0)
        units = returned_units(milestone)
        key = str(uuid.uuid5(uuid.NAMESPACE_URL, f"order-hub/{order.store}/{milestone.publication_id}"))
        if milestone.external_return_id:
            answer = self._process(order, milestone, units, amount, key)
        else:
            answer = self._refund_lines(order, milestone, units, amount, key)
        return {**answer, "via": milestone.via or "hub", "amount": f"{amount:f}"}

    # --- a Shopify return: returnProcess ----------------------------------------------------------

    # Long on purpose: done() and write() of one write_once read together against returnProcess's input.
    def _process(
        self,
        order: Order,
        milestone: Milestone,
        units: Mapping[str, tuple[int, int]],
        amount: Decimal,
        key: str,
    ) -> dict[str, Any]:
        gid = str(milestone.external_return_id)
        note = self._note_of(milestone)

        def the_return() -> Mapping[str, Any]:
            node = self._admin.query("return", RETURN_QUERY, {"id": gid}).get("return")
            if not isinstance(node, Mapping):
                raise PublishRejected(f"shopify: no return {gid} in {order.store}")
            return node

        def done() -> str | None:
            if amount > 0:
                return self._refund_with(order, note)
            lines = _nodes(the_return().get("returnLineItems"))
            processed = {_line_item_id(n): int(n.get("processedQuantity") or 0) for n in lines}
            return gid if all(processed.get(lid, 0) >= n for lid, (n, _r) in units.items()) else None

        def write() -> str:
            node = the_return()
            if node.get("status") == "REQUESTED":
                # The customer asked in Shopify and the hub accepted it (its policy, the parcel received and
                # inspected): the request is approved in Shopify before it is processed. Approving an open
                # return is refused by Shopify, so a replay after a lost answer reads OPEN and goes on.
                self._admin.mutate("returnApproveRequest", RETURN_APPROVE, {"input": {"id": gid}})
                node = the_return()
            if node.get("status") != "OPEN":
                raise PublishRejected(f"shopify: return {gid} is {node.get('status')}, not open")
            process_input: dict[str, Any] = {
                "returnId": gid,
                "returnLineItems": self._process_lines(order, node, units),
                "notifyCustomer": amount > 0,
                "note": note,
            }
            if amount > 0:
                state = self._refund_state(order)
                txns = refund_transactions(
                    order_gid(order.external_id), state.get("transactions") or (), amount
                )
                currency = str(state.get("presentmentCurrencyCode") or order.currency)
                process_input["financialTransfer"] = {
                    "issueRefund": {
                        "orderTransactions": [
                            {
                                "parentId": t["parentId"],
                                "transactionAmount": {"amount": t["amount"], "currencyCode": currency},
                            }
                            for t in txns
                        ]
                    }
                }
            self._admin.mutate(
                "returnProcess",
                RETURN_PROCESS % json.dumps(key),
                {"input": process_input},
                replay_unsure=True,
            )
            return (self._refund_with(order, note) if amount > 0 else None) or gid

        reference, replayed = self._admin.write_once(done, write)
        return {"return_id": gid, "reference": reference, "replayed": replayed}

    def _process_lines(
        self, order: Order, node: Mapping[str, Any], units: Mapping[str, tuple[int, int]]
    ) -> list[dict[str, Any]]:
        by_line = {_line_item_id(n): n for n in _nodes(node.get("returnLineItems"))}
        reverse = {
            _line_item_id(n): str(n.get("id"))
            for rfo in _nodes(node.get("reverseFulfillmentOrders"))
            for n in _nodes(rfo.get("lineItems"))
        }
        locations = self._locations(order) if any(r for _n, r in units.values()) else {}
        lines = []
        for line_id, (quantity, restocked) in units.items():
            item = by_line.get(line_id)
            if item is None or int(item.get("unprocessedQuantity") or 0) < quantity:
                raise PublishRejected(
                    f"shopify: the return holds fewer unprocessed units of line {line_id} than {quantity}"
                )
            dispositions = []
            for kind, count in (("RESTOCKED", restocked), ("NOT_RESTOCKED", quantity - restocked)):
                if count <= 0:
                    continue
                disposal = {"reverseFulfillmentOrderLineItemId": reverse.get(line_id), "quantity": count}
                if kind == "RESTOCKED":
                    disposal["locationId"] = locations.get(line_id)
                dispositions.append({**disposal, "dispositionType": kind})
            lines.append({"id": item.get("id"), "quantity": quantity, "dispositions": dispositions})
        return lines

    def _locations(self, order: Order) -> dict[str, str]:
        """line_id → the location that shipped it (where returned units are restocked)."""
        node = self._admin.query("orderLocations", LOCATIONS_QUERY, {"id": order_gid(order.external_id)}).get(
            "order"
        )
        found: dict[str, str] = {}
        for fulfillment in (node or {}).get("fulfillments") or () if isinstance(node, Mapping) else ():
            location = (fulfillment.get("location") or {}).get("id")
            for item in _nodes(fulfillment.get("fulfillmentLineItems")):
                line = str((item.get("lineItem") or {}).get("id") or "").rsplit("/", 1)[-1]
                if location and line:
                    found.setdefault(line, str(location))
        return found

    # --- a return the hub started: refundCreate with refund line items ----------------------------

    def _refund_lines(
        self,
        order: Order,
        milestone: Milestone,
        units: Mapping[str, tuple[int, int]],
        amount: Decimal,
        key: str,
    ) -> dict[str, Any]:
        note = self._note_of(milestone)
        gid = order_gid(order.external_id)

        def done() -> str | None:
            return self._refund_with(order, note)

        def write() -> str:
            locations = self._locations(order) if any(r for _n, r in units.values()) else {}
            items: list[dict[str, Any]] = []
            for line_id, (quantity, restocked) in units.items():
                if restocked:
                    items.append({"lineItemId": f"gid://shopify/LineItem/{line_id}", "quantity": restocked,
                                  "restockType": "RETURN", "locationId": locations.get(line_id)})  # fmt: skip
                if quantity > restocked:
                    items.append({"lineItemId": f"gid://shopify/LineItem/{line_id}",
                                  "quantity": quantity - restocked, "restockType": "NO_RESTOCK"})  # fmt: skip
            refund_input: dict[str, Any] = {
                "orderId": gid,
                "note": note,
                "notify": amount > 0,
                "refundLineItems": items,
            }
            if amount > 0:
                state = self._refund_state(order)
                refund_input["currency"] = str(state.get("presentmentCurrencyCode") or order.currency)
                refund_input["transactions"] = refund_transactions(
                    gid, state.get("transactions") or (), amount
                )
            payload = self._admin.mutate(
                "refundCreate", REFUND_CREATE % json.dumps(key), {"input": refund_input}, replay_unsure=True
            )
            return str((payload.get("refund") or {}).get("id"))

        refund_id, replayed = self._admin.write_once(done, write)
        return {"refund_id": refund_id, "replayed": replayed}

    # --- reads --------------------------------------------------------------------------------------

    def _refund_state(self, order: Order) -> Mapping[str, Any]:
        node = self._admin.query(
            "orderRefunds", REFUND_STATE_QUERY, {"id": order_gid(order.external_id)}
        ).get("order")
        if not isinstance(node, Mapping):
            raise PublishRejected(f"shopify: no order {order.external_id} in {order.store}")
        return node

    def _refund_with(self, order: Order, note: str) -> str | None:
        refunds: Sequence[Any] = self._refund_state(order).get("refunds") or ()
        return next((str(r["id"]) for r in refunds if isinstance(r, Mapping) and r.get("note") == note), None)
