"""The 3PL simulator against a real webhook endpoint: signatures, automatic and partial shipping, cancel,
recall, idempotent creates, error answers; and the hub's parsing of its events."""

import hashlib
import hmac
import json
import time
from functools import partial

import pytest
import requests

from chalicelib.domain.errors import InvalidInput
from chalicelib.integrations.threepl.webhook import (
    EVENT_ID_HEADER,
    EVENT_TYPES,
    SIGNATURE_HEADER,
    parse_threepl_event,
    verify_threepl_signature,
)
from local.simulators.threepl import ThreePLSimulator
from tests.fake_time import Clock
from tests.webhook_receiver import SignedReceiver

KEY = "3pl_test_key_unit"
SECRET = "whsec_3pl_unit_secret"
INVENTORY = {"WH-1": {"TEE-M": 10, "MUG": 5, "CAP": 0}, "WH-2": {"TEE-M": 3}}


Receiver = partial(SignedReceiver, "/webhooks/3pl/acme", SIGNATURE_HEADER)  # /webhooks/3pl/{provider}


@pytest.fixture
def make_sim(started, receiver):
    return started.maker(
        ThreePLSimulator,
        "acme",
        KEY,
        SECRET,
        webhook_url=receiver.url,
        time_scale=1e-3,  # ship after 2 ms, retries after 10 ms, 60 ms...
        inventory=INVENTORY,
        seed=3,
    )


def order_body(reference: str = "shp-1", lines=None, **fields) -> dict:
    body = {
        "reference": reference,
        "order_id": "ord-1",
        "warehouse": "WH-1",
        "shipping_method": "standard",
        "ship_to": {
            "name": "Ada Lovelace",
            "line1": "12 St James's Square",
            "line2": None,
            "city": "London",
            "region": None,
            "postal_code": "SW1Y 4JH",
            "country": "GB",
        },
        "lines": lines
        if lines is not None
        else [
            {"line_id": "l1", "sku": "TEE-M", "quantity": 3},
            {"line_id": "l2", "sku": "MUG", "quantity": 2},
        ],
        "promised_by": "2026-11-30T18:00:00Z",
    }
    body.update(fields)
    return body


