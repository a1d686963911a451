"""ShopifyPublisher against the running Shopify simulator: each milestone once, partial shipments, faults."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests

from chalicelib.domain.order import Order
from chalicelib.domain.publishing import Milestone, PublishRejected, PublishThrottled, PublishUnavailable
from chalicelib.integrations.shopify.admin import ShopifyAdmin
from chalicelib.integrations.shopify.publisher import ShopifyPublisher
from chalicelib.integrations.shopify.webhook import parse_shopify
from local.simulators.shopify import API_VERSION, LOCATION_ID, ShopifySimulator
from tests.fake_time import Sleeps
from tests.lossy_session import LosesFirstAnswer
from tests.webhook_receiver import ShopifyReceiver

SHOP = "sim-store.myshopify.com"
SECRET = "shpss_simulated_webhook_secret"
TOKEN = "shpat_simulated_access_token_publish"
SWEATER = {"title": "Merino Crew Sweater", "sku": "MCS-CHR-M", "price": "89.00", "quantity": 2}
MUG = {"title": "Café Crème Mug", "sku": "MUG-CC", "price": "18.50", "quantity": 1}
SECOND_LOCATION = 71_000_000_002


Receiver = ShopifyReceiver


@pytest.fixture
def make_sim(started, receiver, clock):
    return started.maker(
        ShopifySimulator, SHOP, SECRET, TOKEN, clock=clock, webhook_url=receiver.url, seed=23, senders=1
    )


@pytest.fixture
def publisher(sim, sleeps) -> ShopifyPublisher:
    return publisher_for(sim, sleeps)


def publisher_for(sim: ShopifySimulator, sleeps: Sleeps, **options) -> ShopifyPublisher:
    options.setdefault("backoff", 0.01)
    admin = ShopifyAdmin(
        SHOP, TOKEN, api_base=sim.url, sleep=sleeps, clock=sleeps.clock, jitter=lambda: 0.0, **options
    )
    return ShopifyPublisher(admin)


def place(sim: ShopifySimulator, items=(SWEATER, MUG), **knobs) -> tuple[dict, Order]:
    """An order in the shop and the hub's canonical order, normalised from its orders/create body."""
    knobs.setdefault("financial_status", "paid")
    shop_order = sim.create_order(currency="USD", items=list(items), shipping=["10.00"], discount={}, **knobs)
    return shop_order, parse_shopify("orders/create", shop_order, SHOP).order


def milestone(kind: str, publication_id: str | None = None, **fields) -> Milestone:
    return Milestone(
        publication_id=publication_id or f"pub-{kind}-1", kind=kind, at=datetime.now(UTC), **fields
    )


def line(order: Order, index: int, quantity: int) -> dict:
    return {"line_id": order.lines[index].line_id, "quantity": quantity}


def parcels(*numbers: str, carrier: str = "UPS") -> list[dict]:
    return [{"carrier": carrier, "tracking_number": n} for n in numbers]


def shipped_all(order: Order, *numbers: str, publication_id: str = "pub-shipped-1") -> Milestone:
    lines = [line(order, i, ln.quantity) for i, ln in enumerate(order.lines)]
    return milestone("shipped", publication_id, lines=lines, parcels=parcels(*numbers), complete=True)


# --- shipped ------------------------------------------------------------------------------------------


def test_shipped__one_fulfillment_with_every_parcels_tracking_even_when_published_twice(sim, publisher):
    shop_order, order = place(sim)
    shipped = shipped_all(order, "1Z999AA10123456784", "1Z999AA10123456785")

    first = publisher.publish(order, shipped)
    again = publisher.publish(order, shipped)

    (fulfillment,) = sim.fulfillments(shop_order["id"])
    assert first == {
        "fulfillment_id": fulfillment.fulfillment_id,
        "fulfillment_ids": [fulfillment.fulfillment_id],
        "replayed": False,
    }
    assert again == {**first, "replayed": True}
    assert fulfillment.tracking_numbers == ("1Z999AA10123456784", "1Z999AA10123456785")
    assert fulfillment.tracking_company == "UPS"
    assert fulfillment.notify_customer is True
    assert fulfillment.via == "api"
    assert fulfillment.lines == {int(order.lines[0].line_id): 2, int(order.lines[1].line_id): 1}
    assert sim.get_order(shop_order["id"])["fulfillment_status"] == "fulfilled"


