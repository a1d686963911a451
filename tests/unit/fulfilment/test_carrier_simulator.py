"""The carrier simulator: signed tracker streams, retries, dedup, and the hub's EasyPost client against it."""

import hashlib
import hmac
import json
import unicodedata
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
import requests

from chalicelib.domain.errors import InvalidInput
from chalicelib.integrations.easypost.client import (
    CarrierNotFound,
    CarrierRejected,
    CarrierUnavailable,
    EasyPostClient,
)
from chalicelib.integrations.easypost.webhook import (
    TrackerEvent,
    TrackingStatus,
    parse_tracker_event,
    verify_easypost_signature,
)
from local.simulators.carrier import RETRY_DELAYS_S, CarrierSimulator
from tests.fake_time import Clock
from tests.webhook_receiver import Signed, SignedReceiver

KEY = "EZTK_unit_test_key"
SECRET = "sécret-simulé"  # accents: the NFKD step is only exercised by a non-ASCII secret
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
STEP = timedelta(hours=12)

S = TrackingStatus
EXPECTED = {
    "on_time": [S.PRE_TRANSIT, S.IN_TRANSIT, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.DELIVERED],
    "late": [S.PRE_TRANSIT, S.IN_TRANSIT, S.IN_TRANSIT, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.DELIVERED],
    "failed_attempt": [
        S.PRE_TRANSIT, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.FAILED_ATTEMPT, S.OUT_FOR_DELIVERY, S.DELIVERED
    ],
    "exception": [S.PRE_TRANSIT, S.IN_TRANSIT, S.EXCEPTION],
    "return_to_sender": [
        S.PRE_TRANSIT, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.FAILED_ATTEMPT, S.RETURNED_TO_SENDER
    ],
    "silent": [S.PRE_TRANSIT],
}  # fmt: skip
# EasyPost's test codes and the raw status each one ends in.
TEST_CODES = {
    "EZ1000000001": "pre_transit",
    "EZ2000000002": "in_transit",
    "EZ3000000003": "out_for_delivery",
    "EZ4000000004": "delivered",
    "EZ5000000005": "return_to_sender",
    "EZ6000000006": "failure",
    "EZ7000000007": "unknown",
}


class Received(Signed):
    @property
    def event(self) -> TrackerEvent:
        return parse_tracker_event(self.body)


Receiver = partial(SignedReceiver, "/webhooks/carriers/easypost", "X-Hmac-Signature", Received)


@pytest.fixture
def make_sim(started, receiver):
    return started.maker(
        CarrierSimulator,
        KEY,
        SECRET,
        webhook_url=receiver.url,
        step_s=0,  # only `advance` moves trackers, unless a test says otherwise
        time_scale=1e-5,  # the day-long retry schedule in well under a second
        seed=7,
        now=lambda: T0,
        carrier_step=STEP,
    )


def client(sim: CarrierSimulator, **knobs) -> EasyPostClient:
    knobs.setdefault("sleep", lambda _s: None)
    return EasyPostClient(KEY, api_base=sim.url, **knobs)


def run_to_end(sim: CarrierSimulator, code: str) -> int:
    steps = 0
    while sim.advance(code) is not None:
        steps += 1
    return steps


# --- streams -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_stream__each_scenario_arrives_signed_in_order(make_sim, receiver, scenario):
    sim = make_sim()
    code = f"DEMO-{scenario.upper()}-0001"
    tracker = client(sim).create_tracker(code, "USPS")
    assert sim.scenario_of(code) == scenario and tracker["status"] == "pre_transit"
    assert run_to_end(sim, code) == len(EXPECTED[scenario]) - 1
    received = receiver.wait_for(len(EXPECTED[scenario]))
    assert sim.flush(20)
    for delivery in received:
        assert verify_easypost_signature(SECRET, delivery.body, delivery.signature)
        assert not verify_easypost_signature("sécret-simule", delivery.body, delivery.signature)
    events = sorted((d.event for d in received), key=lambda e: e.updated_at)
    assert [e.tracking_status for e in events] == EXPECTED[scenario]
    assert [e.description for e in events] == ["tracker.created"] + ["tracker.updated"] * (len(events) - 1)
    assert [e.previous_status for e in events[1:]] == [e.status for e in events[:-1]]
    assert {e.tracker_id for e in events} == {tracker["id"]}
    assert len({e.event_id for e in events}) == len(events)
    assert sim.advance(code) is None