def post(sim, path, body=None, *, key=KEY, idem=None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if idem:
        headers["Idempotency-Key"] = idem
    return requests.post(f"{sim.url}{path}", json=body, headers=headers, timeout=20)


def create(sim, body=None, *, idem=None) -> dict:
    answer = post(sim, "/v1/fulfillment_orders", body or order_body(), idem=idem)
    assert answer.status_code == 201, answer.text
    return answer.json()


def types(received) -> list[str]:
    return [r.event["type"] for r in received]


def test_webhooks__signed_verifiable_and_parsed_accepted_then_shipped(make_sim, receiver):
    sim = make_sim()
    fo = create(sim)
    accepted, shipped = receiver.wait_for(2)
    assert sim.flush(20)
    now = time.time()
    for delivery in (accepted, shipped):
        assert verify_threepl_signature(SECRET, delivery.body, delivery.signature, now=now)
        assert not verify_threepl_signature("whsec_other", delivery.body, delivery.signature, now=now)
        assert not verify_threepl_signature(SECRET, delivery.body, delivery.signature, now=now + 301)
        assert not verify_threepl_signature(SECRET, delivery.body + b" ", delivery.signature, now=now)
        assert delivery.headers[EVENT_ID_HEADER] == delivery.event["id"]
    first, second = parse_threepl_event(accepted.body), parse_threepl_event(shipped.body)
    assert (first.type, first.status, first.shipment) == ("fulfillment_order.accepted", "accepted", None)
    assert (first.fulfillment_order_id, first.reference, first.order_id) == (fo["id"], "shp-1", "ord-1")
    assert (second.type, second.status) == ("shipment.created", "shipped")
    assert second.shipment is not None
    assert sorted(second.shipment.lines) == [("l1", "TEE-M", 3), ("l2", "MUG", 2)]
    (parcel,) = second.shipment.parcels
    assert parcel.carrier in {"USPS", "UPS", "FedEx", "DHL"}
    assert parcel.tracking_code.startswith("EZ4") and len(parcel.tracking_code) == 12
    assert sim.fulfillment_order(fo["id"])["status"] == "shipped"
    assert (sim.stock("WH-1", "TEE-M"), sim.stock("WH-1", "MUG")) == (7, 3)
    assert "ship_to" not in accepted.event["data"]["fulfillment_order"]  # addresses stay at the 3PL


def test_split__two_partial_shipments_whose_lines_add_up(make_sim, receiver):
    sim = make_sim(split_rate=1.0, parcels_per_shipment=(2, 2))
    fo = create(sim)
    received = receiver.wait_for(3)
    assert types(received) == ["fulfillment_order.accepted", "shipment.created", "shipment.created"]
    first, second = (parse_threepl_event(r.body) for r in received[1:])
    assert (first.status, second.status) == ("partially_shipped", "shipped")
    shipped: dict[str, int] = {}
    codes = []
    for event in (first, second):
        assert event.shipment is not None and len(event.shipment.parcels) == 2
        for line in event.shipment.lines:
            shipped[line.line_id] = shipped.get(line.line_id, 0) + line.quantity
        codes += [p.tracking_code for p in event.shipment.parcels]
    assert shipped == {"l1": 3, "l2": 2}
    assert len(set(codes)) == 4
    assert [s["id"] for s in sim.fulfillment_order(fo["id"])["shipments"]] == [
        first.shipment.id,
        second.shipment.id,
    ]


def test_backordered_lines__wait_for_restock(make_sim, receiver):
    clock = Clock()
    sim = make_sim(clock=clock)
    lines = [{"line_id": "l1", "sku": "TEE-M", "quantity": 1}, {"line_id": "l2", "sku": "CAP", "quantity": 2}]
    fo = create(sim, order_body(lines=lines))
    clock.now += 0.01  # past the ship delay (2 s x time_scale)
    assert sim.settle()
    receiver.wait_for(2)
    partial = parse_threepl_event(receiver.received[1].body)
    assert partial.status == "partially_shipped"
    assert partial.shipment is not None and list(partial.shipment.lines) == [("l1", "TEE-M", 1)]
    stock = requests.get(
        f"{sim.url}/v1/inventory",
        params={"sku": "CAP", "warehouse": "WH-1"},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=20,
    ).json()["items"]
    assert stock[0]["available"] == 0 and stock[0]["expected_at"].endswith("Z")
    for _ in range(5):  # several ship delays pass, one at a time: nothing more ships without stock
        clock.now += 0.01
        assert sim.settle()  # the warehouse handled all that came due
    assert sim.flush(20)  # and its webhooks went
    assert len(sim.events_of("shipment.created")) == 1 and len(receiver.received) == 2
    sim.restock("WH-1", "CAP", 5)
    clock.now += 0.01
    assert sim.settle()
    rest = parse_threepl_event(receiver.wait_for(3)[2].body)
    assert rest.status == "shipped" and rest.shipment is not None
    assert list(rest.shipment.lines) == [("l2", "CAP", 2)]
    assert sim.stock("WH-1", "CAP") == 3 and sim.fulfillment_order(fo["id"])["status"] == "shipped"


def test_hold__keeps_an_order_until_released(make_sim, receiver):
    clock = Clock()
    sim = make_sim(ship_after_s=100, clock=clock)  # 100 ms on the simulator's clock, however slow the test
    fo = create(sim)
    sim.hold(fo["id"])
    clock.now += 0.15
    assert sim.settle()  # its shipping task came due and found it held
    assert sim.fulfillment_order(fo["id"])["status"] == "accepted"
    sim.release(fo["id"])
    clock.now += 0.15
    assert sim.settle()
    assert sim.fulfillment_order(fo["id"])["status"] == "shipped"
    assert types(receiver.wait_for(2)) == ["fulfillment_order.accepted", "shipment.created"]


def test_webhooks__duplicates_carry_the_same_event_id(make_sim, receiver):
    sim = make_sim(duplicate_rate=1.0, auto_ship=False)
    create(sim)
    one, two = receiver.wait_for(2)
    assert sim.flush(20)
    assert one.event["id"] == two.event["id"] and one.headers[EVENT_ID_HEADER] == two.headers[EVENT_ID_HEADER]
    assert len(sim.events_of("fulfillment_order.accepted")) == 1


def test_webhooks__retried_after_a_500_with_the_same_body_and_a_fresh_signature(make_sim, receiver):
    receiver.fail_first = 2
    sim = make_sim(auto_ship=False)
    create(sim)
    for delivery in receiver.redelivered(sim):
        assert verify_threepl_signature(SECRET, delivery.body, delivery.signature, now=time.time())


def test_webhooks__reorder_lets_a_newer_event_overtake(make_sim, receiver):
    sim = make_sim(auto_ship=False, time_scale=1.0)  # held back for up to 30 s: only overtaking frees it
    sim.reorder_rate = 1.0
    fo = create(sim)
    sim.reorder_rate = 0.0
    sim.ship_now(fo["id"])
    assert types(receiver.wait_for(2)) == ["shipment.created", "fulfillment_order.accepted"]


def test_webhooks__several_v1_while_the_secret_rotates(make_sim, receiver):
    sim = make_sim(auto_ship=False)
    sim.rotate_webhook_secret("whsec_new")
    create(sim)
    (delivery,) = receiver.wait_for(1)
    assert delivery.signature.count("v1=") == 2
    for secret in ("whsec_new", SECRET):
        assert verify_threepl_signature(secret, delivery.body, delivery.signature, now=time.time())


def test_cancel__before_shipping_cancels_everything_idempotently(make_sim, receiver):
    sim = make_sim(auto_ship=False)
    fo = create(sim)
    first = post(sim, f"/v1/fulfillment_orders/{fo['id']}/cancel")
    again = post(sim, f"/v1/fulfillment_orders/{fo['id']}/cancel")
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["status"] == again.json()["status"] == "cancelled"
    assert [line["cancelled_quantity"] for line in first.json()["lines"]] == [3, 2]
    received = receiver.wait_for(2)
    assert types(received) == ["fulfillment_order.accepted", "fulfillment_order.cancelled"]
    assert len(sim.events_of("fulfillment_order.cancelled")) == 1
    with pytest.raises(ValueError, match="nothing to ship"):
        sim.ship_now(fo["id"])


def test_cancel__after_a_partial_shipment_keeps_the_shipped_units(make_sim, receiver):
    sim = make_sim(auto_ship=False)
    fo = create(sim)
    sim.ship_now(fo["id"], {"l1": 1})
    answer = post(sim, f"/v1/fulfillment_orders/{fo['id']}/cancel")
    assert answer.status_code == 200 and answer.json()["status"] == "partially_cancelled"
    cancelled = parse_threepl_event(receiver.wait_for(3)[2].body)
    assert cancelled.type == "fulfillment_order.cancelled" and cancelled.status == "partially_cancelled"
    assert [(x.line_id, x.shipped_quantity, x.cancelled_quantity) for x in cancelled.lines] == [
        ("l1", 1, 2),
        ("l2", 0, 2),
    ]


def test_cancel__after_everything_shipped_is_409(make_sim):
    sim = make_sim(auto_ship=False)
    fo = create(sim)
    sim.ship_now(fo["id"], ["l1"])
    sim.ship_now(fo["id"], ["l2"])
    answer = post(sim, f"/v1/fulfillment_orders/{fo['id']}/cancel")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "already_shipped"
    assert sim.fulfillment_order(fo["id"])["status"] == "shipped"


def test_recall__only_before_the_handover_to_the_carrier(make_sim):
    # The parcels wait 1000 s for their carrier: the recall is early however slow the machine.
    sim = make_sim(auto_ship=False, handover_delay_s=1_000_000, parcels_per_shipment=(2, 2))
    early = create(sim, order_body("shp-early"))
    shipment = sim.ship_now(early["id"])
    first = post(sim, f"/v1/fulfillment_orders/{early['id']}/recall")
    again = post(sim, f"/v1/fulfillment_orders/{early['id']}/recall")
    codes = [p["tracking_code"] for p in shipment["parcels"]]
    assert first.status_code == again.status_code == 200
    assert first.json()["recalled"] == again.json()["recalled"] == codes
    assert first.json()["fulfillment_order"]["status"] == "cancelled"
    assert sim.stock("WH-1", "TEE-M") == 10  # the goods went back on the shelf
    sim.handover_delay_s = 0
    late = create(sim, order_body("shp-late"))
    sim.ship_now(late["id"])
    refused = post(sim, f"/v1/fulfillment_orders/{late['id']}/recall")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "handed_to_carrier"
    parcels = sim.fulfillment_order(late["id"])["shipments"][0]["parcels"]
    assert {p["status"] for p in parcels} == {"handed_to_carrier"}


def test_create__idempotent_by_key_and_by_reference(make_sim, receiver):
    sim = make_sim(auto_ship=False)
    first = post(sim, "/v1/fulfillment_orders", order_body(), idem="k-1")
    replay = post(sim, "/v1/fulfillment_orders", order_body(), idem="k-1")
    by_reference = post(sim, "/v1/fulfillment_orders", order_body())
    conflict = post(sim, "/v1/fulfillment_orders", order_body(shipping_method="express"), idem="k-1")
    reused_reference = post(sim, "/v1/fulfillment_orders", order_body(order_id="ord-2"), idem="k-2")
    assert (first.status_code, replay.status_code, by_reference.status_code) == (201, 200, 200)
    assert first.json()["id"] == replay.json()["id"] == by_reference.json()["id"]
    assert replay.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "idempotency_conflict")
    assert (reused_reference.status_code, reused_reference.json()["error"]["field"]) == (409, "reference")
    assert len(sim.events_of("fulfillment_order.accepted")) == 1
    assert sim.by_reference("shp-1")["id"] == first.json()["id"] and sim.by_reference("shp-2") is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reference": ""}, "reference"),
        ({"warehouse": "WH-9"}, "warehouse"),
        ({"shipping_method": "overnight"}, "shipping_method"),
        ({"ship_to": {"name": "Ada", "line1": "x", "city": "y", "postal_code": "z"}}, "ship_to.country"),
        ({"lines": []}, "lines"),
        ({"lines": [{"line_id": "l1", "sku": "TEE-M", "quantity": 0}]}, "lines[0].quantity"),
        ({"lines": [{"line_id": "l1", "sku": "TEE-M", "quantity": True}]}, "lines[0].quantity"),
        ({"lines": [{"line_id": "l1", "sku": "NOPE", "quantity": 1}]}, "lines[0].sku"),
        ({"promised_by": "next tuesday"}, "promised_by"),
    ],
)
def test_create__invalid_requests_answer_422_naming_the_field(make_sim, change, field):
    sim = make_sim(auto_ship=False)
    answer = post(sim, "/v1/fulfillment_orders", order_body(**change), idem="k-bad")
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_request" and answer.json()["error"]["field"] == field
    assert sim.by_reference("shp-1") is None and sim.events == []


