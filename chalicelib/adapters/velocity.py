"""VelocityCounter on the single table: one item per (hashed key, order), counted by sort-key range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

from pynamodb.attributes import TTLAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.models import TableModel
from chalicelib.domain.fraud import velocity_key_digest

# Items outlive their longest window by this much, so a late or retried check still sees them;
# DynamoDB's TTL deletes lazily anyway, which is why counting bounds the range itself.
TTL_MARGIN = timedelta(days=1)
_CONDITION_FAILED = "ConditionalCheckFailed"
# Sorts after "#" (0x23): "<time>$" is past every "<time>#<order id>" of that instant.
_AFTER_INSTANT = "$"
_MARKER = "ORDER#"


class VelocityModel(TableModel):
    """An order counted under a hashed key: an event at `<time>#<order id>` plus an `ORDER#` marker."""

    class Meta(TableModel.Meta):
        pass

    order_id = UnicodeAttribute()
    expires_at = TTLAttribute()


VELOCITY_MODELS: tuple[type[TableModel], ...] = (VelocityModel,)


def bind_velocity(table_name: str, region: str, host: str | None) -> None:
    """Point the velocity model at the deployed table (as models.bind does for the others)."""
    for model in VELOCITY_MODELS:
        model.Meta.table_name = table_name
        model.Meta.region = region
        model.Meta.host = host
        model._connection = None


def velocity_pk(kind: str, key: str) -> str:
    return f"VELOCITY#{kind}#{velocity_key_digest(kind, key)}"


def _instant(at: datetime) -> str:
    # Fixed width, UTC, microseconds: sort keys must order exactly as the instants do.
    if at.tzinfo is None:
        raise ValueError("velocity times must carry a time zone")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_instant(sk: str) -> datetime:
    return datetime.strptime(sk.split("#", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@lru_cache(maxsize=4)
def _transaction_connection(region: str | None, host: str | None) -> Connection:
    return Connection(region=region, host=host)


class DynamoVelocityCounter:
    def record_and_count(
        self,
        key_kind: str,
        key: str,
        at: datetime,
        windows: tuple[timedelta, ...],
        *,
        order_id: str,
    ) -> dict[timedelta, int]:
        if not windows:
            return {}
        pk = velocity_pk(key_kind, key)
        longest = max(windows)
        self._record_once(pk, order_id, at, at + longest + TTL_MARGIN)
        # One query over the longest window (keys only), split into the shorter windows here.
        lower = _instant(at - longest) + _AFTER_INSTANT
        upper = _instant(at) + _AFTER_INSTANT
        times = [
            _parse_instant(item.sk)
            for item in VelocityModel.query(
                pk,
                VelocityModel.sk.between(lower, upper),
                consistent_read=True,
                attributes_to_get=["sk"],
            )
        ]
        return {w: sum(1 for t in times if at - w < t <= at) for w in windows}

    @staticmethod
    def _record_once(pk: str, order_id: str, at: datetime, expires_at: datetime) -> None:
        # The marker makes recording idempotent per order even if a retry passes a different `at`;
        # one transaction, so a crash never leaves a marker without its event.
        marker = VelocityModel(pk, f"{_MARKER}{order_id}", order_id=order_id, expires_at=expires_at)
        event = VelocityModel(pk, f"{_instant(at)}#{order_id}", order_id=order_id, expires_at=expires_at)
        meta = VelocityModel.Meta
        try:
            with TransactWrite(connection=_transaction_connection(meta.region, meta.host)) as tx:
                tx.save(marker, condition=VelocityModel.pk.does_not_exist())
                tx.save(event)
        except TransactWriteError as exc:
            reasons = [r.code if r else None for r in (exc.cancellation_reasons or [])]
            if reasons and reasons[0] == _CONDITION_FAILED:
                return  # already counted
            raise
