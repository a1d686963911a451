"""OrderRepository on DynamoDB through PynamoDB: versioned aggregates, transactional dedup, no scans."""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib import resources
from chalicelib.adapters.credit_ledger import ledger_writes, translate_cancellation
from chalicelib.adapters.models import (
    DeliveryModel,
    HeartbeatModel,
    OrderEntryModel,
    OrderModel,
    PaymentRefModel,
    TableModel,
)
from chalicelib.adapters.order_items import (
    FIRST_SK,
    INDEX_ATTRIBUTES,
    LAST_SK,
    ORDER_SK,
    Changes,
    Images,
    Snapshots,
    changes,
    images,
    order_pk,
    read,
)
from chalicelib.adapters.stats import status_move
from chalicelib.domain.credit.model import CreditMovement
from chalicelib.domain.errors import ConcurrentUpdate, DuplicateDelivery, InvalidInput, NotFound
from chalicelib.domain.order import Order, OrderStatus, utcnow
from chalicelib.domain.ports import OrderPage, StoredOrder

# Long enough to outlast every sender's retry schedule (Shopify retries for up to 48 hours).
DELIVERY_DEDUP_WINDOW = timedelta(days=30)
_CONDITION_FAILED = "ConditionalCheckFailed"
_CONFLICT_ATTEMPTS = 4


def order_key(order_id: str) -> tuple[str, str]:
    return order_pk(order_id), ORDER_SK


def delivery_key(delivery_id: str) -> tuple[str, str]:
    return f"DELIVERY#{delivery_id}", "DELIVERY"


# How many entry items one save's transaction may hold (DynamoDB's limit is 100 items; the rest is kept
# for the order item, its delivery marker, its status counter and its credit-ledger items).
_ORDER_BUDGET = 90


def new_order_items(order: Order, version: int = 1) -> list[TableModel]:
    """The items a first save writes for `order` (the order item and one per list entry), as models."""
    after = images(order)
    return [_order_item(order.order_id, after, version)] + [
        OrderEntryModel(order_pk(order.order_id), sk, body=json.loads(body))
        for sk, body in after.entries.items()
    ]


def _order_item(order_id: str, after: Images, version: int | None) -> OrderModel:
    pk, sk = order_key(order_id)
    model = OrderModel(pk, sk, document=json.loads(after.document), lists=after.lengths)
    for name, value in after.attributes.items():
        setattr(model, name, value)
    if version is not None:
        model.version = version
    return model


def _update_actions(after: Images, change: Changes) -> list[Any]:
    """The order item's update: only what changed (an update, not a put: what lives beside the document,
    the execution ARN and the task tokens, stays)."""
    actions: list[Any] = []
    if change.document:
        actions.append(OrderModel.document.set(json.loads(after.document)))
    if change.lengths:
        actions.append(OrderModel.lists.set(after.lengths))
    for name, value in change.attributes.items():
        attribute = getattr(OrderModel, name)
        actions.append(attribute.set(value) if value is not None else attribute.remove())
    return actions


def _encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _decode_cursor(cursor: str | None, index: Any, partition: str) -> dict[str, Any] | None:
    """The key a page of `index` stopped at, as this API gave it out: DynamoDB's exclusive start key holds
    the table's and the index's keys, strings only, inside the queried partition. Anything else (a crafted
    or mangled cursor) is InvalidInput, never a ValidationException from DynamoDB (a 500)."""
    if not cursor:
        return None
    refused = InvalidInput("cursor is not one this API gave out")
    if len(cursor) > 4096:
        raise refused
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, RecursionError) as exc:  # binascii.Error and UnicodeError are ValueErrors
        raise refused from exc
    spec = next(i for i in resources.TABLE.indexes if i.name == index.Meta.index_name)
    names = {"pk", "sk", spec.partition_key, spec.sort_key}
    if not isinstance(key, dict) or set(key) != names:
        raise refused
    for value in key.values():
        if not (isinstance(value, dict) and set(value) == {"S"} and isinstance(value["S"], str)):
            raise refused
        if not 0 < len(value["S"]) <= 1024:
            raise refused
    if key[spec.partition_key]["S"] != partition:
        raise refused
    return key


@lru_cache(maxsize=4)
def transaction_connection(region: str | None, host: str | None) -> Connection:
    return Connection(region=region, host=host)


_SNAPSHOTS = Snapshots()


