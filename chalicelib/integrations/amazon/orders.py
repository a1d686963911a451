"""Amazon orders as the hub reads them: an order with its items (and, for an order the hub ships, its
address), fetched for a notification or a reconciliation run, and that payload as a channel event."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.channel_events import ChannelEvent
from chalicelib.domain.reconciliation import ChannelOrder, ChannelPull
from chalicelib.integrations.amazon.errors import SpApiAuthError
from chalicelib.integrations.amazon.notifications import normalise_amazon_order

TOPIC = "ORDER_CHANGE"
# The calls a refused restricted data token fails: createRestrictedDataToken itself, or the RDT's use.
RESTRICTED_OPERATIONS = frozenset({"createRestrictedDataToken", "getOrderAddress"})


class OrdersApi(Protocol):
    """The SP-API Orders v0 calls the hub reads orders with (`SpApiClient`)."""

    def get_order(self, order_id: str) -> dict[str, Any]: ...

    def get_order_items(self, order_id: str) -> list[dict[str, Any]]: ...

    def get_orders(
        self, marketplace_ids: list[str], last_updated_after: datetime, next_token: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    def get_order_address(self, order_id: str) -> dict[str, Any]: ...


def order_payload(client: OrdersApi, order: dict[str, Any]) -> dict[str, Any]:
    """getOrder's order with its items, in the shape ingestion normalises (`amazon_event`)."""
    amazon_id = str(order["AmazonOrderId"])
    payload: dict[str, Any] = {"order": order, "items": client.get_order_items(amazon_id)}
    if order.get("FulfillmentChannel") == "MFN" and order.get("OrderStatus") in (
        "Unshipped",
        "PartiallyShipped",
    ):
        # The hub ships it: the street, name and phone come only under a restricted data token. Kept in
        # the order (needed to ship), never in the raw archive (it holds the notification only) or logs.
        try:
            address = client.get_order_address(amazon_id)
        except SpApiAuthError as exc:
            if exc.operation not in RESTRICTED_OPERATIONS:
                raise  # LWA itself refused: the connection is broken, not just the restricted role
            # An app without the restricted role (or a revoked one): the order is kept with what getOrder
            # gave, flagged; a later read that gets the address fills it in.
            payload["missing"] = {"shipping_address": "restricted data token refused"}
            return payload
        if address:
            payload["address"] = address
    return payload


def fetch_order(client: OrdersApi, amazon_order_id: str) -> dict[str, Any]:
    """An order a notification names (notifications are triggers, not truth): getOrder, then its items."""
    return order_payload(client, client.get_order(amazon_order_id))


def amazon_pull(client: OrdersApi, marketplace_id: str) -> ChannelPull:
    """Reconciliation's reader: getOrders `LastUpdatedAfter` with `NextToken`, then each order's items."""

    def pull(since: datetime) -> Iterable[ChannelOrder]:
        token: str | None = None
        while True:
            found, token = client.get_orders([marketplace_id], since, token)
            for order in found:
                payload = order_payload(client, order)
                stamp = str(order.get("LastUpdateDate") or "")
                yield ChannelOrder(str(order["AmazonOrderId"]), stamp, TOPIC, payload)
            if not token:
                return

    return pull


def amazon_event(topic: str, payload: dict[str, Any], store: str) -> ChannelEvent:
    """Ingestion's normaliser for Amazon: the payload `order_payload` built."""
    snapshot = normalise_amazon_order(payload["order"], payload["items"], store, payload.get("address"))
    withheld = payload.get("missing")
    if isinstance(withheld, dict) and withheld:
        missing = [f"{field} ({why})" for field, why in sorted(withheld.items())]
        snapshot.order.missing = missing
    return snapshot
