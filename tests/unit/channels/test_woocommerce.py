"""The WooCommerce adapter: signature and ping checks, and REST v3 orders normalised into snapshots."""

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from chalicelib.domain.channel_events import ChannelState
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.order import derive_order_id
from chalicelib.domain.totals import totals_issues
from chalicelib.integrations.woocommerce.webhook import (
    TOPICS,
    OrderFetchRequired,
    bare_deletion_id,
    is_ping,
    parse_woocommerce,
    verify_wc_signature,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "woocommerce"
STORE = "https://shop.example/"
SECRET = "wc-secret-4f7b2c"


def load(name):
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def raw(name):
    """The fixture as WooCommerce puts it on the wire: compact wp_json_encode output."""
    return json.dumps(load(name), separators=(",", ":")).replace("/", "\\/").encode()


def figures(model, *names):
    """Several amounts of a line or totals as exact decimal strings, for compact comparisons."""
    return tuple(f"{getattr(model, name):f}" for name in names)


def sign(body, secret=SECRET):
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


# ----- signature -------------------------------------------------------------------------------------


def test_verify__accepts_base64_hmac_sha256_of_the_exact_body():
    body = raw("order_created_usd")
    assert verify_wc_signature(SECRET, body, sign(body))


def test_verify__rejects_a_hex_digest():
    body = raw("order_created_usd")
    hex_digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert not verify_wc_signature(SECRET, body, hex_digest)


def test_verify__rejects_a_reserialised_body():
    # GIVEN a signature over the bytes WooCommerce sent
    body = raw("order_created_usd")
    header = sign(body)
    # WHEN a framework re-encodes the parsed JSON (unescaped slashes, spaces, raw UTF-8)
    reserialised = json.dumps(json.loads(body), ensure_ascii=False).encode()
    # THEN the signature no longer matches
    assert reserialised != body
    assert not verify_wc_signature(SECRET, reserialised, header)


def test_verify__rejects_the_wrong_secret_a_tampered_body_and_an_empty_body():
    body = raw("order_created_usd")
    assert not verify_wc_signature("another-secret", body, sign(body))
    assert not verify_wc_signature(SECRET, body.replace(b"53.97", b"0.01"), sign(body))
    assert not verify_wc_signature(SECRET, b"", sign(b""))


@pytest.mark.parametrize("header", [None, "", "   ", "not base64 at all", "é" * 44])
def test_verify__rejects_a_missing_or_malformed_header(header):
    assert not verify_wc_signature(SECRET, raw("order_created_usd"), header)


def test_verify__rejects_everything_when_no_secret_is_configured():
    body = raw("order_created_usd")
    assert not verify_wc_signature("", body, sign(body, ""))


def test_verify__accepts_a_secret_copied_in_its_html_escaped_stored_form():
    # WooCommerce signs with wp_specialchars_decode(stored secret): "a&amp;b" signs as "a&b".
    body = raw("order_created_usd")
    assert verify_wc_signature("a&b<c>", body, sign(body, "a&b<c>"))
    assert verify_wc_signature("a&amp;b&lt;c&gt;", body, sign(body, "a&b<c>"))


# ----- creation ping ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8", None],
)
def test_is_ping__recognises_the_form_encoded_creation_ping(content_type):
    assert is_ping(content_type, b"webhook_id=17") == 17


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"webhook_id=17"),
        ("application/x-www-form-urlencoded", b'{"webhook_id": 17}'),
        ("application/x-www-form-urlencoded", b"webhook_id=abc"),
        ("application/x-www-form-urlencoded", b"webhook_id=0"),
        ("application/x-www-form-urlencoded", b"webhook_id=17&topic=order.created"),
        ("application/x-www-form-urlencoded", b""),
        ("application/x-www-form-urlencoded", b"webhook_id=" + b"1" * 100),
    ],
)
def test_is_ping__ignores_anything_else(content_type, body):
    assert is_ping(content_type, body) is None


def test_is_ping__never_mistakes_an_order_delivery_for_a_ping():
    assert is_ping("application/json", raw("order_created_usd")) is None


# ----- every topic --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "fixture", "state"),
    [
        ("order.created", "order_created_usd", ChannelState.PAID),
        ("order.updated", "order_updated_coupon_shipping_eur", ChannelState.FULFILLED),
        ("order.updated", "order_updated_partial_refund_gbp", ChannelState.PARTIALLY_REFUNDED),
        ("order.deleted", "order_trashed", ChannelState.DELETED),
        ("order.restored", "order_restored", ChannelState.OPEN),
    ],
)
def test_parse__every_topic_gives_a_snapshot_whose_figures_add_up(topic, fixture, state):
    snapshot = parse_woocommerce(topic, load(fixture), STORE)
    assert topic in TOPICS
    assert snapshot.state is state
    assert snapshot.order.channel == "woocommerce"
    assert totals_issues(snapshot.order) == []


