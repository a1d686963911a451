"""One contract, two implementations: the DynamoDB repository (on the local stack) and the fake."""

from __future__ import annotations

import base64
import uuid

import pytest

from chalicelib import resources
from chalicelib.domain.errors import ConcurrentUpdate, DuplicateDelivery, InvalidInput, NotFound
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import OrderStatus
from tests.fakes import InMemoryOrderRepository


@pytest.fixture(params=["dynamodb", "fake"])
def repo(request, monkeypatch):
    if request.param == "fake":
        return InMemoryOrderRepository()
    stack = request.getfixturevalue("stack")
    from chalicelib.adapters import models
    from chalicelib.adapters.order_repository import DynamoOrderRepository

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    models.bind(resources.TABLE.name, "us-east-1", stack.aws_url)
    return DynamoOrderRepository()


def order(channel_store="contract", external_id=None, placed="2026-11-01T00:00:00Z", **kw):
    return normalise_manual(
        {
            "store": channel_store,
            "external_id": external_id or f"C-{uuid.uuid4().hex[:10]}",
            "currency": "EUR",
            "placed_at": placed,
            "lines": [{"title": "Mug", "quantity": 1, "unit_price": "5.00"}],
            **kw,
        }
    )


def test_save__creates_then_requires_the_current_version(repo):
    o = order()
    assert repo.save(o, expected_version=None) == 1
    with pytest.raises(ConcurrentUpdate):
        repo.save(o, expected_version=None)
    assert repo.save(o, expected_version=1) == 2
    with pytest.raises(ConcurrentUpdate):
        repo.save(o, expected_version=1)
    stored = repo.get(o.order_id)
    assert stored.version == 2 and stored.order == o


def test_save__records_the_delivery_in_the_same_transaction(repo):
    o = order()
    delivery = f"d-{uuid.uuid4().hex}"
    repo.save(o, expected_version=None, delivery_id=delivery)
    assert repo.has_delivery(delivery)
    with pytest.raises(DuplicateDelivery):
        repo.save(o, expected_version=1, delivery_id=delivery)
    assert repo.get(o.order_id).version == 1  # nothing of the rejected transaction was applied
    with pytest.raises(DuplicateDelivery):
        repo.record_delivery(delivery, o.order_id)


def test_attach_execution__sets_the_arn_and_moves_the_version_on(repo):
    o = order()
    repo.save(o, expected_version=None)
    repo.attach_execution(o.order_id, "arn:aws:states:us-east-1:123456789012:execution:m:x")
    stored = repo.get(o.order_id)
    assert stored.execution_arn.endswith(":x") and stored.version == 2
    with pytest.raises(NotFound):
        repo.attach_execution("ord_does_not_exist", "arn:x")


def test_lookups_by_channel_id(repo):
    external_id = f"C-{uuid.uuid4().hex[:10]}"
    a, b = order("store-a", external_id), order("store-b", external_id)
    repo.save(a, expected_version=None)
    repo.save(b, expected_version=None)
    assert repo.get_by_channel("manual", "store-b", external_id).order.order_id == b.order_id
    assert {s.order.store for s in repo.find_by_external_id("manual", external_id)} == {
        "store-a",
        "store-b",
    }
    assert repo.get_by_channel("manual", "store-c", external_id) is None


def test_list_orders__by_status_newest_first_in_pages(repo):
    status = OrderStatus.ON_HOLD  # a status no other test uses, so the listing is ours alone
    saved = []
    for day in (1, 2, 3):
        o = order(placed=f"2026-10-0{day}T00:00:00Z", updated_at=f"2026-10-0{day}T01:00:00Z")
        o.status = status
        repo.save(o, expected_version=None)
        saved.append(o.order_id)
    first = repo.list_orders(status=status, channel=None, limit=2, cursor=None)
    assert [o.order_id for o in first.orders] == [saved[2], saved[1]]
    assert first.next_cursor
    second = repo.list_orders(status=status, channel=None, limit=2, cursor=first.next_cursor)
    assert saved[0] in [o.order_id for o in second.orders]
    assert repo.list_orders(status=status, channel="shopify", limit=10, cursor=None).orders == []


def test_list_orders__by_channel_and_store_newest_first(repo):
    store = f"store-{uuid.uuid4().hex[:8]}"
    saved = []
    for day in (1, 2, 3):
        o = order(store, placed=f"2026-09-0{day}T00:00:00Z")
        repo.save(o, expected_version=None)
        saved.append(o.order_id)
    page = repo.list_orders(status=None, channel="manual", store=store, limit=10, cursor=None)
    assert [o.order_id for o in page.orders] == saved[::-1]
    held = repo.list_orders(status=OrderStatus.ON_HOLD, channel="manual", store=store, limit=10, cursor=None)
    assert held.orders == []
    with pytest.raises(InvalidInput):
        repo.list_orders(status=None, channel=None, store=store, limit=10, cursor=None)


def test_saves_keep_the_execution_arn_and_the_review_token(repo):
    o = order()
    repo.save(o, expected_version=None)
    repo.attach_execution(o.order_id, "arn:aws:states:us-east-1:123456789012:execution:m:keep")
    repo.set_review_token(o.order_id, "token-1")
    stored = repo.get(o.order_id)
    repo.save(stored.order, expected_version=stored.version)
    again = repo.get(o.order_id)
    assert again.execution_arn.endswith(":keep") and repo.get_review_token(o.order_id) == "token-1"
    repo.set_review_token(o.order_id, None)
    assert repo.get_review_token(o.order_id) is None
    with pytest.raises(NotFound):
        repo.set_review_token("ord_does_not_exist", "t")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


# Bad-input catalogue (issue #15): a crafted cursor → InvalidInput (the API's 400), never a 500.
CRAFTED_CURSORS = [
    "%%%",
    "é",
    "A" * 5000,
    _b64("[]"),
    _b64('{"offset": 1e400}'),
    _b64('{"offset": "' + "9" * 5000 + '"}'),
    _b64("[" * 5000 + "]" * 5000),
    _b64('{"pk": {"S": "ORDER#x"}}'),
    _b64('{"pk": {"N": "1"}, "sk": {"S": "ORDER"}, "gsi4pk": {"S": "ORDERS"}, "gsi4sk": {"S": "x"}}'),
    _b64('{"pk": {"S": "ORDER#x"}, "sk": {"S": "ORDER"}, "gsi4pk": {"S": "ELSE"}, "gsi4sk": {"S": "x"}}'),
    _b64('{"pk": {"S": ""}, "sk": {"S": "ORDER"}, "gsi4pk": {"S": "ORDERS"}, "gsi4sk": {"S": "x"}}'),
]


@pytest.mark.parametrize("cursor", CRAFTED_CURSORS, ids=range(len(CRAFTED_CURSORS)))
@pytest.mark.parametrize("status", [None, OrderStatus.ON_HOLD])
def test_list_orders__a_crafted_cursor_is_invalid_input(repo, cursor, status):
    with pytest.raises(InvalidInput, match="cursor"):
        repo.list_orders(status=status, channel=None, limit=2, cursor=cursor)
