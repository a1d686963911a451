"""In-memory VelocityCounter; the velocity contract test holds it to DynamoVelocityCounter's behaviour."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from chalicelib.domain.fraud import velocity_key_digest


class InMemoryVelocityCounter:
    def __init__(self) -> None:
        # (kind, sha256 of the key) -> order id -> when it was recorded; the clear key is never kept.
        self.items: dict[tuple[str, str], dict[str, datetime]] = {}
        self._lock = threading.Lock()

    def record_and_count(
        self,
        key_kind: str,
        key: str,
        at: datetime,
        windows: tuple[timedelta, ...],
        *,
        order_id: str,
    ) -> dict[timedelta, int]:
        if at.tzinfo is None:
            raise ValueError("velocity times must carry a time zone")
        if not windows:
            return {}
        with self._lock:
            recorded = self.items.setdefault((key_kind, velocity_key_digest(key_kind, key)), {})
            recorded.setdefault(order_id, at)
            times = list(recorded.values())
        return {w: sum(1 for t in times if at - w < t <= at) for w in windows}
