"""GIVEN SP-API notifications and getOrder/getOrderItems answers WHEN parsed THEN changes and orders."""

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from chalicelib.domain.channel_events import ChannelState
from chalicelib.domain.errors import InvalidInput, MalformedDelivery
from chalicelib.domain.order import derive_order_id
from chalicelib.domain.totals import totals_issues
from chalicelib.integrations.amazon.notifications import (
    normalise_amazon_order,
    parse_order_change_notification,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "amazon"
SELLER = "A2HUB7SELLER01"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def totals_json(**amounts: str) -> dict:
    """An order's totals as `to_json` writes them: Amazon's prices never include tax."""
    return {**amounts, "taxes_included": False}


def normalise(name: str, **order_changes):
    data = fixture(name)
    data["order"].update(order_changes)
    return normalise_amazon_order(data["order"], data["items"], SELLER)


# --- ORDER_CHANGE notifications ------------------------------------------------------------------


def test_parse_notification__order_change__names_the_order_to_fetch_and_the_dedup_key():
    change = parse_order_change_notification(fixture("order_change_notification.json"))

    assert change is not None
    assert change.notification_id == "0e6f1c9a-3b2d-4f7e-8a5c-9d1b2e3f4a56"
    assert change.seller_id == SELLER
    assert change.amazon_order_id == "113-4417782-9054627"
    assert change.marketplace_id == "ATVPDKIKX0DER"
    assert change.order_status == "Unshipped"
    assert change.change_type == "OrderStatusChange"
    assert change.change_reason == "Order status changed"
    assert change.event_time == datetime(2026, 11, 20, 9, 14, 3, 512000, tzinfo=UTC)


def test_parse_notification__buyer_requested_cancel__is_an_order_change_too():
    body = fixture("order_change_notification.json")
    change_notice = body["Payload"]["OrderChangeNotification"]
    change_notice["OrderChangeType"] = "BuyerRequestedChange"
    change_notice["OrderChangeTrigger"] = {
        "TimeOfOrderChange": None,
        "ChangeReason": "Buyer Requested Cancel",
    }

    change = parse_order_change_notification(body)

    assert change is not None and change.change_type == "BuyerRequestedChange"
    assert change.change_reason == "Buyer Requested Cancel"


def test_parse_notification__without_order_status__leaves_the_hint_empty():
    body = fixture("order_change_notification.json")
    del body["Payload"]["OrderChangeNotification"]["Summary"]["OrderStatus"]

    change = parse_order_change_notification(body)

    assert change is not None and change.order_status is None


def test_parse_notification__other_notification_type__is_none():
    assert parse_order_change_notification(fixture("feed_processing_finished_notification.json")) is None


@pytest.mark.parametrize(
    "path",
    [
        ("NotificationMetadata", "NotificationId"),
        ("Payload", "OrderChangeNotification", "SellerId"),
        ("Payload", "OrderChangeNotification", "AmazonOrderId"),
        ("Payload", "OrderChangeNotification", "Summary", "MarketplaceId"),
        ("Payload", "OrderChangeNotification", "Summary"),
        ("Payload", "OrderChangeNotification"),
        ("NotificationType",),
        ("EventTime",),
    ],
)
def test_parse_notification__missing_ids__is_malformed(path):
    body = fixture("order_change_notification.json")
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]

    with pytest.raises(MalformedDelivery):
        parse_order_change_notification(body)


@pytest.mark.parametrize("body", [[], "ORDER_CHANGE", None])
def test_parse_notification__not_an_object__is_malformed(body):
    with pytest.raises(MalformedDelivery):
        parse_order_change_notification(body)


def test_parse_notification__blank_order_id_or_bad_event_time__is_malformed():
    blank = fixture("order_change_notification.json")
    blank["Payload"]["OrderChangeNotification"]["AmazonOrderId"] = "  "
    bad_time = fixture("order_change_notification.json")
    bad_time["EventTime"] = "yesterday"

    for body in (blank, bad_time):
        with pytest.raises(MalformedDelivery):
            parse_order_change_notification(body)


