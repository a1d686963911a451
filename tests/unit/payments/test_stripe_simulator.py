"""The Stripe simulator: signed webhook events for each transition, retries, duplicates and its API rules."""

import time
from functools import partial

import pytest
import requests
import stripe

from chalicelib.integrations.stripe.webhook import parse_event, verify_stripe_signature
from local.simulators.stripe import RETRY_DELAYS_S, StripeSimulator
from tests.webhook_receiver import SignedReceiver

KEY = "sk_test_simulator_unit"
SECRET = "whsec_simulator_unit_secret"


Receiver = partial(SignedReceiver, "/webhooks/stripe", "Stripe-Signature")


@pytest.fixture
def make_sim(started, receiver):
    return started.maker(
        StripeSimulator,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        time_scale=1e-5,  # the hours-long retry schedule in well under a second
        seed=5,
    )


def client(sim: StripeSimulator) -> stripe.StripeClient:
    return stripe.StripeClient(KEY, base_addresses={"api": sim.url}, max_network_retries=0)


def authorise(sim: StripeSimulator, payment_method: str = "pm_card_visa", capture_method: str = "manual"):
    return client(sim).v1.payment_intents.create(
        params={
            "amount": 2599,
            "currency": "usd",
            "capture_method": capture_method,
            "payment_method": payment_method,
            "confirm": True,
            "metadata": {"order_id": "ord-9"},
        }
    )


def test_webhooks__signed_as_stripe_signs_and_verifiable(make_sim, receiver):
    sim = make_sim()
    intent = authorise(sim)
    (delivery,) = receiver.wait_for(1)
    assert verify_stripe_signature(SECRET, delivery.body, delivery.signature, now=time.time())
    assert not verify_stripe_signature("whsec_other", delivery.body, delivery.signature, now=time.time())
    assert delivery.signature.startswith("t=") and ",v1=" in delivery.signature
    event = parse_event(delivery.body)
    assert event.type == "payment_intent.amount_capturable_updated"
    assert event.object["id"] == intent.id and event.object["amount_capturable"] == 2599
    assert event.object["metadata"] == {"order_id": "ord-9"}
    assert delivery.event["request"]["idempotency_key"]
    assert sim.flush(20)


def test_webhooks__each_transition_emits_its_event(make_sim, receiver):
    sim = make_sim()
    api = client(sim)
    captured = authorise(sim)
    api.v1.payment_intents.capture(captured.id, params={"amount_to_capture": 2000})
    api.v1.refunds.create(params={"payment_intent": captured.id, "amount": 500})
    voided = authorise(sim)
    api.v1.payment_intents.cancel(voided.id, params={"cancellation_reason": "fraudulent"})
    with pytest.raises(stripe.CardError) as declined:
        authorise(sim, payment_method="pm_card_chargeDeclined")
    declined_id = declined.value.json_body["error"]["payment_intent"]["id"]
    automatic = authorise(sim, capture_method="automatic")
    received = receiver.wait_for(7)
    assert sim.flush(20)
    resources = [(r.event["type"], r.event["data"]["object"]) for r in received]
    kinds = [(kind, resource.get("payment_intent") or resource["id"]) for kind, resource in resources]
    assert sorted(kinds) == sorted(
        [
            ("payment_intent.amount_capturable_updated", captured.id),
            ("payment_intent.succeeded", captured.id),
            ("charge.refunded", captured.id),
            ("payment_intent.amount_capturable_updated", voided.id),
            ("payment_intent.canceled", voided.id),
            ("payment_intent.payment_failed", declined_id),
            ("payment_intent.succeeded", automatic.id),
        ]
    )
    refunded = next(r.event["data"]["object"] for r in received if r.event["type"] == "charge.refunded")
    assert (refunded["object"], refunded["amount_captured"], refunded["amount_refunded"]) == (
        "charge",
        2000,
        500,
    )
    failed = next(
        r.event["data"]["object"] for r in received if r.event["type"] == "payment_intent.payment_failed"
    )
    assert failed["last_payment_error"]["decline_code"] == "generic_decline"
    assert len({r.event["id"] for r in received}) == 7


def test_webhooks__retried_after_a_500_with_the_same_event_and_a_fresh_signature(make_sim, receiver):
    receiver.fail_first = 2
    sim = make_sim()
    authorise(sim)
    for delivery in receiver.redelivered(sim):
        assert verify_stripe_signature(SECRET, delivery.body, delivery.signature, now=time.time())


def test_webhooks__give_up_after_the_retry_schedule(make_sim, receiver):
    receiver.fail_first = 100
    sim = make_sim()
    authorise(sim)
    assert sim.flush(20)
    assert [d.attempt for d in sim.deliveries] == list(range(1, len(RETRY_DELAYS_S) + 2))


def test_webhooks__duplicates_carry_the_same_event_id(make_sim, receiver):
    sim = make_sim(duplicate_rate=1.0)
    authorise(sim)
    one, two = receiver.wait_for(2)
    assert sim.flush(20)
    assert one.event["id"] == two.event["id"]


def test_no_webhook_url__events_still_recorded():
    sim = StripeSimulator().start()
    try:
        authorise(sim)
        assert [e["type"] for e in sim.events] == ["payment_intent.amount_capturable_updated"]
        assert sim.flush(20)
    finally:
        sim.stop()


def test_api__auth_required_with_stripes_error_shape(make_sim):
    sim = make_sim()
    missing = requests.get(f"{sim.url}/v1/payment_intents/pi_1", timeout=20)
    wrong = requests.get(
        f"{sim.url}/v1/payment_intents/pi_1", headers={"Authorization": "Bearer pk_x"}, timeout=20
    )
    for answer in (missing, wrong):
        assert answer.status_code == 401
        assert answer.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_live_nope", base_addresses={"api": sim.url}).v1.payment_intents.retrieve(
            "pi_1"
        )


