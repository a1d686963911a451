"""A return as the hub keeps it: one entry of the order's `returns` list, typed (DESIGN.md §7).

The order's `returns` list also holds the fulfilment stage's `return_expected` notes for cancelled
shipments (a parcel coming back to sender); a customer's return is told apart by its `return_id`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.domain.order import Amount, Order
from chalicelib.domain.returns.kits import counted, whole_kits


class ReturnStatus(StrEnum):
    """Where a return is. RESOLVED, REJECTED and EXPIRED are final."""

    REQUESTED = "requested"
    APPROVED = "approved"
    LABEL_SENT = "label_sent"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    INSPECTED = "inspected"
    RESOLVED = "resolved"
    REJECTED = "rejected"
    EXPIRED = "expired"  # the parcel never came back within the policy's deadline


FINAL_RETURN_STATUSES = frozenset({ReturnStatus.RESOLVED, ReturnStatus.REJECTED, ReturnStatus.EXPIRED})
# The order of the forward path: a late or repeated event never moves a return back.
RETURN_PATH = (
    ReturnStatus.REQUESTED,
    ReturnStatus.APPROVED,
    ReturnStatus.LABEL_SENT,
    ReturnStatus.IN_TRANSIT,
    ReturnStatus.RECEIVED,
    ReturnStatus.INSPECTED,
    ReturnStatus.RESOLVED,
)


class Resolution(StrEnum):
    REFUND = "refund"  # to the original method (card through Stripe, or the channel's own)
    STORE_CREDIT = "store_credit"  # a balance on the customer's account
    VOUCHER = "voucher"  # a code redeemable on a later order
    EXCHANGE = "exchange"  # a replacement order, the value difference charged or refunded


class Outcome(StrEnum):
    """The 3PL's inspection verdict per unit."""

    RESTOCK = "restock"  # sellable: back to stock
    SECOND_QUALITY = "second_quality"  # sellable as seconds, not as new
    REPAIR = "repair"  # sent to a repair vendor
    SCRAP = "scrap"  # destroyed


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReturnLine(_Part):
    line_id: str
    sku: str | None = None
    quantity: int = Field(gt=0)
    reason: str = "other"
    # A kit's components coming back, [{"sku", "quantity"}] in units in all (not per kit): the 3PL receives,
    # inspects and restocks components. `quantity` is then the kit units they come from.
    components: list[dict[str, Any]] = Field(default_factory=list)
    # The kit's definition when the return was opened ([{"sku", "quantity" per kit, "share"?}], kits.py);
    # [] for a SKU that is no kit.
    kit: list[dict[str, Any]] = Field(default_factory=list)


class InspectedUnit(_Part):
    line_id: str | None = None
    sku: str | None = None
    quantity: int = Field(gt=0)
    outcome: Outcome


class ReturnLabel(_Part):
    carrier: str
    tracking_number: str
    label_url: str | None = None
    paid_by: str = "merchant"  # merchant | customer
    cost: Amount = Decimal(0)  # what the label costs the payer (deducted from the refund when customer)
    shipment_ref: str | None = None  # the carrier's shipment id


class ReturnMoney(_Part):
    """What the return gives back, computed once at resolution and kept (never recomputed afterwards)."""

    lines: Amount = Decimal(0)  # the returned lines' share of what was paid (discounts taken off)
    tax: Amount = Decimal(0)
    shipping: Amount = Decimal(0)
    restocking_fee: Amount = Decimal(0)
    label_cost: Amount = Decimal(0)
    bonus: Amount = Decimal(0)  # store-credit bonus (credit and vouchers only)
    total: Amount = Decimal(0)  # what the customer gets, by `method`
    method: str | None = None  # stripe | channel | store_credit | voucher | exchange
    reference: str | None = None  # Stripe refund id, voucher code, credit movement id, replacement order id


