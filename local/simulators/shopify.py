"""An in-memory Shopify shop: realistic orders, webhooks signed and retried as Shopify does, its Admin API."""

from __future__ import annotations

import base64
import copy
import hashlib
import heapq
import hmac
import json
import logging
import math
import operator
import random
import re
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from local.http_server import NoDelayRequestHandler

log = logging.getLogger("local.simulators.shopify")

# The newest stable Admin API version (chalicelib/integrations/shopify/admin.py says why). Requests name
# their version in the URL and get that version's behaviour where it matters to the hub (below).
API_VERSION = "2026-10"
# Since 2024-09-10 a failed delivery is retried 8 times over 4 hours with exponential backoff; Shopify
# does not publish the exact steps, so these double each time and add up to 4 hours.
RETRY_DELAYS_S: tuple[float, ...] = tuple(14_400 * 2**i / 255 for i in range(8))
CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 5.0
UNAUTHORIZED_ERROR = "[API] Invalid API key or access token (unrecognized login or wrong password)"
REST_THROTTLED = (
    "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
)

# OrderCaptureInput.finalCapture exists from this Admin API version on; older versions reject the field.
FINAL_CAPTURE_SINCE = "2024-07"
FULFILLMENT_CREATE_SINCE = "2024-10"  # fulfillmentCreate, the V2 mutation without its suffix
REFUND_METHOD_SINCE = "2025-07"  # orderCancel(refundMethod:); `refund` is deprecated from then on
IDEMPOTENT_REQUIRED_SINCE = "2026-04"  # refundCreate must carry @idempotent(key:)
LOCATION_ID = 71_000_000_001  # the shop's only location unless `locations` says otherwise
FULFILLMENT_EVENT_STATUSES = frozenset(
    {
        "ATTEMPTED_DELIVERY", "CARRIER_PICKED_UP", "CONFIRMED", "DELAYED", "DELIVERED", "FAILURE",
        "IN_TRANSIT", "LABEL_PRINTED", "LABEL_PURCHASED", "OUT_FOR_DELIVERY", "PICKED_UP", "READY_FOR_PICKUP",
    }
)  # fmt: skip
CANCEL_REASONS = frozenset({"CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "OTHER", "STAFF"})
RISK_RECOMMENDATIONS = frozenset({"ACCEPT", "CANCEL", "INVESTIGATE", "NONE"})
RISK_LEVELS = frozenset({"HIGH", "MEDIUM", "LOW", "NONE", "PENDING"})

_SHOP_TZ = timezone(timedelta(hours=-4))  # the simulated shop's time zone (Shopify stamps in shop time)
_ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "CLP", "ISK"})


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of a webhook to the subscriber (the simulator's delivery log)."""

    topic: str
    webhook_id: str
    event_id: str
    attempt: int  # 1 = first try, 2..9 = retries
    status: int | None  # HTTP status, None when no answer (refused, timed out)
    error: str | None
    order_id: int | None


@dataclass(frozen=True)
class DroppedWebhook:
    """A webhook the simulator deliberately never sent (drop_rate): reconciliation has to find it."""

    topic: str
    event_id: str
    order_id: int | None


@dataclass(frozen=True)
class Capture:
    """One successful capture of an authorization (orderCapture, or mark_paid settling an order)."""

    transaction_id: str  # gid://shopify/OrderTransaction/...
    parent_transaction_id: str
    amount: Decimal
    currency: str
    final_capture: bool | None  # as sent in orderCapture's input; None when not sent or not orderCapture


@dataclass(frozen=True)
class FulfillmentRecord:
    """One fulfillment as the shop holds it: what it shipped, with which tracking, told to whom."""

    fulfillment_id: str  # gid://shopify/Fulfillment/...
    location_id: int
    lines: Mapping[int, int]  # line item id -> quantity shipped
    tracking_company: str | None
    tracking_numbers: tuple[str, ...]
    tracking_urls: tuple[str, ...]
    notify_customer: bool
    status: str  # SUCCESS | CANCELLED
    via: str  # "api" (fulfillmentCreate) or "admin" (fulfil_order)


@dataclass(frozen=True)
class FulfillmentEventRecord:
    """One fulfillmentEventCreate (a carrier status the app told Shopify)."""

    event_id: str  # gid://shopify/FulfillmentEvent/...
    fulfillment_id: str
    status: str  # FulfillmentEventStatus
    happened_at: str


@dataclass(frozen=True)
class Cancellation:
    """One cancellation of an order, by orderCancel ("api") or the admin ("admin")."""

    reason: str  # OrderCancelReason
    refund: bool
    restock: bool
    notify_customer: bool
    staff_note: str | None
    cancelled_at: str
    via: str


@dataclass(frozen=True)
class RefundRecord:
    """One refund of an order, by refundCreate ("api"), the admin or a refunding cancellation ("admin")."""

    refund_id: str  # gid://shopify/Refund/...
    amount: Decimal
    currency: str
    note: str | None
    parent_transaction_ids: tuple[str, ...]
    idempotency_key: str | None
    via: str


class MutationRejected(ValueError):
    """A mutation refused: the GraphQL API answers it as a userError (path `field`, optional `code`)."""

    def __init__(self, field: Sequence[str] | None, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.field = list(field) if field is not None else None
        self.message = message
        self.code = code

    def as_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"field": self.field, "message": self.message}
        return {**error, "code": self.code} if self.code else error


class CaptureRejected(ValueError):
    """orderCapture refused: the GraphQL API answers it as a userError on `field`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class _Delivery:
    topic: str
    body: bytes
    event_id: str
    webhook_id: str
    triggered_at: str
    url: str  # fixed when the event fired, as Shopify does for retries
    order_id: int | None
    attempt: int = 1


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    delivery: _Delivery = field(compare=False)


class _LeakyBucket:
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


@dataclass(frozen=True)
class ApiReply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class ShopifySimulator:
    """One Shopify shop in memory, its webhook sender and its Admin API (REST and a GraphQL subset).

    Actions (`create_order`, `update_order`, `mark_paid`, `cancel_order`, `fulfil_order`,
    `refund_order`) change the store and emit the webhooks Shopify emits for them, each topic event
    with its own `X-Shopify-Event-Id`. A delivery succeeds on 2xx only; a failure is retried
    `len(RETRY_DELAYS_S)` times with the original body and webhook id, delays scaled by `time_scale`.
    Knobs: `duplicate_rate` (a second delivery of the event: same Event-Id and body, new Webhook-Id),
    `drop_rate` (never sent), `reorder` (deliveries held back `reorder_window` at a time and released
    newest first). `senders` deliveries are in flight at once (1 keeps the send order predictable).

    Payments: an order created `authorized` holds one AUTHORIZATION transaction for its total, a `paid`
    one a SALE; `capture` (GraphQL `orderCapture`) takes money from an authorization, `multi_capture`
    making new authorizations multi-capturable (Shopify Plus with Shopify Payments). `set_risk` sets
    the order's `risk` summary; `fail_api` answers the next Admin API calls with an error status.

    Publishing (GraphQL, see the subset below): every order gets one OPEN fulfillment order per
    location its lines ship from (`locations`; an item may name its `location_id`), which
    `fulfillmentCreate` and `fulfil_order` draw from; `fulfillmentEventCreate`, `orderCancel`,
    `refundCreate` (with @idempotent keys) and `orderMarkAsPaid` act as the admin actions do and send
    the same webhooks. Each mutation costs 10 points of the GraphQL bucket. What was done is kept for
    tests: `fulfillments`, `fulfillment_events`, `cancellations`, `refunds`, `fulfillment_orders`.
    Knobs: `throttle_api` (THROTTLED as when the bucket is empty), `fail_api(mutations_only=True)`,
    `reject_next` (a userError instead of the change).

    `clock` (seconds, time.monotonic by default) drains the REST and GraphQL buckets: a test passes a
    fake one to decide how much the bucket leaked between calls. Webhook delays keep real time.
    """

    def __init__(
        self,
        shop_domain: str,
        webhook_secret: str,
        access_token: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        webhook_url: str | None = None,
        seed: int | None = None,
        time_scale: float = 1.0,
        duplicate_rate: float = 0.0,
        drop_rate: float = 0.0,
        reorder: bool = False,
        reorder_window: int = 2,
        senders: int = 4,
        multi_capture: bool = False,
        locations: Sequence[int] = (LOCATION_ID,),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shop_domain = shop_domain
        self.locations = tuple(locations) or (LOCATION_ID,)
        self.webhook_secret = webhook_secret
        self.access_token = access_token
        self.webhook_url = webhook_url
        self.time_scale = time_scale
        self.duplicate_rate = duplicate_rate
        self.drop_rate = drop_rate
        self.reorder = reorder
        self.reorder_window = reorder_window
        self.multi_capture = multi_capture
        self.rest_bucket = _LeakyBucket(40, 2.0, clock)
        self.graphql_bucket = _LeakyBucket(1000, 50.0, clock)
        self._rng = random.Random(seed)
        # Faults draw from their own stream, so a seed gives the same orders whatever the knobs say.
        self._fault_rng = random.Random(None if seed is None else seed + 1)
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._orders: dict[int, dict[str, Any]] = {}
        self._next_id = 5_912_000_000_000 + self._rng.randrange(1_000_000) * 1000
        self._next_number = 1001
        # Payment transactions number on their own, so a seed gives the same orders as before they existed.
        self._next_txn_id = 7_300_000_000_000 + self._next_id % 1_000_000 * 1000
        self._last_stamp = datetime.now(_SHOP_TZ).replace(microsecond=0) - timedelta(seconds=1)
        self._due: list[_Due] = []
        self._held: list[_Delivery] = []
        self._seq = 0
        self._in_flight = 0
        self._stopping = False
        self._log: list[DeliveryAttempt] = []
        self._dropped: list[DroppedWebhook] = []
        self._api_failures: list[tuple[int, float | None, bool]] = []
        self._throttles: list[bool] = []  # one per forced THROTTLED answer: mutations only?
        self._rejections: dict[str, list[MutationRejected]] = {}
        # Publishing state, per order id: fulfillment orders, fulfillments (with their events), what
        # was cancelled and refunded; ids from their own counter so a seed gives the same orders.
        self._fulfillment_orders: dict[int, list[dict[str, Any]]] = {}
        self._fulfillments: dict[int, list[dict[str, Any]]] = {}
        self._cancellations: dict[int, list[Cancellation]] = {}
        self._refund_records: dict[int, list[RefundRecord]] = {}
        self._idempotency: dict[str, tuple[str, dict[str, Any]]] = {}
        self._next_gql_id = 6_400_000_000_000 + self._next_id % 1_000_000 * 1000
        # GraphQL-shaped payment transactions and risk summaries, per order id (REST orders carry neither).
        self._transactions: dict[int, list[dict[str, Any]]] = {}
        self._risk: dict[int, dict[str, Any]] = {}
        simulator = self

        class Handler(_ApiHandler):
            owner = simulator

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._threads = [threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)]
        self._threads += [threading.Thread(target=self._send_loop, daemon=True) for _ in range(senders)]

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ShopifySimulator:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and sending; deliveries still pending are discarded."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._threads[0].is_alive():
            self.server.shutdown()  # waits for serve_forever, so only when it runs
        self.server.server_close()
        for thread in self._threads[1:]:
            if thread.is_alive():
                thread.join(timeout=READ_TIMEOUT_S + CONNECT_TIMEOUT_S)

    def __enter__(self) -> ShopifySimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what tests and the demo look at ----------------------------------------------------------

    @property
    def deliveries(self) -> list[DeliveryAttempt]:
        with self._lock:
            return list(self._log)

    @property
    def dropped(self) -> list[DroppedWebhook]:
        with self._lock:
            return list(self._dropped)

    def get_order(self, order_id: int) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._order(order_id))

    def orders(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(o) for o in self._orders.values()]

    def fail_api(
        self,
        times: int = 1,
        status: int = 503,
        *,
        retry_after: float | None = None,
        mutations_only: bool = False,
    ) -> None:
        """Answer the next `times` authenticated Admin API calls with `status` (Shopify's 5xx days).

        `retry_after` (seconds) adds a Retry-After header, as Shopify sends with a 429.
        `mutations_only`: reads pass untouched while these wait for the next GraphQL mutations.
        """
        with self._lock:
            self._api_failures += [(status, retry_after, mutations_only)] * times

    def throttle_api(self, times: int = 1, *, mutations_only: bool = True) -> None:
        """Answer the next `times` GraphQL mutations (or any GraphQL calls) THROTTLED, bucket empty."""
        with self._lock:
            self._throttles += [mutations_only] * times

    def reject_next(
        self,
        mutation: str,
        message: str,
        *,
        field: Sequence[str] | None = None,
        code: str | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `mutation` ("fulfillmentCreate", ...) answer this userError."""
        with self._lock:
            queue = self._rejections.setdefault(mutation, [])
            queue += [MutationRejected(field, message, code)] * times

    def fulfillment_orders(self, order_id: int) -> list[dict[str, Any]]:
        """The order's fulfillment orders as GraphQL FulfillmentOrder objects."""
        with self._lock:
            return [_gql_fulfillment_order(fo) for fo in self._fulfillment_orders.get(int(order_id), [])]

    def fulfillments(self, order_id: int) -> list[FulfillmentRecord]:
        """Every fulfillment of the order, oldest first."""
        with self._lock:
            return [_fulfillment_record(f) for f in self._fulfillments.get(int(order_id), [])]

    def fulfillment_events(self, order_id: int) -> list[FulfillmentEventRecord]:
        """Every fulfillment event created on the order's fulfillments, oldest first."""
        with self._lock:
            return [
                FulfillmentEventRecord(
                    _gid("FulfillmentEvent", e["id"]),
                    _gid("Fulfillment", f["id"]),
                    e["status"],
                    e["happened_at"],
                )
                for f in self._fulfillments.get(int(order_id), [])
                for e in f["events"]
            ]

    def cancellations(self, order_id: int) -> list[Cancellation]:
        with self._lock:
            return list(self._cancellations.get(int(order_id), []))

    def refunds(self, order_id: int) -> list[RefundRecord]:
        with self._lock:
            return list(self._refund_records.get(int(order_id), []))

    def set_risk(self, order_id: int, recommendation: str, levels: Sequence[str] = ()) -> None:
        """Set the order's `risk`: the summary's recommendation and one assessment per risk level.

        Orders start with ACCEPT and one LOW assessment (Shopify's own analysis of a clean order).
        """
        summary = _risk_summary(recommendation, levels)
        with self._lock:
            self._risk[self._order(order_id)["id"]] = summary

    def transactions(self, order_id: int) -> list[dict[str, Any]]:
        """The order's payment transactions as GraphQL OrderTransaction objects, oldest first."""
        with self._lock:
            return self._gql_transactions(self._order(order_id))

    def captures(self, order_id: int) -> list[Capture]:
        """Every successful capture taken from the order's authorizations, oldest first."""
        with self._lock:
            order = self._order(order_id)
            return [
                Capture(
                    _gid("OrderTransaction", t["id"]),
                    _gid("OrderTransaction", t["parent_id"]),
                    t["amount"],
                    order["presentment_currency"],
                    t["final_capture"],
                )
                for t in self._transactions.get(order["id"], [])
                if t["kind"] == "CAPTURE" and t["status"] == "SUCCESS"
            ]

    def flush(self, timeout: float) -> bool:
        """Release held deliveries and wait until every pending one was attempted; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._release_held()
            while self._due or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    # --- merchant and buyer actions ---------------------------------------------------------------

    def create_order(
        self,
        *,
        currency: str | None = None,
        items: Sequence[Mapping[str, Any]] | None = None,
        shipping: Sequence[str] | None = None,
        discount: Mapping[str, str] | None = None,
        financial_status: str | None = None,
        taxes_included: bool = False,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Place an order as a checkout would: orders/create, and orders/paid when captured at once.

        None picks at random (seeded); `items` [{title, price, quantity, sku?, variant_title?}],
        `shipping` (prices of the shipping lines, [] for none), `discount` ({code, type:
        percentage|fixed_amount|shipping, value}, {} for none). `overrides` replace top-level fields
        of the finished order as given (they may make it inconsistent on purpose).
        """
        with self._lock:
            spec = _OrderSpec.pick(
                self._rng,
                currency=currency,
                items=items,
                shipping=shipping,
                discount=discount,
                financial_status=financial_status,
                taxes_included=taxes_included,
            )
            now = self._stamp()
            order = _build_order(
                spec,
                order_id=self._new_id(),
                number=self._next_number,
                now=now,
                new_id=self._new_id,
                shop_domain=self.shop_domain,
            )
            self._next_number += 1
            order.update(overrides)
            self._orders[order["id"]] = order
            self._fulfillment_orders[order["id"]] = self._new_fulfillment_orders(order, spec.items)
            self._risk[order["id"]] = _risk_summary("ACCEPT", ["LOW"])
            if order["financial_status"] in ("authorized", "paid"):
                kind = "AUTHORIZATION" if order["financial_status"] == "authorized" else "SALE"
                self._add_transaction(order, kind, Decimal(order["total_price"]), now=now)
            self._emit("orders/create", order, order["id"])
            if order["financial_status"] == "paid":
                self._emit("orders/paid", order, order["id"])
            return copy.deepcopy(order)

    def update_order(self, order_id: int, **changes: Any) -> dict[str, Any]:
        """Change top-level fields (note, tags, email, shipping_address, ...) as a merchant edit does."""
        with self._lock:
            order = self._order(order_id)
            order.update({k: v for k, v in changes.items() if k != "id"})
            return self._touch(order, self._stamp(), "orders/updated")

    def mark_paid(self, order_id: int) -> dict[str, Any]:
        """Capture the payment of an authorized or pending order."""
        with self._lock:
            order = self._order(order_id)
            if order["financial_status"] not in ("pending", "authorized", "partially_paid"):
                raise ValueError(f"order {order_id} is {order['financial_status']}, not payable")
            now = self._stamp()
            self._settle(order, now)
            order["financial_status"] = "paid"
            order["total_outstanding"] = _fmt(Decimal(0), order["currency"])
            return self._touch(order, now, "orders/paid", "orders/updated")

    def capture(
        self,
        order_id: int,
        parent_transaction_id: int | str,
        amount: str | Decimal,
        *,
        currency: str | None = None,
        final_capture: bool | None = None,
    ) -> dict[str, Any]:
        """Capture from an authorization as `orderCapture` does; returns the capture transaction (GraphQL).

        Raises CaptureRejected (Shopify's userError) for an unknown or voided parent, one already
        captured, another currency than the presentment currency, or more than is left to capture.
        A single-capture authorization is spent by its one capture (the rest is released); a
        multi-capturable one stays open until `final_capture` or until nothing is left. The order
        becomes paid or partially_paid and sends orders/paid (when paid in full) and orders/updated.
        """
        with self._lock:
            order = self._orders.get(_legacy_id(order_id, "Order") or 0)
            if order is None:
                raise CaptureRejected("id", "Order does not exist")
            txns = self._transactions.get(order["id"], [])
            parent_id = _legacy_id(parent_transaction_id, "OrderTransaction")
            auth = next((t for t in txns if t["id"] == parent_id), None)
            if auth is None:
                raise CaptureRejected("parentTransactionId", "Parent transaction does not exist")
            if auth["kind"] != "AUTHORIZATION" or auth["status"] != "SUCCESS":
                raise CaptureRejected(
                    "parentTransactionId", "Parent transaction is not a successful authorization"
                )
            if any(t["kind"] == "VOID" and t["parent_id"] == auth["id"] for t in txns):
                raise CaptureRejected("parentTransactionId", "The authorization has been voided")
            remaining = self._capturable(order, auth)
            if remaining <= 0:
                raise CaptureRejected("parentTransactionId", "The authorization has already been captured")
            cur = order["presentment_currency"]
            if currency is not None and str(currency).upper() != cur:
                raise CaptureRejected("currency", f"Currency must be the order's presentment currency {cur}")
            value = _capture_amount(amount, cur)
            if value > remaining:
                message = (
                    f"Amount cannot be greater than the capturable amount of {_fmt(remaining, cur)} {cur}"
                )
                raise CaptureRejected("amount", message)
            now = self._stamp()
            capture = self._add_transaction(
                order, "CAPTURE", value, now=now, parent_id=auth["id"], final_capture=final_capture
            )
            if not auth["multi_capturable"] or final_capture is True or value == remaining:
                auth["open"] = False
            paid = self._paid(order)
            order["total_outstanding"] = _fmt(max(Decimal(0), Decimal(order["total_price"]) - paid), cur)
            in_full = Decimal(order["total_outstanding"]) == 0
            order["financial_status"] = "paid" if in_full else "partially_paid"
            self._touch(order, now, *(("orders/paid",) if in_full else ()), "orders/updated")
            return self._gql_transactions(order)[txns.index(capture)]

    def cancel_order(
        self, order_id: int, *, reason: str = "customer", refund: bool = False
    ) -> dict[str, Any]:
        """Cancel as the admin does: voids an authorization; `refund` also refunds a paid order in full."""
        with self._lock:
            order = self._order(order_id)
            if order["cancelled_at"]:
                raise ValueError(f"order {order_id} is already cancelled")
            now = self._stamp()
            self._cancel(order, reason.upper(), refund=refund, restock=True, notify=False, note=None, now=now)
            return self._touch(order, now, "orders/cancelled", "orders/updated")

    def _cancel(
        self,
        order: dict[str, Any],
        reason: str,
        *,
        refund: bool,
        restock: bool,
        notify: bool,
        note: str | None,
        now: str,
        via: str = "admin",
    ) -> None:
        """The cancellation itself (the caller emits the orders/* topics)."""
        if refund and order["financial_status"] in ("paid", "partially_refunded"):
            self._refund(order, None, None, note="Order cancelled", now=now)
        elif order["financial_status"] in ("pending", "authorized"):
            order["financial_status"] = "voided"
            for auth in self._transactions.get(order["id"], []):
                if auth["kind"] == "AUTHORIZATION" and auth["open"]:
                    auth["open"] = False
                    self._add_transaction(order, "VOID", auth["amount"], now=now, parent_id=auth["id"])
        order["cancelled_at"] = now
        order["cancel_reason"] = reason.lower()
        for fo in self._fulfillment_orders.get(order["id"], []):
            if fo["status"] in ("OPEN", "IN_PROGRESS", "SCHEDULED", "ON_HOLD"):
                fo["status"] = "CLOSED"
        record = Cancellation(reason.upper(), refund, restock, notify, note, now, via)
        self._cancellations.setdefault(order["id"], []).append(record)

    def fulfil_order(
        self,
        order_id: int,
        line_item_ids: Sequence[int] | None = None,
        *,
        tracking_number: str | None = None,
        tracking_company: str = "UPS",
    ) -> dict[str, Any]:
        """Ship the rest of some or all lines, one fulfillment per location; orders/fulfilled once all is."""
        with self._lock:
            order = self._order(order_id)
            if order["cancelled_at"]:
                raise ValueError(f"order {order_id} is cancelled")
            by_location: dict[int, list[tuple[dict[str, Any], dict[str, Any], int]]] = {}
            for fo in self._fulfillment_orders.get(order["id"], []):
                if fo["status"] not in ("OPEN", "IN_PROGRESS"):
                    continue
                for item in fo["line_items"]:
                    if item["remaining"] > 0 and (
                        line_item_ids is None or item["line_item_id"] in line_item_ids
                    ):
                        by_location.setdefault(fo["location_id"], []).append((fo, item, item["remaining"]))
            if not by_location:
                raise ValueError(f"order {order_id}: nothing left to fulfil among {line_item_ids}")
            tracking = tracking_number or f"1Z{self._rng.randrange(10**15):015d}"
            now = self._stamp()
            for allocations in by_location.values():
                self._fulfil(
                    order, allocations, company=tracking_company, numbers=[tracking], urls=[], notify=False,
                    now=now, fulfillment_id=self._new_id(), via="admin",
                )  # fmt: skip
            return self._touch(order, now, *self._fulfilled_topics(order))

    def _fulfilled_topics(self, order: Mapping[str, Any]) -> tuple[str, ...]:
        # Shopify's own topic for a partial shipment; the hub acknowledges it as an unhandled topic.
        done = order["fulfillment_status"] == "fulfilled"
        return ("orders/fulfilled" if done else "orders/partially_fulfilled", "orders/updated")

    def _fulfil(
        self,
        order: dict[str, Any],
        allocations: Sequence[tuple[dict[str, Any], dict[str, Any], int]],
        *,
        company: str | None,
        numbers: Sequence[str],
        urls: Sequence[str],
        notify: bool,
        now: str,
        fulfillment_id: int,
        via: str,
    ) -> dict[str, Any]:
        """Take (fulfillment order, its line item, quantity) off what is left; record the fulfillment."""
        lines: dict[int, int] = {}
        for _fo, item, quantity in allocations:
            item["remaining"] -= quantity
            lines[item["line_item_id"]] = lines.get(item["line_item_id"], 0) + quantity
        for fo in {id(fo): fo for fo, _item, _q in allocations}.values():
            fo["status"] = "CLOSED" if all(i["remaining"] == 0 for i in fo["line_items"]) else "IN_PROGRESS"
        by_id = {li["id"]: li for li in order["line_items"]}
        shipped = []
        for line_id, quantity in lines.items():
            line = by_id[line_id]
            line["fulfillable_quantity"] = max(0, line["fulfillable_quantity"] - quantity)
            line["fulfillment_status"] = "fulfilled" if line["fulfillable_quantity"] == 0 else "partial"
            shipped.append({**copy.deepcopy(line), "quantity": quantity})
        links = list(urls) or [u for u in (_tracking_url(company, n) for n in numbers) if u]
        location = allocations[0][0]["location_id"]
        order["fulfillments"].append(
            _fulfillment(
                fulfillment_id, order, shipped, numbers=numbers, urls=links, company=company, now=now,
                location_id=location,
            )
        )  # fmt: skip
        done = all(li["fulfillable_quantity"] == 0 for li in order["line_items"])
        order["fulfillment_status"] = "fulfilled" if done else "partial"
        record = {
            "id": fulfillment_id, "location_id": location, "lines": lines, "company": company,
            "numbers": list(numbers), "urls": links, "notify": notify, "status": "SUCCESS",
            "created_at": now, "updated_at": now, "events": [], "via": via,
            "name": order["fulfillments"][-1]["name"],
            "line_ids": {line_id: self._new_gql_id() for line_id in lines},
        }  # fmt: skip
        self._fulfillments.setdefault(order["id"], []).append(record)
        return record

    def _new_fulfillment_orders(
        self, order: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """One OPEN fulfillment order per location the order's lines ship from."""
        by_location: dict[int, list[Mapping[str, Any]]] = {}
        for item, line in zip(items, order["line_items"], strict=False):
            by_location.setdefault(int(item.get("location_id") or self.locations[0]), []).append(line)
        return [
            {
                "id": self._new_gql_id(), "order_id": order["id"], "location_id": location, "status": "OPEN",
                "line_items": [
                    {"id": self._new_gql_id(), "line_item_id": li["id"], "total": li["quantity"],
                     "remaining": li["fulfillable_quantity"]}
                    for li in lines
                ],
            }
            for location, lines in by_location.items()
        ]  # fmt: skip

    def _new_gql_id(self) -> int:
        self._next_gql_id += 1
        return self._next_gql_id

    def refund_order(
        self,
        order_id: int,
        line_item_ids: Sequence[int] | None = None,
        amount: str | Decimal | None = None,
        *,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Refund lines (their full remaining quantity) and/or an amount; neither refunds everything left.

        Emits refunds/create (the refund resource) then orders/updated; returns the refund.
        """
        with self._lock:
            order, now = self._order(order_id), self._stamp()
            refund = self._refund(order, line_item_ids, amount, note=note, now=now)
            self._touch(order, now, "orders/updated")
            return copy.deepcopy(refund)

    # --- store internals (called with the lock held) -----------------------------------------------

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

    def _stamp(self) -> str:
        # Shopify stamps to the second; a strictly later second per change keeps `updated_at` a usable
        # fence even when a test makes several changes within one real second.
        now = datetime.now(_SHOP_TZ).replace(microsecond=0)
        self._last_stamp = max(now, self._last_stamp + timedelta(seconds=1))
        return self._last_stamp.isoformat()

    def _touch(self, order: dict[str, Any], now: str, *topics: str) -> dict[str, Any]:
        order["updated_at"] = now
        for topic in topics:
            self._emit(topic, order, order["id"])
        return copy.deepcopy(order)

    def _refund(
        self,
        order: dict[str, Any],
        line_item_ids: Sequence[int] | None,
        amount: str | Decimal | None,
        *,
        note: str | None,
        now: str,
        parents: Sequence[tuple[int, Decimal]] = (),
        idempotency_key: str | None = None,
        via: str = "admin",
    ) -> dict[str, Any]:
        """Record a refund and emit refunds/create; the caller emits the orders/* topics.

        `parents` (transaction id, amount) are the sales and captures refundCreate names; without them
        the refund is one REFUND transaction of no particular parent, as the admin's refunds here are.
        """
        if order["financial_status"] not in ("paid", "partially_paid", "partially_refunded"):
            raise ValueError(f"order {order['id']} is {order['financial_status']}: nothing to refund")
        refund = _build_refund(
            order,
            line_item_ids,
            amount,
            refund_id=self._new_id(),
            transaction_id=self._new_id(),
            note=note,
            now=now,
        )
        order["refunds"].append(refund)
        paper = refund["transactions"][0]
        if parents:
            for index, (parent_id, part) in enumerate(parents):
                txn_id = paper["id"] if index == 0 else None
                self._add_transaction(order, "REFUND", part, now=now, txn_id=txn_id, parent_id=parent_id)
        else:
            self._add_transaction(order, "REFUND", Decimal(paper["amount"]), now=now, txn_id=paper["id"])
        refunded_lines = {rl["line_item_id"] for rl in refund["refund_line_items"]}
        for fo in self._fulfillment_orders.get(order["id"], []):
            for item in fo["line_items"]:
                if item["line_item_id"] in refunded_lines:
                    item["remaining"] = 0
            if fo["status"] in ("OPEN", "IN_PROGRESS") and all(i["remaining"] == 0 for i in fo["line_items"]):
                fo["status"] = "CLOSED"
        record = RefundRecord(
            _gid("Refund", refund["id"]),
            Decimal(paper["amount"]),
            order["presentment_currency"],
            note,
            tuple(_gid("OrderTransaction", parent) for parent, _ in parents),
            idempotency_key,
            via,
        )
        self._refund_records.setdefault(order["id"], []).append(record)
        cur = order["currency"]
        refunded = sum((Decimal(r["transactions"][0]["amount"]) for r in order["refunds"]), Decimal(0))
        captured = Decimal(order["total_price"]) - Decimal(order["total_outstanding"])
        order["financial_status"] = "refunded" if refunded >= captured else "partially_refunded"
        lines = refund["refund_line_items"]
        current = {
            "current_total_price": Decimal(order["total_price"]) - refunded,
            "current_subtotal_price": Decimal(order["current_subtotal_price"])
            - _set_sum(lines, "subtotal_set"),
            "current_total_tax": Decimal(order["current_total_tax"]) - _set_sum(lines, "total_tax_set"),
        }
        for name, value in current.items():
            order[name] = _fmt(value, cur)
            order[f"{name}_set"] = _money_set(order[name], cur)
        self._emit("refunds/create", refund, order["id"])
        return refund

    def _add_transaction(
        self,
        order: Mapping[str, Any],
        kind: str,
        amount: Decimal,
        *,
        now: str,
        parent_id: int | None = None,
        final_capture: bool | None = None,
        txn_id: int | None = None,
    ) -> dict[str, Any]:
        authorization = kind == "AUTHORIZATION"
        txn = {
            "id": txn_id or self._new_txn_id(),
            "kind": kind,
            "status": "SUCCESS",
            "amount": amount,
            "gateway": order["payment_gateway_names"][0] if order["payment_gateway_names"] else "manual",
            "created_at": now,
            "parent_id": parent_id,
            "multi_capturable": authorization and self.multi_capture,
            "open": authorization,  # an authorization is capturable until captured, closed or voided
            "final_capture": final_capture,
        }
        self._transactions.setdefault(int(order["id"]), []).append(txn)
        return txn

    def _capturable(self, order: Mapping[str, Any], auth: Mapping[str, Any]) -> Decimal:
        if not auth["open"]:
            return Decimal(0)
        children = self._transactions.get(int(order["id"]), [])
        taken = sum(
            (t["amount"] for t in children if t["kind"] == "CAPTURE" and t["parent_id"] == auth["id"]),
            Decimal(0),
        )
        return Decimal(auth["amount"]) - taken

    def _paid(self, order: Mapping[str, Any]) -> Decimal:
        kinds = ("CAPTURE", "SALE")
        txns = self._transactions.get(int(order["id"]), [])
        return sum((t["amount"] for t in txns if t["kind"] in kinds and t["status"] == "SUCCESS"), Decimal(0))

    def _settle(self, order: dict[str, Any], now: str) -> None:
        """mark_paid's money: capture what open authorizations hold, a manual sale for the rest."""
        outstanding = Decimal(order["total_outstanding"])
        for auth in list(self._transactions.get(int(order["id"]), [])):
            if auth["kind"] != "AUTHORIZATION" or not auth["open"]:
                continue
            take = min(outstanding, self._capturable(order, auth))
            if take > 0:
                self._add_transaction(order, "CAPTURE", take, now=now, parent_id=auth["id"])
                outstanding -= take
            auth["open"] = False
        if outstanding > 0:
            self._add_transaction(order, "SALE", outstanding, now=now)

    def _gql_transactions(self, order: Mapping[str, Any]) -> list[dict[str, Any]]:
        txns = self._transactions.get(int(order["id"]), [])
        kinds = {t["id"]: t["kind"] for t in txns}
        cur = order["presentment_currency"]
        return [_gql_transaction(t, kinds, cur, self._capturable(order, t)) for t in txns]

    def graphql_order(self, order_id: int) -> dict[str, Any] | None:
        """The `order(id:)` node: the orders connection's fields plus risk and transactions."""
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                return None
            risk = copy.deepcopy(self._risk.get(order_id) or _risk_summary("NONE", []))
            cur = order["presentment_currency"]
            payable = order["financial_status"] in ("pending", "authorized", "partially_paid")
            return {
                **_gql_node(order),
                "presentmentCurrencyCode": cur,
                "canMarkAsPaid": payable
                and not order["cancelled_at"]
                and Decimal(order["total_outstanding"]) > 0,
                "risk": risk,
                "transactions": self._gql_transactions(order),
                "fulfillments": [_gql_fulfillment(f) for f in self._fulfillments.get(order_id, [])],
                "fulfillmentOrders": _connection(
                    [_gql_fulfillment_order(fo) for fo in self._fulfillment_orders.get(order_id, [])]
                ),
                "refunds": [_gql_refund(r, cur) for r in order["refunds"]],
            }

    # --- webhook delivery -------------------------------------------------------------------------

    def _emit(self, topic: str, resource: Mapping[str, Any], order_id: int | None) -> None:
        """One topic event: serialised now (retries carry this body), signed, queued for delivery."""
        if not self.webhook_url:
            return
        event_id = str(uuid.uuid4())
        if self._fault_rng.random() < self.drop_rate:
            self._dropped.append(DroppedWebhook(topic, event_id, order_id))
            return
        # Shopify sends compact UTF-8 JSON; a receiver that re-serialises it will not match the HMAC.
        body = json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode()
        triggered_at = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        copies = 2 if self._fault_rng.random() < self.duplicate_rate else 1
        for _ in range(copies):
            delivery = _Delivery(
                topic, body, event_id, str(uuid.uuid4()), triggered_at, self.webhook_url, order_id
            )
            if self.reorder:
                self._held.append(delivery)
            else:
                self._schedule(delivery, 0.0)
        if self.reorder and len(self._held) >= self.reorder_window:
            self._release_held()

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for delivery in reversed(held):
            self._schedule(delivery, 0.0)

    def _schedule(self, delivery: _Delivery, delay_s: float) -> None:
        self._seq += 1
        heapq.heappush(self._due, _Due(time.monotonic() + delay_s, self._seq, delivery))
        self._cond.notify_all()

    def _send_loop(self) -> None:
        session = requests.Session()
        while True:
            with self._cond:
                while not self._stopping and not (self._due and self._due[0].at <= time.monotonic()):
                    self._cond.wait(self._due[0].at - time.monotonic() if self._due else None)
                if self._stopping:
                    return
                delivery = heapq.heappop(self._due).delivery
                self._in_flight += 1
            try:
                self._attempt(session, delivery)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _attempt(self, session: requests.Session, delivery: _Delivery) -> None:
        status: int | None = None
        error: str | None = None
        try:
            answer = session.post(
                delivery.url,
                data=delivery.body,
                headers=self._headers(delivery),
                timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                allow_redirects=False,  # Shopify counts a redirect as a failure
            )
            status = answer.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except requests.RequestException as exc:
            error = type(exc).__name__
        with self._cond:
            self._log.append(
                DeliveryAttempt(
                    delivery.topic,
                    delivery.webhook_id,
                    delivery.event_id,
                    delivery.attempt,
                    status,
                    error,
                    delivery.order_id,
                )
            )
            if error and delivery.attempt <= len(RETRY_DELAYS_S):
                delay = RETRY_DELAYS_S[delivery.attempt - 1] * self.time_scale
                delivery.attempt += 1
                self._schedule(delivery, delay)
            elif error:
                log.warning(
                    "shopify webhook %s %s given up after %d attempts",
                    delivery.topic,
                    delivery.event_id,
                    delivery.attempt,
                )

    def _headers(self, delivery: _Delivery) -> dict[str, str]:
        digest = hmac.new(self.webhook_secret.encode(), delivery.body, hashlib.sha256).digest()
        return {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            "X-Shopify-Topic": delivery.topic,
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
            "X-Shopify-Shop-Domain": self.shop_domain,
            "X-Shopify-API-Version": API_VERSION,
            "X-Shopify-Webhook-Id": delivery.webhook_id,
            "X-Shopify-Event-Id": delivery.event_id,
            "X-Shopify-Triggered-At": delivery.triggered_at,
        }

    # --- Admin API --------------------------------------------------------------------------------

    def _next_failure(self, mutation: bool) -> ApiReply | None:
        """The answer fail_api queued for this call, if any (mutations_only ones wait for a mutation)."""
        with self._lock:
            if not self._api_failures or not (mutation or not self._api_failures[0][2]):
                return None
            status, retry_after, _ = self._api_failures.pop(0)
        headers = {"Retry-After": f"{retry_after:.1f}"} if retry_after is not None else {}
        return ApiReply(status, {"errors": _STATUS_TEXT.get(status, "Internal Server Error")}, headers)

    def handle_api(self, method: str, target: str, token: str | None, body: bytes) -> ApiReply:
        """Answer one Admin API request (the HTTP handler's whole job, callable directly in tests)."""
        parts = urlsplit(target)
        route = _route(parts.path)
        if route is None:
            return ApiReply(404, {"errors": "Not Found"})
        if not token or not hmac.compare_digest(token.encode(), self.access_token.encode()):
            return ApiReply(401, {"errors": UNAUTHORIZED_ERROR})
        failure = self._next_failure(route[0] == "graphql" and _is_mutation(body))
        if failure is not None:
            return failure
        kind, version, order_id = route
        if kind == "graphql":
            if method != "POST":
                return ApiReply(405, {"errors": "Method Not Allowed"})
            return _graphql(self, body, version)
        if method != "GET":
            return ApiReply(405, {"errors": "Method Not Allowed"})
        allowed, level = self.rest_bucket.take(1)
        headers = {
            "X-Shopify-Shop-Api-Call-Limit": f"{math.ceil(level)}/{int(self.rest_bucket.size)}",
            "X-Shopify-API-Version": version,
        }
        if not allowed:
            return ApiReply(429, {"errors": REST_THROTTLED}, {**headers, "Retry-After": "2.0"})
        if kind == "orders":
            reply = _list_orders(self, {k: v[-1] for k, v in parse_qs(parts.query).items()}, version)
        else:
            with self._lock:
                order = self._orders.get(order_id or 0)
                found = copy.deepcopy(order) if order else None
            if found is None:
                reply = ApiReply(404, {"errors": "Not Found"})
            elif kind == "refunds":
                reply = ApiReply(200, {"refunds": found["refunds"]})
            else:
                reply = ApiReply(200, {"order": found})
        return ApiReply(reply.status, reply.body, {**headers, **reply.headers})


_STATUS_TEXT = {
    429: REST_THROTTLED,
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_API_PATH = re.compile(
    r"^/admin/api/(?P<version>\d{4}-\d{2}|unstable)/"
    r"(?:orders(?:/(?P<id>\d+)(?P<refunds>/refunds)?)?|(?P<graphql>graphql))\.json$"
)


def _route(path: str) -> tuple[str, str, int | None] | None:
    """(kind, api version, order id) of an Admin API path: kind is order, refunds, orders or graphql."""
    match = _API_PATH.match(path)
    if match is None:
        return None
    if match.group("graphql"):
        return "graphql", match.group("version"), None
    if match.group("id") is None:
        return "orders", match.group("version"), None
    kind = "refunds" if match.group("refunds") else "order"
    return kind, match.group("version"), int(match.group("id"))


class _ApiHandler(NoDelayRequestHandler):
    owner: ShopifySimulator
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this a keep-alive client waits ~40 ms per answer.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.owner.handle_api(
            self.command, self.path, self.headers.get("X-Shopify-Access-Token"), body
        )
        data = json.dumps(reply.body, ensure_ascii=False).encode()
        self.send_response(reply.status)
        for name, value in {"Content-Type": "application/json; charset=utf-8", **reply.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


# --- REST: GET orders.json with Link-header cursor pagination -----------------------------------------

_LIST_FILTERS = ("status", "updated_at_min", "updated_at_max", "created_at_min", "created_at_max", "since_id")
_PAGE_PARAMS = frozenset({"page_info", "limit", "fields"})


class _BadRequest(ValueError):
    def __init__(self, errors: Any) -> None:
        super().__init__(str(errors))
        self.errors = errors


def _list_orders(sim: ShopifySimulator, params: dict[str, str], version: str) -> ApiReply:
    """Orders newest first (created_at, then id); `page_info` carries the filters, as Shopify's does."""
    try:
        limit, cursor = _page_request(params)
        filters = cursor["filters"]
        matching = sorted((o for o in sim.orders() if _rest_match(o, filters)), key=_rest_key, reverse=True)
    except _BadRequest as exc:
        return ApiReply(400, {"errors": exc.errors})
    except ValueError as exc:
        return ApiReply(400, {"errors": str(exc)})
    keys = [_rest_key(o) for o in matching]
    if cursor.get("before") is not None:
        page = [o for o, k in zip(matching, keys, strict=True) if k > tuple(cursor["before"])][-limit:]
    elif cursor.get("after") is not None:
        page = [o for o, k in zip(matching, keys, strict=True) if k < tuple(cursor["after"])][:limit]
    else:
        page = matching[:limit]
    links = []
    if page and _rest_key(page[0]) < keys[0]:
        previous = {"filters": filters, "before": _rest_key(page[0])}
        links.append(_link(sim, version, limit, previous, "previous"))
    if page and _rest_key(page[-1]) > keys[-1]:
        links.append(_link(sim, version, limit, {"filters": filters, "after": _rest_key(page[-1])}, "next"))
    fields = [f for f in params.get("fields", "").split(",") if f]
    body = [{k: o[k] for k in fields if k in o} if fields else o for o in page]
    return ApiReply(200, {"orders": body}, {"Link": ", ".join(links)} if links else {})


def _page_request(params: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    """The page size and the cursor ({filters, after | before}) a list request asks for."""
    try:
        limit = int(params.get("limit", "50"))
    except ValueError:
        raise _BadRequest({"limit": ["must be a number"]}) from None
    if not 1 <= limit <= 250:
        raise _BadRequest({"limit": ["must be between 1 and 250"]})
    if "page_info" not in params:
        cursor: dict[str, Any] = {"filters": {k: params[k] for k in _LIST_FILTERS if k in params}}
    elif extra := sorted(set(params) - _PAGE_PARAMS):
        message = f"cannot be combined with {', '.join(extra)}: only limit and fields may go with it"
        raise _BadRequest({"page_info": [message]})
    else:
        try:
            cursor = _decode(params["page_info"])
            if not isinstance(cursor.get("filters"), dict):
                raise ValueError("no filters")
        except ValueError:
            raise _BadRequest({"page_info": ["Invalid value."]}) from None
    if cursor["filters"].get("status", "open") not in _STATUS:
        raise _BadRequest({"status": [f"must be one of {', '.join(_STATUS)}"]})
    return limit, cursor


def _rest_key(order: Mapping[str, Any]) -> tuple[str, int]:
    return _utc(order["created_at"]), int(order["id"])


_STATUS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "open": lambda o: not o["cancelled_at"] and not o["closed_at"],
    "closed": lambda o: bool(o["closed_at"]),
    "cancelled": lambda o: bool(o["cancelled_at"]),
    "any": lambda o: True,
}


def _rest_match(order: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    bounds = [
        ("updated_at", filters.get("updated_at_min"), filters.get("updated_at_max")),
        ("created_at", filters.get("created_at_min"), filters.get("created_at_max")),
    ]
    in_range = all(
        (low is None or _utc(order[name]) >= _utc(low)) and (high is None or _utc(order[name]) <= _utc(high))
        for name, low, high in bounds
    )
    since_id = filters.get("since_id")
    in_status = _STATUS[filters.get("status", "open")](order)
    return in_status and in_range and (since_id is None or int(order["id"]) > int(since_id))


def _link(sim: ShopifySimulator, version: str, limit: int, cursor: Mapping[str, Any], rel: str) -> str:
    query = urlencode({"limit": limit, "page_info": _encode(cursor)})
    return f'<{sim.url}/admin/api/{version}/orders.json?{query}>; rel="{rel}"'


# --- GraphQL: a regex-matched subset -----------------------------------------------------------------
# Supported, arguments given inline or as $variables (one operation per document):
# - `orders(first: N, after: "...", query: "...", sortKey: ID|CREATED_AT|UPDATED_AT, reverse: true|false)`.
#   The search query understands `updated_at:` and `created_at:` with > >= < <= (quoted or bare ISO 8601
#   values), `status:open|closed|cancelled|any`, and AND. Every node carries id, legacyResourceId, name,
#   email, phone, createdAt, updatedAt, cancelledAt, cancelReason, closedAt, displayFinancialStatus,
#   displayFulfillmentStatus, currencyCode, taxesIncluded, paymentGatewayNames, the MoneyBags
#   totalPriceSet subtotalPriceSet totalTaxSet totalDiscountsSet totalOutstandingSet
#   totalShippingPriceSet currentTotalPriceSet, `customer { id legacyResourceId firstName lastName
#   defaultEmailAddress { emailAddress } defaultPhoneNumber { phoneNumber } }`, billingAddress and
#   shippingAddress (MailingAddress: firstName lastName name company address1 address2 city province
#   provinceCode zip country countryCodeV2 phone), `lineItems { nodes { id title variantTitle name sku
#   quantity currentQuantity originalUnitPriceSet discountAllocations { allocatedAmountSet
#   discountApplication { index } } taxLines { title rate ratePercentage channelLiable priceSet } } }`,
#   `shippingLines { nodes { id title code source isRemoved originalPriceSet discountedPriceSet
#   discountAllocations taxLines } }` and `refunds` (as below); edges carry cursor; pageInfo carries
#   hasNextPage, hasPreviousPage, startCursor, endCursor. Cost: 2 + first requested, 2 + nodes actual.
# - `order(id: "gid://shopify/Order/N")`: null when unknown, else the node above plus `risk
#   { recommendation assessments { riskLevel facts provider } }` and `transactions` (OrderTransaction:
#   id kind status gateway createdAt manuallyCapturable multiCapturable errorCode amountSet
#   parentTransaction { id kind }). Cost: 1, plus 1 each when risk or transactions are selected.
# - `mutation { orderCapture(input: {id parentTransactionId amount currency finalCapture}) }` answering
#   { transaction userErrors { field message } }; finalCapture only from API version 2024-07. Cost: 10.
# - The order node also carries presentmentCurrencyCode, canMarkAsPaid, `fulfillments` (Fulfillment: id
#   status displayStatus trackingInfo { company number url } events { nodes } fulfillmentLineItems
#   { nodes { id quantity lineItem { id } } }), `fulfillmentOrders { nodes { id status assignedLocation
#   { location { id } } lineItems { nodes { id totalQuantity remainingQuantity lineItem { id } } } } }` and
#   `refunds` (id legacyResourceId note createdAt totalRefundedSet transactions { nodes { id kind status
#   gateway createdAt amountSet } }); +1 cost each when selected. Connection arguments
#   (first:) are not applied: every node comes back.
# - Publishing mutations, arguments as $variables, each costing 10 and answering Shopify's payloads:
#   fulfillmentCreate(fulfillment:) (2024-10+), fulfillmentEventCreate(fulfillmentEvent:),
#   orderCancel(orderId: reason: refund:|refundMethod: restock: notifyCustomer: staffNote:) answering
#   { job orderCancelUserErrors userErrors } (refundMethod from 2025-07, `refund` required before),
#   refundCreate(input:) @idempotent(key:) (the key is required from 2026-04; a repeated key answers
#   the first result), orderMarkAsPaid(input:).
# The selection set is not read otherwise: every object carries all the fields listed.

_GQL_ORDERS = re.compile(r"\borders\s*\(([^)]*)\)", re.S)
_GQL_ORDER = re.compile(r"\border\s*\(([^)]*)\)", re.S)
_GQL_CAPTURE = re.compile(r"\borderCapture\s*\(\s*input\s*:\s*(\$\w+|\{[^}]*\})\s*\)", re.S)
_GQL_ARG = re.compile(r'(\w+)\s*:\s*(\$\w+|"(?:[^"\\]|\\.)*"|[\w.-]+)')
_CAPTURE_INPUT = ("id", "parentTransactionId", "amount", "currency", "finalCapture")
_CAPTURE_COST = 10
_GQL_TERM = re.compile(r"^(?P<field>updated_at|created_at):(?P<op><=|>=|<|>)?['\"]?(?P<value>[^'\"]+)['\"]?$")
_GQL_SORT = {"ID": "id", "CREATED_AT": "created_at", "UPDATED_AT": "updated_at"}


def _graphql(sim: ShopifySimulator, body: bytes, version: str) -> ApiReply:
    try:
        request = json.loads(body)
        query, variables = str(request["query"]), dict(request.get("variables") or {})
    except (ValueError, KeyError, TypeError, AttributeError):
        return ApiReply(400, {"errors": {"query": "Required parameter missing or invalid"}})
    if _GQL_CAPTURE.search(query):
        return _gql_order_capture(sim, query, variables, version)
    mutation = _GQL_MUTATION.search(query) if _GQL_IS_MUTATION.match(query) else None
    if mutation is not None:
        return _gql_mutation(
            sim, mutation.group(1), mutation.group(2), query, variables=variables, version=version
        )
    if _GQL_ORDER.search(query):
        return _gql_order_query(sim, query, variables)
    return _gql_orders(sim, query, variables)


def _gql_throttled(
    sim: ShopifySimulator, requested: int, *, mutation: bool = False
) -> tuple[float, ApiReply | None]:
    """Take a query's requested cost from the bucket: the level after, or Shopify's THROTTLED answer."""
    with sim._lock:
        forced = bool(sim._throttles) and (mutation or not sim._throttles[0])
        if forced:
            sim._throttles.pop(0)
    allowed, level = (False, sim.graphql_bucket.size) if forced else sim.graphql_bucket.take(requested)
    if allowed:
        return level, None
    error = {"message": "Throttled", "extensions": {"code": "THROTTLED"}}
    return level, ApiReply(200, {"errors": [error], "extensions": _gql_cost(sim, requested, None, level)})


def _gql_orders(sim: ShopifySimulator, query: str, variables: Mapping[str, Any]) -> ApiReply:
    try:
        args = _gql_arguments(query, variables)
        first = int(args["first"])
        if not 1 <= first <= 250:
            raise ValueError("first must be between 1 and 250")
        sort = _GQL_SORT[str(args.get("sortKey", "ID"))]
        predicate = _gql_filter(str(args.get("query") or ""))
        after = _decode(str(args["after"])) if args.get("after") else None
    except (ValueError, KeyError, TypeError) as exc:
        return ApiReply(200, {"errors": [{"message": f"unsupported by the simulator: {exc}"}]})
    requested = 2 + first
    level, throttled = _gql_throttled(sim, requested)
    if throttled is not None:
        return throttled

    def key(order: Mapping[str, Any]) -> tuple[str, int]:
        return (_utc(order[sort]) if sort != "id" else f"{int(order['id']):020d}"), int(order["id"])

    reverse = args.get("reverse") in (True, "true")
    matching = sorted((o for o in sim.orders() if predicate(o)), key=key, reverse=reverse)
    if after is not None:
        mark = (str(after["last_value"]), int(after["last_id"]))
        matching = [o for o in matching if (key(o) < mark if reverse else key(o) > mark)]
    page = matching[:first]
    edges = [{"cursor": _gql_cursor(key(o)), "node": _gql_node(o)} for o in page]
    level = sim.graphql_bucket.give_back(requested - (2 + len(page)))
    info = {
        "hasNextPage": len(matching) > first,
        "hasPreviousPage": after is not None,
        "startCursor": edges[0]["cursor"] if edges else None,
        "endCursor": edges[-1]["cursor"] if edges else None,
    }
    data = {"orders": {"edges": edges, "pageInfo": info}}
    return ApiReply(200, {"data": data, "extensions": _gql_cost(sim, requested, 2 + len(page), level)})


def _gql_arguments(query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    match = _GQL_ORDERS.search(query)
    if match is None:
        raise ValueError("only orders(...), order(id:) and orderCapture(input:) are answered")
    args = _gql_object(match.group(1), variables)
    if args.get("first") is None:
        raise ValueError("you must provide first")
    return args


def _gql_object(text: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """Flat `name: value` pairs (arguments or an input object literal); bare values stay text."""
    args: dict[str, Any] = {}
    for name, raw in _GQL_ARG.findall(text):
        if raw.startswith("$"):
            args[name] = variables.get(raw[1:])
        elif raw.startswith('"'):
            args[name] = json.loads(raw)
        else:
            args[name] = {"true": True, "false": False, "null": None}.get(raw, raw)
    return args


def _gql_order_query(sim: ShopifySimulator, query: str, variables: Mapping[str, Any]) -> ApiReply:
    match = _GQL_ORDER.search(query)
    raw_id = _gql_object(match.group(1), variables).get("id") if match else None
    order_id = _legacy_id(raw_id, "Order")
    if order_id is None:
        error = {
            "message": f"Invalid global id '{raw_id}'",
            "extensions": {"code": "argumentLiteralsIncompatible"},
        }
        return ApiReply(200, {"errors": [error]})
    selected = ("risk", "transactions", "fulfillments", "fulfillmentOrders", "refunds")
    requested = 1 + sum(1 for name in selected if re.search(rf"\b{name}\b", query))
    level, throttled = _gql_throttled(sim, requested)
    if throttled is not None:
        return throttled
    data = {"order": sim.graphql_order(order_id)}
    return ApiReply(200, {"data": data, "extensions": _gql_cost(sim, requested, requested, level)})


def _gql_order_capture(
    sim: ShopifySimulator, query: str, variables: Mapping[str, Any], version: str
) -> ApiReply:
    match = _GQL_CAPTURE.search(query)
    raw = match.group(1) if match else ""
    value = variables.get(raw[1:]) if raw.startswith("$") else _gql_object(raw[1:-1], variables)
    if not isinstance(value, dict):
        return ApiReply(
            200,
            {
                "errors": [
                    {"message": "Variable $input of type OrderCaptureInput! was provided invalid value"}
                ]
            },
        )
    known = [
        f for f in _CAPTURE_INPUT if f != "finalCapture" or _version_at_least(version, FINAL_CAPTURE_SINCE)
    ]
    problems = [
        {"path": [k], "explanation": "Field is not defined on OrderCaptureInput"}
        for k in value
        if k not in known
    ]
    problems += [
        {"path": [k], "explanation": "Expected value to not be null"}
        for k in ("id", "parentTransactionId", "amount")
        if value.get(k) is None
    ]
    if problems:
        first = problems[0]
        message = (
            f"Variable $input of type OrderCaptureInput! was provided invalid value for "
            f"{first['path'][0]} ({first['explanation']})"
        )
        error = {"message": message, "extensions": {"value": value, "problems": problems}}
        return ApiReply(200, {"errors": [error]})
    level, throttled = _gql_throttled(sim, _CAPTURE_COST, mutation=True)
    if throttled is not None:
        return throttled
    try:
        transaction = sim.capture(
            value["id"],
            value["parentTransactionId"],
            str(value["amount"]),
            currency=value.get("currency"),
            final_capture=value.get("finalCapture"),
        )
        payload: dict[str, Any] = {"transaction": transaction, "userErrors": []}
    except CaptureRejected as exc:
        payload = {
            "transaction": None,
            "userErrors": [{"field": ["input", exc.field], "message": exc.message}],
        }
    data = {"orderCapture": payload}
    return ApiReply(200, {"data": data, "extensions": _gql_cost(sim, _CAPTURE_COST, _CAPTURE_COST, level)})


_GQL_IS_MUTATION = re.compile(r"^\s*mutation\b")
_GQL_MUTATION = re.compile(
    r"\b(fulfillmentCreate|fulfillmentEventCreate|orderCancel|refundCreate|orderMarkAsPaid)\s*\(([^)]*)\)",
    re.S,
)
_GQL_IDEMPOTENT = re.compile(r'@idempotent\s*\(\s*key\s*:\s*("(?:[^"\\]|\\.)*"|\$\w+)\s*\)')
_MUTATION_COST = 10
# What each mutation answers besides its userErrors when it changed nothing.
_EMPTY_PAYLOADS: dict[str, dict[str, Any]] = {
    "fulfillmentCreate": {"fulfillment": None},
    "fulfillmentEventCreate": {"fulfillmentEvent": None},
    "orderCancel": {"job": None},
    "refundCreate": {"refund": None, "order": None},
    "orderMarkAsPaid": {"order": None},
}


def _is_mutation(body: bytes) -> bool:
    try:
        query = json.loads(body).get("query")
    except (ValueError, AttributeError):
        return False
    return isinstance(query, str) and bool(_GQL_IS_MUTATION.match(query))


def _gql_error(message: str, code: str) -> ApiReply:
    return ApiReply(200, {"errors": [{"message": message, "extensions": {"code": code}}]})


def _gql_mutation(
    sim: ShopifySimulator,
    name: str,
    arguments: str,
    query: str,
    *,
    variables: Mapping[str, Any],
    version: str,
) -> ApiReply:
    """One publishing mutation: version rules, cost, forced userErrors, idempotency keys, then the change."""
    args = _gql_object(arguments, variables)
    directive = _GQL_IDEMPOTENT.search(query)
    key: str | None = None
    if directive is not None:
        raw = directive.group(1)
        key = str(variables.get(raw[1:]) if raw.startswith("$") else json.loads(raw))
    problem = _mutation_version_problem(name, args, key, version)
    if problem is not None:
        return problem
    level, throttled = _gql_throttled(sim, _MUTATION_COST, mutation=True)
    if throttled is not None:
        return throttled
    fingerprint = json.dumps([name, args], sort_keys=True, default=str)
    with sim._lock:
        queued = sim._rejections.get(name) or []
        forced = queued.pop(0) if queued else None
        remembered = sim._idempotency.get(key) if key else None
    if remembered is not None and remembered[0] != fingerprint:
        return _gql_error("The idempotency key was already used with different arguments.", "BAD_REQUEST")
    if remembered is not None:
        payload = copy.deepcopy(remembered[1])
    else:
        try:
            if forced is not None:
                raise forced
            payload = _MUTATIONS[name](sim, args, key)
        except MutationRejected as exc:
            errors = [exc.as_error()]
            payload = {**_EMPTY_PAYLOADS[name], "userErrors": errors}
            if name == "orderCancel":
                payload["orderCancelUserErrors"] = errors
        else:
            payload.setdefault("userErrors", [])
            if name == "orderCancel":
                payload.setdefault("orderCancelUserErrors", [])
        if key is not None and not payload["userErrors"]:
            with sim._lock:
                sim._idempotency[key] = (fingerprint, copy.deepcopy(payload))
    cost = _gql_cost(sim, _MUTATION_COST, _MUTATION_COST, level)
    return ApiReply(200, {"data": {name: payload}, "extensions": cost})


def _mutation_version_problem(
    name: str, args: Mapping[str, Any], key: str | None, version: str
) -> ApiReply | None:
    if name == "fulfillmentCreate" and not _version_at_least(version, FULFILLMENT_CREATE_SINCE):
        return _gql_error("Field 'fulfillmentCreate' doesn't exist on type 'Mutation'", "undefinedField")
    if name == "orderCancel":
        recent = _version_at_least(version, REFUND_METHOD_SINCE)
        if "refundMethod" in args and not recent:
            return _gql_error(
                "Field 'orderCancel' doesn't accept argument 'refundMethod'", "argumentNotAccepted"
            )
        if "refund" not in args and not recent:
            return _gql_error(
                "Field 'orderCancel' is missing required arguments: refund", "missingRequiredArguments"
            )
    if name == "refundCreate" and key is None and _version_at_least(version, IDEMPOTENT_REQUIRED_SINCE):
        return _gql_error("The @idempotent directive is required for this mutation.", "BAD_REQUEST")
    return None


def _input(args: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = args.get(name)
    if not isinstance(value, dict):
        raise MutationRejected([name], f"{name} is required")
    return value


def _m_fulfillment_create(sim: ShopifySimulator, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    given = _input(args, "fulfillment")
    groups = given.get("lineItemsByFulfillmentOrder") or []
    where = ["fulfillment", "lineItemsByFulfillmentOrder"]
    if not isinstance(groups, list) or not groups:
        raise MutationRejected(where, "Line items by fulfillment order can't be blank.")
    tracking = given.get("trackingInfo") or {}
    numbers = list(tracking.get("numbers") or ([tracking["number"]] if tracking.get("number") else []))
    urls = list(tracking.get("urls") or ([tracking["url"]] if tracking.get("url") else []))
    with sim._lock:
        owners = {fo["id"]: fo for fos in sim._fulfillment_orders.values() for fo in fos}
        allocations: list[tuple[dict[str, Any], dict[str, Any], int]] = []
        for index, group in enumerate(groups):
            fo = owners.get(_legacy_id(group.get("fulfillmentOrderId"), "FulfillmentOrder") or 0)
            if fo is None:
                raise MutationRejected([*where, str(index)], "Fulfillment order does not exist.")
            if fo["status"] not in ("OPEN", "IN_PROGRESS"):
                gid, status = _gid("FulfillmentOrder", fo["id"]), fo["status"].lower()
                message = f"Fulfillment order {gid} has an unfulfillable status= {status}."
                raise MutationRejected([*where, str(index)], message)
            items = {i["id"]: i for i in fo["line_items"]}
            wanted = group.get("fulfillmentOrderLineItems") or [
                {"id": _gid("FulfillmentOrderLineItem", i["id"]), "quantity": i["remaining"]}
                for i in fo["line_items"] if i["remaining"] > 0
            ]  # fmt: skip
            for item in wanted:
                found = items.get(_legacy_id(item.get("id"), "FulfillmentOrderLineItem") or 0)
                quantity = int(item.get("quantity") or 0)
                if found is None:
                    raise MutationRejected(
                        [*where, str(index)], "Fulfillment order line item does not exist."
                    )
                if not 0 < quantity <= found["remaining"]:
                    message = f"Invalid quantity {quantity}: {found['remaining']} left to fulfill."
                    raise MutationRejected([*where, str(index)], message)
                allocations.append((fo, found, quantity))
        fos = {fo["id"]: fo for fo, _i, _q in allocations}.values()
        if len({fo["order_id"] for fo in fos}) > 1 or len({fo["location_id"] for fo in fos}) > 1:
            raise MutationRejected(
                where, "All fulfillment orders must belong to the same order and location."
            )
        if not allocations:
            raise MutationRejected(where, "There is nothing left to fulfill.")
        order = sim._order(next(iter(fos))["order_id"])
        now = sim._stamp()
        record = sim._fulfil(
            order, allocations, company=tracking.get("company"), numbers=numbers, urls=urls,
            notify=bool(given.get("notifyCustomer")), now=now, fulfillment_id=sim._new_gql_id(), via="api",
        )  # fmt: skip
        sim._touch(order, now, *sim._fulfilled_topics(order))
        return {"fulfillment": _gql_fulfillment(record)}


def _m_fulfillment_event_create(
    sim: ShopifySimulator, args: Mapping[str, Any], key: str | None
) -> dict[str, Any]:
    given = _input(args, "fulfillmentEvent")
    status = str(given.get("status") or "")
    if status not in FULFILLMENT_EVENT_STATUSES:
        raise MutationRejected(
            ["fulfillmentEvent", "status"], f"Status {status!r} is not a fulfillment event status."
        )
    wanted = _legacy_id(given.get("fulfillmentId"), "Fulfillment")
    with sim._lock:
        found = [(oid, f) for oid, fs in sim._fulfillments.items() for f in fs if f["id"] == wanted]
        if not found:
            raise MutationRejected(["fulfillmentEvent", "fulfillmentId"], "Fulfillment does not exist.")
        order_id, fulfillment = found[0]
        now = sim._stamp()
        event: dict[str, Any] = {
            "id": sim._new_gql_id(),
            "status": status,
            "happened_at": str(given.get("happenedAt") or _utc(now)),
        }
        fulfillment["events"].append(event)
        fulfillment["updated_at"] = now
        order = sim._order(order_id)
        rest = next(f for f in order["fulfillments"] if f["id"] == fulfillment["id"])
        rest["shipment_status"] = status.lower()
        rest["updated_at"] = now
        sim._emit("fulfillment_events/create", _rest_event(event, fulfillment, order, now), order_id)
        sim._touch(order, now, "orders/updated")
        node = {
            "id": _gid("FulfillmentEvent", event["id"]),
            "status": status,
            "happenedAt": event["happened_at"],
        }
        return {"fulfillmentEvent": node}


def _m_order_cancel(sim: ShopifySimulator, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    reason = str(args.get("reason") or "")
    if reason not in CANCEL_REASONS:
        raise MutationRejected(["reason"], f"Reason {reason!r} is not an order cancel reason.", "INVALID")
    method = args.get("refundMethod") if isinstance(args.get("refundMethod"), dict) else {}
    refund = bool(method.get("originalPaymentMethodsRefund")) if method else bool(args.get("refund"))
    with sim._lock:
        order = sim._orders.get(_legacy_id(args.get("orderId"), "Order") or 0)
        if order is None:
            raise MutationRejected(["orderId"], "Order does not exist", "NOT_FOUND")
        if order["cancelled_at"]:
            raise MutationRejected(["orderId"], "Order has already been cancelled", "INVALID")
        if any(f["status"] == "SUCCESS" for f in sim._fulfillments.get(order["id"], [])):
            message = "Cannot cancel an order with fulfillments: cancel the fulfillments first"
            raise MutationRejected(["orderId"], message, "INVALID")
        now = sim._stamp()
        sim._cancel(
            order, reason, refund=refund, restock=bool(args.get("restock")),
            notify=bool(args.get("notifyCustomer")), note=args.get("staffNote"), now=now, via="api",
        )  # fmt: skip
        sim._touch(order, now, "orders/cancelled", "orders/updated")
        return {"job": {"id": f"gid://shopify/Job/{uuid.uuid4()}", "done": True}}


def _m_refund_create(sim: ShopifySimulator, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    given = _input(args, "input")
    transactions = given.get("transactions") or []
    if not isinstance(transactions, list) or not transactions:
        raise MutationRejected(["input", "transactions"], "A refund needs transactions to give money back.")
    with sim._lock:
        order = sim._orders.get(_legacy_id(given.get("orderId"), "Order") or 0)
        if order is None:
            raise MutationRejected(["input", "orderId"], "Order does not exist")
        cur = order["presentment_currency"]
        if given.get("currency") not in (None, cur):
            raise MutationRejected(["input", "currency"], f"Currency must be the presentment currency {cur}")
        txns = {t["id"]: t for t in sim._transactions.get(order["id"], [])}
        parents: list[tuple[int, Decimal]] = []
        for index, txn in enumerate(transactions):
            where = ["input", "transactions", str(index)]
            parent = txns.get(_legacy_id(txn.get("parentId"), "OrderTransaction") or 0)
            if txn.get("kind") != "REFUND":
                raise MutationRejected([*where, "kind"], "Kind must be REFUND")
            if parent is None or parent["kind"] not in ("SALE", "CAPTURE") or parent["status"] != "SUCCESS":
                raise MutationRejected(
                    [*where, "parentId"], "Parent transaction is not a successful sale or capture"
                )
            amount = _capture_amount(str(txn.get("amount")), cur) if txn.get("amount") else Decimal(0)
            taken = sum(
                (
                    t["amount"]
                    for t in txns.values()
                    if t["kind"] == "REFUND" and t["parent_id"] == parent["id"]
                ),
                Decimal(0),
            ) + sum((a for p, a in parents if p == parent["id"]), Decimal(0))
            if amount <= 0 or amount > parent["amount"] - taken:
                left = _fmt(parent["amount"] - taken, cur)
                raise MutationRejected(
                    [*where, "amount"], f"Refund amount must be between 0 and {left} {cur}"
                )
            parents.append((parent["id"], amount))
        total = sum((a for _p, a in parents), Decimal(0))
        now = sim._stamp()
        try:
            refund = sim._refund(
                order, None, total, note=given.get("note"), now=now, parents=parents,
                idempotency_key=key, via="api",
            )  # fmt: skip
        except ValueError as exc:
            raise MutationRejected(["input"], str(exc)) from None
        sim._touch(order, now, "orders/updated")
        return {"refund": _gql_refund(refund, cur), "order": {"id": _gid("Order", order["id"])}}


def _m_order_mark_as_paid(sim: ShopifySimulator, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    given = _input(args, "input")
    order_id = _legacy_id(given.get("id"), "Order") or 0
    with sim._lock:
        order = sim._orders.get(order_id)
        if order is None:
            raise MutationRejected(["input", "id"], "Order does not exist")
        if order["cancelled_at"] or order["financial_status"] not in (
            "pending",
            "authorized",
            "partially_paid",
        ):
            raise MutationRejected(["input", "id"], "Order cannot be marked as paid.")
        sim.mark_paid(order_id)
        status = str(sim._order(order_id)["financial_status"]).upper()
        return {"order": {"id": _gid("Order", order_id), "displayFinancialStatus": status}}


_MUTATIONS: dict[str, Callable[[ShopifySimulator, Mapping[str, Any], str | None], dict[str, Any]]] = {
    "fulfillmentCreate": _m_fulfillment_create,
    "fulfillmentEventCreate": _m_fulfillment_event_create,
    "orderCancel": _m_order_cancel,
    "refundCreate": _m_refund_create,
    "orderMarkAsPaid": _m_order_mark_as_paid,
}


def _connection(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    info = {"hasNextPage": False, "hasPreviousPage": False, "startCursor": None, "endCursor": None}
    return {"nodes": nodes, "pageInfo": info}


_DISPLAY_STATUS = {"CARRIER_PICKED_UP": "IN_TRANSIT", "DELAYED": "IN_TRANSIT"}


def _gql_fulfillment(record: Mapping[str, Any]) -> dict[str, Any]:
    events = [
        {"id": _gid("FulfillmentEvent", e["id"]), "status": e["status"], "happenedAt": e["happened_at"]}
        for e in record["events"]
    ]
    display = _DISPLAY_STATUS.get(events[-1]["status"], events[-1]["status"]) if events else "FULFILLED"
    urls = list(record["urls"]) + [None] * (len(record["numbers"]) - len(record["urls"]))
    return {
        "id": _gid("Fulfillment", record["id"]),
        "legacyResourceId": str(record["id"]),
        "name": record["name"],
        "status": record["status"],
        "displayStatus": "CANCELED" if record["status"] == "CANCELLED" else display,
        "createdAt": _utc(record["created_at"]),
        "updatedAt": _utc(record["updated_at"]),
        "location": {"id": _gid("Location", record["location_id"])},
        "trackingInfo": [
            {"company": record["company"], "number": n, "url": u}
            for n, u in zip(record["numbers"], urls, strict=False)
        ],
        "events": _connection(events),
        "fulfillmentLineItems": _connection(
            [
                {"id": _gid("FulfillmentLineItem", record["line_ids"][line_id]), "quantity": quantity,
                 "lineItem": {"id": _gid("LineItem", line_id)}}
                for line_id, quantity in record["lines"].items()
            ]
        ),
    }  # fmt: skip


def _fulfillment_record(record: Mapping[str, Any]) -> FulfillmentRecord:
    return FulfillmentRecord(
        _gid("Fulfillment", record["id"]),
        record["location_id"],
        dict(record["lines"]),
        record["company"],
        tuple(record["numbers"]),
        tuple(record["urls"]),
        record["notify"],
        record["status"],
        record["via"],
    )


def _gql_fulfillment_order(fo: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": _gid("FulfillmentOrder", fo["id"]),
        "status": fo["status"],
        "requestStatus": "UNSUBMITTED",
        "assignedLocation": {
            "name": f"Location {fo['location_id']}",
            "location": {"id": _gid("Location", fo["location_id"])},
        },
        "lineItems": _connection(
            [
                {"id": _gid("FulfillmentOrderLineItem", i["id"]), "totalQuantity": i["total"],
                 "remainingQuantity": i["remaining"], "lineItem": {"id": _gid("LineItem", i["line_item_id"])}}
                for i in fo["line_items"]
            ]
        ),
    }  # fmt: skip


def _gql_refund(refund: Mapping[str, Any], currency: str) -> dict[str, Any]:
    amount = sum((Decimal(t["amount"]) for t in refund["transactions"]), Decimal(0))
    money = {"amount": _fmt(amount, currency), "currencyCode": currency}
    return {
        "id": _gid("Refund", refund["id"]),
        "legacyResourceId": str(refund["id"]),
        "note": refund["note"],
        "createdAt": _utc(refund["created_at"]),
        "totalRefundedSet": {"shopMoney": dict(money), "presentmentMoney": dict(money)},
        "transactions": _connection(
            [
                {
                    "id": _gid("OrderTransaction", t["id"]),
                    "kind": str(t["kind"]).upper(),
                    "status": str(t["status"]).upper(),
                    "gateway": t.get("gateway"),
                    "createdAt": _utc(t["created_at"]),
                    "amountSet": _gql_money(t["amount"], currency),
                }
                for t in refund["transactions"]
            ]
        ),
    }


def _rest_event(
    event: Mapping[str, Any], fulfillment: Mapping[str, Any], order: Mapping[str, Any], now: str
) -> dict[str, Any]:
    """The REST fulfillment event resource (the fulfillment_events/create webhook body)."""
    return {
        "id": event["id"], "admin_graphql_api_id": _gid("FulfillmentEvent", event["id"]),
        "fulfillment_id": fulfillment["id"], "order_id": order["id"], "status": event["status"].lower(),
        "message": None, "happened_at": event["happened_at"], "created_at": now, "updated_at": now,
        "city": None, "province": None, "country": None, "zip": None, "address1": None,
        "latitude": None, "longitude": None, "estimated_delivery_at": None,
    }  # fmt: skip


def _version_at_least(version: str, since: str) -> bool:
    return version == "unstable" or version >= since


def _legacy_id(value: object, type_name: str) -> int | None:
    """The numeric id in `gid://shopify/<type_name>/N` (or a bare number); None when it is neither."""
    text = str(value).strip() if value is not None else ""
    prefix = f"gid://shopify/{type_name}/"
    if text.startswith(prefix):
        text = text[len(prefix) :]
    return int(text) if text.isdigit() else None


def _gid(type_name: str, legacy_id: int | None) -> str:
    return f"gid://shopify/{type_name}/{legacy_id}"


def _capture_amount(amount: str | Decimal, currency: str) -> Decimal:
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise CaptureRejected("amount", "Amount is invalid") from None
    if not value.is_finite() or value <= 0:
        raise CaptureRejected("amount", "Amount must be greater than 0")
    if _round(value, currency) != value:
        raise CaptureRejected("amount", f"Amount has more decimal places than {currency} allows")
    return value


def _risk_summary(recommendation: str, levels: Sequence[str]) -> dict[str, Any]:
    """OrderRiskSummary: the recommendation and one OrderRiskAssessment (by Shopify) per risk level."""
    upper = recommendation.upper()
    if upper not in RISK_RECOMMENDATIONS:
        raise ValueError(f"recommendation {recommendation!r} is not one of {sorted(RISK_RECOMMENDATIONS)}")
    unknown = [lv for lv in levels if lv.upper() not in RISK_LEVELS]
    if unknown:
        raise ValueError(f"risk levels {unknown} are not among {sorted(RISK_LEVELS)}")
    assessments: list[dict[str, Any]] = [
        {"riskLevel": lv.upper(), "facts": [], "provider": None} for lv in levels
    ]
    return {"recommendation": upper, "assessments": assessments}


def _gql_transaction(
    txn: Mapping[str, Any], kinds: Mapping[int, str], currency: str, capturable: Decimal
) -> dict[str, Any]:
    money = {"amount": _fmt(txn["amount"], currency), "currencyCode": currency}
    parent = txn["parent_id"]
    return {
        "id": _gid("OrderTransaction", txn["id"]),
        "kind": txn["kind"],
        "status": txn["status"],
        "gateway": txn["gateway"],
        "createdAt": _utc(txn["created_at"]),
        "errorCode": None,
        "manuallyCapturable": capturable > 0,
        "multiCapturable": txn["multi_capturable"],
        "amountSet": {"shopMoney": dict(money), "presentmentMoney": dict(money)},
        "parentTransaction": {"id": _gid("OrderTransaction", parent), "kind": kinds.get(parent)}
        if parent
        else None,
    }


_COMPARE: dict[str, Callable[[str, str], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def _gql_filter(search: str) -> Callable[[Mapping[str, Any]], bool]:
    status = "any"
    bounds: list[tuple[str, Callable[[str, str], bool], str]] = []
    for term in search.replace(" AND ", " ").split():
        if term.startswith("status:"):
            status = term.split(":", 1)[1]
            if status not in _STATUS:
                raise ValueError(f"status {status!r}")
            continue
        match = _GQL_TERM.match(term)
        if match is None:
            raise ValueError(f"search term {term!r}")
        bounds.append((match.group("field"), _COMPARE[match.group("op") or ">="], _utc(match.group("value"))))

    def predicate(order: Mapping[str, Any]) -> bool:
        in_range = all(compare(_utc(order[name]), bound) for name, compare, bound in bounds)
        return in_range and _STATUS[status](order)

    return predicate


def _gql_node(order: Mapping[str, Any]) -> dict[str, Any]:
    fulfillment = {"fulfilled": "FULFILLED", "partial": "PARTIALLY_FULFILLED"}
    cur = order["currency"]
    return {
        "id": f"gid://shopify/Order/{order['id']}",
        "legacyResourceId": str(order["id"]),
        "name": order["name"],
        "email": order.get("email"),
        "phone": order.get("phone"),
        "createdAt": _utc(order["created_at"]),
        "updatedAt": _utc(order["updated_at"]),
        "cancelledAt": _utc(order["cancelled_at"]) if order["cancelled_at"] else None,
        "cancelReason": str(order["cancel_reason"]).upper() if order.get("cancel_reason") else None,
        "closedAt": _utc(order["closed_at"]) if order["closed_at"] else None,
        "displayFinancialStatus": str(order["financial_status"]).upper(),
        "displayFulfillmentStatus": fulfillment.get(order["fulfillment_status"] or "", "UNFULFILLED"),
        "currencyCode": cur,
        "taxesIncluded": bool(order.get("taxes_included")),
        "paymentGatewayNames": list(order.get("payment_gateway_names") or []),
        "totalPriceSet": _gql_money(order["total_price"], cur),
        "subtotalPriceSet": _gql_money(order["subtotal_price"], cur),
        "totalTaxSet": _gql_money(order["total_tax"], cur),
        "totalDiscountsSet": _gql_money(order["total_discounts"], cur),
        "totalOutstandingSet": _gql_money(order["total_outstanding"], cur),
        "totalShippingPriceSet": _gql_money(order["total_shipping_price_set"]["shop_money"]["amount"], cur),
        "currentTotalPriceSet": _gql_money(order["current_total_price"], cur),
        "customer": _gql_customer(order.get("customer")),
        "billingAddress": _gql_address(order.get("billing_address")),
        "shippingAddress": _gql_address(order.get("shipping_address")),
        "lineItems": _connection([_gql_line_item(li, cur) for li in order["line_items"]]),
        "shippingLines": _connection([_gql_shipping_line(sl, cur) for sl in order["shipping_lines"]]),
        "refunds": [_gql_refund(r, order["presentment_currency"]) for r in order["refunds"]],
    }


def _gql_money(amount: Any, currency: str) -> dict[str, Any]:
    """A MoneyBag: the same amount in shop and presentment money (the simulator sells in one currency)."""
    money = {"amount": str(amount), "currencyCode": currency}
    return {"shopMoney": dict(money), "presentmentMoney": dict(money)}


def _gql_customer(customer: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not customer:
        return None
    email, phone = customer.get("email"), customer.get("phone")
    return {
        "id": _gid("Customer", customer["id"]),
        "legacyResourceId": str(customer["id"]),
        "firstName": customer.get("first_name"),
        "lastName": customer.get("last_name"),
        # Customer.email and Customer.phone are deprecated (2025-04) in favour of these two.
        "defaultEmailAddress": {"emailAddress": email} if email else None,
        "defaultPhoneNumber": {"phoneNumber": phone} if phone else None,
    }


def _gql_address(address: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A MailingAddress (countryCodeV2, provinceCode) from the REST address."""
    if not address:
        return None
    return {
        "firstName": address.get("first_name"), "lastName": address.get("last_name"),
        "name": address.get("name"), "company": address.get("company"),
        "address1": address.get("address1"), "address2": address.get("address2"),
        "city": address.get("city"), "province": address.get("province"),
        "provinceCode": address.get("province_code"), "zip": address.get("zip"),
        "country": address.get("country"), "countryCodeV2": address.get("country_code"),
        "phone": address.get("phone"),
    }  # fmt: skip


def _gql_allocations(owner: Mapping[str, Any], cur: str) -> list[dict[str, Any]]:
    return [
        {"allocatedAmountSet": _gql_money(a["amount"], cur),
         "discountApplication": {"index": a.get("discount_application_index", 0)}}
        for a in owner.get("discount_allocations") or []
    ]  # fmt: skip


def _gql_tax_lines(owner: Mapping[str, Any], cur: str) -> list[dict[str, Any]]:
    return [
        {"title": t["title"], "rate": t["rate"], "ratePercentage": round(float(t["rate"]) * 100, 4),
         "channelLiable": bool(t.get("channel_liable")), "priceSet": _gql_money(t["price"], cur)}
        for t in owner.get("tax_lines") or []
    ]  # fmt: skip


def _gql_line_item(line: Mapping[str, Any], cur: str) -> dict[str, Any]:
    return {
        "id": _gid("LineItem", line["id"]),
        "title": line["title"],
        "variantTitle": line.get("variant_title"),
        "name": line.get("name"),
        "sku": line.get("sku") or None,
        "quantity": line["quantity"],
        "currentQuantity": line["current_quantity"],
        "originalUnitPriceSet": _gql_money(line["price"], cur),
        "discountAllocations": _gql_allocations(line, cur),
        "taxLines": _gql_tax_lines(line, cur),
    }


def _gql_shipping_line(line: Mapping[str, Any], cur: str) -> dict[str, Any]:
    return {
        "id": _gid("ShippingLine", line["id"]),
        "title": line["title"],
        "code": line.get("code"),
        "source": line.get("source"),
        "isRemoved": bool(line.get("is_removed")),
        "originalPriceSet": _gql_money(line["price"], cur),
        "discountedPriceSet": _gql_money(line.get("discounted_price") or line["price"], cur),
        "discountAllocations": _gql_allocations(line, cur),
        "taxLines": _gql_tax_lines(line, cur),
    }


def _gql_cursor(key: tuple[str, int]) -> str:
    raw = json.dumps({"last_id": key[1], "last_value": key[0]}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def _gql_cost(sim: ShopifySimulator, requested: int, actual: int | None, level: float) -> dict[str, Any]:
    bucket = sim.graphql_bucket
    throttle = {
        "maximumAvailable": float(bucket.size),
        "currentlyAvailable": int(bucket.size - level),
        "restoreRate": float(bucket.leak_per_s),
    }
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": throttle}}


def _encode(cursor: Mapping[str, Any]) -> str:
    raw = json.dumps(cursor, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any]:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not a cursor")
    return value


def _utc(stamp: str) -> str:
    """A Shopify timestamp as comparable UTC text (GraphQL's DateTime form)."""
    parsed = datetime.fromisoformat(stamp)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- realistic orders (REST Admin API 2024-04 shapes) -------------------------------------------------

# title, variant_title, sku, price in USD, grams
_PRODUCTS: tuple[tuple[str, str | None, str, str, int], ...] = (
    ("Merino Crew Sweater", "Charcoal / M", "MCS-CHR-M", "89.00", 420),
    ("Café Crème Mug", None, "MUG-CC", "18.50", 380),
    ("Waxed Canvas Tote", "Olive", "WCT-OLV", "68.00", 650),
    ("Trail Socks 3-Pack", "L", "TS3-L", "24.00", 210),
    ("Hinoki Bath Stool", None, "HBS-01", "145.00", 2100),
    ("Ceremonial Matcha 30 g (抹茶)", None, "MATCHA-30", "21.00", 60),
    ("Linen Tea Towel", "Natural", "LTT-NAT", "14.90", 120),
    ("Cast-Iron Dutch Oven 24 cm", "Graphite", "CIDO-24-GR", "129.00", 4200),
)
_CURRENCIES = (("USD", 45), ("EUR", 20), ("JPY", 15), ("GBP", 10), ("CAD", 10))
_FX = {"USD": "1", "CAD": "1.37", "EUR": "0.92", "GBP": "0.79", "JPY": "150"}
_TAX = {
    "USD": ("State Tax", "0.06"),
    "CAD": ("GST", "0.05"),
    "EUR": ("DE MwSt", "0.19"),
    "GBP": ("GB VAT", "0.20"),
    "JPY": ("JP Consumption Tax", "0.10"),
}
_SHIPPING = (("Standard", "7.95"), ("Express", "19.00"))
_SURCHARGE = ("Oversize surcharge", "12.00")
# address1, address2, city, province, province_code, zip, country, country_code
_PLACES: dict[str, tuple[tuple[str, str | None, str, str, str, str, str, str], ...]] = {
    "USD": (
        ("350 Fifth Avenue", "Suite 4100", "New York", "New York", "NY", "10118", "United States", "US"),
        ("1 Ferry Building", None, "San Francisco", "California", "CA", "94111", "United States", "US"),
    ),
    "CAD": (
        (
            "1000 Rue De La Gauchetière O",
            "Bureau 2400",
            "Montréal",
            "Quebec",
            "QC",
            "H3B 4W5",
            "Canada",
            "CA",
        ),
    ),
    "EUR": (
        ("Friedrichstraße 43", None, "Berlin", "Berlin", "BE", "10117", "Germany", "DE"),
        ("12 Rue de la Paix", "Bâtiment B", "Paris", "Paris", "75", "75002", "France", "FR"),
    ),
    "GBP": (("221B Baker Street", None, "London", "England", "ENG", "NW1 6XE", "United Kingdom", "GB"),),
    "JPY": (("神宮前1-2-3", "原宿ビル4F", "渋谷区", "Tokyo", "JP-13", "150-0001", "Japan", "JP"),),
}
_PEOPLE = {
    "USD": (("José", "Núñez"), ("Ava", "Thompson"), ("Bob", "Norman")),
    "CAD": (("François", "Côté"), ("Liam", "Tremblay")),
    "EUR": (("Jürgen", "Groß"), ("Amélie", "Lefèvre"), ("Søren", "Kjær")),
    "GBP": (("Zoë", "Brontë"), ("Siobhán", "O'Connor")),
    "JPY": (("花子", "山田"), ("Yūki", "Satō")),
}
_DIAL = {"USD": "+1212555", "CAD": "+1514555", "EUR": "+4930555", "GBP": "+4420794", "JPY": "+8135555"}


def _q(currency: str) -> Decimal:
    return Decimal(1) if currency in _ZERO_DECIMAL else Decimal("0.01")


def _round(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(_q(currency), rounding=ROUND_HALF_EVEN)


def _fmt(amount: Decimal, currency: str) -> str:
    return f"{_round(amount, currency):f}"


def _set_sum(objects: Sequence[Mapping[str, Any]], key: str) -> Decimal:
    return sum((Decimal(o[key]["shop_money"]["amount"]) for o in objects), Decimal(0))


def _money_set(amount: str, currency: str) -> dict[str, Any]:
    money = {"amount": amount, "currency_code": currency}
    return {"shop_money": dict(money), "presentment_money": dict(money)}


def _priced(usd: str, currency: str) -> Decimal:
    converted = Decimal(usd) * Decimal(_FX.get(currency, "1"))
    step = Decimal(10) if currency in _ZERO_DECIMAL else Decimal("0.01")
    return (converted / step).quantize(Decimal(1), rounding=ROUND_HALF_EVEN) * step


@dataclass
class _OrderSpec:
    """What an order is made of, before Shopify's figures are worked out."""

    currency: str
    items: list[dict[str, Any]]
    shipping: list[tuple[str, Decimal]]
    discount: dict[str, str]
    financial_status: str
    taxes_included: bool
    gateway: str
    person: tuple[str, str] | None
    place: tuple[str, str | None, str, str, str, str, str, str]
    phone: str | None

    @classmethod
    def pick(
        cls,
        rng: random.Random,
        *,
        currency: str | None,
        items: Sequence[Mapping[str, Any]] | None,
        shipping: Sequence[str] | None,
        discount: Mapping[str, str] | None,
        financial_status: str | None,
        taxes_included: bool,
    ) -> _OrderSpec:
        cur = (currency or rng.choices([c for c, _ in _CURRENCIES], [w for _, w in _CURRENCIES])[0]).upper()
        if items is None:
            chosen = rng.sample(_PRODUCTS, rng.choice((1, 1, 2, 2, 3)))
            items = [
                {"title": t, "variant_title": v, "sku": s, "price": _priced(p, cur), "grams": g,
                 "quantity": rng.choice((1, 1, 1, 2, 3))}
                for t, v, s, p, g in chosen
            ]  # fmt: skip
        if shipping is None:
            roll = rng.random()
            lines = [] if roll < 0.1 else [rng.choice(_SHIPPING)] + ([_SURCHARGE] if roll > 0.75 else [])
            ship = [(title, _priced(price, cur)) for title, price in lines]
        else:
            titles = [s[0] for s in (*_SHIPPING, _SURCHARGE)]
            ship = [(titles[i % len(titles)], Decimal(p)) for i, p in enumerate(shipping)]
        if discount is None:
            offers = [{"code": "WELCOME10", "type": "percentage", "value": "10"}]
            offers.append({"code": "SAVE5", "type": "fixed_amount", "value": f"{_priced('5', cur)}"})
            offers += [{"code": "FREESHIP", "type": "shipping", "value": "100"}] if ship else []
            discount = rng.choice(offers) if rng.random() < 0.35 else {}
        status = financial_status or rng.choices(("paid", "authorized", "pending"), (70, 20, 10))[0]
        gateway = "manual" if status == "pending" else rng.choice(("shopify_payments",) * 4 + ("paypal",))
        person = rng.choice(_PEOPLE.get(cur, _PEOPLE["USD"])) if rng.random() > 0.05 else None
        phone = f"{_DIAL.get(cur, '+1212555')}{rng.randrange(10000):04d}" if rng.random() > 0.4 else None
        return cls(
            currency=cur,
            items=[{**i, "price": Decimal(str(i["price"]))} for i in items],
            shipping=ship,
            discount=dict(discount),
            financial_status=status,
            taxes_included=taxes_included,
            gateway=gateway,
            person=person,
            place=rng.choice(_PLACES.get(cur, _PLACES["USD"])),
            phone=phone,
        )


def _allocate(discount: Mapping[str, str], bases: list[Decimal], currency: str) -> list[Decimal]:
    """Spread a line-item discount over lines as Shopify does (percentage per line; fixed pro rata)."""
    kind, total = discount.get("type"), sum(bases, Decimal(0))
    if kind == "percentage":
        rate = Decimal(discount["value"]) / 100
        return [_round(b * rate, currency) for b in bases]
    if kind != "fixed_amount" or not total:
        return [Decimal(0)] * len(bases)
    amount = min(Decimal(discount["value"]), total)
    shares = [_round(amount * b / total, currency) for b in bases[:-1]]
    return [*shares, amount - sum(shares, Decimal(0))]


def _tax(base: Decimal, rate: Decimal, included: bool, currency: str) -> Decimal:
    return _round(base * rate / (1 + rate) if included else base * rate, currency)


def _tax_lines(amount: Decimal, title: str, rate: Decimal, currency: str) -> list[dict[str, Any]]:
    if not amount:
        return []
    price = _fmt(amount, currency)
    return [
        {"channel_liable": False, "price": price, "price_set": _money_set(price, currency),
         "rate": float(rate), "title": title}
    ]  # fmt: skip


def _allocation(amount: Decimal, currency: str) -> list[dict[str, Any]]:
    if not amount:
        return []
    text = _fmt(amount, currency)
    return [{"amount": text, "amount_set": _money_set(text, currency), "discount_application_index": 0}]


def _line_item(
    line_id: int, item: Mapping[str, Any], alloc: Decimal, tax: Decimal, spec: _OrderSpec
) -> dict[str, Any]:
    cur, (tax_title, rate) = spec.currency, _TAX.get(spec.currency, _TAX["USD"])
    price = _fmt(item["price"], cur)
    variant = item.get("variant_title")
    return {
        "id": line_id,
        "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
        "attributed_staffs": [],
        "current_quantity": item["quantity"],
        "fulfillable_quantity": item["quantity"],
        "fulfillment_service": "manual",
        "fulfillment_status": None,
        "gift_card": False,
        "grams": item.get("grams", 500),
        "name": f"{item['title']} - {variant}" if variant else item["title"],
        "price": price,
        "price_set": _money_set(price, cur),
        "product_exists": True,
        "product_id": 8_100_000_000_000 + _stable_number(item["title"]),
        "properties": [],
        "quantity": item["quantity"],
        "requires_shipping": True,
        "sku": item.get("sku") or "",
        "taxable": True,
        "title": item["title"],
        "total_discount": _fmt(Decimal(0), cur),
        "total_discount_set": _money_set(_fmt(Decimal(0), cur), cur),
        "variant_id": 45_000_000_000_000 + _stable_number(f"{item['title']}/{variant}"),
        "variant_inventory_management": "shopify",
        "variant_title": variant,
        "vendor": "order-hub demo",
        "tax_lines": _tax_lines(tax, tax_title, Decimal(rate), cur),
        "duties": [],
        "discount_allocations": _allocation(alloc, cur),
    }


def _stable_number(text: str) -> int:
    """A stable small number for a product name (product and variant ids that repeat across orders)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % 10_000_000


def _address(spec: _OrderSpec) -> dict[str, Any] | None:
    if spec.person is None:
        return None
    first, last = spec.person
    line1, line2, city, province, province_code, zip_code, country, country_code = spec.place
    name = f"{last} {first}" if spec.currency == "JPY" and not first.isascii() else f"{first} {last}"
    return {
        "first_name": first, "address1": line1, "phone": spec.phone, "city": city, "zip": zip_code,
        "province": province, "country": country, "last_name": last, "address2": line2, "company": None,
        "latitude": None, "longitude": None, "name": name, "country_code": country_code,
        "province_code": province_code,
    }  # fmt: skip


def _email(spec: _OrderSpec, order_id: int) -> str:
    first, last = spec.person or ("guest", "")
    ascii_name = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z.]", "", ascii_name.lower()).strip(".") or "customer"
    return f"{slug}.{order_id % 1000}@example.com"


def _customer(spec: _OrderSpec, customer_id: int, email: str, now: str) -> dict[str, Any] | None:
    if spec.person is None:
        return None
    first, last = spec.person
    return {
        "id": customer_id, "email": email, "created_at": now, "updated_at": now, "first_name": first,
        "last_name": last, "state": "enabled", "note": None, "verified_email": True,
        "multipass_identifier": None, "tax_exempt": False, "phone": spec.phone,
        "email_marketing_consent": {"state": "not_subscribed", "opt_in_level": "single_opt_in",
                                    "consent_updated_at": None},
        "sms_marketing_consent": None, "tags": "", "currency": spec.currency, "tax_exemptions": [],
        "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
        "default_address": {**(_address(spec) or {}), "id": customer_id + 1, "customer_id": customer_id,
                            "default": True},
    }  # fmt: skip


def _build_order(
    spec: _OrderSpec, *, order_id: int, number: int, now: str, new_id: Callable[[], int], shop_domain: str
) -> dict[str, Any]:
    cur = spec.currency
    tax_title, rate_text = _TAX.get(cur, _TAX["USD"])
    rate = Decimal(rate_text)
    zero = _fmt(Decimal(0), cur)
    gross = [i["price"] * i["quantity"] for i in spec.items]
    line_discount = _allocate(spec.discount, gross, cur)
    line_tax = [
        _tax(g - d, rate, spec.taxes_included, cur) for g, d in zip(gross, line_discount, strict=True)
    ]
    items = [
        _line_item(new_id(), item, d, t, spec)
        for item, d, t in zip(spec.items, line_discount, line_tax, strict=True)
    ]
    free_shipping = spec.discount.get("type") == "shipping"
    shipping_lines, ship_discount, ship_tax = [], Decimal(0), Decimal(0)
    for title, price in spec.shipping:
        off = price if free_shipping else Decimal(0)
        # Sales tax in the US leaves shipping alone here; VAT and consumption tax apply to it.
        tax = Decimal(0) if cur == "USD" else _tax(price - off, rate, spec.taxes_included, cur)
        shipping_lines.append(
            _shipping_line(new_id(), title, price, off=off, tax=tax, tax_title=tax_title, rate=rate, cur=cur)
        )
        ship_discount, ship_tax = ship_discount + off, ship_tax + tax
    subtotal = sum(gross, Decimal(0)) - sum(line_discount, Decimal(0))
    shipping = sum((p for _, p in spec.shipping), Decimal(0))
    total_tax = sum(line_tax, Decimal(0)) + ship_tax
    total = subtotal + shipping - ship_discount + (Decimal(0) if spec.taxes_included else total_tax)
    discounts = sum(line_discount, Decimal(0)) + ship_discount
    paid = spec.financial_status == "paid"
    email = _email(spec, order_id)
    token = uuid.uuid4().hex
    money = {
        "current_subtotal_price": subtotal, "current_total_discounts": discounts,
        "current_total_price": total, "current_total_tax": total_tax, "subtotal_price": subtotal,
        "total_discounts": discounts,
        "total_line_items_price": sum(gross, Decimal(0)), "total_price": total, "total_tax": total_tax,
    }  # fmt: skip
    order: dict[str, Any] = {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "app_id": 580111,
        "browser_ip": "203.0.113.24",
        "buyer_accepts_marketing": False,
        "cancel_reason": None,
        "cancelled_at": None,
        "cart_token": uuid.uuid4().hex,
        "checkout_id": new_id(),
        "checkout_token": uuid.uuid4().hex,
        "closed_at": None,
        "confirmation_number": token[:9].upper(),
        "confirmed": True,
        "contact_email": email,
        "created_at": now,
        "currency": cur,
        "customer_locale": {"JPY": "ja", "EUR": "de", "CAD": "fr-CA"}.get(cur, "en"),
        "discount_codes": _discount_codes(spec.discount, discounts, cur),
        "discount_applications": _discount_applications(spec.discount, cur),
        "email": email,
        "estimated_taxes": False,
        "financial_status": spec.financial_status,
        "fulfillment_status": None,
        "landing_site": "/",
        "name": f"#{number}",
        "note": None,
        "note_attributes": [],
        "number": number - 1000,
        "order_number": number,
        "order_status_url": f"https://{shop_domain}/orders/{token}/authenticate?key={token[:16]}",
        "payment_gateway_names": [spec.gateway],
        "phone": spec.phone,
        "presentment_currency": cur,
        "processed_at": now,
        "source_name": "web",
        "tags": "",
        "tax_exempt": False,
        "tax_lines": _tax_lines(total_tax, tax_title, rate, cur),
        "taxes_included": spec.taxes_included,
        "test": False,
        "token": token,
        "total_outstanding": zero if paid else _fmt(total, cur),
        "total_shipping_price_set": _money_set(_fmt(shipping, cur), cur),
        "total_tip_received": zero,
        "total_weight": sum(int(i.get("grams", 500)) * int(i["quantity"]) for i in spec.items),
        "updated_at": now,
        "user_id": None,
        "billing_address": _address(spec),
        "customer": _customer(spec, new_id(), email, now),
        "fulfillments": [],
        "line_items": items,
        "payment_terms": None,
        "refunds": [],
        "shipping_address": _address(spec) if spec.shipping else None,
        "shipping_lines": shipping_lines,
    }
    for name, amount in money.items():
        order[name] = _fmt(amount, cur)
        order[f"{name}_set"] = _money_set(order[name], cur)
    return order


def _shipping_line(
    line_id: int,
    title: str,
    price: Decimal,
    *,
    off: Decimal,
    tax: Decimal,
    tax_title: str,
    rate: Decimal,
    cur: str,
) -> dict[str, Any]:
    text, discounted = _fmt(price, cur), _fmt(price - off, cur)
    return {
        "id": line_id, "carrier_identifier": None, "code": title, "discounted_price": discounted,
        "discounted_price_set": _money_set(discounted, cur), "is_removed": False, "phone": None,
        "price": text, "price_set": _money_set(text, cur), "requested_fulfillment_service_id": None,
        "source": "shopify", "title": title, "tax_lines": _tax_lines(tax, tax_title, rate, cur),
        "discount_allocations": _allocation(off, cur),
    }  # fmt: skip


def _discount_codes(discount: Mapping[str, str], amount: Decimal, cur: str) -> list[dict[str, Any]]:
    if not discount:
        return []
    return [{"code": discount["code"], "amount": _fmt(amount, cur), "type": discount["type"]}]


def _discount_applications(discount: Mapping[str, str], cur: str) -> list[dict[str, Any]]:
    if not discount:
        return []
    shipping = discount["type"] == "shipping"
    return [
        {
            "target_type": "shipping_line" if shipping else "line_item",
            "type": "discount_code",
            "value": f"{Decimal(discount['value']):.1f}",
            "value_type": "fixed_amount" if discount["type"] == "fixed_amount" else "percentage",
            "allocation_method": "each" if shipping else "across",
            "target_selection": "all",
            "code": discount["code"],
        }
    ]


_TRACKING_URLS = {
    "UPS": "https://www.ups.com/track?tracknum={}",
    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
    "FedEx": "https://www.fedex.com/fedextrack/?trknbr={}",
    "DHL Express": "https://www.dhl.com/en/express/tracking.html?AWB={}",
}


def _tracking_url(company: str | None, number: str) -> str | None:
    """The link Shopify builds for a tracking company it knows (spelled as its list spells it)."""
    template = _TRACKING_URLS.get(company or "")
    return template.format(number) if template else None


def _fulfillment(
    fulfillment_id: int,
    order: Mapping[str, Any],
    lines: list[dict[str, Any]],
    *,
    numbers: Sequence[str],
    urls: Sequence[str],
    company: str | None,
    now: str,
    location_id: int,
) -> dict[str, Any]:
    """The REST fulfillment resource (what orders/* webhooks carry in `fulfillments`)."""
    return {
        "id": fulfillment_id,
        "admin_graphql_api_id": f"gid://shopify/Fulfillment/{fulfillment_id}",
        "created_at": now,
        "location_id": location_id,
        "name": f"{order['name']}.{len(order['fulfillments']) + 1}",
        "order_id": order["id"],
        "origin_address": {},
        "receipt": {},
        "service": "manual",
        "shipment_status": None,
        "status": "success",
        "tracking_company": company,
        "tracking_number": numbers[0] if numbers else None,
        "tracking_numbers": list(numbers),
        "tracking_url": urls[0] if urls else None,
        "tracking_urls": list(urls),
        "updated_at": now,
        "line_items": copy.deepcopy(lines),
    }


def _build_refund(
    order: dict[str, Any],
    line_item_ids: Sequence[int] | None,
    amount: str | Decimal | None,
    *,
    refund_id: int,
    transaction_id: int,
    note: str | None,
    now: str,
) -> dict[str, Any]:
    """A refund resource; takes the refunded quantities off the order's lines once it is valid."""
    cur = order["currency"]
    by_id = {li["id"]: li for li in order["line_items"]}
    full = line_item_ids is None and amount is None
    if full:
        chosen = [li for li in order["line_items"] if li["current_quantity"] > 0]
    else:
        unknown = [i for i in line_item_ids or [] if i not in by_id or by_id[i]["current_quantity"] == 0]
        if unknown:
            raise ValueError(f"order {order['id']}: no refundable line items {unknown}")
        chosen = [by_id[i] for i in line_item_ids or []]
    refund_lines = [_refund_line(new, li, cur) for new, li in enumerate(chosen, start=refund_id + 1)]
    tax_on_top = Decimal(0) if order["taxes_included"] else _set_sum(refund_lines, "total_tax_set")
    lines_total = _set_sum(refund_lines, "subtotal_set") + tax_on_top
    captured = Decimal(order["total_price"]) - Decimal(order["total_outstanding"])
    already = sum((Decimal(r["transactions"][0]["amount"]) for r in order["refunds"]), Decimal(0))
    remaining = captured - already
    value = remaining if full else _round(Decimal(str(amount)), cur) if amount is not None else lines_total
    if value <= 0 or value > remaining:
        raise ValueError(f"order {order['id']}: cannot refund {value} of {remaining} refundable")
    for line in chosen:
        line["current_quantity"] = 0
        line["fulfillable_quantity"] = 0
    text, zero = _fmt(value, cur), _money_set(_fmt(Decimal(0), cur), cur)
    transaction = {
        "id": transaction_id, "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{transaction_id}",
        "amount": text, "authorization": None, "created_at": now, "currency": cur, "device_id": None,
        "error_code": None, "gateway": order["payment_gateway_names"][0], "kind": "refund",
        "location_id": None, "message": "Refund processed", "order_id": order["id"], "parent_id": None,
        "payment_id": f"c{order['checkout_id']}.{len(order['refunds']) + 2}", "processed_at": now,
        "receipt": {}, "source_name": "web", "status": "success", "test": False, "user_id": None,
        "manual_payment_gateway": order["payment_gateway_names"][0] == "manual",
    }  # fmt: skip
    return {
        "id": refund_id,
        "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}",
        "created_at": now,
        "note": note,
        "order_id": order["id"],
        "processed_at": now,
        "restock": bool(chosen),
        "return": None,
        "user_id": None,
        "total_duties_set": zero,
        "total_additional_fees_set": zero,
        "duties": [],
        "additional_fees": [],
        "order_adjustments": [],
        "refund_line_items": refund_lines,
        "transactions": [transaction],
    }


def _refund_line(refund_line_id: int, line: Mapping[str, Any], cur: str) -> dict[str, Any]:
    quantity = int(line["current_quantity"])
    share = Decimal(quantity) / Decimal(line["quantity"])
    discount = sum((Decimal(a["amount"]) for a in line["discount_allocations"]), Decimal(0))
    tax = sum((Decimal(t["price"]) for t in line["tax_lines"]), Decimal(0))
    subtotal = _round((Decimal(line["price"]) * line["quantity"] - discount) * share, cur)
    line_tax = _round(tax * share, cur)
    return {
        "id": refund_line_id,
        "line_item_id": line["id"],
        "location_id": 71_000_000_001,
        "quantity": quantity,
        "restock_type": "return" if line["fulfillment_status"] == "fulfilled" else "cancel",
        # Shopify sends these two as JSON numbers; the *_set strings beside them are exact.
        "subtotal": float(subtotal),
        "subtotal_set": _money_set(_fmt(subtotal, cur), cur),
        "total_tax": float(line_tax),
        "total_tax_set": _money_set(_fmt(line_tax, cur), cur),
        "line_item": copy.deepcopy(dict(line)),
    }
