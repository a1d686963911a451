"""Realistic Shopify orders (REST Admin API 2024-04 shapes): generated, refunded, fulfilled."""

from __future__ import annotations

import copy
import hashlib
import random
import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from local.simulators.shopify.values import ZERO_DECIMAL, money_set, money_text, round_money, set_sum

# title, variant_title, sku, price in USD, grams
_PRODUCTS: tuple[tuple[str, str | None, str, str, int], ...] = (
    ("Merino Crew Sweater", "Charcoal / M", "MCS-CHR-M", "89.00", 420),
    ("Café Crème Mug", None, "MUG-CC", "18.50", 380),
    ("Waxed Canvas Tote", "Olive", "WCT-OLV", "68.00", 650),
    ("Trail Socks 3-Pack", "L", "TS3-L", "24.00", 210),
    ("Hinoki Bath Stool", None, "HBS-01", "145.00", 2100),
    ("Ceremonial Matcha 30 g (抹茶)", None, "MATCHA-30", "21.00", 60),
    ("Linen Tea Towel", "Natural", "LTT-NAT", "14.90", 120),
    ("Cast-Iron Dutch Oven 24 cm", "Graphite", "CIDO-24-GR", "129.00", 4200),
)


_CURRENCIES = (("USD", 45), ("EUR", 20), ("JPY", 15), ("GBP", 10), ("CAD", 10))


_FX = {"USD": "1", "CAD": "1.37", "EUR": "0.92", "GBP": "0.79", "JPY": "150"}


_TAX = {
    "USD": ("State Tax", "0.06"),
    "CAD": ("GST", "0.05"),
    "EUR": ("DE MwSt", "0.19"),
    "GBP": ("GB VAT", "0.20"),
    "JPY": ("JP Consumption Tax", "0.10"),
}


_SHIPPING = (("Standard", "7.95"), ("Express", "19.00"))


_SURCHARGE = ("Oversize surcharge", "12.00")


# address1, address2, city, province, province_code, zip, country, country_code
_PLACES: dict[str, tuple[tuple[str, str | None, str, str, str, str, str, str], ...]] = {
    "USD": (
        ("350 Fifth Avenue", "Suite 4100", "New York", "New York", "NY", "10118", "United States", "US"),
        ("1 Ferry Building", None, "San Francisco", "California", "CA", "94111", "United States", "US"),
    ),
    "CAD": (
        (
            "1000 Rue De La Gauchetière O",
            "Bureau 2400",
            "Montréal",
            "Quebec",
            "QC",
            "H3B 4W5",
            "Canada",
            "CA",
        ),
    ),
    "EUR": (
        ("Friedrichstraße 43", None, "Berlin", "Berlin", "BE", "10117", "Germany", "DE"),
        ("12 Rue de la Paix", "Bâtiment B", "Paris", "Paris", "75", "75002", "France", "FR"),
    ),
    "GBP": (("221B Baker Street", None, "London", "England", "ENG", "NW1 6XE", "United Kingdom", "GB"),),
    "JPY": (("神宮前1-2-3", "原宿ビル4F", "渋谷区", "Tokyo", "JP-13", "150-0001", "Japan", "JP"),),
}


_PEOPLE = {
    "USD": (("José", "Núñez"), ("Ava", "Thompson"), ("Bob", "Norman")),
    "CAD": (("François", "Côté"), ("Liam", "Tremblay")),
    "EUR": (("Jürgen", "Groß"), ("Amélie", "Lefèvre"), ("Søren", "Kjær")),
    "GBP": (("Zoë", "Brontë"), ("Siobhán", "O'Connor")),
    "JPY": (("花子", "山田"), ("Yūki", "Satō")),
}


_DIAL = {"USD": "+1212555", "CAD": "+1514555", "EUR": "+4930555", "GBP": "+4420794", "JPY": "+8135555"}


def _priced(usd: str, currency: str) -> Decimal:
    converted = Decimal(usd) * Decimal(_FX.get(currency, "1"))
    step = Decimal(10) if currency in ZERO_DECIMAL else Decimal("0.01")
    return (converted / step).quantize(Decimal(1), rounding=ROUND_HALF_EVEN) * step


