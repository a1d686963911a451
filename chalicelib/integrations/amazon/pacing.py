"""Client-side pacing of SP-API operations to their usage plans, learnt from `x-amzn-RateLimit-Limit`."""

from __future__ import annotations

import threading
from collections.abc import Callable

import requests
from aws_lambda_powertools import Logger

from chalicelib.integrations.amazon.errors import SpApiThrottled

logger = Logger(service="order-hub", child=True)

# Documented usage plans (requests per second, burst) per selling partner and application: Orders v0,
# Tokens 2021-03-01 (createRestrictedDataToken), Feeds 2021-06-30 and Reports 2021-06-30.
OPERATION_LIMITS: dict[str, tuple[float, int]] = {
    "getOrder": (0.5, 30),
    "getOrderAddress": (0.5, 30),
    "getOrderItems": (0.5, 30),
    "getOrders": (0.0167, 20),
    "confirmShipment": (2.0, 10),
    "createRestrictedDataToken": (1.0, 10),
    "createFeedDocument": (0.5, 15),
    "createFeed": (0.0083, 15),
    "getFeed": (2.0, 15),
    "getFeedDocument": (0.0222, 10),
    "createReport": (0.0167, 15),
    "getReport": (2.0, 15),
    "getReportDocument": (0.0167, 15),
}
RATE_HEADER = "x-amzn-RateLimit-Limit"


class TokenBucket:
    """Client-side twin of SP-API's usage plan: a request takes a token, tokens refill at `rate` per second.

    Tokens may go negative: each caller reserves its slot and sleeps until it comes, so concurrent
    callers queue fairly instead of stampeding the moment a token appears.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def reserve(self, max_wait: float) -> tuple[bool, float]:
        """(reserved, seconds to wait before sending); nothing is reserved when the wait exceeds max_wait."""
        with self._lock:
            self._refill()
            wait = max(0.0, (1.0 - self._tokens) / self.rate)
            if wait > max_wait:
                return False, wait
            self._tokens -= 1.0
            return True, wait

    def drain(self) -> None:
        # The server said no: whatever we believed about spare capacity was wrong.
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, 0.0)

    def set_rate(self, rate: float) -> None:
        with self._lock:
            self._refill()
            self.rate = rate


class OperationPacer:
    """One token bucket per operation (quotas are per selling partner, application and operation)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        max_wait: float,
        rate_limits: dict[str, tuple[float, int]] | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self._limits = {**OPERATION_LIMITS, **(rate_limits or {})}
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def bucket(self, operation: str) -> TokenBucket:
        with self._lock:
            bucket = self._buckets.get(operation)
            if bucket is None:
                rate, burst = self._limits.get(operation, (1.0, 1))
                bucket = self._buckets[operation] = TokenBucket(rate, burst, self._clock)
            return bucket

    def pace(self, operation: str, bucket: TokenBucket) -> None:
        """Sleep until the operation's next slot; SpApiThrottled when it is further away than `max_wait`."""
        reserved, wait = bucket.reserve(self._max_wait)
        if not reserved:
            raise SpApiThrottled(
                f"{operation}: next request slot is {wait:.0f}s away, more than {self._max_wait:.0f}s",
                operation=operation,
                status=429,
                code="QuotaExceeded",
                retry_after=wait,
            )
        if wait > 0:
            logger.debug("sp-api paced", extra={"operation": operation, "wait_seconds": round(wait, 3)})
            self._sleep(wait)

    @staticmethod
    def learn_rate(bucket: TokenBucket, response: requests.Response) -> None:
        """Adopt the rate SP-API says this operation has (`x-amzn-RateLimit-Limit`), when it says one."""
        header = response.headers.get(RATE_HEADER)
        if not header:
            return
        try:
            rate = float(header)
        except ValueError:
            return
        if rate > 0 and rate != bucket.rate:
            bucket.set_rate(rate)
