"""Use cases of the lifecycle's fraud stage: check, wait for an operator's review, time out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import ConcurrentUpdate, InvalidInput, NotFound
from chalicelib.domain.fraud import Decision, VelocityCounter, assess
from chalicelib.domain.fraud_policy import FraudPolicy
from chalicelib.domain.fraud_signals import FraudSignals
from chalicelib.domain.lifecycle import record_validation
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Fraud, Order, OrderStatus
from chalicelib.domain.ports import OrderRepository, WorkflowStarter
from chalicelib.domain.status import is_forward

# The fraud check's decision moves the order to one of these.
_DECIDED = {
    Decision.APPROVE: OrderStatus.APPROVED,
    Decision.REVIEW: OrderStatus.FRAUD_REVIEW,
    Decision.REJECT: OrderStatus.CANCELLED,
}


class ReviewConflict(ConcurrentUpdate):
    """The order is not waiting for a review (decided already, or never sent to review)."""


def fraud_check(
    order_id: str,
    *,
    orders: OrderRepository,
    velocity: VelocityCounter,
    policy: FraudPolicy,
    now: Callable[[], datetime],
    signals: FraudSignals | None = None,
) -> dict[str, Any]:
    """Assess the order once and move it on; a retry after a decision returns that decision."""

    def change(order: Order) -> dict[str, Any]:
        return _decide(order, velocity=velocity, policy=policy, now=now, signals=signals)

    result: dict[str, Any] = mutate(orders, order_id, change)
    return result


def check_order(
    order_id: str,
    *,
    orders: OrderRepository,
    velocity: VelocityCounter,
    policy: FraudPolicy,
    now: Callable[[], datetime],
    signals: FraudSignals | None = None,
) -> dict[str, Any]:
    """The lifecycle's first step: validate the order's figures, then assess it, in one write.

    Both are recorded in the order's history (`validated`, `fraud_checked`) as the two steps they were;
    a retry after the decision answers that decision and records nothing again."""

    def change(order: Order) -> dict[str, Any]:
        issues = record_validation(order, now()) if order.fraud.decision is None else None
        decided = _decide(order, velocity=velocity, policy=policy, now=now, signals=signals)
        return {**decided, "totals_consistent": not issues if issues is not None else None, "issues": issues}

    result: dict[str, Any] = mutate(orders, order_id, change)
    return result


def _decide(
    order: Order,
    *,
    velocity: VelocityCounter,
    policy: FraudPolicy,
    now: Callable[[], datetime],
    signals: FraudSignals | None,
) -> dict[str, Any]:
    """Assess the order once and move it on (a decision already taken is answered as it was)."""
    order_id = order.order_id
    if order.fraud.decision is not None:
        return {"order_id": order_id, "decision": order.fraud.decision, "score": order.fraud.score}
    if order.status == OrderStatus.CANCELLED:
        return {"order_id": order_id, "decision": "cancelled", "score": None}
    assessment = assess(order, signals or FraudSignals(), velocity, policy, now())
    order.fraud = assessment.to_fraud()
    target = _DECIDED[assessment.decision]
    if is_forward(order.status, target):
        order.status = target
    order.record(
        "fraud_checked",
        now(),
        decision=assessment.decision.value,
        score=assessment.score,
        reasons=list(assessment.reasons),
    )
    return {"order_id": order_id, "decision": assessment.decision.value, "score": assessment.score}


def request_review(
    order_id: str, task_token: str, *, orders: OrderRepository, now: Callable[[], datetime]
) -> dict[str, Any]:
    """Park the order for an operator: keep the waiting task's token beside it (never in its JSON)."""
    orders.set_review_token(order_id, task_token)

    def change(order: Order) -> dict[str, Any]:
        order.record("review_requested", now())
        return {"order_id": order_id, "status": order.status.value}

    result: dict[str, Any] = mutate(orders, order_id, change)
    return result


def review(
    order_id: str,
    decision: str,
    *,
    orders: OrderRepository,
    workflow: WorkflowStarter,
    now: Callable[[], datetime],
) -> dict[str, Any]:
    """An operator's decision: apply it to the order, then resume the waiting lifecycle."""
    if decision not in ("approve", "reject"):
        raise InvalidInput('decision must be "approve" or "reject"')
    stored = orders.get(order_id)
    if stored is None:
        raise NotFound(f"order {order_id} does not exist")
    token = orders.get_review_token(order_id)
    if stored.order.status != OrderStatus.FRAUD_REVIEW or token is None:
        raise ReviewConflict(f"order {order_id} is {stored.order.status.value}, not waiting for a review")

    def change(order: Order) -> dict[str, Any]:
        if order.status != OrderStatus.FRAUD_REVIEW:
            raise ReviewConflict(f"order {order_id} was decided meanwhile ({order.status.value})")
        order.status = OrderStatus.APPROVED if decision == "approve" else OrderStatus.CANCELLED
        order.fraud = Fraud(
            decision=decision,
            score=order.fraud.score,
            reasons=[*order.fraud.reasons, f"operator: {decision}"],
        )
        order.record("review_approved" if decision == "approve" else "review_rejected", now())
        return {"order_id": order_id, "status": order.status.value}

    result: dict[str, Any] = mutate(orders, order_id, change)
    orders.set_review_token(order_id, None)
    resumed = workflow.complete_task(token, {"decision": decision})
    return {**result, "workflow_resumed": resumed}


def review_timed_out(
    order_id: str, *, orders: OrderRepository, now: Callable[[], datetime]
) -> dict[str, Any]:
    """Nobody reviewed in time: hold the order for an operator rather than guess either way."""
    orders.set_review_token(order_id, None)

    def change(order: Order) -> dict[str, Any]:
        if order.status == OrderStatus.FRAUD_REVIEW:
            order.status = OrderStatus.ON_HOLD
            order.record("review_timed_out", now())
        return {"order_id": order_id, "status": order.status.value}

    result: dict[str, Any] = mutate(orders, order_id, change)
    return result