@dataclass
class OrderSpec:
    """What an order is made of, before Shopify's figures are worked out."""

    currency: str
    items: list[dict[str, Any]]
    shipping: list[tuple[str, Decimal]]
    discount: dict[str, str]
    financial_status: str
    taxes_included: bool
    gateway: str
    person: tuple[str, str] | None
    place: tuple[str, str | None, str, str, str, str, str, str]
    phone: str | None

    @classmethod
    def pick(
        cls,
        rng: random.Random,
        *,
        currency: str | None,
        items: Sequence[Mapping[str, Any]] | None,
        shipping: Sequence[str] | None,
        discount: Mapping[str, str] | None,
        financial_status: str | None,
        taxes_included: bool,
    ) -> OrderSpec:
        cur = (currency or rng.choices([c for c, _ in _CURRENCIES], [w for _, w in _CURRENCIES])[0]).upper()
        if items is None:
            chosen = rng.sample(_PRODUCTS, rng.choice((1, 1, 2, 2, 3)))
            items = [
                {"title": t, "variant_title": v, "sku": s, "price": _priced(p, cur), "grams": g,
                 "quantity": rng.choice((1, 1, 1, 2, 3))}
                for t, v, s, p, g in chosen
            ]  # fmt: skip
        if shipping is None:
            roll = rng.random()
            lines = [] if roll < 0.1 else [rng.choice(_SHIPPING)] + ([_SURCHARGE] if roll > 0.75 else [])
            ship = [(title, _priced(price, cur)) for title, price in lines]
        else:
            titles = [s[0] for s in (*_SHIPPING, _SURCHARGE)]
            ship = [(titles[i % len(titles)], Decimal(p)) for i, p in enumerate(shipping)]
        if discount is None:
            offers = [{"code": "WELCOME10", "type": "percentage", "value": "10"}]
            offers.append({"code": "SAVE5", "type": "fixed_amount", "value": f"{_priced('5', cur)}"})
            offers += [{"code": "FREESHIP", "type": "shipping", "value": "100"}] if ship else []
            discount = rng.choice(offers) if rng.random() < 0.35 else {}
        status = financial_status or rng.choices(("paid", "authorized", "pending"), (70, 20, 10))[0]
        gateway = "manual" if status == "pending" else rng.choice(("shopify_payments",) * 4 + ("paypal",))
        person = rng.choice(_PEOPLE.get(cur, _PEOPLE["USD"])) if rng.random() > 0.05 else None
        phone = f"{_DIAL.get(cur, '+1212555')}{rng.randrange(10000):04d}" if rng.random() > 0.4 else None
        return cls(
            currency=cur,
            items=[{**i, "price": Decimal(str(i["price"]))} for i in items],
            shipping=ship,
            discount=dict(discount),
            financial_status=status,
            taxes_included=taxes_included,
            gateway=gateway,
            person=person,
            place=rng.choice(_PLACES.get(cur, _PLACES["USD"])),
            phone=phone,
        )


def _allocate(discount: Mapping[str, str], bases: list[Decimal], currency: str) -> list[Decimal]:
    """Spread a line-item discount over lines as Shopify does (percentage per line; fixed pro rata)."""
    kind, total = discount.get("type"), sum(bases, Decimal(0))
    if kind == "percentage":
        rate = Decimal(discount["value"]) / 100
        return [round_money(b * rate, currency) for b in bases]
    if kind != "fixed_amount" or not total:
        return [Decimal(0)] * len(bases)
    amount = min(Decimal(discount["value"]), total)
    shares = [round_money(amount * b / total, currency) for b in bases[:-1]]
    return [*shares, amount - sum(shares, Decimal(0))]


def _tax(base: Decimal, rate: Decimal, included: bool, currency: str) -> Decimal:
    return round_money(base * rate / (1 + rate) if included else base * rate, currency)


def _tax_lines(amount: Decimal, title: str, rate: Decimal, currency: str) -> list[dict[str, Any]]:
    if not amount:
        return []
    price = money_text(amount, currency)
    return [
        {"channel_liable": False, "price": price, "price_set": money_set(price, currency),
         "rate": float(rate), "title": title}
    ]  # fmt: skip


