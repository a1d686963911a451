"""WooCommerce REST v3 order reads for reconciliation: orders modified after a time, page by page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import requests

from chalicelib.domain.errors import HubError

API_PATH = "/wp-json/wc/v3"


class WooCommerceReadError(HubError):
    """The store's REST API refused or failed a read."""


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
    ) -> None:
        self._base = (api_base or site_url).rstrip("/") + API_PATH
        self._auth = (consumer_key, consumer_secret)
        self._session = session or requests.Session()
        self._timeout = timeout
        self._per_page = per_page

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
        try:
            answer = self._session.get(
                f"{self._base}/orders", params=params, auth=self._auth, timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise WooCommerceReadError(f"woocommerce orders: {type(exc).__name__}") from exc
        if answer.status_code != 200:
            raise WooCommerceReadError(f"woocommerce orders answered {answer.status_code}")
        body = answer.json()
        if not isinstance(body, list):
            raise WooCommerceReadError("woocommerce orders: not a list")
        return body, int(answer.headers.get("X-WP-TotalPages") or 1)
