"""A delivered two-line card order, and the collaborators the returns use cases take, as fakes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import Order, OrderStatus, Shipment
from chalicelib.domain.returns.model import OrderReturn, ReturnLabel
from chalicelib.domain.returns.policy import ReturnPolicies
from tests.fakes import InMemoryOrderRepository, RecordingWorkflow
from tests.fakes_fulfilment import FakeTrackers, InMemoryFulfilmentStore
from tests.fakes_payments import FakeGateway

DELIVERED_AT = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


class FakeLabels:
    def __init__(self) -> None:
        self.bought: dict[str, ReturnLabel] = {}

    def return_label(self, order: Order, ret: OrderReturn, *, idempotency_key: str) -> ReturnLabel:
        if idempotency_key not in self.bought:
            n = len(self.bought) + 1
            self.bought[idempotency_key] = ReturnLabel(
                carrier="USPS",
                tracking_number=f"RET{n:06d}",
                label_url=f"https://labels.test/{n}.pdf",
                cost=Decimal("6.50"),
            )
        return self.bought[idempotency_key]


class FakeDesk:
    def __init__(self) -> None:
        self.expected: dict[str, dict[str, Any]] = {}

    def expect_return(self, request: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        self.expected.setdefault(idempotency_key, request)
        return {"id": f"rma_{request['return_id']}", "status": "expected"}


@dataclass
class World:
    orders: InMemoryOrderRepository = field(default_factory=InMemoryOrderRepository)
    workflow: RecordingWorkflow = field(default_factory=RecordingWorkflow)
    returns_workflow: RecordingWorkflow = field(default_factory=RecordingWorkflow)
    store: InMemoryFulfilmentStore = field(default_factory=InMemoryFulfilmentStore)
    gateway: FakeGateway = field(default_factory=FakeGateway)
    labels: FakeLabels = field(default_factory=FakeLabels)
    desk: FakeDesk = field(default_factory=FakeDesk)
    trackers: FakeTrackers = field(default_factory=FakeTrackers)
    policies: ReturnPolicies = field(default_factory=ReturnPolicies)
    clock: Clock = field(default_factory=lambda: Clock(DELIVERED_AT + timedelta(days=10)))

    def delivered_order(
        self,
        external_id: str = "R-1",
        *,
        delivered_at: datetime = DELIVERED_AT,
        channel: str = "woocommerce",
        **extra: Any,
    ) -> str:
        """Two lines (2 × 25.00 mugs with 5.00 tax, 1 × 40.00 lamp with 8.00 tax), 7.00 shipping,
        a 10.00 order discount, paid by a captured PaymentIntent of 100.00 (90 + 7 + 13 − 10)."""
        body = {
            "external_id": external_id,
            "currency": "EUR",
            "placed_at": "2026-11-10T10:00:00Z",
            "customer": {"email": "ana@example.com", "name": "Ana"},
            "lines": [
                {
                    "line_id": "L1",
                    "sku": "MUG-1",
                    "title": "Mug",
                    "quantity": 2,
                    "unit_price": "25.00",
                    "tax": "5.00",
                },
                {
                    "line_id": "L2",
                    "sku": "LAMP-1",
                    "title": "Lamp",
                    "quantity": 1,
                    "unit_price": "40.00",
                    "tax": "8.00",
                },
            ],
            "totals": {"discount": "10.00", "shipping": "7.00"},
            "payment": {"source": "stripe", "reference": f"pi_{external_id}"},
            **extra,
        }
        order = normalise_manual(body).model_copy(update={"channel": channel})
        order.status = OrderStatus.COMPLETED
        order.payment = order.payment.model_copy(
            update={"amount_captured": order.totals.total, "status": "captured"}
        )
        order.shipments = [
            Shipment(
                shipment_id=f"{order.order_id}-1",
                lines=[
                    {"line_id": "L1", "sku": "MUG-1", "quantity": 2},
                    {"line_id": "L2", "sku": "LAMP-1", "quantity": 1},
                ],
                shipped_lines=[{"line_id": "L1", "quantity": 2}, {"line_id": "L2", "quantity": 1}],
                status="delivered",
                delivered_at=delivered_at,
                warehouse="main",
                provider="default",
            )
        ]
        self.orders.save(order, expected_version=None)
        minor = int(order.totals.total * 100)
        self.gateway.add(f"pi_{external_id}", minor, status="succeeded")
        return order.order_id

    def open_return(
        self,
        order_id: str,
        body: dict[str, Any],
        *,
        key: str | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> tuple[OrderReturn, bool]:
        """Open a return as the API does (the body as POSTed), on this world's clock unless `now`."""
        from chalicelib.domain.returns import intake

        return intake.request_return(
            order_id,
            intake.parse_return_request(body),
            orders=self.orders,
            workflow=self.returns_workflow,
            policies=self.policies,
            now=now or self.clock,
            idempotency_key=key,
        )

    def approve_and_label(self, order_id: str, rid: str) -> dict[str, Any]:
        """The return workflow's first two steps: approved, labelled and announced to the 3PL (this desk)."""
        from chalicelib.domain.returns import steps

        steps.approve(order_id, rid, orders=self.orders, policies=self.policies, now=self.clock)
        return steps.issue_label(
            order_id,
            rid,
            orders=self.orders,
            labels=lambda: self.labels,
            desk=lambda provider: self.desk,
            trackers=self.trackers,
            store=self.store,
            policies=self.policies,
            now=self.clock,
        )

    def order(self, order_id: str) -> Order:
        stored = self.orders.get(order_id)
        assert stored is not None
        return stored.order


@pytest.fixture
def world() -> World:
    return World()
