"""Shopify channel adapter: webhook signature check, and order and refund payloads into channel events."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from chalicelib.domain.channel_events import ChannelEvent, ChannelState, OrderSnapshot, RefundNotice
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.order import Address, Customer, Line, Order, Payment, Totals, derive_order_id
from chalicelib.domain.validation import MAX_QUANTITY, MAX_TITLE, id_problem, text_problem
from chalicelib.domain.webhooks import WebhookEvent, WebhookRequest, WebhookSpec, from_header, signature_in
from chalicelib.integrations.shopify.fields import (
    allocations_of,
    amount_of,
    currency_code,
    first_text,
    objects_of,
    required,
    set_amount,
    set_currency,
    sum_amounts,
    text_of,
    timestamp_of,
)
from chalicelib.integrations.shopify.returns import RETURN_TOPICS, read_return, return_gid, return_order_id

CHANNEL = "shopify"

ORDER_TOPICS = frozenset(
    {"orders/create", "orders/updated", "orders/paid", "orders/cancelled", "orders/fulfilled"}
)
REFUND_TOPIC = "refunds/create"
TOPICS: frozenset[str] = ORDER_TOPICS | {REFUND_TOPIC} | RETURN_TOPICS

# financial_status values under which the buyer's money was (at least partly) taken.
_CAPTURED = frozenset({"paid", "partially_paid", "partially_refunded", "refunded"})
_AUTHORIZED = _CAPTURED | {"authorized"}


def verify_shopify_hmac(secret: str, raw_body: bytes, header_value: str | None) -> bool:
    """True when `header_value` is the base64 HMAC-SHA256 of exactly `raw_body` under `secret`.

    Shopify signs the bytes it sent: verify before any JSON parsing, never over a re-serialised body.
    """
    if not secret or not raw_body or not header_value:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), raw_body, hashlib.sha256).digest())
    try:
        given = header_value.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected, given)


def read_delivery(store: str, request: WebhookRequest) -> WebhookEvent:
    """The event of one Shopify webhook, HTTPS or EventBridge alike.

    One merchant action gives one Event-Id to each topic it fires, and retries keep it: the same id
    for both routes of one event, so that both at once still apply it once.
    """
    payload = request.body
    if not isinstance(payload, dict):
        raise InvalidInput("body is not a JSON object")
    topic = request.header("x-shopify-topic")
    if topic in RETURN_TOPICS:
        # Grouped by the return's order; returns/decline names none, so by the return itself.
        external_id: Any = return_order_id(payload) or return_gid(payload)
    else:
        external_id = payload.get("order_id") if topic.startswith("refunds/") else payload.get("id")
    event_id = request.header("x-shopify-event-id") or request.header("x-shopify-webhook-id")
    if not event_id or external_id is None:
        raise InvalidInput("missing event id or order id")
    if topic in ORDER_TOPICS:
        check_order_fields(payload, f"shopify {topic}")
    return WebhookEvent(topic, f"shopify:{store}:{event_id}:{topic}", _id(external_id, "order id"))


_ORDER_AMOUNTS = ("total_price", "subtotal_price", "total_tax", "total_discounts", "total_outstanding")


def check_order_fields(src: Mapping[str, Any], where: str) -> None:
    """What the webhook can refuse at once in an order body, field by field as far as it is there (the
    whole order is checked again at ingestion): ids, amounts, lines, titles and quantities."""
    for key in _ORDER_AMOUNTS:
        if src.get(key) is not None:
            amount_of(src[key], None, f"{where} {key}")
    if "line_items" not in src:
        return
    items = src["line_items"]
    if not isinstance(items, list):
        raise InvalidInput(f"{where}: line_items is not a list")
    if not items and src.get("total_price") is not None:
        # Money and nothing bought: ingestion would refuse it (an order needs a line), so refuse it now.
        raise InvalidInput(f"{where}: an order needs at least one line item")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidInput(f"{where} line_items[{i}]: not an object")
        _line_fields(item, f"{where} line_items[{i}]")


def _line_fields(item: Mapping[str, Any], where: str) -> None:
    if item.get("id") is not None:
        problem = id_problem(_id(item["id"], f"{where} id"), f"{where} id")
        if problem:
            raise InvalidInput(problem)
    if item.get("price") is not None:
        amount_of(item["price"], None, f"{where} price")
    quantity = item.get("quantity")
    if quantity is not None and (
        not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 <= quantity <= MAX_QUANTITY
    ):
        raise InvalidInput(f"{where}: quantity must be a whole number 0..{MAX_QUANTITY}")
    for key in ("title", "variant_title", "name"):
        problem = text_problem(text_of(item.get(key)), f"{where} {key}", MAX_TITLE)
        if problem:
            raise InvalidInput(problem)


def _id(value: Any, where: str) -> str:
    """Shopify's ids are integers (or GraphQL gid strings); a float (1e400 → inf, NaN) is no id."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise InvalidInput(f"{where}: not an id: {str(value)[:40]!r}")
    return str(value)


