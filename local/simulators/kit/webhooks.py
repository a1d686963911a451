"""Signed webhooks as vendors send them: at least once, retried on a schedule, some twice, some late."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import requests

from local.simulators.kit.queues import Outbox

E = TypeVar("E")
R = TypeVar("R")
log = logging.getLogger("local.simulators.kit")


@dataclass(frozen=True)
class Post:
    """One webhook POST: where, what, and the headers (signature included) of this attempt."""

    url: str
    body: bytes
    headers: Mapping[str, str]


# A transport POSTs and answers (HTTP status or None, error or None).
Transport = Callable[[Post], tuple[int | None, str | None]]


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver an event (the simulators' delivery log for tests)."""

    event_id: str
    type: str
    attempt: int
    status: int | None
    error: str | None


@dataclass(frozen=True)
class Outgoing(Generic[E]):
    """One copy of an event on its way; a duplicate is a copy of its own (with its own `delivery_id`)."""

    event: E
    attempt: int = 1
    duplicate: bool = False
    delivery_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def post_with_urllib(post: Post, timeout: float = 10.0) -> tuple[int | None, str | None]:
    """urllib's POST: non-2xx is `HTTP <status>`, no answer the exception's class name."""
    request = urllib.request.Request(post.url, data=post.body, method="POST", headers=dict(post.headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), None
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except OSError as exc:
        return None, type(exc).__name__


class PostWithRequests:
    """requests' POST on a session per sender thread, redirects not followed (they count as failures)."""

    def __init__(self, timeout: float | tuple[float, float]) -> None:
        self.timeout = timeout
        self._local = threading.local()

    def __call__(self, post: Post) -> tuple[int | None, str | None]:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        try:
            answer = session.post(
                post.url,
                data=post.body,
                headers=dict(post.headers),
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return None, type(exc).__name__
        return answer.status_code, None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"


Rate = Callable[[], float]


class WebhookSender(Generic[E, R]):
    """Sends events: `prepare` builds each attempt's POST (signed afresh per attempt if it likes), a failed
    attempt (no 2xx) is retried after `retry_delays` × `time_scale()`, and `record` turns every attempt
    into what `deliveries` keeps.

    Faults, drawn from `rng` in this order, each only when given (rates are callables, read at each send,
    so a test may turn them on a running simulator): `drop_rate` (never sent: `send` answers 0),
    `duplicate_rate` (two copies), `reorder_rate` (parked until the next unparked event has been queued,
    or `park_s` × `time_scale()` at most). `hold_window` (a callable answering a count, or None for off)
    holds every copy back until that many wait, then releases them newest first; `flush` releases them.
    """

    def __init__(
        self,
        prepare: Callable[[Outgoing[E]], Post],
        record: Callable[[Outgoing[E], int | None, str | None], R],
        *,
        retry_delays: Sequence[float],
        time_scale: Rate,
        rng: random.Random,
        name: str,
        transport: Transport = post_with_urllib,
        drop_rate: Rate | None = None,
        duplicate_rate: Rate | None = None,
        reorder_rate: Rate | None = None,
        park_s: float = 0.0,
        hold_window: Callable[[], int | None] | None = None,
        cond: threading.Condition | None = None,
        senders: int = 1,
        join_timeout: float | None = None,
    ) -> None:
        self._prepare, self._record, self._transport = prepare, record, transport
        self._delays = tuple(retry_delays)
        self._time_scale, self._rng = time_scale, rng
        self._drop, self._duplicate, self._reorder, self._park_s = (
            drop_rate,
            duplicate_rate,
            reorder_rate,
            park_s,
        )
        self._hold_window = hold_window
        self._held: list[Outgoing[E]] = []
        self._outbox: Outbox[Outgoing[E]] = Outbox(
            self._attempt, name=name, cond=cond, workers=senders, join_timeout=join_timeout
        )
        self.deliveries: list[R] = []

    def send(self, event: E) -> int:
        """Queue `event` (its copies); answers how many copies, 0 when it was dropped."""
        with self._outbox.cond:
            if self._drop is not None and self._rng.random() < self._drop():
                return 0
            copies = 2 if self._duplicate is not None and self._rng.random() < self._duplicate() else 1
            parked = self._reorder is not None and self._rng.random() < self._reorder()
            window = self._hold_window() if self._hold_window is not None else None
            outgoing = [Outgoing(event, duplicate=i > 0) for i in range(copies)]
            now = time.monotonic()
            if window is not None:
                self._held += outgoing
                if len(self._held) >= window:
                    self.release()
            elif parked:
                for copy in outgoing:
                    self._outbox.put(copy, now + self._park_s * self._time_scale(), parked=True)
            else:
                for copy in outgoing:
                    self._outbox.put(copy, now)
                # What was parked goes right after this newer event: the receiver sees them swapped.
                self._outbox.release_parked(now)
            return copies

    def release(self) -> None:
        """Queue the copies `hold_window` holds back, newest first."""
        with self._outbox.cond:
            held, self._held = self._held, []
            for copy in reversed(held):
                self._outbox.put(copy, time.monotonic())

    def flush(self, timeout: float) -> bool:
        """Release held copies and wait until none is queued or being sent; False when `timeout` passes."""
        self.release()
        return self._outbox.flush(timeout)

    def start(self) -> None:
        self._outbox.start()

    def stop(self) -> None:
        self._outbox.stop()

    def _attempt(self, outgoing: Outgoing[E]) -> None:
        status, error = self._transport(self._prepare(outgoing))
        with self._outbox.cond:
            self.deliveries.append(self._record(outgoing, status, error))
            if status is not None and 200 <= status < 300:
                return
            if outgoing.attempt <= len(self._delays):
                due = time.monotonic() + self._delays[outgoing.attempt - 1] * self._time_scale()
                self._outbox.put(dataclasses.replace(outgoing, attempt=outgoing.attempt + 1), due)
            else:
                # The event's topic only: its body is a customer's order (names, addresses, contacts).
                topic = getattr(outgoing.event, "topic", type(outgoing.event).__name__)
                log.warning("webhook %s given up after %d attempts", topic, outgoing.attempt)


class EventKnobs(Protocol):
    """What `event_sender` reads from a simulator at each send and retry."""

    time_scale: float
    duplicate_rate: float


JsonEvent = dict[str, Any]


def _typed_delivery(outgoing: Outgoing[JsonEvent], status: int | None, error: str | None) -> Delivery:
    return Delivery(outgoing.event["id"], outgoing.event["type"], outgoing.attempt, status, error)


def event_sender(
    prepare: Callable[[Outgoing[JsonEvent]], Post],
    knobs: EventKnobs,
    rng: random.Random,
    retry_delays: Sequence[float],
    *,
    name: str,
    record: Callable[[Outgoing[JsonEvent], int | None, str | None], R] = _typed_delivery,  # type: ignore[assignment]
    reorder_rate: Rate | None = None,
    park_s: float = 0.0,
    cond: threading.Condition | None = None,
) -> WebhookSender[JsonEvent, R]:
    """The sender of a simulator whose events are JSON objects with `id` and `type` (Stripe, the 3PL,
    EasyPost): `knobs.time_scale` scales the retries, `knobs.duplicate_rate` draws copies from `rng`."""
    return WebhookSender(
        prepare,
        record,
        retry_delays=retry_delays,
        time_scale=lambda: knobs.time_scale,
        rng=rng,
        name=name,
        duplicate_rate=lambda: knobs.duplicate_rate,
        reorder_rate=reorder_rate,
        park_s=park_s,
        cond=cond,
    )
