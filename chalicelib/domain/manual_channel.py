"""The `manual` channel: orders an operator or a back-office system posts in canonical form."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from chalicelib.domain import money
from chalicelib.domain.credit.model import normalise_code
from chalicelib.domain.credit.redemption import MAX_CREDITS
from chalicelib.domain.delivery import Delivery
from chalicelib.domain.errors import IdempotencyKeyReused, InvalidInput
from chalicelib.domain.order import (
    Address,
    Customer,
    Line,
    Order,
    Payment,
    Totals,
    derive_order_id,
)
from chalicelib.domain.ports import RawArchive
from chalicelib.domain.validation import MAX_QUANTITY
from chalicelib.domain.webhooks import load_json

CHANNEL = "manual"


class ManualLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    line_id: str | None = None
    sku: str | None = None
    title: str
    quantity: int = Field(gt=0, le=MAX_QUANTITY)
    unit_price: str
    discount: str = "0"
    tax: str = "0"


class ManualTotals(BaseModel):
    model_config = ConfigDict(extra="forbid")
    discount: str = "0"
    shipping: str = "0"
    tax: str | None = None
    total: str | None = None


class ManualCredit(BaseModel):
    """Part of the order paid with a voucher (its code) or the customer's store credit."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["voucher", "store_credit"]
    code: str | None = Field(default=None, max_length=64)
    amount: str = Field(min_length=1, max_length=40)

    @model_validator(mode="after")
    def _code_for_vouchers_only(self) -> ManualCredit:
        if self.kind == "store_credit":
            if self.code is not None:
                raise ValueError("store credit takes no code")
            return self
        code = normalise_code(self.code)
        if code is None:
            raise ValueError("a voucher needs its code: 16 letters and digits, e.g. ABCD-EFGH-JKLM-NPQR")
        self.code = code
        return self


class ManualPayment(BaseModel):
    """Where the order's money is: a Stripe PaymentIntent the hub captures, or money taken elsewhere."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=64)
    reference: str | None = Field(default=None, max_length=255)
    # Already taken (cash, bank transfer received): the payment stage records it.
    amount_captured: str = "0"
    # Vouchers and store credit paying part or all of the order (redeemed by the payment stage).
    credits: list[ManualCredit] = Field(default_factory=list, max_length=MAX_CREDITS)

    @model_validator(mode="after")
    def _stripe_needs_intent(self) -> ManualPayment:
        if self.source == "stripe" and not (self.reference or "").startswith("pi_"):
            raise ValueError("a stripe payment needs its PaymentIntent id (pi_...) as reference")
        return self

    @model_validator(mode="after")
    def _each_account_once(self) -> ManualPayment:
        accounts = [c.code or c.kind for c in self.credits]
        if len(set(accounts)) != len(accounts):
            raise ValueError("each voucher code, and store credit, at most once")
        return self


class ManualOrder(BaseModel):
    """What `POST /api/orders` accepts: the canonical order's channel-owned fields."""

    model_config = ConfigDict(extra="forbid")
    store: str = Field(default="default", min_length=1, max_length=200)
    external_id: str = Field(min_length=1, max_length=200)
    external_number: str | None = None
    currency: str = Field(min_length=3, max_length=3)
    placed_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    customer: Customer = Field(default_factory=Customer)
    shipping_address: Address | None = None
    billing_address: Address | None = None
    lines: list[ManualLine] = Field(min_length=1)
    totals: ManualTotals = Field(default_factory=ManualTotals)
    payment: ManualPayment | None = None

    @field_validator("placed_at", "updated_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        try:
            return None if value is None else value.astimezone(UTC)
        except OverflowError:
            raise ValueError("timestamp out of range") from None


def parse_manual_order(body: Any) -> ManualOrder:
    try:
        return ManualOrder.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(_problems(exc)) from exc


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )


