"""Shopify adapter: HMAC verification and normalisation of every supported topic into channel events."""

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from chalicelib.domain.channel_events import ChannelState, OrderSnapshot, RefundNotice
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.order import derive_order_id
from chalicelib.domain.totals import totals_issues
from chalicelib.integrations.shopify.webhook import TOPICS, parse_shopify, verify_shopify_hmac

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "shopify"
SHOP = "maple-and-moss.myshopify.com"
SECRET = "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"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def raw(name: str) -> bytes:
    # Shopify sends compact UTF-8 JSON: this is the byte string it would sign.
    return json.dumps(fixture(name), separators=(",", ":"), ensure_ascii=False).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def snapshot(topic: str, name: str, store: str = SHOP) -> OrderSnapshot:
    event = parse_shopify(topic, fixture(name), store)
    assert isinstance(event, OrderSnapshot)
    return event


# --- HMAC ---------------------------------------------------------------------------------------------


def test_verify_hmac__accepts_shopifys_base64_signature_of_the_exact_body():
    body = raw("orders_paid_jpy")
    assert verify_shopify_hmac(SECRET, body, sign(body))


@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("hex instead of base64", lambda b: (b, hmac.new(SECRET.encode(), b, hashlib.sha256).hexdigest())),
        ("re-serialised body", lambda b: (json.dumps(json.loads(b)).encode(), sign(b))),
        ("wrong secret", lambda b: (b, sign(b, "shpss_someone_else"))),
        ("empty body", lambda b: (b"", sign(b""))),
        ("missing header", lambda b: (b, None)),
        ("empty header", lambda b: (b, "")),
        ("non-ASCII header", lambda b: (b, "é" * 44)),
        ("one byte changed", lambda b: (b.replace(b"9460", b"9461", 1), sign(b))),
    ],
)
def test_verify_hmac__rejects(case, make):
    body, header = make(raw("orders_paid_jpy"))
    assert not verify_shopify_hmac(SECRET, body, header), case


def test_verify_hmac__rejects_an_empty_secret():
    body = raw("orders_paid_jpy")
    assert not verify_shopify_hmac("", body, sign(body, ""))


# --- orders/* -----------------------------------------------------------------------------------------


def test_topics__are_the_twelve_the_hub_handles():
    assert {
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
        "refunds/create",
        "returns/request",
        "returns/approve",
        "returns/decline",
        "returns/close",
        "returns/reopen",
        "returns/cancel",
    } == TOPICS


def test_orders_create__maps_ids_customer_addresses_and_times():
    event = snapshot("orders/create", "orders_create_usd_discount")
    order = event.order
    assert order.order_id == derive_order_id("shopify", SHOP, "5912837465012")
    assert (order.channel, order.store, order.external_id, order.external_number) == (
        "shopify",
        SHOP,
        "5912837465012",
        "#1042",
    )
    assert order.placed_at == datetime(2026, 11, 20, 14, 14, 3, tzinfo=UTC)
    assert order.updated_at == datetime(2026, 11, 20, 14, 14, 5, tzinfo=UTC)
    assert order.customer.model_dump() == {
        "email": "jose.nunez@example.com",
        "name": "José Núñez",
        "phone": "+12125550143",
    }
    assert order.shipping_address is not None
    assert order.shipping_address.model_dump() == {
        "name": "José Núñez",
        "line1": "350 Fifth Avenue",
        "line2": "Suite 4100",
        "city": "New York",
        "region": "NY",
        "postal_code": "10118",
        "country": "US",
    }
    assert order.billing_address == order.shipping_address
    assert event.state is ChannelState.PAID


def test_orders_create__line_discounts_come_from_allocations_and_are_not_counted_twice():
    order = snapshot("orders/create", "orders_create_usd_discount").order
    sweater, mug = order.lines
    assert (sweater.line_id, sweater.sku, sweater.title) == (
        "13950124310580",
        "MCS-CHR-M",
        "Merino Crew Sweater - Charcoal / M",
    )
    assert (sweater.quantity, sweater.unit_price, sweater.discount) == (2, Decimal("89.00"), Decimal("17.80"))
    assert (sweater.tax, sweater.total) == (Decimal("14.22"), Decimal("160.20"))
    assert (mug.title, mug.discount, mug.tax, mug.total) == (
        "Café Crème Mug",
        Decimal("1.85"),
        Decimal("1.48"),
        Decimal("16.65"),
    )
    # total_discounts (19.65) is exactly the line allocations: no order-level discount on top.
    assert order.totals.model_dump() == {
        "subtotal": Decimal("176.85"),
        "discount": Decimal("0.00"),
        "shipping": Decimal("7.95"),
        "tax": Decimal("15.70"),
        "total": Decimal("200.50"),
        "taxes_included": False,
    }
    assert totals_issues(order) == []


