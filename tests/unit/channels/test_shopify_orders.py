"""changed_orders against the Shopify simulator: what it pulls normalises as the webhooks do."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.channel_events import ChannelState, OrderSnapshot
from chalicelib.domain.errors import InvalidInput
from chalicelib.integrations.shopify.admin import ShopifyAdmin
from chalicelib.integrations.shopify.errors import ShopifyError
from chalicelib.integrations.shopify.orders import (
    ORDER_LINE_ITEMS_QUERY,
    changed_orders,
    rest_order_from_graphql,
    search_timestamp,
)
from chalicelib.integrations.shopify.webhook import parse_shopify
from local.simulators.shopify import ShopifySimulator
from tests.webhook_receiver import ShopifyReceiver

SHOP = "sim-store.myshopify.com"
SECRET = "shpss_simulated_webhook_secret"
TOKEN = "shpat_simulated_access_token"
SWEATER = {"title": "Merino Crew Sweater", "variant_title": "Charcoal / M", "sku": "MCS-CHR-M"}
MUG = {"title": "Café Crème Mug", "sku": "MUG-CC"}


Receiver = ShopifyReceiver


class Recording(ShopifyAdmin):
    """A real ShopifyAdmin that remembers every query's operation and variables."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, dict]] = []

    def query(self, operation: str, document: str, variables: Any) -> dict[str, Any]:
        self.calls.append((operation, dict(variables)))
        return super().query(operation, document, variables)


@pytest.fixture
def sim(started, receiver, clock):
    simulator = ShopifySimulator(
        SHOP, SECRET, TOKEN, webhook_url=receiver.url, seed=23, senders=1, clock=clock
    )
    return started(simulator.start())


@pytest.fixture
def admin(sim, sleeps) -> Recording:
    return Recording(
        SHOP, TOKEN, api_base=sim.url, sleep=sleeps, clock=sleeps.clock, jitter=lambda: 0.0, backoff=0.01
    )


def long_ago() -> datetime:
    return datetime.now(UTC) - timedelta(days=1)


def snapshot(topic: str, payload: dict) -> OrderSnapshot:
    event = parse_shopify(topic, payload, SHOP)
    assert isinstance(event, OrderSnapshot)
    return event


def canonical(s: OrderSnapshot) -> dict[str, Any]:
    o = s.order
    return {
        "order_id": o.order_id,
        "external_id": o.external_id,
        "external_number": o.external_number,
        "currency": o.currency,
        "placed_at": o.placed_at,
        "updated_at": o.updated_at,
        "customer": o.customer,
        "shipping_address": o.shipping_address,
        "billing_address": o.billing_address,
        "lines": o.lines,
        "totals": o.totals,
        "payment": o.payment,
        "state": s.state,
    }


def pulled(admin: ShopifyAdmin, since: datetime | None = None, **options: Any) -> dict[int, dict]:
    return {o["id"]: o for o in changed_orders(admin, since or long_ago(), **options)}


# --- the shape round-trips ----------------------------------------------------------------------------


def test_pulled_orders_normalise_as_their_orders_create_webhooks_do(sim, receiver, admin):
    placed = [sim.create_order() for _ in range(10)]  # seeded: currencies, discounts, taxes, gateways
    placed += [
        sim.create_order(currency="JPY", items=[{**SWEATER, "price": "13350", "quantity": 2}],
                         shipping=["1190", "1800"], discount={"code": "FREESHIP", "type": "shipping",
                         "value": "100"}, financial_status="paid"),
        sim.create_order(currency="EUR", items=[{**SWEATER, "price": "81.90", "quantity": 1},
                         {**MUG, "price": "17.00", "quantity": 3}], shipping=["7.30"], taxes_included=True,
                         discount={"code": "SAVE5", "type": "fixed_amount", "value": "4.60"},
                         financial_status="authorized"),
        sim.create_order(currency="USD", items=[{**MUG, "price": "18.50", "quantity": 1}], shipping=[],
                         discount={"code": "WELCOME10", "type": "percentage", "value": "10"},
                         financial_status="pending"),
        # A guest checkout with no addresses and no customer record.
        sim.create_order(currency="GBP", items=[{**MUG, "price": "14.60", "quantity": 2}], shipping=[],
                         discount={}, customer=None, billing_address=None, shipping_address=None, phone=None),
    ]  # fmt: skip
    assert sim.flush(20)
    receiver.wait_for(len(placed))
    got = pulled(admin)
    assert set(got) == {o["id"] for o in placed}
    for order in placed:
        webhook = snapshot("orders/create", receiver.last("orders/create", order["id"]))
        assert canonical(snapshot("orders/updated", got[order["id"]])) == canonical(webhook)
        assert snapshot("orders/updated", got[order["id"]]).order == webhook.order


