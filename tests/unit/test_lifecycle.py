from datetime import UTC, datetime

import pytest

from chalicelib.domain.errors import ConcurrentUpdate, NotFound
from chalicelib.domain.lifecycle import record_failure, validate_order
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import OrderStatus
from tests.fakes import InMemoryOrderRepository, StepClock

NOW = StepClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))


def stored_order(repo, total=None):
    body = {
        "external_id": "L-1",
        "currency": "EUR",
        "placed_at": "2026-11-23T10:00:00Z",
        "lines": [{"title": "Mug", "quantity": 2, "unit_price": "5.00"}],
    }
    if total:
        body["totals"] = {"total": total}
    order = normalise_manual(body)
    repo.save(order, expected_version=None)
    return order.order_id


def test_validate_order__records_the_result_in_history():
    repo = InMemoryOrderRepository()
    order_id = stored_order(repo, total="12.00")
    result = validate_order(order_id, orders=repo, now=NOW)
    assert result["totals_consistent"] is False
    entry = repo.get(order_id).order.history[-1]
    assert entry.event == "validated" and entry.detail["issues"] == result["issues"]


def test_validate_order__retries_when_another_writer_got_there_first():
    repo = InMemoryOrderRepository()
    order_id = stored_order(repo)
    repo.fail_next_saves = 2
    assert validate_order(order_id, orders=repo, now=NOW)["totals_consistent"] is True
    assert repo.get(order_id).version == 2


def test_validate_order__gives_up_after_repeated_conflicts():
    repo = InMemoryOrderRepository()
    order_id = stored_order(repo)
    repo.fail_next_saves = 99
    with pytest.raises(ConcurrentUpdate):
        validate_order(order_id, orders=repo, now=NOW)


def test_validate_order__missing_order_is_not_found():
    with pytest.raises(NotFound):
        validate_order("ord_missing", orders=InMemoryOrderRepository(), now=NOW)


def test_record_failure__parks_the_order_in_failed_with_the_reason():
    repo = InMemoryOrderRepository()
    order_id = stored_order(repo)
    result = record_failure(order_id, "States.Timeout", "took too long", orders=repo, now=NOW)
    order = repo.get(order_id).order
    assert result["status"] == "FAILED" and order.status is OrderStatus.FAILED
    assert order.history[-1].detail == {
        "error": "States.Timeout",
        "cause": "took too long",
        "previous": "RECEIVED",
    }


def test_record_failure__missing_order_is_reported_not_raised():
    result = record_failure("ord_missing", "X", "y", orders=InMemoryOrderRepository(), now=NOW)
    assert result["recorded"] is False
