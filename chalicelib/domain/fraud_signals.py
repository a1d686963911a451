"""The fraud check's signals from outside the order: the channel's risk assessment (Shopify), the payment
provider's verdict (Stripe Radar) and the card's fingerprint; the use case gathers them. An unreachable source
leaves its signal out (the rules still run) rather than stall the check."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.errors import HubError
from chalicelib.domain.order import Order
from chalicelib.domain.payment import stripe_intent
from chalicelib.domain.payment_gateway import PaymentError, PaymentGateway


@dataclass(frozen=True)
class ShopifyRisk:
    """Shopify's `Order.risk`: the summary's recommendation and each assessment's riskLevel."""

    recommendation: str | None = None  # ACCEPT | INVESTIGATE | CANCEL | NONE
    risk_levels: tuple[str, ...] = ()  # per OrderRiskAssessment: HIGH | MEDIUM | LOW | NONE | PENDING

    def __post_init__(self) -> None:
        # GraphQL enums are upper case; accept any case so hand-built signals compare the same.
        recommendation = self.recommendation.upper() if self.recommendation else None
        object.__setattr__(self, "recommendation", recommendation)
        object.__setattr__(self, "risk_levels", tuple(lv.upper() for lv in self.risk_levels if lv))

    @classmethod
    def from_graphql(cls, risk: Mapping[str, Any] | None) -> ShopifyRisk | None:
        """From `order { risk { recommendation assessments { riskLevel } } }`."""
        if not risk:
            return None
        levels = tuple(str(a.get("riskLevel") or "") for a in risk.get("assessments") or ())
        recommendation = risk.get("recommendation")
        return cls(str(recommendation) if recommendation else None, levels)


@dataclass(frozen=True)
class StripeRadar:
    """Radar's verdict from a charge's `outcome`: risk_level and (Radar for Fraud Teams) risk_score."""

    risk_level: str | None = None  # normal | elevated | highest | not_assessed | unknown
    risk_score: int | None = None  # 0-100

    def __post_init__(self) -> None:
        object.__setattr__(self, "risk_level", self.risk_level.lower() if self.risk_level else None)

    @classmethod
    def from_outcome(cls, outcome: Mapping[str, Any] | None) -> StripeRadar | None:
        """From a Charge's `outcome` (the PaymentIntent's latest_charge)."""
        if not outcome:
            return None
        score = outcome.get("risk_score")
        level = outcome.get("risk_level")
        return cls(str(level) if level else None, int(score) if score is not None else None)


@dataclass(frozen=True)
class FraudSignals:
    """What the check knows besides the order itself."""

    client_ip: str | None = None
    card_fingerprint: str | None = None
    shopify_risk: ShopifyRisk | None = None
    stripe_radar: StripeRadar | None = None
    is_first_order: bool = False
    shipping_method: str | None = None


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
