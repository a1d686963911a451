"""GraphQL Admin API objects (and a REST event) rendered from the simulated shop's state."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from local.simulators.shopify.records import FulfillmentRecord
from local.simulators.shopify.values import gql_connection, make_gid, money_text, utc_text

_DISPLAY_STATUS = {"CARRIER_PICKED_UP": "IN_TRANSIT", "DELAYED": "IN_TRANSIT"}


def gql_fulfillment(record: Mapping[str, Any]) -> dict[str, Any]:
    events = [
        {"id": make_gid("FulfillmentEvent", e["id"]), "status": e["status"], "happenedAt": e["happened_at"]}
        for e in record["events"]
    ]
    display = _DISPLAY_STATUS.get(events[-1]["status"], events[-1]["status"]) if events else "FULFILLED"
    urls = list(record["urls"]) + [None] * (len(record["numbers"]) - len(record["urls"]))
    return {
        "id": make_gid("Fulfillment", record["id"]),
        "legacyResourceId": str(record["id"]),
        "name": record["name"],
        "status": record["status"],
        "displayStatus": "CANCELED" if record["status"] == "CANCELLED" else display,
        "createdAt": utc_text(record["created_at"]),
        "updatedAt": utc_text(record["updated_at"]),
        "location": {"id": make_gid("Location", record["location_id"])},
        "trackingInfo": [
            {"company": record["company"], "number": n, "url": u}
            for n, u in zip(record["numbers"], urls, strict=False)
        ],
        "events": gql_connection(events),
        "fulfillmentLineItems": gql_connection(
            [
                {"id": make_gid("FulfillmentLineItem", record["line_ids"][line_id]), "quantity": quantity,
                 "lineItem": {"id": make_gid("LineItem", line_id)}}
                for line_id, quantity in record["lines"].items()
            ]
        ),
    }  # fmt: skip


def fulfillment_record(record: Mapping[str, Any]) -> FulfillmentRecord:
    return FulfillmentRecord(
        make_gid("Fulfillment", record["id"]),
        record["location_id"],
        dict(record["lines"]),
        record["company"],
        tuple(record["numbers"]),
        tuple(record["urls"]),
        record["notify"],
        record["status"],
        record["via"],
    )


def gql_fulfillment_order(fo: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": make_gid("FulfillmentOrder", fo["id"]),
        "status": fo["status"],
        "requestStatus": "UNSUBMITTED",
        "assignedLocation": {
            "name": f"Location {fo['location_id']}",
            "location": {"id": make_gid("Location", fo["location_id"])},
        },
        "lineItems": gql_connection(
            [
                {"id": make_gid("FulfillmentOrderLineItem", i["id"]), "totalQuantity": i["total"],
                 "remainingQuantity": i["remaining"],
                 "lineItem": {"id": make_gid("LineItem", i["line_item_id"])}}
                for i in fo["line_items"]
            ]
        ),
    }  # fmt: skip


def gql_refund(refund: Mapping[str, Any], currency: str) -> dict[str, Any]:
    amount = sum((Decimal(t["amount"]) for t in refund["transactions"]), Decimal(0))
    money = {"amount": money_text(amount, currency), "currencyCode": currency}
    return {
        "id": make_gid("Refund", refund["id"]),
        "legacyResourceId": str(refund["id"]),
        "note": refund["note"],
        "createdAt": utc_text(refund["created_at"]),
        "totalRefundedSet": {"shopMoney": dict(money), "presentmentMoney": dict(money)},
        "transactions": gql_connection(
            [
                {
                    "id": make_gid("OrderTransaction", t["id"]),
                    "kind": str(t["kind"]).upper(),
                    "status": str(t["status"]).upper(),
                    "gateway": t.get("gateway"),
                    "createdAt": utc_text(t["created_at"]),
                    "amountSet": _gql_money(t["amount"], currency),
                }
                for t in refund["transactions"]
            ]
        ),
    }


def rest_event(
    event: Mapping[str, Any], fulfillment: Mapping[str, Any], order: Mapping[str, Any], now: str
) -> dict[str, Any]:
    """The REST fulfillment event resource (the fulfillment_events/create webhook body)."""
    return {
        "id": event["id"], "admin_graphql_api_id": make_gid("FulfillmentEvent", event["id"]),
        "fulfillment_id": fulfillment["id"], "order_id": order["id"], "status": event["status"].lower(),
        "message": None, "happened_at": event["happened_at"], "created_at": now, "updated_at": now,
        "city": None, "province": None, "country": None, "zip": None, "address1": None,
        "latitude": None, "longitude": None, "estimated_delivery_at": None,
    }  # fmt: skip


def gql_transaction(
    txn: Mapping[str, Any], kinds: Mapping[int, str], currency: str, capturable: Decimal
) -> dict[str, Any]:
    money = {"amount": money_text(txn["amount"], currency), "currencyCode": currency}
    parent = txn["parent_id"]
    return {
        "id": make_gid("OrderTransaction", txn["id"]),
        "kind": txn["kind"],
        "status": txn["status"],
        "gateway": txn["gateway"],
        "createdAt": utc_text(txn["created_at"]),
        "errorCode": None,
        "manuallyCapturable": capturable > 0,
        "multiCapturable": txn["multi_capturable"],
        "amountSet": {"shopMoney": dict(money), "presentmentMoney": dict(money)},
        "parentTransaction": {"id": make_gid("OrderTransaction", parent), "kind": kinds.get(parent)}
        if parent
        else None,
    }


def gql_node(order: Mapping[str, Any]) -> dict[str, Any]:
    fulfillment = {"fulfilled": "FULFILLED", "partial": "PARTIALLY_FULFILLED"}
    cur = order["currency"]
    return {
        "id": f"gid://shopify/Order/{order['id']}",
        "legacyResourceId": str(order["id"]),
        "name": order["name"],
        "email": order.get("email"),
        "phone": order.get("phone"),
        "createdAt": utc_text(order["created_at"]),
        "updatedAt": utc_text(order["updated_at"]),
        "cancelledAt": utc_text(order["cancelled_at"]) if order["cancelled_at"] else None,
        "cancelReason": str(order["cancel_reason"]).upper() if order.get("cancel_reason") else None,
        "closedAt": utc_text(order["closed_at"]) if order["closed_at"] else None,
        "displayFinancialStatus": str(order["financial_status"]).upper(),
        "displayFulfillmentStatus": fulfillment.get(order["fulfillment_status"] or "", "UNFULFILLED"),
        "currencyCode": cur,
        "taxesIncluded": bool(order.get("taxes_included")),
        "paymentGatewayNames": list(order.get("payment_gateway_names") or []),
        "totalPriceSet": _gql_money(order["total_price"], cur),
        "subtotalPriceSet": _gql_money(order["subtotal_price"], cur),
        "totalTaxSet": _gql_money(order["total_tax"], cur),
        "totalDiscountsSet": _gql_money(order["total_discounts"], cur),
        "totalOutstandingSet": _gql_money(order["total_outstanding"], cur),
        "totalShippingPriceSet": _gql_money(order["total_shipping_price_set"]["shop_money"]["amount"], cur),
        "currentTotalPriceSet": _gql_money(order["current_total_price"], cur),
        "customer": _gql_customer(order.get("customer")),
        "billingAddress": _gql_address(order.get("billing_address")),
        "shippingAddress": _gql_address(order.get("shipping_address")),
        "lineItems": gql_connection([_gql_line_item(li, cur) for li in order["line_items"]]),
        "shippingLines": gql_connection([_gql_shipping_line(sl, cur) for sl in order["shipping_lines"]]),
        "refunds": [gql_refund(r, order["presentment_currency"]) for r in order["refunds"]],
    }


def _gql_money(amount: Any, currency: str) -> dict[str, Any]:
    """A MoneyBag: the same amount in shop and presentment money (the simulator sells in one currency)."""
    money = {"amount": str(amount), "currencyCode": currency}
    return {"shopMoney": dict(money), "presentmentMoney": dict(money)}


def _gql_customer(customer: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not customer:
        return None
    email, phone = customer.get("email"), customer.get("phone")
    return {
        "id": make_gid("Customer", customer["id"]),
        "legacyResourceId": str(customer["id"]),
        "firstName": customer.get("first_name"),
        "lastName": customer.get("last_name"),
        # Customer.email and Customer.phone are deprecated (2025-04) in favour of these two.
        "defaultEmailAddress": {"emailAddress": email} if email else None,
        "defaultPhoneNumber": {"phoneNumber": phone} if phone else None,
    }


def _gql_address(address: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A MailingAddress (countryCodeV2, provinceCode) from the REST address."""
    if not address:
        return None
    return {
        "firstName": address.get("first_name"), "lastName": address.get("last_name"),
        "name": address.get("name"), "company": address.get("company"),
        "address1": address.get("address1"), "address2": address.get("address2"),
        "city": address.get("city"), "province": address.get("province"),
        "provinceCode": address.get("province_code"), "zip": address.get("zip"),
        "country": address.get("country"), "countryCodeV2": address.get("country_code"),
        "phone": address.get("phone"),
    }  # fmt: skip