# --- normalisation ---------------------------------------------------------------------------------


def test_normalise__us_order_with_several_items__keeps_amazons_figures_and_they_add_up():
    snapshot = normalise("order_us_unshipped.json")
    order = snapshot.order

    assert snapshot.state is ChannelState.PAID
    assert order.order_id == derive_order_id("amazon", SELLER, "113-4417782-9054627")
    assert (order.channel, order.store) == ("amazon", SELLER)
    assert order.external_id == order.external_number == "113-4417782-9054627"
    assert order.currency == "USD"
    assert order.placed_at == datetime(2026, 11, 20, 9, 2, 41, tzinfo=UTC)
    assert order.updated_at == datetime(2026, 11, 20, 9, 13, 58, tzinfo=UTC)
    tamper, mug, filters = order.lines
    # ItemPrice is the price of the whole quantity: 2 × 24.99.
    assert (tamper.line_id, tamper.sku, tamper.quantity) == ("48120356671842", "TMP-ESP-58", 2)
    assert (tamper.unit_price, tamper.discount, tamper.total) == (
        Decimal("24.99"),
        Decimal("5.00"),
        Decimal("44.98"),
    )
    assert tamper.tax == Decimal("3.71")  # ItemTax 4.12 less PromotionDiscountTax 0.41
    assert (mug.unit_price, mug.total, mug.tax) == (Decimal("14.50"), Decimal("14.50"), Decimal("1.20"))
    assert (filters.unit_price, filters.quantity, filters.total) == (Decimal("6.49"), 3, Decimal("19.47"))
    totals = order.to_json()["totals"]
    # Free shipping: ShippingPrice 5.99 less ShippingDiscount 5.99, and its tax likewise.
    assert totals == totals_json(
        subtotal="78.95", discount="0.00", shipping="0.00", tax="6.52", total="85.47"
    )
    assert totals_issues(order) == []


def test_normalise__us_order__customer_address_and_payment_collected_by_amazon():
    order = normalise("order_us_unshipped.json").order

    assert order.customer.email == "k3j9x2m7q1v8zt4@marketplace.amazon.com"
    assert order.customer.name == "Zoë Bergström"
    assert order.customer.phone == "+1 503-555-0142"
    address = order.shipping_address
    assert address is not None
    assert (address.name, address.line1, address.line2) == ("Zoë Bergström", "1200 SW Morrison St", "Apt 4B")
    assert (address.city, address.region, address.postal_code, address.country) == (
        "Portland",
        "OR",
        "97205-2215",
        "US",
    )
    assert order.billing_address is None
    payment = order.to_json()["payment"]
    assert payment["source"] == "amazon" and payment["status"] == "captured"
    assert payment["amount_captured"] == payment["amount_authorized"] == "85.47"
    assert payment["amount_refunded"] == "0.00"


def test_normalise__jpy_marketplace__whole_yen_and_japanese_names():
    snapshot = normalise("order_jp_shipped.json")
    order = snapshot.order

    assert snapshot.state is ChannelState.FULFILLED
    assert order.currency == "JPY"
    mug, mill = order.lines
    assert (mug.unit_price, mug.discount, mug.total) == (Decimal("1980"), Decimal("396"), Decimal("3564"))
    assert (mill.title, mill.unit_price) == ("手挽きコーヒーミル セラミック刃", Decimal("5480"))
    data = order.to_json()
    assert data["totals"] == totals_json(subtotal="9044", discount="0", shipping="500", tax="0", total="9544")
    assert data["lines"][0]["unit_price"] == "1980"
    assert data["payment"]["amount_captured"] == "9544"
    assert order.customer.name == "山田 太郎"
    assert order.shipping_address is not None
    assert order.shipping_address.line2 == "渋谷ヒカリエ 10F"  # AddressLine2 and AddressLine3 joined
    assert (order.shipping_address.region, order.shipping_address.city) == ("東京都", "渋谷区")
    assert totals_issues(order) == []


