"""ShopifySimulator: the shop behind its Admin API server, sending its webhooks as Shopify does."""

from __future__ import annotations

import copy
import hmac
import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Unpack
from urllib.parse import parse_qs, urlsplit

from local.simulators.kit import (
    FaultQueue,
    Outgoing,
    Post,
    PostWithRequests,
    Reply,
    Request,
    WebhookKnobs,
    WebhookSender,
    WebhookSimulatorServer,
    base64_hmac_sha256,
)
from local.simulators.shopify.graphql import answer_graphql, is_mutation
from local.simulators.shopify.records import (
    API_VERSION,
    CONNECT_TIMEOUT_S,
    LOCATION_ID,
    READ_TIMEOUT_S,
    REST_THROTTLED,
    RETRY_DELAYS_S,
    UNAUTHORIZED_ERROR,
    ApiReply,
    DeliveryAttempt,
    DroppedWebhook,
    MutationRejected,
)
from local.simulators.shopify.rest import STATUS_TEXT, list_orders, route_of
from local.simulators.shopify.returns import ShopReturns

log = logging.getLogger("local.simulators.shopify")


@dataclass(frozen=True)
class _Event:
    """One topic event as it fired: its body and destination are fixed then, as Shopify fixes them."""

    topic: str
    body: bytes
    event_id: str
    triggered_at: str
    url: str
    order_id: int | None


class ShopifySimulator(WebhookSimulatorServer, ShopReturns):
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

    Publishing (GraphQL, the subset graphql.py lists): every order gets one OPEN fulfillment order per
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
        drop_rate: float = 0.0,
        reorder: bool = False,
        reorder_window: int = 2,
        senders: int = 4,
        multi_capture: bool = False,
        locations: Sequence[int] = (LOCATION_ID,),
        clock: Callable[[], float] = time.monotonic,
        **knobs: Unpack[WebhookKnobs],
    ) -> None:
        WebhookSimulatorServer.__init__(
            self, name="shopify-api", log=log, methods=("GET", "POST", "PUT", "DELETE"), **knobs
        )
        seed = self._seed
        ShopReturns.__init__(
            self, shop_domain, seed=seed, multi_capture=multi_capture, locations=locations, clock=clock
        )
        self.webhook_secret = webhook_secret
        self.access_token = access_token
        self.drop_rate = drop_rate
        self.reorder = reorder
        self.reorder_window = reorder_window
        # Faults draw from their own stream, so a seed gives the same orders whatever the knobs say.
        self._fault_rng = random.Random(None if seed is None else seed + 1)
        self._cond = threading.Condition(self._lock)
        self._dropped: list[DroppedWebhook] = []
        self._api_faults = FaultQueue()  # scope "mutations": waits for the next GraphQL mutation
        self._webhooks: WebhookSender[_Event, DeliveryAttempt] = self._run(
            WebhookSender(
                self._post,
                lambda out, status, error: DeliveryAttempt(
                    out.event.topic,
                    out.delivery_id,
                    out.event.event_id,
                    out.attempt,
                    status,
                    error,
                    out.event.order_id,
                ),
                retry_delays=RETRY_DELAYS_S,
                time_scale=lambda: self.time_scale,
                rng=self._fault_rng,
                transport=PostWithRequests((CONNECT_TIMEOUT_S, READ_TIMEOUT_S)),
                drop_rate=lambda: self.drop_rate,
                duplicate_rate=lambda: self.duplicate_rate,
                hold_window=lambda: self.reorder_window if self.reorder else None,
                cond=self._cond,
                senders=senders,
                join_timeout=READ_TIMEOUT_S + CONNECT_TIMEOUT_S,
                name="shopify-webhooks",
            )
        )

    def _emit(self, topic: str, resource: Mapping[str, Any], order_id: int | None) -> None:
        """One topic event: serialised now (retries carry this body), signed, queued for delivery."""
        if not self.webhook_url:
            return
        event_id = str(uuid.uuid4())
        # Shopify sends compact UTF-8 JSON; a receiver that re-serialises it will not match the HMAC.
        body = json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode()
        triggered_at = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        event = _Event(topic, body, event_id, triggered_at, self.webhook_url, order_id)
        if not self._webhooks.send(event):
            self._dropped.append(DroppedWebhook(topic, event_id, order_id))

    def _post(self, outgoing: Outgoing[_Event]) -> Post:
        event = outgoing.event
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            "X-Shopify-Topic": event.topic,
            "X-Shopify-Hmac-Sha256": base64_hmac_sha256(self.webhook_secret, event.body),
            "X-Shopify-Shop-Domain": self.shop_domain,
            "X-Shopify-API-Version": API_VERSION,
            "X-Shopify-Webhook-Id": outgoing.delivery_id,  # each copy its own, kept by its retries
            "X-Shopify-Event-Id": event.event_id,
            "X-Shopify-Triggered-At": event.triggered_at,
        }
        return Post(event.url, event.body, headers)

    def _reply(self, request: Request) -> Reply:
        token = request.headers.get("x-shopify-access-token")
        reply = self.handle_api(request.method, request.target, token, request.body)
        return Reply.json(
            reply.status,
            reply.body,
            reply.headers,
            content_type="application/json; charset=utf-8",
            dumps=lambda body: json.dumps(body, ensure_ascii=False),
        )

    @property
    def deliveries(self) -> list[DeliveryAttempt]:
        with self._lock:
            return list(self._webhooks.deliveries)

    @property
    def dropped(self) -> list[DroppedWebhook]:
        with self._lock:
            return list(self._dropped)

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
        self._api_faults.add(
            times, status, retry_after=retry_after, scope="mutations" if mutations_only else None
        )

    def throttle_api(self, times: int = 1, *, mutations_only: bool = True) -> None:
        """Answer the next `times` GraphQL mutations (or any GraphQL calls) THROTTLED, bucket empty."""
        self._throttles.add(times, 200, scope="mutations" if mutations_only else None)

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

    def flush(self, timeout: float) -> bool:
        """Release held deliveries and wait until every pending one was attempted; False on timeout."""
        return self._webhooks.flush(timeout)

    def _next_failure(self, mutation: bool) -> ApiReply | None:
        """The answer fail_api queued for this call, if any (mutations_only ones wait for a mutation)."""
        fault = self._api_faults.take(lambda queued: mutation or queued.scope is None)
        if fault is None:
            return None
        status, retry_after = fault.status, fault.retry_after
        headers = {"Retry-After": f"{retry_after:.1f}"} if retry_after is not None else {}
        return ApiReply(status, {"errors": STATUS_TEXT.get(status, "Internal Server Error")}, headers)

    def handle_api(self, method: str, target: str, token: str | None, body: bytes) -> ApiReply:
        """Answer one Admin API request (the HTTP handler's whole job, callable directly in tests)."""
        parts = urlsplit(target)
        route = route_of(parts.path)
        if route is None:
            return ApiReply(404, {"errors": "Not Found"})
        if not token or not hmac.compare_digest(token.encode(), self.access_token.encode()):
            return ApiReply(401, {"errors": UNAUTHORIZED_ERROR})
        failure = self._next_failure(route[0] == "graphql" and is_mutation(body))
        if failure is not None:
            return failure
        kind, version, order_id = route
        if kind == "graphql":
            if method != "POST":
                return ApiReply(405, {"errors": "Method Not Allowed"})
            return answer_graphql(self, body, version)
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
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            reply = list_orders(self, query, version, self.url)
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
