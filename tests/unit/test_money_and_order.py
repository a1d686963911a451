from datetime import UTC, datetime
from decimal import Decimal

import pytest

from chalicelib.domain import money
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import derive_order_id


def test_to_amount__uses_each_currencys_minor_units():
    assert money.to_amount("12.5", "EUR") == Decimal("12.50")
    assert money.to_amount("1200", "JPY") == Decimal("1200")
    assert money.to_amount("1.2345", "KWD") == Decimal("1.234")  # banker's rounding at 3 places
    assert money.to_minor(Decimal("12.34"), "USD") == 1234
    assert money.to_minor(Decimal("500"), "JPY") == 500


@pytest.mark.parametrize("bad", [1.1, "abc", "NaN", "Infinity"])
def test_to_amount__rejects_floats_and_non_numbers(bad):
    with pytest.raises(money.MoneyError):
        money.to_amount(bad, "EUR")


def test_minor_units__rejects_non_iso_codes():
    with pytest.raises(money.MoneyError):
        money.minor_units("EURO")


def test_derive_order_id__is_stable_and_a_valid_execution_name():
    first = derive_order_id("shopify", "a.myshopify.com", "123")
    assert first == derive_order_id("shopify", "a.myshopify.com", "123")
    assert first != derive_order_id("shopify", "b.myshopify.com", "123")
    assert len(first) <= 80 and all(c.isalnum() or c in "_-" for c in first)


def _manual(**overrides):
    body = {
        "external_id": "M-1",
        "currency": "EUR",
        "placed_at": "2026-11-23T10:00:00+01:00",
        "lines": [
            {"title": "Mug", "quantity": 2, "unit_price": "12.50", "discount": "1", "tax": "4.56"},
            {"sku": "CAP", "title": "Cap", "quantity": 1, "unit_price": "19.95"},
        ],
        "totals": {"shipping": "4.90", "discount": "2"},
    }
    body.update(overrides)
    return body


def test_normalise_manual__computes_line_and_order_totals_exactly():
    order = normalise_manual(_manual())
    assert [line.total for line in order.lines] == [Decimal("24.00"), Decimal("19.95")]
    assert order.totals.subtotal == Decimal("43.95")
    assert order.totals.tax == Decimal("4.56")
    assert order.totals.total == Decimal("43.95") - 2 + Decimal("4.90") + Decimal("4.56")
    assert order.placed_at == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert order.updated_at == order.placed_at
    assert order.to_json()["totals"]["total"] == "51.41"
    assert order.to_json()["payment"]["amount_captured"] == "0.00"


def test_normalise_manual__keeps_the_channels_own_total_even_when_it_disagrees():
    order = normalise_manual(_manual(totals={"total": "99.99"}))
    assert order.totals.total == Decimal("99.99")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lines": []}, "lines"),
        ({"currency": "EURO"}, "currency"),
        ({"placed_at": "2026-11-23T10:00:00"}, "placed_at: Input should have timezone"),
        ({"lines": [{"title": "x", "quantity": 1, "unit_price": "ten"}]}, "not an amount"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_normalise_manual__rejects_bad_input_with_a_clear_message(change, message):
    with pytest.raises(InvalidInput, match=message):
        normalise_manual(_manual(**change))
