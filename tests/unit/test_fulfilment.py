"""The fulfilment stage's use cases against in-memory ports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.cancellation import cancel
from chalicelib.domain.fulfilment import (
    AllocationError,
    FulfilmentCompensator,
    FulfilmentPolicy,
    ShippedParcel,
    ThreePLUpdate,
    TrackingUpdate,
    allocate,
    apply_threepl_event,
    apply_tracking,
    await_delivery,
    await_order_delivery,
    complete_order,
    fulfil_order,
    request_fulfilment,
    watch,
)
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import OrderStatus
from tests.fakes import InMemoryOrderRepository, RecordingWorkflow
from tests.fakes_fulfilment import FakeThreePL, FakeTrackers, InMemoryFulfilmentStore

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = FulfilmentPolicy.from_mapping(
    {
        "warehouses": [
            {"id": "us-east", "provider": "acme", "countries": ["US"], "priority": 1, "promise_days": 3},
            {"id": "eu", "provider": "acme", "countries": ["*"], "skus": ["MUG*", "CAP*"], "priority": 2},
        ],
        "silent_after_hours": 24,
    }
)


def now() -> datetime:
    return NOW


@pytest.fixture
def env():
    class Env:
        orders = InMemoryOrderRepository()
        store = InMemoryFulfilmentStore()
        workflow = RecordingWorkflow()
        threepl = FakeThreePL({("us-east", "MUG"): 5, ("eu", "CAP"): 5, ("us-east", "CAP"): 0})
        trackers = FakeTrackers()

    return Env()


def paid_order(env, *, country="US", lines=None):
    order = normalise_manual(
        {
            "external_id": f"F-{len(env.orders._orders) + 1}",
            "currency": "USD",
            "placed_at": "2026-11-23T10:00:00Z",
            "shipping_address": {"name": "A", "line1": "1 Main St", "city": "Town", "country": country},
            "lines": lines
            or [
                {"line_id": "1", "sku": "MUG", "title": "Mug", "quantity": 2, "unit_price": "10.00"},
                {"line_id": "2", "sku": "CAP", "title": "Cap", "quantity": 1, "unit_price": "15.00"},
            ],
        }
    )
    order.status = OrderStatus.PAID
    env.orders.save(order, expected_version=None)
    return order.order_id


def do_allocate(env, order_id):
    return allocate(order_id, orders=env.orders, threepl=lambda p: env.threepl, policy=POLICY, now=now)


def request(env, order_id, shipment_id, waiting="tok-ship"):
    return request_fulfilment(
        order_id,
        shipment_id,
        waiting,
        orders=env.orders,
        store=env.store,
        workflow=env.workflow,
        threepl=lambda p: env.threepl,
        now=now,
    )


def fulfil(env, order_id, waiting="tok-order"):
    return fulfil_order(
        order_id,
        waiting,
        orders=env.orders,
        store=env.store,
        workflow=env.workflow,
        threepl=lambda p: env.threepl,
        policy=POLICY,
        now=now,
    )


def await_order(env, order_id, waiting="tok-delivered"):
    return await_order_delivery(order_id, waiting, orders=env.orders, store=env.store, workflow=env.workflow)


def shipped(env, order_id, shipment_id, lines, parcels, *, event="evt", provider_shipment="shp_1"):
    update = ThreePLUpdate(
        event_id=event,
        type="shipment.created",
        order_id=order_id,
        shipment_id=shipment_id,
        provider_shipment_id=provider_shipment,
        lines=lines,
        parcels=[ShippedParcel(carrier, code) for carrier, code in parcels],
        at=NOW,
    )
    return apply_threepl_event(
        update, orders=env.orders, store=env.store, workflow=env.workflow, trackers=env.trackers, now=now
    )


def track(env, code, status, at, estimated=None):
    update = TrackingUpdate(f"evt-{code}-{at}", code, "USPS", status, None, at, estimated)
    return apply_tracking(update, orders=env.orders, store=env.store, workflow=env.workflow, now=now)


def order_of(env, order_id):
    return env.orders.get(order_id).order


def test_allocate__by_country_sku_and_stock_with_back_orders_held_apart(env):
    order_id = paid_order(env)
    result = do_allocate(env, order_id)
    assert [s["shipment_id"] for s in result["shipments"]] == [f"{order_id}-1", f"{order_id}-2"]
    first, second = order_of(env, order_id).shipments
    # MUG is in stock in us-east (first choice for the US); CAP is not (0 there), eu has it: two shipments.
    assert (first.warehouse, first.status, [ln["sku"] for ln in first.lines]) == (
        "us-east",
        "allocated",
        ["MUG"],
    )
    assert (second.warehouse, second.status, [ln["sku"] for ln in second.lines]) == (
        "eu",
        "allocated",
        ["CAP"],
    )
    assert first.promised_at == NOW + timedelta(days=3)
    assert do_allocate(env, order_id) == result  # a retry answers the same shipments


def test_allocate__nothing_in_stock_is_back_ordered_and_an_unserved_line_fails(env):
    env.threepl.stock = {}
    env.threepl.expected[("us-east", "MUG")] = "2026-12-01T00:00:00Z"
    order_id = paid_order(
        env, lines=[{"line_id": "1", "sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": "1"}]
    )
    do_allocate(env, order_id)
    [held] = order_of(env, order_id).shipments
    assert held.status == "backordered" and held.promised_at == datetime(2026, 12, 4, tzinfo=UTC)
    other = paid_order(
        env,
        country="FR",
        lines=[{"line_id": "1", "sku": "BIKE", "title": "Bike", "quantity": 1, "unit_price": "9"}],
    )
    with pytest.raises(AllocationError, match="BIKE"):
        do_allocate(env, other)


def test_a_shipment_end_to_end_partial_then_rest_duplicates_and_delivery(env):
    order_id = paid_order(
        env, lines=[{"line_id": "1", "sku": "MUG", "title": "Mug", "quantity": 3, "unit_price": "1"}]
    )
    do_allocate(env, order_id)
    sid = f"{order_id}-1"
    assert request(env, order_id, sid)["fulfilment_order_id"] == "fo_1"
    assert request(env, order_id, sid)["fulfilment_order_id"] == "fo_1"  # idempotent at the 3PL
    assert order_of(env, order_id).status == OrderStatus.FULFILMENT_REQUESTED

    assert shipped(env, order_id, sid, [{"line_id": "1", "quantity": 1}], [("USPS", "EZ1")]) == "applied"
    assert order_of(env, order_id).status == OrderStatus.PARTIALLY_SHIPPED
    assert env.workflow.completed == []  # still waiting for the rest
    assert shipped(env, order_id, sid, [{"line_id": "1", "quantity": 1}], [("USPS", "EZ1")]) == "duplicate"
    shipped(
        env,
        order_id,
        sid,
        [{"line_id": "1", "quantity": 2}],
        [("UPS", "EZ2"), ("UPS", "EZ3")],
        event="e2",
        provider_shipment="shp_2",
    )
    assert order_of(env, order_id).status == OrderStatus.SHIPPED
    assert env.workflow.completed == [("tok-ship", {"outcome": "shipped"})]
    assert env.trackers.registered[-2:] == [("EZ2", "UPS"), ("EZ3", "UPS")]

    await_delivery(order_id, sid, "tok-del", orders=env.orders, store=env.store, workflow=env.workflow)
    for code in ("EZ1", "EZ2"):
        assert track(env, code, "delivered", NOW + timedelta(days=1)) == "applied"
    assert order_of(env, order_id).status == OrderStatus.SHIPPED  # EZ3 still travels
    assert track(env, "EZ3", "failed_attempt", NOW + timedelta(days=1)) == "applied"
    assert "failed_attempt" in order_of(env, order_id).shipments[0].flags
    [flagged] = env.store.flagged_shipments()  # on the operators' list while it travels
    assert (flagged["order_id"], flagged["shipment_id"], flagged["flags"]) == (
        order_id,
        sid,
        ["failed_attempt"],
    )
    assert track(env, "EZ3", "in_transit", NOW) == "stale"  # older than what the parcel knows
    track(env, "EZ3", "delivered", NOW + timedelta(days=2))
    order = order_of(env, order_id)
    assert order.status == OrderStatus.DELIVERED and order.shipments[0].status == "delivered"
    assert env.workflow.completed[-1] == ("tok-del", {"outcome": "delivered"})
    assert complete_order(order_id, orders=env.orders, now=now)["status"] == "COMPLETED"
    assert env.store.carrier_stats() == [
        {"carrier": "USPS", "country": "US", "delivered": 3, "on_time": 3, "on_time_share": 1.0}
    ]
    assert (order_id, sid) not in env.store.open
    assert env.store.flagged_shipments() == []  # delivered: off the list


def test_fulfil_order__one_wait_for_every_shipment_then_one_for_every_delivery(env):
    # GIVEN a paid order whose mug ships from us-east and whose cap only eu has in stock
    order_id = paid_order(env)
    # WHEN the lifecycle's fulfilment step runs (and, a 3PL hiccup later, runs again)
    first = fulfil(env, order_id, waiting="tok-1")
    again = fulfil(env, order_id, waiting="tok-2")
    # THEN each shipment was requested once, each step is in the history, and nothing resumed yet
    mug, cap = f"{order_id}-1", f"{order_id}-2"
    assert (
        first
        == again
        == {
            "order_id": order_id,
            "outcome": "shipped",
            "shipments": {mug: "requested", cap: "requested"},
        }
    )
    assert sorted(env.threepl.orders) == [mug, cap]
    events = [h.event for h in order_of(env, order_id).history]
    assert events.count("allocated") == 1 and events.count("fulfilment_requested") == 2
    assert env.workflow.completed == []

    # the first shipment leaving does not wake the order; the second does, with the retry's token
    shipped(env, order_id, mug, [{"line_id": "1", "quantity": 2}], [("USPS", "EZ1")])
    assert env.workflow.completed == []
    shipped(env, order_id, cap, [{"line_id": "2", "quantity": 1}], [("UPS", "EZ2")], event="e2")
    assert env.workflow.completed == [
        ("tok-2", {"outcome": "shipped", "shipments": {mug: "shipped", cap: "shipped"}})
    ]

    # one wait for both deliveries
    assert await_order(env, order_id)["outcome"] == "shipped"
    track(env, "EZ1", "delivered", NOW + timedelta(days=1))
    assert len(env.workflow.completed) == 1
    track(env, "EZ2", "delivered", NOW + timedelta(days=2))
    assert env.workflow.completed[-1] == (
        "tok-delivered",
        {"outcome": "delivered", "shipments": {mug: "delivered", cap: "delivered"}},
    )
    assert complete_order(order_id, orders=env.orders, now=now)["status"] == "COMPLETED"


def test_fulfil_order__a_cancelled_shipment_is_not_waited_for(env):
    order_id = paid_order(env)
    fulfil(env, order_id)
    mug, cap = f"{order_id}-1", f"{order_id}-2"
    shipped(env, order_id, mug, [{"line_id": "1", "quantity": 2}], [("USPS", "EZ1")])
    cancelled = ThreePLUpdate(
        event_id="c1", type="fulfillment_order.cancelled", order_id=order_id, shipment_id=cap
    )
    apply_threepl_event(
        cancelled, orders=env.orders, store=env.store, workflow=env.workflow, trackers=env.trackers, now=now
    )
    assert env.workflow.completed[-1][0] == "tok-order"
    await_order(env, order_id)
    track(env, "EZ1", "delivered", NOW + timedelta(days=1))
    assert env.workflow.completed[-1] == (
        "tok-delivered",
        {"outcome": "delivered", "shipments": {mug: "delivered", cap: "cancelled"}},
    )


def test_await_order_delivery__deliveries_before_the_wait_resume_it_at_once(env):
    order_id = paid_order(
        env, lines=[{"line_id": "1", "sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": "1"}]
    )
    fulfil(env, order_id)
    sid = f"{order_id}-1"
    shipped(env, order_id, sid, [{"line_id": "1", "quantity": 1}], [("USPS", "EZ7")])
    track(env, "EZ7", "delivered", NOW + timedelta(days=1))  # the carrier was quicker than the lifecycle
    answer = await_order(env, order_id, waiting="late")
    assert answer["outcome"] == "delivered"
    assert env.workflow.completed[-1] == ("late", {"outcome": "delivered", "shipments": {sid: "delivered"}})


def test_fulfil_order__nothing_to_ship_waits_for_nothing(env):
    order_id = paid_order(
        env, lines=[{"line_id": "1", "title": "Gift wrap", "quantity": 1, "unit_price": "2"}]
    )
    assert fulfil(env, order_id)["outcome"] == "nothing_to_ship"
    assert await_order(env, order_id)["outcome"] == "nothing_to_ship"
    assert [token for token, _ in env.workflow.completed] == ["tok-order", "tok-delivered"]
    assert complete_order(order_id, orders=env.orders, now=now)["status"] == "COMPLETED"


def test_an_execution_that_waits_per_shipment_is_still_woken_per_shipment(env):
    # An execution started under the earlier definition (a Map of shipments) keeps it to its end.
    order_id = paid_order(env)
    do_allocate(env, order_id)
    mug, cap = f"{order_id}-1", f"{order_id}-2"
    request(env, order_id, mug, waiting="ship-1")
    request(env, order_id, cap, waiting="ship-2")
    shipped(env, order_id, mug, [{"line_id": "1", "quantity": 2}], [("USPS", "EZ1")])
    assert env.workflow.completed == [("ship-1", {"outcome": "shipped"})]
    shipped(env, order_id, cap, [{"line_id": "2", "quantity": 1}], [("UPS", "EZ2")], event="e2")
    assert env.workflow.completed[-1] == ("ship-2", {"outcome": "shipped"})
    await_delivery(order_id, mug, "del-1", orders=env.orders, store=env.store, workflow=env.workflow)
    track(env, "EZ1", "delivered", NOW + timedelta(days=1))
    assert env.workflow.completed[-1] == ("del-1", {"outcome": "delivered"})


def test_a_confirmation_before_the_wait_resumes_it_at_once(env):
    order_id = paid_order(
        env, lines=[{"line_id": "1", "sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": "1"}]
    )
    do_allocate(env, order_id)
    sid = f"{order_id}-1"
    request(env, order_id, sid, waiting="t1")
    env.store.set_token(order_id, sid, "shipped", None)  # the token was consumed or not yet stored
    shipped(env, order_id, sid, [{"line_id": "1", "quantity": 1}], [("USPS", "EZ9")])
    track(env, "EZ9", "delivered", NOW + timedelta(days=9))  # late: promised in 3 days
    answer = await_delivery(order_id, sid, "t2", orders=env.orders, store=env.store, workflow=env.workflow)
    assert answer["status"] == "delivered" and env.workflow.completed[-1] == ("t2", {"outcome": "delivered"})
    assert env.store.carrier_stats()[0]["on_time"] == 0


def test_watch__flags_late_and_silent_shipments_once(env):
    order_id = paid_order(
        env, lines=[{"line_id": "1", "sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": "1"}]
    )
    do_allocate(env, order_id)
    sid = f"{order_id}-1"
    request(env, order_id, sid)
    later = NOW + timedelta(days=4)
    kwargs = {"orders": env.orders, "store": env.store, "policy": POLICY}
    assert watch(now=lambda: later, **kwargs) == {"late": 1, "silent": 1, "checked": 1}
    assert watch(now=lambda: later, **kwargs) == {"late": 0, "silent": 0, "checked": 1}
    assert set(order_of(env, order_id).shipments[0].flags) == {"late", "silent"}
    assert [(f["order_id"], f["flags"]) for f in env.store.flagged_shipments()] == [
        (order_id, ["late", "silent"])
    ]


def test_cancelling__before_shipping_cancels_at_the_3pl_after_shipping_expects_a_return(env):
    compensators = (FulfilmentCompensator(env.orders, lambda p: env.threepl, now),)
    kwargs = {"orders": env.orders, "workflow": env.workflow, "now": now, "compensators": compensators}
    early = paid_order(
        env, lines=[{"line_id": "1", "sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": "1"}]
    )
    do_allocate(env, early)
    request(env, early, f"{early}-1")
    answer = cancel(early, "changed mind", source="operator", **kwargs)
    assert answer["compensations"][0]["shipments"] == [
        {"shipment_id": f"{early}-1", "action": "cancelled_at_3pl"}
    ]
    assert env.threepl.cancelled == ["fo_1"]
    assert order_of(env, early).shipments[0].status == "cancelled"

    late = paid_order(
        env, lines=[{"line_id": "1", "sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": "1"}]
    )
    do_allocate(env, late)
    request(env, late, f"{late}-1")
    shipped(
        env,
        late,
        f"{late}-1",
        [{"line_id": "1", "quantity": 1}],
        [("USPS", "EZ5")],
        event="e9",
        provider_shipment="shp_9",
    )
    env.threepl.shipped.add("fo_2")
    env.threepl.handed_over.add("fo_2")
    answer = cancel(late, "fraud found later", source="operator", **kwargs)
    assert answer["compensations"][0]["shipments"] == [
        {"shipment_id": f"{late}-1", "action": "return_expected"}
    ]
    assert order_of(env, late).returns[0]["status"] == "return_expected"
    again = cancel(late, "again", source="operator", **kwargs)
    assert again["compensations"] == []  # the return is already expected: nothing more to undo


def test_an_order_without_a_shipping_address_has_nothing_to_ship_and_completes(env):
    order = normalise_manual(
        {
            "external_id": "NOADDR",
            "currency": "USD",
            "placed_at": "2026-11-23T10:00:00Z",
            "lines": [{"title": "Gift card", "quantity": 1, "unit_price": "25.00"}],
        }
    )
    order.status = OrderStatus.PAID
    env.orders.save(order, expected_version=None)
    assert do_allocate(env, order.order_id)["shipments"] == []
    assert complete_order(order.order_id, orders=env.orders, now=now)["status"] == "COMPLETED"
    assert "nothing_to_ship" in [h.event for h in order_of(env, order.order_id).history]


def test_an_order_whose_address_the_channel_withheld_is_held_for_an_operator_not_completed(env):
    order = normalise_manual(
        {
            "external_id": "WITHHELD",
            "currency": "USD",
            "placed_at": "2026-11-23T10:00:00Z",
            "lines": [{"sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": "12.00"}],
        }
    )
    order.missing = ["shipping_address (restricted data token refused)"]
    order.status = OrderStatus.PAID
    env.orders.save(order, expected_version=None)
    # No address is "nothing to ship" only when none was ever due: here it was withheld, the goods must go.
    with pytest.raises(AllocationError, match="restricted data token refused"):
        do_allocate(env, order.order_id)
    assert "nothing_to_ship" not in [h.event for h in order_of(env, order.order_id).history]
    assert order_of(env, order.order_id).shipments == []


def test_lines_without_a_sku_are_not_sent_to_a_warehouse(env):
    order_id = paid_order(
        env,
        lines=[
            {"line_id": "1", "sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": "10.00"},
            {"line_id": "2", "title": "Gift wrapping", "quantity": 1, "unit_price": "2.00"},
        ],
    )
    do_allocate(env, order_id)
    [shipment] = order_of(env, order_id).shipments
    assert [ln["line_id"] for ln in shipment.lines] == ["1"]
    allocated = next(h for h in order_of(env, order_id).history if h.event == "allocated")
    assert allocated.detail["lines_without_sku"] == ["2"]


def test_a_return_expected_by_a_cancellation_is_closed_when_the_parcel_comes_back(env):
    compensators = (FulfilmentCompensator(env.orders, lambda p: env.threepl, now),)
    order_id = paid_order(
        env, lines=[{"line_id": "1", "sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": "1"}]
    )
    do_allocate(env, order_id)
    request(env, order_id, f"{order_id}-1")
    shipped(env, order_id, f"{order_id}-1", [{"line_id": "1", "quantity": 1}], [("USPS", "EZR")])
    env.threepl.shipped.add("fo_1")
    env.threepl.handed_over.add("fo_1")
    cancel(
        order_id,
        "x",
        source="operator",
        orders=env.orders,
        workflow=env.workflow,
        now=now,
        compensators=compensators,
    )
    assert track(env, "EZR", "returned_to_sender", NOW + timedelta(days=2)) == "applied"
    [back] = order_of(env, order_id).returns
    assert back["status"] == "returned" and back["shipment_id"] == f"{order_id}-1"
