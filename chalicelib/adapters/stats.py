"""Aggregates the status page reads instead of scanning: orders per status, and each store's traffic.

Orders per status: counters spread over a few shard items (one partition, `STATS#STATUS`). The order
repository moves an order's count from its old status to its new one in the same transaction as the
order's write, so the counts cannot drift from the orders. An order always lands on the same shard
(crc32 of its id), which keeps both moves in one update; shards keep concurrent transactions apart.

Traffic: one item per channel, store and ten minutes (`TRAFFIC#<channel>#<store>`, `B#<start>`), counting
deliveries received, rejected, duplicates, ignored topics and throttling answers, with the last event's
time. A page reads a store's last day as one query of at most 144 small items; items expire after 2 days.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pynamodb.models import Model

from chalicelib.adapters.models import StatusCountModel, TrafficModel
from chalicelib.domain.order import OrderStatus
from chalicelib.domain.status_views import Traffic

STATUS_PARTITION = "STATS#STATUS"
STATUS_SHARDS = 8
BUCKET = timedelta(minutes=10)
TRAFFIC_KEPT = timedelta(days=2)
# What the hub counts per store (the metric names it already emits, kept as aggregates too).
TRAFFIC_KINDS = {
    "WebhookAccepted": "received",
    "WebhookRejected": "rejected",
    "DeliveryDuplicate": "duplicates",
    "WebhookIgnoredTopic": "ignored",
    "ChannelThrottled": "throttled",
}


def status_shard(order_id: str) -> str:
    return f"SHARD#{zlib.crc32(order_id.encode()) % STATUS_SHARDS}"


def status_move(order_id: str, old: OrderStatus | None, new: OrderStatus) -> tuple[Model, list[Any]]:
    """The counter item and the update actions that move one order from `old` (None: new) to `new`."""
    item = StatusCountModel(STATUS_PARTITION, status_shard(order_id))
    actions = [getattr(StatusCountModel, new.value.lower()).add(1)]
    if old is not None and old != new:
        actions.append(getattr(StatusCountModel, old.value.lower()).add(-1))
    return item, actions


def status_counts() -> dict[str, int]:
    """Orders per status, summed over the shards (one query of a few items)."""
    totals = dict.fromkeys((s.value for s in OrderStatus), 0)
    for item in StatusCountModel.query(STATUS_PARTITION):
        for status in OrderStatus:
            totals[status.value] += int(getattr(item, status.value.lower()) or 0)
    return totals


def bucket_start(at: datetime) -> datetime:
    minutes = at.minute - at.minute % int(BUCKET.total_seconds() // 60)
    return at.replace(minute=minutes, second=0, microsecond=0)


def traffic_pk(channel: str, store: str | None) -> str:
    return f"TRAFFIC#{channel}#{store or '-'}"


class DynamoTrafficStats:
    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now

    def sink(self, name: str, channel: str, store: str | None, value: float) -> None:
        """observability.count's sink: the counts the status page shows, kept per store."""
        kind = TRAFFIC_KINDS.get(name)
        if kind is not None and self._now is not None:
            self.record(kind, channel, store, self._now(), int(value))

    def record(self, kind: str, channel: str, store: str | None, at: datetime, value: int = 1) -> None:
        """Count one event of `kind` (a TRAFFIC_KINDS value) in the store's current bucket."""
        start = bucket_start(at)
        item = TrafficModel(traffic_pk(channel, store), f"B#{start.isoformat()}")
        actions = [
            getattr(TrafficModel, kind).add(value),
            TrafficModel.expires_at.set(start + TRAFFIC_KEPT),
        ]
        if kind == "throttled":
            actions.append(TrafficModel.last_throttled_at.set(at))
        elif kind in ("received", "duplicates", "ignored"):
            actions.append(TrafficModel.last_event_at.set(at))
        item.update(actions=actions)

    def traffic(self, channel: str, store: str | None, now: datetime) -> Traffic:
        kinds = list(TRAFFIC_KINDS.values())
        summary = Traffic(channel, store or "-", dict.fromkeys(kinds, 0), dict.fromkeys(kinds, 0))
        hour_from = bucket_start(now) - (timedelta(hours=1) - BUCKET)
        day_from = bucket_start(now) - (timedelta(days=1) - BUCKET)
        for item in TrafficModel.query(
            traffic_pk(channel, store), TrafficModel.sk >= f"B#{day_from.isoformat()}"
        ):
            start = datetime.fromisoformat(item.sk.removeprefix("B#"))
            for kind in kinds:
                value = int(getattr(item, kind) or 0)
                summary.day[kind] += value
                if start >= hour_from:
                    summary.hour[kind] += value
            if item.last_event_at and (
                summary.last_event_at is None or item.last_event_at > summary.last_event_at
            ):
                summary.last_event_at = item.last_event_at
            if item.last_throttled_at and (
                summary.last_throttled_at is None or item.last_throttled_at > summary.last_throttled_at
            ):
                summary.last_throttled_at = item.last_throttled_at
        return summary
