"""The first real path: HTTP → SQS FIFO → ingest handler → DynamoDB → Step Functions → Lambda task."""

from __future__ import annotations

import json
import uuid

from chalicelib import resources
from chalicelib.domain.order import derive_order_id
from tests.integration.conftest import WAIT_SECONDS, events, eventually, has_event
from tests.orders import manual_body


def manual_order(external_id: str, **overrides):
    body = manual_body(
        "it-store",
        external_id,
        customer={"email": "buyer@example.com", "name": "Buyer"},
        lines=[
            {"sku": "MUG", "title": "Mug", "quantity": 2, "unit_price": "12.50"},
            {"sku": "CAP", "title": "Cap", "quantity": 1, "unit_price": "19.95"},
        ],
        totals={"shipping": "4.90"},
        # Paid by bank transfer already: the payment stage records it.
        payment={"source": "bank_transfer", "reference": "BT-1", "amount_captured": "49.85"},
    )
    body.update(overrides)
    return body


def wait_for_event(stack, order_id, event, timeout=WAIT_SECONDS):
    return stack.order_when(order_id, has_event(event), timeout=timeout)


def test_order_flows_from_http_to_a_validated_order(stack):
    external_id = f"IT-{uuid.uuid4().hex[:8]}"
    accepted = stack.api("POST", "/api/orders", json=manual_order(external_id))
    assert accepted.status_code == 202
    order_id = accepted.json()["order_id"]
    assert order_id == derive_order_id("manual", "it-store", external_id)

    # No shipping address: nothing to ship, so the order completes as soon as it is paid. Its end state
    # is what is asserted; that it was PAID on the way is in its history.
    order = stack.order_when(order_id, has_event("completed"))
    assert order["status"] == "COMPLETED"
    assert events(order).index("payment_recorded") < events(order).index("completed")
    assert order["fraud"]["decision"] == "approve"
    assert order["payment"]["amount_captured"] == "49.85"
    assert order["totals"] == {
        "subtotal": "44.95",
        "discount": "0.00",
        "shipping": "4.90",
        "tax": "0.00",
        "total": "49.85",
        "taxes_included": False,
    }
    validated = next(h for h in order["history"] if h["event"] == "validated")
    assert validated["detail"] == {"totals_consistent": True, "issues": []}

    stack.finished(order_id, "SUCCEEDED")

    by_channel = stack.api("GET", f"/api/orders/by-channel/manual/{external_id}")
    assert by_channel.json()["order_id"] == order_id
    listed = stack.api("GET", "/api/orders", params={"status": "COMPLETED", "limit": 100}).json()
    assert order_id in [o["order_id"] for o in listed["orders"]]


def test_totals_that_do_not_add_up_are_flagged_not_hidden(stack):
    external_id = f"IT-{uuid.uuid4().hex[:8]}"
    body = manual_order(external_id, totals={"shipping": "4.90", "total": "10.00"})
    order_id = stack.api("POST", "/api/orders", json=body).json()["order_id"]
    order = wait_for_event(stack, order_id, "validated")
    validated = next(h for h in order["history"] if h["event"] == "validated")
    assert validated["detail"]["totals_consistent"] is False
    assert order["totals"]["total"] == "10.00"  # the channel's own figure is kept


def test_the_same_order_posted_three_times_is_one_order_and_one_execution(stack):
    external_id = f"IT-{uuid.uuid4().hex[:8]}"
    body = manual_order(external_id)
    answers = [stack.api("POST", "/api/orders", json=body) for _ in range(3)]
    assert {a.status_code for a in answers} == {202}
    order_id = answers[0].json()["order_id"]
    order = wait_for_event(stack, order_id, "fraud_checked")
    assert [h["event"] for h in order["history"]][:3] == ["received", "validated", "fraud_checked"]


def test_a_newer_update_applies_and_an_older_one_is_ignored(stack):
    external_id = f"IT-{uuid.uuid4().hex[:8]}"
    order_id = stack.api("POST", "/api/orders", json=manual_order(external_id)).json()["order_id"]
    wait_for_event(stack, order_id, "validated")
    newer = manual_order(external_id, updated_at="2026-11-23T11:00:00Z")
    newer["lines"][0]["quantity"] = 5
    assert stack.api("POST", "/api/orders", json=newer).status_code == 202
    order = wait_for_event(stack, order_id, "updated")
    assert order["lines"][0]["quantity"] == 5
    older = manual_order(external_id, updated_at="2026-11-23T10:30:00Z")
    older["lines"][0]["quantity"] = 9
    stack.api("POST", "/api/orders", json=older)
    marker = manual_order(external_id, updated_at="2026-11-23T12:00:00Z")
    marker["lines"][0]["quantity"] = 7
    stack.api("POST", "/api/orders", json=marker)  # same message group: processed after `older`

    def applied():
        current = stack.api("GET", f"/api/orders/{order_id}").json()
        return current if [h["event"] for h in current["history"]].count("updated") == 2 else None

    current = eventually(applied)
    assert current["lines"][0]["quantity"] == 7


