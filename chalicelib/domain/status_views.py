"""What the status page shows, as its read side (adapters/status_board.py, adapters/stats.py) fills it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.domain.order import Order


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