def test_api__auth_not_found_and_injected_failures(make_sim):
    sim = make_sim(auto_ship=False)
    for key in (None, "wrong"):
        answer = post(sim, "/v1/fulfillment_orders", order_body(), key=key)
        assert (answer.status_code, answer.json()["error"]["code"]) == (401, "unauthorized")
    missing = requests.get(
        f"{sim.url}/v1/fulfillment_orders/fo_nope", headers={"Authorization": f"Bearer {KEY}"}, timeout=20
    )
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    sim.fail_next(1, 429, retry_after=7)
    throttled = post(sim, "/v1/fulfillment_orders", order_body())
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "7")
    assert sim.by_reference("shp-1") is None  # injected failures execute nothing
    assert post(sim, "/v1/fulfillment_orders", order_body()).status_code == 201


def test_inventory__per_warehouse_with_expected_dates_for_backorders(make_sim):
    sim = make_sim(auto_ship=False)
    answer = requests.get(
        f"{sim.url}/v1/inventory",
        params=[("sku", "TEE-M"), ("sku", "CAP"), ("sku", "NOPE")],
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=20,
    )
    items = {(i["sku"], i["warehouse"]): (i["available"], i["expected_at"]) for i in answer.json()["items"]}
    assert set(items) == {("TEE-M", "WH-1"), ("TEE-M", "WH-2"), ("CAP", "WH-1")}
    assert items["TEE-M", "WH-2"] == (3, None)
    assert items["CAP", "WH-1"][0] == 0 and items["CAP", "WH-1"][1] is not None


