"""WooCommerce channel adapter: webhook signature and ping checks, REST v3 order → canonical snapshot."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from pydantic import ValidationError

from chalicelib.domain import money
from chalicelib.domain.channel_events import ChannelState, OrderSnapshot
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.order import Address, Customer, Line, Order, Payment, Totals, derive_order_id
from chalicelib.domain.webhooks import WebhookEvent, WebhookRequest, WebhookSpec, from_header, signature_in

CHANNEL = "woocommerce"

# The order topics of WooCommerce core. There is no refund topic: a refund fires order.updated.
TOPICS = frozenset({"order.created", "order.updated", "order.deleted", "order.restored"})
# The topics whose body is always the whole order (a deletion may carry only its id).
ORDER_TOPICS = frozenset({"order.created", "order.updated"})

_REQUIRED = ("id", "status", "currency", "date_created_gmt", "date_modified_gmt", "line_items", "total")

_STATE_BY_STATUS = {
    "pending": ChannelState.OPEN,
    "on-hold": ChannelState.OPEN,
    "checkout-draft": ChannelState.OPEN,
    "processing": ChannelState.PAID,
    "completed": ChannelState.FULFILLED,
    "cancelled": ChannelState.CANCELLED,
    # A failed payment can still be paid later (failed → pending → processing): not a cancellation.
    "failed": ChannelState.OPEN,
    "refunded": ChannelState.REFUNDED,
    "trash": ChannelState.DELETED,
}

# Statuses WooCommerce only reaches once the money is in (wc_get_is_paid_statuses, plus refunded).
_PAID_STATUSES = frozenset({"processing", "completed", "refunded"})

# wp_specialchars_decode(..., ENT_QUOTES) decodes exactly these entities, in one pass.
_WP_SPECIALCHARS = re.compile(r"&(?:lt|gt|amp|quot|#0*(?:34|38|39|60|62)|#[xX]0*(?:22|26|27));")
_WP_SPECIALCHAR_VALUES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}

_PING_BODY = re.compile(rb"webhook_id=([0-9]{1,19})")
_FORM = "application/x-www-form-urlencoded"


class OrderFetchRequired(InvalidInput):
    """A core `order.deleted` delivery carries only `{"id": n}`: the order must be read from the REST API.

    A subclass of InvalidInput so that a caller unaware of it still parks the delivery instead of losing it;
    a caller that knows fetches `GET /wc/v3/orders/{id}` (status `trash`) and parses that instead.
    """

    def __init__(self, external_id: str) -> None:
        super().__init__(f"WooCommerce order.deleted for {external_id} carries only its id; fetch the order")
        self.external_id = external_id


def verify_wc_signature(secret: str, raw_body: bytes, header_value: str | None) -> bool:
    """Check `X-WC-Webhook-Signature`: base64 of the raw HMAC-SHA256 of the exact body, in constant time."""
    if not secret or not raw_body or not header_value:
        return False
    try:
        given = header_value.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    matched = False
    for key in _secret_keys(secret):
        expected = base64.b64encode(hmac.new(key.encode(), raw_body, hashlib.sha256).digest())
        # Evaluate every candidate so timing does not tell which form of the secret is in use.
        matched |= hmac.compare_digest(expected, given)
    return matched


def _secret_keys(secret: str) -> tuple[str, ...]:
    # WooCommerce signs with wp_specialchars_decode(stored secret): the plain secret is the key, but an
    # operator who copied the stored, HTML-escaped form (e.g. "a&amp;b") must not see every delivery fail.
    decoded = _WP_SPECIALCHARS.sub(_decode_specialchar, secret)
    return (secret,) if decoded == secret else (secret, decoded)


def _decode_specialchar(match: re.Match[str]) -> str:
    entity = match.group(0)[1:-1]
    if entity in _WP_SPECIALCHAR_VALUES:
        return _WP_SPECIALCHAR_VALUES[entity]
    code = int(entity[2:], 16) if entity[1] in "xX" else int(entity[1:])
    return chr(code)


def is_ping(content_type: str | None, raw_body: bytes) -> int | None:
    """The webhook id of WooCommerce's unsigned creation ping (form-encoded `webhook_id=<n>`), else None."""
    if content_type is not None:
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type not in ("", _FORM):
            return None
    if len(raw_body) > 64:
        return None
    match = _PING_BODY.fullmatch(raw_body.strip())
    if match is None:
        return None
    webhook_id = int(match.group(1))
    return webhook_id if webhook_id > 0 else None


