"""The order's item layout on DynamoDB (moto in-process): a small order item with its lists in their own
items, one Query per read, nothing written when nothing changed, and the lazy upgrade of old items."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from pynamodb.connection.base import Connection

from chalicelib import resources
from chalicelib.adapters.order_repository import DynamoOrderRepository
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import Order, OrderStatus, Publication
from local.counters import item_size

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


@pytest.fixture
def calls(monkeypatch):
    """The DynamoDB operations PynamoDB sends, in order."""
    seen: list[str] = []
    dispatch = Connection.dispatch

    def recording(self, operation_name, operation_kwargs):
        seen.append(operation_name)
        return dispatch(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "dispatch", recording)
    return seen


def _order() -> Order:
    order = normalise_manual(
        {
            "store": "layout",
            "external_id": f"L-{uuid.uuid4().hex[:8]}",
            "currency": "EUR",
            "placed_at": "2026-11-01T00:00:00Z",
            "customer": {"email": "someone@example.com", "name": "Some One"},
            "lines": [{"title": "Mug", "quantity": 1, "unit_price": "5.00"}],
        }
    )
    order.record("received", order.updated_at, delivery_id="d-1")
    return order


def _items(order_id: str) -> dict[str, dict]:
    answer = boto3.client("dynamodb", region_name="us-east-1").query(
        TableName=resources.TABLE.name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"ORDER#{order_id}"}},
        ConsistentRead=True,
    )
    return {item["sk"]["S"]: item for item in answer["Items"]}


def _tracked(order: Order, events: int) -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    for n in range(events):
        order.record(
            "tracking",
            start + timedelta(minutes=n),
            shipment_id=f"{order.order_id}-1",
            tracking_number="1Z999AA10123456784",
            status="in_transit",
            detail="arrived_at_facility",
        )


def test_the_order_item_stays_small_whatever_its_history_and_outbox_hold(table):
    repo = DynamoOrderRepository()
    order = _order()
    repo.save(order, expected_version=None)
    stored = repo.get(order.order_id)
    _tracked(stored.order, 300)
    at = stored.order.updated_at
    stored.order.publications = [
        Publication(publication_id=f"p-{n}", kind="shipped", created_at=at) for n in range(40)
    ]
    repo.save(stored.order, expected_version=stored.version)
    items = _items(order.order_id)
    assert item_size(items["ORDER"]) < 2048
    assert "history" not in json.loads(items["ORDER"]["document"]["S"])
    assert sum(sk.startswith("H#") for sk in items) == 301 and sum(sk.startswith("P#") for sk in items) == 40
    assert repo.get(order.order_id).order == stored.order


def test_reading_an_order_is_one_query_of_its_partition(table, calls):
    repo = DynamoOrderRepository()
    order = _order()
    _tracked(order, 20)
    repo.save(order, expected_version=None)
    repo.set_review_token(order.order_id, "a-task-token")  # an item of the partition that is not the order's
    calls.clear()
    assert repo.get(order.order_id).order == order
    assert calls == ["Query"]


def test_an_unchanged_order_is_not_written_and_a_changed_one_writes_only_what_changed(table, calls):
    repo = DynamoOrderRepository()
    order = _order()
    repo.save(order, expected_version=None)
    stored = repo.get(order.order_id)
    calls.clear()
    assert repo.save(stored.order, expected_version=stored.version) == stored.version
    assert not WRITES & set(calls)
    # A note without a status move: the order item's version and the one new history item, together.
    stored.order.record("note", stored.order.updated_at)
    repo.save(stored.order, expected_version=stored.version)
    assert [c for c in calls if c in WRITES] == ["TransactWriteItems"]
    assert sorted(_items(order.order_id)) == ["H#000000", "H#000001", "ORDER"]


def test_a_status_move_keeps_the_counters_and_the_by_status_key_in_step(table):
    repo = DynamoOrderRepository()
    order = _order()
    repo.save(order, expected_version=None)
    stored = repo.get(order.order_id)
    stored.order.status = OrderStatus.PAID
    stored.order.record("paid", datetime(2026, 11, 3, tzinfo=UTC))
    repo.save(stored.order, expected_version=stored.version)
    item = _items(order.order_id)["ORDER"]
    assert item["gsi2pk"]["S"] == "STATUS#PAID"
    assert item["gsi2sk"]["S"].startswith("2026-11-03T00:00:00+00:00#")


def _old_layout_item(order: Order, version: int) -> dict:
    """An order item as the repository wrote it before the lists had their own items: one document."""
    placed = order.placed_at.isoformat()
    return {
        "pk": {"S": f"ORDER#{order.order_id}"},
        "sk": {"S": "ORDER"},
        "version": {"N": str(version)},
        "document": {"S": json.dumps(order.to_json())},
        "status": {"S": order.status.value},
        "channel": {"S": order.channel},
        "store": {"S": order.store},
        "external_id": {"S": order.external_id},
        "execution_arn": {"S": "arn:aws:states:us-east-1:123456789012:execution:m:old"},
        "gsi1pk": {"S": f"CHANNEL#{order.channel}#{order.external_id}"},
        "gsi1sk": {"S": order.store},
        "gsi2pk": {"S": f"STATUS#{order.status.value}"},
        "gsi2sk": {"S": f"{order.updated_at.isoformat()}#{order.order_id}"},
        "gsi3pk": {"S": f"STORE#{order.channel}#{order.store}"},
        "gsi3sk": {"S": f"{placed}#{order.order_id}"},
        "gsi4pk": {"S": "ORDERS"},
        "gsi4sk": {"S": f"{placed}#{order.order_id}"},
    }


def test_an_old_layout_order_is_read_as_it_is_and_rewritten_in_the_new_layout_by_its_next_save(table):
    """The migration path of a deployed table: no one-off script; each order moves on its next save."""
    order = _order()
    _tracked(order, 120)  # more entries than one transaction holds
    order.publications = [Publication(publication_id="p-0", kind="paid", created_at=order.updated_at)]
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.put_item(TableName=resources.TABLE.name, Item=_old_layout_item(order, 7))
    repo = DynamoOrderRepository()

    stored = repo.get(order.order_id)
    assert stored.order == order and stored.version == 7 and stored.execution_arn.endswith(":old")
    assert repo.get_by_channel("manual", "layout", order.external_id).order == order
    stored.order.record("completed", datetime(2026, 11, 4, tzinfo=UTC))
    assert repo.save(stored.order, expected_version=7) == 8

    items = _items(order.order_id)
    document = json.loads(items["ORDER"]["document"]["S"])
    assert not {"history", "publications", "returns"} & set(document)
    assert json.loads(items["ORDER"]["lists"]["S"]) == {"history": 122, "publications": 1, "returns": 0}
    assert items["ORDER"]["execution_arn"]["S"].endswith(":old")  # what lives beside the document stays
    assert sum(sk.startswith("H#") for sk in items) == 122
    again = DynamoOrderRepository().get(order.order_id)
    assert again.order == stored.order and again.version == 8
