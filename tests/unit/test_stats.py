"""The status page's aggregates on DynamoDB (moto in-process): per-status counts move with each order's
write, in its transaction; traffic buckets sum into the last hour and day."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from chalicelib import resources
from chalicelib.adapters.order_repository import DynamoOrderRepository
from chalicelib.adapters.stats import DynamoTrafficStats, bucket_start, status_counts
from chalicelib.domain.errors import ConcurrentUpdate, DuplicateDelivery
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import OrderStatus


def _order():
    return normalise_manual(
        {
            "store": "stats",
            "external_id": f"S-{uuid.uuid4().hex[:8]}",
            "currency": "EUR",
            "placed_at": "2026-11-01T00:00:00Z",
            "lines": [{"title": "Mug", "quantity": 1, "unit_price": "5.00"}],
        }
    )


def _nonzero(counts):
    return {k: v for k, v in counts.items() if v}


def test_counts_follow_each_order_through_its_statuses(table):
    repo = DynamoOrderRepository()
    a, b = _order(), _order()
    repo.save(a, expected_version=None)
    repo.save(b, expected_version=None, delivery_id="d-1")
    assert _nonzero(status_counts()) == {"RECEIVED": 2}

    a.status = OrderStatus.PAID
    repo.save(a, expected_version=1, replacing=OrderStatus.RECEIVED)
    b.status = OrderStatus.CANCELLED
    repo.save(b, expected_version=1)  # the status it replaces is read
    assert _nonzero(status_counts()) == {"PAID": 1, "CANCELLED": 1}

    entered = _index_sort_key(a.order_id)
    a.record("note", datetime.now(UTC) + timedelta(hours=1))  # no status change: no counter write
    repo.save(a, expected_version=2, replacing=OrderStatus.PAID)
    assert _index_sort_key(a.order_id) == entered  # still sorted by when it became PAID
    a.status = OrderStatus.SHIPPED
    repo.save(a, expected_version=3, delivery_id="d-2", replacing=OrderStatus.PAID)
    assert _nonzero(status_counts()) == {"SHIPPED": 1, "CANCELLED": 1}


def _index_sort_key(order_id):
    item = boto3.client("dynamodb", region_name="us-east-1").get_item(
        TableName=resources.TABLE.name, Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "ORDER"}}
    )["Item"]
    return item["gsi2sk"]["S"]


def test_a_refused_write_moves_no_count(table):
    repo = DynamoOrderRepository()
    a = _order()
    repo.save(a, expected_version=None, delivery_id="d-1")
    a.status = OrderStatus.PAID
    with pytest.raises(ConcurrentUpdate):
        repo.save(a, expected_version=7, replacing=OrderStatus.RECEIVED)
    with pytest.raises(ConcurrentUpdate):
        repo.save(a, expected_version=7)
    with pytest.raises(DuplicateDelivery):
        repo.save(a, expected_version=1, delivery_id="d-1", replacing=OrderStatus.RECEIVED)
    assert _nonzero(status_counts()) == {"RECEIVED": 1}
    assert repo.get(a.order_id).order.status == OrderStatus.RECEIVED


def test_counts_are_spread_over_shards_and_summed(table):
    repo = DynamoOrderRepository()
    for _ in range(40):
        repo.save(_order(), expected_version=None)
    shards = boto3.client("dynamodb", region_name="us-east-1").query(
        TableName=resources.TABLE.name,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "STATS#STATUS"}},
    )["Items"]
    assert len(shards) > 1
    assert status_counts()["RECEIVED"] == 40


def test_traffic_sums_the_last_hour_and_day_per_store(table):
    stats = DynamoTrafficStats()
    now = datetime(2026, 11, 23, 18, 37, tzinfo=UTC)
    stats.record("received", "shopify", "a.myshopify.com", now - timedelta(minutes=3))
    stats.record("received", "shopify", "a.myshopify.com", now - timedelta(minutes=30))
    stats.record("duplicates", "shopify", "a.myshopify.com", now - timedelta(hours=5))
    stats.record("rejected", "shopify", "a.myshopify.com", now - timedelta(hours=23))
    stats.record("received", "shopify", "a.myshopify.com", now - timedelta(hours=30))  # beyond a day
    stats.record("throttled", "shopify", "a.myshopify.com", now - timedelta(hours=2))
    stats.record("received", "shopify", "b.myshopify.com", now)

    t = stats.traffic("shopify", "a.myshopify.com", now)
    assert t.hour == {"received": 2, "rejected": 0, "duplicates": 0, "ignored": 0, "throttled": 0}
    assert t.day == {"received": 2, "rejected": 1, "duplicates": 1, "ignored": 0, "throttled": 1}
    assert t.last_event_at == now - timedelta(minutes=3)
    assert t.last_throttled_at == now - timedelta(hours=2)
    assert stats.traffic("woocommerce", "none", now).last_event_at is None


def test_buckets_are_ten_minutes():
    assert bucket_start(datetime(2026, 1, 1, 10, 59, 59, 9, tzinfo=UTC)) == datetime(
        2026, 1, 1, 10, 50, tzinfo=UTC
    )


def test_flagged_shipments_are_listed_until_closed(table):
    from chalicelib.adapters.fulfilment_store import DynamoFulfilmentStore

    store = DynamoFulfilmentStore()
    at = datetime(2026, 11, 23, 12, tzinfo=UTC)
    store.open_shipment("o1", "o1-1", at)
    store.flag_shipment("o1", "o1-1", ["late"], at)
    store.flag_shipment("o1", "o1-1", ["exception", "late"], at + timedelta(hours=1))  # replaces
    store.flag_shipment("o2", "o2-1", ["silent"], at)
    assert [(f["order_id"], f["flags"]) for f in store.flagged_shipments()] == [
        ("o1", ["exception", "late"]),
        ("o2", ["silent"]),
    ]
    store.close_shipment("o1", "o1-1", at)
    assert [f["order_id"] for f in store.flagged_shipments()] == ["o2"]
    assert store.open_shipments() == []
