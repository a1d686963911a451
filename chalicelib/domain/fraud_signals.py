"""Use case: the fraud check's signals from outside the order: the channel's risk assessment (Shopify), the
payment provider's verdict (Stripe Radar) and the card's fingerprint. An unreachable source leaves its signal
out (the rules still run) rather than stall the check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.domain.errors import HubError
from chalicelib.domain.fraud import FraudSignals, ShopifyRisk, StripeRadar
from chalicelib.domain.order import Order
from chalicelib.domain.payment import stripe_intent
from chalicelib.domain.payment_gateway import PaymentError, PaymentGateway

# Told of a source that could not be read: (order id, source, error name).
Unavailable = Callable[[str, str, str], None]


def outside_signals(
    order: Order,
    *,
    shopify_risk: Callable[[Order], ShopifyRisk | None],
    payments: Callable[[], PaymentGateway],
    unavailable: Unavailable,
    unreachable: tuple[type[Exception], ...] = (),
) -> FraudSignals:
    """`unreachable`: the errors (besides the domain's) that mean a source is not there to ask."""
    channel_errors: tuple[type[Exception], ...] = (HubError, *unreachable)
    payment_errors: tuple[type[Exception], ...] = (PaymentError, *unreachable)
    intent_id = stripe_intent(order)
    if intent_id is None:
        if order.channel == "shopify":
            try:
                return FraudSignals(shopify_risk=shopify_risk(order))
            except channel_errors as exc:
                unavailable(order.order_id, "shopify", type(exc).__name__)
        return FraudSignals()
    try:
        intent: Any = payments().retrieve(intent_id)
    except payment_errors as exc:
        unavailable(order.order_id, "stripe", type(exc).__name__)
        return FraudSignals()
    radar = None
    if intent.risk_level is not None or intent.risk_score is not None:
        radar = StripeRadar(risk_level=intent.risk_level, risk_score=intent.risk_score)
    return FraudSignals(card_fingerprint=intent.card_fingerprint, stripe_radar=radar)