def test_stream__signature_is_over_the_nfkd_key_not_the_nfc_one(make_sim, receiver):
    sim = make_sim()
    client(sim).create_tracker("EZ1000000001", "USPS")
    (delivery,) = receiver.wait_for(1)
    nfkd = unicodedata.normalize("NFKD", SECRET).encode()
    nfc = unicodedata.normalize("NFC", SECRET).encode()
    assert nfkd != nfc
    assert (
        delivery.signature == "hmac-sha256-hex=" + hmac.new(nfkd, delivery.body, hashlib.sha256).hexdigest()
    )
    assert delivery.signature != "hmac-sha256-hex=" + hmac.new(nfc, delivery.body, hashlib.sha256).hexdigest()


def test_stream__on_time_is_delivered_before_its_estimate(make_sim, receiver):
    sim = make_sim()
    client(sim).create_tracker("DEMO-ON-TIME-1", "UPS")
    run_to_end(sim, "DEMO-ON-TIME-1")
    events = [d.event for d in receiver.wait_for(5)]
    delivered = next(e for e in events if e.tracking_status is S.DELIVERED)
    assert {e.est_delivery_date for e in events} == {T0 + 5 * STEP}
    assert delivered.last_detail_at == T0 + 4 * STEP < delivered.est_delivery_date


def test_stream__late_pushes_the_estimate_back_and_is_delivered_after_it(make_sim, receiver):
    sim = make_sim()
    client(sim).create_tracker("DEMO-LATE-1", "UPS")
    run_to_end(sim, "DEMO-LATE-1")
    events = sorted((d.event for d in receiver.wait_for(6)), key=lambda e: e.updated_at)
    estimates = [e.est_delivery_date for e in events]
    assert estimates[0] == T0 + 3 * STEP and estimates[-1] == T0 + 4 * STEP
    assert estimates == sorted(estimates)
    assert events[-1].tracking_status is S.DELIVERED
    assert events[-1].last_detail_at > estimates[-1] > estimates[0]
    assert sim.events_of("DEMO-LATE-1")[2]["result"]["status_detail"] == "weather_delay"


def test_stream__tracking_details_accumulate_and_carry_easyposts_shape(make_sim, receiver):
    sim = make_sim()
    client(sim).create_tracker("DEMO-FAILED-ATTEMPT-9", "USPS")
    run_to_end(sim, "DEMO-FAILED-ATTEMPT-9")
    receiver.wait_for(6)
    events = sim.events_of("DEMO-FAILED-ATTEMPT-9")
    assert [len(e["result"]["tracking_details"]) for e in events] == [1, 2, 3, 4, 5, 6]
    last = events[-1]
    assert (last["object"], last["mode"], last["status"]) == ("Event", "test", "pending")
    assert last["previous_attributes"] == {"status": "out_for_delivery"}
    tracker = last["result"]
    assert tracker["id"].startswith("trk_") and last["id"].startswith("evt_")
    assert isinstance(tracker["weight"], float) and tracker["finalized"] is True
    detail = tracker["tracking_details"][3]
    assert (detail["object"], detail["status"], detail["status_detail"]) == (
        "TrackingDetail",
        "in_transit",
        "delivery_exception",
    )
    assert set(detail["tracking_location"]) == {"object", "city", "state", "country", "zip"}
    assert [d["datetime"] for d in tracker["tracking_details"]] == sorted(
        d["datetime"] for d in tracker["tracking_details"]
    )


@pytest.mark.parametrize(("code", "end_status"), sorted(TEST_CODES.items()))
def test_stream__easypost_test_codes_end_in_their_status(make_sim, receiver, code, end_status):
    sim = make_sim()
    client(sim).create_tracker(code, "USPS")
    steps = run_to_end(sim, code)
    received = receiver.wait_for(steps + 1)
    assert max((d.event for d in received), key=lambda e: e.updated_at).status == end_status
    assert sim.trackers()[0]["status"] == end_status


def test_stream__runs_by_itself_every_step(make_sim, receiver):
    clock = Clock()
    sim = make_sim(step_s=2.0, time_scale=1.0, carrier_step=None, now=None, clock=clock)
    client(sim).create_tracker("DEMO-ON-TIME-2", "USPS")
    for steps_taken in range(1, 5):
        clock.now += 1.0  # half a step: the tracker waits
        assert sim.settle()
        assert len(sim.events_of("DEMO-ON-TIME-2")) == steps_taken
        clock.now += 1.0  # a whole step: it moves on by itself, once
        assert sim.settle()
        assert len(sim.events_of("DEMO-ON-TIME-2")) == steps_taken + 1
    received = receiver.wait_for(5)
    assert received[-1].event.tracking_status is S.DELIVERED
    assert sim.advance("DEMO-ON-TIME-2") is None


