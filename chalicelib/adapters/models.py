"""PynamoDB models of the single table: orders, delivery markers and heartbeats share one table."""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BinaryAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib import resources

TABLE = resources.TABLE


def _index(spec: resources.IndexSpec) -> type[GlobalSecondaryIndex[Any]]:
    """A PynamoDB index class built from the resource specification, so both cannot disagree."""
    meta = type("Meta", (), {"index_name": spec.name, "projection": AllProjection()})
    attrs = {
        "Meta": meta,
        spec.partition_key: UnicodeAttribute(hash_key=True),
        spec.sort_key: UnicodeAttribute(range_key=True),
    }
    return type(f"{spec.name.capitalize()}Index", (GlobalSecondaryIndex,), attrs)


_ByChannel, _ByStatus, _ByStore, _AllOrders, _PendingPublications = (_index(spec) for spec in TABLE.indexes)


class TableModel(Model):
    class Meta:
        table_name = TABLE.name
        region: str | None = None
        host: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class OrderModel(TableModel):
    """One order: the canonical document plus the keys its indexes need."""

    class Meta(TableModel.Meta):
        pass

    version = VersionAttribute()
    document = JSONAttribute()
    status = UnicodeAttribute()
    channel = UnicodeAttribute()
    store = UnicodeAttribute()
    external_id = UnicodeAttribute()
    execution_arn = UnicodeAttribute(null=True)
    # The waiting fraud review's task token: a capability, so never in the order's JSON.
    review_token = UnicodeAttribute(null=True)
    # The waiting payment recovery's task token (PAYMENT_PENDING), kept the same way.
    payment_token = UnicodeAttribute(null=True)
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    gsi2pk = UnicodeAttribute()
    gsi2sk = UnicodeAttribute()
    gsi3pk = UnicodeAttribute()
    gsi3sk = UnicodeAttribute()
    gsi4pk = UnicodeAttribute()
    gsi4sk = UnicodeAttribute()
    # Present only while the order's outbox has pending milestones (a sparse index).
    gsi5pk = UnicodeAttribute(null=True)
    gsi5sk = UnicodeAttribute(null=True)

    by_channel = _ByChannel()
    by_status = _ByStatus()
    by_store = _ByStore()
    all_orders = _AllOrders()
    pending_publications = _PendingPublications()


class DeliveryModel(TableModel):
    """A delivery already applied (the sender's event id), kept for the dedup window."""

    class Meta(TableModel.Meta):
        pass

    order_id = UnicodeAttribute()
    expires_at = TTLAttribute()


class PaymentRefModel(TableModel):
    """Which order a payment (a Stripe PaymentIntent) pays: how a payment webhook finds its order."""

    class Meta(TableModel.Meta):
        pass

    order_id = UnicodeAttribute()


class FulfilmentModel(TableModel):
    """The fulfilment stage's items: a waiting shipment task's token, a tracking number's shipment, an open
    shipment (one partition, ordered by promise), a carrier's delivery counters."""

    class Meta(TableModel.Meta):
        pass

    order_id = UnicodeAttribute(null=True)
    shipment_id = UnicodeAttribute(null=True)
    token = UnicodeAttribute(null=True)
    promised_at = UTCDateTimeAttribute(null=True)
    delivered = NumberAttribute(null=True)
    on_time = NumberAttribute(null=True)
    flags = JSONAttribute(null=True)


class ReconciliationModel(TableModel):
    """A store's reconciliation watermark, or one run's report (newest first under RECON#RUNS)."""

    class Meta(TableModel.Meta):
        pass

    at = UTCDateTimeAttribute(null=True)
    report = JSONAttribute(null=True)
    expires_at = TTLAttribute(null=True)


class HeartbeatModel(TableModel):
    """The last time a scheduled job ran, shown by /health."""

    class Meta(TableModel.Meta):
        pass

    at = UTCDateTimeAttribute()
    runs = NumberAttribute(default=0)


