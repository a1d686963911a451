"""Fault knobs the simulators share: queued failure answers and the vendors' rate-limit buckets."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """One injected failure: the status to answer (0: drop the connection), an optional Retry-After, and
    an optional `scope` a simulator gives its own meaning (e.g. "mutations")."""

    status: int
    retry_after: float | None = None
    scope: str | None = None


class FaultQueue:
    """Failures waiting for the next requests (`fail_next(n, status, retry_after)` style knobs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()

    def add(self, n: int, status: int, *, retry_after: float | None = None, scope: str | None = None) -> None:
        with self._lock:
            self._queue.extend([Fault(status, retry_after, scope)] * n)

    def take(self, applies: Callable[[Fault], bool] = lambda fault: True) -> Fault | None:
        """The next failure, if one is queued and `applies` to this request (it stays queued if not)."""
        with self._lock:
            if not self._queue or not applies(self._queue[0]):
                return None
            return self._queue.popleft()


class LeakyBucket:
    """Shopify's rate limit: each call fills the bucket, which drains at a fixed rate."""

    def __init__(self, size: float, leak_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.leak_per_s = leak_per_s
        self._clock = clock
        self._level = 0.0
        self._at = clock()
        self._lock = threading.Lock()

    def _drain(self) -> float:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._at) * self.leak_per_s)
        self._at = now
        return self._level

    def take(self, cost: float) -> tuple[bool, float]:
        """Add `cost` if it fits; answers whether it did and the level afterwards."""
        with self._lock:
            if self._drain() + cost > self.size:
                return False, self._level
            self._level += cost
            return True, self._level

    def give_back(self, amount: float) -> float:
        with self._lock:
            self._level = max(0.0, self._drain() - amount)
            return self._level


class TokenBucket:
    """Amazon's usage plans: `rate` tokens a second up to `burst`; a call takes one."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._tokens, self._stamp = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True
