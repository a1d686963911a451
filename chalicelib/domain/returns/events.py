"""Return events from outside, in the domain's words: a channel's return, a 3PL's receipt and inspection."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from chalicelib.domain.returns.model import Outcome


@dataclass(frozen=True)
class ChannelReturnLine:
    quantity: int
    line_id: str | None = None  # the canonical order's line_id (the channel's line item id)
    sku: str | None = None  # when the channel names only the SKU (Amazon's report)
    reason: str = "other"


@dataclass(frozen=True)
class ChannelReturn:
    """A return opened, approved, declined or closed at the channel (Shopify `returns/*`, Amazon's returns
    report). `external_return_id` is the channel's id (Shopify Return gid, Amazon RMA id): the hub keeps
    one return per id however often it hears of it."""

    channel: str
    store: str
    external_order_id: str
    external_return_id: str
    status: str  # requested | open (approved) | declined | closed | cancelled
    lines: tuple[ChannelReturnLine, ...]
    at: datetime
    # The channel already gave the customer a label (Amazon prepaid labels, Shopify's return label).
    label_provided: bool = False
    tracking_number: str | None = None
    carrier: str | None = None
    resolution: str = "refund"
    # What the channel refunded itself, when it did (Amazon refunds merchant-fulfilled returns).
    refunded: Decimal | None = None


@dataclass(frozen=True)
class ReturnedUnit:
    quantity: int
    sku: str | None = None
    line_id: str | None = None
    outcome: Outcome | None = None  # inspected only


@dataclass(frozen=True)
class ReturnEvent:
    """A 3PL's signed `return.received` or `return.inspected` event about an expected return."""

    event_id: str
    provider: str
    kind: str  # received | inspected
    return_id: str  # the hub's return id, as the hub gave it when announcing the return
    at: datetime
    units: tuple[ReturnedUnit, ...] = field(default_factory=tuple)
