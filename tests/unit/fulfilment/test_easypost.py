"""EasyPost webhooks: the X-Hmac-Signature known-answer vector, the tracker Event and status normalisation."""

import hashlib
import hmac
import json
import unicodedata
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.integrations.easypost.webhook import (
    SIGNATURE_HEADER,
    SIGNATURE_PREFIX,
    TrackerEvent,
    TrackingStatus,
    is_final,
    normalise,
    parse_tracker_event,
    verify_easypost_signature,
)

# EasyPost's published known-answer vector for webhook signatures: the event body is
# EasyPost/examples `official/fixtures/event-body.json` (without its trailing newline) and the secret
# and signature are the `webhooks` entry of `official/fixtures/client-library-fixtures.json`. The bytes
# must stay exactly as published (the float `weight: 614.4` included) for the signature to mean anything.
KAT_SECRET = "sécret"  # with U+00E9, precomposed (NFC)
KAT_SIGNATURE = "hmac-sha256-hex=38f3f53c103713df81616a0a186d77141957323ec21d5fe9363db93840f527db"
KAT_BODY = (
    b'{"description":"tracker.updated","mode":"production","previous_attributes":{"status":"in_transit'
    b'"},"created_at":"2024-08-02T19:26:52.000Z","pending_urls":["https://example.com/easypost"],"comp'
    b'leted_urls":[],"updated_at":"2024-08-02T19:26:52.000Z","id":"evt_1","user_id":"user_1","status":'
    b'"pending","object":"Event","result":{"id":"trk_1","object":"Tracker","mode":"production","tracki'
    b'ng_code":"1","status":"in_transit","status_detail":"arrived_at_facility","created_at":"2024-07-3'
    b'1T14:45:27Z","updated_at":"2024-08-02T19:26:51Z","signed_by":null,"weight":614.4,"est_delivery_d'
    b'ate":"2024-08-05T00:00:00Z","shipment_id":null,"carrier":"FedEx","tracking_details":[{"object":"'
    b'TrackingDetail","message":"Shipment information sent to FedEx","description":"Shipment informati'
    b'on sent to FedEx","status":"pre_transit","status_detail":"label_created","datetime":"2024-07-31T'
    b'15:00:00Z","source":"FedEx","carrier_code":"OC","tracking_location":{"object":"TrackingLocation"'
    b',"city":null,"state":null,"country":"US","zip":"32837"}},{"object":"TrackingDetail","message":"P'
    b'icked up","description":"Picked up","status":"in_transit","status_detail":"arrived_at_facility",'
    b'"datetime":"2024-07-31T19:27:00Z","source":"FedEx","carrier_code":"PU","tracking_location":{"obj'
    b'ect":"TrackingLocation","city":"ORLANDO","state":"FL","country":"US","zip":"32809"}},{"object":"'
    b'TrackingDetail","message":"Arrived at FedEx location","description":"Arrived at FedEx location",'
    b'"status":"in_transit","status_detail":"arrived_at_facility","datetime":"2024-07-31T22:35:00Z","s'
    b'ource":"FedEx","carrier_code":"AR","tracking_location":{"object":"TrackingLocation","city":"ORLA'
    b'NDO","state":"FL","country":"US","zip":"32809"}},{"object":"TrackingDetail","message":"Departed '
    b'FedEx location","description":"Departed FedEx location","status":"in_transit","status_detail":"d'
    b'eparted_facility","datetime":"2024-08-01T14:42:13Z","source":"FedEx","carrier_code":"DP","tracki'
    b'ng_location":{"object":"TrackingLocation","city":"ORLANDO","state":"FL","country":"US","zip":"32'
    b'809"}},{"object":"TrackingDetail","message":"On the way","description":"On the way","status":"in'
    b'_transit","status_detail":"unknown","datetime":"2024-08-02T02:46:19Z","source":"FedEx","carrier_'
    b'code":"IT","tracking_location":{"object":"TrackingLocation","city":"KENLY","state":"NC","country'
    b'":"US","zip":"27542"}},{"object":"TrackingDetail","message":"On the way","description":"On the w'
    b'ay","status":"in_transit","status_detail":"unknown","datetime":"2024-08-02T18:35:20Z","source":"'
    b'FedEx","carrier_code":"IT","tracking_location":{"object":"TrackingLocation","city":"EDISON TWP",'
    b'"state":"NJ","country":"US","zip":"08817"}},{"object":"TrackingDetail","message":"Arrived at Fed'
    b'Ex location","description":"Arrived at FedEx location","status":"in_transit","status_detail":"ar'
    b'rived_at_facility","datetime":"2024-08-02T18:50:00Z","source":"FedEx","carrier_code":"AR","track'
    b'ing_location":{"object":"TrackingLocation","city":"EDISON","state":"NJ","country":"US","zip":"08'
    b'817"}}],"carrier_detail":{"object":"CarrierDetail","service":"FEDEX_GROUND","container_type":nul'
    b'l,"est_delivery_date_local":"2024-08-05","est_delivery_time_local":null,"origin_location":"ORLAN'
    b'DO FL US","origin_tracking_location":{"object":"TrackingLocation","city":"ORLANDO","state":"FL",'
    b'"country":"US","zip":"32809"},"destination_location":"BROOKLYN HGTS NY US","destination_tracking'
    b'_location":null,"guaranteed_delivery_date":null,"alternate_identifier":null,"initial_delivery_at'
    b'tempt":null},"finalized":false,"is_return":false,"public_url":"https://track.easypost.com/1"}}'
)