def _read_partition(order_id: str) -> tuple[StoredOrder, Images] | None:
    """The order from its partition in one consistent Query (more pages only past 1 MB)."""
    main: OrderModel | None = None
    bodies: dict[str, Any] = {}
    start = None
    while True:
        page = OrderModel._get_connection().query(
            order_pk(order_id),
            OrderModel.sk.between(FIRST_SK, LAST_SK),
            consistent_read=True,
            exclusive_start_key=start,
        )
        for raw in page.get("Items", []):
            if raw["sk"]["S"] == ORDER_SK:
                main = OrderModel.from_raw_data(raw)
            else:
                bodies[raw["sk"]["S"]] = OrderEntryModel.from_raw_data(raw).body
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    if main is None:
        return None
    fields = {"document": main.document, "lists": main.lists, "execution_arn": main.execution_arn}
    fields |= {name: getattr(main, name) for name in INDEX_ATTRIBUTES}
    order, stored = read(fields, bodies)
    version = int(main.version or 0)
    _SNAPSHOTS.put(order_id, version, stored)
    return StoredOrder(order=order, version=version, execution_arn=main.execution_arn), stored


def load_orders(order_ids: Sequence[str]) -> list[Order]:
    """Orders by id, each read whole (the indexes project keys, not documents); a vanished one is left out."""
    found = (_read_partition(order_id) for order_id in order_ids)
    return [f[0].order for f in found if f is not None]


