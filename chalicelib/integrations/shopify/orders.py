"""Shopify orders changed since a time, read through the Admin GraphQL API, in the webhook's shape.

Reconciliation looks for orders whose webhooks went missing and must normalise them exactly as the
webhooks are normalised: `changed_orders` runs the GraphQL `orders` query (filtered on `updated_at`,
sorted by UPDATED_AT, cursor-paginated) and turns each node into the REST/webhook order JSON that
`chalicelib.integrations.shopify.webhook.parse_shopify` reads (`rest_order_from_graphql`).

Only what the normaliser reads is asked for. Money comes from `*Set.shopMoney` (REST amounts are shop
money, `currency` the shop currency); ids from `legacyResourceId` or the numeric tail of the GID (line
items, shipping lines and transactions have no legacyResourceId); enums are spelled as REST spells them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.reconciliation import ChannelOrder, ChannelPull
from chalicelib.integrations.shopify.admin import ShopifyAdmin
from chalicelib.integrations.shopify.errors import ShopifyError

logger = Logger(service="order-hub", child=True)

MAX_PAGE_SIZE = 250  # Shopify's limit on `first`
LINE_ITEMS_PER_ORDER = 50  # in the page query; an order with more is completed by ORDER_LINE_ITEMS_QUERY
LINE_ITEMS_PER_PAGE = 100
SHIPPING_LINES_PER_ORDER = 10
TRANSACTIONS_PER_REFUND = 10

_MONEY = "shopMoney { amount currencyCode }"
_LINE_ITEM_FIELDS = f"""
        id title variantTitle name sku quantity currentQuantity
        originalUnitPriceSet {{ {_MONEY} }}
        discountAllocations {{ allocatedAmountSet {{ {_MONEY} }} discountApplication {{ index }} }}
        taxLines {{ title rate channelLiable priceSet {{ {_MONEY} }} }}
"""
_ADDRESS_FIELDS = """
        firstName lastName name company address1 address2 city province provinceCode zip country
        countryCodeV2 phone