def normalise_manual(payload: dict[str, Any]) -> Order:
    """Turn a manual order into a canonical one; missing totals are computed, given ones are kept."""
    src = parse_manual_order(payload)
    cur = src.currency.upper()
    try:
        lines = [_line(i, line, cur) for i, line in enumerate(src.lines, start=1)]
        subtotal = sum((line.total for line in lines), Decimal(0))
        discount = money.exact_amount(src.totals.discount, cur)
        shipping = money.exact_amount(src.totals.shipping, cur)
        line_tax = sum((line.tax for line in lines), Decimal(0))
        tax = money.exact_amount(src.totals.tax, cur) if src.totals.tax is not None else line_tax
        computed_total = subtotal - discount + shipping + tax
        total = money.exact_amount(src.totals.total, cur) if src.totals.total is not None else computed_total
        payment = Payment()
        if src.payment is not None:
            captured = money.exact_amount(src.payment.amount_captured, cur)
            payment = Payment(
                source=src.payment.source,
                reference=src.payment.reference,
                status="captured" if captured > 0 else "pending",
                amount_authorized=captured,
                amount_captured=captured,
                credits=_credits(src.payment.credits, cur, total - captured),
            )
    except money.MoneyError as exc:
        raise InvalidInput(str(exc)) from exc
    return Order(
        order_id=derive_order_id(CHANNEL, src.store, src.external_id),
        channel=CHANNEL,
        store=src.store,
        external_id=src.external_id,
        external_number=src.external_number,
        currency=cur,
        placed_at=src.placed_at,
        updated_at=src.updated_at or src.placed_at,
        customer=src.customer,
        shipping_address=src.shipping_address,
        billing_address=src.billing_address,
        lines=lines,
        totals=Totals(subtotal=subtotal, discount=discount, shipping=shipping, tax=tax, total=total),
        payment=payment,
    )


def _credits(credits: list[ManualCredit], currency: str, due: Decimal) -> list[dict[str, Any]]:
    """The credits as the canonical payment keeps them: each amount exact and positive, all of them at
    most what the order still owes."""
    kept = []
    for credit in credits:
        amount = money.exact_amount(credit.amount, currency)
        if amount <= 0:
            raise money.MoneyError(f"a credit's amount must be positive, not {credit.amount!r}")
        entry: dict[str, Any] = {"kind": credit.kind, "amount": f"{amount:f}"}
        if credit.code is not None:
            entry["code"] = credit.code
        kept.append(entry)
    paid = sum((Decimal(c["amount"]) for c in kept), Decimal(0))
    if paid > max(due, Decimal(0)):
        raise money.MoneyError(f"credits ({paid:f}) are more than the order owes ({max(due, Decimal(0)):f})")
    return kept


def _line(position: int, src: ManualLine, currency: str) -> Line:
    unit_price = money.exact_amount(src.unit_price, currency)
    discount = money.exact_amount(src.discount, currency)
    return Line(
        line_id=src.line_id or str(position),
        sku=src.sku,
        title=src.title,
        quantity=src.quantity,
        unit_price=unit_price,
        discount=discount,
        tax=money.exact_amount(src.tax, currency),
        total=unit_price * src.quantity - discount,
    )


# --- Idempotency-Key ----------------------------------------------------------------------------------

MAX_IDEMPOTENCY_KEY = 255
# Printable ASCII, as Stripe's keys (a UUID fits); no control characters, nothing that cannot be a key.
_IDEMPOTENCY_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_IDEMPOTENCY_KEY}}}")


def idempotency_key(value: str | None) -> str | None:
    """The caller's `Idempotency-Key` header, checked (None when absent)."""
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(value) or not value.strip():
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters "
            f"(got {len(value)} characters)"
        )
    return value


def body_hash(body: Any) -> str:
    """The hash of a JSON body's meaning: key order and spacing aside, 1, 1.0 and true kept apart."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def bind_idempotency_key(delivery: Delivery, raw: bytes, archive: RawArchive) -> None:
    """Keep the first body sent under the key's delivery id (the archive's first copy wins, atomically),
    then refuse this request if the kept body is another: the key names one order, never two."""
    archive.put(delivery, raw)
    kept = archive.get(delivery.delivery_id)
    if kept is not None and body_hash(load_json(kept.raw)) != body_hash(delivery.payload):
        raise IdempotencyKeyReused(
            f"Idempotency-Key {delivery.delivery_id.removeprefix('manual:')!r} was already used with "
            "another body; send a new key for a new order (the same body again is answered as before)"
        )
