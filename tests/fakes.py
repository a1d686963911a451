"""In-memory fakes of the hub's ports; the contract tests hold them to the real adapters' behaviour."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.domain.connections import Connection
from chalicelib.domain.credit.model import CreditMovement
from chalicelib.domain.errors import ConcurrentUpdate, DuplicateDelivery, InvalidInput, NotFound
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.ports import ArchivedDelivery, OrderPage, StoredOrder
from chalicelib.domain.runtime_settings import SettingChange, StoredSetting
from tests.fakes_credit import InMemoryCreditLedger


class InMemoryOrderRepository:
    def __init__(self) -> None:
        self._orders: dict[str, StoredOrder] = {}
        self._deliveries: dict[str, str] = {}
        self._lock = threading.Lock()
        self.fail_next_saves = 0  # simulate another writer winning the race
        self._review_tokens: dict[str, str | None] = {}
        self._payment_tokens: dict[str, str | None] = {}
        self._payment_refs: dict[str, str] = {}
        # The ledger the saves' movements go to (its read side is the CreditLedger port's fake).
        self.credit = InMemoryCreditLedger()
        # What the by-status index's sort key holds: when each order entered its status.
        self.entered: dict[str, str] = {}

    def get(self, order_id: str) -> StoredOrder | None:
        stored = self._orders.get(order_id)
        if stored is None:
            return None
        return StoredOrder(stored.order.model_copy(deep=True), stored.version, stored.execution_arn)

    def get_by_channel(self, channel: str, store: str, external_id: str) -> StoredOrder | None:
        for stored in self.find_by_external_id(channel, external_id):
            if stored.order.store == store:
                return stored
        return None

    def find_by_external_id(self, channel: str, external_id: str) -> list[StoredOrder]:
        return [
            s
            for s in (self.get(oid) for oid in list(self._orders))
            if s and s.order.channel == channel and s.order.external_id == external_id
        ]

    def save(
        self,
        order: Order,
        *,
        expected_version: int | None,
        delivery_id: str | None = None,
        replacing: OrderStatus | None = None,
        movements: Sequence[CreditMovement] = (),
    ) -> int:
        with self._lock:
            if delivery_id is not None and delivery_id in self._deliveries:
                raise DuplicateDelivery(delivery_id)
            current = self._orders.get(order.order_id)
            current_version = current.version if current else None
            if self.fail_next_saves > 0:
                self.fail_next_saves -= 1
                raise ConcurrentUpdate(order.order_id)
            if current_version != expected_version:
                raise ConcurrentUpdate(order.order_id)
            # The contract: `replacing` is the status stored at the expected version.
            assert replacing is None or (current and current.order.status == replacing), (
                f"save says it replaces {replacing}, the stored order is {current and current.order.status}"
            )
            self.credit.apply(movements)  # all or nothing, with the order (refusals raise before it is kept)
            version = (expected_version or 0) + 1
            arn = current.execution_arn if current else None
            self._orders[order.order_id] = StoredOrder(order.model_copy(deep=True), version, arn)
            if current is None or current.order.status != order.status:
                at = order.history[-1].at if order.history else order.updated_at
                self.entered[order.order_id] = f"{at.isoformat()}#{order.order_id}"
            if delivery_id is not None:
                self._deliveries[delivery_id] = order.order_id
            return version

    def record_delivery(self, delivery_id: str, order_id: str) -> None:
        with self._lock:
            if delivery_id in self._deliveries:
                raise DuplicateDelivery(delivery_id)
            self._deliveries[delivery_id] = order_id

    def has_delivery(self, delivery_id: str) -> bool:
        return delivery_id in self._deliveries

    def attach_execution(self, order_id: str, execution_arn: str) -> None:
        with self._lock:
            current = self._orders.get(order_id)
            if current is None:
                raise NotFound(order_id)
            self._orders[order_id] = StoredOrder(current.order, current.version + 1, execution_arn)

    def _keep_token(self, order_id: str, tokens: dict[str, str | None], token: str | None) -> None:
        """Writing a task token is a write of the order's item: its version moves on."""
        with self._lock:
            current = self._orders.get(order_id)
            if current is None:
                raise NotFound(order_id)
            tokens[order_id] = token
            self._orders[order_id] = StoredOrder(current.order, current.version + 1, current.execution_arn)

    def set_review_token(self, order_id: str, token: str | None) -> None:
        self._keep_token(order_id, self._review_tokens, token)

    def get_review_token(self, order_id: str) -> str | None:
        return self._review_tokens.get(order_id)

    def set_payment_token(self, order_id: str, token: str | None) -> None:
        self._keep_token(order_id, self._payment_tokens, token)

    def get_payment_token(self, order_id: str) -> str | None:
        return self._payment_tokens.get(order_id)

    def link_payment(self, reference: str, order_id: str) -> None:
        self._payment_refs[reference] = order_id

    def order_for_payment(self, reference: str) -> str | None:
        return self._payment_refs.get(reference)

    def link_return(self, channel_return: str, order_id: str) -> None:
        self._payment_refs[f"return:{channel_return}"] = order_id

    def order_for_return(self, channel_return: str) -> str | None:
        return self._payment_refs.get(f"return:{channel_return}")

    def pending_publications(self, limit: int = 100) -> list[str]:
        waiting = [
            (min(p.created_at for p in s.order.publications if p.status == "pending"), order_id)
            for order_id, s in self._orders.items()
            if any(p.status == "pending" for p in s.order.publications)
        ]
        return [order_id for _, order_id in sorted(waiting)][:limit]

    def list_orders(
        self,
        *,
        status: OrderStatus | None,
        channel: str | None,
        limit: int,
        cursor: str | None,
        store: str | None = None,
    ) -> OrderPage:
        if store is not None and channel is None:
            raise InvalidInput("store needs its channel")
        orders = [s.order for s in self._orders.values()]
        if store is not None:
            orders = [o for o in orders if o.store == store]
        if status is not None:
            orders = [o for o in orders if o.status == status]
        if channel is not None:
            orders = [o for o in orders if o.channel == channel]
        if status is not None and store is None:
            orders.sort(key=lambda o: (o.updated_at, o.order_id), reverse=True)
        else:
            orders.sort(key=lambda o: (o.placed_at, o.order_id), reverse=True)
        start = 0
        if cursor:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(cursor))["offset"])
            except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
                raise InvalidInput("cursor is not one this API gave out") from exc
        page = orders[start : start + limit]
        more = start + limit < len(orders)
        next_cursor = (
            base64.urlsafe_b64encode(json.dumps({"offset": start + limit}).encode()).decode()
            if more
            else None
        )
        return OrderPage(orders=[o.model_copy(deep=True) for o in page], next_cursor=next_cursor)