def test_shipped__a_partial_shipment_fulfils_only_its_lines_and_a_second_one_the_rest(
    sim, publisher, receiver
):
    shop_order, order = place(sim)
    first = milestone("shipped", "pub-shipped-1", lines=[line(order, 0, 1)], parcels=parcels("1ZAAA"))
    rest = milestone(
        "shipped",
        "pub-shipped-2",
        lines=[line(order, 0, 1), line(order, 1, 1)],
        parcels=parcels("9400100000000000000001", carrier="usps"),
        complete=True,
    )

    publisher.publish(order, first)
    (fulfillment_order,) = sim.fulfillment_orders(shop_order["id"])
    assert fulfillment_order["status"] == "IN_PROGRESS"
    assert [i["remainingQuantity"] for i in fulfillment_order["lineItems"]["nodes"]] == [1, 1]
    publisher.publish(order, rest)
    publisher.publish(order, first)  # a late repeat of the first shipment changes nothing

    one, two = sim.fulfillments(shop_order["id"])
    sweater, mug = (int(ln.line_id) for ln in order.lines)
    assert (one.lines, one.tracking_numbers) == ({sweater: 1}, ("1ZAAA",))
    assert (two.lines, two.tracking_numbers, two.tracking_company) == (
        {sweater: 1, mug: 1},
        ("9400100000000000000001",),
        "USPS",
    )
    (closed,) = sim.fulfillment_orders(shop_order["id"])
    assert closed["status"] == "CLOSED"
    assert sim.flush(20)
    fulfilment_topics = [t for t in receiver.topics() if t.startswith("orders/") and "fulfilled" in t]
    assert fulfilment_topics == ["orders/partially_fulfilled", "orders/fulfilled"]


def test_shipped__lines_at_two_locations_become_two_fulfillments_with_the_same_tracking(make_sim, sleeps):
    sim = make_sim(locations=(LOCATION_ID, SECOND_LOCATION))
    shop_order, order = place(sim, items=(SWEATER, {**MUG, "location_id": SECOND_LOCATION}))
    result = publisher_for(sim, sleeps).publish(order, shipped_all(order, "1ZBOTH"))

    fulfillments = sim.fulfillments(shop_order["id"])
    assert [f.location_id for f in fulfillments] == [LOCATION_ID, SECOND_LOCATION]
    assert {f.tracking_numbers for f in fulfillments} == {("1ZBOTH",)}
    assert result["fulfillment_ids"] == [f.fulfillment_id for f in fulfillments]


def test_shipped__more_than_is_left_to_ship_is_rejected_and_ships_nothing(sim, publisher):
    shop_order, order = place(sim)
    too_many = milestone("shipped", lines=[line(order, 0, 3)], parcels=parcels("1ZMANY"))
    with pytest.raises(PublishRejected, match="cannot ship"):
        publisher.publish(order, too_many)
    assert sim.fulfillments(shop_order["id"]) == []


# --- delivered ----------------------------------------------------------------------------------------


def test_delivered__one_delivered_event_on_the_fulfillment_with_that_tracking(sim, publisher):
    shop_order, order = place(sim)
    publisher.publish(order, milestone("shipped", "s1", lines=[line(order, 0, 2)], parcels=parcels("1ZONE")))
    publisher.publish(order, milestone("shipped", "s2", lines=[line(order, 1, 1)], parcels=parcels("1ZTWO")))
    delivered = milestone("delivered", "d2", parcels=parcels("1ZTWO"))

    first = publisher.publish(order, delivered)
    again = publisher.publish(order, delivered)

    _, second = sim.fulfillments(shop_order["id"])
    (event,) = sim.fulfillment_events(shop_order["id"])
    assert (event.fulfillment_id, event.status) == (second.fulfillment_id, "DELIVERED")
    assert first == {"fulfillment_id": second.fulfillment_id, "replayed": False}
    assert again == {"fulfillment_id": second.fulfillment_id, "replayed": True}
    rest = sim.get_order(shop_order["id"])["fulfillments"]
    assert [f["shipment_status"] for f in rest] == [None, "delivered"]


def test_delivered__before_its_shipment_was_published_is_rejected(sim, publisher):
    _, order = place(sim)
    with pytest.raises(PublishRejected, match="publish the shipped milestone first"):
        publisher.publish(order, milestone("delivered", parcels=parcels("1ZNOWHERE")))


# --- cancelled ----------------------------------------------------------------------------------------


def test_cancelled__cancels_once_restocking_and_refunding_what_shopify_took(sim, publisher, receiver):
    shop_order, order = place(sim)
    cancelled = milestone("cancelled", "pub-cancel-1", reason="customer changed their mind")

    first = publisher.publish(order, cancelled)
    again = publisher.publish(order, cancelled)

    (cancellation,) = sim.cancellations(shop_order["id"])
    assert (cancellation.reason, cancellation.refund, cancellation.restock) == ("CUSTOMER", True, True)
    assert cancellation.notify_customer is True
    assert cancellation.staff_note == "order-hub:pub-cancel-1"
    assert first["replayed"] is False and first["job_id"].startswith("gid://shopify/Job/")
    assert again == {"cancelled_at": again["cancelled_at"], "refund": True, "replayed": True}
    assert sim.get_order(shop_order["id"])["financial_status"] == "refunded"
    assert sim.flush(20)
    assert {"orders/cancelled", "refunds/create"} <= set(receiver.topics())