def test_orders_create__payment_as_shopify_reports_it():
    payment = snapshot("orders/create", "orders_create_usd_discount").order.payment
    assert (payment.source, payment.status) == ("shopify_payments", "paid")
    assert (payment.amount_authorized, payment.amount_captured, payment.amount_refunded) == (
        Decimal("200.50"),
        Decimal("200.50"),
        Decimal("0.00"),
    )


def test_orders_paid__jpy_has_no_minor_units_and_keeps_japanese_names():
    event = snapshot("orders/paid", "orders_paid_jpy", "kissaten-tokyo.myshopify.com")
    order = event.order
    assert event.state is ChannelState.PAID
    assert order.currency == "JPY"
    assert [line.unit_price for line in order.lines] == [Decimal("2800"), Decimal("2200")]
    assert order.lines[0].title == "抹茶 (Matcha) 30g - Ceremonial"
    assert order.totals.model_dump() == {
        "subtotal": Decimal("7800"),
        "discount": Decimal("0"),
        "shipping": Decimal("800"),
        "tax": Decimal("860"),
        "total": Decimal("9460"),
        "taxes_included": False,
    }
    assert order.to_json()["totals"]["total"] == "9460"
    assert order.to_json()["payment"]["amount_captured"] == "9460"
    assert order.customer.name == "花子 山田"
    assert order.customer.phone == "03-5555-0123"  # no order or customer phone: the address's
    assert order.shipping_address is not None
    assert (order.shipping_address.name, order.shipping_address.region) == ("山田 花子", "JP-13")
    assert (order.shipping_address.city, order.shipping_address.line2) == ("渋谷区", "原宿ビル4F")
    assert totals_issues(order) == []


def test_orders_updated__several_shipping_lines_and_a_shipping_discount():
    event = snapshot("orders/updated", "orders_updated_eur_two_shipping_lines", "atelier-noir.myshopify.com")
    order = event.order
    assert event.state is ChannelState.PARTIALLY_FULFILLED
    assert [line.discount for line in order.lines] == [Decimal("2.57"), Decimal("7.43")]
    # Shipping is taken before discounts; the free-shipping allocation is the order-level discount.
    assert order.totals.model_dump() == {
        "subtotal": Decimal("163.70"),
        "discount": Decimal("5.90"),
        "shipping": Decimal("17.90"),
        "tax": Decimal("31.10"),
        "total": Decimal("206.80"),
        "taxes_included": False,
    }
    assert totals_issues(order) == []
    assert order.payment.source == "paypal"
    assert order.customer.name == "Jürgen Groß"
    assert order.billing_address is not None and order.billing_address.line2 is None  # "" is no line


def test_orders_updated__partially_refunded_counts_successful_refund_transactions():
    event = snapshot("orders/updated", "orders_updated_partially_refunded")
    assert event.state is ChannelState.PARTIALLY_REFUNDED
    payment = event.order.payment
    assert (payment.amount_captured, payment.amount_refunded) == (Decimal("103.75"), Decimal("25.50"))
    # Lines keep their ordered quantity: the refund is an event on the order, not a changed order.
    assert [line.quantity for line in event.order.lines] == [1, 1]


def test_orders_cancelled__cancelled_wins_and_a_voided_payment_holds_no_money():
    event = snapshot("orders/cancelled", "orders_cancelled_voided")
    assert event.state is ChannelState.CANCELLED
    payment = event.order.payment
    assert payment.status == "voided"
    assert (payment.amount_authorized, payment.amount_captured) == (Decimal("0.00"), Decimal("0.00"))
    assert event.order.customer.phone == "+14155550188"


def test_orders_fulfilled__tax_included_order_adds_up_without_adding_the_tax_again():
    event = snapshot("orders/fulfilled", "orders_fulfilled_gbp_taxes_included", "tote-co.myshopify.com")
    order = event.order
    assert event.state is ChannelState.FULFILLED
    assert order.totals.total == Decimal("57.99")
    assert order.totals.tax == Decimal("9.67")
    assert order.customer.name == "Siobhán O'Connor"
    assert order.billing_address is None
    assert order.totals.taxes_included is True
    assert totals_issues(order) == []