def test_stream__pause_holds_the_clock_and_resume_goes_on(make_sim, receiver):
    clock = Clock()
    sim = make_sim(step_s=2.0, time_scale=1.0, clock=clock)
    sim.pause()
    client(sim).create_tracker("DEMO-ON-TIME-3", "USPS")
    receiver.wait_for(1)
    clock.now += 10.0  # five steps' time, paused
    assert sim.settle()
    assert len(sim.events_of("DEMO-ON-TIME-3")) == 1
    assert sim.advance("DEMO-ON-TIME-3") is not None  # advance works while paused
    sim.resume()
    for _ in range(10):  # twenty seconds, a step's time at a time: each step is due one after the last
        clock.now += 2.0
        assert sim.settle()
    receiver.wait_for(5)
    assert [e["result"]["status"] for e in sim.events_of("DEMO-ON-TIME-3")][-1] == "delivered"


# --- determinism ---------------------------------------------------------------------------------


def _stable(event: dict) -> dict:
    """An event without what is random by nature (ids, the weight drawn)."""
    event = json.loads(json.dumps(event))
    del event["id"], event["result"]["id"], event["result"]["public_url"], event["result"]["weight"]
    return event


def test_advance__same_scenario_same_clock_same_events(make_sim):
    one, two = make_sim(webhook_url=None), make_sim(webhook_url=None)
    for sim in (one, two):
        client(sim).create_tracker("DEMO-RETURN-TO-SENDER-5", "USPS")
    stream = [[_stable(sim.advance("DEMO-RETURN-TO-SENDER-5")) for _ in range(4)] for sim in (one, two)]
    assert stream[0] == stream[1]
    assert [e["result"]["status"] for e in stream[0]] == [
        "in_transit",
        "out_for_delivery",
        "in_transit",
        "return_to_sender",
    ]
    assert stream[0][-1]["result"]["est_delivery_date"] is None


def test_advance__unknown_code_raises(make_sim):
    with pytest.raises(KeyError):
        make_sim().advance("NOPE")


def test_scenario_for__overrides_and_a_fixed_pick_for_other_codes(make_sim):
    sim = make_sim()
    sim.set_scenario("1Z999AA10123456784", "late")
    assert sim.scenario_for("1z999aa10123456784") == "late"
    assert sim.scenario_for("EZ4000000004") == "on_time"
    codes = [f"9400100000000000000{i:03d}" for i in range(200)]
    picks = [sim.scenario_for(code) for code in codes]
    rerun = make_sim()  # the same seed, so the same picks whatever order trackers come in
    assert picks == [rerun.scenario_for(code) for code in reversed(codes)][::-1]
    assert picks.count("on_time") > 100 and len(set(picks)) >= 4
    with pytest.raises(ValueError):
        sim.set_scenario("X", "teleported")


# --- delivery --------------------------------------------------------------------------------------


def test_webhooks__retried_after_a_500_with_the_same_body_and_signature(make_sim, receiver):
    receiver.fail_first = 2
    sim = make_sim()
    client(sim).create_tracker("EZ1000000001", "USPS")
    first, _, third = receiver.redelivered(sim)
    assert first.signature == third.signature
    assert verify_easypost_signature(SECRET, third.body, third.signature)


def test_webhooks__give_up_after_the_retry_schedule(make_sim, receiver):
    receiver.fail_first = 100
    sim = make_sim(time_scale=1e-6)
    client(sim).create_tracker("EZ1000000001", "USPS")
    assert sim.flush(20)
    assert [d.attempt for d in sim.deliveries] == list(range(1, len(RETRY_DELAYS_S) + 2))


def test_webhooks__duplicates_carry_the_same_event_id(make_sim, receiver):
    sim = make_sim(duplicate_rate=1.0)
    client(sim).create_tracker("EZ1000000001", "USPS")
    one, two = receiver.wait_for(2)
    assert one.event.event_id == two.event.event_id


def test_webhooks__no_secret_no_signature_header(make_sim, receiver):
    sim = CarrierSimulator(KEY, "", webhook_url=receiver.url, step_s=0).start()
    try:
        client(sim).create_tracker("EZ1000000001", "USPS")
        (delivery,) = receiver.wait_for(1)
        assert delivery.signature is None
    finally:
        sim.stop()


# --- API and the hub's client --------------------------------------------------------------------