def test_cancelled__an_order_the_hub_charged_through_stripe_is_not_refunded_by_shopify(sim, publisher):
    shop_order, order = place(sim, financial_status="pending")
    order.payment = order.payment.model_copy(update={"source": "stripe"})
    publisher.publish(order, milestone("cancelled", reason="suspected fraud"))
    (cancellation,) = sim.cancellations(shop_order["id"])
    assert (cancellation.reason, cancellation.refund) == ("FRAUD", False)


def test_cancelled__a_fulfilled_order_answers_user_errors_as_rejected(sim, publisher):
    shop_order, order = place(sim)
    publisher.publish(order, shipped_all(order, "1ZSHIPPED"))
    with pytest.raises(PublishRejected, match="orderId: Cannot cancel an order with fulfillments"):
        publisher.publish(order, milestone("cancelled"))
    assert sim.cancellations(shop_order["id"]) == []


# --- refunded -----------------------------------------------------------------------------------------


def test_refunded__refunds_the_amount_once_against_the_sale(sim, publisher, receiver):
    shop_order, order = place(sim)
    refunded = milestone("refunded", "pub-refund-1", amount="25.50", reason="damaged")

    first = publisher.publish(order, refunded)
    again = publisher.publish(order, refunded)

    (refund,) = sim.refunds(shop_order["id"])
    (sale,) = [t for t in sim.transactions(shop_order["id"]) if t["kind"] == "SALE"]
    assert (refund.amount, refund.currency, refund.note) == (
        Decimal("25.50"),
        "USD",
        "order-hub:pub-refund-1",
    )
    assert refund.parent_transaction_ids == (sale["id"],)
    assert refund.idempotency_key is not None
    assert first == {"refund_id": refund.refund_id, "amount": "25.50", "replayed": False}
    assert again == {**first, "replayed": True}
    assert sim.get_order(shop_order["id"])["financial_status"] == "partially_refunded"
    assert sim.flush(20)
    assert "refunds/create" in receiver.topics()


def test_refunded__a_lost_answer_is_sent_again_with_the_same_idempotency_key(sim, sleeps):
    shop_order, order = place(sim)
    session = LosesFirstAnswer("refundCreate")
    publisher = publisher_for(sim, sleeps, session=session)
    result = publisher.publish(order, milestone("refunded", amount="10.00"))
    assert session.lost == 1
    (refund,) = sim.refunds(shop_order["id"])
    assert result["refund_id"] == refund.refund_id


def test_refunded__more_than_was_paid_is_rejected(sim, publisher):
    shop_order, order = place(sim)
    with pytest.raises(PublishRejected, match="left to refund"):
        publisher.publish(order, milestone("refunded", amount="9999.00"))
    assert sim.refunds(shop_order["id"]) == []


# --- paid ---------------------------------------------------------------------------------------------


def test_paid__marks_a_pending_order_paid_once(sim, publisher):
    shop_order, order = place(sim, financial_status="pending")
    first = publisher.publish(order, milestone("paid"))
    again = publisher.publish(order, milestone("paid"))
    assert first == {"financial_status": "PAID", "replayed": False}
    assert again == {"financial_status": "PAID", "replayed": True}
    assert [t["kind"] for t in sim.transactions(shop_order["id"])] == ["SALE"]


def test_paid__an_order_shopify_shows_paid_needs_no_call(sim, publisher):
    shop_order, order = place(sim)
    assert publisher.publish(order, milestone("paid")) == {"financial_status": "PAID", "replayed": True}
    assert len(sim.transactions(shop_order["id"])) == 1


# --- throttling, failures, userErrors -----------------------------------------------------------------


def test_throttled_mutations_are_waited_out(sim, publisher, sleeps):
    shop_order, order = place(sim)
    sim.throttle_api(times=2)
    publisher.publish(order, shipped_all(order, "1ZTHROTTLED"))
    assert len(sim.fulfillments(shop_order["id"])) == 1
    # Each THROTTLED answer said the bucket was empty: 10 points at 50 points/s is 0.2 s.
    assert sleeps == [0.2, 0.2]


