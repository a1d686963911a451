"""Fraud check: the rules (fraud_rules.py) under the policy (fraud_policy.py) and the channel risk signals
(fraud_signals.py) combined into approve / review / reject."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from chalicelib.domain.fraud_policy import CARD, EMAIL, IP, FraudPolicy
from chalicelib.domain.fraud_rules import RULES, Finding, Rule, RuleInput
from chalicelib.domain.fraud_signals import FraudSignals, ShopifyRisk
from chalicelib.domain.order import Fraud, Order

# ShopifyRisk (fraud_signals.py) is still read from here by integrations/shopify/admin.py, which another
# #14 branch is splitting: import it from fraud_signals once both have landed.
__all__ = [
    "Decision",
    "FraudAssessment",
    "ShopifyRisk",
    "VelocityCounter",
    "assess",
    "decide",
    "velocity_key_digest",
    "velocity_keys",
]


class Decision(StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    REJECT = "reject"


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
class FraudAssessment:
    decision: Decision
    score: int
    reasons: tuple[str, ...]
    findings: tuple[Finding, ...]

    def to_fraud(self) -> Fraud:
        """The canonical order's `fraud` part."""
        return Fraud(decision=self.decision.value, score=self.score, reasons=list(self.reasons))


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
