"""Poison deliveries are parked at once with their reason; only transient failures are retried.

A bad-input catalogue over the ingest queue's handler: each queued body → parked (with which reason) or
failed for the queue to retry, and nothing stored, nothing queued for the poison. The FIFO group of a parked
record goes on in the same batch.
"""

from __future__ import annotations

import json
import uuid

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from chalicelib import resources
from chalicelib.domain.errors import ConcurrentUpdate, InvalidInput, MalformedDelivery, OrderNotYetKnown
from chalicelib.domain.ingest import normalise_manual_event
from chalicelib.domain.order import derive_order_id
from chalicelib.domain.upstream import (
    UpstreamAuthError,
    UpstreamNotFound,
    UpstreamThrottled,
    UpstreamUnavailable,
)
from tests.fakes import RecordingParkingLot
from tests.orders import manual_body

GROUP = "manual:unit-store:U-1"


def manual_payload(external_id: str, **over):
    payload = manual_body(
        "unit-store",
        external_id,
        customer={"email": "buyer@example.com", "name": "Buyer"},
        lines=[{"sku": "MUG", "title": "Mug", "quantity": 2, "unit_price": "12.50"}],
    )
    payload.update(over)
    return payload


def delivery(external_id: str = "U-1", channel: str = "manual", **payload_over) -> str:
    return json.dumps(
        {
            "delivery_id": f"d-{external_id}-{uuid.uuid4().hex[:6]}",
            "channel": channel,
            "store": "unit-store",
            "topic": "orders/create",
            "received_at": "2026-11-23T10:00:00+00:00",
            "external_id": external_id,
            "payload": manual_payload(external_id, **payload_over),
        }
    )


def record(body: str, message_id: str, group: str = GROUP, receive_count: int = 1) -> dict:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1795000000000",
            "MessageGroupId": group,
            "MessageDeduplicationId": message_id,
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:order-hub-ingest.fifo",
        "awsRegion": "us-east-1",
    }


def run_batch(client, *records: dict) -> set[str]:
    """The ingest handler over one SQS batch; the ids SQS is told failed (left to retry)."""
    try:
        answer = client.lambda_.invoke("ingest_deliveries", {"Records": list(records)})
    except BatchProcessingError:  # every record failed: the invocation fails, SQS retries them all
        return {r["messageId"] for r in records}
    return {item["itemIdentifier"] for item in answer.payload["batchItemFailures"]}


@pytest.fixture
def lot(svc):
    svc.parking = RecordingParkingLot()
    return svc.parking


NESTED = "[" * 10_000 + "]" * 10_000

# queued body → the reason it is parked with
POISON = [
    ("not JSON", "poison-not-json", "MalformedDelivery"),
    ("a JSON string, not a delivery", json.dumps("hello"), "MalformedDelivery"),
    ("a delivery without its fields", json.dumps({"channel": "manual"}), "MalformedDelivery"),
    ("nested 10,000 deep", NESTED, "MalformedDelivery"),
    ("a channel the hub has no normaliser of", delivery(channel="nope"), "MalformedDelivery"),
    ("a manual order without a currency", delivery(currency=None), "InvalidOrder"),
    (
        "a manual order with a price it cannot read",
        delivery(lines=[{"sku": "X", "title": "X", "quantity": 1, "unit_price": "abc"}]),
        "InvalidOrder",
    ),
]


@pytest.mark.parametrize(("body", "reason"), [pytest.param(b, r, id=case) for case, b, r in POISON])
def test_a_poison_delivery__is_parked_at_once_with_its_reason__and_not_retried(
    client, svc, lot, body, reason
):
    failed = run_batch(client, record(body, "m-poison"))
    assert failed == set()  # done for SQS: deleted from the queue, its group moves on
    [(queue, parked)] = lot.parked
    assert queue == resources.INGEST_QUEUE.key
    assert parked.reason == reason and parked.error
    assert parked.body == body and parked.message_id == "m-poison" and parked.group_id == GROUP
    assert parked.receive_count == 1 and parked.parked_at == svc.now()
    assert svc.orders.list_orders(status=None, channel=None, limit=10, cursor=None).orders == []
    assert svc.ingest_queue.sent == [] and svc.workflow.started == []


