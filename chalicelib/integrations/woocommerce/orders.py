"""WooCommerce REST v3 order reads for reconciliation (orders modified after a time, page by page), and
WooCommerce payloads as the channel events ingestion applies."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import requests

from chalicelib.domain.channel_events import ChannelEvent, ChannelState, StateNotice
from chalicelib.domain.reconciliation import ChannelOrder, ChannelPull
from chalicelib.domain.upstream import UpstreamError, UpstreamThrottled, UpstreamUnavailable
from chalicelib.integrations.http import (
    full_jitter,
    give_up_as,
    json_body,
    retryable_status,
)
from chalicelib.integrations.woocommerce.rest import WooCommerceRest


class WooCommerceReadError(UpstreamError):
    """The store's REST API refused or failed a read."""


class WooCommerceUnavailable(WooCommerceReadError, UpstreamUnavailable):
    """5xx or unreachable after the bounded retries: try again later."""


class WooCommerceThrottled(WooCommerceUnavailable, UpstreamThrottled):
    """Still 429 after the bounded retries."""


_GIVE_UP = give_up_as(WooCommerceUnavailable, WooCommerceThrottled)


class WooCommerceOrders(WooCommerceRest):
    """One store's orders, read page by page. Reads are safe to repeat: 429, 5xx and transport failures
    are retried (full-jitter backoff)."""

    ERROR = WooCommerceReadError
    SPREAD = full_jitter
    TIMEOUT = 15.0
    MAX_WAIT = 10.0
    PER_PAGE = 50

    def page(self, since: datetime, page: int) -> tuple[list[dict[str, Any]], int]:
        """One page of orders modified after `since` (GMT: `dates_are_gmt=true`, as core needs it to read
        `modified_after` as UTC), oldest change first; and the number of pages (X-WP-TotalPages)."""
        params = {
            "modified_after": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "dates_are_gmt": "true",
            "orderby": "modified",
            "order": "asc",
            "per_page": str(self.PER_PAGE),
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


def woocommerce_pull(reader: WooCommerceOrders) -> ChannelPull:
    """Reconciliation's reader: `GET /orders?modified_after=<gmt>&dates_are_gmt=true&orderby=modified`, every
    page, each order with its own stamp (`date_modified_gmt`) in the webhook's shape."""

    def pull(since: datetime) -> Iterable[ChannelOrder]:
        page, pages = 1, 1
        while page <= pages:
            found, pages = reader.page(since, page)
            for order in found:
                stamp = str(order.get("date_modified_gmt") or order.get("date_modified") or "")
                yield ChannelOrder(str(order["id"]), stamp, "order.updated", order)
            page += 1

    return pull


def woocommerce_event(topic: str, payload: dict[str, Any], store: str) -> ChannelEvent:
    """Ingestion's normaliser for WooCommerce (webhook deliveries and reconciliation alike)."""
    from chalicelib.integrations.woocommerce.webhook import bare_deletion_id, parse_woocommerce

    external_id = bare_deletion_id(topic, payload)
    if external_id is not None:
        # Core sends only {"id": n} for a deletion: a state change of an order we know, not a snapshot.
        return StateNotice("woocommerce", store, external_id, ChannelState.DELETED)
    return parse_woocommerce(topic, payload, store)