def _gql_allocations(owner: Mapping[str, Any], cur: str) -> list[dict[str, Any]]:
    return [
        {"allocatedAmountSet": _gql_money(a["amount"], cur),
         "discountApplication": {"index": a.get("discount_application_index", 0)}}
        for a in owner.get("discount_allocations") or []
    ]  # fmt: skip


def _gql_tax_lines(owner: Mapping[str, Any], cur: str) -> list[dict[str, Any]]:
    return [
        {"title": t["title"], "rate": t["rate"], "ratePercentage": round(float(t["rate"]) * 100, 4),
         "channelLiable": bool(t.get("channel_liable")), "priceSet": _gql_money(t["price"], cur)}
        for t in owner.get("tax_lines") or []
    ]  # fmt: skip


def _gql_line_item(line: Mapping[str, Any], cur: str) -> dict[str, Any]:
    return {
        "id": make_gid("LineItem", line["id"]),
        "title": line["title"],
        "variantTitle": line.get("variant_title"),
        "name": line.get("name"),
        "sku": line.get("sku") or None,
        "quantity": line["quantity"],
        "currentQuantity": line["current_quantity"],
        "originalUnitPriceSet": _gql_money(line["price"], cur),
        "discountAllocations": _gql_allocations(line, cur),
        "taxLines": _gql_tax_lines(line, cur),
    }


def _gql_shipping_line(line: Mapping[str, Any], cur: str) -> dict[str, Any]:
    return {
        "id": make_gid("ShippingLine", line["id"]),
        "title": line["title"],
        "code": line.get("code"),
        "source": line.get("source"),
        "isRemoved": bool(line.get("is_removed")),
        "originalPriceSet": _gql_money(line["price"], cur),
        "discountedPriceSet": _gql_money(line.get("discounted_price") or line["price"], cur),
        "discountAllocations": _gql_allocations(line, cur),
        "taxLines": _gql_tax_lines(line, cur),
    }


def gql_cursor(key: tuple[str, int]) -> str:
    raw = json.dumps({"last_id": key[1], "last_value": key[0]}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()