class RecordingWorkflow:
    def __init__(self, fail_times: int = 0) -> None:
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.completed: list[tuple[str, dict[str, Any]]] = []
        self.stopped: list[tuple[str, str]] = []
        self.expired_tokens: set[str] = set()
        self._fail_times = fail_times

    def stop(self, order_id: str, cause: str, *, execution_arn: str | None = None) -> bool:
        self.stopped.append((order_id, cause))
        return order_id in {o for o, _ in self.started}

    def complete_task(self, token: str, output: dict[str, Any]) -> bool:
        self.completed.append((token, output))
        return token not in self.expired_tokens

    def start(self, order_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        if self._fail_times > 0:
            self._fail_times -= 1
            raise ConnectionError("states endpoint unreachable")
        self.started.append((order_id, payload))
        return f"arn:aws:states:us-east-1:123456789012:execution:lifecycle:{name or order_id}"


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, body: dict[str, Any], *, group_id: str, deduplication_id: str) -> str:
        self.sent.append({"body": body, "group_id": group_id, "deduplication_id": deduplication_id})
        return f"msg-{len(self.sent)}"


class InMemoryHeartbeats:
    def __init__(self) -> None:
        self.beats: dict[str, datetime] = {}

    def beat(self, name: str, at: datetime) -> None:
        self.beats[name] = at

    def last(self, name: str) -> datetime | None:
        return self.beats.get(name)


class StepClock:
    """A clock that moves forward by `step` every time it is read."""

    def __init__(self, start: datetime, step: timedelta = timedelta(seconds=1)) -> None:
        self.now = start
        self._step = step

    def __call__(self) -> datetime:
        current = self.now
        self.now = current + self._step
        return current


