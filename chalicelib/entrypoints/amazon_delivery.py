"""An SP-API ORDER_CHANGE notification as the delivery ingestion applies: the order read from SP-API.

Notifications are triggers, not truth: the order named is fetched (getOrder, getOrderItems and, for an
order the hub ships, its address). Used for a notification as it arrives and for a replayed one.
"""

from __future__ import annotations

from typing import Any

from chalicelib.composition import Services
from chalicelib.domain.connections import credentials
from chalicelib.domain.delivery import Delivery
from chalicelib.domain.errors import MalformedDelivery
from chalicelib.observability import count


def is_notification(delivery: Delivery) -> bool:
    """An archived Amazon delivery holds the notification (never the order with its address)."""
    payload = delivery.payload
    return delivery.channel == "amazon" and isinstance(payload, dict) and "NotificationType" in payload


def order_delivery(svc: Services, change: Any, delivery_id: str) -> Delivery:
    """The order `change` (an `OrderChange`) names, fetched from the seller's SP-API, as `delivery_id`.

    MalformedDelivery (parked at once) when the seller is not connected: an operator redrives it later.
    """
    found = credentials("amazon", change.seller_id, connections=svc.connections, secrets=svc.secrets)
    if found is None:
        count("WebhookRejected", channel="amazon", store=change.seller_id, reason="unknown_store")
        raise MalformedDelivery(f"no connection for Amazon seller {change.seller_id}")
    connection, secrets = found
    # Kept in the delivery (the order needs its address to ship), never in the raw archive (the notification).
    payload = svc.amazon_order(svc.spapi(connection, secrets), change.amazon_order_id)
    return Delivery(
        delivery_id=delivery_id,
        channel="amazon",
        store=connection.store,
        topic="ORDER_CHANGE",
        received_at=svc.now(),
        payload=payload,
        external_id=change.amazon_order_id,
    )


def refetched(delivery: Delivery, svc: Services) -> Delivery:
    """A replayed notification (`is_notification`) as the delivery the original became: the order re-read."""
    change = svc.amazon_notification(delivery.payload or {})
    if change is None:
        raise MalformedDelivery("the replayed Amazon notification is not an ORDER_CHANGE")
    return order_delivery(svc, change, delivery.delivery_id)