def test_a_poison_delivery__the_good_one_after_it_in_its_group_is_applied_in_the_same_batch(client, svc, lot):
    good = delivery("U-1")
    failed = run_batch(client, record("poison-first", "m-1"), record(good, "m-2"))
    assert failed == set()
    assert [p.message_id for _, p in lot.parked] == ["m-1"]
    stored = svc.orders.get(derive_order_id("manual", "unit-store", "U-1"))
    assert stored is not None and stored.order.history[0].event == "received"


def test_a_poison_delivery_that_cannot_be_parked__is_left_to_the_queue_with_its_group_behind_it(client, svc):
    svc.parking = RecordingParkingLot(broken=True)
    failed = run_batch(client, record("poison-first", "m-1"), record(delivery("U-1"), "m-2"))
    assert failed == {"m-1", "m-2"}  # retried by SQS, in order; nothing lost
    assert svc.orders.get(derive_order_id("manual", "unit-store", "U-1")) is None


def test_without_a_parking_lot__a_poison_delivery_fails_as_before(client, svc):
    assert run_batch(client, record("poison", "m-1")) == {"m-1"}


def raising(error: Exception):
    def normaliser(topic, payload, store):
        raise error

    return normaliser


# what the channel's normaliser (or an upstream behind it) raises → parked (True) or retried (False)
FAILURES = [
    (MalformedDelivery("bad"), True),
    (InvalidInput("bad"), True),
    (UpstreamAuthError("401 from the channel"), True),
    (ConcurrentUpdate("o-1"), False),
    (OrderNotYetKnown("o-1"), False),
    (UpstreamUnavailable("503"), False),
    (UpstreamThrottled("429", retry_after=2.0), False),
    (UpstreamNotFound("404: not visible yet"), False),
    (RuntimeError("a bug"), False),
]


@pytest.mark.parametrize(("error", "parks"), FAILURES, ids=[type(e).__name__ for e, _ in FAILURES])
def test_only_permanent_failures_are_parked__transient_ones_are_retried(client, svc, lot, error, parks):
    svc.normalisers = {"manual": raising(error)}
    failed = run_batch(client, record(delivery("U-1"), "m-1"), record(delivery("U-1"), "m-2"))
    if parks:
        # A normaliser's refusal of the order itself is parked as the order's own error (InvalidOrder).
        reason = "InvalidOrder" if type(error) is InvalidInput else type(error).__name__
        assert failed == set() and [p.reason for _, p in lot.parked] == [reason] * 2
    else:
        # FIFO: the rest of the group fails with it, keeping the group's order.
        assert failed == {"m-1", "m-2"} and lot.parked == []


def test_a_parked_record_does_not_hold_back_other_groups_or_its_own(client, svc, lot):
    svc.normalisers = {"manual": normalise_manual_event}
    other = "manual:unit-store:U-2"
    failed = run_batch(
        client,
        record(delivery("U-1", currency="X"), "m-1"),
        record(delivery("U-2"), "m-2", group=other),
        record(delivery("U-1"), "m-3"),
    )
    assert failed == set() and [p.message_id for _, p in lot.parked] == ["m-1"]
    for external_id in ("U-1", "U-2"):
        assert svc.orders.get(derive_order_id("manual", "unit-store", external_id)) is not None


class StubSqs:
    """Just enough of an SQS client: what was sent, and a dead-letter queue to read back."""

    def __init__(self, dead: list[dict] | None = None) -> None:
        self.sent: list[dict] = []
        self.received: list[dict] = []
        self.dead = dead or []

    def send_message(self, **request):
        self.sent.append(request)
        return {"MessageId": "x"}

    def send_message_batch(self, QueueUrl, Entries):
        self.sent.extend(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}

    def receive_message(self, **request):
        self.received.append(request)
        batch, self.dead = self.dead, [] if request.get("VisibilityTimeout") else self.dead
        return {"Messages": batch}

    def delete_message_batch(self, **request):
        return {}

    def get_queue_attributes(self, **request):
        return {"Attributes": {"ApproximateNumberOfMessages": str(len(self.dead))}}


