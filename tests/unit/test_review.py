"""The fraud stage's use cases with fakes: decide once, wait for a review, time out to ON_HOLD."""

from datetime import UTC, datetime

import pytest

from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.fraud_policy import FraudPolicy
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import OrderStatus
from chalicelib.domain.review import (
    ReviewConflict,
    check_order,
    fraud_check,
    request_review,
    review,
    review_timed_out,
)
from tests.fakes import InMemoryOrderRepository, RecordingWorkflow, StepClock
from tests.fakes_fraud import InMemoryVelocityCounter

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REVIEW_ON_VALUE = FraudPolicy.from_mapping({"weights": {"high_value": 45}})


def stored(repo, price="2400.00"):
    order = normalise_manual(
        {
            "external_id": f"R-{price}",
            "currency": "EUR",
            "placed_at": "2026-11-23T10:00:00Z",
            "customer": {"email": "buyer@example.com"},
            "lines": [{"title": "E-bike", "quantity": 1, "unit_price": price}],
        }
    )
    repo.save(order, expected_version=None)
    return order.order_id


def check(repo, order_id, policy=REVIEW_ON_VALUE):
    return fraud_check(
        order_id, orders=repo, velocity=InMemoryVelocityCounter(), policy=policy, now=StepClock(NOW)
    )


def test_fraud_check__approves_an_ordinary_order_and_decides_only_once():
    repo = InMemoryOrderRepository()
    order_id = stored(repo, "40.00")
    assert check(repo, order_id)["decision"] == "approve"
    assert repo.get(order_id).order.status is OrderStatus.APPROVED
    again = check(repo, order_id, FraudPolicy.from_mapping({"weights": {"high_value": 100}}))
    assert again["decision"] == "approve"  # a retried task returns the decision already made
    assert [h.event for h in repo.get(order_id).order.history].count("fraud_checked") == 1


def test_check_order__validates_then_decides_in_one_write_and_only_once():
    repo = InMemoryOrderRepository()
    order_id = stored(repo, "40.00")
    version = repo.get(order_id).version
    answer = check_order(
        order_id, orders=repo, velocity=InMemoryVelocityCounter(), policy=REVIEW_ON_VALUE, now=StepClock(NOW)
    )
    assert answer["decision"] == "approve" and answer["issues"] == []
    after = repo.get(order_id)
    assert after.version == version + 1  # one save for both steps
    assert [h.event for h in after.order.history][-2:] == ["validated", "fraud_checked"]
    again = check_order(
        order_id, orders=repo, velocity=InMemoryVelocityCounter(), policy=REVIEW_ON_VALUE, now=StepClock(NOW)
    )
    assert again["decision"] == "approve"  # a retried task answers the decision already taken
    assert [h.event for h in repo.get(order_id).order.history].count("validated") == 1


def test_review__waits_with_a_token_then_applies_the_operators_decision():
    repo, workflow = InMemoryOrderRepository(), RecordingWorkflow()
    order_id = stored(repo)
    assert check(repo, order_id)["decision"] == "review"
    assert repo.get(order_id).order.status is OrderStatus.FRAUD_REVIEW
    request_review(order_id, "tok-1", orders=repo, now=StepClock(NOW))
    result = review(order_id, "approve", orders=repo, workflow=workflow, now=StepClock(NOW))
    assert result["status"] == "APPROVED" and result["workflow_resumed"] is True
    assert workflow.completed == [("tok-1", {"decision": "approve"})]
    assert repo.get_review_token(order_id) is None
    with pytest.raises(ReviewConflict):
        review(order_id, "reject", orders=repo, workflow=workflow, now=StepClock(NOW))


def test_review__refuses_bad_decisions_and_unknown_orders():
    repo, workflow = InMemoryOrderRepository(), RecordingWorkflow()
    with pytest.raises(InvalidInput):
        review("ord_x", "maybe", orders=repo, workflow=workflow, now=StepClock(NOW))
    with pytest.raises(NotFound):
        review("ord_x", "approve", orders=repo, workflow=workflow, now=StepClock(NOW))


def test_review__a_late_answer_after_the_timeout_is_reported_not_lost():
    repo, workflow = InMemoryOrderRepository(), RecordingWorkflow()
    order_id = stored(repo)
    check(repo, order_id)
    request_review(order_id, "tok-late", orders=repo, now=StepClock(NOW))
    workflow.expired_tokens.add("tok-late")
    result = review(order_id, "reject", orders=repo, workflow=workflow, now=StepClock(NOW))
    assert result["status"] == "CANCELLED" and result["workflow_resumed"] is False


def test_review_timed_out__holds_the_order_for_an_operator():
    repo = InMemoryOrderRepository()
    order_id = stored(repo)
    check(repo, order_id)
    request_review(order_id, "tok-2", orders=repo, now=StepClock(NOW))
    assert review_timed_out(order_id, orders=repo, now=StepClock(NOW))["status"] == "ON_HOLD"
    assert repo.get(order_id).order.history[-1].event == "review_timed_out"
    assert repo.get_review_token(order_id) is None


def test_fraud_check__an_order_cancelled_meanwhile_is_not_assessed():
    repo = InMemoryOrderRepository()
    order_id = stored(repo)
    current = repo.get(order_id)
    current.order.status = OrderStatus.CANCELLED
    repo.save(current.order, expected_version=current.version)
    assert check(repo, order_id)["decision"] == "cancelled"
    assert repo.get(order_id).order.fraud.decision is None
