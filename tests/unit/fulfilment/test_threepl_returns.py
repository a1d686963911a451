"""The 3PL returns desk: expected returns over HTTP, signed receipt and inspection webhooks the hub verifies
and parses, stock put back, holds and resends; the hub's client (expect_return) and its event parser."""

from __future__ import annotations

import copy
import json

import pytest
import requests

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.returns.model import Outcome
from chalicelib.domain.webhooks import WebhookRequest
from chalicelib.integrations.threepl.client import ThreePLClient, ThreePLNotFound, ThreePLRejected
from chalicelib.integrations.threepl.returns import return_event
from chalicelib.integrations.threepl.webhook import (
    THREEPL_WEBHOOK,
    verify_threepl_signature,
)
from tests.fake_time import Clock

# The 3PL simulator as its own tests start it (webhooks signed to `receiver`, their inventory, `post`).
from tests.unit.fulfilment.test_threepl_simulator import KEY, SECRET, Receiver, make_sim, post  # noqa: F401


@pytest.fixture
def sim(request):
    """The 3PL simulator as its own tests start it, inspecting only when a test says so."""
    return request.getfixturevalue("make_sim")(auto_inspect=False)


def rma(return_id: str = "ord-1-r1", lines=None, **fields) -> dict:
    body = {
        "return_id": return_id,
        "order_id": "ord-1",
        "warehouse": "WH-1",
        "tracking_number": "EZ4000000123",
        "lines": lines
        if lines is not None
        else [
            {"line_id": "l1", "sku": "TEE-M", "quantity": 2},
            {"line_id": "l2", "sku": "MUG", "quantity": 1},
        ],
    }
    return {**body, **fields}


def get(sim, path) -> requests.Response:
    return requests.get(f"{sim.url}{path}", headers={"Authorization": f"Bearer {KEY}"}, timeout=20)


def available(sim, sku: str, warehouse: str = "WH-1") -> int:
    items = get(sim, f"/v1/inventory?sku={sku}&warehouse={warehouse}").json()["items"]
    return items[0]["available"] if items else 0


def events(received) -> list[dict]:
    return [json.loads(r.body) for r in received]


# --- announcing a return -----------------------------------------------------------------------------


def test_an_expected_return_is_created_once_per_key_and_readable_by_either_id(sim):
    first = post(sim, "/v1/returns", rma(), idem="ord-1-r1:rma")
    again = post(sim, "/v1/returns", rma(), idem="ord-1-r1:rma")
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    created = first.json()
    assert created["status"] == "expected" and created["id"].startswith("rma_")
    assert [(line["line_id"], line["received_quantity"]) for line in created["lines"]] == [
        ("l1", 0),
        ("l2", 0),
    ]
    assert (
        get(sim, f"/v1/returns/{created['id']}").json() == get(sim, "/v1/returns/ord-1-r1").json() == created
    )


def test_the_same_return_id_announced_with_another_body_is_a_conflict(sim):
    post(sim, "/v1/returns", rma(), idem="k1")
    other = post(sim, "/v1/returns", rma(tracking_number="EZ4000000999"), idem="k2")
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (rma(lines=[{"line_id": "l1", "sku": "NOPE", "quantity": 1}]), "lines[0].sku"),
        (rma(lines=[{"line_id": "l1", "sku": "TEE-M", "quantity": 0}]), "lines[0].quantity"),
        (rma(lines=[{"line_id": "l1", "sku": "TEE-M", "quantity": 1.5}]), "lines[0].quantity"),
        (rma(lines=[]), "lines"),
        (rma(return_id=""), "return_id"),
        (rma(warehouse="WH-9"), "warehouse"),
        (rma(tracking_number=7), "tracking_number"),
    ],
)
def test_a_malformed_return_or_an_unknown_sku_is_a_422_naming_the_field_and_nothing_is_kept(sim, body, field):
    answer = post(sim, "/v1/returns", body, idem="bad")
    assert answer.status_code == 422 and answer.json()["error"]["field"] == field
    assert post(sim, "/v1/returns", rma(), idem="bad").status_code == 201  # the key was not remembered


