"""What the status page shows, as its read side (adapters/status_board.py, adapters/stats.py) fills it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chalicelib.domain.order import Order, OrderStatus


@dataclass(frozen=True)
class OrderRow:
    """An order as a list shows it (from the index item, without parsing the whole document)."""

    order_id: str
    channel: str
    store: str
    external_id: str
    status: str
    updated_at: str
    order: Order | None = None


@dataclass
class Traffic:
    """One store's traffic for the status page."""

    channel: str
    store: str
    hour: dict[str, int] = field(default_factory=dict)
    day: dict[str, int] = field(default_factory=dict)
    last_event_at: datetime | None = None
    last_throttled_at: datetime | None = None


# No progress for this long in a status: stuck. FRAUD_REVIEW and FAILED have their own lists;
# terminal statuses never get stuck.
STUCK_AFTER: dict[OrderStatus, timedelta] = {
    OrderStatus.RECEIVED: timedelta(minutes=15),
    OrderStatus.APPROVED: timedelta(minutes=15),
    OrderStatus.PAID: timedelta(hours=1),
    OrderStatus.PAYMENT_PENDING: timedelta(days=3),
    OrderStatus.FULFILMENT_REQUESTED: timedelta(days=2),
    OrderStatus.PARTIALLY_SHIPPED: timedelta(days=5),
    OrderStatus.SHIPPED: timedelta(days=14),
    OrderStatus.DELIVERED: timedelta(hours=1),
    OrderStatus.RETURN_REQUESTED: timedelta(days=14),
    OrderStatus.ON_HOLD: timedelta(hours=4),
}


def stuck_thresholds(spec: str | None) -> dict[OrderStatus, timedelta]:
    """STUCK_AFTER with overrides from the `stuck_after` setting ("PAID=30m,SHIPPED=10d"; s, m, h or d)."""
    thresholds = dict(STUCK_AFTER)
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    for part in (spec or "").split(","):
        name, _, value = part.strip().partition("=")
        if not name:
            continue
        status, unit = OrderStatus(name.strip().upper()), value.strip()[-1:]
        if unit not in units:
            raise ValueError(f"stuck_after: {part!r} needs a unit (s, m, h or d)")
        thresholds[status] = timedelta(**{units[unit]: float(value.strip()[:-1])})
    return thresholds
