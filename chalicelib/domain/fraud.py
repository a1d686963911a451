"""Fraud check: configurable rules and channel risk signals combined into approve / review / reject."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from chalicelib.domain import money
from chalicelib.domain.order import Address, Fraud, Order
from chalicelib.domain.totals import totals_issues


class Decision(StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    REJECT = "reject"


# What velocity is counted by; also the first part of every stored velocity key.
EMAIL, IP, CARD = "email", "ip", "card"
VELOCITY_KINDS = (EMAIL, IP, CARD)
_KIND_WORDS = {EMAIL: "email address", IP: "IP address", CARD: "card"}


class FraudPolicyError(ValueError):
    """A fraud policy from configuration that cannot be used as given."""


class VelocityCounter(Protocol):
    def record_and_count(
        self,
        key_kind: str,
        key: str,
        at: datetime,
        windows: tuple[timedelta, ...],
        *,
        order_id: str,
    ) -> dict[timedelta, int]:
        """Record `order_id` under (kind, key) at `at` once, however often called, and count per window.

        A window w counts the orders recorded for the key with at - w < time <= at, this one included.
        Implementations store `velocity_key_digest(kind, key)`, never the key itself.
        """
        ...


def velocity_key_digest(kind: str, key: str) -> str:
    """The sha256 a velocity key is stored under; normalised so that case and spacing do not split counts."""
    normalised = key.strip() if kind == CARD else key.strip().lower()
    return hashlib.sha256(f"{kind}\x1f{normalised}".encode()).hexdigest()


@dataclass(frozen=True)
class VelocityLimit:
    """More than `max_orders` orders for one key within `window` (this order included) is suspicious."""

    kind: str
    window: timedelta
    max_orders: int


_DEFAULT_WEIGHTS: Mapping[str, int] = MappingProxyType(
    {
        "high_value": 25,
        "velocity_email": 30,
        "velocity_ip": 25,
        "velocity_card": 35,
        "country_mismatch": 15,
        "risky_destination": 30,
        "first_order_express": 20,
        "shopify_investigate": 40,
        "shopify_risk_high": 45,
        "shopify_risk_medium": 15,
        "radar_elevated": 40,
        "radar_score": 30,
        "totals_mismatch": 5,
    }
)
# Points of a hard rule: it decides on its own, so its score is the maximum.
_HARD_POINTS = 100

# Roughly the same purchasing power in each currency; an unlisted currency uses `high_value_fallback`.
_DEFAULT_HIGH_VALUE: Mapping[str, Decimal] = MappingProxyType(
    {
        "EUR": Decimal(1000),
        "USD": Decimal(1000),
        "GBP": Decimal(1000),
        "CAD": Decimal(1400),
        "AUD": Decimal(1500),
        "JPY": Decimal(150000),
    }
)

_H, _D = timedelta(hours=1), timedelta(days=1)
_DEFAULT_VELOCITY: tuple[VelocityLimit, ...] = (
    VelocityLimit(EMAIL, _H, 3),
    VelocityLimit(EMAIL, _D, 5),
    VelocityLimit(IP, _H, 5),
    VelocityLimit(IP, _D, 10),
    VelocityLimit(CARD, _H, 3),
    VelocityLimit(CARD, _D, 5),
)


@dataclass(frozen=True)
class FraudPolicy:
    """Thresholds and weights of the rules; defaults are a starting point, tuned per merchant by config."""

    review_score: int = 40
    reject_score: int = 80
    high_value: Mapping[str, Decimal] = field(default_factory=lambda: _DEFAULT_HIGH_VALUE)
    # None: orders in an unlisted currency are not value-checked (a bare number means nothing across
    # currencies: 1000 KRW is well under one euro).
    high_value_fallback: Decimal | None = None
    velocity: tuple[VelocityLimit, ...] = _DEFAULT_VELOCITY
    # ISO 3166-1 alpha-2 codes. Empty by default: which destinations are risky is the merchant's call.
    risky_countries: frozenset[str] = frozenset()
    express_keywords: tuple[str, ...] = (
        "express",
        "overnight",
        "next day",
        "next-day",
        "same day",
        "expedited",
    )
    # Stripe's own default review threshold is 65 (risk_level "elevated" from there on).
    radar_score_review: int = 65
    weights: Mapping[str, int] = field(default_factory=lambda: _DEFAULT_WEIGHTS)

    def __post_init__(self) -> None:
        if not 0 < self.review_score <= self.reject_score <= 100:
            raise FraudPolicyError("need 0 < review_score <= reject_score <= 100")
        if not 0 <= self.radar_score_review <= 100:
            raise FraudPolicyError("radar_score_review is a Radar score, 0 to 100")
        unknown = set(self.weights) - set(_DEFAULT_WEIGHTS)
        if unknown:
            raise FraudPolicyError(f"unknown weights: {sorted(unknown)}")
        if any(w < 0 for w in self.weights.values()):
            raise FraudPolicyError("weights cannot be negative")
        for limit in self.velocity:
            if limit.kind not in VELOCITY_KINDS or limit.window <= timedelta(0) or limit.max_orders < 1:
                raise FraudPolicyError(f"not a usable velocity limit: {limit}")

    def weight(self, rule: str) -> int:
        return self.weights.get(rule, _DEFAULT_WEIGHTS[rule])

    def windows(self, kind: str) -> tuple[timedelta, ...]:
        return tuple(sorted({limit.window for limit in self.velocity if limit.kind == kind}))

    def high_value_threshold(self, currency: str) -> Decimal | None:
        return self.high_value.get(currency.upper(), self.high_value_fallback)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> FraudPolicy:
        """A policy from configuration (JSON-shaped); what it leaves out keeps its default.

        `high_value` and `weights` are merged over the defaults; `velocity` replaces the limits of each
        kind it names, e.g. {"email": {"1h": 3, "24h": 5}}. Unknown keys are errors, so typos surface.
        """
        known = {f.name for f in fields(cls)}
        unknown = set(config) - known
        if unknown:
            raise FraudPolicyError(f"unknown fraud policy settings: {sorted(unknown)}")
        base = cls()
        changes: dict[str, Any] = {}
        try:
            for name in ("review_score", "reject_score", "radar_score_review"):
                if name in config:
                    changes[name] = _integer(config[name], name)
            if "high_value" in config:
                table = dict(base.high_value)
                for code, amount in dict(config["high_value"]).items():
                    table[code.upper()] = money.to_amount(amount, code)
                changes["high_value"] = MappingProxyType(table)
            if config.get("high_value_fallback") is not None:
                changes["high_value_fallback"] = _decimal(
                    config["high_value_fallback"], "high_value_fallback"
                )
            if "velocity" in config:
                changes["velocity"] = _velocity(base.velocity, config["velocity"])
            if "risky_countries" in config:
                countries = _strings(config["risky_countries"], "risky_countries")
                changes["risky_countries"] = frozenset(c.upper() for c in countries)
            if "express_keywords" in config:
                keywords = _strings(config["express_keywords"], "express_keywords")
                changes["express_keywords"] = tuple(k.casefold() for k in keywords)
            if "weights" in config:
                weights = {name: _integer(w, name) for name, w in dict(config["weights"]).items()}
                changes["weights"] = MappingProxyType({**base.weights, **weights})
        except (TypeError, AttributeError, money.MoneyError) as exc:
            raise FraudPolicyError(f"fraud policy: {exc}") from exc
        return replace(base, **changes)


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FraudPolicyError(f"{name} must be an integer")
    try:
        return int(value)
    except ValueError as exc:
        raise FraudPolicyError(f"{name} must be an integer") from exc


def _strings(value: Any, name: str) -> list[str]:
    # A bare string would otherwise be taken letter by letter.
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise FraudPolicyError(f"{name} must be a list of strings")
    return [str(v).strip() for v in value if str(v).strip()]


def _decimal(value: Any, name: str) -> Decimal:
    # Floats are refused as money.to_amount refuses them: the configured figure must be the exact one.
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise FraudPolicyError(f"{name} must be a decimal string or an integer")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise FraudPolicyError(f"{name} must be a decimal string or an integer") from exc
    if not amount.is_finite() or amount < 0:
        raise FraudPolicyError(f"{name} must be a non-negative amount")
    return amount


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_window(text: str | int) -> timedelta:
    """A window from configuration: "30m", "1h", "24h", "7d", or a number of seconds."""
    if isinstance(text, int) and not isinstance(text, bool):
        return timedelta(seconds=text)
    match = _DURATION.match(str(text))
    if not match:
        raise FraudPolicyError(f"not a duration: {text!r} (use e.g. 30m, 1h, 24h, 7d)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _velocity(base: tuple[VelocityLimit, ...], config: Mapping[str, Any]) -> tuple[VelocityLimit, ...]:
    named = {kind: dict(limits) for kind, limits in dict(config).items()}
    unknown = set(named) - set(VELOCITY_KINDS)
    if unknown:
        raise FraudPolicyError(f"unknown velocity kinds: {sorted(unknown)}")
    kept = [limit for limit in base if limit.kind not in named]
    for kind, limits in named.items():
        kept += [
            VelocityLimit(kind, parse_window(w), _integer(n, f"velocity {kind}")) for w, n in limits.items()
        ]
    return tuple(kept)


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


@dataclass(frozen=True)
class Finding:
    """One rule's verdict; `reason` is for operators and never carries an address, email, IP or card."""

    rule: str
    points: int
    reason: str
    hard_reject: bool = False