def hmac_hex(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def tracking_detail(message: str, status: str, detail: str, at: str, *, city: str, zip_code: str) -> dict:
    """One USPS TrackingDetail in Illinois, as EasyPost lists them in a tracker."""
    location = {"object": "TrackingLocation", "city": city, "state": "IL", "country": "US", "zip": zip_code}
    return {
        "object": "TrackingDetail",
        "message": message,
        "status": status,
        "status_detail": detail,
        "datetime": at,
        "source": "USPS",
        "tracking_location": location,
    }


def event_body(**changes) -> dict:
    """The project's own tracker.updated event, in EasyPost's shape; `changes` replace top-level keys."""
    tracker = {
        "id": "trk_unit_1",
        "object": "Tracker",
        "mode": "test",
        "tracking_code": "EZ2000000002",
        "status": "out_for_delivery",
        "status_detail": "out_for_delivery",
        "created_at": "2026-11-20T09:00:00Z",
        "updated_at": "2026-11-22T07:15:00Z",
        "signed_by": None,
        "weight": 17.6,
        "est_delivery_date": "2026-11-23T00:00:00Z",
        "carrier": "USPS",
        "tracking_details": [
            tracking_detail("Out for delivery", "out_for_delivery", "out_for_delivery",
                            "2026-11-22T07:15:00Z", city="SPRINGFIELD", zip_code="62701"),
            tracking_detail("Accepted at USPS origin facility", "in_transit", "arrived_at_facility",
                            "2026-11-20T10:00:00Z", city="PEORIA", zip_code="61602"),
        ],
        "public_url": "https://track.easypost.com/unit",
    }  # fmt: skip
    body = {
        "id": "evt_unit_1",
        "object": "Event",
        "description": "tracker.updated",
        "mode": "test",
        "created_at": "2026-11-22T07:15:01.000Z",
        "previous_attributes": {"status": "in_transit"},
        "pending_urls": ["https://hub.example/webhooks/carriers/easypost"],
        "completed_urls": [],
        "result": tracker,
    }
    body.update(changes)
    return body


def encode(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


# --- signature -----------------------------------------------------------------------------------


def test_known_answer_vector__verifies():
    assert verify_easypost_signature(KAT_SECRET, KAT_BODY, KAT_SIGNATURE)


def test_known_answer_vector__is_hmac_over_nfkd_key_and_body_without_newline():
    nfkd_key = unicodedata.normalize("NFKD", KAT_SECRET).encode("utf-8")
    assert SIGNATURE_PREFIX + hmac_hex(nfkd_key, KAT_BODY) == KAT_SIGNATURE
    assert len(KAT_BODY) == 3550 and not KAT_BODY.endswith(b"\n")


def test_known_answer_vector__an_nfc_keyed_signature_does_not_verify():
    nfc_key = unicodedata.normalize("NFC", KAT_SECRET).encode("utf-8")
    nfc_header = SIGNATURE_PREFIX + hmac_hex(nfc_key, KAT_BODY)
    assert nfc_header != KAT_SIGNATURE
    assert not verify_easypost_signature(KAT_SECRET, KAT_BODY, nfc_header)


def test_known_answer_vector__secret_typed_decomposed_verifies_too():
    decomposed = unicodedata.normalize("NFD", KAT_SECRET)
    assert decomposed != KAT_SECRET
    assert verify_easypost_signature(decomposed, KAT_BODY, KAT_SIGNATURE)


def test_known_answer_vector__body_with_the_trailing_newline_does_not_verify():
    assert not verify_easypost_signature(KAT_SECRET, KAT_BODY + b"\n", KAT_SIGNATURE)


def test_wrong_secret():
    assert not verify_easypost_signature("secret", KAT_BODY, KAT_SIGNATURE)


def test_altered_body():
    altered = KAT_BODY.replace(b'"status":"in_transit"', b'"status":"delivered"', 1)
    assert altered != KAT_BODY
    assert not verify_easypost_signature(KAT_SECRET, altered, KAT_SIGNATURE)


def test_uppercase_hex_and_surrounding_space_still_verify():
    digest = KAT_SIGNATURE.removeprefix(SIGNATURE_PREFIX)
    assert verify_easypost_signature(KAT_SECRET, KAT_BODY, f" {SIGNATURE_PREFIX}{digest.upper()} ")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        KAT_SIGNATURE.removeprefix(SIGNATURE_PREFIX),  # bare hex, no scheme
        KAT_SIGNATURE.replace("hmac-sha256-hex=", "sha256="),
        KAT_SIGNATURE.replace("hmac-sha256-hex=", "hmac-sha1-hex="),
        SIGNATURE_PREFIX,
        SIGNATURE_PREFIX + "zz" * 32,
        KAT_SIGNATURE[:-2],
        KAT_SIGNATURE + "00",
        KAT_SIGNATURE[:-1] + "é",
    ],
)
def test_missing_or_garbled_header(header):
    assert not verify_easypost_signature(KAT_SECRET, KAT_BODY, header)


