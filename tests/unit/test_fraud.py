"""The fraud rules engine: each rule alone, then how findings combine into approve / review / reject."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.fraud import Decision, assess, decide, velocity_key_digest
from chalicelib.domain.fraud_policy import FraudPolicy, FraudPolicyError
from chalicelib.domain.fraud_rules import (
    RuleInput,
    rule_country_mismatch,
    rule_first_order_express,
    rule_high_value,
    rule_risky_destination,
    rule_shopify_risk,
    rule_stripe_radar,
    rule_totals_mismatch,
    rule_velocity_card,
    rule_velocity_email,
    rule_velocity_ip,
)
from chalicelib.domain.fraud_signals import FraudSignals, ShopifyRisk, StripeRadar
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import Order
from tests.fakes_fraud import InMemoryVelocityCounter

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
H, D = timedelta(hours=1), timedelta(days=1)
EMAIL = "Jane.Doe@example.com"
IP = "198.51.100.23"
CARD = "fp_Xq1w2e3r4t5y"
ADDRESS = {"name": "Jane Doe", "line1": "12 Rue de Rivoli", "city": "Paris", "postal_code": "75001"}


def an_order(
    *,
    currency: str = "EUR",
    unit_price: str = "50.00",
    billing: str | None = "FR",
    shipping: str | None = "FR",
    order_id: str = "1",
    placed_at: datetime = NOW,
    **extra: Any,
) -> Order:
    return normalise_manual(
        {
            "external_id": f"F-{order_id}",
            "currency": currency,
            "placed_at": placed_at.isoformat(),
            "customer": {"email": EMAIL, "name": "Jane Doe", "phone": "+33 1 23 45 67 89"},
            "billing_address": {**ADDRESS, "country": billing} if billing else None,
            "shipping_address": {**ADDRESS, "country": shipping} if shipping else None,
            "lines": [{"title": "Espresso machine", "quantity": 1, "unit_price": unit_price}],
            **extra,
        }
    )


def run(rule: Any, order: Order | None = None, policy: FraudPolicy | None = None, **signals: Any) -> Any:
    velocity = signals.pop("velocity", {})
    return rule(RuleInput(order or an_order(), FraudSignals(**signals), policy or FraudPolicy(), velocity))


# --- each rule alone ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "under", "over"),
    [
        ("EUR", "1000.00", "1000.01"),
        ("USD", "1000", "1200"),
        ("GBP", "999", "1001"),
        ("JPY", "150000", "150001"),
    ],
)
def test_high_value__threshold_is_per_currency(currency, under, over):
    assert run(rule_high_value, an_order(currency=currency, unit_price=under)) is None
    finding = run(rule_high_value, an_order(currency=currency, unit_price=over))
    assert finding.rule == "high_value" and finding.points == 25
    assert currency in finding.reason


def test_high_value__jpy_amounts_are_whole_yen_in_the_reason():
    finding = run(rule_high_value, an_order(currency="JPY", unit_price="200000"))
    assert finding.reason == "order total 200000 JPY is over 150000 JPY"


def test_high_value__unlisted_currency_is_not_checked_unless_a_fallback_is_configured():
    order = an_order(currency="KRW", unit_price="5000000")
    assert run(rule_high_value, order) is None
    policy = FraudPolicy.from_mapping({"high_value_fallback": "1000000"})
    assert run(rule_high_value, order, policy).rule == "high_value"


@pytest.mark.parametrize(
    ("rule", "kind", "word"),
    [
        (rule_velocity_email, "email", "email address"),
        (rule_velocity_ip, "ip", "IP address"),
        (rule_velocity_card, "card", "card"),
    ],
)
def test_velocity__over_a_limit_in_any_window(rule, kind, word):
    policy = FraudPolicy.from_mapping({"velocity": {kind: {"1h": 1, "24h": 5}}})
    assert run(rule, policy=policy, velocity={kind: {H: 1, D: 5}}) is None  # at the limits is fine
    finding = run(rule, policy=policy, velocity={kind: {H: 1, D: 6}})
    assert finding.rule == f"velocity_{kind}"
    assert finding.reason == f"6 orders with the same {word} within 1 d (limit 5)"


def test_velocity__the_shortest_breached_window_is_reported_once():
    finding = run(rule_velocity_email, velocity={"email": {H: 4, D: 9}})
    assert finding.reason == "4 orders with the same email address within 1 h (limit 3)"


def test_country_mismatch__only_when_both_countries_are_known_and_differ():
    assert run(rule_country_mismatch, an_order(billing="FR", shipping="FR")) is None
    assert run(rule_country_mismatch, an_order(billing=None, shipping="FR")) is None
    finding = run(rule_country_mismatch, an_order(billing="fr", shipping="NG"))
    assert finding.reason == "billing country FR differs from shipping country NG"


def test_risky_destination__uses_the_configured_list_and_none_by_default():
    order = an_order(shipping="XX")
    assert run(rule_risky_destination, order) is None
    policy = FraudPolicy.from_mapping({"risky_countries": ["xx"]})
    assert run(rule_risky_destination, order, policy).reason == "ships to XX, on the risky-destination list"


def test_first_order_express__needs_both_a_first_order_and_an_express_method():
    assert run(rule_first_order_express, is_first_order=True, shipping_method="Standard") is None
    assert run(rule_first_order_express, is_first_order=False, shipping_method="DHL Express") is None
    finding = run(rule_first_order_express, is_first_order=True, shipping_method="UPS Next Day Air")
    assert finding.reason == "first order from this customer, with next day shipping"


def test_shopify__investigate_or_risk_level_scores_the_stronger_once():
    assert run(rule_shopify_risk, shopify_risk=ShopifyRisk("ACCEPT", ("LOW",))) is None
    medium = run(rule_shopify_risk, shopify_risk=ShopifyRisk(None, ("LOW", "MEDIUM")))
    assert (medium.rule, medium.points) == ("shopify_risk_medium", 15)
    both = run(rule_shopify_risk, shopify_risk=ShopifyRisk("INVESTIGATE", ("HIGH",)))
    assert (both.rule, both.points) == ("shopify_risk_high", 45)
    assert both.reason == "Shopify recommends investigating this order; Shopify rates the risk high"


def test_shopify__cancel_is_a_hard_reject():
    finding = run(rule_shopify_risk, shopify_risk=ShopifyRisk("cancel"))
    assert finding.hard_reject and finding.rule == "shopify_cancel"


def test_shopify__parsed_from_the_graphql_order_risk():
    risk = ShopifyRisk.from_graphql(
        {
            "recommendation": "INVESTIGATE",
            "assessments": [{"riskLevel": "MEDIUM", "provider": None, "facts": []}, {"riskLevel": "PENDING"}],
        }
    )
    assert risk == ShopifyRisk("INVESTIGATE", ("MEDIUM", "PENDING"))
    assert ShopifyRisk.from_graphql(None) is None


def test_stripe_radar__levels_and_score():
    assert run(rule_stripe_radar, stripe_radar=StripeRadar("normal", 20)) is None
    assert run(rule_stripe_radar, stripe_radar=StripeRadar("not_assessed")) is None
    elevated = run(rule_stripe_radar, stripe_radar=StripeRadar("elevated", 70))
    assert (elevated.rule, elevated.reason) == (
        "radar_elevated",
        "Stripe Radar risk level elevated (score 70)",
    )
    high_score = run(rule_stripe_radar, stripe_radar=StripeRadar("normal", 66))
    assert high_score.rule == "radar_score"
    highest = run(rule_stripe_radar, stripe_radar=StripeRadar("highest", 91))
    assert highest.hard_reject


def test_stripe_radar__parsed_from_a_charge_outcome():
    outcome = {"type": "authorized", "risk_level": "elevated", "risk_score": 72, "reason": None}
    assert StripeRadar.from_outcome(outcome) == StripeRadar("elevated", 72)
    assert StripeRadar.from_outcome({}) is None


def test_totals_mismatch__is_a_weak_signal():
    assert run(rule_totals_mismatch) is None
    finding = run(rule_totals_mismatch, an_order(totals={"total": "10.00"}))
    assert finding.points == 5
    assert finding.reason.startswith("order figures do not add up: total 10.00 != subtotal")


def test_a_rule_weighted_zero_is_switched_off():
    policy = FraudPolicy.from_mapping({"weights": {"country_mismatch": 0}})
    assert run(rule_country_mismatch, an_order(billing="FR", shipping="US"), policy) is None


# --- combining findings ------------------------------------------------------------------------------


def test_assess__a_plain_order_is_approved():
    # GIVEN an ordinary order with nothing unusual about it
    order = an_order()
    # WHEN it is assessed
    result = assess(
        order,
        FraudSignals(client_ip=IP, card_fingerprint=CARD),
        InMemoryVelocityCounter(),
        FraudPolicy(),
        NOW,
    )
    # THEN it is approved with no reasons
    assert (result.decision, result.score, result.reasons) == (Decision.APPROVE, 0, ())


def test_assess__review_band_between_the_two_scores():
    # GIVEN a high-value order shipping abroad (25 + 15 points)
    order = an_order(unit_price="1500.00", billing="FR", shipping="US")
    # WHEN it is assessed
    result = assess(order, FraudSignals(), InMemoryVelocityCounter(), FraudPolicy(), NOW)
    # THEN it waits for an operator, with both reasons, the heavier first
    assert (result.decision, result.score) == (Decision.REVIEW, 40)
    assert result.reasons[0].startswith("order total 1500.00 EUR")
    assert result.to_fraud().model_dump() == {
        "decision": "review",
        "score": 40,
        "reasons": list(result.reasons),
    }


def test_assess__score_is_capped_at_100_and_rejects():
    # GIVEN an order where almost everything looks wrong
    order = an_order(unit_price="5000.00", billing="FR", shipping="XX")
    signals = FraudSignals(
        shopify_risk=ShopifyRisk("INVESTIGATE", ("HIGH",)),
        stripe_radar=StripeRadar("elevated", 74),
        is_first_order=True,
        shipping_method="Overnight",
    )
    policy = FraudPolicy.from_mapping({"risky_countries": ["XX"]})
    # WHEN it is assessed
    result = assess(order, signals, InMemoryVelocityCounter(), policy, NOW)
    # THEN the score stops at 100 and the order is rejected
    assert sum(f.points for f in result.findings) > 100
    assert (result.decision, result.score) == (Decision.REJECT, 100)


@pytest.mark.parametrize(
    "signals",
    [FraudSignals(stripe_radar=StripeRadar("highest")), FraudSignals(shopify_risk=ShopifyRisk("CANCEL"))],
)
def test_assess__hard_rules_reject_whatever_the_score(signals):
    # GIVEN a policy that would never reach the reject score, and a hard signal
    policy = FraudPolicy.from_mapping({"review_score": 100, "reject_score": 100})
    # WHEN the order is assessed
    result = assess(an_order(), signals, InMemoryVelocityCounter(), policy, NOW)
    # THEN it is rejected, with the hard reason first
    assert result.decision == Decision.REJECT
    assert result.findings[0].hard_reject and result.reasons[0] == result.findings[0].reason


def test_assess__velocity_builds_up_across_orders_and_windows():
    # GIVEN one customer placing an order every 10 minutes from the same IP and card
    velocity = InMemoryVelocityCounter()
    signals = FraudSignals(client_ip=IP, card_fingerprint=CARD)
    results = [
        assess(
            an_order(order_id=str(n), placed_at=NOW + n * timedelta(minutes=10)),
            signals,
            velocity,
            FraudPolicy(),
            NOW + D,
        )
        for n in range(6)
    ]
    # THEN the first three pass, the fourth trips email and card (3 per hour) and the rest stay flagged
    assert [r.decision for r in results[:3]] == [Decision.APPROVE] * 3
    assert {f.rule for f in results[3].findings} == {"velocity_email", "velocity_card"}
    assert results[3].decision == Decision.REVIEW  # 30 + 35 = 65, under the reject score of 80
    assert {f.rule for f in results[5].findings} == {"velocity_email", "velocity_ip", "velocity_card"}
    assert results[5].decision == Decision.REJECT


def test_assess__repeating_an_assessment_counts_the_order_once():
    velocity = InMemoryVelocityCounter()
    order = an_order()
    for _ in range(5):
        result = assess(order, FraudSignals(client_ip=IP), velocity, FraudPolicy(), NOW)
    assert result.decision == Decision.APPROVE
    assert all(len(orders) == 1 for orders in velocity.items.values())


def test_assess__orders_over_a_day_apart_do_not_add_up():
    velocity = InMemoryVelocityCounter()
    for n in range(6):
        result = assess(
            an_order(order_id=str(n), placed_at=NOW + n * 2 * D),
            FraudSignals(),
            velocity,
            FraudPolicy(),
            NOW + 20 * D,
        )
    assert result.findings == ()


def test_assess__an_order_dated_in_the_future_is_counted_now():
    velocity = InMemoryVelocityCounter()
    assess(an_order(order_id="a", placed_at=NOW + D), FraudSignals(), velocity, FraudPolicy(), NOW)
    (recorded,) = (t for orders in velocity.items.values() for t in orders.values())
    assert recorded == NOW


def test_assess__reasons_carry_no_personal_or_card_data():
    # GIVEN an order tripping every rule that could echo customer data
    velocity = InMemoryVelocityCounter()
    signals = FraudSignals(
        client_ip=IP, card_fingerprint=CARD, is_first_order=True, shipping_method="Express"
    )
    policy = FraudPolicy.from_mapping(
        {"risky_countries": ["US"], "velocity": {"email": {"1h": 1}, "ip": {"1h": 1}, "card": {"1h": 1}}}
    )
    for n in range(3):
        result = assess(
            an_order(order_id=str(n), unit_price="5000", billing="FR", shipping="US"),
            signals,
            velocity,
            policy,
            NOW,
        )
    # THEN the reasons name no email, IP, card, name, phone or street
    assert len(result.findings) == 7
    text = " ".join(result.reasons).lower()
    for secret in (EMAIL, "jane", IP, CARD, "+33", "rivoli", "paris", "75001"):
        assert secret.lower() not in text
    # AND velocity was stored under hashes only
    assert ("email", velocity_key_digest("email", EMAIL)) in velocity.items
    assert not any(EMAIL.lower() in key.lower() for _, key in velocity.items)


def test_velocity_key_digest__ignores_case_and_spaces_of_emails_not_of_card_fingerprints():
    assert velocity_key_digest("email", " Jane.Doe@Example.com ") == velocity_key_digest(
        "email", "jane.doe@example.com"
    )
    assert velocity_key_digest("card", "fp_ABC") != velocity_key_digest("card", "fp_abc")
    assert velocity_key_digest("email", "x") != velocity_key_digest("ip", "x")


def test_decide__without_velocity_counts_the_velocity_rules_stay_silent():
    result = decide(RuleInput(an_order(), FraudSignals(), FraudPolicy()))
    assert result.decision == Decision.APPROVE


# --- policy from configuration -----------------------------------------------------------------------


def test_policy_from_mapping__overrides_what_it_names_and_keeps_the_rest():
    policy = FraudPolicy.from_mapping(
        {
            "review_score": "30",
            "reject_score": 70,
            "high_value": {"jpy": 100000, "CHF": "900.00"},
            "velocity": {"ip": {"30m": 2, "7d": 20}},
            "risky_countries": ["xx", " yy "],
            "express_keywords": ["Priority"],
            "weights": {"high_value": 50},
        }
    )
    default = FraudPolicy()
    assert (policy.review_score, policy.reject_score) == (30, 70)
    assert policy.high_value_threshold("JPY") == Decimal(100000)
    assert policy.high_value_threshold("chf") == Decimal("900.00")
    assert policy.high_value_threshold("EUR") == Decimal(1000)
    assert policy.windows("ip") == (timedelta(minutes=30), timedelta(days=7))
    assert policy.windows("email") == default.windows("email")
    assert policy.risky_countries == frozenset({"XX", "YY"})
    assert policy.express_keywords == ("priority",)
    assert policy.weight("high_value") == 50 and policy.weight("velocity_ip") == default.weight("velocity_ip")
    assert FraudPolicy.from_mapping({}) == default


@pytest.mark.parametrize(
    "config",
    [
        {"review_scor": 40},
        {"review_score": 90, "reject_score": 80},
        {"weights": {"made_up_rule": 10}},
        {"weights": {"high_value": -1}},
        {"velocity": {"phone": {"1h": 1}}},
        {"velocity": {"email": {"an hour": 1}}},
        {"velocity": {"email": {"1h": 0}}},
        {"high_value": {"EUR": 999.5}},
        {"high_value_fallback": "lots"},
        {"reject_score": True},
        {"radar_score_review": 101},
        {"risky_countries": "XX"},
    ],
)
def test_policy_from_mapping__refuses_what_it_cannot_use(config):
    with pytest.raises(FraudPolicyError):
        FraudPolicy.from_mapping(config)


def test_policy__is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FraudPolicy().review_score = 1  # type: ignore[misc]
