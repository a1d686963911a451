"""StripePayments driven through the real `stripe` library against the local Stripe simulator."""

import pytest
import stripe
from stripe._http_client import HTTPClient

from chalicelib.domain.errors import InvalidInput
from chalicelib.integrations.stripe.payments import (
    PaymentConflict,
    PaymentDeclined,
    PaymentError,
    PaymentUnavailable,
    StripePayments,
    idempotency_key,
)
from local.simulators.stripe import StripeSimulator

KEY = "sk_test_order_hub_unit"


@pytest.fixture
def sim():
    s = StripeSimulator(seed=11).start()
    yield s
    s.stop()


@pytest.fixture
def payments(sim):
    return StripePayments(KEY, api_base=sim.url)


@pytest.fixture
def fast_retries(monkeypatch):
    # The library's backoff starts at 0.5 s; the behaviour under test is the retry, not the wait.
    monkeypatch.setattr(HTTPClient, "INITIAL_DELAY", 0.01)


def authorise(sim, amount=5000, payment_method="pm_card_visa", capture_method="manual") -> str:
    client = stripe.StripeClient(KEY, base_addresses={"api": sim.url})
    intent = client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "eur",
            "capture_method": capture_method,
            "payment_method": payment_method,
            "confirm": True,
            "metadata": {"order_id": "ord-1"},
        }
    )
    return intent.id


def captures(sim, intent_id):
    return [r for r in sim.requests if r[1] == f"/v1/payment_intents/{intent_id}/capture" and r[3] == 200]


def test_authorise_with_manual_capture_then_capture_everything(sim, payments):
    intent_id = authorise(sim)
    held = payments.retrieve(intent_id)
    assert (held.status, held.amount_capturable, held.amount_received) == ("requires_capture", 5000, 0)
    assert (held.risk_level, held.outcome_type) == ("normal", "authorized")
    assert held.card_fingerprint and held.latest_charge_id and held.latest_charge_id.startswith("ch_")
    paid = payments.capture(intent_id, None, idempotency_key=idempotency_key("ord-1", "capture"))
    assert (paid.status, paid.amount_received, paid.amount_capturable) == ("succeeded", 5000, 0)
    assert sim.charge(paid.latest_charge_id)["amount_captured"] == 5000


def test_partial_capture_releases_the_rest(sim, payments):
    intent_id = authorise(sim, amount=5000)
    paid = payments.capture(intent_id, 3250, idempotency_key=idempotency_key("ord-1", "capture"))
    assert (paid.status, paid.amount, paid.amount_received, paid.amount_capturable) == (
        "succeeded",
        5000,
        3250,
        0,
    )


def test_cancel_voids_the_authorisation(sim, payments):
    intent_id = authorise(sim)
    canceled = payments.cancel(
        intent_id, reason="requested_by_customer", idempotency_key=idempotency_key("ord-1", "cancel")
    )
    assert (canceled.status, canceled.cancellation_reason, canceled.amount_capturable) == (
        "canceled",
        "requested_by_customer",
        0,
    )
    with pytest.raises(PaymentConflict) as caught:
        payments.capture(intent_id, None, idempotency_key=idempotency_key("ord-1", "capture"))
    assert caught.value.code == "payment_intent_unexpected_state"


def test_refund_partial_then_the_rest(sim, payments):
    intent_id = authorise(sim, amount=4000)
    payments.capture(intent_id, None, idempotency_key=idempotency_key("ord-1", "capture"))
    part = payments.refund(
        intent_id, 1500, idempotency_key=idempotency_key("ord-1", "refund"), reason="requested_by_customer"
    )
    assert (part.amount, part.status, part.payment_intent_id, part.reason) == (
        1500,
        "succeeded",
        intent_id,
        "requested_by_customer",
    )
    rest = payments.refund(intent_id, None, idempotency_key=idempotency_key("ord-1", "refund", attempt=1))
    assert rest.amount == 2500
    assert sum(r["amount"] for r in sim.refunds_for(intent_id)) == 4000
    with pytest.raises(PaymentConflict) as caught:
        payments.refund(intent_id, None, idempotency_key=idempotency_key("ord-1", "refund", attempt=2))
    assert caught.value.code == "charge_already_refunded"


def test_refund_more_than_captured_is_a_conflict(sim, payments):
    intent_id = authorise(sim, amount=4000)
    payments.capture(intent_id, 1000, idempotency_key=idempotency_key("ord-1", "capture"))
    with pytest.raises(PaymentConflict) as caught:
        payments.refund(intent_id, 1001, idempotency_key=idempotency_key("ord-1", "refund"))
    assert caught.value.code == "amount_too_large"