class DynamoOrderRepository:
    def get(self, order_id: str) -> StoredOrder | None:
        found = _read_partition(order_id)
        return found[0] if found else None

    def get_by_channel(self, channel: str, store: str, external_id: str) -> StoredOrder | None:
        for model in OrderModel.by_channel.query(
            f"CHANNEL#{channel}#{external_id}", OrderModel.gsi1sk == store, limit=1
        ):
            return self.get(model.pk.removeprefix("ORDER#"))
        return None

    def find_by_external_id(self, channel: str, external_id: str) -> list[StoredOrder]:
        found = (
            self.get(m.pk.removeprefix("ORDER#"))
            for m in OrderModel.by_channel.query(f"CHANNEL#{channel}#{external_id}")
        )
        return [s for s in found if s is not None]

    def save(
        self,
        order: Order,
        *,
        expected_version: int | None,
        delivery_id: str | None = None,
        replacing: OrderStatus | None = None,
        movements: Sequence[CreditMovement] = (),
    ) -> int:
        before: Images | None = None
        if expected_version is not None:
            before = _SNAPSHOTS.get(order.order_id, expected_version) or self._stored(
                order.order_id, expected_version
            )
        after = images(order, before)
        change = changes(before, after)
        if expected_version is not None and change.none and delivery_id is None and not movements:
            return expected_version  # nothing to write: the stored order is this one
        previous = OrderStatus(str(before.attributes["status"])) if before is not None else None
        moves = previous != order.status
        new_version = (expected_version or 0) + 1
        model = _order_item(order.order_id, after, expected_version)
        actions = _update_actions(after, change)
        if delivery_id is None and not moves and not movements and not change.puts and not change.deletes:
            try:
                model.update(actions=actions)
            except UpdateError as exc:
                if exc.cause_response_code == f"{_CONDITION_FAILED}Exception":
                    raise ConcurrentUpdate(order.order_id) from exc
                raise
        else:
            self._transact(
                model,
                actions,
                change,
                order_id=order.order_id,
                delivery_id=delivery_id,
                move=(previous, order.status) if moves else None,
                movements=movements,
            )
        _SNAPSHOTS.put(
            order.order_id,
            new_version,
            Images(
                after.document,
                after.attributes,
                after.entries,
                after.lengths,
                True,
                before.execution_arn if before is not None else None,
            ),
        )
        return new_version

    @staticmethod
    def _stored(order_id: str, expected_version: int) -> Images:
        """The images stored at `expected_version`, read (this process has not seen that version)."""
        found = _read_partition(order_id)
        if found is None or found[0].version != expected_version:
            raise ConcurrentUpdate(order_id)
        return found[1]

    def _transact(
        self,
        model: OrderModel,
        actions: list[Any],
        change: Changes,
        *,
        order_id: str,
        delivery_id: str | None,
        move: tuple[OrderStatus | None, OrderStatus] | None,
        movements: Sequence[CreditMovement] = (),
    ) -> None:
        """The order item's update with the entry items that changed, its delivery marker, its status-counter
        move (from, to) and its credit ledger movements, retried when a counter shard was held by another
        transaction at that moment. Entry items beyond one transaction's room (an old order's first save in
        the new layout) are written first: past the stored lengths until the transaction commits, or equal to
        what the transaction writes, they change nothing a reader sees."""
        ledger_puts, ledger_updates = ledger_writes(movements)
        pk = order_pk(order_id)
        entries = [OrderEntryModel(pk, sk, body=json.loads(body)) for sk, body in change.puts.items()]
        deletes = [OrderEntryModel(pk, sk) for sk in change.deletes]
        room = _ORDER_BUDGET - len(ledger_puts) - len(ledger_updates)
        if len(entries) + len(deletes) > room:
            early, entries = entries[: len(entries) - room], entries[len(entries) - room :]
            with OrderEntryModel.batch_write() as batch:
                for item in early:
                    batch.save(item)
            deletes, late = deletes[: max(0, room - len(entries))], deletes[max(0, room - len(entries)) :]
            del late  # past the lengths: never read, overwritten by the next entry at that position
        # Where each item sits in the request (PynamoDB sends puts before updates): its cancellation reason.
        tags = [("delivery", delivery_id or "")] if delivery_id is not None else []
        tags += [w.tag for w in ledger_puts] + [("entry", order_id)] * len(entries)
        tags += [("order", order_id)]
        tags += [("status", order_id)] if move is not None else []
        tags += [w.tag for w in ledger_updates]
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                with TransactWrite(connection=self._connection()) as tx:
                    if delivery_id is not None:
                        tx.save(
                            self._delivery_marker(delivery_id, order_id),
                            condition=DeliveryModel.pk.does_not_exist(),
                        )
                    for put in ledger_puts:
                        tx.save(put.item, condition=put.condition)
                    for entry in entries:
                        tx.save(entry)
                    tx.update(model, actions=actions)
                    if move is not None:
                        tx.update(*status_move(order_id, *move))
                    for update in ledger_updates:
                        tx.update(update.item, actions=update.actions or [], condition=update.condition)
                    for gone in deletes:
                        tx.delete(gone)
                return
            except TransactWriteError as exc:
                reasons = [r.code if r else None for r in (exc.cancellation_reasons or [])]
                failed = [tag for tag, code in zip(tags, reasons, strict=False) if code == _CONDITION_FAILED]
                translate_cancellation(exc, failed, movements)
                if "TransactionConflict" not in reasons or attempt + 1 == _CONFLICT_ATTEMPTS:
                    raise
                # Another transaction held a counter shard at that moment: nothing was written.
                time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 (jitter, not security)

    def record_delivery(self, delivery_id: str, order_id: str) -> None:
        try:
            self._delivery_marker(delivery_id, order_id).save(condition=DeliveryModel.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == f"{_CONDITION_FAILED}Exception":
                raise DuplicateDelivery(delivery_id) from exc
            raise

    def has_delivery(self, delivery_id: str) -> bool:
        try:
            DeliveryModel.get(*delivery_key(delivery_id), consistent_read=True)
        except DeliveryModel.DoesNotExist:
            return False
        return True

    def attach_execution(self, order_id: str, execution_arn: str) -> None:
        # Bumping the version makes any writer holding an older copy reload rather than drop the ARN.
        pk, sk = order_key(order_id)
        try:
            answer = OrderModel._get_connection().update_item(
                pk,
                sk,
                actions=[OrderModel.execution_arn.set(execution_arn), OrderModel.version.add(1)],
                condition=OrderModel.pk.exists(),
                return_values="UPDATED_NEW",
            )
        except UpdateError as exc:
            if exc.cause_response_code == f"{_CONDITION_FAILED}Exception":
                raise NotFound(order_id) from exc
            raise
        _moved(order_id, answer, execution_arn)

    def set_review_token(self, order_id: str, token: str | None) -> None:
        self._set_token(OrderModel.review_token, order_id, token)

    def get_review_token(self, order_id: str) -> str | None:
        model = self._model(order_id)
        return model.review_token if model else None

    def set_payment_token(self, order_id: str, token: str | None) -> None:
        self._set_token(OrderModel.payment_token, order_id, token)

    def get_payment_token(self, order_id: str) -> str | None:
        model = self._model(order_id)
        return model.payment_token if model else None

    def link_payment(self, reference: str, order_id: str) -> None:
        # Idempotent: the same reference always names the same order (a PaymentIntent pays one order).
        PaymentRefModel(f"PAYREF#{reference}", "PAYREF", order_id=order_id).save()

    def order_for_payment(self, reference: str) -> str | None:
        try:
            return PaymentRefModel.get(f"PAYREF#{reference}", "PAYREF", consistent_read=True).order_id
        except PaymentRefModel.DoesNotExist:
            return None

    def link_return(self, channel_return: str, order_id: str) -> None:
        PaymentRefModel(f"RETREF#{channel_return}", "RETREF", order_id=order_id).save()

    def order_for_return(self, channel_return: str) -> str | None:
        try:
            return PaymentRefModel.get(f"RETREF#{channel_return}", "RETREF", consistent_read=True).order_id
        except PaymentRefModel.DoesNotExist:
            return None

    @staticmethod
    def _model(order_id: str) -> OrderModel | None:
        try:
            return OrderModel.get(*order_key(order_id), consistent_read=True)
        except OrderModel.DoesNotExist:
            return None

    @staticmethod
    def _set_token(attribute: Any, order_id: str, token: str | None) -> None:
        pk, sk = order_key(order_id)
        action = attribute.set(token) if token else attribute.remove()
        try:
            answer = OrderModel._get_connection().update_item(
                pk,
                sk,
                actions=[action, OrderModel.version.add(1)],
                condition=OrderModel.pk.exists(),
                return_values="UPDATED_NEW",
            )
        except UpdateError as exc:
            if exc.cause_response_code == f"{_CONDITION_FAILED}Exception":
                raise NotFound(order_id) from exc
            raise
        _moved(order_id, answer)

    def pending_publications(self, limit: int = 100) -> list[str]:
        """Orders whose outbox has pending milestones, oldest first (the sparse gsi5: no scan)."""
        return [
            m.pk.removeprefix("ORDER#")
            for m in OrderModel.pending_publications.query("PUBPENDING", limit=limit)
        ]

    def list_orders(
        self,
        *,
        status: OrderStatus | None,
        channel: str | None,
        limit: int,
        cursor: str | None,
        store: str | None = None,
    ) -> OrderPage:
        if store is not None:
            if channel is None:
                raise InvalidInput("store needs its channel")
            # by store + time; a status narrows it with a filter on that one store's orders
            partition = f"STORE#{channel}#{store}"
            results = OrderModel.by_store.query(
                partition,
                scan_index_forward=False,
                limit=limit,
                last_evaluated_key=_decode_cursor(cursor, OrderModel.by_store, partition),
            )
        elif status is not None:
            partition = f"STATUS#{status.value}"
            results = OrderModel.by_status.query(
                partition,
                filter_condition=(OrderModel.channel == channel) if channel else None,
                scan_index_forward=False,
                limit=limit,
                last_evaluated_key=_decode_cursor(cursor, OrderModel.by_status, partition),
            )
        else:
            results = OrderModel.all_orders.query(
                "ORDERS",
                filter_condition=(OrderModel.channel == channel) if channel else None,
                scan_index_forward=False,
                limit=limit,
                last_evaluated_key=_decode_cursor(cursor, OrderModel.all_orders, "ORDERS"),
            )
        orders = load_orders([m.pk.removeprefix("ORDER#") for m in results])
        if store is not None and status is not None:
            # The by-store index projects keys only (a status there would be rewritten on every move):
            # the page's orders are read anyway, so the status narrows them here, as a filter would.
            orders = [o for o in orders if o.status == status]
        return OrderPage(orders=orders, next_cursor=_encode_cursor(results.last_evaluated_key))

    @staticmethod
    def _delivery_marker(delivery_id: str, order_id: str) -> DeliveryModel:
        pk, sk = delivery_key(delivery_id)
        return DeliveryModel(pk, sk, order_id=order_id, expires_at=utcnow() + DELIVERY_DEDUP_WINDOW)

    @staticmethod
    def _connection() -> Connection:
        # One per process: a new Connection builds a botocore client, reading service models from disk.
        meta = OrderModel.Meta
        return transaction_connection(meta.region, meta.host)


def _moved(order_id: str, answer: dict[str, Any], execution_arn: str | None = None) -> None:
    """An update that only bumped the order item's version: what this process knew of the version before
    is still the order's images."""
    version = int(answer.get("Attributes", {}).get("version", {}).get("N", 0))
    if version > 1:
        _SNAPSHOTS.moved(order_id, version - 1, version, execution_arn)


class DynamoHeartbeats:
    def beat(self, name: str, at: datetime) -> None:
        HeartbeatModel("SYSTEM", f"HEARTBEAT#{name}").update(
            actions=[HeartbeatModel.at.set(at), HeartbeatModel.runs.add(1)]
        )

    def last(self, name: str) -> datetime | None:
        try:
            return HeartbeatModel.get("SYSTEM", f"HEARTBEAT#{name}").at
        except HeartbeatModel.DoesNotExist:
            return None
