"""ThreePLClient against the real 3PL simulator: answers, bounded retries and the error tree."""

import socket

import pytest

from chalicelib.domain.errors import HubError, InvalidInput, NotFound
from chalicelib.integrations.threepl.client import (
    AlreadyShipped,
    HandedToCarrier,
    ThreePLClient,
    ThreePLError,
    ThreePLNotFound,
    ThreePLRejected,
    ThreePLUnavailable,
)
from local.simulators.threepl import ThreePLSimulator

KEY = "3pl_test_key_client"
INVENTORY = {"WH-1": {"TEE-M": 10, "MUG": 5, "CAP": 0}}


@pytest.fixture
def sim():
    simulator = ThreePLSimulator(
        "acme", KEY, "whsec_unused", inventory=INVENTORY, auto_ship=False, time_scale=1e-3, seed=1
    ).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sim, sleeps) -> ThreePLClient:
    return ThreePLClient(sim.url, KEY, sleep=sleeps.append, jitter=lambda: 0.0)


def request(reference: str = "shp-1", **fields) -> dict:
    body = {
        "reference": reference,
        "order_id": "ord-1",
        "warehouse": "WH-1",
        "shipping_method": "express",
        "ship_to": {
            "name": "Grace Hopper",
            "line1": "1 Navy Way",
            "line2": "",
            "city": "Arlington",
            "region": "VA",
            "postal_code": "22202",
            "country": "US",
        },
        "lines": [
            {"line_id": "l1", "sku": "TEE-M", "quantity": 2},
            {"line_id": "l2", "sku": "MUG", "quantity": 1},
        ],
        "promised_by": None,
    }
    body.update(fields)
    return body


def posts(sim) -> list[int]:
    return [status for method, _, _, status in sim.requests if method == "POST"]


def test_create_get_and_replay(client, sim):
    created = client.create_fulfillment_order(request(), idempotency_key="shp-1:create")
    again = client.create_fulfillment_order(request(), idempotency_key="shp-1:create")
    assert created["status"] == "accepted" and created["id"].startswith("fo_")
    assert again["id"] == created["id"] and client.get(created["id"]) == sim.fulfillment_order(created["id"])
    assert [(line["line_id"], line["shipped_quantity"]) for line in created["lines"]] == [
        ("l1", 0),
        ("l2", 0),
    ]
    assert [idem for _, _, idem, _ in sim.requests[:2]] == ["shp-1:create", "shp-1:create"]


def test_retries_503_honouring_retry_after_then_succeeds(client, sim, sleeps):
    sim.fail_next(2, 503, retry_after=2)
    created = client.create_fulfillment_order(request(), idempotency_key="k")
    assert created["status"] == "accepted"
    assert posts(sim) == [503, 503, 201]
    assert sleeps == [2.0, 2.0]


def test_retries_500_and_dropped_connections_with_backoff(client, sim, sleeps):
    sim.fail_next(1, 500)
    sim.fail_next(1, 0)
    assert client.create_fulfillment_order(request(), idempotency_key="k")["status"] == "accepted"
    assert posts(sim) == [500, 0, 201]
    assert sleeps == [0.25, 0.5]  # equal jitter at its minimum: half of 0.5 s, then of 1 s


def test_gives_up_after_max_attempts(client, sim, sleeps):
    sim.fail_next(3, 500)
    with pytest.raises(ThreePLUnavailable) as failed:
        client.create_fulfillment_order(request(), idempotency_key="k")
    assert (failed.value.status, failed.value.operation) == (500, "create_fulfillment_order")
    assert isinstance(failed.value, HubError) and len(sleeps) == 2 and posts(sim) == [500, 500, 500]
    assert sim.by_reference("shp-1") is None


def test_a_retry_after_longer_than_max_wait_is_not_waited_for(client, sim, sleeps):
    sim.fail_next(1, 429, retry_after=120)
    with pytest.raises(ThreePLUnavailable) as throttled:
        client.inventory(["TEE-M"])
    assert (throttled.value.status, throttled.value.retry_after) == (429, 120.0)
    assert sleeps == []