def parked_message(**over):
    from datetime import UTC, datetime

    from chalicelib.domain.parking import ParkedMessage

    fields = {
        "body": "poison",
        "message_id": "m-1",
        "group_id": GROUP,
        "reason": "MalformedDelivery",
        "error": "queued delivery is not JSON",
        "parked_at": datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        "receive_count": 1,
        "attributes": {"trace": "t-1"},
    }
    return ParkedMessage(**{**fields, **over})


def test_sqs_parking__sends_the_message_as_received_to_the_dlq_with_why_in_its_attributes():
    from chalicelib.adapters.parking import SqsParkingLot

    sqs = StubSqs()
    SqsParkingLot(sqs, {"ingest": "https://dlq/ingest"}).park("ingest", parked_message())
    [sent] = sqs.sent
    assert sent["QueueUrl"] == "https://dlq/ingest" and sent["MessageBody"] == "poison"
    assert sent["MessageGroupId"] == GROUP and len(sent["MessageDeduplicationId"]) == 64
    attributes = {k: v["StringValue"] for k, v in sent["MessageAttributes"].items()}
    assert attributes == {
        "reason": "MalformedDelivery",
        "error": "queued delivery is not JSON",
        "parked_at": "2026-11-23T12:00:00+00:00",
        "receive_count": "1",
        "source_message_id": "m-1",
        "trace": "t-1",
    }


def test_sqs_parking__without_a_dlq_raises__so_the_queue_keeps_the_message():
    from chalicelib.adapters.parking import SqsParkingLot

    with pytest.raises(LookupError):
        SqsParkingLot(StubSqs(), {}).park("ingest", parked_message())


def test_redrive__sends_a_parked_message_back_without_why_it_was_parked():
    from chalicelib.adapters.redrive import redrive

    attributes = {
        name: {"DataType": "String", "StringValue": value}
        for name, value in {"reason": "InvalidInput", "error": "e", "parked_at": "t", "trace": "t-1"}.items()
    }
    dead = [
        {
            "Body": "poison",
            "ReceiptHandle": "r",
            "Attributes": {"MessageGroupId": GROUP},
            "MessageAttributes": attributes,
        }
    ]
    sqs = StubSqs(dead)
    assert redrive(sqs, dlq_url="dlq", source_url="src", fifo=True).moved == 1
    [entry] = sqs.sent
    assert entry["MessageBody"] == "poison" and entry["MessageGroupId"] == GROUP
    assert set(entry["MessageAttributes"]) == {"trace"}


def test_status_page_queue_row__shows_why_its_dead_letters_are_there():
    from chalicelib.adapters.status_board import parked_reasons
    from chalicelib.entrypoints.status_html import queues_section

    reason = {"reason": {"DataType": "String", "StringValue": "MalformedDelivery"}}
    dead = [
        {"Body": "a", "MessageAttributes": reason},
        {"Body": "b", "MessageAttributes": reason},
        {"Body": "c"},
    ]
    sqs = StubSqs(dead)
    reasons = parked_reasons(sqs, "dlq")
    assert reasons == {"MalformedDelivery": 2, "retries exhausted": 1}
    assert sqs.received[0]["VisibilityTimeout"] == 0  # read in place, never taken
    row = {"key": "ingest", "name": "order-hub-ingest.fifo", "depth": 0, "in_flight": 0, "dlq_depth": 3}
    page = queues_section("", [{**row, "parked": reasons}], "csrf", "/status")
    assert "MalformedDelivery ×2, retries exhausted ×1" in page and "Redrive" in page
