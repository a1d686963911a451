"""The ports the use cases depend on; adapters implement them with AWS, fakes implement them in tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.credit.model import CreditMovement
from chalicelib.domain.order import Order, OrderStatus


@dataclass(frozen=True)
class StoredOrder:
    order: Order
    version: int
    execution_arn: str | None = None


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    next_cursor: str | None


class OrderRepository(Protocol):
    def get(self, order_id: str) -> StoredOrder | None: ...

    def get_by_channel(self, channel: str, store: str, external_id: str) -> StoredOrder | None: ...

    def find_by_external_id(self, channel: str, external_id: str) -> list[StoredOrder]: ...

    def save(
        self,
        order: Order,
        *,
        expected_version: int | None,
        delivery_id: str | None = None,
        replacing: OrderStatus | None = None,
        movements: Sequence[CreditMovement] = (),
    ) -> int:
        """Write the order if its stored version is still `expected_version` (None: must not exist).

        With `delivery_id`, record that delivery in the same transaction; with `movements`, write each
        credit-ledger movement and its account's balance in it too (a movement already in the ledger:
        DuplicateMovement; a balance the rules refuse: CreditRefused; either way nothing is written).
        `replacing` is the status stored at `expected_version` when the caller read it (the per-status
        counts move with the write; without it the repository reads it). Raises ConcurrentUpdate or
        DuplicateDelivery. Returns the new version.
        """
        ...

    def record_delivery(self, delivery_id: str, order_id: str) -> None:
        """Remember a delivery that changed nothing (stale); raises DuplicateDelivery if seen."""
        ...

    def has_delivery(self, delivery_id: str) -> bool: ...

    def attach_execution(self, order_id: str, execution_arn: str) -> None: ...

    def set_review_token(self, order_id: str, token: str | None) -> None:
        """Keep (or clear) the task token of the order's waiting review; never part of the order's JSON."""
        ...

    def get_review_token(self, order_id: str) -> str | None: ...

    def set_payment_token(self, order_id: str, token: str | None) -> None:
        """Keep (or clear) the task token of the order's waiting payment recovery."""
        ...

    def get_payment_token(self, order_id: str) -> str | None: ...

    def link_payment(self, reference: str, order_id: str) -> None:
        """Remember which order a payment (a Stripe PaymentIntent id) pays; idempotent."""
        ...

    def order_for_payment(self, reference: str) -> str | None: ...

    def link_return(self, channel_return: str, order_id: str) -> None:
        """Remember which order a channel's return (`<channel>:<store>:<return id>`) belongs to; idempotent.
        Shopify's `returns/decline` names only the return."""
        ...

    def order_for_return(self, channel_return: str) -> str | None: ...

    def pending_publications(self, limit: int = 100) -> list[str]:
        """Ids of orders whose channel outbox has pending milestones, oldest first."""
        ...

    def list_orders(
        self,
        *,
        status: OrderStatus | None,
        channel: str | None,
        limit: int,
        cursor: str | None,
        store: str | None = None,
    ) -> OrderPage:
        """Newest first; by status (the most recent to enter it first), by channel + store, or all."""
        ...


@dataclass(frozen=True)
class ArchivedDelivery:
    delivery_id: str
    channel: str
    store: str
    topic: str
    received_at: datetime
    raw: bytes


class RawArchive(Protocol):
    def put(self, delivery: Any, raw: bytes) -> None:
        """Keep the delivery's exact bytes (idempotent: the first copy wins)."""
        ...

    def get(self, delivery_id: str) -> ArchivedDelivery | None: ...

    def forget(self, delivery_id: str) -> None:
        """Delete the delivery's bytes (personal-data retention); nothing there is fine."""
        ...


class WorkflowStarter(Protocol):
    def start(self, order_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        """Start the order's lifecycle execution, named after the order (or `name`: a retry's); already
        started is success. Returns the execution's ARN."""
        ...

    def complete_task(self, token: str, output: dict[str, Any]) -> bool:
        """Resume a task waiting on `token`; False when it no longer waits (timed out, already resumed)."""
        ...

    def stop(self, order_id: str, cause: str, *, execution_arn: str | None = None) -> bool:
        """Stop the order's running execution (the one attached to it, when known); False when none is
        running."""
        ...


class DeliveryQueue(Protocol):
    def send(self, body: dict[str, Any], *, group_id: str, deduplication_id: str) -> str: ...


class Heartbeats(Protocol):
    def beat(self, name: str, at: datetime) -> None: ...

    def last(self, name: str) -> datetime | None: ...