def test_unreachable_is_unavailable(sleeps):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ThreePLClient(f"http://127.0.0.1:{port}", KEY, max_attempts=2, sleep=sleeps.append)
    with pytest.raises(ThreePLUnavailable, match="unreachable"):
        client.get("fo_1")
    assert len(sleeps) == 1


def test_cancel_maps_409_already_shipped(client, sim):
    partial = client.create_fulfillment_order(request("shp-p"), idempotency_key="p")
    sim.ship_now(partial["id"], {"l1": 1})
    assert client.cancel(partial["id"])["status"] == "partially_cancelled"
    shipped = client.create_fulfillment_order(request("shp-s"), idempotency_key="s")
    sim.ship_now(shipped["id"])
    with pytest.raises(AlreadyShipped) as late:
        client.cancel(shipped["id"])
    assert isinstance(late.value, ThreePLRejected)
    assert (late.value.status, late.value.code) == (409, "already_shipped")


def test_recall_returns_codes_or_maps_409_handed_to_carrier(client, sim):
    sim.handover_delay_s = 5000  # 5 s at this time scale
    early = client.create_fulfillment_order(request("shp-e"), idempotency_key="e")
    shipment = sim.ship_now(early["id"])
    assert client.recall(early["id"]) == [p["tracking_code"] for p in shipment["parcels"]]
    sim.handover_delay_s = 0
    late = client.create_fulfillment_order(request("shp-l"), idempotency_key="l")
    assert client.recall(late["id"]) == []  # nothing shipped yet: nothing to intercept
    sim.ship_now(late["id"])
    with pytest.raises(HandedToCarrier) as gone:
        client.recall(late["id"])
    assert gone.value.code == "handed_to_carrier"


def test_rejections_carry_code_and_field_but_not_the_address(client, sim):
    bad = request(lines=[{"line_id": "l1", "sku": "NOPE", "quantity": 1}])
    with pytest.raises(ThreePLRejected) as refused:
        client.create_fulfillment_order(bad, idempotency_key="bad")
    assert (refused.value.status, refused.value.code, refused.value.field) == (
        422,
        "invalid_request",
        "lines[0].sku",
    )
    assert "NOPE" in (refused.value.detail or "") and "Navy" not in str(refused.value)
    conflict = request(shipping_method="standard")
    client.create_fulfillment_order(request(), idempotency_key="same")
    with pytest.raises(ThreePLRejected) as reused:
        client.create_fulfillment_order(conflict, idempotency_key="same")
    assert reused.value.code == "idempotency_conflict" and not isinstance(reused.value, AlreadyShipped)


def test_not_found_and_unauthorized(client, sim):
    with pytest.raises(ThreePLNotFound) as missing:
        client.get("fo_missing")
    assert isinstance(missing.value, NotFound) and missing.value.status == 404
    wrong = ThreePLClient(sim.url, "not-the-key")
    with pytest.raises(ThreePLRejected) as refused:
        wrong.get("fo_missing")
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")


def test_inventory(client):
    items = client.inventory(["TEE-M", "CAP"], warehouse="WH-1")
    assert [(i["sku"], i["available"], i["expected_at"] is None) for i in items] == [
        ("TEE-M", 10, True),
        ("CAP", 0, False),
    ]
    with pytest.raises(InvalidInput):
        client.inventory([])


def test_the_key_stays_out_of_repr_and_errors(client):
    assert KEY not in repr(client)
    with pytest.raises(InvalidInput):
        client.create_fulfillment_order(request(), idempotency_key="")
    with pytest.raises(InvalidInput):
        ThreePLClient("", KEY)
    assert issubclass(ThreePLUnavailable, ThreePLError) and issubclass(ThreePLRejected, ThreePLError)