def test_empty_secret_never_verifies():
    header = SIGNATURE_PREFIX + hmac_hex(b"", KAT_BODY)
    assert not verify_easypost_signature("", KAT_BODY, header)


def test_header_name():
    assert SIGNATURE_HEADER == "X-Hmac-Signature"


# --- parsing -------------------------------------------------------------------------------------


def test_parse__easyposts_own_event():
    event = parse_tracker_event(KAT_BODY)
    assert (event.event_id, event.description, event.mode) == ("evt_1", "tracker.updated", "production")
    assert (event.tracker_id, event.tracking_code, event.carrier) == ("trk_1", "1", "FedEx")
    assert (event.status, event.status_detail) == ("in_transit", "arrived_at_facility")
    assert event.est_delivery_date == datetime(2024, 8, 5, tzinfo=UTC)
    assert event.updated_at == datetime(2024, 8, 2, 19, 26, 51, tzinfo=UTC)
    assert event.created_at == datetime(2024, 8, 2, 19, 26, 52, tzinfo=UTC)
    assert event.last_detail_at == datetime(2024, 8, 2, 18, 50, tzinfo=UTC)
    assert event.last_detail_message == "Arrived at FedEx location"
    assert event.previous_status == "in_transit"
    assert event.tracking_status is TrackingStatus.IN_TRANSIT


def test_parse__keeps_no_locations_or_names():
    body = event_body()
    body["result"].update(status="delivered", status_detail="arrived_at_destination", signed_by="JANE ROE")
    event = parse_tracker_event(encode(body))
    names = {f.name for f in fields(TrackerEvent)}
    assert not names & {"signed_by", "tracking_location", "tracking_details", "carrier_detail", "result"}
    kept = repr(event)
    for private in ("JANE ROE", "SPRINGFIELD", "62701", "PEORIA"):
        assert private not in kept
    assert "ORLANDO" not in repr(parse_tracker_event(KAT_BODY))


def test_parse__newest_detail_by_datetime_not_list_order():
    event = parse_tracker_event(encode(event_body()))
    assert event.last_detail_at == datetime(2026, 11, 22, 7, 15, tzinfo=UTC)
    assert event.last_detail_message == "Out for delivery"
    assert event.tracking_status is TrackingStatus.OUT_FOR_DELIVERY


def test_parse__floats_nan_and_big_numbers_do_not_break_it():
    # Issue #15: NaN and numbers out of range are not JSON the hub accepts (a clean 400, never a crash);
    # long floats in fields the hub ignores still parse.
    raw = encode(event_body()).replace(b'"weight":17.6', b'"weight":1e400,"x":NaN,"y":614.4000000000001')
    with pytest.raises(InvalidInput, match="1e400 is out of range"):
        parse_tracker_event(raw)
    with pytest.raises(InvalidInput, match="NaN is not a JSON number"):
        parse_tracker_event(raw.replace(b"1e400", b"1"))
    long_float = raw.replace(b"1e400", b"1").replace(b"NaN", b"0.1")
    assert parse_tracker_event(long_float).tracking_code == "EZ2000000002"


