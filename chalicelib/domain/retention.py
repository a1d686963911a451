"""Personal-data retention: a closed order's names, addresses and contacts are redacted once its channel's
retention period has passed, and the raw deliveries it came from are forgotten."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel

from chalicelib.domain.errors import NotFound
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Address, Customer, Order, OrderStatus
from chalicelib.domain.ports import OrderRepository

REDACTED = "[redacted]"
PERSONAL_DATA_REDACTED = "personal_data_redacted"

# Closed: nothing more will happen to the order that needs its customer (returns settle the status back
# into one of these when they end; an open return moves it to RETURN_REQUESTED). PARTIALLY_REFUNDED is
# where a delivered order rests after a partial refund or a resolved return that gave money back.
CLOSED_STATUSES = (
    OrderStatus.COMPLETED,
    OrderStatus.CANCELLED,
    OrderStatus.RETURNED,
    OrderStatus.REFUNDED,
    OrderStatus.PARTIALLY_REFUNDED,
)
# Keys under which history entries and returns may carry personal data (the status page hides the same).
_PERSONAL_KEYS = frozenset({"address", "shipping_address", "billing_address", "email", "phone", "customer"})
_OPEN_RETURN_FINAL = frozenset({"resolved", "rejected", "expired"})
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
DEFAULT_CHANNEL = "default"


@dataclass(frozen=True)
class RetentionPolicy:
    """How long after closing an order keeps its personal data: a default and per-channel periods."""

    default: timedelta
    channels: Mapping[str, timedelta] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> RetentionPolicy:
        """`default=90d,amazon=30d` (s, m, h or d); a channel not named takes the default."""
        periods: dict[str, timedelta] = {}
        for part in spec.split(","):
            name, _, value = part.strip().partition("=")
            name, value = name.strip().lower(), value.strip()
            if not name:
                continue
            unit = value[-1:]
            if unit not in _UNITS or not value[:-1].replace(".", "", 1).isdigit():
                raise ValueError(f"retention {part.strip()!r}: a number and a unit (s, m, h or d)")
            period = timedelta(**{_UNITS[unit]: float(value[:-1])})
            if period <= timedelta(0):
                raise ValueError(f"retention {part.strip()!r} must be positive")
            periods[name] = period
        if DEFAULT_CHANNEL not in periods:
            raise ValueError("retention needs a default period (default=90d)")
        default = periods.pop(DEFAULT_CHANNEL)
        return cls(default=default, channels=periods)

    def period(self, channel: str) -> timedelta:
        return self.channels.get(channel, self.default)

    def lanes(self) -> list[Lane]:
        """One lane per distinct period: the channels that have it (the default lane: every channel not
        named with another period). Each lane keeps its own cursor, so a short period is not held up by
        a long one."""
        others = {c for c, p in self.channels.items() if p != self.default}
        lanes = [Lane("*", self.default, frozenset(others), exclude=True)]
        by_period: dict[timedelta, set[str]] = {}
        for channel in others:
            by_period.setdefault(self.channels[channel], set()).add(channel)
        for period, channels in sorted(by_period.items()):
            lanes.append(Lane("+".join(sorted(channels)), period, frozenset(channels), exclude=False))
        return lanes


@dataclass(frozen=True)
class Lane:
    name: str
    period: timedelta
    channels: frozenset[str]
    exclude: bool  # True: every channel but these

    def takes(self, channel: str) -> bool:
        return (channel in self.channels) != self.exclude


@dataclass(frozen=True)
class ClosedOrderRef:
    """An order as the by-status index lists it: its position (the index's sort key) and channel."""

    position: str
    order_id: str
    channel: str


class ClosedOrders(Protocol):
    def closed(
        self, status: OrderStatus, *, after: str | None, until: datetime, limit: int
    ) -> list[ClosedOrderRef]:
        """Orders that entered `status` at or before `until`, past position `after`, oldest first."""
        ...


class RetentionCursor(Protocol):
    def position(self, lane: str) -> str | None: ...

    def move(self, lane: str, position: str) -> None: ...


class DeliveryArchive(Protocol):
    def forget(self, delivery_id: str) -> None:
        """Delete the archived delivery's bytes (nothing there is fine)."""
        ...


@dataclass
class RetentionRun:
    read: int = 0
    redacted: int = 0
    already: int = 0  # redacted before (a run that stopped before moving its cursor)
    other_channel: int = 0  # another lane's order
    waiting: int = 0  # an open return still needs the customer: the cursor waits before it
    deliveries_forgotten: int = 0
    more: list[str] = field(default_factory=list)  # lanes that met their limit (a backlog)

    def to_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "redacted": self.redacted,
            "already": self.already,
            "other_channel": self.other_channel,
            "waiting": self.waiting,
            "deliveries_forgotten": self.deliveries_forgotten,
            "more": list(self.more),
        }