@dataclass(frozen=True)
class FraudAssessment:
    decision: Decision
    score: int
    reasons: tuple[str, ...]
    findings: tuple[Finding, ...]

    def to_fraud(self) -> Fraud:
        """The canonical order's `fraud` part."""
        return Fraud(decision=self.decision.value, score=self.score, reasons=list(self.reasons))


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


def velocity_keys(order: Order, signals: FraudSignals) -> dict[str, str]:
    """The keys this order is counted under, for the kinds it has a value for."""
    values = {EMAIL: order.customer.email, IP: signals.client_ip, CARD: signals.card_fingerprint}
    return {kind: value for kind, value in values.items() if value and value.strip()}


def assess(
    order: Order,
    signals: FraudSignals,
    velocity: VelocityCounter,
    policy: FraudPolicy,
    now: datetime,
) -> FraudAssessment:
    """Record the order's velocity keys, run every rule and decide; safe to repeat for the same order."""
    # The channel's placed_at dates the order (so a backfilled order counts when it happened), but never
    # later than now: a channel clock running ahead must not push an order out of everyone's windows.
    at = min(order.placed_at, now)
    counts: dict[str, Mapping[timedelta, int]] = {}
    for kind, key in velocity_keys(order, signals).items():
        windows = policy.windows(kind)
        if windows:
            counts[kind] = velocity.record_and_count(kind, key, at, windows, order_id=order.order_id)
    return decide(RuleInput(order, signals, policy, counts))


def decide(x: RuleInput, rules: tuple[Rule, ...] = RULES) -> FraudAssessment:
    """Combine the rules' findings: hard rules reject outright, otherwise the capped score decides."""
    findings = tuple(f for f in (rule(x) for rule in rules) if f is not None)
    score = min(100, sum(f.points for f in findings))
    if any(f.hard_reject for f in findings) or score >= x.policy.reject_score:
        decision = Decision.REJECT
    elif score >= x.policy.review_score:
        decision = Decision.REVIEW
    else:
        decision = Decision.APPROVE
    ordered = sorted(findings, key=lambda f: (not f.hard_reject, -f.points))
    return FraudAssessment(decision, score, tuple(f.reason for f in ordered), findings)