def test_throttled_past_the_admins_attempts_is_publish_throttled(sim, publisher):
    shop_order, order = place(sim)
    sim.throttle_api(times=3)
    with pytest.raises(PublishThrottled) as caught:
        publisher.publish(order, shipped_all(order, "1ZSLOW"))
    assert caught.value.retry_after == 0.2
    assert sim.fulfillments(shop_order["id"]) == []


def test_429_past_the_admins_attempts_is_publish_throttled_with_retry_after(sim, publisher):
    _, order = place(sim)
    sim.fail_api(times=3, status=429, retry_after=0.2)
    with pytest.raises(PublishThrottled) as caught:
        publisher.publish(order, milestone("paid"))
    assert caught.value.retry_after == pytest.approx(0.2)


def test_a_5xx_on_a_mutation_is_read_back_then_sent_again(sim, publisher):
    shop_order, order = place(sim)
    sim.fail_api(times=1, status=503, mutations_only=True)
    result = publisher.publish(order, shipped_all(order, "1ZRETRIED"))
    (fulfillment,) = sim.fulfillments(shop_order["id"])
    assert result["fulfillment_ids"] == [fulfillment.fulfillment_id]


def test_5xx_past_the_retries_is_publish_unavailable(sim, publisher, sleeps):
    shop_order, order = place(sim)
    sim.fail_api(times=3, status=502, mutations_only=True)
    with pytest.raises(PublishUnavailable, match="HTTP 502"):
        publisher.publish(order, shipped_all(order, "1ZDOWN"))
    assert sim.fulfillments(shop_order["id"]) == []
    assert sleeps == [0.005, 0.01]  # backoff between the three tries, each after a fresh read
    sim.fail_api(times=3, status=500)  # reads fail too
    with pytest.raises(PublishUnavailable):
        publisher.publish(order, milestone("cancelled"))


def test_user_errors_are_rejected_naming_field_and_message(sim, publisher):
    shop_order, order = place(sim)
    sim.reject_next(
        "fulfillmentCreate", "Tracking number is invalid", field=["fulfillment", "trackingInfo", "numbers"]
    )
    with pytest.raises(
        PublishRejected, match=r"fulfillment\.trackingInfo\.numbers: Tracking number is invalid"
    ):
        publisher.publish(order, shipped_all(order, "BAD"))
    assert sim.fulfillments(shop_order["id"]) == []


def test_a_refused_token_is_rejected(sim):
    _, order = place(sim)
    admin = ShopifyAdmin(SHOP, "shpat_wrong", api_base=sim.url)
    with pytest.raises(PublishRejected, match="access token"):
        ShopifyPublisher(admin).publish(order, milestone("paid"))


# --- the simulator's version rules --------------------------------------------------------------------


def graphql(sim: ShopifySimulator, version: str, query: str, variables: dict) -> dict:
    return requests.post(
        f"{sim.url}/admin/api/{version}/graphql.json",
        json={"query": query, "variables": variables},
        headers={"X-Shopify-Access-Token": TOKEN},
        timeout=20,
    ).json()


def test_simulator__refund_create_needs_an_idempotency_key_from_2026_04(sim):
    shop_order, _ = place(sim)
    (sale,) = sim.transactions(shop_order["id"])
    mutation = "mutation R($input: RefundInput!) { refundCreate(input: $input) { refund { id } } }"
    refund = {
        "orderId": shop_order["admin_graphql_api_id"],
        "transactions": [{"orderId": shop_order["admin_graphql_api_id"], "parentId": sale["id"],
                          "amount": "1.00", "gateway": "manual", "kind": "REFUND"}],
    }  # fmt: skip
    answer = graphql(sim, API_VERSION, mutation, {"input": refund})
    assert "@idempotent directive is required" in answer["errors"][0]["message"]
    assert graphql(sim, "2026-01", mutation, {"input": refund})["data"]["refundCreate"]["userErrors"] == []


def test_simulator__order_cancel_takes_refund_method_only_from_2025_07(sim):
    shop_order, _ = place(sim)
    mutation = (
        "mutation C($id: ID!, $m: OrderCancelRefundMethodInput) { orderCancel(orderId: $id, reason: OTHER,"
        " refundMethod: $m, restock: true) { job { id } orderCancelUserErrors { message } } }"
    )
    variables = {"id": shop_order["admin_graphql_api_id"], "m": {"originalPaymentMethodsRefund": False}}
    answer = graphql(sim, "2025-04", mutation, variables)
    assert "doesn't accept argument 'refundMethod'" in answer["errors"][0]["message"]
    assert sim.cancellations(shop_order["id"]) == []
    assert graphql(sim, "2025-07", mutation, variables)["data"]["orderCancel"]["orderCancelUserErrors"] == []
    assert sim.cancellations(shop_order["id"])[0].reason == "OTHER"