def is_redacted(order: Order) -> bool:
    return any(entry.event == PERSONAL_DATA_REDACTED for entry in order.history)


def has_open_return(order: Order) -> bool:
    return any(str(r.get("status", "")).lower() not in _OPEN_RETURN_FINAL for r in order.returns)


def delivery_ids(order: Order) -> list[str]:
    """The deliveries applied to the order (each `received`/update entry names its delivery)."""
    seen: dict[str, None] = {}
    for entry in order.history:
        value = entry.detail.get("delivery_id")
        if isinstance(value, str) and value:
            seen.setdefault(value, None)
    return list(seen)


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if k in _PERSONAL_KEYS and v else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _blank(part: BaseModel | None, keep: Iterable[str] = ()) -> dict[str, Any]:
    if part is None:
        return {}
    return {k: (v if k in keep or v is None else REDACTED) for k, v in part.model_dump().items()}


def redact(order: Order, at: datetime, reason: str) -> None:
    """Names, addresses and contacts become "[redacted]" (the e-mail becomes empty: a marker would look like
    one shared customer to whatever keys on it); the country stays (tax, carriers, statistics). Money, lines,
    statuses, shipments and returns stay as they were."""
    order.customer = Customer(
        name=REDACTED if order.customer.name else None,
        email=None,
        phone=REDACTED if order.customer.phone else None,
    )
    if order.shipping_address is not None:
        order.shipping_address = Address(**_blank(order.shipping_address, keep=("country",)))
    if order.billing_address is not None:
        order.billing_address = Address(**_blank(order.billing_address, keep=("country",)))
    order.returns = [_scrub(r) for r in order.returns]
    for n, entry in enumerate(order.history):
        if any(k in _PERSONAL_KEYS for k in entry.detail):
            order.history[n] = entry.model_copy(update={"detail": _scrub(entry.detail)})
    order.record(PERSONAL_DATA_REDACTED, at, reason=reason)


def keep_redacted(current: Order, newer: Order) -> Order:
    """A channel's later copy of a redacted order must not bring its personal data back."""
    if not is_redacted(current):
        return newer
    return newer.model_copy(
        update={
            "customer": current.customer,
            "shipping_address": current.shipping_address,
            "billing_address": current.billing_address,
        }
    )


def redact_due(
    *,
    closed: ClosedOrders,
    orders: OrderRepository,
    archive: DeliveryArchive,
    cursor: RetentionCursor,
    policy: RetentionPolicy,
    now: Callable[[], datetime],
    limit_per_lane: int = 50,
) -> RetentionRun:
    """One bounded pass: per closed status and lane, the orders closed longer ago than the lane's period,
    from where the lane's cursor stopped. Idempotent: a redacted order is left as it is, and its archived
    deliveries are forgotten before the order records its redaction, so a crash in between repeats both."""
    run = RetentionRun()
    at = now()
    for status in CLOSED_STATUSES:
        for lane in policy.lanes():
            name = f"{status.value}#{lane.name}"
            refs = closed.closed(
                status, after=cursor.position(name), until=at - lane.period, limit=limit_per_lane
            )
            if len(refs) >= limit_per_lane:
                run.more.append(name)
            held = False
            for ref in refs:
                run.read += 1
                done = _one(ref, lane, status, orders=orders, archive=archive, run=run, at=at)
                held = held or not done
                if not held:
                    cursor.move(name, ref.position)
    return run


def _one(
    ref: ClosedOrderRef,
    lane: Lane,
    status: OrderStatus,
    *,
    orders: OrderRepository,
    archive: DeliveryArchive,
    run: RetentionRun,
    at: datetime,
) -> bool:
    """Handle one listed order; False when it must be looked at again (an open return)."""
    if not lane.takes(ref.channel):
        run.other_channel += 1
        return True
    stored = orders.get(ref.order_id)
    if stored is None or stored.order.status != status:
        # Gone, or moved on (it re-enters the index under its new status when it closes again).
        return True
    if is_redacted(stored.order):
        run.already += 1
        return True
    if has_open_return(stored.order):
        run.waiting += 1
        return False
    for delivery_id in delivery_ids(stored.order):
        archive.forget(delivery_id)
        run.deliveries_forgotten += 1
    reason = (
        f"closed ({status.value}) longer than {lane.period.days} days"
        if lane.period.days
        else (f"closed ({status.value}) longer than {int(lane.period.total_seconds())} seconds")
    )

    def change(order: Order) -> bool:
        if is_redacted(order) or has_open_return(order) or order.status != status:
            return False
        redact(order, at, reason)
        return True

    try:
        if mutate(orders, ref.order_id, change, unchanged=lambda changed: not changed):
            run.redacted += 1
    except NotFound:
        pass
    return True
