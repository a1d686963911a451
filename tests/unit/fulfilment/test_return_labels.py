"""Return labels: the carrier simulator's is_return shipments over HTTP, and EasyPostReturnLabels on it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import requests

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.fulfilment import FulfilmentPolicy
from chalicelib.domain.order import Address, Order
from chalicelib.domain.returns.model import OrderReturn
from chalicelib.integrations.easypost.client import CarrierRejected, EasyPostClient
from chalicelib.integrations.easypost.returns import (
    EasyPostReturnLabels,
    connection_return_address,
    warehouse_addresses,
)
from chalicelib.integrations.easypost.webhook import (
    TrackingStatus,
    parse_tracker_event,
    verify_easypost_signature,
)
from local.simulators.carrier import CarrierSimulator

# The carrier simulator as its own tests start it (signed webhooks to `receiver`, moved by `advance`).
from tests.unit.fulfilment.test_carrier_simulator import KEY, SECRET, T0, Receiver, make_sim  # noqa: F401

CUSTOMER = {"name": "Ada L", "street1": "1 Main St", "city": "Brooklyn", "state": "NY", "zip": "11201",
            "country": "US"}  # fmt: skip
WAREHOUSE = {"name": "WH East", "street1": "9 Dock Rd", "city": "Orlando", "state": "FL", "zip": "32809",
             "country": "US"}  # fmt: skip
POLICY = FulfilmentPolicy.from_mapping(
    {
        "warehouses": [
            {
                "id": "WH-EAST",
                "provider": "acme",
                "address": {
                    "name": "WH East",
                    "line1": "9 Dock Rd",
                    "city": "Orlando",
                    "region": "FL",
                    "postal_code": "32809",
                    "country": "US",
                },
            },
            {"id": "WH-WEST", "provider": "acme"},
        ]
    }
)


def post(sim: CarrierSimulator, path: str, body: dict) -> requests.Response:
    return requests.post(f"{sim.url}{path}", json=body, auth=(KEY, ""), timeout=10)


def return_shipment(**fields) -> dict:
    shipment = {"is_return": True, "reference": "ret-1", "to_address": dict(CUSTOMER),
                "from_address": dict(WAREHOUSE), "parcel": {"weight": 16}}  # fmt: skip
    return {"shipment": {**shipment, **fields}}


def order(*, warehouse: str | None = "WH-EAST", address: dict | None = None) -> Order:
    return Order.model_validate(
        {
            "order_id": "ord-1", "channel": "manual", "store": "s", "external_id": "e1", "currency": "USD",
            "placed_at": T0, "updated_at": T0,
            "shipping_address": address if address is not None else {"name": "Ada L", "line1": "1 Main St",
                "city": "Brooklyn", "region": "NY", "postal_code": "11201", "country": "US"},
            "lines": [{"line_id": "l1", "sku": "TEE", "title": "Tee", "quantity": 2, "unit_price": "10",
                       "total": "20"}],
            "totals": {"subtotal": "20", "total": "20"},
            "shipments": [{"shipment_id": "s1", "warehouse": warehouse, "status": "delivered",
                           "lines": [{"line_id": "l1", "sku": "TEE", "quantity": 2}]}],
        }
    )  # fmt: skip


def a_return(quantity: int = 1) -> OrderReturn:
    return OrderReturn(
        return_id="ord-1-r1", number=1, order_id="ord-1", source="api", requested_at=T0, updated_at=T0,
        lines=[{"line_id": "l1", "sku": "TEE", "quantity": quantity}],
    )  # fmt: skip


def labels(sim: CarrierSimulator, **knobs) -> EasyPostReturnLabels:
    client = EasyPostClient(KEY, api_base=sim.url, sleep=lambda _s: None)
    knobs.setdefault("warehouses", warehouse_addresses(POLICY.warehouses))
    return EasyPostReturnLabels(client, now=lambda: T0, **knobs)


# --- the simulator ---------------------------------------------------------------------------------


def test_an_is_return_shipment_swaps_its_addresses_and_offers_rates(sim):
    answer = post(sim, "/v2/shipments", return_shipment())
    shipment = answer.json()
    assert answer.status_code == 201 and shipment["is_return"] is True
    assert shipment["from_address"]["city"] == "Brooklyn" and shipment["to_address"]["city"] == "Orlando"
    assert shipment["postage_label"] is None and shipment["tracking_code"] is None
    assert {r["currency"] for r in shipment["rates"]} == {"USD"} and len(shipment["rates"]) >= 2


def test_buying_gives_a_label_a_tracking_code_and_a_return_tracker_whose_events_arrive_signed(sim, receiver):
    shipment = post(sim, "/v2/shipments", return_shipment()).json()
    rate = shipment["rates"][0]
    bought = post(sim, f"/v2/shipments/{shipment['id']}/buy", {"rate": {"id": rate["id"]}}).json()
    code = bought["tracking_code"]
    assert bought["selected_rate"]["rate"] == rate["rate"] and code.startswith("EZ4")
    assert (
        requests.get(bought["postage_label"]["label_url"], timeout=10).headers["Content-Type"] == "image/png"
    )
    assert bought["tracker"]["is_return"] is True and bought["tracker"]["shipment_id"] == shipment["id"]
    while sim.advance(code) is not None:
        pass
    received = receiver.wait_for(5)
    assert all(verify_easypost_signature(SECRET, d.body, d.signature) for d in received)
    statuses = [e.tracking_status for e in sorted((parse_tracker_event(d.body) for d in received),
                                                  key=lambda e: e.updated_at)]  # fmt: skip
    assert statuses == [TrackingStatus.PRE_TRANSIT, TrackingStatus.IN_TRANSIT, TrackingStatus.IN_TRANSIT,
                        TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.DELIVERED]  # fmt: skip
    assert sim.by_reference("ret-1")[0]["status"] == "delivered"


def test_a_second_buy_of_the_same_shipment_is_refused_and_buys_nothing(sim):
    shipment = post(sim, "/v2/shipments", return_shipment()).json()
    rate = {"rate": {"id": shipment["rates"][0]["id"]}}
    first = post(sim, f"/v2/shipments/{shipment['id']}/buy", rate)
    second = post(sim, f"/v2/shipments/{shipment['id']}/buy", rate)
    assert first.status_code == 200
    assert second.status_code == 422 and second.json()["error"]["code"] == "SHIPMENT.POSTAGE.EXISTS"
    assert len(sim.trackers()) == 1


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"to_address": {**CUSTOMER, "zip": "ABCDE"}}, "ADDRESS.VERIFY.FAILURE"),
        ({"from_address": {**WAREHOUSE, "street1": " "}}, "PARAMETER.REQUIRED"),
        ({"parcel": {"weight": 0}}, "PARAMETER.INVALID"),
        ({"to_address": None}, "PARAMETER.REQUIRED"),
    ],
)
def test_a_bad_address_or_parcel_is_refused_with_422_and_creates_nothing(sim, fields, code):
    answer = post(sim, "/v2/shipments", return_shipment(**fields))
    assert answer.status_code == 422 and answer.json()["error"]["code"] == code
    assert sim.shipments() == []


def test_an_unknown_rate_is_refused(sim):
    shipment = post(sim, "/v2/shipments", return_shipment()).json()
    answer = post(sim, f"/v2/shipments/{shipment['id']}/buy", {"rate": {"id": "rate_nope"}})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "SHIPMENT.RATE.INVALID"


def test_a_held_return_parcel_waits_at_pre_transit_until_released(request, receiver):
    sim = request.getfixturevalue("make_sim")(step_s=0.01, time_scale=1.0)
    sim.hold_reference("ret-held")
    shipment = post(sim, "/v2/shipments", return_shipment(reference="ret-held")).json()
    code = post(
        sim, f"/v2/shipments/{shipment['id']}/buy", {"rate": {"id": shipment["rates"][0]["id"]}}
    ).json()["tracking_code"]
    assert sim.settle() and sim.scenario_of(code) == "on_time"
    assert [e["result"]["status"] for e in sim.events_of(code)] == ["pre_transit"]
    sim.release(code)
    receiver.wait_for(5)
    assert sim.events_of(code)[-1]["result"]["status"] == "delivered"


def test_a_return_scenario_set_for_a_reference_plays_on_its_parcel(sim):
    sim.set_return_scenario("ret-x", "exception")
    shipment = post(sim, "/v2/shipments", return_shipment(reference="ret-x")).json()
    code = post(
        sim, f"/v2/shipments/{shipment['id']}/buy", {"rate": {"id": shipment["rates"][1]["id"]}}
    ).json()["tracking_code"]
    assert sim.scenario_of(code) == "exception"


def test_listing_pages_newest_first_and_filters_purchased(sim):
    ids = [post(sim, "/v2/shipments", return_shipment(reference=f"r{i}")).json()["id"] for i in range(3)]
    page = requests.get(f"{sim.url}/v2/shipments?page_size=2", auth=(KEY, ""), timeout=10).json()
    assert [s["id"] for s in page["shipments"]] == [ids[2], ids[1]] and page["has_more"] is True
    rest = requests.get(f"{sim.url}/v2/shipments?page_size=2&before_id={ids[1]}", auth=(KEY, ""), timeout=10)
    assert [s["id"] for s in rest.json()["shipments"]] == [ids[0]] and rest.json()["has_more"] is False
    bought = requests.get(f"{sim.url}/v2/shipments?purchased=true", auth=(KEY, ""), timeout=10).json()
    assert bought["shipments"] == []


# --- EasyPostReturnLabels ----------------------------------------------------------------------------


def test_a_label_goes_from_the_customer_to_the_warehouse_the_lines_shipped_from(sim):
    label = labels(sim).return_label(
        order(), a_return(2), idempotency_key="ord-1-r1:label", paid_by="customer"
    )
    (shipment,) = sim.by_reference("ord-1-r1:label")
    assert (
        shipment["from_address"]["street1"] == "1 Main St"
        and shipment["to_address"]["street1"] == "9 Dock Rd"
    )
    assert shipment["parcel"]["weight"] == 32.0
    assert label.tracking_number == shipment["tracking_code"] and label.shipment_ref == shipment["id"]
    assert label.cost == min(Decimal(r["rate"]) for r in shipment["rates"]) and label.paid_by == "customer"
    assert label.carrier == shipment["selected_rate"]["carrier"] and label.label_url


def test_a_retried_call_answers_the_same_label_and_buys_no_second_one(sim):
    adapter = labels(sim)
    first = adapter.return_label(order(), a_return(), idempotency_key="k1")
    again = adapter.return_label(order(), a_return(), idempotency_key="k1")
    assert again == first and len(sim.by_reference("k1")) == 1 and len(sim.trackers()) == 1


def test_a_call_that_died_after_creating_buys_the_shipment_it_created(sim):
    created = post(sim, "/v2/shipments", return_shipment(reference="k2")).json()
    label = labels(sim).return_label(order(), a_return(), idempotency_key="k2")
    assert label.shipment_ref == created["id"] and len(sim.by_reference("k2")) == 1


class StaleList(EasyPostClient):
    """Lists shipments as they were before their purchase: a buy that went through unseen (a lost answer)."""

    def list_shipments(self, **params: str) -> dict:
        page = super().list_shipments(**params)
        return {
            **page,
            "shipments": [{**s, "postage_label": None, "tracking_code": None} for s in page["shipments"]],
        }


def test_a_buy_that_already_went_through_answers_the_bought_label_without_a_second_purchase(sim):
    first = labels(sim).return_label(order(), a_return(), idempotency_key="k3")
    stale = EasyPostReturnLabels(
        StaleList(KEY, api_base=sim.url), warehouses=warehouse_addresses(POLICY.warehouses)
    )
    again = stale.return_label(order(), a_return(), idempotency_key="k3")
    assert again == first and len(sim.trackers()) == 1
    assert [status for method, path, status in sim.requests if path.endswith("/buy")] == [200, 422]


def test_a_transient_failure_is_retried_and_one_label_is_bought(sim):
    sim.fail_next(2, 503)
    label = labels(sim).return_label(order(), a_return(), idempotency_key="k8")
    assert [s["id"] for s in sim.by_reference("k8") if s["postage_label"]] == [label.shipment_ref]


def test_without_a_warehouse_address_the_connections_default_return_address_is_used(sim):
    text = (
        '{"line1": "5 Return Way", "city": "Reno", "region": "NV", "postal_code": "89501", "country": "US"}'
    )
    default = connection_return_address({"return_address": text})
    labels(sim, default_address=default).return_label(
        order(warehouse="WH-WEST"), a_return(), idempotency_key="k4"
    )
    assert sim.by_reference("k4")[0]["to_address"]["city"] == "Reno"


def test_no_return_address_anywhere_is_a_clear_refusal_and_buys_nothing(sim):
    with pytest.raises(InvalidInput, match="no return address"):
        labels(sim).return_label(order(warehouse="WH-WEST"), a_return(), idempotency_key="k5")
    assert sim.shipments() == []


def test_a_customer_address_the_carrier_cannot_find_is_its_422(sim):
    bad = {"line1": "1 Main St", "city": "Brooklyn", "region": "NY", "postal_code": "1120", "country": "US"}
    with pytest.raises(CarrierRejected) as refused:
        labels(sim).return_label(order(address=bad), a_return(), idempotency_key="k6")
    assert refused.value.code == "ADDRESS.VERIFY.FAILURE" and "1 Main St" not in str(refused.value)


def test_an_order_without_a_shipping_address_has_no_label(sim):
    with pytest.raises(InvalidInput, match="no shipping address"):
        unaddressed = order().model_copy(update={"shipping_address": None})
        labels(sim).return_label(unaddressed, a_return(), idempotency_key="k7")


def test_the_policy_reads_an_optional_warehouse_address():
    assert warehouse_addresses(POLICY.warehouses) == {
        "WH-EAST": Address(
            name="WH East", line1="9 Dock Rd", city="Orlando", region="FL", postal_code="32809", country="US"
        )
    }
    with pytest.raises(InvalidInput):
        FulfilmentPolicy.from_mapping(
            {"warehouses": [{"id": "W", "provider": "p", "address": {"street": 1}}]}
        )
    assert timedelta(0) < POLICY.silent_after
