"""GIVEN the Amazon simulator WHEN milestones are published THEN confirmShipment and the cancel feed land."""

from datetime import UTC, datetime

import pytest

from chalicelib.domain.publishing import Milestone, PublishRejected, PublishThrottled, PublishUnavailable
from chalicelib.integrations.amazon.notifications import normalise_amazon_order
from chalicelib.integrations.amazon.order_feed import parse_processing_report
from chalicelib.integrations.amazon.publisher import AmazonPublisher
from chalicelib.integrations.amazon.shipment import carrier_code, package_reference_id
from chalicelib.integrations.amazon.spapi import SpApiClient
from local.simulators.amazon import AmazonSimulator
from tests.fake_time import FakeTime

SELLER, MARKETPLACE = "A2HUB7SELLER01", "ATVPDKIKX0DER"
CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN = "amzn1.application-oa2-client.hub", "lwa-secret", "Atzr|refresh"
SHIPPED_AT = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)


@pytest.fixture
def fake_time():
    """One clock (a FakeTime) for client, publisher and simulator; sleeping advances it instead of waiting."""
    return FakeTime()


@pytest.fixture
def simulator(started, fake_time):
    sim = AmazonSimulator(
        SELLER, MARKETPLACE, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN,
        seed=7, clock=fake_time, jp_rate=0.0, feed_delay=4.0,
    )  # fmt: skip
    return started(sim.start())


def make_publisher(sim, fake_time, **client_options):
    client = SpApiClient(
        endpoint=sim.url,
        lwa_endpoint=sim.lwa_url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        clock=fake_time,
        sleep=fake_time.sleep,
        jitter=lambda: 0.5,
        timeout=20,
        **client_options,
    )
    publisher = AmazonPublisher(
        client, MARKETPLACE, feed_wait=20.0, feed_poll_interval=2.0, sleep=fake_time.sleep, clock=fake_time
    )
    return publisher


@pytest.fixture
def publisher(simulator, fake_time):
    return make_publisher(simulator, fake_time)


def hub_order(sim, item_count, **overrides):
    amazon = sim.create_order(item_count=item_count, pii=True, OrderStatus="Unshipped", **overrides)
    amazon_id = amazon["AmazonOrderId"]
    items = [dict(i) for i in sim._orders[amazon_id].items]
    return normalise_amazon_order(sim.order(amazon_id), items, SELLER).order


def shipped(order, parcels, lines=None, publication_id="pub-ship-1"):
    return Milestone(
        publication_id=publication_id,
        kind="shipped",
        at=SHIPPED_AT,
        shipment_id="shp_1",
        lines=lines
        if lines is not None
        else [{"line_id": ln.line_id, "quantity": ln.quantity} for ln in order.lines],
        parcels=parcels,
        complete=lines is None,
    )


def cancelled(publication_id="pub-cancel-1", reason="out of stock at the warehouse"):
    return Milestone(publication_id=publication_id, kind="cancelled", at=SHIPPED_AT, reason=reason)


# --- shipped -------------------------------------------------------------------------------------