def test_parse__tracker_created_without_previous_attributes_or_details():
    body = event_body(description="tracker.created")
    del body["previous_attributes"]
    body["result"].update(tracking_details=[], est_delivery_date=None, status="pre_transit")
    event = parse_tracker_event(encode(body))
    assert event.description == "tracker.created"
    assert (event.previous_status, event.est_delivery_date, event.last_detail_at) == (None, None, None)


def test_parse__datetimes_without_offset_are_utc_and_offsets_are_kept():
    body = event_body()
    body["result"]["est_delivery_date"] = "2026-11-23T00:00:00"
    body["result"]["tracking_details"][0]["datetime"] = "2026-11-22T09:15:00-05:00"
    event = parse_tracker_event(encode(body))
    assert event.est_delivery_date == datetime(2026, 11, 23, tzinfo=UTC)
    assert event.last_detail_at == datetime(2026, 11, 22, 14, 15, tzinfo=UTC)
    assert event.last_detail_at.utcoffset() == timedelta(hours=-5)
    assert event.last_detail_at.tzinfo == timezone(timedelta(hours=-5))


def _without(key: str) -> dict:
    body = event_body()
    del body[key]
    return body


def _tracker(**changes) -> dict:
    body = event_body()
    body["result"].update(changes)
    return body


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe{}",
        b"[]",
        encode(event_body(object="Shipment")),
        encode(_without("id")),
        encode(_without("description")),
        encode(event_body(description="shipment.invoice.created")),
        encode(event_body(result=None)),
        encode(event_body(result={"object": "Shipment", "id": "shp_1"})),
        encode(event_body(previous_attributes=["status"])),
        encode(_tracker(id=None)),
        encode(_tracker(tracking_code="")),
        encode(_tracker(status=None)),
        encode(_tracker(status=3)),
        encode(_tracker(est_delivery_date=20261123)),
        encode(_tracker(est_delivery_date="next tuesday")),
        encode(_tracker(tracking_details={"0": {}})),
        encode(_tracker(tracking_details=["Out for delivery"])),
        encode(_tracker(updated_at="2026-13-01T00:00:00Z")),
    ],
)
def test_parse__malformed_bodies_are_invalid_input(raw):
    with pytest.raises(InvalidInput):
        parse_tracker_event(raw)


# --- normalisation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "detail", "expected"),
    [
        ("pre_transit", "label_created", TrackingStatus.PRE_TRANSIT),
        ("in_transit", "arrived_at_facility", TrackingStatus.IN_TRANSIT),
        ("in_transit", "weather_delay", TrackingStatus.IN_TRANSIT),
        ("in_transit", None, TrackingStatus.IN_TRANSIT),
        ("in_transit", "delivery_exception", TrackingStatus.FAILED_ATTEMPT),
        ("out_for_delivery", "delivery_exception", TrackingStatus.FAILED_ATTEMPT),
        ("out_for_delivery", "delivery_attempted", TrackingStatus.FAILED_ATTEMPT),
        ("in_transit", "lost", TrackingStatus.EXCEPTION),
        ("out_for_delivery", "damaged", TrackingStatus.EXCEPTION),
        ("out_for_delivery", "out_for_delivery", TrackingStatus.OUT_FOR_DELIVERY),
        ("available_for_pickup", "arrived_at_pickup_location", TrackingStatus.AVAILABLE_FOR_PICKUP),
        ("delivered", "arrived_at_destination", TrackingStatus.DELIVERED),
        ("delivered", "delivery_exception", TrackingStatus.DELIVERED),
        ("return_to_sender", "return", TrackingStatus.RETURNED_TO_SENDER),
        ("failure", "delivery_exception", TrackingStatus.EXCEPTION),
        ("failure", None, TrackingStatus.EXCEPTION),
        ("cancelled", "cancelled", TrackingStatus.EXCEPTION),
        ("error", "unknown", TrackingStatus.EXCEPTION),
        ("unknown", "unknown", TrackingStatus.UNKNOWN),
        ("teleported", None, TrackingStatus.UNKNOWN),
        (None, None, TrackingStatus.UNKNOWN),
        (" Delivered ", None, TrackingStatus.DELIVERED),
    ],
)
def test_normalise(status, detail, expected):
    assert normalise(status, detail) is expected


def test_is_final__only_delivered_and_returned():
    assert {s for s in TrackingStatus if is_final(s)} == {
        TrackingStatus.DELIVERED,
        TrackingStatus.RETURNED_TO_SENDER,
    }