def test_the_pulled_json_carries_the_rest_spellings(sim, admin):
    order = sim.create_order(currency="EUR", items=[{**SWEATER, "price": "81.90", "quantity": 2}],
                             shipping=["7.30"], discount={"code": "WELCOME10", "type": "percentage",
                             "value": "10"}, financial_status="paid")  # fmt: skip
    (rest,) = pulled(admin).values()
    assert rest["id"] == order["id"] and isinstance(rest["id"], int)
    assert rest["admin_graphql_api_id"] == f"gid://shopify/Order/{order['id']}"
    assert (rest["financial_status"], rest["fulfillment_status"]) == ("paid", None)
    for key in ("total_price", "subtotal_price", "total_tax", "total_discounts", "total_outstanding"):
        assert Decimal(rest[key]) == Decimal(order[key]), key
    assert rest["currency"] == "EUR" and rest["payment_gateway_names"] == order["payment_gateway_names"]
    line, source = rest["line_items"][0], order["line_items"][0]
    assert (line["id"], line["quantity"], Decimal(line["price"])) == (
        source["id"],
        2,
        Decimal(source["price"]),
    )
    assert [a["amount"] for a in line["discount_allocations"]] == [
        a["amount"] for a in source["discount_allocations"]
    ]
    assert [t["price"] for t in line["tax_lines"]] == [t["price"] for t in source["tax_lines"]]
    assert rest["shipping_lines"][0]["id"] == order["shipping_lines"][0]["id"]
    assert rest["shipping_address"]["country_code"] == order["shipping_address"]["country_code"]
    assert rest["customer"]["email"] == order["customer"]["email"]


# --- states after the order changed -------------------------------------------------------------------


def test_cancelled_refunded_and_fulfilled_orders_come_through_in_those_states(sim, receiver, admin):
    paid = {"currency": "USD", "items": [{**SWEATER, "price": "89.00", "quantity": 2}], "shipping": ["7.95"],
            "discount": {}, "financial_status": "paid"}  # fmt: skip
    cancelled = sim.create_order(**paid)
    sim.cancel_order(cancelled["id"], refund=True)
    refunded = sim.create_order(**paid)
    sim.refund_order(refunded["id"], note="all of it")
    partly = sim.create_order(**paid)
    sim.refund_order(partly["id"], amount="20.00")
    voided = sim.create_order(**{**paid, "financial_status": "authorized"})
    sim.cancel_order(voided["id"])
    shipped = sim.create_order(**paid)
    sim.fulfil_order(shipped["id"])
    assert sim.flush(20)
    got = pulled(admin)

    states = {oid: snapshot("orders/updated", body).state for oid, body in got.items()}
    assert states == {
        cancelled["id"]: ChannelState.CANCELLED,
        refunded["id"]: ChannelState.REFUNDED,
        partly["id"]: ChannelState.PARTIALLY_REFUNDED,
        voided["id"]: ChannelState.CANCELLED,
        shipped["id"]: ChannelState.FULFILLED,
    }
    assert got[cancelled["id"]]["cancelled_at"] and got[cancelled["id"]]["cancel_reason"] == "customer"
    total = Decimal(refunded["total_price"])
    assert snapshot("orders/updated", got[refunded["id"]]).order.payment.amount_refunded == total
    assert snapshot("orders/updated", got[partly["id"]]).order.payment.amount_refunded == Decimal("20.00")
    (refund,) = got[partly["id"]]["refunds"]
    assert refund["order_id"] == partly["id"]
    assert [(t["kind"], t["status"], t["amount"]) for t in refund["transactions"]] == [
        ("refund", "success", "20.00")
    ]
    # Each pulled order normalises as the last orders/updated webhook about it did.
    for oid, body in got.items():
        webhook = snapshot("orders/updated", receiver.last("orders/updated", oid))
        assert canonical(snapshot("orders/updated", body)) == canonical(webhook)


