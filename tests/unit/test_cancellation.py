"""Cancelling from any stage: once, with the lifecycle stopped and every compensator run."""

from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.domain.cancellation import CancellationConflict, cancel
from chalicelib.domain.errors import NotFound
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import Order, OrderStatus
from tests.fakes import InMemoryOrderRepository, RecordingWorkflow, StepClock

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class VoidPayment:
    name = "payment"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def compensate(self, order: Order, reason: str) -> dict[str, Any] | None:
        self.calls.append(order.order_id)
        return {"action": "void", "status": order.status.value}


def stored(repo, workflow):
    order = normalise_manual(
        {
            "external_id": "C-1",
            "currency": "EUR",
            "placed_at": "2026-11-23T10:00:00Z",
            "lines": [{"title": "Mug", "quantity": 1, "unit_price": "9.00"}],
        }
    )
    repo.save(order, expected_version=None)
    workflow.start(order.order_id, {"order_id": order.order_id})
    return order.order_id


def test_cancel__stops_the_lifecycle_runs_compensators_and_is_idempotent():
    repo, workflow, payment = InMemoryOrderRepository(), RecordingWorkflow(), VoidPayment()
    order_id = stored(repo, workflow)
    first = cancel(
        order_id,
        "customer asked",
        source="operator",
        orders=repo,
        workflow=workflow,
        now=StepClock(NOW),
        compensators=[payment],
    )
    assert first["status"] == "CANCELLED" and first["already_cancelled"] is False
    assert first["lifecycle_stopped"] is True
    assert first["compensations"] == [{"compensator": "payment", "action": "void", "status": "CANCELLED"}]
    order = repo.get(order_id).order
    assert [h.event for h in order.history] == ["cancelled", "compensated"]
    assert order.history[0].detail["previous_status"] == "RECEIVED"
    again = cancel(order_id, "twice", source="operator", orders=repo, workflow=workflow, now=StepClock(NOW))
    assert again["already_cancelled"] is True
    assert [h.event for h in repo.get(order_id).order.history].count("cancelled") == 1


def test_cancel__refuses_a_completed_order_and_an_unknown_one():
    repo, workflow = InMemoryOrderRepository(), RecordingWorkflow()
    order_id = stored(repo, workflow)
    current = repo.get(order_id)
    current.order.status = OrderStatus.COMPLETED
    repo.save(current.order, expected_version=current.version)
    with pytest.raises(CancellationConflict):
        cancel(order_id, "late", source="operator", orders=repo, workflow=workflow, now=StepClock(NOW))
    with pytest.raises(NotFound):
        cancel("ord_nope", "x", source="operator", orders=repo, workflow=workflow, now=StepClock(NOW))
