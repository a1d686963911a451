"""Background work of the simulators: an outbox of items due at given times, and tasks on a test clock."""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("local.simulators.kit")


class Outbox(Generic[T]):
    """Items due at real (time.monotonic) times, handed to `work` by `workers` daemon threads in due order.

    `key`: an item whose key is still queued is not queued again (it collapses into the one waiting).
    `parked` items wait for `release_parked` (or their own due time). `pause` holds every item; `flush`
    waits until nothing is queued or being worked on. An exception in `work` is logged, not fatal.
    `cond` lets a simulator share its own lock with the outbox.
    """

    def __init__(
        self,
        work: Callable[[T], None],
        *,
        name: str,
        cond: threading.Condition | None = None,
        workers: int = 1,
        join_timeout: float | None = None,
    ) -> None:
        self.cond = cond or threading.Condition()
        self._work = work
        self._heap: list[tuple[float, int, T]] = []
        self._keys: dict[int, Hashable] = {}  # seq → key, for queued items that have one
        self._parked: set[int] = set()
        self._seq = itertools.count()
        self._in_flight = 0
        self._paused = False
        self._stopping = False
        self._join_timeout = join_timeout
        self._threads = [
            threading.Thread(target=self._loop, name=name if workers == 1 else f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]

    def put(self, item: T, due: float, *, key: Hashable | None = None, parked: bool = False) -> bool:
        """Queue `item` for `due`; False (nothing queued) when an item with this `key` is waiting."""
        with self.cond:
            if key is not None and key in self._keys.values():
                return False
            seq = next(self._seq)
            heapq.heappush(self._heap, (due, seq, item))
            if key is not None:
                self._keys[seq] = key
            if parked:
                self._parked.add(seq)
            self.cond.notify_all()
            return True

    def waiting(self, key: Hashable) -> bool:
        """Whether an item with this key is queued (not yet taken by a worker)."""
        with self.cond:
            return key in self._keys.values()

    def release_parked(self, due: float) -> None:
        """Parked items become due at `due`, after everything queued so far for that time."""
        with self.cond:
            if not self._parked:
                return
            moved = [
                (due, next(self._seq), item) for _, seq, item in sorted(self._heap) if seq in self._parked
            ]
            self._heap = [entry for entry in self._heap if entry[1] not in self._parked] + moved
            heapq.heapify(self._heap)
            self._parked.clear()
            self.cond.notify_all()

    def pause(self) -> None:
        with self.cond:
            self._paused = True

    def resume(self) -> None:
        with self.cond:
            self._paused = False
            self.cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is queued or being worked on; False when `timeout` passes first."""
        with self.cond:
            return self.cond.wait_for(lambda: not self._heap and not self._in_flight, timeout)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the workers; queued items are discarded (joins them when `join_timeout` was given)."""
        with self.cond:
            self._stopping = True
            self.cond.notify_all()
        if self._join_timeout is not None:
            for thread in self._threads:
                if thread.is_alive() and thread is not threading.current_thread():
                    thread.join(timeout=self._join_timeout)

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self._stopping and (
                    self._paused or not self._heap or self._heap[0][0] > time.monotonic()
                ):
                    wait = (
                        None
                        if self._paused or not self._heap
                        else max(self._heap[0][0] - time.monotonic(), 0.001)
                    )
                    self.cond.wait(wait)
                if self._stopping:
                    return
                _, seq, item = heapq.heappop(self._heap)
                self._keys.pop(seq, None)
                self._parked.discard(seq)
                self._in_flight += 1
            try:
                self._work(item)
            except Exception:  # one broken item must not stop every later one
                log.exception("%s: work on %r failed", threading.current_thread().name, item)
            finally:
                with self.cond:
                    self._in_flight -= 1
                    self.cond.notify_all()


class Timeline(Generic[T]):
    """Tasks due on `clock` (time.monotonic, or a test's fake clock), run one at a time by a daemon thread.

    `settle` waits until every task due by now on `clock` has run, so a test moves its fake clock on and
    then settles; `pause` stops the time of the tasks (they fall due that much later after `resume`).
    """

    def __init__(self, run: Callable[[T], None], *, clock: Callable[[], float], name: str) -> None:
        self.clock = clock
        self._run = run
        self._cond = threading.Condition()
        self._tasks: list[tuple[float, int, T]] = []
        self._seq = itertools.count()
        self._handled_until = -math.inf  # every task due by this (clock) time has run
        self._paused_at: float | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def at(self, due: float, task: T) -> None:
        with self._cond:
            heapq.heappush(self._tasks, (due, next(self._seq), task))
            self._cond.notify_all()

    def after(self, delay: float, task: T) -> None:
        self.at(self.clock() + delay, task)

    def pause(self) -> None:
        with self._cond:
            if self._paused_at is None:
                self._paused_at = self.clock()

    def resume(self) -> None:
        with self._cond:
            if self._paused_at is None:
                return
            paused_for = self.clock() - self._paused_at
            self._paused_at = None
            self._tasks = [(due + paused_for, seq, task) for due, seq, task in self._tasks]
            heapq.heapify(self._tasks)
            self._cond.notify_all()

    def settle(self, timeout: float = 20.0) -> bool:
        """Wait until every task due by now on `clock` has run (none run while paused); False when
        `timeout` (real seconds) passes first."""
        with self._cond:
            target = self.clock()
            self._cond.notify_all()  # the loop looks at the clock again
            return self._cond.wait_for(lambda: self._handled_until >= target, timeout)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = self.clock()
                    if self._stopping or (
                        self._paused_at is None and self._tasks and self._tasks[0][0] <= now
                    ):
                        break
                    self._handled_until = now
                    self._cond.notify_all()  # for settle()
                    self._cond.wait(
                        None if self._paused_at is not None or not self._tasks else self._tasks[0][0] - now
                    )
                if self._stopping:
                    return
                _, _, task = heapq.heappop(self._tasks)
            try:
                self._run(task)
            except Exception:  # a simulator bug must not stop the clock
                log.exception("%s: task %r failed", self._thread.name, task)
