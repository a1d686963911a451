"""The fraud policy: thresholds, weights, velocity limits and value limits, read from configuration."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from chalicelib.domain import money

# What velocity is counted by; also the first part of every stored velocity key.
EMAIL, IP, CARD = "email", "ip", "card"
VELOCITY_KINDS = (EMAIL, IP, CARD)


class FraudPolicyError(ValueError):
    """A fraud policy from configuration that cannot be used as given."""


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