def test_an_unknown_return_is_a_404_and_no_key_is_a_401(sim):
    assert get(sim, "/v1/returns/rma_nope").status_code == 404
    assert post(sim, "/v1/returns", rma(), key=None).status_code == 401


# --- receiving and inspection ------------------------------------------------------------------------


def test_a_partial_receipt_then_the_rest_each_send_a_signed_event_the_hub_verifies_and_reads(sim, receiver):
    post(sim, "/v1/returns", rma(), idem="k")
    sim.returns.receive("ord-1-r1", {"l1": 1})
    sim.returns.receive("ord-1-r1")
    received = receiver.wait_for(2)
    assert sim.flush(20)
    for delivery in received:
        timestamp = int(delivery.signature.split(",")[0][2:])
        assert verify_threepl_signature(SECRET, delivery.body, delivery.signature, now=timestamp)
        assert not verify_threepl_signature("whsec_other", delivery.body, delivery.signature, now=timestamp)
    parsed = sorted((return_event(e, "acme") for e in events(received)), key=lambda e: len(e.units))
    assert {e.kind for e in parsed} == {"received"} and {e.return_id for e in parsed} == {"ord-1-r1"}
    assert [(u.line_id, u.quantity) for u in parsed[0].units] == [("l1", 1)]
    assert sorted((u.line_id, u.quantity) for u in parsed[1].units) == [("l1", 1), ("l2", 1)]
    assert sim.returns.snapshot("ord-1-r1")["status"] == "received"
    with pytest.raises(ValueError, match="nothing left"):
        sim.returns.receive("ord-1-r1")


def test_inspection_restocks_sellable_units_and_stocks_seconds_under_the_b_sku(sim, receiver):
    post(sim, "/v1/returns", rma(), idem="k")
    sim.returns.receive("ord-1-r1")
    before = available(sim, "TEE-M")
    sim.returns.inspect("ord-1-r1", {"l1": {"restock": 1, "second_quality": 1}, "l2": "scrap"})
    (inspected,) = [e for e in events(receiver.wait_for(2)) if e["type"] == "return.inspected"]
    event = return_event(inspected, "acme")
    assert sorted((u.sku, u.quantity, u.outcome) for u in event.units) == [
        ("MUG", 1, Outcome.SCRAP), ("TEE-M", 1, Outcome.RESTOCK), ("TEE-M", 1, Outcome.SECOND_QUALITY)
    ]  # fmt: skip
    assert available(sim, "TEE-M") == before + 1 and available(sim, "TEE-M-B") == 1
    assert available(sim, "MUG") == 5 and sim.returns.snapshot("ord-1-r1")["status"] == "inspected"


def test_received_units_are_inspected_by_themselves_unless_the_return_is_held(request, receiver):
    clock = Clock()
    sim = request.getfixturevalue("make_sim")(clock=clock, inspect_after_s=60)
    sim.returns.hold("ord-1-r2")  # before the hub announces it
    post(sim, "/v1/returns", rma(), idem="k1")
    post(sim, "/v1/returns", rma("ord-1-r2"), idem="k2")
    sim.returns.set_outcomes("ord-1-r1", {"l2": "repair"})
    sim.returns.receive("ord-1-r1")
    sim.returns.receive("ord-1-r2")
    clock.now += 0.1
    assert sim.settle()
    assert sim.returns.snapshot("ord-1-r1")["status"] == "inspected"
    assert sim.returns.snapshot("ord-1-r2")["status"] == "received"
    assert sim.returns.snapshot("ord-1-r1")["lines"][1]["inspected"] == {"repair": 1}
    sim.returns.release("ord-1-r2")
    clock.now += 0.1
    assert sim.settle() and sim.returns.snapshot("ord-1-r2")["status"] == "inspected"
    assert len(receiver.wait_for(4)) >= 4


def test_a_resent_event_is_the_same_event_again(sim, receiver):
    post(sim, "/v1/returns", rma(), idem="k")
    original = sim.returns.receive("ord-1-r1")
    again = sim.returns.resend("ord-1-r1", "return.received")
    first, second = events(receiver.wait_for(2))
    assert first == second and again["id"] == original["id"] == first["id"]
    with pytest.raises(ValueError):
        sim.returns.resend("ord-1-r1", "return.inspected")