"""

ORDERS_QUERY = f"""
query ChangedOrders($first: Int!, $after: String, $query: String!) {{
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    edges {{
      node {{
        id legacyResourceId name email phone
        createdAt updatedAt cancelledAt cancelReason closedAt
        displayFinancialStatus displayFulfillmentStatus
        currencyCode taxesIncluded paymentGatewayNames
        totalPriceSet {{ {_MONEY} }}
        subtotalPriceSet {{ {_MONEY} }}
        totalTaxSet {{ {_MONEY} }}
        totalDiscountsSet {{ {_MONEY} }}
        totalOutstandingSet {{ {_MONEY} }}
        totalShippingPriceSet {{ {_MONEY} }}
        customer {{
          legacyResourceId firstName lastName
          defaultEmailAddress {{ emailAddress }}
          defaultPhoneNumber {{ phoneNumber }}
        }}
        billingAddress {{ {_ADDRESS_FIELDS} }}
        shippingAddress {{ {_ADDRESS_FIELDS} }}
        lineItems(first: {LINE_ITEMS_PER_ORDER}) {{
          pageInfo {{ hasNextPage endCursor }}
          nodes {{ {_LINE_ITEM_FIELDS} }}
        }}
        shippingLines(first: {SHIPPING_LINES_PER_ORDER}, includeRemovals: true) {{
          pageInfo {{ hasNextPage }}
          nodes {{
            id title code source isRemoved
            originalPriceSet {{ {_MONEY} }}
            discountedPriceSet {{ {_MONEY} }}
            discountAllocations {{ allocatedAmountSet {{ {_MONEY} }} discountApplication {{ index }} }}
            taxLines {{ title rate channelLiable priceSet {{ {_MONEY} }} }}
          }}
        }}
        refunds {{
          id legacyResourceId createdAt note
          transactions(first: {TRANSACTIONS_PER_REFUND}) {{
            pageInfo {{ hasNextPage }}
            nodes {{ id kind status gateway createdAt amountSet {{ {_MONEY} }} }}
          }}
        }}
      }}
    }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

# The rest of one order's line items, when it has more than the page query asked for.
ORDER_LINE_ITEMS_QUERY = f"""
query OrderLineItems($id: ID!, $after: String) {{
  order(id: $id) {{
    id
    lineItems(first: {LINE_ITEMS_PER_PAGE}, after: $after) {{
      pageInfo {{ hasNextPage endCursor }}
      nodes {{ {_LINE_ITEM_FIELDS} }}
    }}
  }}
}}
"""

# OrderDisplayFulfillmentStatus -> the REST fulfillment_status (null while nothing is fulfilled).
_FULFILLMENT_STATUS = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial", "RESTOCKED": "restocked"}
_GID_TAIL = re.compile(r"^gid://shopify/[A-Za-z]+/(\d+)(?:\?.*)?$")


def changed_orders(
    admin: ShopifyAdmin, updated_since: datetime, *, page_size: int = 50
) -> Iterator[dict[str, Any]]:
    """Every order updated at or after `updated_since`, oldest change first, as REST/webhook order JSON.

    Feed each to `parse_shopify("orders/updated", order, shop)`. An order changed while the pages are
    read comes again later in the same run (UPDATED_AT order), so callers must be idempotent, as they
    are for webhooks. Throttling and transient failures are waited out by `admin`; a page Shopify
    refuses as too costly (MAX_COST_EXCEEDED) is asked again with half as many orders.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    search = f"updated_at:>='{search_timestamp(updated_since)}'"
    first, after = page_size, None
    while True:
        variables = {"first": first, "after": after, "query": search}
        try:
            data = admin.query("changedOrders", ORDERS_QUERY, variables)
        except ShopifyError as exc:
            if exc.code == "MAX_COST_EXCEEDED" and first > 1:
                first = max(1, first // 2)
                logger.info("shopify orders page too costly, asking for fewer", extra={"first": first})
                continue
            raise
        connection = data.get("orders")
        if not isinstance(connection, Mapping):
            raise ShopifyError("changedOrders answered without orders", operation="changedOrders")
        for edge in connection.get("edges") or ():
            node = edge.get("node") if isinstance(edge, Mapping) else None
            if isinstance(node, Mapping):
                yield rest_order_from_graphql(_with_all_line_items(admin, node))
        info = connection.get("pageInfo") or {}
        if not info.get("hasNextPage"):
            return
        after = info.get("endCursor")
        if not after:
            raise ShopifyError("changedOrders: hasNextPage without an endCursor", operation="changedOrders")


def shopify_pull(admin: ShopifyAdmin) -> ChannelPull:
    """Reconciliation's reader: `changed_orders` in the webhook's shape, each with its own `updated_at`."""

    def pull(since: datetime) -> Iterable[ChannelOrder]:
        # Small pages: each order asks for its lines, shipping and refunds (a query costs 1,000 points max).
        for order in changed_orders(admin, since, page_size=5):
            yield ChannelOrder(str(order["id"]), str(order.get("updated_at") or ""), "orders/updated", order)

    return pull


def search_timestamp(moment: datetime) -> str:
    """`moment` for Shopify's search syntax: UTC, to the second, rounded down (so `>=` misses nothing)."""
    if moment.tzinfo is None:
        raise InvalidInput("updated_since must carry a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rest_order_from_graphql(node: Mapping[str, Any]) -> dict[str, Any]:
    """One GraphQL Order node (as ORDERS_QUERY selects it) as the REST order resource a webhook carries.

    Raises ShopifyError when a nested list came back cut short (more shipping lines or refund
    transactions than asked for): a partial order would normalise to wrong totals or payment.
    """
    order_gid = _text(node.get("id"))
    currency = _text(node.get("currencyCode"))
    if _page_info(node.get("shippingLines")).get("hasNextPage"):
        raise ShopifyError(f"{order_gid}: more than {SHIPPING_LINES_PER_ORDER} shipping lines")
    order: dict[str, Any] = {
        "id": _legacy_id(node.get("legacyResourceId") or order_gid),
        "admin_graphql_api_id": order_gid,
        "name": node.get("name"),
        "email": node.get("email"),
        "contact_email": node.get("email"),
        "phone": node.get("phone"),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "cancelled_at": node.get("cancelledAt"),
        "cancel_reason": _lower(node.get("cancelReason")),
        "closed_at": node.get("closedAt"),
        "currency": currency,
        "financial_status": _lower(node.get("displayFinancialStatus")),
        "fulfillment_status": _FULFILLMENT_STATUS.get(str(node.get("displayFulfillmentStatus") or "")),
        "taxes_included": node.get("taxesIncluded") is True,
        "payment_gateway_names": list(node.get("paymentGatewayNames") or []),
        "customer": _customer(node.get("customer")),
        "billing_address": _address(node.get("billingAddress")),
        "shipping_address": _address(node.get("shippingAddress")),
        "line_items": [_line_item(li) for li in _nodes(node.get("lineItems"))],
        "shipping_lines": [_shipping_line(sl) for sl in _nodes(node.get("shippingLines"))],
        "refunds": [_refund(r, order_gid) for r in _objects(node.get("refunds"))],
    }
    fields = {
        "total_price": "totalPriceSet",
        "subtotal_price": "subtotalPriceSet",
        "total_tax": "totalTaxSet",
        "total_discounts": "totalDiscountsSet",
        "total_outstanding": "totalOutstandingSet",
    }
    for rest_name, gql_name in fields.items():
        order[rest_name] = _amount(node.get(gql_name))
        order[f"{rest_name}_set"] = _money_set(node.get(gql_name))
    order["total_shipping_price_set"] = _money_set(node.get("totalShippingPriceSet"))
    for refund in order["refunds"]:
        refund["order_id"] = order["id"]
    return order


# --- completing an order ----------------------------------------------------------------------------


def _with_all_line_items(admin: ShopifyAdmin, node: Mapping[str, Any]) -> Mapping[str, Any]:
    """`node`, its lineItems completed page by page when the page query got only the first ones."""
    connection = node.get("lineItems")
    info = _page_info(connection)
    if not info.get("hasNextPage"):
        return node
    lines = list(_nodes(connection))
    after = info.get("endCursor")
    while True:
        data = admin.query("orderLineItems", ORDER_LINE_ITEMS_QUERY, {"id": node.get("id"), "after": after})
        order = data.get("order")
        if not isinstance(order, Mapping):
            raise ShopifyError(f"{node.get('id')} vanished while its line items were read")
        more = order.get("lineItems")
        lines += _nodes(more)
        info = _page_info(more)
        if not info.get("hasNextPage"):
            break
        after = info.get("endCursor")
        if not after:
            raise ShopifyError(f"{node.get('id')}: lineItems hasNextPage without an endCursor")
    complete = dict(node)
    complete["lineItems"] = {"nodes": lines, "pageInfo": {"hasNextPage": False, "endCursor": None}}
    return complete


# --- GraphQL objects into REST ones -------------------------------------------------------------------


def _customer(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    email = raw.get("defaultEmailAddress")
    phone = raw.get("defaultPhoneNumber")
    return {
        "id": _legacy_id(raw.get("legacyResourceId") or raw.get("id")),
        "first_name": raw.get("firstName"),
        "last_name": raw.get("lastName"),
        "email": email.get("emailAddress") if isinstance(email, Mapping) else None,
        "phone": phone.get("phoneNumber") if isinstance(phone, Mapping) else None,
    }


def _address(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    return {
        "first_name": raw.get("firstName"),
        "last_name": raw.get("lastName"),
        "name": raw.get("name"),
        "company": raw.get("company"),
        "address1": raw.get("address1"),
        "address2": raw.get("address2"),
        "city": raw.get("city"),
        "province": raw.get("province"),
        "province_code": raw.get("provinceCode"),
        "zip": raw.get("zip"),
        "country": raw.get("country"),
        "country_code": raw.get("countryCodeV2"),
        "phone": raw.get("phone"),
    }


def _line_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": _legacy_id(raw.get("id")),
        "admin_graphql_api_id": raw.get("id"),
        "title": raw.get("title"),
        "variant_title": raw.get("variantTitle"),
        "name": raw.get("name"),
        "sku": raw.get("sku"),
        "quantity": raw.get("quantity"),
        "current_quantity": raw.get("currentQuantity"),
        "price": _amount(raw.get("originalUnitPriceSet")),
        "price_set": _money_set(raw.get("originalUnitPriceSet")),
        "discount_allocations": _allocations(raw),
        "tax_lines": _tax_lines(raw),
    }


def _shipping_line(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": _legacy_id(raw.get("id")),
        "title": raw.get("title"),
        "code": raw.get("code"),
        "source": raw.get("source"),
        "is_removed": raw.get("isRemoved") is True,
        "price": _amount(raw.get("originalPriceSet")),
        "price_set": _money_set(raw.get("originalPriceSet")),
        "discounted_price": _amount(raw.get("discountedPriceSet")),
        "discounted_price_set": _money_set(raw.get("discountedPriceSet")),
        "discount_allocations": _allocations(raw),
        "tax_lines": _tax_lines(raw),
    }


def _allocations(owner: Mapping[str, Any]) -> list[dict[str, Any]]:
    result = []
    for allocation in _objects(owner.get("discountAllocations")):
        application = allocation.get("discountApplication")
        index = application.get("index") if isinstance(application, Mapping) else None
        result.append(
            {
                "amount": _amount(allocation.get("allocatedAmountSet")),
                "amount_set": _money_set(allocation.get("allocatedAmountSet")),
                "discount_application_index": index,
            }
        )
    return result


def _tax_lines(owner: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "title": t.get("title"),
            "rate": t.get("rate"),
            "channel_liable": t.get("channelLiable"),
            "price": _amount(t.get("priceSet")),
            "price_set": _money_set(t.get("priceSet")),
        }
        for t in _objects(owner.get("taxLines"))
    ]


def _refund(raw: Mapping[str, Any], order_gid: str | None) -> dict[str, Any]:
    connection = raw.get("transactions")
    if _page_info(connection).get("hasNextPage"):
        raise ShopifyError(
            f"{order_gid}: refund {raw.get('id')} has more than {TRANSACTIONS_PER_REFUND} transactions"
        )
    return {
        "id": _legacy_id(raw.get("legacyResourceId") or raw.get("id")),
        "admin_graphql_api_id": raw.get("id"),
        "created_at": raw.get("createdAt"),
        "note": raw.get("note"),
        "transactions": [
            {
                "id": _legacy_id(t.get("id")),
                "admin_graphql_api_id": t.get("id"),
                "kind": _lower(t.get("kind")),
                "status": _lower(t.get("status")),
                "gateway": t.get("gateway"),
                "created_at": t.get("createdAt"),
                "amount": _amount(t.get("amountSet")),
                "currency": _currency(t.get("amountSet")),
            }
            for t in _nodes(connection)
        ],
    }


# --- helpers ------------------------------------------------------------------------------------------


def _shop_money(bag: Any) -> Mapping[str, Any]:
    money = bag.get("shopMoney") if isinstance(bag, Mapping) else None
    return money if isinstance(money, Mapping) else {}


def _amount(bag: Any) -> str | None:
    amount = _shop_money(bag).get("amount")
    return None if amount is None else str(amount)


def _currency(bag: Any) -> str | None:
    return _text(_shop_money(bag).get("currencyCode"))


def _money_set(bag: Any) -> dict[str, Any] | None:
    if not _shop_money(bag):
        return None
    # Only shop money is asked for: the presentment side is left out rather than guessed.
    return {"shop_money": {"amount": _amount(bag), "currency_code": _currency(bag)}}


def _legacy_id(value: Any) -> int | str | None:
    """The REST id: `legacyResourceId` or a GID's numeric tail, as the JSON number REST sends."""
    text = _text(value)
    if text is None:
        return None
    match = _GID_TAIL.match(text)
    digits = match.group(1) if match else text
    return int(digits) if digits.isdigit() else text


def _lower(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _objects(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _nodes(connection: Any) -> list[Mapping[str, Any]]:
    """A connection's nodes, selected as `nodes` or as `edges { node }`."""
    if not isinstance(connection, Mapping):
        return []
    if "nodes" in connection:
        return _objects(connection.get("nodes"))
    return [e["node"] for e in _objects(connection.get("edges")) if isinstance(e.get("node"), Mapping)]


def _page_info(connection: Any) -> Mapping[str, Any]:
    info = connection.get("pageInfo") if isinstance(connection, Mapping) else None
    return info if isinstance(info, Mapping) else {}