def test_tracking_codes__pluggable_for_carrier_scenarios(make_sim):
    seen = []

    def stuck_in_pre_transit(carrier: str, n: int) -> str:
        seen.append((carrier, n))
        return f"EZ1{n:09d}"

    sim = make_sim(auto_ship=False, parcels_per_shipment=(3, 3), tracking_code_factory=stuck_in_pre_transit)
    fo = create(sim)
    shipment = sim.ship_now(fo["id"])
    assert [p["tracking_code"] for p in shipment["parcels"]] == [
        "EZ1000000001",
        "EZ1000000002",
        "EZ1000000003",
    ]
    assert [n for _, n in seen] == [1, 2, 3]
    assert sum(line["quantity"] for p in shipment["parcels"] for line in p["lines"]) == 5


def test_no_webhook_url__events_still_recorded():
    clock = Clock()
    sim = ThreePLSimulator("acme", KEY, SECRET, time_scale=1e-3, clock=clock).start()
    try:
        fo = create(
            sim, order_body(lines=[{"line_id": "l1", "sku": "ANY-SKU", "quantity": 1}], warehouse="WH-EAST")
        )
        clock.now += 0.01  # past the ship delay
        assert sim.settle()
        assert sim.fulfillment_order(fo["id"])["status"] == "shipped"
        assert [e["type"] for e in sim.events] == ["fulfillment_order.accepted", "shipment.created"]
        assert sim.flush(20)
    finally:
        sim.stop()