def _allocation(amount: Decimal, currency: str) -> list[dict[str, Any]]:
    if not amount:
        return []
    text = money_text(amount, currency)
    return [{"amount": text, "amount_set": money_set(text, currency), "discount_application_index": 0}]


def _line_item(
    line_id: int, item: Mapping[str, Any], alloc: Decimal, tax: Decimal, spec: OrderSpec
) -> dict[str, Any]:
    cur, (tax_title, rate) = spec.currency, _TAX.get(spec.currency, _TAX["USD"])
    price = money_text(item["price"], cur)
    variant = item.get("variant_title")
    return {
        "id": line_id,
        "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
        "attributed_staffs": [],
        "current_quantity": item["quantity"],
        "fulfillable_quantity": item["quantity"],
        "fulfillment_service": "manual",
        "fulfillment_status": None,
        "gift_card": False,
        "grams": item.get("grams", 500),
        "name": f"{item['title']} - {variant}" if variant else item["title"],
        "price": price,
        "price_set": money_set(price, cur),
        "product_exists": True,
        "product_id": 8_100_000_000_000 + _stable_number(item["title"]),
        "properties": [],
        "quantity": item["quantity"],
        "requires_shipping": True,
        "sku": item.get("sku") or "",
        "taxable": True,
        "title": item["title"],
        "total_discount": money_text(Decimal(0), cur),
        "total_discount_set": money_set(money_text(Decimal(0), cur), cur),
        "variant_id": 45_000_000_000_000 + _stable_number(f"{item['title']}/{variant}"),
        "variant_inventory_management": "shopify",
        "variant_title": variant,
        "vendor": "order-hub demo",
        "tax_lines": _tax_lines(tax, tax_title, Decimal(rate), cur),
        "duties": [],
        "discount_allocations": _allocation(alloc, cur),
    }


