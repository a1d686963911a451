"""The canonical order: the one shape every channel's order is normalised into (DESIGN.md §3)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator, model_validator

# Money travels as a decimal string ("129.90"), never as a JSON number.
Amount = Annotated[Decimal, PlainSerializer(lambda d: f"{d:f}", return_type=str, when_used="json")]


class OrderStatus(StrEnum):
    RECEIVED = "RECEIVED"
    FRAUD_REVIEW = "FRAUD_REVIEW"
    APPROVED = "APPROVED"
    PAYMENT_PENDING = "PAYMENT_PENDING"
    PAID = "PAID"
    FULFILMENT_REQUESTED = "FULFILMENT_REQUESTED"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    ON_HOLD = "ON_HOLD"
    CANCELLED = "CANCELLED"
    RETURN_REQUESTED = "RETURN_REQUESTED"
    RETURNED = "RETURNED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    FAILED = "FAILED"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(_Part):
    name: str | None = None
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None


class Customer(_Part):
    email: str | None = None
    name: str | None = None
    phone: str | None = None


class Line(_Part):
    line_id: str
    sku: str | None = None
    title: str
    quantity: int = Field(ge=0)
    unit_price: Amount
    discount: Amount = Decimal(0)
    tax: Amount = Decimal(0)
    # quantity × unit_price − discount, before tax.
    total: Amount


class Totals(_Part):
    # Σ line totals.
    subtotal: Amount
    # Order-level discount on top of line discounts.
    discount: Amount = Decimal(0)
    shipping: Amount = Decimal(0)
    tax: Amount = Decimal(0)
    # subtotal − discount + shipping + tax, as the channel computed it (tax left out when included).
    total: Amount
    # True when prices already include tax (EU/UK VAT shops): `tax` is then a part of the prices.
    taxes_included: bool = False


class Payment(_Part):
    source: str | None = None
    status: str | None = None
    amount_authorized: Amount = Decimal(0)
    amount_captured: Amount = Decimal(0)
    amount_refunded: Amount = Decimal(0)
    reference: str | None = None
    # Paid (wholly or partly) with vouchers and store credit: [{"kind": "voucher"|"store_credit", "code"?,
    # "amount"}] (an addition to DESIGN.md's shape). Redeemed by the payment stage before the rest is taken;
    # what was redeemed shows in the history (`credit_redeem`), not here.
    credits: list[dict[str, Any]] = Field(default_factory=list)


class Fraud(_Part):
    decision: str | None = None
    score: int | None = None
    reasons: list[str] = Field(default_factory=list)


class Parcel(_Part):
    """One box of a shipment as the carrier tracks it (an addition to DESIGN.md's shape)."""

    tracking_number: str
    carrier: str
    # pre_transit, in_transit, out_for_delivery, delivered, failed_attempt, returned_to_sender, exception
    status: str = "pre_transit"
    status_detail: str | None = None
    lines: list[dict[str, Any]] = Field(default_factory=list)
    estimated_at: datetime | None = None
    delivered_at: datetime | None = None
    last_event_at: datetime | None = None


class Shipment(_Part):
    shipment_id: str
    # [{"line_id", "sku", "quantity"}]: what this shipment is to carry.
    lines: list[dict[str, Any]] = Field(default_factory=list)
    carrier: str | None = None
    tracking_number: str | None = None
    # allocated | backordered | requested | partially_shipped | shipped | delivered | cancelled | returned
    status: str | None = None
    promised_at: datetime | None = None
    estimated_at: datetime | None = None
    delivered_at: datetime | None = None
    # Additions to DESIGN.md's shape (README "The canonical order"): where it ships from, what the 3PL
    # has shipped so far, the parcels, and what operators should look at.
    warehouse: str | None = None
    provider: str | None = None
    fulfilment_order_id: str | None = None
    shipped_lines: list[dict[str, Any]] = Field(default_factory=list)
    parcels: list[Parcel] = Field(default_factory=list)
    provider_shipments: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    last_event_at: datetime | None = None


class Publication(_Part):
    """One milestone in the order's outbox for its channel (an addition to DESIGN.md's shape)."""

    publication_id: str
    kind: str  # paid | shipped | delivered | cancelled | refunded
    status: str = "pending"  # pending | sent | skipped | failed
    created_at: datetime
    detail: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    last_error: str | None = None
    sent_at: datetime | None = None
    reference: dict[str, Any] = Field(default_factory=dict)
    # While a publisher tells the channel, others leave it alone until then (a crashed one's claim lapses).
    claimed_until: datetime | None = None


class HistoryEntry(_Part):
    at: datetime
    event: str
    detail: dict[str, Any] = Field(default_factory=dict)


class Order(BaseModel):
    """An order as the hub knows it. Channel-owned fields come from normalisation; the rest is the hub's."""

    model_config = ConfigDict(extra="forbid")

    order_id: str
    channel: str
    store: str
    external_id: str
    external_number: str | None = None
    status: OrderStatus = OrderStatus.RECEIVED
    currency: str
    placed_at: datetime
    updated_at: datetime
    customer: Customer = Field(default_factory=Customer)
    shipping_address: Address | None = None
    billing_address: Address | None = None
    lines: list[Line]
    totals: Totals
    payment: Payment = Field(default_factory=Payment)
    # Channel-owned: what the channel withheld when the order was read, "<field> (<why>)" each, e.g.
    # "shipping_address (restricted data token refused)"; emptied by a later read that got it.
    missing: list[str] = Field(default_factory=list)
    fraud: Fraud = Field(default_factory=Fraud)
    shipments: list[Shipment] = Field(default_factory=list)
    returns: list[dict[str, Any]] = Field(default_factory=list)
    # The outbox: what the channel must still learn (pending) and what it has learnt (sent).
    publications: list[Publication] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        code = value.upper()
        if len(code) != 3 or not code.isalpha():
            raise ValueError("currency must be an ISO 4217 code")
        return code

    @field_validator("placed_at", "updated_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamps must carry a time zone")
        try:
            return value.astimezone(UTC)
        except OverflowError:
            # 9999-12-31T23:00-05:00 is past datetime's last UTC instant.
            raise ValueError("timestamp out of range") from None

    @model_validator(mode="after")
    def _payment_in_minor_units(self) -> Order:
        from chalicelib.domain.money import to_amount

        p = self.payment
        self.payment = p.model_copy(
            update={
                name: to_amount(getattr(p, name), self.currency)
                for name in ("amount_authorized", "amount_captured", "amount_refunded")
            }
        )
        return self

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def record(self, event: str, at: datetime, **detail: Any) -> None:
        self.history.append(HistoryEntry(at=at, event=event, detail=detail))


def derive_order_id(channel: str, store: str, external_id: str) -> str:
    """A stable id for a channel's order, usable as a Step Functions execution name (≤ 80, [A-Za-z0-9_-])."""
    digest = hashlib.sha256(f"{channel}\x1f{store}\x1f{external_id}".encode()).digest()
    return "ord_" + base64.b32encode(digest[:15]).decode().lower()


def utcnow() -> datetime:
    return datetime.now(UTC)
