"""Stripe-Signature verification and the event envelope, as Stripe's own SDK checks them."""

import hashlib
import hmac
import json

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.integrations.stripe.webhook import StripeEvent, parse_event, verify_stripe_signature

SECRET = "whsec_unit_test_signing_secret_0123456789"
NOW = 1_767_000_000
BODY = json.dumps(
    {
        "id": "evt_unit_1",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": NOW - 5,
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_unit_1", "object": "payment_intent", "amount_received": 1250}},
        "livemode": False,
    },
    indent=2,
).encode()


def sign(body: bytes, t: int = NOW, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def test_valid_signature():
    assert verify_stripe_signature(SECRET, BODY, f"t={NOW},v1={sign(BODY)}", now=NOW)


def test_wrong_secret():
    header = f"t={NOW},v1={sign(BODY, secret='whsec_another')}"
    assert not verify_stripe_signature(SECRET, BODY, header, now=NOW)


def test_tampered_body():
    header = f"t={NOW},v1={sign(BODY)}"
    assert not verify_stripe_signature(SECRET, BODY.replace(b"1250", b"9250"), header, now=NOW)


def test_reserialised_body_fails():
    # The signature covers the exact bytes sent; parsed-and-dumped JSON is not them.
    header = f"t={NOW},v1={sign(BODY)}"
    assert not verify_stripe_signature(SECRET, json.dumps(json.loads(BODY)).encode(), header, now=NOW)


def test_timestamp_is_part_of_what_is_signed():
    assert not verify_stripe_signature(SECRET, BODY, f"t={NOW + 1},v1={sign(BODY)}", now=NOW)


def test_expired_timestamp():
    old = NOW - 301
    header = f"t={old},v1={sign(BODY, t=old)}"
    assert not verify_stripe_signature(SECRET, BODY, header, now=NOW)
    assert verify_stripe_signature(SECRET, BODY, header, now=NOW, tolerance=600)
    edge = NOW - 300
    assert verify_stripe_signature(SECRET, BODY, f"t={edge},v1={sign(BODY, t=edge)}", now=NOW)


def test_future_timestamp_is_accepted_like_stripes_sdk():
    later = NOW + 3600
    assert verify_stripe_signature(SECRET, BODY, f"t={later},v1={sign(BODY, t=later)}", now=NOW)


def test_several_v1_one_valid():
    header = f"t={NOW},v1={'0' * 64},v1={sign(BODY)},v1={sign(BODY, secret='whsec_old')}"
    assert verify_stripe_signature(SECRET, BODY, header, now=NOW)


def test_missing_or_empty_header():
    assert not verify_stripe_signature(SECRET, BODY, None, now=NOW)
    assert not verify_stripe_signature(SECRET, BODY, "", now=NOW)
    assert not verify_stripe_signature("", BODY, f"t={NOW},v1={sign(BODY, secret='')}", now=NOW)


def test_v0_only_is_refused():
    assert not verify_stripe_signature(SECRET, BODY, f"t={NOW},v0={sign(BODY)}", now=NOW)


@pytest.mark.parametrize(
    "header",
    [f"v1={sign(BODY)}", f"t=soon,v1={sign(BODY)}", f"t={NOW}", "garbage", f"t={NOW},v1=ünïcode"],
)
def test_malformed_headers(header):
    assert not verify_stripe_signature(SECRET, BODY, header, now=NOW)


def test_spaces_after_commas_are_tolerated():
    assert verify_stripe_signature(SECRET, BODY, f"t={NOW}, v1={sign(BODY)}", now=NOW)


def test_parse_event__the_envelope():
    event = parse_event(BODY)
    assert event == StripeEvent(
        id="evt_unit_1",
        type="payment_intent.succeeded",
        created=NOW - 5,
        object={"id": "pi_unit_1", "object": "payment_intent", "amount_received": 1250},
        api_version="2026-10-28.endive",
    )


def test_parse_event__legacy_envelope_without_object_or_api_version():
    body = {
        "id": "evt_legacy",
        "created": 1326853478,
        "type": "charge.refunded",
        "data": {"object": {"id": "ch_1"}},
    }
    event = parse_event(json.dumps(body).encode())
    assert (event.type, event.api_version, event.object["id"]) == ("charge.refunded", None, "ch_1")


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"object": "v2.core.event", "id": "evt_thin", "type": "v1.billing.meter.error_report_triggered",'
        b' "created": "2026-01-01T00:00:00Z"}',
        b'{"object": "payment_intent", "id": "pi_1", "type": "x", "created": 1, "data": {"object": {}}}',
        b'{"type": "payment_intent.succeeded", "created": 1, "data": {"object": {}}}',
        b'{"id": "evt_1", "created": 1, "data": {"object": {}}}',
        b'{"id": "evt_1", "type": "payment_intent.succeeded", "created": "1", "data": {"object": {}}}',
        b'{"id": "evt_1", "type": "payment_intent.succeeded", "created": true, "data": {"object": {}}}',
        b'{"id": "evt_1", "type": "payment_intent.succeeded", "created": 1, "data": {}}',
        b'{"id": "evt_1", "type": "payment_intent.succeeded", "created": 1, "data": {"object": {}},'
        b' "api_version": 5}',
    ],
)
def test_parse_event__refuses_bad_shapes(raw):
    with pytest.raises(InvalidInput):
        parse_event(raw)
