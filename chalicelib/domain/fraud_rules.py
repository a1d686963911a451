"""The fraud rules: each reads the order, its signals and the policy, and answers a finding or nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from chalicelib.domain import money
from chalicelib.domain.fraud_policy import CARD, EMAIL, IP, VELOCITY_KINDS, FraudPolicy
from chalicelib.domain.fraud_signals import FraudSignals
from chalicelib.domain.order import Address, Order
from chalicelib.domain.totals import totals_issues

_KIND_WORDS = {EMAIL: "email address", IP: "IP address", CARD: "card"}
# Points of a hard rule: it decides on its own, so its score is the maximum.
_HARD_POINTS = 100


@dataclass(frozen=True)
class Finding:
    """One rule's verdict; `reason` is for operators and never carries an address, email, IP or card."""

    rule: str
    points: int
    reason: str
    hard_reject: bool = False


@dataclass(frozen=True)
class RuleInput:
    order: Order
    signals: FraudSignals
    policy: FraudPolicy
    # Per velocity kind, the count in each of the policy's windows for that kind.
    velocity: Mapping[str, Mapping[timedelta, int]] = field(default_factory=dict)


Rule = Callable[[RuleInput], Finding | None]


def _finding(policy: FraudPolicy, rule: str, reason: str) -> Finding | None:
    points = policy.weight(rule)
    # A rule weighted 0 is switched off: it should not show up in reasons either.
    return Finding(rule, points, reason) if points > 0 else None


def rule_high_value(x: RuleInput) -> Finding | None:
    threshold = x.policy.high_value_threshold(x.order.currency)
    total = x.order.totals.total
    if threshold is None or total <= threshold:
        return None
    cur = x.order.currency
    return _finding(
        x.policy,
        "high_value",
        f"order total {money.format_amount(total, cur)} {cur} is over {threshold:f} {cur}",
    )


def _velocity_rule(kind: str) -> Rule:
    def rule(x: RuleInput) -> Finding | None:
        counts = x.velocity.get(kind, {})
        breaches = [
            (counts[limit.window], limit)
            for limit in x.policy.velocity
            if limit.kind == kind and counts.get(limit.window, 0) > limit.max_orders
        ]
        if not breaches:
            return None
        # The shortest breached window is the sharpest burst; one finding per kind, not per window.
        count, limit = min(breaches, key=lambda b: b[1].window)
        return _finding(
            x.policy,
            f"velocity_{kind}",
            f"{count} orders with the same {_KIND_WORDS[kind]} within {_window_text(limit.window)} "
            f"(limit {limit.max_orders})",
        )

    rule.__name__ = f"rule_velocity_{kind}"
    return rule


rule_velocity_email, rule_velocity_ip, rule_velocity_card = (_velocity_rule(k) for k in VELOCITY_KINDS)


def _window_text(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _country(address: Address | None) -> str | None:
    country = (address.country or "").strip().upper() if address else ""
    return country or None


def rule_country_mismatch(x: RuleInput) -> Finding | None:
    billing, shipping = _country(x.order.billing_address), _country(x.order.shipping_address)
    if billing is None or shipping is None or billing == shipping:
        return None
    return _finding(
        x.policy, "country_mismatch", f"billing country {billing} differs from shipping country {shipping}"
    )


def rule_risky_destination(x: RuleInput) -> Finding | None:
    shipping = _country(x.order.shipping_address)
    if shipping is None or shipping not in x.policy.risky_countries:
        return None
    return _finding(x.policy, "risky_destination", f"ships to {shipping}, on the risky-destination list")


def rule_first_order_express(x: RuleInput) -> Finding | None:
    method = (x.signals.shipping_method or "").casefold()
    if not x.signals.is_first_order or not method:
        return None
    keyword = next((k for k in x.policy.express_keywords if k.casefold() in method), None)
    if keyword is None:
        return None
    return _finding(
        x.policy, "first_order_express", f"first order from this customer, with {keyword} shipping"
    )


def rule_shopify_risk(x: RuleInput) -> Finding | None:
    risk = x.signals.shopify_risk
    if risk is None:
        return None
    if risk.recommendation == "CANCEL":
        return Finding(
            "shopify_cancel", _HARD_POINTS, "Shopify recommends cancelling this order", hard_reject=True
        )
    level = next((lv for lv in ("HIGH", "MEDIUM") if lv in risk.risk_levels), None)
    signals: list[tuple[str, str]] = []
    if risk.recommendation == "INVESTIGATE":
        signals.append(("shopify_investigate", "Shopify recommends investigating this order"))
    if level is not None:
        signals.append((f"shopify_risk_{level.lower()}", f"Shopify rates the risk {level.lower()}"))
    if not signals:
        return None
    # Shopify derives its recommendation from the assessments: score the stronger one, not both.
    rule = max(signals, key=lambda s: x.policy.weight(s[0]))[0]
    return _finding(x.policy, rule, "; ".join(reason for _, reason in signals))


def rule_stripe_radar(x: RuleInput) -> Finding | None:
    radar = x.signals.stripe_radar
    if radar is None:
        return None
    score = f" (score {radar.risk_score})" if radar.risk_score is not None else ""
    if radar.risk_level == "highest":
        return Finding(
            "radar_highest", _HARD_POINTS, f"Stripe Radar risk level highest{score}", hard_reject=True
        )
    if radar.risk_level == "elevated":
        return _finding(x.policy, "radar_elevated", f"Stripe Radar risk level elevated{score}")
    if radar.risk_score is not None and radar.risk_score >= x.policy.radar_score_review:
        return _finding(x.policy, "radar_score", f"Stripe Radar risk score {radar.risk_score}")
    return None


def rule_totals_mismatch(x: RuleInput) -> Finding | None:
    issues = totals_issues(x.order)
    if not issues:
        return None
    more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
    return _finding(x.policy, "totals_mismatch", f"order figures do not add up: {issues[0]}{more}")


RULES: tuple[Rule, ...] = (
    rule_high_value,
    rule_velocity_email,
    rule_velocity_ip,
    rule_velocity_card,
    rule_country_mismatch,
    rule_risky_destination,
    rule_first_order_express,
    rule_shopify_risk,
    rule_stripe_radar,
    rule_totals_mismatch,
)