def test_orders_create__tolerates_no_customer_addresses_shipping_or_discounts():
    event = snapshot("orders/create", "orders_create_minimal", "north-pos.myshopify.com")
    order = event.order
    assert event.state is ChannelState.OPEN
    assert order.customer.model_dump() == {"email": None, "name": None, "phone": None}
    assert (order.shipping_address, order.billing_address) == (None, None)
    assert order.lines[0].sku is None
    assert order.lines[0].title == "Gift Card"
    assert order.totals.shipping == Decimal("0.00")
    assert order.totals.discount == Decimal("0.00")
    payment = order.payment
    assert (payment.source, payment.status) == ("manual", "pending")
    assert (payment.amount_authorized, payment.amount_captured) == (Decimal("0.00"), Decimal("0.00"))


@pytest.mark.parametrize(
    ("financial", "fulfillment", "cancelled_at", "state"),
    [
        ("paid", None, "2026-11-21T10:00:00Z", ChannelState.CANCELLED),
        ("refunded", "fulfilled", None, ChannelState.REFUNDED),
        ("partially_refunded", "fulfilled", None, ChannelState.PARTIALLY_REFUNDED),
        ("paid", "fulfilled", None, ChannelState.FULFILLED),
        ("paid", "partial", None, ChannelState.PARTIALLY_FULFILLED),
        ("paid", None, None, ChannelState.PAID),
        ("authorized", None, None, ChannelState.AUTHORIZED),
        ("partially_paid", None, None, ChannelState.OPEN),
        ("pending", None, None, ChannelState.OPEN),
        (None, None, None, ChannelState.OPEN),
    ],
)
def test_channel_state__precedence(financial, fulfillment, cancelled_at, state):
    payload = fixture("orders_create_minimal")
    payload.update(financial_status=financial, fulfillment_status=fulfillment, cancelled_at=cancelled_at)
    assert parse_shopify("orders/updated", payload, SHOP).state is state


def test_orders__a_refunded_body_without_refund_details_counts_everything_captured_as_refunded():
    payload = fixture("orders_create_usd_discount")
    payload["financial_status"] = "refunded"
    payment = parse_shopify("orders/updated", payload, SHOP).order.payment
    assert payment.amount_refunded == payment.amount_captured == Decimal("200.50")


def test_orders__a_discount_without_allocations_stays_order_level():
    payload = fixture("orders_create_usd_discount")
    for item in payload["line_items"]:
        item["discount_allocations"] = []  # as orders from before allocations existed
    totals = parse_shopify("orders/updated", payload, SHOP).order.totals
    assert (totals.subtotal, totals.discount) == (Decimal("196.50"), Decimal("19.65"))


def test_orders__keeps_shopifys_own_total_even_when_it_disagrees():
    payload = fixture("orders_create_usd_discount")
    payload["total_price"] = "199.99"
    order = parse_shopify("orders/create", payload, SHOP).order
    assert order.totals.total == Decimal("199.99")
    assert totals_issues(order)


def test_orders__a_rest_answer_wrapper_is_accepted():
    wrapped = {"order": fixture("orders_paid_jpy")}
    event = parse_shopify("orders/updated", wrapped, "kissaten-tokyo.myshopify.com")
    assert isinstance(event, OrderSnapshot) and event.order.external_id == "6120458793011"


def _without(path: str) -> dict:
    payload = fixture("orders_create_usd_discount")
    *parents, last = path.split(".")
    target = payload
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    del target[last]
    return payload


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_without("id"), "missing required field 'id'"),
        (_without("currency"), "missing required field 'currency'"),
        (_without("created_at"), "missing required field 'created_at'"),
        (_without("updated_at"), "missing required field 'updated_at'"),
        (_without("line_items"), "missing required field 'line_items'"),
        (_without("total_price"), "missing required field 'total_price'"),
        (_without("line_items.1.price"), r"line_items\[1\]: missing required field 'price'"),
        (_without("line_items.0.quantity"), r"line_items\[0\]: missing required field 'quantity'"),
        ({**fixture("orders_create_minimal"), "currency": "DOLLARS"}, "not an ISO 4217 currency"),
        ({**fixture("orders_create_minimal"), "updated_at": "2026-11-22T07:15:00"}, "without a time zone"),
        ({**fixture("orders_create_minimal"), "updated_at": "yesterday"}, "not an ISO 8601 timestamp"),
        ({**fixture("orders_create_minimal"), "total_price": "fifty"}, "total_price: not an amount"),
        ({**fixture("orders_create_minimal"), "line_items": {"id": 1}}, "line_items is not a list"),
    ],
)
def test_orders__bad_payloads_raise_invalid_input_naming_the_field(payload, message):
    with pytest.raises(InvalidInput, match=message):
        parse_shopify("orders/create", payload, SHOP)


