"""WooCommerce REST v3 order reads for reconciliation: orders modified after a time, page by page."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests

from chalicelib.domain.upstream import UpstreamError, UpstreamThrottled, UpstreamUnavailable
from chalicelib.integrations.http import (
    Backoff,
    HttpTransport,
    RetryPolicy,
    give_up_as,
    json_body,
    retryable_status,
)

API_PATH = "/wp-json/wc/v3"


class WooCommerceReadError(UpstreamError):
    """The store's REST API refused or failed a read."""


class WooCommerceUnavailable(WooCommerceReadError, UpstreamUnavailable):
    """5xx or unreachable after the bounded retries: try again later."""


class WooCommerceThrottled(WooCommerceUnavailable, UpstreamThrottled):
    """Still 429 after the bounded retries."""


_GIVE_UP = give_up_as(WooCommerceUnavailable, WooCommerceThrottled)


class WooCommerceOrders:
    def __init__(
        self,
        site_url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        api_base: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 15.0,
        per_page: int = 50,
        max_attempts: int = 3,
        max_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._base = (api_base or site_url).rstrip("/") + API_PATH
        self._auth = (consumer_key, consumer_secret)
        self._per_page = per_page
        # Reads are safe to repeat: 429, 5xx and transport failures are retried (full-jitter backoff).
        backoff_policy = Backoff(0.5, random=jitter)
        policy = RetryPolicy(max_attempts, max_wait, backoff_policy, sleep, "woocommerce retry")
        self._http = HttpTransport(
            policy,
            WooCommerceReadError,
            session=session,
            timeout=timeout,
            secrets=(consumer_key, consumer_secret),
        )

    def __repr__(self) -> str:
        return f"WooCommerceOrders({self._base!r})"

    def page(self, since: datetime, page: int) -> tuple[list[dict[str, Any]], int]:
        """One page of orders modified after `since` (GMT: `dates_are_gmt=true`, as core needs it to read
        `modified_after` as UTC), oldest change first; and the number of pages (X-WP-TotalPages)."""
        params = {
            "modified_after": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "dates_are_gmt": "true",
            "orderby": "modified",
            "order": "asc",
            "per_page": str(self._per_page),
            "page": str(page),
        }
        return self._http.request(
            "orders",
            "GET",
            f"{self._base}/orders",
            classify=_page,
            give_up=_GIVE_UP,
            params=params,
            auth=self._auth,
        )


def _page(answer: requests.Response) -> tuple[list[dict[str, Any]], int]:
    retry = retryable_status(answer, f"HTTP {answer.status_code}")
    if retry is not None:
        raise retry
    if answer.status_code != 200:
        raise WooCommerceReadError(
            f"woocommerce orders answered {answer.status_code}", status=answer.status_code
        )
    body = json_body(answer)
    if not isinstance(body, list):
        raise WooCommerceReadError("woocommerce orders: not a list", status=200)
    return body, int(answer.headers.get("X-WP-TotalPages") or 1)