def _stable_number(text: str) -> int:
    """A stable small number for a product name (product and variant ids that repeat across orders)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % 10_000_000


def _address(spec: OrderSpec) -> dict[str, Any] | None:
    if spec.person is None:
        return None
    first, last = spec.person
    line1, line2, city, province, province_code, zip_code, country, country_code = spec.place
    name = f"{last} {first}" if spec.currency == "JPY" and not first.isascii() else f"{first} {last}"
    return {
        "first_name": first, "address1": line1, "phone": spec.phone, "city": city, "zip": zip_code,
        "province": province, "country": country, "last_name": last, "address2": line2, "company": None,
        "latitude": None, "longitude": None, "name": name, "country_code": country_code,
        "province_code": province_code,
    }  # fmt: skip


def _email(spec: OrderSpec, order_id: int) -> str:
    first, last = spec.person or ("guest", "")
    ascii_name = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z.]", "", ascii_name.lower()).strip(".") or "customer"
    return f"{slug}.{order_id % 1000}@example.com"


def _customer(spec: OrderSpec, customer_id: int, email: str, now: str) -> dict[str, Any] | None:
    if spec.person is None:
        return None
    first, last = spec.person
    return {
        "id": customer_id, "email": email, "created_at": now, "updated_at": now, "first_name": first,
        "last_name": last, "state": "enabled", "note": None, "verified_email": True,
        "multipass_identifier": None, "tax_exempt": False, "phone": spec.phone,
        "email_marketing_consent": {"state": "not_subscribed", "opt_in_level": "single_opt_in",
                                    "consent_updated_at": None},
        "sms_marketing_consent": None, "tags": "", "currency": spec.currency, "tax_exemptions": [],
        "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
        "default_address": {**(_address(spec) or {}), "id": customer_id + 1, "customer_id": customer_id,
                            "default": True},
    }  # fmt: skip


def build_order(
    spec: OrderSpec, *, order_id: int, number: int, now: str, new_id: Callable[[], int], shop_domain: str
) -> dict[str, Any]:
    cur = spec.currency
    tax_title, rate_text = _TAX.get(cur, _TAX["USD"])
    rate = Decimal(rate_text)
    zero = money_text(Decimal(0), cur)
    gross = [i["price"] * i["quantity"] for i in spec.items]
    line_discount = _allocate(spec.discount, gross, cur)
    line_tax = [
        _tax(g - d, rate, spec.taxes_included, cur) for g, d in zip(gross, line_discount, strict=True)
    ]
    items = [
        _line_item(new_id(), item, d, t, spec)
        for item, d, t in zip(spec.items, line_discount, line_tax, strict=True)
    ]
    free_shipping = spec.discount.get("type") == "shipping"
    shipping_lines, ship_discount, ship_tax = [], Decimal(0), Decimal(0)
    for title, price in spec.shipping:
        off = price if free_shipping else Decimal(0)
        # Sales tax in the US leaves shipping alone here; VAT and consumption tax apply to it.
        tax = Decimal(0) if cur == "USD" else _tax(price - off, rate, spec.taxes_included, cur)
        shipping_lines.append(
            _shipping_line(new_id(), title, price, off=off, tax=tax, tax_title=tax_title, rate=rate, cur=cur)
        )
        ship_discount, ship_tax = ship_discount + off, ship_tax + tax
    subtotal = sum(gross, Decimal(0)) - sum(line_discount, Decimal(0))
    shipping = sum((p for _, p in spec.shipping), Decimal(0))
    total_tax = sum(line_tax, Decimal(0)) + ship_tax
    total = subtotal + shipping - ship_discount + (Decimal(0) if spec.taxes_included else total_tax)
    discounts = sum(line_discount, Decimal(0)) + ship_discount
    paid = spec.financial_status == "paid"
    email = _email(spec, order_id)
    token = uuid.uuid4().hex
    money = {
        "current_subtotal_price": subtotal, "current_total_discounts": discounts,
        "current_total_price": total, "current_total_tax": total_tax, "subtotal_price": subtotal,
        "total_discounts": discounts,
        "total_line_items_price": sum(gross, Decimal(0)), "total_price": total, "total_tax": total_tax,
    }  # fmt: skip
    order: dict[str, Any] = {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "app_id": 580111,
        "browser_ip": "203.0.113.24",
        "buyer_accepts_marketing": False,
        "cancel_reason": None,
        "cancelled_at": None,
        "cart_token": uuid.uuid4().hex,
        "checkout_id": new_id(),
        "checkout_token": uuid.uuid4().hex,
        "closed_at": None,
        "confirmation_number": token[:9].upper(),
        "confirmed": True,
        "contact_email": email,
        "created_at": now,
        "currency": cur,
        "customer_locale": {"JPY": "ja", "EUR": "de", "CAD": "fr-CA"}.get(cur, "en"),
        "discount_codes": _discount_codes(spec.discount, discounts, cur),
        "discount_applications": _discount_applications(spec.discount, cur),
        "email": email,
        "estimated_taxes": False,
        "financial_status": spec.financial_status,
        "fulfillment_status": None,
        "landing_site": "/",
        "name": f"#{number}",
        "note": None,
        "note_attributes": [],
        "number": number - 1000,
        "order_number": number,
        "order_status_url": f"https://{shop_domain}/orders/{token}/authenticate?key={token[:16]}",
        "payment_gateway_names": [spec.gateway],
        "phone": spec.phone,
        "presentment_currency": cur,
        "processed_at": now,
        "source_name": "web",
        "tags": "",
        "tax_exempt": False,
        "tax_lines": _tax_lines(total_tax, tax_title, rate, cur),
        "taxes_included": spec.taxes_included,
        "test": False,
        "token": token,
        "total_outstanding": zero if paid else money_text(total, cur),
        "total_shipping_price_set": money_set(money_text(shipping, cur), cur),
        "total_tip_received": zero,
        "total_weight": sum(int(i.get("grams", 500)) * int(i["quantity"]) for i in spec.items),
        "updated_at": now,
        "user_id": None,
        "billing_address": _address(spec),
        "customer": _customer(spec, new_id(), email, now),
        "fulfillments": [],
        "line_items": items,
        "payment_terms": None,
        "refunds": [],
        "shipping_address": _address(spec) if spec.shipping else None,
        "shipping_lines": shipping_lines,
    }
    for name, amount in money.items():
        order[name] = money_text(amount, cur)
        order[f"{name}_set"] = money_set(order[name], cur)
    return order


def _shipping_line(
    line_id: int,
    title: str,
    price: Decimal,
    *,
    off: Decimal,
    tax: Decimal,
    tax_title: str,
    rate: Decimal,
    cur: str,
) -> dict[str, Any]:
    text, discounted = money_text(price, cur), money_text(price - off, cur)
    return {
        "id": line_id, "carrier_identifier": None, "code": title, "discounted_price": discounted,
        "discounted_price_set": money_set(discounted, cur), "is_removed": False, "phone": None,
        "price": text, "price_set": money_set(text, cur), "requested_fulfillment_service_id": None,
        "source": "shopify", "title": title, "tax_lines": _tax_lines(tax, tax_title, rate, cur),
        "discount_allocations": _allocation(off, cur),
    }  # fmt: skip


def _discount_codes(discount: Mapping[str, str], amount: Decimal, cur: str) -> list[dict[str, Any]]:
    if not discount:
        return []
    return [{"code": discount["code"], "amount": money_text(amount, cur), "type": discount["type"]}]


def _discount_applications(discount: Mapping[str, str], cur: str) -> list[dict[str, Any]]:
    if not discount:
        return []
    shipping = discount["type"] == "shipping"
    return [
        {
            "target_type": "shipping_line" if shipping else "line_item",
            "type": "discount_code",
            "value": f"{Decimal(discount['value']):.1f}",
            "value_type": "fixed_amount" if discount["type"] == "fixed_amount" else "percentage",
            "allocation_method": "each" if shipping else "across",
            "target_selection": "all",
            "code": discount["code"],
        }
    ]


_TRACKING_URLS = {
    "UPS": "https://www.ups.com/track?tracknum={}",
    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
    "FedEx": "https://www.fedex.com/fedextrack/?trknbr={}",
    "DHL Express": "https://www.dhl.com/en/express/tracking.html?AWB={}",
}


def tracking_url_for(company: str | None, number: str) -> str | None:
    """The link Shopify builds for a tracking company it knows (spelled as its list spells it)."""
    template = _TRACKING_URLS.get(company or "")
    return template.format(number) if template else None


def build_fulfillment(
    fulfillment_id: int,
    order: Mapping[str, Any],
    lines: list[dict[str, Any]],
    *,
    numbers: Sequence[str],
    urls: Sequence[str],
    company: str | None,
    now: str,
    location_id: int,
) -> dict[str, Any]:
    """The REST fulfillment resource (what orders/* webhooks carry in `fulfillments`)."""
    return {
        "id": fulfillment_id,
        "admin_graphql_api_id": f"gid://shopify/Fulfillment/{fulfillment_id}",
        "created_at": now,
        "location_id": location_id,
        "name": f"{order['name']}.{len(order['fulfillments']) + 1}",
        "order_id": order["id"],
        "origin_address": {},
        "receipt": {},
        "service": "manual",
        "shipment_status": None,
        "status": "success",
        "tracking_company": company,
        "tracking_number": numbers[0] if numbers else None,
        "tracking_numbers": list(numbers),
        "tracking_url": urls[0] if urls else None,
        "tracking_urls": list(urls),
        "updated_at": now,
        "line_items": copy.deepcopy(lines),
    }


def build_refund(
    order: dict[str, Any],
    line_item_ids: Sequence[int] | None,
    amount: str | Decimal | None,
    *,
    refund_id: int,
    transaction_id: int,
    note: str | None,
    now: str,
    items: Sequence[tuple[int, int, str]] = (),
) -> dict[str, Any]:
    """A refund resource; takes the refunded quantities off the order's lines once it is valid.

    `items` (line item id, quantity, restock type) refunds part of lines (refundLineItems, returnProcess);
    with them a refund may move no money (amount 0: the goods are recorded, the money went elsewhere).
    """
    cur = order["currency"]
    by_id = {li["id"]: li for li in order["line_items"]}
    full = line_item_ids is None and amount is None and not items
    if items:
        wrong = [i for i, q, _t in items if i not in by_id or not 0 < q <= by_id[i]["current_quantity"]]
        if wrong:
            raise ValueError(f"order {order['id']}: cannot refund those quantities of line items {wrong}")
        chosen = []
    elif full:
        chosen = [li for li in order["line_items"] if li["current_quantity"] > 0]
    else:
        unknown = [i for i in line_item_ids or [] if i not in by_id or by_id[i]["current_quantity"] == 0]
        if unknown:
            raise ValueError(f"order {order['id']}: no refundable line items {unknown}")
        chosen = [by_id[i] for i in line_item_ids or []]
    refund_lines = [_refund_line(new, li, cur) for new, li in enumerate(chosen, start=refund_id + 1)]
    refund_lines += [
        _refund_line(new, by_id[i], cur, quantity=q, restock_type=t)
        for new, (i, q, t) in enumerate(items, start=refund_id + 1)
    ]
    tax_on_top = Decimal(0) if order["taxes_included"] else set_sum(refund_lines, "total_tax_set")
    lines_total = set_sum(refund_lines, "subtotal_set") + tax_on_top
    captured = Decimal(order["total_price"]) - Decimal(order["total_outstanding"])
    already = sum((Decimal(t["amount"]) for r in order["refunds"] for t in r["transactions"]), Decimal(0))
    remaining = captured - already
    value = (
        remaining if full else round_money(Decimal(str(amount)), cur) if amount is not None else lines_total
    )
    if value < 0 or (value == 0 and not items) or value > remaining:
        raise ValueError(f"order {order['id']}: cannot refund {value} of {remaining} refundable")
    for line in chosen:
        line["current_quantity"] = 0
        line["fulfillable_quantity"] = 0
    for line_id, quantity, _type in items:
        by_id[line_id]["current_quantity"] -= quantity
    text, zero = money_text(value, cur), money_set(money_text(Decimal(0), cur), cur)
    transaction = {
        "id": transaction_id, "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{transaction_id}",
        "amount": text, "authorization": None, "created_at": now, "currency": cur, "device_id": None,
        "error_code": None, "gateway": order["payment_gateway_names"][0], "kind": "refund",
        "location_id": None, "message": "Refund processed", "order_id": order["id"], "parent_id": None,
        "payment_id": f"c{order['checkout_id']}.{len(order['refunds']) + 2}", "processed_at": now,
        "receipt": {}, "source_name": "web", "status": "success", "test": False, "user_id": None,
        "manual_payment_gateway": order["payment_gateway_names"][0] == "manual",
    }  # fmt: skip
    return {
        "id": refund_id,
        "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}",
        "created_at": now,
        "note": note,
        "order_id": order["id"],
        "processed_at": now,
        "restock": bool(chosen),
        "return": None,
        "user_id": None,
        "total_duties_set": zero,
        "total_additional_fees_set": zero,
        "duties": [],
        "additional_fees": [],
        "order_adjustments": [],
        "refund_line_items": refund_lines,
        "transactions": [transaction] if value > 0 else [],
    }


def _refund_line(
    refund_line_id: int,
    line: Mapping[str, Any],
    cur: str,
    *,
    quantity: int | None = None,
    restock_type: str | None = None,
) -> dict[str, Any]:
    quantity = int(line["current_quantity"]) if quantity is None else quantity
    share = Decimal(quantity) / Decimal(line["quantity"])
    discount = sum((Decimal(a["amount"]) for a in line["discount_allocations"]), Decimal(0))
    tax = sum((Decimal(t["price"]) for t in line["tax_lines"]), Decimal(0))
    subtotal = round_money((Decimal(line["price"]) * line["quantity"] - discount) * share, cur)
    line_tax = round_money(tax * share, cur)
    return {
        "id": refund_line_id,
        "line_item_id": line["id"],
        "location_id": 71_000_000_001,
        "quantity": quantity,
        "restock_type": restock_type or ("return" if line["fulfillment_status"] == "fulfilled" else "cancel"),
        # Shopify sends these two as JSON numbers; the *_set strings beside them are exact.
        "subtotal": float(subtotal),
        "subtotal_set": money_set(money_text(subtotal, cur), cur),
        "total_tax": float(line_tax),
        "total_tax_set": money_set(money_text(line_tax, cur), cur),
        "line_item": copy.deepcopy(dict(line)),
    }
