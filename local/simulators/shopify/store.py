"""The simulated shop's state: orders, ids, the shop clock, and the Admin API's buckets and knobs."""

from __future__ import annotations

import copy
import random
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from local.simulators.kit import (
    FaultQueue,
    LeakyBucket,
)
from local.simulators.shopify.records import LOCATION_ID, Cancellation, MutationRejected, RefundRecord
from local.simulators.shopify.values import SHOP_TZ


class Store(ABC):
    """One shop's state; every `_` method here is called with `_lock` held."""

    def __init__(
        self,
        shop_domain: str,
        *,
        seed: int | None,
        multi_capture: bool,
        locations: Sequence[int],
        clock: Callable[[], float],
    ) -> None:
        self.shop_domain = shop_domain
        self.locations = tuple(locations) or (LOCATION_ID,)
        self.multi_capture = multi_capture
        self.rest_bucket = LeakyBucket(40, 2.0, clock)
        self.graphql_bucket = LeakyBucket(1000, 50.0, clock)
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._orders: dict[int, dict[str, Any]] = {}
        self._next_id = 5_912_000_000_000 + self._rng.randrange(1_000_000) * 1000
        self._next_number = 1001
        # Payment transactions number on their own, so a seed gives the same orders as before they existed.
        self._next_txn_id = 7_300_000_000_000 + self._next_id % 1_000_000 * 1000
        self._last_stamp = datetime.now(SHOP_TZ).replace(microsecond=0) - timedelta(seconds=1)
        self._throttles = FaultQueue()  # forced THROTTLED answers; scope "mutations": for mutations only
        self._rejections: dict[str, list[MutationRejected]] = {}
        # Publishing state, per order id: fulfillment orders, fulfillments (with their events), what
        # was cancelled and refunded; ids from their own counter so a seed gives the same orders.
        self._fulfillment_orders: dict[int, list[dict[str, Any]]] = {}
        self._fulfillments: dict[int, list[dict[str, Any]]] = {}
        self._cancellations: dict[int, list[Cancellation]] = {}
        self._refund_records: dict[int, list[RefundRecord]] = {}
        self._idempotency: dict[str, tuple[str, dict[str, Any]]] = {}
        self._returns: dict[int, dict[str, Any]] = {}  # return id -> the return (returns.py)
        self._next_gql_id = 6_400_000_000_000 + self._next_id % 1_000_000 * 1000
        # GraphQL-shaped payment transactions and risk summaries, per order id (REST orders carry neither).
        self._transactions: dict[int, list[dict[str, Any]]] = {}
        self._risk: dict[int, dict[str, Any]] = {}

    @abstractmethod
    def _emit(self, topic: str, resource: Mapping[str, Any], order_id: int | None) -> None:
        """One webhook topic event (the simulator sends it)."""

    def _order(self, order_id: int) -> dict[str, Any]:
        try:
            return self._orders[int(order_id)]
        except KeyError:
            raise KeyError(f"no order {order_id} in {self.shop_domain}") from None

    def _new_id(self) -> int:
        self._next_id += self._rng.randrange(1, 5000)
        return self._next_id

    def _new_txn_id(self) -> int:
        self._next_txn_id += 1
        return self._next_txn_id

    def _new_gql_id(self) -> int:
        self._next_gql_id += 1
        return self._next_gql_id

    def _stamp(self) -> str:
        # Shopify stamps to the second; a strictly later second per change keeps `updated_at` a usable
        # fence even when a test makes several changes within one real second.
        now = datetime.now(SHOP_TZ).replace(microsecond=0)
        self._last_stamp = max(now, self._last_stamp + timedelta(seconds=1))
        return self._last_stamp.isoformat()

    def _touch(self, order: dict[str, Any], now: str, *topics: str) -> dict[str, Any]:
        order["updated_at"] = now
        for topic in topics:
            self._emit(topic, order, order["id"])
        return copy.deepcopy(order)

    def get_order(self, order_id: int) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._order(order_id))

    def orders(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(o) for o in self._orders.values()]