def test_parse__created_order_maps_every_channel_owned_field():
    order = parse_woocommerce("order.created", load("order_created_usd"), STORE).order
    assert order.order_id == derive_order_id("woocommerce", STORE, "5120")
    assert (order.store, order.external_id, order.external_number) == (STORE, "5120", "5120")
    assert order.currency == "USD"
    # *_gmt fields are UTC; the plain ones are the site's local time (UTC-3 here) and must not be used.
    assert order.placed_at == datetime(2026, 11, 20, 14, 15, 42, tzinfo=UTC)
    assert order.updated_at == datetime(2026, 11, 20, 14, 15, 44, tzinfo=UTC)
    assert order.customer.model_dump() == {
        "email": "chloe.nguyen@example.com",
        "name": "Chloé Nguyen",
        "phone": "(415) 555-0142",
    }
    assert order.shipping_address is not None
    assert order.shipping_address.model_dump() == {
        "name": "Chloé Nguyen",
        "line1": "969 Market",
        "line2": "Suite 400",
        "city": "San Francisco",
        "region": "CA",
        "postal_code": "94103",
        "country": "US",
    }
    mug, idea = order.lines
    assert (mug.line_id, mug.sku, mug.title, mug.quantity) == ("801", "MUG-CAFE", "Café Crème Mug", 2)
    assert figures(mug, "unit_price", "discount", "tax", "total") == ("14.50", "0.00", "2.10", "29.00")
    assert idea.title == "Ship Your Idea – Color: Black, Size: M"  # WordPress's &ndash; decoded
    assert order.totals.model_dump(mode="json") == {
        "subtotal": "41.00",
        "discount": "0.00",
        "shipping": "10.00",
        "tax": "2.97",
        "total": "53.97",
        "taxes_included": False,
    }
    assert order.payment.model_dump(mode="json") == {
        "source": "stripe",
        "status": "paid",
        "amount_authorized": "53.97",
        "amount_captured": "53.97",
        "amount_refunded": "0.00",
        "reference": "pi_3QxK2LExample0001",
        "credits": [],
    }
    assert order.history == [] and order.shipments == []  # hub-owned fields are left alone


def test_parse__never_reads_the_float_price():
    payload = load("order_created_usd")
    payload["line_items"][0]["price"] = 99.999  # deliberately wrong: only subtotal / quantity counts
    assert parse_woocommerce("order.created", payload, STORE).order.lines[0].unit_price == Decimal("14.50")


# ----- discounts, shipping, currencies ----------------------------------------------------------------------


def test_parse__coupon_discount_is_kept_in_the_lines_and_not_counted_again():
    order = parse_woocommerce("order.updated", load("order_updated_coupon_shipping_eur"), STORE).order
    hoodie, mugs = order.lines
    assert figures(hoodie, "unit_price", "discount", "total") == ("35.29", "3.53", "31.76")
    assert figures(mugs, "unit_price", "discount", "total") == ("11.68", "2.33", "21.03")
    # discount_total 5.86 == Σ(line subtotal − line total): nothing is left at order level
    assert order.totals.discount == Decimal("0.00")
    assert order.totals.subtotal == Decimal("52.79")
    assert totals_issues(order) == []


def test_parse__a_discount_beyond_the_lines_is_an_order_level_discount():
    payload = load("order_created_usd")
    payload["discount_total"] = "5.00"
    payload["total"] = "48.97"
    order = parse_woocommerce("order.updated", payload, STORE).order
    assert order.totals.discount == Decimal("5.00")
    assert totals_issues(order) == []


def test_parse__several_shipping_lines_are_summed():
    order = parse_woocommerce("order.updated", load("order_updated_coupon_shipping_eur"), STORE).order
    assert order.totals.shipping == Decimal("14.80")  # 4.90 flat rate + 9.90 express
    assert order.totals.tax == Decimal("12.84")  # total_tax includes the shipping tax
    assert order.totals.total == Decimal("80.43")


def test_parse__jpy_has_no_minor_units():
    order = parse_woocommerce("order.created", load("order_created_jpy"), STORE).order
    assert order.currency == "JPY"
    assert [line.unit_price for line in order.lines] == [Decimal("3000"), Decimal("1364")]
    assert order.totals.model_dump(mode="json")["total"] == "8870"
    assert order.lines[1].sku is None  # WooCommerce sends "" for a product without SKU