# --- the hub's side: verification and parsing edge cases ----------------------------------------


def _event(**changes) -> dict:
    shipment = {
        "id": "shp_1",
        "shipped_at": "2026-11-23T12:00:00Z",
        "lines": [{"line_id": "l1", "sku": "TEE-M", "quantity": 2}],
        "parcels": [
            {
                "carrier": "UPS",
                "tracking_code": "EZ4000000001",
                "lines": [{"line_id": "l1", "sku": "TEE-M", "quantity": 1}],
            },
            {
                "carrier": "DHL",
                "tracking_code": "EZ4000000002",
                "lines": [{"line_id": "l1", "sku": "TEE-M", "quantity": 1}],
            },
        ],
    }
    order = {
        "id": "fo_1",
        "reference": "shp-1",
        "order_id": "ord-1",
        "status": "shipped",
        "lines": [{"line_id": "l1", "sku": "TEE-M", "quantity": 2, "shipped_quantity": 2}],
    }
    event = {
        "id": "evt_1",
        "type": "shipment.created",
        "created": 1_790_000_000,
        "data": {"fulfillment_order": order, "shipment": shipment},
    }
    for path, value in changes.items():
        node = event
        *parents, last = path.split("__")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return event


def test_parse__a_well_formed_event():
    event = parse_threepl_event(json.dumps(_event()).encode())
    assert event.type in EVENT_TYPES and event.shipment is not None
    assert next((p.carrier, p.tracking_code, p.lines) for p in event.shipment.parcels) == (
        "UPS",
        "EZ4000000001",
        (("l1", "TEE-M", 1),),
    )
    assert event.lines[0].cancelled_quantity == 0 and event.shipment.shipped_at.tzinfo is not None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps(_event(id="")).encode(), "id is missing"),
        (json.dumps(_event(created="yesterday")).encode(), "created"),
        (json.dumps(_event(data=None)).encode(), "data is missing"),
        (json.dumps(_event(data__fulfillment_order__reference=7)).encode(), "reference"),
        (json.dumps(_event(data__shipment=None)).encode(), "without data.shipment"),
        (json.dumps(_event(data__shipment__shipped_at="2026-11-23 noon")).encode(), "shipped_at"),
        (json.dumps(_event(data__shipment__parcels=[])).encode(), "parcels is missing"),
        (json.dumps(_event(data__shipment__lines__0__quantity=3)).encode(), "do not hold exactly"),
        (json.dumps(_event(data__fulfillment_order__lines__0__shipped_quantity=5)).encode(), "more units"),
    ],
)
def test_parse__malformed_bodies_raise_invalid_input(body, message):
    with pytest.raises(InvalidInput, match=message):
        parse_threepl_event(body)


def test_verify__refuses_missing_garbled_and_far_future_headers():
    body = b'{"id":"evt_1"}'
    now = 1_790_000_000
    good = hmac.new(SECRET.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    assert verify_threepl_signature(SECRET, body, f"t={now},v1={good}", now=now)
    assert verify_threepl_signature(SECRET, body, f"t={now},v1=00,v1={good}", now=now + 299)
    assert not verify_threepl_signature(SECRET, body, None, now=now)
    assert not verify_threepl_signature(SECRET, body, f"v1={good}", now=now)
    assert not verify_threepl_signature(SECRET, body, f"t=abc,v1={good}", now=now)
    assert not verify_threepl_signature(SECRET, body, f"t={now},v0={good}", now=now)
    assert not verify_threepl_signature(SECRET, body, f"t={now},v1={good.upper()}", now=now)
    assert not verify_threepl_signature(SECRET, body, f"t={now},v1={good}", now=now - 301)
