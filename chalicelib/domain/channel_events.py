"""What every channel adapter turns a channel's payload into: an order snapshot, a refund or state notice,
or a return opened (or changed) at the channel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from chalicelib.domain.order import Order
from chalicelib.domain.returns.events import ChannelReturn


class ChannelState(StrEnum):
    """Where the channel itself says the order is (not the hub's own lifecycle status)."""

    OPEN = "open"  # placed; not paid, or payment pending at the channel
    AUTHORIZED = "authorized"  # the channel holds an authorisation (e.g. Shopify financial_status authorized)
    PAID = "paid"  # the channel has the money (captured)
    PARTIALLY_FULFILLED = "partially_fulfilled"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DELETED = "deleted"  # WooCommerce order.deleted (trashed); order.restored brings it back


@dataclass(frozen=True)
class OrderSnapshot:
    """The channel's whole current view of one order.

    `order` is a canonical order with every channel-owned field filled (ids, currency, placed_at,
    updated_at = the channel's own last-modified time, customer, addresses, lines, totals) and
    `payment` as the channel reports it (source, status, amounts). Hub-owned fields (status,
    fraud, shipments, history) are left at their defaults. `order.updated_at` is the fence: a
    snapshot never replaces a stored one with a later `updated_at`.
    """

    order: Order
    state: ChannelState


@dataclass(frozen=True)
class RefundNotice:
    """A refund made at the channel (Shopify `refunds/create`): an event on an order, not a snapshot."""

    channel: str
    store: str
    external_order_id: str
    refund_id: str
    amount: Decimal  # in the order's currency, exact, minor units
    currency: str | None
    created_at: datetime
    line_ids: tuple[str, ...]  # canonical line_id values refunded (may be empty: amount-only refund)
    reason: str | None = None


@dataclass(frozen=True)
class StateNotice:
    """A change of the channel's state of an order, without the order (WooCommerce's bare deletion)."""

    channel: str
    store: str
    external_order_id: str
    state: ChannelState


ChannelEvent = OrderSnapshot | RefundNotice | StateNotice | ChannelReturn