class OrderReturn(_Part):
    return_id: str  # "<order_id>-r<number>": also the return workflow's execution name
    number: int = Field(gt=0)
    order_id: str
    source: str  # api | status_page | shopify | amazon
    status: ReturnStatus = ReturnStatus.REQUESTED
    resolution: Resolution = Resolution.REFUND
    lines: list[ReturnLine]
    requested_at: datetime
    updated_at: datetime
    # The channel's own id of this return (Shopify Return gid, Amazon RMA id): duplicates collapse on it.
    external_id: str | None = None
    # The caller's Idempotency-Key and a hash of its body (API requests only).
    idempotency_key: str | None = None
    request_hash: str | None = None
    # Whether the hub sends a label (False when the channel already gave the customer one: Amazon, Shopify).
    label_needed: bool = True
    label: ReturnLabel | None = None
    received_at: datetime | None = None
    inspected: list[InspectedUnit] = Field(default_factory=list)
    money: ReturnMoney | None = None
    # Exchange: what the replacement carries [{"sku", "quantity"}] and the replacement order once made.
    exchange_lines: list[dict[str, Any]] = Field(default_factory=list)
    exchange_order_id: str | None = None
    # An operator's override of a policy rule: {"rule", "by", "note"}.
    override: dict[str, Any] | None = None
    # Why the return was refused (rejected) or why a step refused an event: {"rule", "detail"}.
    refusal: dict[str, Any] | None = None
    # Waits that ran past their deadline (parcel, inspection): shown to operators.
    flags: list[str] = Field(default_factory=list)
    execution_arn: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_RETURN_STATUSES


def return_id(order_id: str, number: int) -> str:
    """The return's id and workflow execution name (≤ 80 characters of [A-Za-z0-9_-])."""
    return f"{order_id}-r{number}"


def returns_of(order: Order) -> list[OrderReturn]:
    """The order's customer returns (entries with a return_id), oldest first."""
    return [OrderReturn.model_validate(r) for r in order.returns if isinstance(r, dict) and "return_id" in r]


def find_return(order: Order, rid: str) -> OrderReturn | None:
    return next((r for r in returns_of(order) if r.return_id == rid), None)


def put_return(order: Order, ret: OrderReturn) -> None:
    """Store `ret` in the order (replacing the entry with its id, or appended)."""
    entry = ret.model_dump(mode="json", exclude_none=True)

    def same(entry: Any) -> bool:
        return isinstance(entry, dict) and entry.get("return_id") == ret.return_id

    index = next((i for i, r in enumerate(order.returns) if same(r)), len(order.returns))
    kept = [r for r in order.returns if not same(r)]
    kept.insert(index, entry)
    order.returns = kept


def _counts(ret: OrderReturn) -> bool:
    """Whether a return holds its units (a rejected or expired one gave them back to the customer)."""
    return ret.status not in (ReturnStatus.REJECTED, ReturnStatus.EXPIRED)


def units_back(returns: Iterable[OrderReturn]) -> dict[str, int]:
    """Units per line in these returns (rejected and expired aside). A kit line counts whole kits: the
    components of part of a kit are back, the kit unit is not (until its other components follow)."""
    returns = list(returns)
    units: dict[str, int] = {}
    kits: dict[str, list[dict[str, Any]]] = {}
    for ret in returns:
        if not _counts(ret):
            continue
        for line in ret.lines:
            if line.kit:
                kits[line.line_id] = line.kit
            else:
                units[line.line_id] = units.get(line.line_id, 0) + line.quantity
    for line_id, kit in kits.items():
        units[line_id] = units.get(line_id, 0) + whole_kits(kit, components_back(returns, line_id))
    return units


def components_back(returns: Iterable[OrderReturn], line_id: str) -> dict[str, int]:
    """Component SKU → units of the kit line `line_id` in these returns (rejected and expired aside)."""
    back: dict[str, int] = {}
    for ret in returns:
        for line in ret.lines if _counts(ret) else ():
            if line.line_id == line_id:
                for sku, n in counted(line.components).items():
                    back[sku] = back.get(sku, 0) + n
    return back


def returned_units(order: Order, *, excluding: str | None = None) -> dict[str, int]:
    """Units per line already in a return that is not rejected or expired (what cannot be returned again)."""
    return units_back(r for r in returns_of(order) if r.return_id != excluding)


def delivered_units(order: Order) -> dict[str, int]:
    """Units per line that reached the customer (delivered shipments' shipped lines; an order completed
    without shipments, e.g. digital goods, counts its lines)."""
    units: dict[str, int] = {}
    delivered = [s for s in order.shipments if s.status == "delivered"]
    for shipment in delivered:
        for shipped in shipment.shipped_lines or shipment.lines:
            lid = str(shipped.get("line_id"))
            units[lid] = units.get(lid, 0) + int(shipped.get("quantity") or 0)
    if not order.shipments:
        for line in order.lines:
            units[line.line_id] = units.get(line.line_id, 0) + line.quantity
    return units


def delivered_at(order: Order) -> datetime | None:
    """When the customer received the order (the last delivered shipment); None when never delivered."""
    times = [s.delivered_at for s in order.shipments if s.status == "delivered" and s.delivered_at]
    if times:
        return max(times)
    done = [h.at for h in order.history if h.event in ("delivered", "completed")]
    return max(done) if done else None