# --- the updated_since filter and pagination ----------------------------------------------------------


def test_only_orders_updated_at_or_after_the_time_come_back_oldest_change_first(sim, admin):
    first = sim.create_order()
    second = sim.create_order()
    third = sim.create_order()
    since = datetime.fromisoformat(second["updated_at"])  # the simulator stamps a later second per change
    assert [o["id"] for o in changed_orders(admin, since)] == [second["id"], third["id"]]

    sim.update_order(first["id"], note="gift wrap")  # now the latest change
    got = list(changed_orders(admin, since))
    assert [o["id"] for o in got] == [second["id"], third["id"], first["id"]]
    assert list(changed_orders(admin, datetime.now(UTC) + timedelta(hours=1))) == []
    _, variables = admin.calls[0]
    assert variables["query"] == f"updated_at:>='{search_timestamp(since)}'"


def test_pages_are_followed_by_their_cursor_until_the_last(sim, admin):
    placed = [sim.create_order() for _ in range(7)]
    got = list(changed_orders(admin, long_ago(), page_size=2))
    assert [o["id"] for o in got] == [o["id"] for o in placed]
    pages = [variables for operation, variables in admin.calls if operation == "changedOrders"]
    assert [v["first"] for v in pages] == [2, 2, 2, 2]
    assert pages[0]["after"] is None and all(v["after"] for v in pages[1:])
    assert len({v["after"] for v in pages}) == 4


def test_throttled_pages_are_waited_out(sim, admin, sleeps):
    placed = [sim.create_order() for _ in range(3)]
    sim.throttle_api(2, mutations_only=False)
    got = list(changed_orders(admin, long_ago(), page_size=2))
    assert [o["id"] for o in got] == [o["id"] for o in placed]
    # Each THROTTLED answer said the bucket was empty: a page of 2 costs 4 points, 0.08 s at 50 points/s.
    assert sleeps == [0.08, 0.08]
    assert [op for op, _ in admin.calls] == ["changedOrders", "changedOrders"]


# --- what the simulator cannot show: more lines than one page, costly pages -----------------------------


class Scripted:
    """An admin answering each query from a script of (expected operation, answer or exception)."""

    def __init__(self, *answers: tuple[str, Any]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, dict]] = []

    def query(self, operation: str, document: str, variables: Any) -> dict[str, Any]:
        self.calls.append((operation, document, dict(variables)))
        expected, answer = self.answers.pop(0)
        assert operation == expected
        if isinstance(answer, Exception):
            raise answer
        return answer


def gql_line(n: int) -> dict:
    money = {"shopMoney": {"amount": "10.0", "currencyCode": "USD"}}
    return {"id": f"gid://shopify/LineItem/{n}", "title": f"Item {n}", "variantTitle": None, "name": None,
            "sku": f"SKU-{n}", "quantity": 1, "currentQuantity": 1, "originalUnitPriceSet": money,
            "discountAllocations": [], "taxLines": []}  # fmt: skip


def gql_order(lines: list[dict], *, more_lines: bool = False) -> dict:
    def money(amount: str) -> dict:
        return {"shopMoney": {"amount": amount, "currencyCode": "USD"}}

    total = f"{10 * len(lines)}.0"
    return {
        "id": "gid://shopify/Order/42", "legacyResourceId": "42", "name": "#1042", "email": "a@example.com",
        "phone": None, "createdAt": "2026-01-05T10:00:00Z", "updatedAt": "2026-01-05T11:00:00Z",
        "cancelledAt": None, "cancelReason": None, "closedAt": None, "displayFinancialStatus": "PAID",
        "displayFulfillmentStatus": "UNFULFILLED", "currencyCode": "USD", "taxesIncluded": False,
        "paymentGatewayNames": ["shopify_payments"], "totalPriceSet": money(total),
        "subtotalPriceSet": money(total), "totalTaxSet": money("0.0"), "totalDiscountsSet": money("0.0"),
        "totalOutstandingSet": money("0.0"), "totalShippingPriceSet": money("0.0"), "customer": None,
        "billingAddress": None, "shippingAddress": None,
        "lineItems": {"pageInfo": {"hasNextPage": more_lines, "endCursor": "c1" if more_lines else None},
                      "nodes": lines},
        "shippingLines": {"pageInfo": {"hasNextPage": False}, "nodes": []}, "refunds": [],
    }  # fmt: skip


