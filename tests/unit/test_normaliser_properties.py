"""Property tests (hypothesis, bounded) of the four normalisers (issue #17): money exact, totals add up or
are flagged by `domain/totals.py`, and no payload (valid or broken) crashes one: a bad one is InvalidInput.

Valid payloads are the fixtures' channel shapes with every amount scaled by a random whole factor (the
figures' sums are linear, so what added up still adds up) and, sometimes, the channel's own total skewed by
a few minor units; manual orders are built from scratch. Broken payloads are the fixtures with one value
anywhere replaced by random JSON.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain import money
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import Order
from chalicelib.domain.totals import totals_issues
from chalicelib.integrations.amazon.notifications import normalise_amazon_order
from chalicelib.integrations.shopify.webhook import parse_shopify
from chalicelib.integrations.woocommerce.webhook import OrderFetchRequired, parse_woocommerce

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BOUNDED = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
AMOUNT = re.compile(r"^-?\d+\.\d+$")
WHOLE = re.compile(r"^-?\d+$")
# Where a whole-number string is money (JPY amounts have no point); everywhere else it may be an id.
MONEY_KEYS = frozenset(
    {"price", "amount", "Amount", "total", "subtotal", "total_tax", "subtotal_tax", "total_price",
     "subtotal_price", "total_discounts", "total_outstanding", "discount_total", "discount_tax",
     "shipping_total", "shipping_tax", "cart_tax", "total_line_items_price"}
)  # fmt: skip


def _fixtures(channel: str, pattern: str) -> list[str]:
    return sorted(p.name for p in (FIXTURES / channel).glob(pattern))


def _load(channel: str, name: str) -> Any:
    return json.loads((FIXTURES / channel / name).read_text(encoding="utf-8"))


def _shopify(payload: Any) -> Order:
    return parse_shopify("orders/updated", payload, "props.myshopify.com").order  # type: ignore[union-attr]


def _woocommerce(payload: Any) -> Order:
    return parse_woocommerce("order.updated", payload, "https://props.example/").order


def _amazon(payload: Any) -> Order:
    if not isinstance(payload, dict):
        raise InvalidInput("not an object")  # the handler's envelope check, not the normaliser's
    return normalise_amazon_order(payload["order"], payload["items"], "A1PROPSSELLER").order


# channel → (fixtures, normaliser, where the channel's own total is in the payload)
CHANNELS: dict[str, tuple[list[str], Callable[[Any], Order], Callable[[Any], Any]]] = {
    "shopify": (
        [n for n in _fixtures("shopify", "orders_*.json")],
        _shopify,
        lambda p: (p, "total_price"),
    ),
    "woocommerce": (
        [n for n in _fixtures("woocommerce", "order_*.json") if n not in ("order_deleted.json",)],
        _woocommerce,
        lambda p: (p, "total"),
    ),
    "amazon": (
        [n for n in _fixtures("amazon", "order_*.json") if n != "order_change_notification.json"],
        _amazon,
        lambda p: (p["order"]["OrderTotal"], "Amount") if p["order"].get("OrderTotal") else None,
    ),
}
CASES = [(channel, name) for channel, (names, _, _) in CHANNELS.items() for name in names]


def _scaled(value: Any, factor: int, key: str = "") -> Any:
    """`value` with every amount string multiplied by `factor`, decimals kept."""
    if isinstance(value, dict):
        return {k: _scaled(v, factor, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_scaled(v, factor, key) for v in value]
    if isinstance(value, str) and (AMOUNT.match(value) or (key in MONEY_KEYS and WHOLE.match(value))):
        return str(Decimal(value) * factor)
    return value


def _amounts(order: Order) -> list[Decimal]:
    t = order.totals
    figures = [t.subtotal, t.discount, t.shipping, t.tax, t.total]
    for line in order.lines:
        figures += [line.unit_price, line.discount, line.tax, line.total]
    p = order.payment
    return [*figures, p.amount_authorized, p.amount_captured, p.amount_refunded]


def _assert_exact(order: Order) -> None:
    places = money.minor_units(order.currency)
    for amount in _amounts(order):
        assert amount == amount.quantize(Decimal(1).scaleb(-places)), (order.currency, amount)


@pytest.mark.parametrize(("channel", "name"), CASES)
@BOUNDED
@given(factor=st.integers(1, 10_000), skew=st.one_of(st.just(0), st.integers(-500, 500)))
def test_a_valid_payload_keeps_its_money_exact_and_its_totals_add_up_or_are_flagged(
    channel, name, factor, skew
):
    _, normalise, total_of = CHANNELS[channel]
    original = normalise(_load(channel, name))
    payload = _scaled(_load(channel, name), factor)
    where = total_of(payload)
    if skew and where is not None:
        holder, key = where
        step = Decimal(1).scaleb(-money.minor_units(original.currency))
        holder[key] = str(Decimal(holder[key]) + skew * step)
    else:
        skew = 0

    order = normalise(payload)

    _assert_exact(order)
    assert order.totals.total == original.totals.total * factor + skew * Decimal(1).scaleb(
        -money.minor_units(order.currency)
    )
    if not skew:
        # What added up in the fixture adds up at any scale; a fixture that did not is still flagged.
        assert bool(totals_issues(order)) == bool(totals_issues(original)), totals_issues(order)
    else:
        assert any(issue.startswith("total ") for issue in totals_issues(order)), totals_issues(order)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copied = copy.deepcopy(value)
    holder = copied
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = new
    return copied


@pytest.mark.parametrize(("channel", "name"), CASES)
@BOUNDED
@given(data=st.data())
def test_a_broken_payload_is_refused_as_invalid_input_never_a_crash(channel, name, data):
    _, normalise, _ = CHANNELS[channel]
    payload = _load(channel, name)
    # Amazon's payload is getOrder's and getOrderItems' answers side by side: break what is inside them.
    paths = [p for p in _paths(payload) if channel != "amazon" or len(p) >= 2]
    path = data.draw(st.sampled_from(paths), label="path")
    broken = _replaced(payload, path, data.draw(_JSON, label="value"))
    try:
        order = normalise(broken)
    except OrderFetchRequired:
        return  # WooCommerce's bare deletion: the hub fetches the order instead
    except InvalidInput:
        return
    _assert_exact(order)


CURRENCIES = ("USD", "EUR", "JPY", "KWD", "GBP", "CHF")


@st.composite
def manual_orders(draw: Any) -> tuple[dict[str, Any], int]:
    """A valid manual order with random lines and money, and the skew (minor units) put on its total."""
    currency = draw(st.sampled_from(CURRENCIES))
    places = money.minor_units(currency)
    step = Decimal(1).scaleb(-places)

    def amount(low: int, high: int) -> Decimal:
        return draw(st.integers(low, high)) * step

    lines, computed = [], Decimal(0)
    for i in range(draw(st.integers(1, 6))):
        quantity, price = draw(st.integers(1, 50)), amount(0, 10**6)
        discount, tax = amount(0, int(price * quantity / step)), amount(0, 10**4)
        lines.append(
            {
                "title": f"Item {i}",
                "quantity": quantity,
                "unit_price": f"{price:f}",
                "discount": f"{discount:f}",
                "tax": f"{tax:f}",
            }
        )
        computed += price * quantity - discount + tax
    shipping, discount = amount(0, 10**4), amount(0, 100)
    computed += shipping - discount
    skew = draw(st.one_of(st.just(0), st.integers(-500, 500)))
    totals: dict[str, str] = {"shipping": f"{shipping:f}", "discount": f"{discount:f}"}
    if skew or draw(st.booleans()):
        totals["total"] = f"{computed + skew * step:f}"
    body = {"external_id": "P-1", "currency": currency, "placed_at": "2026-11-01T10:00:00Z", "lines": lines,
            "totals": totals}  # fmt: skip
    return body, skew


@BOUNDED
@given(case=manual_orders())
def test_a_manual_order_keeps_its_money_exact_and_a_wrong_total_is_flagged(case):
    body, skew = case
    order = normalise_manual(body)

    _assert_exact(order)
    issues = totals_issues(order)
    assert bool(issues) == bool(skew), issues


@BOUNDED
@given(case=manual_orders(), extra=st.integers(1, 9))
def test_a_manual_amount_with_more_decimals_than_its_currency_is_refused_not_rounded(case, extra):
    body, _ = case
    places = money.minor_units(body["currency"])
    body["lines"][0]["unit_price"] = (
        f"{Decimal(body['lines'][0]['unit_price']) + Decimal(extra).scaleb(-places - 1):f}"
    )
    with pytest.raises(InvalidInput):
        normalise_manual(body)