def _read(store: str, request: WebhookRequest) -> WebhookEvent:
    payload = request.body
    if not isinstance(payload, dict) or "id" not in payload:
        raise InvalidInput("body is not a JSON order")
    # Core's Delivery-ID is wp_hash(webhook id . time()): shared by every delivery of that webhook in
    # the same second. With the body's hash it names one delivery; a true duplicate is byte-identical.
    body_hash = hashlib.sha256(request.raw).hexdigest()[:32]
    delivery_key = f"{request.header('x-wc-webhook-delivery-id')}:{body_hash}"
    topic = request.header("x-wc-webhook-topic")
    return WebhookEvent(topic, f"woocommerce:{store}:{delivery_key}", str(payload["id"]))


# The store is chosen by X-WC-Webhook-Source. WooCommerce's unsigned creation ping must get exactly 200,
# or the webhook is not created.
WOOCOMMERCE_WEBHOOK = WebhookSpec(
    channel=CHANNEL,
    account=from_header("x-wc-webhook-source"),
    unknown_store="unknown store",
    verify=signature_in("x-wc-webhook-signature", verify_wc_signature),
    read=_read,
    handles=TOPICS.__contains__,
    early_topic=from_header("x-wc-webhook-topic"),
    ignored_message="topic not handled",
    ignored_key="topic",
    is_ping=lambda request: is_ping(request.headers.get("content-type"), request.raw) is not None,
    order_topics=ORDER_TOPICS,
)


def bare_deletion_id(topic: str, payload: Mapping[str, Any]) -> str | None:
    """The order id of an `order.deleted` delivery carrying only `{"id": n}` (as core sends it), else None."""
    if topic != "order.deleted" or set(payload) != {"id"}:
        return None
    return _external_id(payload["id"])