# The store is chosen by X-Shopify-Shop-Domain; the topic is read (and filtered) before the body.
SHOPIFY_WEBHOOK = WebhookSpec(
    channel=CHANNEL,
    account=from_header("x-shopify-shop-domain"),
    unknown_store="unknown shop",
    verify=signature_in("x-shopify-hmac-sha256", verify_shopify_hmac),
    read=read_delivery,
    handles=TOPICS.__contains__,
    early_topic=from_header("x-shopify-topic"),
    ignored_message="topic not handled",
    ignored_key="topic",
    order_topics=ORDER_TOPICS,
)


def parse_shopify(topic: str, payload: Mapping[str, Any], store: str) -> ChannelEvent:
    """Turn one Shopify webhook body (REST resource, API 2024-04+) into a channel event.

    `orders/*` bodies are the order resource and give an `OrderSnapshot`; `refunds/create` bodies are
    the refund resource and give a `RefundNotice`; `returns/*` bodies a `ChannelReturn`. A REST
    answer's wrapper (`{"order": {...}}`, `{"refund": {...}}`) is accepted too, so reconciliation can
    feed what it fetched.
    """
    if not store:
        raise InvalidInput("shopify: the shop domain (store) is required")
    if not isinstance(payload, Mapping):
        raise InvalidInput(f"shopify {topic}: the body is not a JSON object")
    if topic in ORDER_TOPICS:
        return _order_snapshot(topic, _unwrap(payload, "order"), store)
    if topic == REFUND_TOPIC:
        return _refund_notice(_unwrap(payload, "refund"), store)
    if topic in RETURN_TOPICS:
        return read_return(topic, _unwrap(payload, "return"), store)
    raise InvalidInput(f"shopify: unsupported topic {topic!r}")