def page(*orders: dict) -> dict:
    edges = [{"cursor": f"o{i}", "node": o} for i, o in enumerate(orders)]
    return {"orders": {"edges": edges, "pageInfo": {"hasNextPage": False, "endCursor": None}}}


def test_an_order_with_more_line_items_than_the_page_asked_for_is_completed():
    more = {"pageInfo": {"hasNextPage": True, "endCursor": "c2"}, "nodes": [gql_line(3), gql_line(4)]}
    last = {"pageInfo": {"hasNextPage": False, "endCursor": "c3"}, "nodes": [gql_line(5)]}
    admin = Scripted(
        ("changedOrders", page(gql_order([gql_line(1), gql_line(2)], more_lines=True))),
        ("orderLineItems", {"order": {"id": "gid://shopify/Order/42", "lineItems": more}}),
        ("orderLineItems", {"order": {"id": "gid://shopify/Order/42", "lineItems": last}}),
    )
    (order,) = changed_orders(admin, long_ago())  # type: ignore[arg-type]
    assert [li["id"] for li in order["line_items"]] == [1, 2, 3, 4, 5]
    assert [c[2]["after"] for c in admin.calls[1:]] == ["c1", "c2"]
    assert admin.calls[1][1] == ORDER_LINE_ITEMS_QUERY
    parsed = snapshot("orders/updated", order).order
    assert len(parsed.lines) == 5 and parsed.totals.subtotal == Decimal("50.00")


def test_a_page_too_costly_for_shopify_is_asked_again_with_fewer_orders():
    too_costly = ShopifyError(
        "Query cost is 2600", operation="changedOrders", status=200, code="MAX_COST_EXCEEDED"
    )
    admin = Scripted(
        ("changedOrders", too_costly),
        ("changedOrders", too_costly),
        ("changedOrders", page(gql_order([gql_line(1)]))),
    )
    assert [o["id"] for o in changed_orders(admin, long_ago(), page_size=50)] == [42]  # type: ignore[arg-type]
    assert [c[2]["first"] for c in admin.calls] == [50, 25, 12]


def test_other_errors_are_not_swallowed():
    admin = Scripted(("changedOrders", ShopifyError("boom", code="INTERNAL_SERVER_ERROR")))
    with pytest.raises(ShopifyError, match="boom"):
        list(changed_orders(admin, long_ago()))  # type: ignore[arg-type]


def test_a_cut_short_list_is_an_error_rather_than_a_wrong_order():
    node = gql_order([gql_line(1)])
    node["shippingLines"]["pageInfo"]["hasNextPage"] = True
    with pytest.raises(ShopifyError, match="shipping lines"):
        rest_order_from_graphql(node)
    node = gql_order([gql_line(1)])
    transactions = {"pageInfo": {"hasNextPage": True}, "nodes": []}
    node["refunds"] = [
        {"id": "gid://shopify/Refund/9", "legacyResourceId": "9", "transactions": transactions}
    ]
    with pytest.raises(ShopifyError, match="transactions"):
        rest_order_from_graphql(node)


def test_the_time_must_be_aware_and_the_page_size_shopifys():
    with pytest.raises(InvalidInput):
        list(changed_orders(Scripted(), datetime(2026, 1, 1)))  # type: ignore[arg-type]
    for size in (0, 251):
        with pytest.raises(InvalidInput):
            list(changed_orders(Scripted(), long_ago(), page_size=size))  # type: ignore[arg-type]
    # Rounded down to the second, in UTC.
    moment = datetime(2026, 3, 1, 9, 30, 15, 900_000, tzinfo=UTC)
    assert search_timestamp(moment.astimezone()) == "2026-03-01T09:30:15Z"