def test_orders__a_float_amount_is_read_as_the_literal_sent():
    payload = fixture("orders_create_minimal")
    payload["line_items"][0]["price"] = 50.1
    assert parse_shopify("orders/create", payload, SHOP).order.lines[0].unit_price == Decimal("50.10")


def test_parse__unknown_topic_missing_store_and_non_object_body_are_invalid():
    with pytest.raises(InvalidInput, match="unsupported topic 'products/update'"):
        parse_shopify("products/update", fixture("orders_create_minimal"), SHOP)
    with pytest.raises(InvalidInput, match="shop domain"):
        parse_shopify("orders/create", fixture("orders_create_minimal"), "")
    with pytest.raises(InvalidInput, match="not a JSON object"):
        parse_shopify("orders/create", [1, 2], SHOP)  # type: ignore[arg-type]


# --- refunds/create -----------------------------------------------------------------------------------


def test_refunds_create__a_partial_refund_counts_only_successful_refund_transactions():
    event = parse_shopify("refunds/create", fixture("refunds_create_partial"), SHOP)
    assert isinstance(event, RefundNotice)
    assert event == RefundNotice(
        channel="shopify",
        store=SHOP,
        external_order_id="5912811100456",
        refund_id="998877665544",
        amount=Decimal("25.50"),
        currency="USD",
        created_at=datetime(2026, 11, 22, 20, 20, 40, tzinfo=UTC),
        line_ids=("14011223377324",),
        reason="wrong size — exchanged for M",
    )
    # The refunded line is one of the order's canonical line ids.
    order = snapshot("orders/updated", "orders_updated_partially_refunded").order
    assert set(event.line_ids) <= {line.line_id for line in order.lines}


def test_refunds_create__without_transactions_falls_back_to_line_subtotal_and_tax():
    payload = fixture("refunds_create_partial")
    payload["transactions"] = []
    event = parse_shopify("refunds/create", payload, SHOP)
    assert isinstance(event, RefundNotice)
    assert (event.amount, event.currency) == (Decimal("25.50"), "USD")


def test_refunds_create__fallback_reads_json_numbers_exactly_when_no_money_sets():
    payload = fixture("refunds_create_partial")
    payload["transactions"] = []
    for item in payload["refund_line_items"]:
        del item["subtotal_set"], item["total_tax_set"]
    item = payload["refund_line_items"][0]
    item["subtotal"], item["total_tax"] = 19.99, 1.25
    event = parse_shopify("refunds/create", payload, SHOP)
    assert isinstance(event, RefundNotice)
    assert (event.amount, event.currency) == (Decimal("21.24"), None)


def test_refunds_create__amount_only_refund_has_no_lines_and_jpy_amounts_stay_whole():
    payload = copy.deepcopy(fixture("refunds_create_partial"))
    payload["refund_line_items"] = []
    payload["note"] = None
    payload["transactions"] = [{**payload["transactions"][1], "amount": "1500", "currency": "JPY"}]
    event = parse_shopify("refunds/create", payload, "kissaten-tokyo.myshopify.com")
    assert isinstance(event, RefundNotice)
    assert (event.amount, event.currency, event.line_ids, event.reason) == (Decimal("1500"), "JPY", (), None)


@pytest.mark.parametrize("field", ["id", "order_id", "created_at"])
def test_refunds_create__missing_required_fields_are_invalid(field):
    payload = fixture("refunds_create_partial")
    del payload[field]
    with pytest.raises(InvalidInput, match=f"refunds/create: missing required field '{field}'"):
        parse_shopify("refunds/create", payload, SHOP)


def test_refunds_create__transactions_in_two_currencies_are_invalid():
    payload = fixture("refunds_create_partial")
    payload["transactions"][0]["currency"] = "CAD"
    with pytest.raises(InvalidInput, match="several currencies"):
        parse_shopify("refunds/create", payload, SHOP)