def test_the_control_endpoints_drive_the_desk_over_http(sim, receiver):
    post(sim, "/v1/returns", rma(), idem="k")
    control = f"{sim.url}/_sim/returns/ord-1-r1"
    assert requests.post(f"{control}/hold", timeout=20).json()["status"] == "expected"
    received = requests.post(f"{control}/receive", json={"lines": {"l1": 2}}, timeout=20)
    assert received.status_code == 200 and received.json()["type"] == "return.received"
    inspected = requests.post(f"{control}/inspect", json={"lines": {"l1": "restock"}}, timeout=20)
    assert inspected.json()["data"]["units"] == [
        {"line_id": "l1", "sku": "TEE-M", "quantity": 2, "outcome": "restock"}
    ]
    assert (
        requests.post(f"{control}/resend", json={"type": "return.inspected"}, timeout=20).status_code == 200
    )
    assert (
        requests.post(f"{control}/inspect", json={"lines": {"l2": "restock"}}, timeout=20).status_code == 409
    )
    assert requests.post(f"{sim.url}/_sim/returns/nope/receive", timeout=20).status_code == 404
    assert len(receiver.wait_for(3)) == 3


# --- the hub's client --------------------------------------------------------------------------------


def test_the_client_announces_a_return_once_per_key(sim):
    client = ThreePLClient(sim.url, KEY, sleep=lambda _s: None)
    first = client.expect_return(rma(tracking_number=None), idempotency_key="ord-1-r1:rma")
    again = client.expect_return(rma(tracking_number=None), idempotency_key="ord-1-r1:rma")
    assert again == first and first["tracking_number"] is None
    assert client.get_return("ord-1-r1")["id"] == first["id"]
    with pytest.raises(ThreePLNotFound):
        client.get_return("ord-9-r1")


def test_the_client_retries_a_transient_failure_without_a_second_return(sim):
    client = ThreePLClient(sim.url, KEY, sleep=lambda _s: None)
    sim.fail_next(1, 503)
    client.expect_return(rma(), idempotency_key="k")
    assert [status for method, path, _, status in sim.requests if path == "/v1/returns"] == [503, 201]


def test_the_client_surfaces_an_unknown_sku_as_a_refusal_naming_the_field(sim):
    client = ThreePLClient(sim.url, KEY, sleep=lambda _s: None)
    with pytest.raises(ThreePLRejected) as refused:
        client.expect_return(
            rma(lines=[{"line_id": "l1", "sku": "NOPE", "quantity": 1}]), idempotency_key="k"
        )
    assert refused.value.status == 422 and refused.value.field == "lines[0].sku"


# --- the hub's parser --------------------------------------------------------------------------------

GOOD = {
    "id": "evt_1",
    "type": "return.inspected",
    "created": 1_790_000_000,
    "data": {
        "return": {"id": "rma_1", "return_id": "ord-1-r1", "order_id": "ord-1", "warehouse": "WH-1"},
        "units": [{"line_id": "l1", "sku": "TEE-M", "quantity": 2, "outcome": "restock"}],
    },
}


def changed(path: str, value) -> dict:
    body = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key = int(last) if last.isdigit() else last
    if value is KeyError:
        del node[key]
    else:
        node[key] = value
    return body