class ConnectionModel(TableModel):
    """A registered store; its secrets live in Secrets Manager under `secret_ref`."""

    class Meta(TableModel.Meta):
        pass

    connection_id = UnicodeAttribute()
    channel = UnicodeAttribute()
    store = UnicodeAttribute()
    secret_ref = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    settings = JSONAttribute(default=dict)
    # Listing connections: one small partition, never a scan.
    gsi1pk = UnicodeAttribute(default="CONNECTIONS")
    gsi1sk = UnicodeAttribute()

    listing = _ByChannel()


class RawDeliveryModel(TableModel):
    """An accepted delivery exactly as received (zlib-compressed), kept for replay until it expires."""

    class Meta(TableModel.Meta):
        pass

    channel = UnicodeAttribute()
    store = UnicodeAttribute()
    topic = UnicodeAttribute()
    received_at = UTCDateTimeAttribute()
    body = BinaryAttribute(legacy_encoding=False)
    expires_at = TTLAttribute()


def _status_count_model() -> type[TableModel]:
    """One shard of the orders-per-status counters: a number attribute per status (see stats.py)."""
    from chalicelib.domain.order import OrderStatus

    attrs: dict[str, Any] = {
        "Meta": type("Meta", (TableModel.Meta,), {}),
        **{s.value.lower(): NumberAttribute(null=True, attr_name=s.value) for s in OrderStatus},
    }
    return type("StatusCountModel", (TableModel,), attrs)


StatusCountModel = _status_count_model()


class TrafficModel(TableModel):
    """A store's deliveries in one ten-minute bucket (see stats.py)."""

    class Meta(TableModel.Meta):
        pass

    received = NumberAttribute(null=True)
    rejected = NumberAttribute(null=True)
    duplicates = NumberAttribute(null=True)
    ignored = NumberAttribute(null=True)
    throttled = NumberAttribute(null=True)
    last_event_at = UTCDateTimeAttribute(null=True)
    last_throttled_at = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute(null=True)


class ReturnsDayModel(TableModel):
    """The returns that reached one final status on one day, one shard of them (see returns_board.py)."""

    class Meta(TableModel.Meta):
        pass

    return_ids = UnicodeSetAttribute(null=True)
    expires_at = TTLAttribute(null=True)


class CreditModel(TableModel):
    """The credit ledger (see credit_ledger.py): an account's balance, a movement listed under its account,
    a movement's once-only marker, or a currency's outstanding total. Amounts in minor units (exact)."""

    class Meta(TableModel.Meta):
        pass

    account = UnicodeAttribute(null=True)
    amount_minor = NumberAttribute(null=True)
    currency = UnicodeAttribute(null=True)
    # ISO 8601 UTC in one fixed format, so the condition `expires_at > :now` compares as text.
    expires_at = UnicodeAttribute(null=True)
    code = UnicodeAttribute(null=True)
    kind = UnicodeAttribute(null=True)
    movement_id = UnicodeAttribute(null=True)
    order_id = UnicodeAttribute(null=True)
    return_id = UnicodeAttribute(null=True)
    at = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)


class SettingChangeModel(TableModel):
    """One change of a runtime setting made through the API (settings_audit.py): who, when, what."""

    class Meta(TableModel.Meta):
        pass

    at = UTCDateTimeAttribute()
    by = UnicodeAttribute()
    summary = UnicodeAttribute()


MODELS: tuple[type[TableModel], ...] = (
    OrderModel,
    DeliveryModel,
    PaymentRefModel,
    FulfilmentModel,
    ReconciliationModel,
    HeartbeatModel,
    ConnectionModel,
    RawDeliveryModel,
    StatusCountModel,
    TrafficModel,
    ReturnsDayModel,
    CreditModel,
    SettingChangeModel,
)


def bind(table_name: str, region: str, host: str | None) -> None:
    """Point every model at the deployed table (called by the composition root, never at import)."""
    for model in MODELS:
        model.Meta.table_name = table_name
        model.Meta.region = region
        model.Meta.host = host
        model._connection = None