class InMemoryConnectionRepository:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Connection] = {}

    def put(self, connection: Connection) -> bool:
        key = (connection.channel, connection.store)
        new = key not in self.items
        self.items[key] = connection
        return new

    def get(self, channel: str, store: str) -> Connection | None:
        return self.items.get((channel, store))

    def get_by_id(self, connection_id: str) -> Connection | None:
        return next((c for c in self.items.values() if c.connection_id == connection_id), None)

    def list(self) -> list[Connection]:
        return list(self.items.values())

    def delete(self, connection: Connection) -> None:
        self.items.pop((connection.channel, connection.store), None)


class InMemorySecretStore:
    def __init__(self) -> None:
        self.values: dict[str, dict[str, str]] = {}

    def put(self, name: str, value: dict[str, str]) -> str:
        ref = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}"
        self.values[ref] = dict(value)
        return ref

    def get(self, ref: str) -> dict[str, str]:
        return dict(self.values[ref])

    def delete(self, ref: str) -> None:
        self.values.pop(ref, None)


class InMemoryClosedOrders:
    """The by-status index's range read (DynamoClosedOrders) over the fake repository."""

    def __init__(self, orders: InMemoryOrderRepository) -> None:
        self.orders = orders
        self.reads = 0

    def closed(self, status: OrderStatus, *, after: str | None, until: datetime, limit: int) -> list[Any]:
        from chalicelib.domain.retention import ClosedOrderRef

        high = f"{until.isoformat()}$"
        listed = sorted(
            (position, oid)
            for oid, position in self.orders.entered.items()
            if (s := self.orders.get(oid)) and s.order.status == status and (after or "") < position <= high
        )[:limit]
        self.reads += len(listed)
        return [ClosedOrderRef(p, oid, self.orders.get(oid).order.channel) for p, oid in listed]  # type: ignore[union-attr]


class InMemoryRetentionCursor:
    def __init__(self) -> None:
        self.positions: dict[str, str] = {}

    def position(self, lane: str) -> str | None:
        return self.positions.get(lane)

    def move(self, lane: str, position: str) -> None:
        self.positions[lane] = position


class InMemoryRawArchive:
    def __init__(self) -> None:
        self.items: dict[str, ArchivedDelivery] = {}

    def put(self, delivery: Any, raw: bytes) -> None:
        self.items.setdefault(
            delivery.delivery_id,
            ArchivedDelivery(
                delivery.delivery_id,
                delivery.channel,
                delivery.store,
                delivery.topic,
                delivery.received_at,
                raw,
            ),
        )

    def get(self, delivery_id: str) -> ArchivedDelivery | None:
        return self.items.get(delivery_id)

    def forget(self, delivery_id: str) -> None:
        self.items.pop(delivery_id, None)


class RecordingParkingLot:
    """Parks in memory, like the SQS one parks in the dead-letter queue; `broken` makes every park fail."""

    def __init__(self, broken: bool = False) -> None:
        self.parked: list[tuple[str, Any]] = []
        self.broken = broken

    def park(self, queue: str, message: Any) -> None:
        if self.broken:
            raise ConnectionError("dead-letter queue unreachable")
        self.parked.append((queue, message))


class InMemorySettingsStore:
    """SettingsStore as SSM Parameter Store behaves: every write a new version, history kept."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self._versions: dict[str, list[StoredSetting]] = {}
        for name, value in (values or {}).items():
            self.write(name, json.dumps(value))

    def current(self) -> dict[str, Any]:
        return {name: versions[-1].value for name, versions in self._versions.items()}

    def read(self, name: str) -> StoredSetting | None:
        versions = self._versions.get(name)
        return versions[-1] if versions else None

    def write(self, name: str, text: str) -> int:
        versions = self._versions.setdefault(name, [])
        at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC) + timedelta(minutes=len(versions))
        versions.append(StoredSetting(name, json.loads(text), len(versions) + 1, at))
        return len(versions)

    def versions(self, name: str) -> list[StoredSetting]:
        return list(self._versions.get(name, []))


class InMemorySettingsAudit:
    def __init__(self) -> None:
        self.recorded: dict[tuple[str, int], SettingChange] = {}

    def claim(self, change: SettingChange) -> None:
        if (change.name, change.version) in self.recorded:
            raise ConcurrentUpdate(f"{change.name} version {change.version} was written first")
        self.recorded[(change.name, change.version)] = change

    def release(self, name: str, version: int) -> None:
        self.recorded.pop((name, version), None)

    def changes(self, name: str) -> list[SettingChange]:
        return sorted((c for c in self.recorded.values() if c.name == name), key=lambda c: c.version)
