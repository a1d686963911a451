"""Amazon SP-API channel: ORDER_CHANGE notifications in, getOrder + getOrderItems out as order snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain import money
from chalicelib.domain.channel_events import ChannelState, OrderSnapshot
from chalicelib.domain.errors import InvalidInput, MalformedDelivery
from chalicelib.domain.order import Address, Customer, Line, Order, Payment, Totals, derive_order_id

CHANNEL = "amazon"
ORDER_CHANGE = "ORDER_CHANGE"

# Orders v0 OrderStatus → where the channel says the order is.
_STATES: dict[str, ChannelState] = {
    "Pending": ChannelState.OPEN,
    "PendingAvailability": ChannelState.OPEN,
    "Unshipped": ChannelState.PAID,
    "PartiallyShipped": ChannelState.PARTIALLY_FULFILLED,
    "Shipped": ChannelState.FULFILLED,
    "InvoiceUnconfirmed": ChannelState.FULFILLED,
    "Canceled": ChannelState.CANCELLED,
    "Unfulfillable": ChannelState.CANCELLED,
}

# Amazon collects the buyer's money itself once an order leaves Pending; the seller never sees a card.
_PAYMENT_STATUS: dict[str, str] = {
    "Pending": "pending",
    "PendingAvailability": "pending",
    "Unshipped": "captured",
    "PartiallyShipped": "captured",
    "Shipped": "captured",
    "InvoiceUnconfirmed": "captured",
    "Canceled": "voided",
    "Unfulfillable": "voided",
}

# Each marketplace sells in one currency: the last resort when a Pending order carries no amounts at all.
MARKETPLACE_CURRENCY: dict[str, str] = {
    "ATVPDKIKX0DER": "USD",  # US
    "A2EUQ1WTGCTBG2": "CAD",  # CA
    "A1AM78C64UM0Y8": "MXN",  # MX
    "A2Q3Y263D00KWC": "BRL",  # BR
    "A1F83G8C2ARO7P": "GBP",  # UK
    "A1PA6795UKMFR9": "EUR",  # DE
    "A13V1IB3VIYZZH": "EUR",  # FR
    "APJ6JRA9NG5V4": "EUR",  # IT
    "A1RKKUPIHCS9HS": "EUR",  # ES
    "A1805IZSGTT6HS": "EUR",  # NL
    "AMEN7PMS3EDWL": "EUR",  # BE
    "A28R8C7NBKEWEA": "EUR",  # IE
    "A2NODRKZP88ZB9": "SEK",  # SE
    "A1C3SOZRARQ6R3": "PLN",  # PL
    "A33AVAJ2PDY3EV": "TRY",  # TR
    "A2VIGQ35RCS4UG": "AED",  # AE
    "A21TJRUUN4KGV": "INR",  # IN
    "A1VC38T7YXB528": "JPY",  # JP
    "A39IBJ37TRP1C6": "AUD",  # AU
    "A19VAU5U5O7RUS": "SGD",  # SG
}


@dataclass(frozen=True)
class OrderChange:
    """What an ORDER_CHANGE notification tells: which order to fetch, and a hint of its new status."""

    notification_id: str  # NotificationMetadata.NotificationId: the dedup key
    seller_id: str  # selects the connection (the hub's `store`)
    amazon_order_id: str
    marketplace_id: str
    order_status: str | None  # Summary.OrderStatus: a hint only; getOrder is the truth
    change_type: str  # OrderStatusChange | BuyerRequestedChange
    event_time: datetime
    change_reason: str | None = None


def parse_order_change_notification(body: Mapping[str, Any]) -> OrderChange | None:
    """An SQS message body (the notification JSON itself) → the change; None for other notification types."""
    if not isinstance(body, Mapping):
        raise MalformedDelivery("an SP-API notification must be a JSON object")
    notification_type = body.get("NotificationType")
    if not isinstance(notification_type, str) or not notification_type:
        raise MalformedDelivery("not an SP-API notification: NotificationType is missing")
    if notification_type != ORDER_CHANGE:
        return None

    change = _object(_object(body, "Payload"), "OrderChangeNotification")
    summary = _object(change, "Summary")
    trigger = change.get("OrderChangeTrigger")
    reason = trigger.get("ChangeReason") if isinstance(trigger, Mapping) else None
    status = summary.get("OrderStatus")
    try:
        event_time = _timestamp(_text(body, "EventTime"), "EventTime")
    except InvalidInput as exc:
        raise MalformedDelivery(str(exc)) from exc
    return OrderChange(
        notification_id=_text(_object(body, "NotificationMetadata"), "NotificationId"),
        seller_id=_text(change, "SellerId"),
        amazon_order_id=_text(change, "AmazonOrderId"),
        marketplace_id=_text(summary, "MarketplaceId"),
        order_status=status if isinstance(status, str) and status else None,
        change_type=_text(change, "OrderChangeType"),
        event_time=event_time,
        change_reason=reason if isinstance(reason, str) else None,
    )


def _object(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, Mapping):
        raise MalformedDelivery(f"ORDER_CHANGE notification without {key}")
    return value


def _text(parent: Mapping[str, Any], key: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedDelivery(f"ORDER_CHANGE notification without {key}")
    return value.strip()


def normalise_amazon_order(
    order: Mapping[str, Any],
    items: list[dict[str, Any]],
    store: str,
    address: Mapping[str, Any] | None = None,
) -> OrderSnapshot:
    """getOrder's payload and getOrderItems' OrderItems (all pages) → the canonical order and Amazon's state.

    `address` is getOrderAddress's ShippingAddress (fetched with a restricted data token): getOrder
    shows a merchant-fulfilled order's address without name, street lines and phone. When given and
    not empty it is the shipping address and the recipient's name and phone, each field it lacks
    falling back to getOrder's; otherwise getOrder's ShippingAddress serves alone, as before.

    Amazon's money is per item: ItemPrice is the price of the whole quantity, PromotionDiscount,
    ItemTax and the shipping figures likewise. The order's own OrderTotal is kept as the total
    (absent while Pending, then computed); a difference is flagged downstream, never hidden.
    """
    amazon_order_id = _required(order, "AmazonOrderId")
    status = _required(order, "OrderStatus")
    state = _STATES.get(status)
    if state is None:
        raise InvalidInput(f"amazon order {amazon_order_id}: unknown OrderStatus {status!r}")
    if not items:
        raise InvalidInput(f"amazon order {amazon_order_id}: getOrderItems returned no items")
    strays = [i for i, item in enumerate(items) if not isinstance(item, Mapping)]
    if strays:
        raise InvalidInput(f"amazon order {amazon_order_id}: OrderItems[{strays[0]}] is not an object")
    currency = _currency(order, items, amazon_order_id)
    try:
        lines, totals = _lines_and_totals(order, items, currency)
    except money.MoneyError as exc:
        raise InvalidInput(f"amazon order {amazon_order_id}: {exc}") from exc

    ship_to = _ship_to(order, address)
    buyer = order.get("BuyerInfo") if isinstance(order.get("BuyerInfo"), Mapping) else {}
    canonical = Order(
        order_id=derive_order_id(CHANNEL, store, amazon_order_id),
        channel=CHANNEL,
        store=store,
        external_id=amazon_order_id,
        external_number=amazon_order_id,
        currency=currency,
        placed_at=_timestamp(_required(order, "PurchaseDate"), "PurchaseDate"),
        updated_at=_timestamp(_required(order, "LastUpdateDate"), "LastUpdateDate"),
        customer=Customer(
            email=_optional(buyer, "BuyerEmail"),
            # Amazon withholds PII without a restricted data token: either name may be missing.
            name=_optional(ship_to, "Name") or _optional(buyer, "BuyerName"),
            phone=_optional(ship_to, "Phone"),
        ),
        shipping_address=_address(ship_to) if ship_to else None,
        lines=lines,
        totals=totals,
        payment=_payment(status, totals.total),
    )
    return OrderSnapshot(order=canonical, state=state)


def _lines_and_totals(
    order: Mapping[str, Any], items: list[dict[str, Any]], currency: str
) -> tuple[list[Line], Totals]:
    """The order's lines and totals from its items' money; OrderTotal, once Amazon sets it, is the total."""
    lines = [_line(item, currency) for item in items]
    shipping = sum((_net_shipping(item, currency) for item in items), Decimal(0))
    shipping_tax = sum(
        (
            _money(item, "ShippingTax", currency) - _money(item, "ShippingDiscountTax", currency)
            for item in items
        ),
        Decimal(0),
    )
    subtotal = sum((line.total for line in lines), Decimal(0))
    tax = sum((line.tax for line in lines), Decimal(0)) + shipping_tax
    order_total = order.get("OrderTotal")
    total = _money(order, "OrderTotal", currency) if order_total else subtotal + shipping + tax
    totals = Totals(
        subtotal=subtotal, discount=money.to_amount(0, currency), shipping=shipping, tax=tax, total=total
    )
    return lines, totals


def _ship_to(order: Mapping[str, Any], address: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """getOrder's ShippingAddress overlaid with the non-null fields of getOrderAddress's, if given."""
    shown = order.get("ShippingAddress")
    ship_to: dict[str, Any] | None = {**shown} if isinstance(shown, Mapping) else None
    if isinstance(address, Mapping) and address:
        ship_to = {**(ship_to or {}), **{k: v for k, v in address.items() if v is not None}}
    return ship_to


def _payment(status: str, total: Decimal) -> Payment:
    captured = _PAYMENT_STATUS[status] == "captured"
    return Payment(
        source=CHANNEL,
        status=_PAYMENT_STATUS[status],
        amount_authorized=total if captured else Decimal(0),
        amount_captured=total if captured else Decimal(0),
    )


def _currency(order: Mapping[str, Any], items: list[dict[str, Any]], amazon_order_id: str) -> str:
    # Pending orders have no OrderTotal yet; their items usually still carry priced amounts.
    candidates = [order.get("OrderTotal")] + [item.get("ItemPrice") for item in items]
    for amount in candidates:
        if isinstance(amount, Mapping) and isinstance(amount.get("CurrencyCode"), str):
            return str(amount["CurrencyCode"]).upper()
    marketplace = order.get("MarketplaceId")
    if isinstance(marketplace, str) and marketplace in MARKETPLACE_CURRENCY:
        return MARKETPLACE_CURRENCY[marketplace]
    raise InvalidInput(f"amazon order {amazon_order_id}: no currency in OrderTotal, items or MarketplaceId")


def _line(item: Mapping[str, Any], currency: str) -> Line:
    line_id = _required(item, "OrderItemId")
    quantity = item.get("QuantityOrdered")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
        raise InvalidInput(f"amazon order item {line_id}: QuantityOrdered must be a whole number ≥ 0")
    item_price = _money(item, "ItemPrice", currency)
    discount = _money(item, "PromotionDiscount", currency)
    # ItemPrice is already price × quantity; the unit price is derived, Amazon's line figure is kept.
    unit_price = money.to_amount(item_price / quantity if quantity else 0, currency)
    sku = _optional(item, "SellerSKU")
    return Line(
        line_id=line_id,
        sku=sku,
        title=_optional(item, "Title") or sku or _optional(item, "ASIN") or line_id,
        quantity=quantity,
        unit_price=unit_price,
        discount=discount,
        # ItemTax is charged on the undiscounted price; PromotionDiscountTax gives the discount's share back.
        tax=_money(item, "ItemTax", currency) - _money(item, "PromotionDiscountTax", currency),
        total=item_price - discount,
    )


def _net_shipping(item: Mapping[str, Any], currency: str) -> Decimal:
    return _money(item, "ShippingPrice", currency) - _money(item, "ShippingDiscount", currency)


def _money(parent: Mapping[str, Any], key: str, currency: str) -> Decimal:
    """An SP-API Money object ({CurrencyCode, Amount}); absent means zero."""
    value = parent.get(key)
    if value is None:
        return money.to_amount(0, currency)
    if not isinstance(value, Mapping) or value.get("Amount") is None:
        raise money.MoneyError(f"{key} is not a Money object")
    code = value.get("CurrencyCode")
    if isinstance(code, str) and code.upper() != currency:
        raise money.MoneyError(f"{key} is in {code}, the order in {currency}")
    return money.to_amount(value["Amount"], currency)


def _address(src: Mapping[str, Any]) -> Address:
    return Address(
        name=_optional(src, "Name"),
        line1=_optional(src, "AddressLine1"),
        # Amazon splits long street addresses over up to three lines.
        line2=" ".join(p for p in (_optional(src, "AddressLine2"), _optional(src, "AddressLine3")) if p)
        or None,
        city=_optional(src, "City"),
        region=_optional(src, "StateOrRegion") or _optional(src, "County") or _optional(src, "District"),
        postal_code=_optional(src, "PostalCode"),
        country=_optional(src, "CountryCode"),
    )


def _required(src: Mapping[str, Any], key: str) -> str:
    value = src.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"amazon order: {key} is missing")
    return value.strip()


def _optional(src: Mapping[str, Any] | None, key: str) -> str | None:
    value = src.get(key) if src else None
    return value.strip() or None if isinstance(value, str) else None


def _timestamp(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{field} is not an ISO 8601 time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise InvalidInput(f"{field} has no time zone: {value!r}")
    return parsed
