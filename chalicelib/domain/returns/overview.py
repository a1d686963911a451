"""Returns as the status page's overview groups them: awaiting the parcel, awaiting inspection, overdue,
failed, resolved today. Pure: it reads the open returns of the orders it is given (those in
RETURN_REQUESTED: an order stays there while one of its returns is open) and the day's closed returns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chalicelib.domain.order import Order
from chalicelib.domain.returns.model import OrderReturn, ReturnStatus, returns_of
from chalicelib.domain.returns.policy import ReturnPolicies

AWAITING_PARCEL = frozenset(
    {ReturnStatus.REQUESTED, ReturnStatus.APPROVED, ReturnStatus.LABEL_SENT, ReturnStatus.IN_TRANSIT}
)


@dataclass(frozen=True)
class ReturnRow:
    """One return as a list shows it: ids, where it is, since when, and why it needs a look (if it does).
    No customer data."""

    order_id: str
    return_id: str
    status: str
    channel: str = ""
    order_number: str = ""
    resolution: str = ""
    units: int = 0
    since: datetime | None = None
    flags: tuple[str, ...] = ()
    why: str = ""


@dataclass
class ReturnsOverview:
    awaiting_parcel: list[ReturnRow] = field(default_factory=list)
    awaiting_inspection: list[ReturnRow] = field(default_factory=list)
    awaiting_resolution: list[ReturnRow] = field(default_factory=list)
    overdue: list[ReturnRow] = field(default_factory=list)
    failed: list[ReturnRow] = field(default_factory=list)
    resolved_today: list[ReturnRow] = field(default_factory=list)
    resolved_today_count: int = 0
    expired_today_count: int = 0
    # Orders with an open return read for this overview, and how many there are in all (the status count).
    orders_read: int = 0
    orders_open: int = 0


def shown_flags(ret: OrderReturn) -> tuple[str, ...]:
    """The flags an operator reads (overdue waits, a failed step); the `<provider>:<event id>` markers the
    return keeps of events already applied are bookkeeping."""
    return tuple(f for f in ret.flags if ":" not in f)


def _row(order: Order, ret: OrderReturn, since: datetime, why: str = "") -> ReturnRow:
    return ReturnRow(
        order_id=order.order_id,
        return_id=ret.return_id,
        status=ret.status.value,
        channel=order.channel,
        order_number=order.external_number or order.external_id,
        resolution=ret.resolution.value,
        units=sum(line.quantity for line in ret.lines),
        since=since,
        flags=shown_flags(ret),
        why=why,
    )


def _late(ret: OrderReturn, order: Order, policies: ReturnPolicies, now: datetime) -> str:
    """Why an open return is overdue ("" when it is not): a flag the workflow set, or a wait already past
    the policy's deadline (the parcel counted from the request, the inspection from the receipt)."""
    flagged = [f for f in ("parcel_overdue", "inspection_overdue") if f in ret.flags]
    if flagged:
        return ", ".join(flagged)
    policy = policies.for_store(order.channel, order.store)
    if ret.status in AWAITING_PARCEL and now - ret.requested_at > timedelta(days=policy.parcel_days):
        return f"no parcel after {policy.parcel_days} days"
    received = ret.received_at or ret.updated_at
    if ret.status == ReturnStatus.RECEIVED and now - received > timedelta(days=policy.inspection_days):
        return f"not inspected after {policy.inspection_days} days"
    return ""


def returns_overview(
    orders: Iterable[Order],
    closed_today: Mapping[str, tuple[int, list[str]]],
    *,
    policies: ReturnPolicies,
    now: datetime,
    orders_open: int = 0,
) -> ReturnsOverview:
    """Each open return in exactly one group (failed, then overdue, then where it waits), oldest first;
    the day's resolved returns by id, and the day's expired ones (parcel never came) among the overdue."""
    view = ReturnsOverview(orders_open=orders_open)
    seen: set[str] = set()
    for order in orders:
        if order.order_id in seen:
            continue
        seen.add(order.order_id)
        view.orders_read += 1
        for ret in returns_of(order):
            if ret.final:
                continue
            why = _late(ret, order, policies, now)
            if "failed" in ret.flags:
                view.failed.append(_row(order, ret, ret.updated_at, "a workflow step failed"))
            elif why:
                view.overdue.append(_row(order, ret, ret.updated_at, why))
            elif ret.status in AWAITING_PARCEL:
                view.awaiting_parcel.append(_row(order, ret, ret.requested_at))
            elif ret.status == ReturnStatus.RECEIVED:
                view.awaiting_inspection.append(_row(order, ret, ret.received_at or ret.updated_at))
            else:
                view.awaiting_resolution.append(_row(order, ret, ret.updated_at))
    groups = (view.failed, view.overdue, view.awaiting_parcel, view.awaiting_inspection)
    for group in (*groups, view.awaiting_resolution):
        group.sort(key=lambda r: r.since or now)
    resolved_count, resolved = closed_today.get(ReturnStatus.RESOLVED.value, (0, []))
    expired_count, expired = closed_today.get(ReturnStatus.EXPIRED.value, (0, []))
    view.resolved_today_count, view.expired_today_count = resolved_count, expired_count
    view.resolved_today = [_closed_row(rid, ReturnStatus.RESOLVED) for rid in resolved]
    view.overdue += [
        _closed_row(rid, ReturnStatus.EXPIRED, "parcel_overdue: expired today") for rid in expired
    ]
    return view


def _closed_row(rid: str, status: ReturnStatus, why: str = "") -> ReturnRow:
    order_id, _, _ = rid.rpartition("-r")
    return ReturnRow(order_id=order_id, return_id=rid, status=status.value, why=why)