def test_normalise__pending_order_without_order_total__currency_from_items_and_total_computed():
    snapshot = normalise("order_de_pending.json")
    order = snapshot.order

    assert snapshot.state is ChannelState.OPEN
    assert order.currency == "EUR"
    data = order.to_json()
    assert data["totals"] == totals_json(
        subtotal="62.99", discount="0.00", shipping="4.99", tax="0.00", total="67.98"
    )
    # Amazon shows neither buyer nor address before payment clears.
    assert order.customer.email is None and order.customer.name is None
    assert order.shipping_address is None
    assert data["payment"]["status"] == "pending" and data["payment"]["amount_captured"] == "0.00"
    assert order.lines[1].title == "Glaskaraffe für Pour-Over, 600 ml"
    assert order.lines[1].unit_price == Decimal("22.50")


def test_normalise__pending_order_without_any_amounts__currency_from_the_marketplace():
    data = fixture("order_de_pending.json")
    for item in data["items"]:
        for key in ("ItemPrice", "ItemTax", "ShippingPrice", "ShippingTax"):
            item.pop(key, None)

    order = normalise_amazon_order(data["order"], data["items"], SELLER).order

    assert order.currency == "EUR"
    assert order.totals.total == Decimal("0.00")


def test_normalise__canceled_order_without_pii__tolerated_and_money_not_collected():
    snapshot = normalise("order_us_canceled_no_pii.json")
    order = snapshot.order

    assert snapshot.state is ChannelState.CANCELLED
    assert (order.customer.email, order.customer.name, order.customer.phone) == (None, None, None)
    address = order.shipping_address
    assert address is not None
    assert (address.name, address.line1, address.city, address.postal_code) == (
        None,
        None,
        "AUSTIN",
        "78701-1234",
    )
    assert order.payment.status == "voided" and order.payment.amount_captured == Decimal("0.00")
    assert order.totals.total == Decimal("96.34")
    assert totals_issues(order) == []


FULL_ADDRESS = {
    "Name": "Renée O'Connor",
    "AddressLine1": "77 Atlantic Ave",
    "AddressLine2": "Unit 3",
    "AddressLine3": None,
    "City": "Brooklyn",
    "StateOrRegion": "NY",
    "PostalCode": "11201",
    "CountryCode": "US",
    "Phone": "+1 718-555-0199",
    "AddressType": "Residential",
}


def mfn_order_without_street():
    """order_us_unshipped as getOrder shows it without an RDT: only where the parcel goes."""
    data = fixture("order_us_unshipped.json")
    data["order"]["ShippingAddress"] = {"City": "Brooklyn", "StateOrRegion": "NY", "PostalCode": "11201",
                                        "CountryCode": "US"}  # fmt: skip
    data["order"]["BuyerInfo"] = {}
    return data


def test_normalise__full_address_from_get_order_address__is_the_shipping_address():
    data = mfn_order_without_street()

    order = normalise_amazon_order(data["order"], data["items"], SELLER, address=FULL_ADDRESS).order

    address = order.shipping_address
    assert address is not None
    assert (address.name, address.line1, address.line2, address.city, address.region) == (
        "Renée O'Connor",
        "77 Atlantic Ave",
        "Unit 3",
        "Brooklyn",
        "NY",
    )
    assert (address.postal_code, address.country) == ("11201", "US")
    assert (order.customer.name, order.customer.phone) == ("Renée O'Connor", "+1 718-555-0199")


def test_normalise__without_full_address__getorders_partial_address_as_before():
    data = mfn_order_without_street()

    for address in (None, {}):
        order = normalise_amazon_order(data["order"], data["items"], SELLER, address).order

        assert order.shipping_address is not None
        assert (order.shipping_address.line1, order.shipping_address.name) == (None, None)
        assert order.shipping_address.city == "Brooklyn"
        assert (order.customer.name, order.customer.phone) == (None, None)


