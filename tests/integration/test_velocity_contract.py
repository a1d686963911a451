"""One contract, two implementations: the DynamoDB velocity counter (on the local stack) and the fake."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib import resources
from chalicelib.domain.fraud import velocity_key_digest
from tests.fakes_fraud import InMemoryVelocityCounter

H, D = timedelta(hours=1), timedelta(days=1)
WINDOWS = (H, D)
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)

# What each implementation keeps for a (kind, key): every stored string, to look for the clear key.
StoredStrings = Callable[[str, str], list[str]]


@pytest.fixture(params=["dynamodb", "fake"])
def counter(request, monkeypatch) -> tuple[Any, StoredStrings]:
    if request.param == "fake":
        fake = InMemoryVelocityCounter()

        def fake_strings(kind: str, key: str) -> list[str]:
            return [
                s
                for (k, digest), orders in fake.items.items()
                if k == kind and digest == velocity_key_digest(kind, key)
                for s in (k, digest, *orders)
            ]

        return fake, fake_strings
    stack = request.getfixturevalue("stack")
    from chalicelib.adapters.velocity import DynamoVelocityCounter, bind_velocity

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bind_velocity(resources.TABLE.name, "us-east-1", stack.aws_url)
    ddb = stack.client("dynamodb")

    def dynamo_strings(kind: str, key: str) -> list[str]:
        pk = f"VELOCITY#{kind}#{velocity_key_digest(kind, key)}"
        items = ddb.query(
            TableName=resources.TABLE.name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )["Items"]
        return [value for item in items for attr in item.values() for value in attr.values()]

    return DynamoVelocityCounter(), dynamo_strings


def unique_email() -> str:
    return f"Buyer.{uuid.uuid4().hex[:8]}@Example.com"


def test_record_and_count__counts_each_order_once(counter):
    velocity, _ = counter
    email = unique_email()
    first = velocity.record_and_count("email", email, T0, WINDOWS, order_id="ord_a")
    assert first == {H: 1, D: 1}
    again = velocity.record_and_count("email", email, T0, WINDOWS, order_id="ord_a")
    assert again == {H: 1, D: 1}
    # A retry that dates the same order differently still does not count it twice.
    later = velocity.record_and_count("email", email, T0 + timedelta(minutes=5), WINDOWS, order_id="ord_a")
    assert later == {H: 1, D: 1}
    assert velocity.record_and_count("email", email, T0, WINDOWS, order_id="ord_b") == {H: 2, D: 2}


def test_record_and_count__splits_the_count_by_window(counter):
    velocity, _ = counter
    ip = f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"
    for n, ago in enumerate(
        (timedelta(hours=30), timedelta(hours=20), timedelta(hours=2), timedelta(minutes=10))
    ):
        velocity.record_and_count("ip", ip, T0 - ago, WINDOWS, order_id=f"ord_{n}")
    assert velocity.record_and_count("ip", ip, T0, WINDOWS, order_id="ord_now") == {H: 2, D: 4}


def test_record_and_count__window_is_open_at_its_start_and_closed_at_at(counter):
    velocity, _ = counter
    card = f"fp_{uuid.uuid4().hex}"
    velocity.record_and_count("card", card, T0 - H, WINDOWS, order_id="ord_edge")
    velocity.record_and_count("card", card, T0 + timedelta(seconds=1), WINDOWS, order_id="ord_after")
    # Exactly one hour ago is outside the hour; an order dated after `at` is not counted yet.
    assert velocity.record_and_count("card", card, T0, WINDOWS, order_id="ord_now") == {H: 1, D: 2}


def test_record_and_count__kinds_and_keys_are_counted_apart(counter):
    velocity, _ = counter
    value = unique_email()
    velocity.record_and_count("email", value, T0, WINDOWS, order_id="ord_1")
    assert velocity.record_and_count("ip", value, T0, WINDOWS, order_id="ord_2") == {H: 1, D: 1}
    assert velocity.record_and_count("email", unique_email(), T0, WINDOWS, order_id="ord_3") == {H: 1, D: 1}


def test_record_and_count__emails_differing_in_case_and_spaces_are_one_key(counter):
    velocity, _ = counter
    email = unique_email()
    velocity.record_and_count("email", email, T0, WINDOWS, order_id="ord_1")
    assert velocity.record_and_count("email", f"  {email.upper()} ", T0, WINDOWS, order_id="ord_2")[H] == 2


def test_record_and_count__stores_only_a_hash_of_the_key(counter):
    velocity, stored_strings = counter
    email = unique_email()
    velocity.record_and_count("email", email, T0, WINDOWS, order_id="ord_1")
    stored = stored_strings("email", email)
    assert stored, "nothing stored under the hashed key"
    expected = hashlib.sha256(f"email\x1f{email.strip().lower()}".encode()).hexdigest()
    assert any(expected in s for s in stored)
    assert not any(email.lower() in s.lower() for s in stored)
    assert not any(email.split("@")[0].lower() in s.lower() for s in stored)


def test_dynamodb__items_expire_a_margin_after_the_longest_window(stack, monkeypatch):
    from chalicelib.adapters.velocity import TTL_MARGIN, DynamoVelocityCounter, bind_velocity, velocity_pk

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bind_velocity(resources.TABLE.name, "us-east-1", stack.aws_url)
    card = f"fp_{uuid.uuid4().hex}"
    DynamoVelocityCounter().record_and_count("card", card, T0, WINDOWS, order_id="ord_ttl")
    items = stack.client("dynamodb").query(
        TableName=resources.TABLE.name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": velocity_pk("card", card)}},
    )["Items"]
    expected = int((T0 + D + TTL_MARGIN).timestamp())
    assert sorted(item["sk"]["S"] for item in items) == [
        "2026-11-02T12:00:00.000000Z#ord_ttl",
        "ORDER#ord_ttl",
    ]
    assert {int(item["expires_at"]["N"]) for item in items} == {expected}
