"""Use case: apply one accepted delivery to the hub's orders, exactly once, never going backwards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from chalicelib.domain.delivery import Delivery
from chalicelib.domain.errors import DuplicateDelivery, MalformedDelivery
from chalicelib.domain.manual_channel import CHANNEL as MANUAL
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import Order
from chalicelib.domain.ports import OrderRepository, StoredOrder, WorkflowStarter

Normaliser = Callable[[dict[str, Any]], Order]

# Channel → function turning that channel's order payload into a canonical order.
NORMALISERS: dict[str, Normaliser] = {MANUAL: normalise_manual}

# Fields the channel owns; everything else on the order (status, payment, history, ...) is the hub's.
CHANNEL_FIELDS = (
    "external_number",
    "currency",
    "placed_at",
    "updated_at",
    "customer",
    "shipping_address",
    "billing_address",
    "lines",
    "totals",
)


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    STALE = "stale"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    order_id: str | None


def ingest(
    delivery: Delivery,
    *,
    orders: OrderRepository,
    workflow: WorkflowStarter,
    now: Callable[[], datetime],
) -> IngestResult:
    """Apply a delivery: create the order, update it if the channel's state is newer, or drop it.

    Safe to run any number of times for the same delivery and in any order across deliveries:
    the delivery id is recorded in the same transaction as the change, and an update older than
    what is stored (by the channel's own `updated_at`) changes nothing.
    """
    normalise = NORMALISERS.get(delivery.channel)
    if normalise is None:
        raise MalformedDelivery(f"no normaliser for channel {delivery.channel!r}")
    candidate = normalise(delivery.payload)
    stored = orders.get(candidate.order_id)

    if orders.has_delivery(delivery.delivery_id):
        _ensure_started(stored, orders, workflow)
        return IngestResult(Outcome.DUPLICATE, candidate.order_id)

    try:
        if stored is None:
            candidate.record("received", now(), delivery_id=delivery.delivery_id)
            version = orders.save(candidate, expected_version=None, delivery_id=delivery.delivery_id)
            stored = StoredOrder(candidate, version)
            outcome = Outcome.CREATED
        elif candidate.updated_at <= stored.order.updated_at:
            orders.record_delivery(delivery.delivery_id, candidate.order_id)
            outcome = Outcome.STALE
        else:
            merged = _merge(stored.order, candidate)
            merged.record(
                "updated",
                now(),
                delivery_id=delivery.delivery_id,
                channel_updated_at=candidate.updated_at.isoformat(),
            )
            version = orders.save(merged, expected_version=stored.version, delivery_id=delivery.delivery_id)
            stored = StoredOrder(merged, version, stored.execution_arn)
            outcome = Outcome.UPDATED
    except DuplicateDelivery:
        # A concurrent copy of this delivery won the race; it also starts the workflow.
        return IngestResult(Outcome.DUPLICATE, candidate.order_id)

    _ensure_started(stored, orders, workflow)
    return IngestResult(outcome, candidate.order_id)


def _merge(current: Order, newer: Order) -> Order:
    changes = {name: getattr(newer, name) for name in CHANNEL_FIELDS}
    return current.model_copy(update=changes, deep=True)


def _ensure_started(stored: StoredOrder | None, orders: OrderRepository, workflow: WorkflowStarter) -> None:
    """Start the lifecycle if it was not yet (also heals a crash between saving and starting)."""
    if stored is None or stored.execution_arn:
        return
    arn = workflow.start(stored.order.order_id, {"order_id": stored.order.order_id})
    orders.attach_execution(stored.order.order_id, arn)