def test_normalise__full_address_for_an_order_getorder_showed_no_address__still_used():
    data = fixture("order_us_unshipped.json")
    del data["order"]["ShippingAddress"]

    order = normalise_amazon_order(data["order"], data["items"], SELLER, FULL_ADDRESS).order

    assert order.shipping_address is not None and order.shipping_address.line1 == "77 Atlantic Ave"


def test_normalise__full_address__does_not_modify_its_inputs():
    data = mfn_order_without_street()
    before, address = copy.deepcopy(data), copy.deepcopy(FULL_ADDRESS)

    normalise_amazon_order(data["order"], data["items"], SELLER, address)

    assert data == before and address == FULL_ADDRESS


@pytest.mark.parametrize(
    ("status", "state", "payment"),
    [
        ("Pending", ChannelState.OPEN, "pending"),
        ("PendingAvailability", ChannelState.OPEN, "pending"),
        ("Unshipped", ChannelState.PAID, "captured"),
        ("PartiallyShipped", ChannelState.PARTIALLY_FULFILLED, "captured"),
        ("Shipped", ChannelState.FULFILLED, "captured"),
        ("InvoiceUnconfirmed", ChannelState.FULFILLED, "captured"),
        ("Canceled", ChannelState.CANCELLED, "voided"),
        ("Unfulfillable", ChannelState.CANCELLED, "voided"),
    ],
)
def test_normalise__every_order_status__maps_to_a_channel_state(status, state, payment):
    snapshot = normalise("order_us_unshipped.json", OrderStatus=status)

    assert snapshot.state is state
    assert snapshot.order.payment.status == payment


def test_normalise__price_not_divisible_by_quantity__amazons_line_total_kept_and_flagged():
    data = fixture("order_us_unshipped.json")
    item = data["items"][1]
    item["QuantityOrdered"], item["ItemPrice"]["Amount"] = 3, "10.00"

    order = normalise_amazon_order(data["order"], data["items"], SELLER).order

    line = order.lines[1]
    assert (line.unit_price, line.total) == (Decimal("3.33"), Decimal("10.00"))
    assert any(issue.startswith("line 48120356671843") for issue in totals_issues(order))


def test_normalise__does_not_modify_its_input():
    data = fixture("order_us_unshipped.json")
    before = copy.deepcopy(data)

    normalise_amazon_order(data["order"], data["items"], SELLER)

    assert data == before


@pytest.mark.parametrize("field", ["AmazonOrderId", "PurchaseDate", "LastUpdateDate", "OrderStatus"])
def test_normalise__missing_required_order_field__invalid_input_naming_it(field):
    data = fixture("order_us_unshipped.json")
    del data["order"][field]

    with pytest.raises(InvalidInput, match=field):
        normalise_amazon_order(data["order"], data["items"], SELLER)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["items"][0].pop("OrderItemId"), "OrderItemId"),
        (lambda d: d["items"][0].pop("QuantityOrdered"), "QuantityOrdered"),
        (lambda d: d["items"][0]["ItemPrice"].update(Amount=12.5), "float"),
        (lambda d: d["items"][0]["ItemTax"].update(CurrencyCode="CAD"), "CAD"),
        (lambda d: d["order"].update(OrderStatus="Teleported"), "Teleported"),
        (lambda d: d["order"].update(PurchaseDate="2026-11-20T09:02:41"), "time zone"),
        (lambda d: d.update(items=[]), "no items"),
    ],
)
def test_normalise__bad_input__invalid_input_with_a_clear_message(change, message):
    data = fixture("order_us_unshipped.json")
    change(data)

    with pytest.raises(InvalidInput, match=message):
        normalise_amazon_order(data["order"], data["items"], SELLER)
