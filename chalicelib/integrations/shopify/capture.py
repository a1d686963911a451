"""Capturing a Shopify authorisation through orderCapture (the payment stage's ChannelCapturer)."""

from __future__ import annotations

from decimal import Decimal

from chalicelib.domain.errors import HubError
from chalicelib.domain.order import Order
from chalicelib.domain.payment import ChannelCapture
from chalicelib.integrations.shopify.admin import ShopifyAdmin


class ShopifyCapture:
    """Captures the order's first capturable authorisation (the adapter reads before it writes)."""

    def __init__(self, admin: ShopifyAdmin) -> None:
        self._admin = admin

    def capture(self, order: Order, amount: Decimal) -> ChannelCapture:
        authorisations = self._admin.capturable_authorizations(order.external_id)
        if not authorisations:
            raise HubError(f"Shopify order {order.external_id} has no authorisation to capture")
        first = authorisations[0]
        result = self._admin.capture(
            order.external_id, first.transaction_id, min(amount, first.amount), order.currency
        )
        return ChannelCapture(amount=result.amount, reference=result.transaction_id)
