"""GIVEN an Amazon seller connected and its SP-API (the simulator) WHEN a notification is handled or
replayed THEN the order is stored once, with what Amazon gave, flagged when the address is withheld, and
filled in by a later read."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.domain.connections import register
from chalicelib.domain.order import derive_order_id
from chalicelib.entrypoints.queue_records import amazon_notification_record
from local.simulators.amazon import AmazonSimulator
from tests.fake_time import FakeTime
from tests.fakes import RecordingParkingLot
from tests.unit.api import AUTH
from tests.unit.channels.test_spapi_client import (
    CLIENT_ID,
    CLIENT_SECRET,
    MARKETPLACE,
    REFRESH_TOKEN,
    SELLER,
    make_client,
)
from tests.unit.test_parking import record, run_batch

REFUSED = "shipping_address (restricted data token refused)"


@pytest.fixture
def fake_time():
    return FakeTime()


@pytest.fixture
def amazon(started, fake_time):
    """A seller whose app lacks the restricted role: every restricted data token is refused (403)."""
    sim = AmazonSimulator(SELLER, MARKETPLACE, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN,
                          seed=7, clock=fake_time, jp_rate=0.0, restricted_role=False)  # fmt: skip
    return started(sim.start())


@pytest.fixture
def connected(svc, amazon, fake_time):
    client = make_client(amazon, fake_time)
    secrets = {"lwa_client_id": CLIENT_ID, "lwa_client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}
    body = {"channel": "amazon", "store": SELLER, "marketplace_id": MARKETPLACE, **secrets}
    register(body, connections=svc.connections, secrets=svc.secrets, secret_prefix="t/", now=svc.now)
    svc.spapi = lambda connection, secrets: client
    svc.now = lambda: datetime.now(UTC)  # the simulator stamps its orders with the real time
    svc.parking = RecordingParkingLot()
    notifications: list[dict] = []
    amazon.notify = notifications.append
    return notifications


def sqs_record(body: dict, message_id: str = "m-1") -> SQSRecord:
    return SQSRecord(record(json.dumps(body), message_id))


def test_rdt_refused__the_order_is_stored_with_what_amazon_gave__flagged_as_missing_its_address(
    svc, amazon, connected
):
    placed = amazon.create_order(OrderStatus="Unshipped", pii=False)
    [notification] = connected

    amazon_notification_record(sqs_record(notification))  # raised SpApiAuthError before: lost to the DLQ

    stored = svc.orders.get(derive_order_id("amazon", SELLER, placed["AmazonOrderId"]))
    assert stored is not None and amazon.requests["createRestrictedDataToken"] >= 1
    order = stored.order
    assert order.missing == [REFUSED]
    assert order.shipping_address is not None and order.shipping_address.line1 is None
    assert order.shipping_address.country == placed["ShippingAddress"]["CountryCode"]
    events = [h.event for h in order.history]
    assert "received" in events and "data_missing" in events
    assert svc.workflow.started  # its lifecycle runs; allocation holds it for an operator


def test_rdt_refused_then_granted__a_later_read_fills_the_address_and_clears_the_flag(
    svc, client, amazon, connected
):
    placed = amazon.create_order(OrderStatus="Unshipped", pii=False)
    [notification] = connected
    amazon_notification_record(sqs_record(notification))
    delivery_id = f"amazon:{notification['NotificationMetadata']['NotificationId']}"
    amazon.restricted_role = True  # the seller's app got the role: the next read gets the address

    failed = replay(svc, client, delivery_id)  # an operator's retry once the role is granted

    assert failed == set() and svc.parking.parked == []
    order = svc.orders.get(derive_order_id("amazon", SELLER, placed["AmazonOrderId"])).order
    full = amazon.shipping_address(placed["AmazonOrderId"])
    assert order.missing == []
    assert order.shipping_address is not None and order.shipping_address.line1 == full["AddressLine1"]
    events = [h.event for h in order.history]
    assert events.count("received") == 1 and "data_filled" in events


def replay(svc, client, delivery_id: str) -> set[str]:
    """POST /api/deliveries/replay, then the ingest handler over what it queued: the ids left to retry."""
    answer = client.http.post(
        "/api/deliveries/replay", body=json.dumps({"delivery_id": delivery_id}), headers=AUTH
    )
    assert answer.status_code == 202
    queued = svc.ingest_queue.sent[-1]
    return run_batch(client, record(json.dumps(queued["body"]), "m-replay", queued["group_id"]))


def test_replayed_amazon_delivery__processed_as_the_original_was__not_failed_into_the_dlq(
    svc, client, amazon, connected
):
    amazon.restricted_role = True
    placed = amazon.create_order(OrderStatus="Unshipped", pii=False)
    [notification] = connected
    amazon_notification_record(sqs_record(notification))
    reads = amazon.requests["getOrder"]

    # Before: the handler read payload["order"] from the archived notification and failed (KeyError).
    failed = replay(svc, client, f"amazon:{notification['NotificationMetadata']['NotificationId']}")

    assert failed == set() and svc.parking.parked == []
    assert amazon.requests["getOrder"] == reads + 1  # the order read again, as for the notification
    order = svc.orders.get(derive_order_id("amazon", SELLER, placed["AmazonOrderId"])).order
    assert [h.event for h in order.history].count("received") == 1  # old news changes nothing
    assert order.shipping_address is not None and order.shipping_address.line1