def test_api__form_encoding_and_idempotent_replay(make_sim):
    sim = make_sim()
    form = {"amount": "700", "currency": "eur", "metadata[order_id]": "ord-7", "metadata[channel]": "shop"}
    headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": "create-ord-7"}
    first = requests.post(f"{sim.url}/v1/payment_intents", data=form, headers=headers, timeout=20)
    again = requests.post(f"{sim.url}/v1/payment_intents", data=form, headers=headers, timeout=20)
    other = requests.post(
        f"{sim.url}/v1/payment_intents", data={**form, "amount": "701"}, headers=headers, timeout=20
    )
    assert first.json()["metadata"] == {"order_id": "ord-7", "channel": "shop"}
    assert first.json()["status"] == "requires_payment_method"
    assert "Idempotent-Replayed" not in first.headers
    assert (again.json(), again.headers["Idempotent-Replayed"]) == (first.json(), "true")
    assert (other.status_code, other.json()["error"]["type"]) == (400, "idempotency_error")


def test_api__capture_limits_and_states(make_sim):
    sim = make_sim()
    api = client(sim)
    intent = authorise(sim)
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        api.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 2600})
    assert too_much.value.code == "amount_too_large"
    with pytest.raises(stripe.InvalidRequestError) as early_refund:
        api.v1.refunds.create(params={"payment_intent": intent.id})
    assert early_refund.value.code == "charge_not_refundable"
    done = api.v1.payment_intents.capture(intent.id, params={"expand": ["latest_charge"]})
    assert done.latest_charge is not None and done.latest_charge.amount_captured == 2599
    with pytest.raises(stripe.InvalidRequestError) as late_cancel:
        api.v1.payment_intents.cancel(intent.id)
    assert late_cancel.value.code == "payment_intent_unexpected_state"
    refund = api.v1.refunds.create(params={"payment_intent": intent.id})
    assert api.v1.refunds.retrieve(refund.id).amount == 2599


def test_api__a_declined_intent_recovers_with_a_new_payment_method(make_sim):
    sim = make_sim()
    api = client(sim)
    with pytest.raises(stripe.CardError) as declined:
        authorise(sim, payment_method="pm_card_chargeDeclinedInsufficientFunds")
    assert declined.value.error is not None and declined.value.error.decline_code == "insufficient_funds"
    intent_id = declined.value.json_body["error"]["payment_intent"]["id"]
    recovered = api.v1.payment_intents.confirm(intent_id, params={"payment_method": "pm_card_visa"})
    assert (recovered.status, recovered.amount_capturable) == ("requires_capture", 2599)


def test_api__radar_block(make_sim):
    sim = make_sim()
    with pytest.raises(stripe.CardError) as blocked:
        authorise(sim, payment_method="pm_card_chargeDeclinedFraudulent")
    charge = sim.charge(blocked.value.json_body["error"]["charge"])
    assert (charge["outcome"]["type"], charge["outcome"]["risk_level"]) == ("blocked", "highest")


def test_api__latency_knob(make_sim):
    slept: list[float] = []
    sim = make_sim(latency=0.05, sleep=slept.append)
    authorise(sim)
    assert slept == [0.05]  # one request, held back `latency` before its answer


def test_api__events_and_refunds_listed_newest_first_in_pages_filtered_as_stripe_filters(make_sim):
    sim = make_sim(webhook_url=None)
    api = client(sim)
    captured = [authorise(sim, capture_method="automatic") for _ in range(3)]
    held = authorise(sim)
    sim.capture_outside(held.id, 1000)  # from the dashboard: part of the hold
    for intent in captured:
        api.v1.refunds.create(params={"payment_intent": intent.id, "amount": 100})

    first = api.v1.events.list(params={"types": ["payment_intent.succeeded"], "limit": 2})
    assert (first.object, first.url, first.has_more) == ("list", "/v1/events", True)
    listed = [e.data.object.id for e in first.auto_paging_iter()]
    assert listed == [held.id, *(i.id for i in reversed(captured))]  # newest first, every page
    assert sim.payment_intent(held.id)["amount_received"] == 1000
    assert first.data[0].data.object.amount_received == 1000  # the intent as it was when captured

    second = api.v1.events.list(
        params={"types": ["payment_intent.succeeded"], "limit": 2, "starting_after": first.data[-1].id}
    )
    assert [e.data.object.id for e in second.data] == [captured[1].id, captured[0].id] and not second.has_more
    back = api.v1.events.list(
        params={"types": ["payment_intent.succeeded"], "ending_before": second.data[0].id, "limit": 1}
    )
    assert [e.data.object.id for e in back.data] == [captured[2].id] and back.has_more  # the page just before
    wildcard = api.v1.events.list(params={"type": "charge.*", "limit": 100})
    assert {e.type for e in wildcard.data} == {"charge.refunded"} and len(wildcard.data) == 3
    future = int(time.time()) + 60
    assert api.v1.events.list(params={"created": {"gte": future}}).data == []

    refunds = api.v1.refunds.list(params={"limit": 2, "created": {"lte": future}})
    assert refunds.has_more and len(list(refunds.auto_paging_iter())) == 3
    with pytest.raises(stripe.InvalidRequestError) as both:
        api.v1.events.list(params={"type": "charge.refunded", "types": ["charge.refunded"]})
    assert both.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        api.v1.events.list(params={"starting_after": "evt_nope"})
    assert unknown.value.code == "resource_missing"