def test_bad_bodies_are_rejected_at_the_door_with_400(stack):
    assert (
        stack.api(
            "POST", "/api/orders", data="{oops", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    missing = stack.api("POST", "/api/orders", json={"external_id": "x"})
    assert missing.status_code == 400 and "currency" in missing.json()["Message"]


def manual_delivery(external_id: str, **overrides) -> str:
    return json.dumps(
        {
            "delivery_id": f"batch-{external_id}-{uuid.uuid4().hex[:6]}",
            "channel": "manual",
            "store": "it-store",
            "topic": "orders/create",
            "received_at": "2026-11-23T10:00:00+00:00",
            "payload": manual_order(external_id, **overrides),
        }
    )


def parked_in_dlq(stack, marker: str) -> list[dict]:
    """The ingest DLQ's messages whose body holds `marker` (taken for the DLQ's visibility timeout)."""
    sqs = stack.client("sqs")
    messages = sqs.receive_message(
        QueueUrl=stack.queue_url(resources.INGEST_QUEUE.dlq_name),
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        WaitTimeSeconds=1,
    ).get("Messages", [])
    return [m for m in messages if marker in m["Body"]]


def reason_of(message: dict) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}


def test_batch_with_one_poison_record__only_it_is_parked_at_once__the_good_ones_applied(stack):
    """Two good deliveries and one that can never be parsed, sent as one SQS batch: the poison is parked in
    the DLQ at its first receive (not retried), the good ones are applied."""
    sqs = stack.client("sqs")
    spec = resources.INGEST_QUEUE
    queue_url = stack.queue_url(spec.name)
    before = stack.local_status()["event_sources"]["ingest_deliveries"]
    good = []
    entries = []
    for i in range(2):
        external_id = f"IT-{uuid.uuid4().hex[:8]}"
        good.append(derive_order_id("manual", "it-store", external_id))
        entries.append(
            {"Id": f"good{i}", "MessageBody": manual_delivery(external_id), "MessageGroupId": external_id}
        )
    poison_marker = f"poison-{uuid.uuid4().hex}"
    entries.append({"Id": "poison", "MessageBody": poison_marker, "MessageGroupId": poison_marker})
    for entry in entries:
        entry["MessageDeduplicationId"] = uuid.uuid4().hex
    assert not sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed")

    for order_id in good:
        order = wait_for_event(stack, order_id, "fraud_checked")
        assert [h["event"] for h in order["history"]][:3] == ["received", "validated", "fraud_checked"]

    [dead] = eventually(lambda: parked_in_dlq(stack, poison_marker))
    assert dead["Body"] == poison_marker  # as received
    why = reason_of(dead)
    assert why["reason"] == "MalformedDelivery" and "not JSON" in why["error"]
    assert why["receive_count"] == "1" and why["parked_at"]
    after = stack.local_status()["event_sources"]["ingest_deliveries"]
    assert after["succeeded"] - before["succeeded"] >= 3  # the parked one counts as done


def test_a_poison_delivery_for_an_order__parked_at_once__the_good_one_after_it_applied_promptly(stack):
    """The same message group (channel:store:order): an invalid delivery no longer holds back a good one."""
    sqs = stack.client("sqs")
    queue_url = stack.queue_url(resources.INGEST_QUEUE.name)
    external_id = f"IT-{uuid.uuid4().hex[:8]}"
    group = f"manual:it-store:{external_id}"
    order_id = derive_order_id("manual", "it-store", external_id)
    poison = manual_delivery(external_id, currency="XX")
    marker = json.loads(poison)["delivery_id"]
    for body in (poison, manual_delivery(external_id)):
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=uuid.uuid4().hex,
        )

    order = wait_for_event(stack, order_id, "received")
    assert order["currency"] == "EUR"
    [dead] = eventually(lambda: parked_in_dlq(stack, marker))
    why = reason_of(dead)
    assert why["reason"] == "InvalidOrder" and why["receive_count"] == "1"
    assert dead["Attributes"]["MessageGroupId"] == group