def _unwrap(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    inner = payload.get(key)
    return inner if "id" not in payload and isinstance(inner, Mapping) else payload


# --- orders/* ---------------------------------------------------------------------------------------


def _order_snapshot(topic: str, src: Mapping[str, Any], store: str) -> OrderSnapshot:
    where = f"shopify {topic}"
    external_id = _id(required(src, "id", where), f"{where} id")
    currency = currency_code(required(src, "currency", where), where)
    items = required(src, "line_items", where)
    if not isinstance(items, list):
        raise InvalidInput(f"{where}: line_items is not a list")
    lines = [_line(item, currency, f"{where} line_items[{i}]") for i, item in enumerate(items)]
    totals = _totals(src, lines, currency, where)
    try:
        order = Order(
            order_id=derive_order_id(CHANNEL, store, external_id),
            channel=CHANNEL,
            store=store,
            external_id=external_id,
            external_number=text_of(src.get("name")),
            currency=currency,
            placed_at=timestamp_of(required(src, "created_at", where), f"{where} created_at"),
            updated_at=timestamp_of(required(src, "updated_at", where), f"{where} updated_at"),
            customer=_customer(src),
            shipping_address=_address(src.get("shipping_address")),
            billing_address=_address(src.get("billing_address")),
            lines=lines,
            totals=totals,
            payment=_payment(src, totals.total, currency, where),
        )
    except ValidationError as exc:
        raise InvalidInput(f"{where}: {exc.errors()[0]['msg']}") from exc
    return OrderSnapshot(order=order, state=_state(src))


def _line(item: Any, currency: str, where: str) -> Line:
    if not isinstance(item, Mapping):
        raise InvalidInput(f"{where}: not an object")
    line_id = _id(required(item, "id", where), f"{where} id")
    quantity = required(item, "quantity", where)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
        raise InvalidInput(f"{where}: quantity must be a whole number, got {quantity!r}")
    unit_price = amount_of(required(item, "price", where), currency, f"{where} price")
    discount = sum_amounts(allocations_of(item), currency, f"{where} discount_allocations")
    tax = sum_amounts(
        (t.get("price") for t in objects_of(item.get("tax_lines"))), currency, f"{where} tax_lines"
    )
    return Line(
        line_id=line_id,
        sku=text_of(item.get("sku")),
        title=_line_title(item, line_id),
        quantity=quantity,
        unit_price=unit_price,
        discount=discount,
        tax=tax,
        total=unit_price * quantity - discount,
    )


def _line_title(item: Mapping[str, Any], line_id: str) -> str:
    title = text_of(item.get("title"))
    variant = text_of(item.get("variant_title"))
    if title and variant and variant != "Default Title":
        return f"{title} - {variant}"
    return title or text_of(item.get("name")) or f"line {line_id}"


def _totals(src: Mapping[str, Any], lines: list[Line], currency: str, where: str) -> Totals:
    shipping_lines = objects_of(src.get("shipping_lines"))
    shipping = sum_amounts((s.get("price") for s in shipping_lines), currency, f"{where} shipping_lines")
    shipping_discount = sum_amounts(
        (a for s in shipping_lines for a in allocations_of(s)), currency, f"{where} shipping_lines"
    )
    line_discount = sum((line.discount for line in lines), Decimal(0))
    total_discounts = amount_of(src.get("total_discounts") or "0", currency, f"{where} total_discounts")
    # Shopify allocates every discount to line items or shipping lines; total_discounts is the sum of
    # those allocations. Line allocations are already inside line totals and shipping is taken before
    # discounts, so the order-level discount is the shipping allocations plus anything left
    # unallocated (orders from before allocations existed).
    unallocated = max(total_discounts - line_discount - shipping_discount, Decimal(0))
    return Totals(
        subtotal=sum((line.total for line in lines), Decimal(0)),
        discount=shipping_discount + unallocated,
        shipping=shipping,
        tax=amount_of(src.get("total_tax") or "0", currency, f"{where} total_tax"),
        # Shopify's own figure, kept even when the parts disagree.
        total=amount_of(required(src, "total_price", where), currency, f"{where} total_price"),
        taxes_included=src.get("taxes_included") is True,
    )


def _payment(src: Mapping[str, Any], total: Decimal, currency: str, where: str) -> Payment:
    status = (text_of(src.get("financial_status")) or "").lower() or None
    names = src.get("payment_gateway_names")
    gateways = [g for g in names if isinstance(g, str) and g.strip()] if isinstance(names, list) else []
    outstanding_raw = src.get("total_outstanding")
    outstanding = (
        amount_of(outstanding_raw, currency, f"{where} total_outstanding")
        if outstanding_raw is not None
        else Decimal(0)
    )
    captured = max(total - outstanding, Decimal(0)) if status in _CAPTURED else Decimal(0)
    refunded = sum_amounts(
        (
            t.get("amount")
            for refund in objects_of(src.get("refunds"))
            for t in objects_of(refund.get("transactions"))
            if t.get("kind") == "refund" and t.get("status") == "success"
        ),
        currency,
        f"{where} refunds",
    )
    if status == "refunded" and not refunded:
        refunded = captured  # the body carried no refund details; refunded means all of it
    return Payment(
        source=gateways[0] if gateways else text_of(src.get("gateway")),
        status=status,
        amount_authorized=total if status in _AUTHORIZED else Decimal(0),
        amount_captured=captured,
        amount_refunded=refunded,
    )


# (field, its value, the state it means): the first that matches wins (refunds, then shipping, then payment).
_STATES = (
    ("financial_status", "refunded", ChannelState.REFUNDED),
    ("financial_status", "partially_refunded", ChannelState.PARTIALLY_REFUNDED),
    ("fulfillment_status", "fulfilled", ChannelState.FULFILLED),
    ("fulfillment_status", "partial", ChannelState.PARTIALLY_FULFILLED),
    ("financial_status", "paid", ChannelState.PAID),
    ("financial_status", "authorized", ChannelState.AUTHORIZED),
)


def _state(src: Mapping[str, Any]) -> ChannelState:
    if src.get("cancelled_at"):
        return ChannelState.CANCELLED
    for field, value, state in _STATES:
        if (text_of(src.get(field)) or "").lower() == value:
            return state
    return ChannelState.OPEN


def _customer(src: Mapping[str, Any]) -> Customer:
    raw = src.get("customer")
    person: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    addresses = [
        a for a in (src.get("billing_address"), src.get("shipping_address")) if isinstance(a, Mapping)
    ]
    # Operations need a way to reach the buyer: fall back from the order to its customer to its addresses.
    return Customer(
        email=first_text([src.get("email"), src.get("contact_email"), person.get("email")]),
        name=_person_name(person) or first_text(a.get("name") or _person_name(a) for a in addresses),
        phone=first_text([src.get("phone"), person.get("phone"), *(a.get("phone") for a in addresses)]),
    )


def _address(raw: Any) -> Address | None:
    if not isinstance(raw, Mapping):
        return None
    address = Address(
        name=text_of(raw.get("name")) or _person_name(raw),
        line1=text_of(raw.get("address1")),
        line2=text_of(raw.get("address2")),
        city=text_of(raw.get("city")),
        region=text_of(raw.get("province_code")) or text_of(raw.get("province")),
        postal_code=text_of(raw.get("zip")),
        country=text_of(raw.get("country_code")) or text_of(raw.get("country")),
    )
    return address if any(address.model_dump().values()) else None


def _person_name(raw: Mapping[str, Any]) -> str | None:
    parts = [text_of(raw.get("first_name")), text_of(raw.get("last_name"))]
    return " ".join(p for p in parts if p) or None


# --- refunds/create ---------------------------------------------------------------------------------


def _refund_notice(src: Mapping[str, Any], store: str) -> RefundNotice:
    where = f"shopify {REFUND_TOPIC}"
    refund_id = str(required(src, "id", where))
    order_id = str(required(src, "order_id", where))
    created_at = timestamp_of(required(src, "created_at", where), f"{where} created_at")
    items = objects_of(src.get("refund_line_items"))
    transactions = objects_of(src.get("transactions"))
    if transactions:
        amount, currency = _refunded_by_transactions(transactions, where)
    else:
        amount, currency = _refunded_by_lines(items, where)
    line_ids = tuple(
        dict.fromkeys(str(i["line_item_id"]) for i in items if i.get("line_item_id") is not None)
    )
    return RefundNotice(
        channel=CHANNEL,
        store=store,
        external_order_id=order_id,
        refund_id=refund_id,
        amount=amount,
        currency=currency,
        created_at=created_at,
        line_ids=line_ids,
        reason=text_of(src.get("note")),
    )


def _refunded_by_transactions(
    transactions: list[Mapping[str, Any]], where: str
) -> tuple[Decimal, str | None]:
    """What actually went back to the buyer: successful refund transactions only."""
    done = [t for t in transactions if t.get("kind") == "refund" and t.get("status") == "success"]
    codes = {c.upper() for t in transactions if (c := text_of(t.get("currency")))}
    if len(codes) > 1:
        raise InvalidInput(f"{where}: transactions in several currencies {sorted(codes)}")
    currency = currency_code(codes.pop(), where) if codes else None
    amounts = (required(t, "amount", f"{where} transaction") for t in done)
    return sum_amounts(amounts, currency, f"{where} transactions"), currency


def _refunded_by_lines(items: list[Mapping[str, Any]], where: str) -> tuple[Decimal, str | None]:
    """No transactions in the body: the refunded lines' subtotal and tax (shipping refunds not known)."""
    codes = {c.upper() for i in items if (c := set_currency(i, "subtotal"))}
    currency = currency_code(codes.pop(), where) if len(codes) == 1 else None
    amounts = (set_amount(i, key) for i in items for key in ("subtotal", "total_tax"))
    return sum_amounts(amounts, currency, f"{where} refund_line_items"), currency
