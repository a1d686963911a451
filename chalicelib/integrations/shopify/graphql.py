"""One shop's Admin GraphQL endpoint: POSTs paced by the cost bucket, retried, answers read, errors raised."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar, Unpack

import requests
from aws_lambda_powertools import Logger

from chalicelib.domain.errors import InvalidInput
from chalicelib.integrations.http import (
    TRANSIENT,
    HttpOptions,
    Retryable,
    json_object,
    retry_after,
    transport,
)
from chalicelib.integrations.shopify.errors import (
    GIVE_UP,
    ShopifyAuthError,
    ShopifyError,
    ShopifyRejected,
    ShopifyUnavailable,
)

logger = Logger(service="order-hub", child=True)

# The version the webhook subscriptions and the local simulator speak. 2026-10 is the newest stable
# version (supported until at least 2027-10) and has everything the hub calls: orderCapture with
# finalCapture (2024-07+), fulfillmentCreate (the non-V2 name), orderCancel's refundMethod (2025-07+,
# `refund` deprecated) and refundCreate's @idempotent key (mandatory from 2026-04). 2024-04 is out of support.
API_VERSION = "2026-10"
_T = TypeVar("_T")


class ShopifyGraphql:
    """One shop's Admin GraphQL API: queries, mutations and read-before-write for unkeyed mutations.

    Build one per connection and reuse it: it remembers the shop's cost bucket
    (`extensions.cost.throttleStatus`) and waits before a query the bucket cannot pay for yet. A
    THROTTLED answer is waited out for the time its requested cost needs to be restored, a 429 for
    its Retry-After, a 5xx or a transport error with jittered backoff: at most `max_attempts` tries,
    no single wait longer than `max_wait` seconds; then ShopifyUnavailable.
    """

    def __init__(
        self,
        shop: str,
        access_token: str,
        *,
        api_base: str | None = None,
        api_version: str = API_VERSION,
        clock: Callable[[], float] = time.monotonic,
        **options: Unpack[HttpOptions],
    ) -> None:
        if not shop or not access_token:
            raise InvalidInput("a Shopify connection needs its shop domain and access token")
        self._shop = shop
        self._version = api_version
        self._url = f"{(api_base or f'https://{shop}').rstrip('/')}/admin/api/{api_version}/graphql.json"
        self._headers = {
            "X-Shopify-Access-Token": access_token,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._clock = clock
        self._http = transport(
            ShopifyError, options, log="shopify retry", secrets=(access_token,), max_wait=10.0
        )
        policy = self._http.policy
        self._max_wait = policy.max_wait
        self._sleep = policy.sleep
        # A write whose answer never came is read back, then sent again: the same limits, its own log line.
        self._rewrite = replace(policy, log="shopify write outcome unknown, reading before retrying")
        self._lock = threading.Lock()
        # Last throttleStatus seen: (currentlyAvailable, restoreRate, maximumAvailable, when), and the
        # requested cost each operation last had, to pace the next call of it.
        self._bucket: tuple[float, float, float, float] | None = None
        self._costs: dict[str, float] = {}

    def __repr__(self) -> str:
        # Never let the access token reach a log line through an accidental %r.
        return f"{type(self).__name__}(shop={self._shop!r}, api_version={self._version!r})"

    @property
    def shop(self) -> str:
        return self._shop

    @property
    def api_version(self) -> str:
        return self._version

    def query(self, operation: str, document: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """Run a read and return its `data`; THROTTLED, 429, 5xx and transport failures are retried."""
        return self._execute(operation, document, variables)

    def mutate(
        self,
        operation: str,
        document: str,
        variables: Mapping[str, Any],
        *,
        replay_unsure: bool = False,
    ) -> Mapping[str, Any]:
        """Run one mutation and return its payload (`data[operation]`).

        Raises ShopifyRejected for its `userErrors` (or `orderCancelUserErrors`). A request Shopify
        may have run (timeout, 5xx) is only sent again when `replay_unsure` (an @idempotent key makes
        that safe); otherwise ShopifyUnavailable(maybe_executed=True) lets the caller read first.
        """
        data = self._execute(operation, document, variables, replay_unsure=replay_unsure)
        payload = data.get(operation)
        if not isinstance(payload, Mapping):
            raise ShopifyError(f"{operation} answered without a payload", operation=operation)
        errors = [*(payload.get("userErrors") or ()), *(payload.get("orderCancelUserErrors") or ())]
        user_errors = tuple(
            (".".join(str(part) for part in e.get("field") or ()), str(e.get("message") or ""))
            for e in errors
            if isinstance(e, Mapping)
        )
        if user_errors:
            text = "; ".join(f"{field}: {message}" if field else message for field, message in user_errors)
            raise ShopifyRejected(
                f"{operation} refused: {text}", operation=operation, user_errors=user_errors
            )
        return payload

    def write_once(self, done: Callable[[], _T | None], write: Callable[[], _T]) -> tuple[_T, bool]:
        """`write` unless `done` finds it already written; answers (result, replayed).

        For mutations without an idempotency key: `done` reads Shopify before the first write, after
        a rejection (another caller may have won) and after an answer that never came (timeout, 5xx),
        before writing again, at most `max_attempts` writes in all.
        """

        def attempt() -> tuple[_T, bool]:
            existing = done()
            if existing is not None:
                return existing, True
            try:
                return write(), False
            except ShopifyRejected:
                existing = done()
                if existing is not None:
                    return existing, True
                raise
            except ShopifyUnavailable as exc:
                if not exc.maybe_executed:
                    raise
                raise Retryable(str(exc), status=exc.status, code=exc.code) from exc

        def spent(operation: str | None, failure: Retryable, attempts: int, wait: float) -> Exception:
            return failure.__cause__ if isinstance(failure.__cause__, Exception) else failure

        return self._rewrite.call(attempt, give_up=spent)

    # --- transport ----------------------------------------------------------------------------

    def _execute(
        self, operation: str, query: str, variables: Mapping[str, Any], *, replay_unsure: bool = True
    ) -> dict[str, Any]:
        """POST one GraphQL document and return its `data`.

        Requests Shopify did not run (THROTTLED, 429, refused connections) are retried after the
        wait they need; ones it may have run (timeouts, 5xx) only when `replay_unsure`.
        """
        return self._http.request(
            operation,
            "POST",
            self._url,
            classify=lambda response: self._read(operation, response),
            give_up=GIVE_UP,
            replay_unsure=replay_unsure,
            before=lambda: self._pace(operation),
            json={"query": query, "variables": dict(variables)},
            headers=self._headers,
        )

    def _read(self, operation: str, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        if status == 429:
            raise Retryable(
                "HTTP 429", status=429, delay=retry_after(response), maybe_executed=False, throttled=True
            )
        if status in TRANSIENT:
            # Only a 429's Retry-After is honoured here; a 5xx backs off.
            raise Retryable(f"HTTP {status}", status=status, maybe_executed=True)
        if status in (401, 403):
            raise ShopifyAuthError(
                f"{operation}: Shopify refused the access token", operation=operation, status=status
            )
        body = json_object(response)
        if status != 200:
            raise ShopifyError(f"{operation} answered HTTP {status}", operation=operation, status=status)
        extensions = body.get("extensions")
        cost = extensions.get("cost") if isinstance(extensions, Mapping) else None
        if isinstance(cost, Mapping):
            self._learn(operation, cost)
        errors = [e for e in body.get("errors") or () if isinstance(e, Mapping)]
        codes = [str((e.get("extensions") or {}).get("code") or "") for e in errors]
        if "THROTTLED" in codes:
            wait = self._restore_wait(cost)
            raise Retryable(
                "THROTTLED", status=200, delay=wait, maybe_executed=False, throttled=True, code="THROTTLED"
            )
        if errors:
            message = "; ".join(str(e.get("message") or "") for e in errors)[:500]
            kind = ShopifyAuthError if "ACCESS_DENIED" in codes else ShopifyError
            raise kind(
                f"{operation} answered errors: {message}", operation=operation, status=200, code=codes[0]
            )
        data = body.get("data")
        if not isinstance(data, dict):
            raise ShopifyError(f"{operation} answered without data", operation=operation, status=200)
        return data

    def _learn(self, operation: str, cost: Mapping[str, Any]) -> None:
        throttle = cost.get("throttleStatus")
        if not isinstance(throttle, Mapping):
            return
        try:
            available = float(throttle["currentlyAvailable"])
            rate = float(throttle["restoreRate"])
            maximum = float(throttle["maximumAvailable"])
            requested = float(cost["requestedQueryCost"])
        except (KeyError, TypeError, ValueError):
            return
        with self._lock:
            self._bucket = (available, rate, maximum, self._clock())
            self._costs[operation] = requested

    def _projected(self) -> tuple[float, float] | None:
        """(points available now, restore rate) as the last throttleStatus lets us project them."""
        with self._lock:
            if self._bucket is None:
                return None
            available, rate, maximum, at = self._bucket
        return min(maximum, available + (self._clock() - at) * rate), rate

    def _restore_wait(self, cost: Mapping[str, Any] | None) -> float | None:
        """How long until the bucket holds the requested cost of a THROTTLED query (None: unknown)."""
        projected = self._projected()
        try:
            requested = float((cost or {})["requestedQueryCost"])
        except (KeyError, TypeError, ValueError):
            return None
        if projected is None or projected[1] <= 0:
            return None
        available, rate = projected
        return max(0.0, requested - available) / rate

    def _pace(self, operation: str) -> None:
        # Wait for the points this operation last cost rather than spend a request on THROTTLED.
        projected = self._projected()
        cost = self._costs.get(operation)
        if projected is None or cost is None or projected[1] <= 0 or projected[0] >= cost:
            return
        wait = (cost - projected[0]) / projected[1]
        if wait <= self._max_wait:
            logger.debug("shopify paced", extra={"operation": operation, "wait_seconds": round(wait, 3)})
            self._sleep(wait)