@pytest.mark.parametrize(
    ("payment_method", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
def test_declined_card__payment_declined_with_the_decline_code(sim, payment_method, decline_code):
    payments = StripePayments(KEY, api_base=sim.url)
    with pytest.raises(stripe.CardError) as declined:
        authorise(sim, payment_method=payment_method)
    intent_id = declined.value.json_body["error"]["payment_intent"]["id"]
    view = payments.retrieve(intent_id)
    assert (view.status, view.last_error_code, view.last_decline_code) == (
        "requires_payment_method",
        "card_declined",
        decline_code,
    )
    assert view.outcome_type == "issuer_declined"
    with pytest.raises(PaymentConflict):
        payments.capture(intent_id, None, idempotency_key=idempotency_key("ord-1", "capture"))


def test_card_error__translated_to_payment_declined(sim, payments, monkeypatch):
    # The adapter does not confirm intents itself: drive its translation with a decline from capture's call.
    intent_id = authorise(sim)

    def declined(*args, **kwargs):
        raise stripe.CardError(
            "Your card was declined.",
            None,
            "card_declined",
            http_status=402,
            json_body={
                "error": {"type": "card_error", "code": "card_declined", "decline_code": "do_not_honor"}
            },
        )

    monkeypatch.setattr(payments._client.v1.payment_intents, "capture", declined)
    with pytest.raises(PaymentDeclined) as caught:
        payments.capture(intent_id, None, idempotency_key="k")
    assert (caught.value.code, caught.value.decline_code, caught.value.status) == (
        "card_declined",
        "do_not_honor",
        402,
    )
    assert isinstance(caught.value.__cause__, stripe.CardError)


def test_elevated_risk__authorised_with_radar_risk_on_the_charge(sim, payments):
    view = payments.retrieve(authorise(sim, payment_method="pm_card_riskLevelElevated"))
    assert view.status == "requires_capture"
    assert view.risk_level == "elevated"
    assert view.risk_score is not None and 65 <= view.risk_score < 75


def test_capture_twice__the_second_is_a_conflict(sim, payments):
    intent_id = authorise(sim)
    payments.capture(intent_id, None, idempotency_key=idempotency_key("ord-1", "capture"))
    with pytest.raises(PaymentConflict) as caught:
        payments.capture(intent_id, None, idempotency_key=idempotency_key("ord-1", "capture", attempt=1))
    assert caught.value.status == 400
    assert isinstance(caught.value.__cause__, stripe.InvalidRequestError)


def test_same_idempotency_key_twice__one_capture_and_a_replay(sim, payments):
    intent_id = authorise(sim)
    key = idempotency_key("ord-1", "capture")
    first = payments.capture(intent_id, 3000, idempotency_key=key)
    again = payments.capture(intent_id, 3000, idempotency_key=key)
    assert first == again
    assert len(sim.events_of("payment_intent.succeeded")) == 1
    assert [r[2] for r in captures(sim, intent_id)] == [key, key]  # the second answered from the key's record


def test_same_idempotency_key_with_other_parameters__conflict(sim, payments):
    intent_id = authorise(sim)
    key = idempotency_key("ord-1", "capture")
    payments.capture(intent_id, 3000, idempotency_key=key)
    with pytest.raises(PaymentConflict) as caught:
        payments.capture(intent_id, 2000, idempotency_key=key)
    assert caught.value.code == "idempotency_error"


def test_a_500_then_success__the_library_retries_with_the_same_key(sim, fast_retries):
    payments = StripePayments(KEY, api_base=sim.url, max_network_retries=2)
    intent_id = authorise(sim)
    sim.fail_next(1, status=500)
    paid = payments.capture(intent_id, None, idempotency_key=idempotency_key("ord-1", "capture"))
    assert paid.status == "succeeded"
    attempts = [r for r in sim.requests if r[1].endswith("/capture")]
    assert [(r[2], r[3]) for r in attempts] == [
        ("order-hub:ord-1:capture:0", 500),
        ("order-hub:ord-1:capture:0", 200),
    ]


def test_a_dropped_connection__retried(sim, fast_retries):
    payments = StripePayments(KEY, api_base=sim.url, max_network_retries=1)
    intent_id = authorise(sim)
    sim.fail_next(1, status=0)
    assert payments.retrieve(intent_id).status == "requires_capture"


def test_5xx_beyond_the_retries__payment_unavailable(sim, fast_retries):
    payments = StripePayments(KEY, api_base=sim.url, max_network_retries=1)
    intent_id = authorise(sim)
    sim.fail_next(2, status=503)
    with pytest.raises(PaymentUnavailable) as caught:
        payments.capture(intent_id, None, idempotency_key=idempotency_key("ord-1", "capture"))
    assert caught.value.status == 503
    assert sim.payment_intent(intent_id)["status"] == "requires_capture"


def test_429__payment_unavailable_at_once(sim, payments):
    # Stripe's libraries never retry a real rate limit (only lock timeouts): the caller backs off.
    intent_id = authorise(sim)
    sim.fail_next(3, status=429)
    with pytest.raises(PaymentUnavailable) as caught:
        payments.capture(intent_id, None, idempotency_key=idempotency_key("ord-1", "capture"))
    assert (caught.value.status, caught.value.code) == (429, "rate_limit")
    assert isinstance(caught.value.__cause__, stripe.RateLimitError)
    assert len([r for r in sim.requests if r[1].endswith("/capture")]) == 1


def test_a_wrong_key__payment_error_without_the_key_in_it(sim):
    payments = StripePayments("sk_live_not_accepted_here_1234", api_base=sim.url)
    with pytest.raises(PaymentError) as caught:
        payments.retrieve("pi_missing")
    assert caught.value.status == 401
    assert "not_accepted" not in str(caught.value)
    assert "not_accepted" not in repr(payments)


def test_unknown_intent__payment_error_resource_missing(payments):
    with pytest.raises(PaymentError) as caught:
        payments.retrieve("pi_does_not_exist")
    assert (type(caught.value), caught.value.code, caught.value.status) == (
        PaymentError,
        "resource_missing",
        404,
    )


def test_idempotency_key__stable_per_order_step_and_attempt():
    assert idempotency_key("ord-1", "capture") == idempotency_key("ord-1", "capture", 0)
    assert idempotency_key("ord-1", "capture") != idempotency_key("ord-1", "capture", 1)
    assert idempotency_key("ord-1", "capture") != idempotency_key("ord-1", "refund")
    long = idempotency_key("o" * 300, "capture")
    assert len(long) <= 255 and long != idempotency_key("o" * 299, "capture")
    with pytest.raises(InvalidInput):
        idempotency_key("", "capture")


def test_invalid_arguments_never_reach_stripe(sim, payments):
    with pytest.raises(InvalidInput):
        payments.capture("pi_x", 0, idempotency_key="k")
    with pytest.raises(InvalidInput):
        payments.cancel("pi_x", reason="bored", idempotency_key="k")
    with pytest.raises(InvalidInput):
        payments.refund("pi_x", None, idempotency_key="k", reason="abandoned")
    assert sim.requests == []


def test_captures_since__each_capture_with_its_intent_amount_and_time(sim, payments):
    from datetime import UTC, datetime, timedelta

    before = datetime.now(UTC) - timedelta(seconds=2)
    ours = authorise(sim, amount=4000)
    payments.capture(ours, 2500, idempotency_key="k-capture-ours")
    automatic = authorise(sim, amount=1200, capture_method="automatic")
    dashboard = authorise(sim, amount=900)
    sim.capture_outside(dashboard)
    authorise(sim, amount=700)  # authorised only: nothing captured

    found = {c.payment_intent_id: c for c in payments.captures_since(before)}
    assert {i: (c.amount, c.currency) for i, c in found.items()} == {
        ours: (2500, "eur"),
        automatic: (1200, "eur"),
        dashboard: (900, "eur"),
    }
    assert found[ours].charge_id == sim.payment_intent(ours)["latest_charge"]
    assert all(before <= c.captured_at <= datetime.now(UTC) for c in found.values())
    assert payments.captures_since(datetime.now(UTC) + timedelta(minutes=1)) == []


def test_captures_since__stripe_failing_is_payment_unavailable(sim, payments):
    from datetime import UTC, datetime

    sim.fail_next(3, 503)
    with pytest.raises(PaymentUnavailable):
        payments.captures_since(datetime.now(UTC))


# --- Stripe objects missing optional fields (versions, expansion and state omit them) ----------------


def _refund(**fields):
    return stripe.Refund.construct_from({"id": "re_1", "object": "refund", **fields}, KEY)


def test_a_refund_stripe_executed_without_a_reason_or_intent_field__read_not_a_500():
    from chalicelib.integrations.stripe.payments import _refund_view

    view = _refund_view(_refund(amount=1250, currency="eur", status="succeeded"))

    assert (view.id, view.amount, view.currency, view.status) == ("re_1", 1250, "eur", "succeeded")
    assert view.reason is None and view.payment_intent_id is None


def test_a_payment_intent_without_last_payment_error_charge_or_outcome__read_with_nones():
    from chalicelib.integrations.stripe.payments import _intent_view

    bare = stripe.PaymentIntent.construct_from(
        {"id": "pi_1", "object": "payment_intent", "status": "requires_capture", "amount": 5000}, KEY
    )
    view = _intent_view(bare)

    assert (view.id, view.status, view.amount, view.amount_capturable) == (
        "pi_1",
        "requires_capture",
        5000,
        0,
    )
    assert view.last_error_code is None and view.last_decline_code is None and view.latest_charge_id is None


def test_an_expanded_charge_without_outcome_or_card__read_with_nones():
    from chalicelib.integrations.stripe.payments import _intent_view

    intent = stripe.PaymentIntent.construct_from(
        {
            "id": "pi_2",
            "object": "payment_intent",
            "status": "succeeded",
            "amount": 900,
            "amount_received": 900,
            "currency": "eur",
            "latest_charge": {"id": "ch_2", "object": "charge", "payment_method_details": {"type": "card"}},
            "last_payment_error": {"type": "card_error"},
        },
        KEY,
    )
    view = _intent_view(intent)

    assert view.latest_charge_id == "ch_2" and view.amount_refunded == 0
    assert view.risk_score is None and view.outcome_type is None and view.card_fingerprint is None
    assert view.last_error_code is None and view.last_decline_code is None
