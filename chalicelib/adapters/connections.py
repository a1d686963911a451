"""ConnectionRepository on DynamoDB and SecretStore on Secrets Manager (with a short read cache)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.adapters.models import ConnectionModel
from chalicelib.domain.connections import Connection

# Webhooks look a store's secret up on every delivery: cache it briefly, so a rotation still lands fast.
SECRET_CACHE_SECONDS = 300.0


def _key(channel: str, store: str) -> tuple[str, str]:
    return f"CONNECTION#{channel}#{store}", "CONNECTION"


def _to_connection(model: ConnectionModel) -> Connection:
    return Connection(
        connection_id=model.connection_id,
        channel=model.channel,
        store=model.store,
        secret_ref=model.secret_ref,
        created_at=model.created_at,
        settings=dict(model.settings or {}),
    )


# Every webhook looks its store up: a short cache saves a read per delivery. A connection deleted
# elsewhere may still be honoured by a warm function for this long.
CONNECTION_CACHE_SECONDS = 60.0


class DynamoConnectionRepository:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, Connection | None]] = {}
        self._lock = threading.Lock()

    def _forget(self, channel: str, store: str) -> None:
        with self._lock:
            self._cache.pop((channel, store), None)

    def put(self, connection: Connection) -> bool:
        pk, sk = _key(connection.channel, connection.store)
        self._forget(connection.channel, connection.store)
        existed = self.get(connection.channel, connection.store) is not None
        ConnectionModel(
            pk,
            sk,
            connection_id=connection.connection_id,
            channel=connection.channel,
            store=connection.store,
            secret_ref=connection.secret_ref,
            created_at=connection.created_at,
            settings=connection.settings,
            gsi1sk=f"{connection.connection_id}",
        ).save()
        self._forget(connection.channel, connection.store)
        return not existed

    def get(self, channel: str, store: str) -> Connection | None:
        now = self._clock()
        with self._lock:
            cached = self._cache.get((channel, store))
        if cached is not None and now - cached[0] < CONNECTION_CACHE_SECONDS:
            return cached[1]
        try:
            found: Connection | None = _to_connection(ConnectionModel.get(*_key(channel, store)))
        except ConnectionModel.DoesNotExist:
            found = None
        with self._lock:
            self._cache[(channel, store)] = (now, found)
        return found

    def get_by_id(self, connection_id: str) -> Connection | None:
        for model in ConnectionModel.listing.query("CONNECTIONS", ConnectionModel.gsi1sk == connection_id):
            return _to_connection(model)
        return None

    def list(self) -> list[Connection]:
        return [_to_connection(m) for m in ConnectionModel.listing.query("CONNECTIONS")]

    def delete(self, connection: Connection) -> None:
        ConnectionModel(*_key(connection.channel, connection.store)).delete()
        self._forget(connection.channel, connection.store)


class SecretsManagerStore:
    def __init__(self, client: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def put(self, name: str, value: dict[str, str]) -> str:
        payload = json.dumps(value)
        try:
            arn = self._client.create_secret(Name=name, SecretString=payload)["ARN"]
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "InvalidRequestException":
                # Deleted earlier and still in its recovery window: bring it back, then overwrite.
                self._client.restore_secret(SecretId=name)
            elif code != "ResourceExistsException":
                raise
            arn = self._client.put_secret_value(SecretId=name, SecretString=payload)["ARN"]
        with self._lock:
            self._cache.pop(arn, None)
        return str(arn)

    def get(self, ref: str) -> dict[str, str]:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(ref)
        if cached and now - cached[0] < SECRET_CACHE_SECONDS:
            return cached[1]
        value = json.loads(self._client.get_secret_value(SecretId=ref)["SecretString"])
        with self._lock:
            self._cache[ref] = (now, value)
        return dict(value)

    def delete(self, ref: str) -> None:
        # A recovery window, not a forced delete: a mistaken DELETE can be undone for 7 days.
        self._client.delete_secret(SecretId=ref, RecoveryWindowInDays=7)
        with self._lock:
            self._cache.pop(ref, None)
