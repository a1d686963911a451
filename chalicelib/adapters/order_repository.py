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
from chalicelib.adapters.models import DeliveryModel, HeartbeatModel, OrderModel, PaymentRefModel
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
    return f"ORDER#{order_id}", "ORDER"


def delivery_key(delivery_id: str) -> tuple[str, str]:
    return f"DELIVERY#{delivery_id}", "DELIVERY"


def to_model(order: Order, version: int | None) -> OrderModel:
    pk, sk = order_key(order.order_id)
    placed = order.placed_at.isoformat()
    model = OrderModel(
        pk,
        sk,
        document=order.to_json(),
        status=order.status.value,
        channel=order.channel,
        store=order.store,
        external_id=order.external_id,
        gsi1pk=f"CHANNEL#{order.channel}#{order.external_id}",
        gsi1sk=order.store,
        gsi2pk=f"STATUS#{order.status.value}",
        # By status, ordered by when the order entered it (what "stuck" measures). Written only when the
        # status moves (see save): the index item is rewritten then anyway, so ordering costs nothing more.
        gsi2sk=f"{_progress_at(order).isoformat()}#{order.order_id}",
        gsi3pk=f"STORE#{order.channel}#{order.store}",
        gsi3sk=f"{placed}#{order.order_id}",
        gsi4pk="ORDERS",
        gsi4sk=f"{placed}#{order.order_id}",
    )
    if version is not None:
        model.version = version
    return model


def _progress_at(order: Order) -> datetime:
    return order.history[-1].at if order.history else order.updated_at


# The attributes a save writes; everything else on the item is left as it is.
_WRITTEN = (
    "document",
    "status",
    "channel",
    "store",
    "external_id",
    "gsi1pk",
    "gsi1sk",
    "gsi2pk",
    "gsi3pk",
    "gsi3sk",
    "gsi4pk",
    "gsi4sk",
)


def _to_stored(model: OrderModel) -> StoredOrder:
    return StoredOrder(
        order=Order.model_validate(model.document),
        version=int(model.version or 0),
        execution_arn=model.execution_arn,
    )


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


class DynamoOrderRepository:
    def get(self, order_id: str) -> StoredOrder | None:
        try:
            return _to_stored(OrderModel.get(*order_key(order_id), consistent_read=True))
        except OrderModel.DoesNotExist:
            return None

    def get_by_channel(self, channel: str, store: str, external_id: str) -> StoredOrder | None:
        for model in OrderModel.by_channel.query(
            f"CHANNEL#{channel}#{external_id}", OrderModel.gsi1sk == store, limit=1
        ):
            return _to_stored(model)
        return None

    def find_by_external_id(self, channel: str, external_id: str) -> list[StoredOrder]:
        return [_to_stored(m) for m in OrderModel.by_channel.query(f"CHANNEL#{channel}#{external_id}")]

    def save(
        self,
        order: Order,
        *,
        expected_version: int | None,
        delivery_id: str | None = None,
        replacing: OrderStatus | None = None,
        movements: Sequence[CreditMovement] = (),
    ) -> int:
        model = to_model(order, expected_version)
        new_version = (expected_version or 0) + 1
        # An update, not a put: what lives beside the document (execution ARN, review token) stays.
        actions: list[Any] = [getattr(OrderModel, name).set(getattr(model, name)) for name in _WRITTEN]
        pending = [p.created_at for p in order.publications if p.status == "pending"]
        if pending:
            actions += [
                OrderModel.gsi5pk.set("PUBPENDING"),
                OrderModel.gsi5sk.set(f"{min(pending).isoformat()}#{order.order_id}"),
            ]
        else:
            actions += [OrderModel.gsi5pk.remove(), OrderModel.gsi5sk.remove()]
        # The orders-per-status counters move in the same transaction as a status change.
        previous = None
        if expected_version is not None:
            previous = replacing or self._stored_status(order.order_id, expected_version)
        moves = previous != order.status
        if moves:
            actions.append(OrderModel.gsi2sk.set(model.gsi2sk))
        if delivery_id is None and not moves and not movements:
            try:
                model.update(actions=actions)
            except UpdateError as exc:
                if exc.cause_response_code == f"{_CONDITION_FAILED}Exception":
                    raise ConcurrentUpdate(order.order_id) from exc
                raise
            return new_version
        self._transact(
            model,
            actions,
            order.order_id,
            delivery_id,
            (previous, order.status) if moves else None,
            movements=movements,
        )
        return new_version

    def _transact(
        self,
        model: OrderModel,
        actions: list[Any],
        order_id: str,
        delivery_id: str | None,
        move: tuple[OrderStatus | None, OrderStatus] | None,
        *,
        movements: Sequence[CreditMovement] = (),
    ) -> None:
        """The order's update with its delivery marker, its status-counter move (from, to) and its credit
        ledger movements, retried when a counter shard was held by another transaction at that moment."""
        ledger_puts, ledger_updates = ledger_writes(movements)
        # Where each item sits in the request (PynamoDB sends puts before updates): its cancellation reason.
        tags = [("delivery", delivery_id or "")] if delivery_id is not None else []
        tags += [w.tag for w in ledger_puts] + [("order", order_id)]
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
                    tx.update(model, actions=actions)
                    if move is not None:
                        tx.update(*status_move(order_id, *move))
                    for update in ledger_updates:
                        tx.update(update.item, actions=update.actions or [], condition=update.condition)
                return
            except TransactWriteError as exc:
                reasons = [r.code if r else None for r in (exc.cancellation_reasons or [])]
                failed = [tag for tag, code in zip(tags, reasons, strict=False) if code == _CONDITION_FAILED]
                translate_cancellation(exc, failed, movements)
                if "TransactionConflict" not in reasons or attempt + 1 == _CONFLICT_ATTEMPTS:
                    raise
                # Another transaction held a counter shard at that moment: nothing was written.
                time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 (jitter, not security)

    @staticmethod
    def _stored_status(order_id: str, expected_version: int) -> OrderStatus:
        """The status stored at `expected_version` (the write's version condition makes it the one
        replaced)."""
        try:
            item = OrderModel.get(
                *order_key(order_id),
                consistent_read=True,
                attributes_to_get=["status", "version"],
            )
        except OrderModel.DoesNotExist as exc:
            raise ConcurrentUpdate(order_id) from exc
        if int(item.version or 0) != expected_version:
            raise ConcurrentUpdate(order_id)
        return OrderStatus(item.status)

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
            OrderModel._get_connection().update_item(
                pk,
                sk,
                actions=[OrderModel.execution_arn.set(execution_arn), OrderModel.version.add(1)],
                condition=OrderModel.pk.exists(),
            )
        except UpdateError as exc:
            if exc.cause_response_code == f"{_CONDITION_FAILED}Exception":
                raise NotFound(order_id) from exc
            raise

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
            OrderModel._get_connection().update_item(
                pk, sk, actions=[action, OrderModel.version.add(1)], condition=OrderModel.pk.exists()
            )
        except UpdateError as exc:
            if exc.cause_response_code == f"{_CONDITION_FAILED}Exception":
                raise NotFound(order_id) from exc
            raise

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
                filter_condition=(OrderModel.status == status.value) if status else None,
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
        orders = [_to_stored(m).order for m in results]
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