def test_parse__jpy_from_a_store_set_to_two_decimals_still_has_none():
    payload = load("order_created_jpy")
    payload["total"] = "8870.00"
    payload["line_items"][0]["subtotal"] = payload["line_items"][0]["total"] = "6000.00"
    order = parse_woocommerce("order.created", payload, STORE).order
    assert order.totals.model_dump(mode="json")["total"] == "8870"
    assert order.lines[0].model_dump(mode="json")["unit_price"] == "3000"


def test_parse__a_vat_inclusive_unit_price_is_rounded_up_and_the_line_keeps_woocommerces_total():
    # £10.00 incl. 20% VAT × 3 is 25.00 excl. VAT: 8.333… per unit is no whole number of pence.
    order = parse_woocommerce("order.updated", load("order_updated_partial_refund_gbp"), STORE).order
    mugs = order.lines[0]
    assert mugs.quantity == 3
    assert figures(mugs, "unit_price", "discount", "total") == ("8.34", "0.02", "25.00")
    assert totals_issues(order) == []


def test_parse__fees_become_lines_of_their_own_so_the_total_adds_up():
    payload = load("order_created_usd")
    payload["fee_lines"] = [
        {"id": 805, "name": "Gift wrapping", "tax_class": "", "tax_status": "taxable", "amount": "4",
         "total": "4.00", "total_tax": "0.29", "taxes": [], "meta_data": []}
    ]  # fmt: skip
    payload["total_tax"] = payload["cart_tax"] = "3.26"
    payload["total"] = "58.26"
    order = parse_woocommerce("order.updated", payload, STORE).order
    fee = order.lines[-1]
    assert (fee.line_id, fee.sku, fee.title, fee.quantity) == ("fee-805", None, "Gift wrapping", 1)
    assert figures(fee, "unit_price", "tax", "total") == ("4.00", "0.29", "4.00")
    assert totals_issues(order) == []


def test_parse__keeps_woocommerces_total_even_when_it_does_not_add_up():
    payload = load("order_created_usd")
    payload["total"] = "60.00"
    order = parse_woocommerce("order.updated", payload, STORE).order
    assert order.totals.total == Decimal("60.00")
    assert totals_issues(order)  # flagged by validation, not hidden here


# ----- refunds (no refund topic: they arrive as order.updated) ----------------------------------------


def test_parse__a_partial_refund_arrives_as_order_updated_with_negative_refund_totals():
    snapshot = parse_woocommerce("order.updated", load("order_updated_partial_refund_gbp"), STORE)
    assert snapshot.state is ChannelState.PARTIALLY_REFUNDED
    payment = snapshot.order.payment
    assert payment.status == "partially_refunded"
    assert figures(payment, "amount_captured", "amount_refunded") == ("42.74", "10.00")


def test_parse__several_refunds_are_summed_and_reaching_the_total_is_a_full_refund():
    payload = load("order_updated_partial_refund_gbp")
    payload["refunds"].insert(0, {"id": 5155, "reason": "", "total": "-32.74"})
    snapshot = parse_woocommerce("order.updated", payload, STORE)
    assert snapshot.order.payment.amount_refunded == Decimal("42.74")
    assert snapshot.state is ChannelState.REFUNDED  # even before WooCommerce flips the status
    assert snapshot.order.payment.status == "refunded"


# ----- statuses -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "paid", "state", "payment_status"),
    [
        ("pending", False, ChannelState.OPEN, "pending"),
        ("on-hold", False, ChannelState.OPEN, "pending"),
        ("processing", True, ChannelState.PAID, "paid"),
        ("completed", True, ChannelState.FULFILLED, "paid"),
        ("cancelled", False, ChannelState.CANCELLED, "voided"),
        ("cancelled", True, ChannelState.CANCELLED, "paid"),
        ("failed", False, ChannelState.OPEN, "failed"),
        ("refunded", True, ChannelState.REFUNDED, "refunded"),
        ("trash", False, ChannelState.DELETED, "pending"),
        ("wc-processing", True, ChannelState.PAID, "paid"),
        ("shipped", True, ChannelState.PAID, "paid"),  # a plugin's own status, judged by payment
        ("awaiting-quote", False, ChannelState.OPEN, "pending"),
    ],
)
def test_parse__status_maps_to_channel_state(status, paid, state, payment_status):
    payload = load("order_created_jpy")
    payload["status"] = status
    payload["date_paid_gmt"] = "2026-11-23T09:50:00" if paid else None
    snapshot = parse_woocommerce("order.updated", payload, STORE)
    assert snapshot.state is state
    assert snapshot.order.payment.status == payment_status
    assert snapshot.order.payment.amount_captured == (Decimal("8870") if paid else 0)


