"""Fulfilment and tracking on the local stack: the 3PL and EasyPost simulators, signed webhooks, the
lifecycle's two waits per order (every shipment shipped, every shipment delivered) on task tokens, the
watchdog schedule."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import requests

from chalicelib import resources
from chalicelib.domain.order import derive_order_id
from tests.integration.conftest import THREEPL, WAIT_SECONDS, events, eventually
from tests.orders import manual_body

STORE = "it-fulfilment"


def place(
    stack, stripe, lines: list[dict[str, Any]], *, country: str = "US", total: int, held_by=None
) -> tuple[str, str]:
    """A card order shipped to `country`; returns (order id, PaymentIntent id). With `held_by` (the 3PL
    simulator) the warehouse holds the order's fulfilment orders as they arrive: nothing ships until the
    test ships it."""
    intent = stripe.create_payment_intent(total, "usd", "pm_card_visa")
    external_id = f"FUL-{uuid.uuid4().hex[:8]}"
    if held_by is not None:
        held_by.hold_order(derive_order_id("manual", STORE, external_id))
    body = manual_body(
        STORE,
        external_id,
        currency="USD",
        customer={"email": f"{external_id.lower()}@example.com", "name": "Buyer"},
        shipping_address={
            "name": "Ada Buyer",
            "line1": "1 Harbour St",
            "city": "Boston",
            "region": "MA",
            "postal_code": "02110",
            "country": country,
        },
        lines=lines,
        payment={"source": "stripe", "reference": intent["id"]},
    )
    posted = stack.api("POST", "/api/orders", json=body)
    assert posted.status_code == 202, posted.text
    return derive_order_id("manual", STORE, external_id), intent["id"]


def line(line_id: str, sku: str, quantity: int, price: str = "10.00") -> dict[str, Any]:
    return {"line_id": line_id, "sku": sku, "title": sku, "quantity": quantity, "unit_price": price}


def order_when(stack, order_id: str, predicate, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
    return stack.order_when(order_id, predicate, timeout=timeout)


# What the console shows of a delivered order, however many shipments it has: one wait per stage, not per
# shipment (7 billed transitions).
DELIVERED_PATH = [
    "CheckOrder",
    "RouteByFraudDecision",
    "TakePayment",
    "RouteByPayment",
    "FulfilOrder",
    "AwaitDelivery",
    "CompleteOrder",
]


def execution_history(stack, order_id: str) -> list[dict[str, Any]]:
    """The finished lifecycle execution of the order (named after it), its events in order."""
    sfn = stack.client("stepfunctions")
    machine = next(
        m["stateMachineArn"]
        for m in sfn.list_state_machines()["stateMachines"]
        if m["name"] == resources.ORDER_LIFECYCLE.name
    )
    arn = f"{machine.replace(':stateMachine:', ':execution:')}:{order_id}"
    eventually(lambda: sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED" or None)
    return sfn.get_paginator("get_execution_history").paginate(executionArn=arn).build_full_result()["events"]


def entered(history: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


def test_one_shipment_end_to_end_to_completed(stack, stripe, threepl, carrier):
    order_id, _ = place(stack, stripe, [line("1", "MUG", 2)], total=2000)
    done = order_when(stack, order_id, lambda o: o["status"] == "COMPLETED")
    [shipment] = done["shipments"]
    assert shipment["warehouse"] == "WH-EAST" and shipment["status"] == "delivered"
    assert shipment["fulfilment_order_id"].startswith("fo_")
    parcels = shipment["parcels"]
    assert parcels and all(p["status"] == "delivered" for p in parcels)
    assert shipment["tracking_number"] == parcels[0]["tracking_number"]
    assert shipment["delivered_at"] <= shipment["promised_at"]
    history = events(done)
    for expected in (
        "payment_captured",
        "allocated",
        "fulfilment_requested",
        "shipped",
        "tracking",
        "completed",
    ):
        assert expected in history
    assert history.index("shipped") < history.index("completed")
    fo = threepl.by_reference(shipment["shipment_id"])
    assert fo is not None and fo["status"] == "shipped"
    assert [t["tracking_code"] for t in carrier.trackers()].count(parcels[0]["tracking_number"]) == 1
    assert entered(execution_history(stack, order_id)) == DELIVERED_PATH


def test_a_split_order_ships_from_two_warehouses_and_completes_when_both_arrive(stack, stripe):
    # MUG ships from WH-EAST (the US warehouse), BULKY-* only from WH-WEST: two shipments, two promises.
    order_id, _ = place(stack, stripe, [line("1", "MUG", 1), line("2", "BULKY-SOFA", 1)], total=2000)
    done = order_when(stack, order_id, lambda o: o["status"] == "COMPLETED")
    assert sorted(s["warehouse"] for s in done["shipments"]) == ["WH-EAST", "WH-WEST"]
    assert len({s["promised_at"] for s in done["shipments"]}) == 2
    delivered = sorted(s["delivered_at"] for s in done["shipments"])
    assert all(delivered) and all(s["status"] == "delivered" for s in done["shipments"])
    assert {len(s["lines"]) for s in done["shipments"]} == {1}
    # One wait for both shipments to ship, one for both to arrive; the console shows each one's status.
    history = execution_history(stack, order_id)
    assert entered(history) == DELIVERED_PATH
    outputs = [
        json.loads(e["stateExitedEventDetails"]["output"])
        for e in history
        if e.get("stateExitedEventDetails", {}).get("name") == "AwaitDelivery"
    ]
    assert [sorted(o["delivery"]["shipments"].values()) for o in outputs] == [["delivered", "delivered"]]


def test_a_partial_shipment_then_the_rest(stack, stripe, threepl):
    order_id, _ = place(
        stack, stripe, [line("1", "MUG", 1), line("2", "CAP", 2)], total=3000, held_by=threepl
    )
    requested = order_when(stack, order_id, lambda o: "fulfilment_requested" in events(o))
    shipment_id = requested["shipments"][0]["shipment_id"]
    fo = threepl.by_reference(shipment_id)
    threepl.ship_now(fo["id"], {"1": 1})
    partial = order_when(stack, order_id, lambda o: o["status"] == "PARTIALLY_SHIPPED")
    assert partial["shipments"][0]["status"] == "partially_shipped"
    threepl.ship_now(fo["id"], {"2": 2})
    done = order_when(stack, order_id, lambda o: o["status"] == "COMPLETED")
    shipped = [h for h in done["history"] if h["event"] == "shipped"]
    assert [h["detail"]["complete"] for h in shipped] == [False, True]
    assert len(done["shipments"][0]["parcels"]) >= 2


def test_a_duplicate_or_replayed_3pl_confirmation_changes_nothing(stack, stripe, threepl):
    order_id, _ = place(stack, stripe, [line("1", "MUG", 1)], total=1000)
    order_when(stack, order_id, lambda o: "shipped" in events(o))
    [event] = [
        e
        for e in threepl.events_of("shipment.created")
        if e["data"]["fulfillment_order"]["order_id"] == order_id
    ]
    body = json.dumps(event).encode()
    at = str(int(time.time()))
    digest = hmac.new(b"it-3pl-webhook-secret", at.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-ThreePL-Signature": f"t={at},v1={digest}"}
    for _ in range(2):
        answer = requests.post(
            f"{stack.hub_url}/webhooks/3pl/{THREEPL}", data=body, headers=headers, timeout=5
        )
        assert answer.status_code == 200
    stack.drained(resources.INGEST_QUEUE.name)  # both copies processed
    done = order_when(stack, order_id, lambda o: o["status"] == "COMPLETED")
    assert events(done).count("shipped") == 1
    bad = requests.post(
        f"{stack.hub_url}/webhooks/3pl/{THREEPL}",
        data=body,
        headers={"Content-Type": "application/json", "X-ThreePL-Signature": "t=1,v1=00"},
        timeout=5,
    )
    assert bad.status_code == 401


def test_cancelling_before_shipping_cancels_at_the_3pl_and_refunds(stack, stripe, threepl):
    order_id, intent_id = place(stack, stripe, [line("1", "MUG", 1)], total=1000, held_by=threepl)
    requested = order_when(stack, order_id, lambda o: "fulfilment_requested" in events(o))
    fo = threepl.by_reference(requested["shipments"][0]["shipment_id"])
    answer = stack.api("POST", f"/api/orders/{order_id}/cancel", json={"reason": "changed mind"})
    assert answer.status_code == 200, answer.text
    by_name = {c["compensator"]: c for c in answer.json()["compensations"]}
    assert by_name["fulfilment"]["shipments"][0]["action"] == "cancelled_at_3pl"
    assert by_name["payment"]["action"] == "refunded"
    assert threepl.fulfillment_order(fo["id"])["status"] == "cancelled"
    assert [r["amount"] for r in stripe.refunds_for(intent_id)] == [1000]


def test_cancelling_after_shipping_starts_the_return_path(stack, stripe, threepl, tracking_codes):
    order_id, intent_id = place(stack, stripe, [line("1", "MUG", 1)], total=1000, held_by=threepl)
    requested = order_when(stack, order_id, lambda o: "fulfilment_requested" in events(o))
    fo = threepl.by_reference(requested["shipments"][0]["shipment_id"])
    tracking_codes.scenario = "silent"  # the parcel stays with the carrier: never delivered
    try:
        [parcel] = threepl.ship_now(fo["id"])["parcels"]
    finally:
        tracking_codes.scenario = "on-time"
    order_when(stack, order_id, lambda o: o["status"] == "SHIPPED")

    def handed_over() -> bool:  # the 3PL's own record: too late to recall
        shipped = threepl.fulfillment_order(fo["id"])["shipments"]
        return any(
            p["tracking_code"] == parcel["tracking_code"] and p["status"] == "handed_to_carrier"
            for s in shipped
            for p in s["parcels"]
        )

    eventually(handed_over)
    answer = stack.api("POST", f"/api/orders/{order_id}/cancel", json={"reason": "fraud found later"})
    assert answer.status_code == 200, answer.text
    by_name = {c["compensator"]: c for c in answer.json()["compensations"]}
    assert by_name["fulfilment"]["shipments"][0]["action"] == "return_expected"
    order = stack.api("GET", f"/api/orders/{order_id}").json()
    assert order["status"] == "CANCELLED" and order["returns"][0]["status"] == "return_expected"
    assert [r["amount"] for r in stripe.refunds_for(intent_id)] == [1000]


def test_a_failed_delivery_attempt_then_delivery(stack, stripe, tracking_codes):
    tracking_codes.scenario = "failed-attempt"
    try:
        order_id, _ = place(stack, stripe, [line("1", "MUG", 1)], total=1000)
        done = order_when(stack, order_id, lambda o: o["status"] == "COMPLETED")
    finally:
        tracking_codes.scenario = "on-time"
    [shipment] = done["shipments"]
    assert "failed_attempt" in shipment["flags"]
    statuses = [h["detail"]["status"] for h in done["history"] if h["event"] == "tracking"]
    assert "failed_attempt" in statuses and statuses[-1] == "delivered"
    assert statuses.index("failed_attempt") < statuses.index("delivered")


def test_a_late_shipment_is_flagged_by_the_watchdog_and_counted_per_carrier(stack, stripe, threepl):
    order_id, _ = place(stack, stripe, [line("1", "SLOW-DESK", 1)], total=1000, held_by=threepl)
    order_when(stack, order_id, lambda o: "fulfilment_requested" in events(o))

    def flagged_by_the_watchdog() -> dict[str, Any] | None:
        # The shipment joins the watchdog's open-shipments list just after fulfilment_requested is recorded:
        # each run reads that list, so the watchdog runs (as its schedule would) until it has seen it.
        fired = requests.post(f"{stack.aws_url}/_local/schedules/watch_shipments", timeout=30)
        assert fired.status_code == 200, fired.text
        order = stack.order(order_id)
        return order if order and "shipment_flagged" in events(order) else None

    flagged = eventually(flagged_by_the_watchdog, interval=0.5)
    assert "late" in flagged["shipments"][0]["flags"]
    again = requests.post(f"{stack.aws_url}/_local/schedules/watch_shipments", timeout=30)
    assert again.status_code == 200, again.text
    assert events(stack.order(order_id)).count("shipment_flagged") == 1  # flagged once, however many runs