def test_shipped__one_parcel__confirms_one_package_and_the_order_is_shipped(simulator, publisher):
    order = hub_order(simulator, 2)

    answer = publisher.publish(
        order, shipped(order, [{"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}])
    )

    packages = simulator.shipment_confirmations(order.external_id)
    assert len(packages) == 1
    detail = packages[0]["packageDetail"]
    assert detail["carrierCode"] == "UPS"
    assert detail["trackingNumber"] == "1Z999AA10123456784"
    assert detail["shipDate"] == "2026-11-23T15:30:00Z"
    assert detail["packageReferenceId"] == package_reference_id("pub-ship-1", 0)
    assert {i["orderItemId"]: i["quantity"] for i in detail["orderItems"]} == {
        ln.line_id: ln.quantity for ln in order.lines
    }
    assert simulator.order(order.external_id)["OrderStatus"] == "Shipped"
    assert answer["packages"][0]["already_confirmed"] is False
    # Amazon tells the seller's queue about it, as for any status change.
    assert (
        simulator.delivered[-1]["Payload"]["OrderChangeNotification"]["Summary"]["OrderStatus"] == "Shipped"
    )


def test_shipped__several_parcels__one_confirmation_each_with_its_own_lines(simulator, publisher):
    order = hub_order(simulator, 2)
    first, second = order.lines
    parcels = [
        {"carrier": "FedEx", "tracking_number": "794698212345",
         "lines": [{"line_id": first.line_id, "quantity": first.quantity}]},
        {"carrier": "Some Local Courier", "tracking_number": "LC-0042",
         "lines": [{"line_id": second.line_id, "quantity": second.quantity}]},
    ]  # fmt: skip

    publisher.publish(order, shipped(order, parcels))

    packages = simulator.shipment_confirmations(order.external_id)
    assert [p["packageDetail"]["trackingNumber"] for p in packages] == ["794698212345", "LC-0042"]
    assert packages[0]["packageDetail"]["orderItems"] == [
        {"orderItemId": first.line_id, "quantity": first.quantity}
    ]
    # An unknown carrier goes as Other, named.
    assert (packages[1]["packageDetail"]["carrierCode"], packages[1]["packageDetail"]["carrierName"]) == (
        "Other",
        "Some Local Courier",
    )
    assert len({p["packageDetail"]["packageReferenceId"] for p in packages}) == 2
    assert simulator.order(order.external_id)["OrderStatus"] == "Shipped"


def test_shipped__part_of_the_order__leaves_it_partially_shipped(simulator, publisher):
    order = hub_order(simulator, 2)
    first = order.lines[0]

    publisher.publish(
        order,
        shipped(order, [{"carrier": "USPS", "tracking_number": "9400111899223"}],
                lines=[{"line_id": first.line_id, "quantity": first.quantity}]),
    )  # fmt: skip

    amazon = simulator.order(order.external_id)
    assert amazon["OrderStatus"] == "PartiallyShipped"
    assert amazon["NumberOfItemsShipped"] == first.quantity


def test_shipped__repeated__is_harmless_and_amazon_keeps_one_confirmation_per_package(simulator, publisher):
    order = hub_order(simulator, 1)
    milestone = shipped(order, [{"carrier": "DHL Express", "tracking_number": "JD0146000012345"}])
    publisher.publish(order, milestone)

    again = publisher.publish(order, milestone)

    packages = simulator.shipment_confirmations(order.external_id)
    assert len(packages) == 1
    # Amazon refused the second one (the order is fulfilled); the publisher checked and took it as done.
    assert packages[0]["submissions"] == 1
    assert again["packages"][0]["already_confirmed"] is True
    assert simulator.order(order.external_id)["OrderStatus"] == "Shipped"


def test_shipped__repeated_while_partially_shipped__edits_the_same_package(simulator, publisher):
    order = hub_order(simulator, 2)
    first = order.lines[0]
    milestone = shipped(order, [{"carrier": "UPS", "tracking_number": "1Z1"}],
                        lines=[{"line_id": first.line_id, "quantity": first.quantity}])  # fmt: skip

    publisher.publish(order, milestone)
    publisher.publish(order, milestone)

    packages = simulator.shipment_confirmations(order.external_id)
    assert [p["submissions"] for p in packages] == [2]
    assert simulator.order(order.external_id)["NumberOfItemsShipped"] == first.quantity


def test_shipped__amazon_refuses_the_package__publish_rejected_with_its_message(simulator, publisher):
    order = hub_order(simulator, 1)
    bogus = order.model_copy(
        update={"lines": [order.lines[0].model_copy(update={"line_id": "99999999999999"})]}
    )

    with pytest.raises(PublishRejected, match="OrderItemId 99999999999999 is invalid"):
        publisher.publish(bogus, shipped(bogus, [{"carrier": "UPS", "tracking_number": "1Z2"}]))

    assert simulator.shipment_confirmations(order.external_id) == []


def test_shipped__throttled_twice__waits_it_out_and_confirms(simulator, publisher, fake_time):
    order = hub_order(simulator, 1)
    simulator.fail_next("confirmShipment", 429, times=2)

    publisher.publish(order, shipped(order, [{"carrier": "UPS", "tracking_number": "1Z3"}]))

    assert len(simulator.shipment_confirmations(order.external_id)) == 1
    assert simulator.requests["confirmShipment"] == 3
    assert sum(fake_time.sleeps) >= 0.75 + 1.5  # backoff 1 s then 2 s, × 0.75 with the fixed jitter


def test_shipped__still_throttled_after_retries__publish_throttled_with_a_delay(simulator, fake_time):
    publisher = make_publisher(simulator, fake_time, max_retries=1)
    order = hub_order(simulator, 1)
    simulator.fail_next("confirmShipment", 429, times=5)

    with pytest.raises(PublishThrottled) as caught:
        publisher.publish(order, shipped(order, [{"carrier": "UPS", "tracking_number": "1Z4"}]))

    assert caught.value.retry_after > 0
    assert simulator.shipment_confirmations(order.external_id) == []


def test_shipped__amazon_failing__publish_unavailable(simulator, fake_time):
    publisher = make_publisher(simulator, fake_time, max_retries=2)
    order = hub_order(simulator, 1)
    simulator.fail_next("confirmShipment", 503, times=3)

    with pytest.raises(PublishUnavailable):
        publisher.publish(order, shipped(order, [{"carrier": "UPS", "tracking_number": "1Z5"}]))

    assert simulator.requests["confirmShipment"] == 3
    assert simulator.order(order.external_id)["OrderStatus"] == "Unshipped"


# --- cancelled -----------------------------------------------------------------------------------


def test_cancelled__feed_processed__order_canceled_and_report_read(simulator, publisher, fake_time):
    order = hub_order(simulator, 2)

    answer = publisher.publish(order, cancelled())

    assert simulator.order(order.external_id)["OrderStatus"] == "Canceled"
    (feed,) = simulator.feeds()
    assert feed["feedType"] == "POST_ORDER_ACKNOWLEDGEMENT_DATA"
    assert feed["processingStatus"] == "DONE"
    assert answer == {"feed_id": feed["feedId"], "cancel_reason": "NoInventory"}
    assert "<StatusCode>Failure</StatusCode>" in feed["content"]
    assert feed["content"].count("<CancelReason>NoInventory</CancelReason>") == 2
    assert "<MessagesSuccessful>1</MessagesSuccessful>" in feed["report"]
    assert fake_time.sleeps  # it polled getFeed while Amazon processed
    assert (
        simulator.delivered[-1]["Payload"]["OrderChangeNotification"]["Summary"]["OrderStatus"] == "Canceled"
    )


def test_cancelled__rejected_feed_message__publish_rejected_with_amazons_reason(simulator, publisher):
    order = hub_order(simulator, 1)
    simulator.reject_feed_message(order.external_id, "Order is being prepared for a replacement.", "18999")

    with pytest.raises(PublishRejected, match="18999 Order is being prepared for a replacement"):
        publisher.publish(order, cancelled())

    assert simulator.order(order.external_id)["OrderStatus"] == "Unshipped"


def test_cancelled__repeated__does_not_send_a_second_feed(simulator, publisher):
    order = hub_order(simulator, 1)
    publisher.publish(order, cancelled())

    again = publisher.publish(order, cancelled())

    assert again == {"already_cancelled": True}
    assert len(simulator.feeds()) == 1


def test_cancelled__still_processing__publish_unavailable_then_the_retry_finds_it_done(simulator, fake_time):
    simulator.feed_delay = 60.0
    publisher = make_publisher(simulator, fake_time)
    order = hub_order(simulator, 1)

    with pytest.raises(PublishUnavailable, match="still"):
        publisher.publish(order, cancelled())
    fake_time.sleep(60.0)

    assert publisher.publish(order, cancelled()) == {"already_cancelled": True}
    assert len(simulator.feeds()) == 1


def test_cancelled__shipped_order__rejected_without_a_feed(simulator, publisher):
    order = hub_order(simulator, 1)
    simulator.set_status(order.external_id, "Shipped")

    with pytest.raises(PublishRejected, match="can no longer be cancelled"):
        publisher.publish(order, cancelled())

    assert simulator.feeds() == []


def test_cancelled__gzip_report_and_upload_hiccup__still_cancelled(simulator, publisher):
    simulator.gzip_reports = True
    simulator.fail_next("feedDocument", 503)
    order = hub_order(simulator, 1)

    publisher.publish(order, cancelled(reason="buyer asked"))

    assert simulator.order(order.external_id)["OrderStatus"] == "Canceled"
    assert "<CancelReason>BuyerCanceled</CancelReason>" in simulator.feeds()[0]["content"]


# --- nothing to send -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["delivered", "paid", "refunded"])
def test_milestones_amazon_handles_itself__skipped_without_a_call(simulator, publisher, kind):
    order = hub_order(simulator, 1)
    before = sum(simulator.requests.values())

    answer = publisher.publish(order, Milestone(publication_id=f"pub-{kind}", kind=kind, at=SHIPPED_AT))

    assert "skipped" in answer
    assert sum(simulator.requests.values()) == before


# --- pure parts ----------------------------------------------------------------------------------


def test_package_reference_id__positive_number__stable_and_distinct_per_parcel():
    first = package_reference_id("pub-1", 0)
    assert first.isdigit() and int(first) > 0
    assert first == package_reference_id("pub-1", 0)
    assert len({first, package_reference_id("pub-1", 1), package_reference_id("pub-2", 0)}) == 3


@pytest.mark.parametrize(
    ("name", "code"),
    [("usps", "USPS"), ("UPS", "UPS"), ("FedEx", "FedEx"), ("DHL Express", "DHL"), ("Pony Express", "Other")],
)
def test_carrier_code__maps_names_to_amazons_codes(name, code):
    assert carrier_code(name) == code


def test_parse_processing_report__json_form__errors_by_message():
    report = parse_processing_report(
        b'{"header": {"reportStatus": "DONE"}, "issues": [{"messageId": 1, "code": "90000", '
        b'"severity": "ERROR", "message": "bad"}], "summary": {"messagesProcessed": 1, "errors": 1}}'
    )
    assert [(e.message_code, e.description) for e in report.errors_for("1")] == [("90000", "bad")]


def test_parse_processing_report__refuses_a_dtd():
    from chalicelib.integrations.amazon.errors import SpApiError

    with pytest.raises(SpApiError, match="DTD"):
        parse_processing_report(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')