# ----- order.deleted -------------------------------------------------------------------------------------


def test_parse__core_order_deleted_carries_only_the_id_so_the_order_must_be_fetched():
    payload = load("order_deleted")
    assert bare_deletion_id("order.deleted", payload) == "5131"
    assert bare_deletion_id("order.updated", payload) is None
    assert bare_deletion_id("order.deleted", load("order_trashed")) is None
    with pytest.raises(OrderFetchRequired) as raised:
        parse_woocommerce("order.deleted", payload, STORE)
    assert raised.value.external_id == "5131"
    assert isinstance(raised.value, InvalidInput)  # unaware callers park it rather than drop it


def test_parse__a_fetched_trashed_order_is_deleted_and_its_restore_is_newer():
    deleted = parse_woocommerce("order.updated", load("order_trashed"), STORE)
    restored = parse_woocommerce("order.restored", load("order_restored"), STORE)
    assert deleted.state is ChannelState.DELETED
    assert restored.state is ChannelState.OPEN
    assert restored.order.updated_at > deleted.order.updated_at
    assert restored.order.order_id == deleted.order.order_id


# ----- tolerance and refusal --------------------------------------------------------------------------


def test_parse__tolerates_missing_optional_fields():
    order = parse_woocommerce("order.created", load("order_minimal"), STORE).order
    assert order.currency == "EUR"
    assert order.external_number == "5181"  # no number: the id is the number
    assert order.customer.model_dump() == {"email": None, "name": "Ødegård", "phone": None}
    assert order.shipping_address is None
    assert order.billing_address is not None and order.billing_address.name == "Ødegård"
    (line,) = order.lines
    assert line.sku is None
    assert figures(line, "unit_price", "discount", "total") == ("19.90", "0.00", "19.90")
    assert order.totals.shipping == order.totals.tax == order.totals.discount == Decimal("0.00")
    assert order.payment.source is None and order.payment.reference is None
    assert totals_issues(order) == []


def test_parse__an_address_of_empty_strings_is_no_address():
    order = parse_woocommerce("order.updated", load("order_trashed"), STORE).order
    assert order.shipping_address is None


def test_parse__keeps_non_ascii_names_and_addresses():
    order = parse_woocommerce("order.updated", load("order_updated_coupon_shipping_eur"), STORE).order
    assert order.customer.name == "Jürgen Weiß"
    assert order.billing_address is not None and order.billing_address.line1 == "Königstraße 12"
    assert order.shipping_address is not None
    assert (order.shipping_address.name, order.shipping_address.city) == ("Zoë Müller", "München")
    assert order.lines[0].title == "Hoodie – Größe L"
    japanese = parse_woocommerce("order.created", load("order_created_jpy"), STORE).order
    assert japanese.customer.name == "太郎 山田"
    assert japanese.lines[0].title == "抹茶 Matcha 100g"


@pytest.mark.parametrize(
    "field", ["id", "status", "currency", "date_created_gmt", "date_modified_gmt", "line_items", "total"]
)
def test_parse__a_missing_required_field_is_invalid_input(field):
    payload = load("order_created_usd")
    del payload[field]
    with pytest.raises(InvalidInput, match=field):
        parse_woocommerce("order.created", payload, STORE)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.update(total=53.97), "float"),
        (lambda p: p.update(currency="EURO"), "currency"),
        (lambda p: p.update(date_modified_gmt="yesterday"), "date_modified_gmt"),
        (lambda p: p["line_items"][0].update(quantity="two"), "quantity"),
        (lambda p: p["line_items"][0].pop("total"), "total"),
        (lambda p: p.update(refunds=[{"id": 1, "reason": ""}]), "total"),
        (lambda p: p.update(line_items={"801": {}}), "line_items"),
    ],
)
def test_parse__unusable_values_are_invalid_input_with_a_reason(mutate, message):
    payload = copy.deepcopy(load("order_created_usd"))
    mutate(payload)
    with pytest.raises(InvalidInput, match=message):
        parse_woocommerce("order.updated", payload, STORE)


def test_parse__refuses_topics_it_does_not_handle():
    with pytest.raises(InvalidInput, match="topic"):
        parse_woocommerce("product.updated", load("order_created_usd"), STORE)


def test_parse__the_same_order_from_two_stores_is_two_orders():
    payload = load("order_created_usd")
    first = parse_woocommerce("order.created", payload, STORE).order
    second = parse_woocommerce("order.created", payload, "https://other-shop.example/").order
    assert first.order_id != second.order_id