def test_create_tracker__deduplicated_by_code_and_carrier(make_sim, receiver):
    sim = make_sim()
    api = client(sim)
    first = api.create_tracker("EZ2000000002", "USPS")
    again = api.create_tracker("ez2000000002 ", "usps")
    other_carrier = api.create_tracker("EZ2000000002", "UPS")
    assert again["id"] == first["id"] != other_carrier["id"]
    assert len(sim.trackers()) == 2
    assert [e["description"] for e in sim.events_of("EZ2000000002")] == ["tracker.created"] * 2
    assert [status for method, _, status in sim.requests if method == "POST"] == [201, 200, 201]


def test_client__create_and_retrieve(make_sim):
    sim = make_sim()
    api = client(sim)
    created = api.create_tracker("EZ4000000004", "USPS")
    sim.advance("EZ4000000004")
    fetched = api.retrieve_tracker(created["id"])
    assert fetched["id"] == created["id"] and fetched["object"] == "Tracker"
    assert (created["status"], fetched["status"]) == ("pre_transit", "in_transit")
    assert fetched["est_delivery_date"] == "2026-11-22T21:00:00Z"


def test_client__carrier_left_out_is_detected(make_sim):
    tracker = client(make_sim()).create_tracker("1Z999AA10123456784")
    assert tracker["carrier"] == "UPS"


def test_client__wrong_key_is_rejected_with_easyposts_error(make_sim):
    sim = make_sim()
    with pytest.raises(CarrierRejected) as refused:
        EasyPostClient("EZTK_wrong", api_base=sim.url).create_tracker("EZ1000000001", "USPS")
    assert (refused.value.status, refused.value.code) == (401, "APIKEY.INACTIVE")
    assert not isinstance(refused.value, CarrierUnavailable)
    assert len(sim.requests) == 1  # a 4xx is never retried


def test_client__unknown_tracker_is_not_found(make_sim):
    with pytest.raises(CarrierNotFound) as missing:
        client(make_sim()).retrieve_tracker("trk_nope/../x")
    assert (missing.value.status, missing.value.code) == (404, "NOT_FOUND")


def test_client__5xx_is_retried_then_succeeds(make_sim):
    sim = make_sim()
    slept: list[float] = []
    sim.fail_next(2, 500)
    tracker = client(sim, sleep=slept.append, jitter=lambda: 0.0).create_tracker("EZ1000000001", "USPS")
    assert tracker["tracking_code"] == "EZ1000000001"
    assert [status for _, _, status in sim.requests] == [500, 500, 201]
    assert slept == [0.25, 0.5]


def test_client__gives_up_after_max_attempts(make_sim):
    sim = make_sim()
    sim.fail_next(5, 503)
    with pytest.raises(CarrierUnavailable) as unavailable:
        client(sim, max_attempts=3).retrieve_tracker("trk_x")
    assert unavailable.value.status == 503
    assert len(sim.requests) == 3


def test_client__429_waits_for_retry_after(make_sim):
    sim = make_sim()
    slept: list[float] = []
    sim.fail_next(1, 429)
    client(sim, sleep=slept.append).create_tracker("EZ1000000001", "USPS")
    assert slept == [1.0]


def test_client__unreachable_is_unavailable():
    slept: list[float] = []
    api = EasyPostClient(KEY, api_base="http://127.0.0.1:9", sleep=slept.append, timeout=0.5)
    with pytest.raises(CarrierUnavailable) as unavailable:
        api.create_tracker("EZ1000000001", "USPS")
    assert unavailable.value.status is None and len(slept) == 2


def test_client__never_shows_its_key():
    api = EasyPostClient("EZTK_super_secret_value")
    assert "super_secret" not in repr(api) and "super_secret" not in str(api)
    with pytest.raises(InvalidInput):
        EasyPostClient("")
    with pytest.raises(InvalidInput):
        api.create_tracker("  ", "USPS")


def test_api__raw_errors_in_easyposts_shape(make_sim):
    sim = make_sim()
    missing_auth = requests.post(f"{sim.url}/v2/trackers", json={}, timeout=20)
    blank = requests.post(f"{sim.url}/v2/trackers", json={"tracker": {}}, auth=(KEY, ""), timeout=20)
    assert missing_auth.status_code == 401
    assert missing_auth.json() == {
        "error": {"code": "APIKEY.REQUIRED", "message": missing_auth.json()["error"]["message"], "errors": []}
    }
    assert blank.status_code == 422
    assert blank.json()["error"]["errors"] == [
        {"field": "tracker.tracking_code", "message": "cannot be blank"}
    ]