def parse_woocommerce(topic: str, payload: Mapping[str, Any], store: str) -> OrderSnapshot:
    """Turn a WooCommerce REST v3 order resource (a webhook body or a REST read) into a snapshot.

    `store` is the `X-WC-Webhook-Source` value (site home URL with trailing slash), as registered.
    Raises InvalidInput (OrderFetchRequired for a bare `order.deleted`) when the payload cannot be used.
    """
    if topic not in TOPICS:
        raise InvalidInput(f"unsupported WooCommerce topic {topic!r}")
    if not isinstance(payload, Mapping):
        raise InvalidInput("a WooCommerce order payload must be a JSON object")
    bare_id = bare_deletion_id(topic, payload)
    if bare_id is not None:
        raise OrderFetchRequired(bare_id)
    missing = [name for name in _REQUIRED if payload.get(name) in (None, "")]
    if missing:
        raise InvalidInput(f"WooCommerce order payload lacks required field(s): {', '.join(missing)}")
    external_id = _external_id(payload["id"])
    try:
        return _snapshot(topic, payload, store, external_id)
    except money.MoneyError as exc:
        raise InvalidInput(f"WooCommerce order {external_id}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'order'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInput(f"WooCommerce order {external_id}: {problems}") from exc


def _snapshot(topic: str, src: Mapping[str, Any], store: str, external_id: str) -> OrderSnapshot:
    currency = str(src["currency"]).upper()
    money.minor_units(currency)  # an unknown code fails here, before any amount is parsed with it
    status = str(src["status"]).removeprefix("wc-")

    line_items = _list(src, "line_items")
    lines = [_item_line(item, currency) for item in line_items]
    lines += [_fee_line(fee, currency) for fee in _list(src, "fee_lines")]

    # A line's subtotal − total already carries its share of every coupon, and WooCommerce computes
    # discount_total as Σ(line subtotal − line total): only a remainder is an order-level discount.
    line_coupons = sum((_coupon_share(item, currency) for item in line_items), Decimal(0))
    order_discount = max(_amount(src, "discount_total", currency, default="0") - line_coupons, Decimal(0))
    shipping_lines = _list(src, "shipping_lines")
    if shipping_lines:
        shipping = sum((_amount(s, "total", currency) for s in shipping_lines), Decimal(0))
    else:
        shipping = _amount(src, "shipping_total", currency, default="0")
    total = _amount(src, "total", currency)
    totals = Totals(
        subtotal=sum((line.total for line in lines), Decimal(0)),
        discount=order_discount,
        shipping=shipping,
        tax=_amount(src, "total_tax", currency, default="0"),
        total=total,  # WooCommerce's own figure, kept even when it disagrees; validation flags it
    )

    refunded = sum((abs(_amount(r, "total", currency)) for r in _list(src, "refunds")), Decimal(0))
    paid = bool(src.get("date_paid_gmt") or src.get("date_paid")) or status in _PAID_STATUSES or refunded > 0
    state = _state(topic, status, paid, refunded, total)
    billing = _mapping(src.get("billing"))
    intent = _stripe_intent(src)
    order = Order(
        order_id=derive_order_id(CHANNEL, store, external_id),
        channel=CHANNEL,
        store=store,
        external_id=external_id,
        external_number=_text(src.get("number")) or external_id,
        currency=currency,
        placed_at=_gmt(src, "date_created_gmt"),
        updated_at=_gmt(src, "date_modified_gmt"),
        customer=Customer(
            email=_text(billing.get("email")), name=_full_name(billing), phone=_text(billing.get("phone"))
        ),
        shipping_address=_address(src.get("shipping")),
        billing_address=_address(billing),
        lines=lines,
        totals=totals,
        payment=Payment(
            # With WooCommerce Stripe Gateway the money sits in a PaymentIntent the hub can capture.
            source="stripe" if intent else _text(src.get("payment_method")),
            status=_payment_status(status, paid, refunded, total),
            amount_authorized=total if paid else Decimal(0),
            amount_captured=total if paid else Decimal(0),
            amount_refunded=refunded,
            reference=intent or _text(src.get("transaction_id")),
        ),
    )
    return OrderSnapshot(order=order, state=state)


def _stripe_intent(src: Mapping[str, Any]) -> str | None:
    """The PaymentIntent WooCommerce Stripe Gateway keeps in the order's `_stripe_intent_id` meta."""
    method = (_text(src.get("payment_method")) or "").lower()
    if not method.startswith("stripe"):
        return None
    for meta in src.get("meta_data") or []:
        if isinstance(meta, Mapping) and meta.get("key") == "_stripe_intent_id":
            value = _text(meta.get("value"))
            if value and value.startswith("pi_"):
                return value
    return None


def _state(topic: str, status: str, paid: bool, refunded: Decimal, total: Decimal) -> ChannelState:
    if topic == "order.deleted" or status == "trash":
        return ChannelState.DELETED
    if status == "cancelled":
        return ChannelState.CANCELLED
    if status == "refunded" or (refunded > 0 and refunded >= total):
        return ChannelState.REFUNDED
    if refunded > 0:
        return ChannelState.PARTIALLY_REFUNDED
    # Plugins add their own statuses (e.g. "shipped"): judge those by whether the money is in.
    return _STATE_BY_STATUS.get(status) or (ChannelState.PAID if paid else ChannelState.OPEN)


def _payment_status(status: str, paid: bool, refunded: Decimal, total: Decimal) -> str:
    if status == "refunded" or (refunded > 0 and refunded >= total):
        return "refunded"
    if refunded > 0:
        return "partially_refunded"
    if status == "failed":
        return "failed"
    if paid:
        return "paid"
    return "voided" if status == "cancelled" else "pending"


def _coupon_share(item: Mapping[str, Any], currency: str) -> Decimal:
    return _amount(item, "subtotal", currency, default=item.get("total")) - _amount(item, "total", currency)


def _item_line(item: Mapping[str, Any], currency: str) -> Line:
    quantity = _quantity(item)
    subtotal = _amount(item, "subtotal", currency, default=item.get("total"))
    total = _amount(item, "total", currency)
    if quantity:
        # `price` is a float; the exact unit price is subtotal / quantity. When that is not a whole number
        # of minor units (VAT-inclusive prices: 25.00 for 3), round it up and carry the few minor units of
        # difference as line discount, so the line still ends at WooCommerce's own total.
        exponent = Decimal(1).scaleb(-money.minor_units(currency))
        unit_price = (subtotal / quantity).quantize(exponent, rounding=ROUND_CEILING)
    else:
        unit_price = Decimal(0)
    discount = unit_price * quantity - total if quantity else subtotal - total
    return Line(
        line_id=_external_id(item.get("id")),
        sku=_text(item.get("sku")),
        # WordPress stores product names HTML-encoded ("Ship Your Idea &ndash; Black").
        title=html.unescape(_text(item.get("name")) or _text(item.get("sku")) or f"item {item.get('id')}"),
        quantity=quantity,
        unit_price=unit_price,
        discount=discount,
        tax=_amount(item, "total_tax", currency, default="0"),
        total=total,
    )


def _fee_line(fee: Mapping[str, Any], currency: str) -> Line:
    # Fees (gift wrap, surcharges, negative "discount" fees) are part of WooCommerce's total; as lines of
    # their own ("fee-<id>", no SKU) the order's figures still add up.
    total = _amount(fee, "total", currency)
    return Line(
        line_id=f"fee-{_external_id(fee.get('id'))}",
        sku=None,
        title=html.unescape(_text(fee.get("name")) or "Fee"),
        quantity=1,
        unit_price=total,
        tax=_amount(fee, "total_tax", currency, default="0"),
        total=total,
    )


def _quantity(item: Mapping[str, Any]) -> int:
    value = item.get("quantity")
    if isinstance(value, bool):
        raise InvalidInput(f"WooCommerce line item {item.get('id')}: quantity must be a whole number")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise InvalidInput(f"WooCommerce line item {item.get('id')}: quantity must be a whole number")


def _amount(src: Mapping[str, Any], name: str, currency: str, *, default: object = None) -> Decimal:
    value = src.get(name)
    if value is None or value == "":
        value = default
    if value is None or value == "":
        raise InvalidInput(f"WooCommerce payload lacks the amount {name!r}")
    return money.to_amount(value, currency)


def _gmt(src: Mapping[str, Any], name: str) -> datetime:
    # The *_gmt fields are UTC without an offset; parse them as such (the plain fields are site-local time).
    try:
        value = datetime.fromisoformat(str(src[name]))
    except ValueError as exc:
        raise InvalidInput(f"WooCommerce {name} is not an ISO 8601 date: {src[name]!r}") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _address(value: object) -> Address | None:
    src = _mapping(value)
    address = Address(
        name=_full_name(src),
        line1=_text(src.get("address_1")),
        line2=_text(src.get("address_2")),
        city=_text(src.get("city")),
        region=_text(src.get("state")),
        postal_code=_text(src.get("postcode")),
        country=_text(src.get("country")),
    )
    # WooCommerce sends every address field as "" when there is none (virtual goods, no shipping).
    return address if any(address.model_dump().values()) else None


def _full_name(src: Mapping[str, Any]) -> str | None:
    parts = [_text(src.get("first_name")), _text(src.get("last_name"))]
    return " ".join(p for p in parts if p) or None


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _external_id(value: object) -> str:
    if isinstance(value, bool) or value is None or str(value).strip() == "":
        raise InvalidInput(f"not a WooCommerce id: {value!r}")
    return str(value).strip()


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(src: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = src.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(entry, Mapping) for entry in value):
        raise InvalidInput(f"WooCommerce {name} must be a list of objects")
    return value
