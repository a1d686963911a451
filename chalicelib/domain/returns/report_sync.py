"""Use case: read each connected store's returns report since its cursor (with an overlap) and record them.

A channel's returns report lists a return by the day it was requested, and a return can reach the report
late: every run re-reads `OVERLAP` before the cursor, so the same RMA comes again, harmlessly (the intake
keeps one return per channel return id). The cursor moves only when the store's report was read; a return
the intake could not record for a passing reason (the order not there yet, a concurrent write) holds the
cursor at its request time, so the next run reads it again. A store whose report fails is reported and
retried next run; the other stores go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from chalicelib.domain.connections import Connection, ConnectionRepository
from chalicelib.domain.errors import InvalidInput, MalformedDelivery
from chalicelib.domain.returns.events import ChannelReturn
from chalicelib.domain.returns.ports import ReturnsReport

OVERLAP = timedelta(days=2)
# A store's first read looks back this far (a policy window's worth of returns).
FIRST_LOOKBACK = timedelta(days=30)
# Errors no later run fixes: the return is reported and the cursor moves past it.
_PERMANENT = (InvalidInput, MalformedDelivery)


class ReturnsCursor(Protocol):
    """Per store, the time up to which its returns report was read."""

    def read_until(self, channel: str, store: str) -> datetime | None: ...

    def set_read_until(self, channel: str, store: str, at: datetime) -> None: ...


@dataclass
class StoreReturnsRun:
    channel: str
    store: str
    window_from: datetime
    seen: int = 0
    recorded: int = 0
    # "<return id>: <error class>" per return not recorded (no personal data).
    failed: list[str] = field(default_factory=list)
    error: str | None = None  # the report could not be read: the cursor stayed
    cursor: datetime | None = None  # where the cursor moved (None: it stayed)

    def to_json(self) -> dict[str, Any]:
        data = {**self.__dict__}
        for key in ("window_from", "cursor"):
            data[key] = data[key].isoformat() if data[key] is not None else None
        return data


def sync_channel_returns(
    *,
    channel: str,
    connections: ConnectionRepository,
    report_for: Callable[[Connection], ReturnsReport],
    record: Callable[[ChannelReturn], Any],
    cursor: ReturnsCursor,
    now: Callable[[], datetime],
) -> list[StoreReturnsRun]:
    """One run over every store connected on `channel`: its report read, each return handed to `record`."""
    return [
        _sync_store(connection, report_for, record, cursor, now)
        for connection in connections.list()
        if connection.channel == channel
    ]


def _sync_store(
    connection: Connection,
    report_for: Callable[[Connection], ReturnsReport],
    record: Callable[[ChannelReturn], Any],
    cursor: ReturnsCursor,
    now: Callable[[], datetime],
) -> StoreReturnsRun:
    channel, store = connection.channel, connection.store
    started = now()
    mark = cursor.read_until(channel, store)
    since = mark - OVERLAP if mark is not None else started - FIRST_LOOKBACK
    run = StoreReturnsRun(channel=channel, store=store, window_from=since)
    try:
        found = report_for(connection).returns_since(since)
    except Exception as exc:  # one store's failure (upstream, credentials, config) must not stop the others
        run.error = type(exc).__name__
        return run
    run.seen = len(found)
    held: list[datetime] = []
    for ret in found:
        try:
            record(ret)
        except _PERMANENT as exc:
            run.failed.append(f"{ret.external_return_id}: {type(exc).__name__}")
        except Exception as exc:  # passing: read again next run
            run.failed.append(f"{ret.external_return_id}: {type(exc).__name__}")
            held.append(ret.at)
        else:
            run.recorded += 1
    # Held back to the earliest return that must be read again (the overlap then reaches before it).
    run.cursor = min([started, *(at + OVERLAP for at in held)])
    cursor.set_read_until(channel, store, run.cursor)
    return run