def test_a_good_event_reads_as_the_domains_return_event():
    event = return_event(GOOD, "acme")
    assert (event.event_id, event.provider, event.kind, event.return_id) == (
        "evt_1",
        "acme",
        "inspected",
        "ord-1-r1",
    )
    assert event.units[0].outcome is Outcome.RESTOCK and event.at.year == 2026


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (changed("data.return.return_id", KeyError), "data.return.return_id"),
        (changed("data.units.0.quantity", 0), "quantity"),
        (changed("data.units.0.quantity", -1), "quantity"),
        (changed("data.units.0.quantity", 1.5), "quantity"),
        (changed("data.units.0.quantity", "2"), "quantity"),
        (changed("data.units.0.quantity", True), "quantity"),
        (changed("data.units.0.outcome", "resell"), "outcome"),
        (changed("data.units.0.outcome", KeyError), "outcome"),
        (changed("data.units", []), "data.units"),
        (changed("data.units.0", "l1"), "not an object"),
        (changed("data.return", None), "data.return"),
        (changed("type", "return.lost"), "type"),
        (changed("id", KeyError), "id"),
        (changed("created", "yesterday"), "created"),
        ("not json", "not a JSON object"),
    ],
)
def test_a_malformed_event_is_refused_naming_what_is_wrong(body, message):
    with pytest.raises(InvalidInput, match=message):
        return_event(body, "acme")


def test_optional_fields_may_be_missing_or_odd_without_a_crash():
    body = changed("data.units", [{"line_id": "l1", "quantity": 1, "sku": 42}])
    body["type"] = "return.received"
    body["data"]["return"] = {"return_id": "ord-1-r1"}
    event = return_event(body, "acme")
    assert event.units[0].sku is None and event.units[0].line_id == "l1" and event.units[0].outcome is None
    with pytest.raises(InvalidInput, match="neither a sku nor a line_id"):
        return_event(changed("data.units", [{"quantity": 1}]), "acme")


def test_the_3pl_webhook_accepts_return_events_grouped_by_their_order():
    event = THREEPL_WEBHOOK.read(
        "acme", WebhookRequest.of(json.dumps(GOOD).encode(), {}, {"provider": "acme"})
    )
    assert (event.topic, event.delivery_id, event.external_id) == (
        "return.inspected",
        "3pl:acme:evt_1",
        "ord-1",
    )
    assert THREEPL_WEBHOOK.handles("return.received") and THREEPL_WEBHOOK.handles("return.inspected")
    with pytest.raises(InvalidInput, match="quantity"):
        bad = changed("data.units.0.quantity", 0)
        THREEPL_WEBHOOK.read("acme", WebhookRequest.of(json.dumps(bad).encode(), {}, {}))


# --- through the hub: the webhook route and the queue ------------------------------------------------


def test_a_signed_return_event_is_accepted_at_the_3pl_webhook_and_queued_in_its_orders_group(client, svc):
    from tests.unit.test_webhook_pipeline import connect, threepl

    connect(client, "3pl")
    assert threepl(client, svc, GOOD) == (200, {"message": "accepted"})
    status, answer = threepl(client, svc, changed("data.units.0.outcome", "resell"))
    assert status == 400 and "outcome" in answer["message"]
    [sent] = svc.ingest_queue.sent
    assert sent["body"]["delivery_id"] == "3pl:acme:evt_1" and sent["group_id"] == "3pl:acme:ord-1"
    assert sent["body"]["topic"] == "return.inspected"


def test_a_queued_return_event_goes_to_the_returns_stage_with_its_provider_once(svc, monkeypatch):
    from datetime import UTC, datetime

    from chalicelib.domain.delivery import Delivery
    from chalicelib.entrypoints.queue_records import apply_fulfilment
    from tests.fakes_fulfilment import InMemoryFulfilmentStore

    applied: list = []

    def apply_return_event(event, *, orders, store, workflow, now):
        applied.append((event, store))
        return {"order_id": "ord-1", "return_id": event.return_id, "outcome": "inspected"}

    # The returns stage's use case, stood in for by a recorder.
    from chalicelib.domain.returns import receiving

    monkeypatch.setattr(receiving, "apply_return_event", apply_return_event)
    svc.fulfilment_store = InMemoryFulfilmentStore()
    delivery = Delivery("3pl:acme:evt_1", "3pl", "acme", "return.inspected", datetime.now(UTC), GOOD)
    apply_fulfilment(delivery, svc)
    apply_fulfilment(delivery, svc)  # a redelivery: recorded as applied, not applied again
    [(event, store)] = applied
    assert (event.provider, event.kind, event.return_id) == ("acme", "inspected", "ord-1-r1")
    assert store is svc.fulfilment_store and svc.orders.has_delivery("3pl:acme:evt_1")
