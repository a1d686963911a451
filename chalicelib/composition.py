"""Composition root: wires real adapters for Lambda and the local stack; tests swap in fakes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib import resources
from chalicelib.domain.connections import Connection, ConnectionRepository, SecretStore
from chalicelib.domain.fraud import FraudPolicy, VelocityCounter
from chalicelib.domain.order import utcnow
from chalicelib.domain.ports import (
    DeliveryQueue,
    Heartbeats,
    OrderRepository,
    RawArchive,
    WorkflowStarter,
)
from chalicelib.settings import ConfigurationError, Settings, get_settings


@dataclass
class Services:
    settings: Settings
    orders: OrderRepository
    workflow: WorkflowStarter
    ingest_queue: DeliveryQueue
    heartbeats: Heartbeats
    now: Callable[[], datetime]
    operator_token: Callable[[], str | None]
    connections: ConnectionRepository
    secrets: SecretStore
    raw_archive: RawArchive
    velocity: VelocityCounter | None = None
    fraud_policy: FraudPolicy = field(default_factory=FraudPolicy)
    # Builds (and caches, token and pacing included) the SP-API client of one Amazon connection.
    spapi: Callable[[Connection, dict[str, str]], Any] = field(default=lambda c, s: None)

    @property
    def secret_prefix(self) -> str:
        return f"{resources.APP_NAME}/{self.settings.stage}/connections/"


_services: Services | None = None


def services() -> Services:
    global _services
    if _services is None:
        _services = _build(get_settings())
    return _services


def override(replacement: Services | None) -> None:
    """Use other collaborators (tests); None rebuilds the real ones on next use."""
    global _services
    _services = replacement


def _build(settings: Settings) -> Services:
    from chalicelib.adapters import aws, models
    from chalicelib.adapters.connections import DynamoConnectionRepository, SecretsManagerStore
    from chalicelib.adapters.delivery_queue import SqsDeliveryQueue
    from chalicelib.adapters.order_repository import DynamoHeartbeats, DynamoOrderRepository
    from chalicelib.adapters.raw_archive import DynamoRawArchive
    from chalicelib.adapters.velocity import DynamoVelocityCounter, bind_velocity
    from chalicelib.adapters.workflow import StepFunctionsWorkflow

    models.bind(settings.table_name, settings.region, settings.aws_endpoint)
    bind_velocity(settings.table_name, settings.region, settings.aws_endpoint)
    return Services(
        settings=settings,
        orders=DynamoOrderRepository(),
        workflow=_LazyWorkflow(
            lambda: StepFunctionsWorkflow(
                aws.client("stepfunctions"),
                settings.state_machine_arn(resources.ORDER_LIFECYCLE.key),
            )
        ),
        ingest_queue=_LazyQueue(
            lambda: SqsDeliveryQueue(aws.client("sqs"), settings.queue_url(resources.INGEST_QUEUE.key))
        ),
        heartbeats=DynamoHeartbeats(),
        now=utcnow,
        operator_token=lambda: _operator_token(settings),
        connections=DynamoConnectionRepository(),
        secrets=SecretsManagerStore(aws.client("secretsmanager")),
        raw_archive=DynamoRawArchive(),
        spapi=_SpApiClients(settings),
        velocity=DynamoVelocityCounter(),
        fraud_policy=FraudPolicy.from_mapping(settings.fraud_policy)
        if settings.fraud_policy
        else FraudPolicy(),
    )


def _operator_token(settings: Settings) -> str | None:
    if settings.operator_token:
        return settings.operator_token
    if settings.operator_token_secret_id:
        from aws_lambda_powertools.utilities import parameters

        # Cached for five minutes: a rotated token takes effect without a redeploy.
        return str(parameters.get_secret(settings.operator_token_secret_id, max_age=300))
    return None


class _SpApiClients:
    """One client per Amazon connection and secret version, so its token cache and pacing persist."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[str, Any] = {}

    def __call__(self, connection: Connection, secrets: dict[str, str]) -> Any:
        from chalicelib.adapters.spapi import LWA_TOKEN_URL, SpApiClient, endpoint_for_marketplace

        key = connection.connection_id + hashlib.sha256(repr(sorted(secrets.items())).encode()).hexdigest()
        client = self._clients.get(key)
        if client is None:
            marketplace = connection.settings.get("marketplace_id", "")
            client = SpApiClient(
                endpoint=self._settings.amazon_spapi_endpoint or endpoint_for_marketplace(marketplace),
                lwa_endpoint=self._settings.amazon_lwa_endpoint or LWA_TOKEN_URL,
                client_id=secrets["lwa_client_id"],
                client_secret=secrets["lwa_client_secret"],
                refresh_token=secrets["refresh_token"],
            )
            self._clients[key] = client
        return client


class _LazyWorkflow:
    """Builds its adapter on first use, so a function that never starts workflows needs no ARN."""

    def __init__(self, factory: Callable[[], WorkflowStarter]) -> None:
        self._factory = factory
        self._adapter: WorkflowStarter | None = None

    def _get(self) -> WorkflowStarter:
        if self._adapter is None:
            self._adapter = self._factory()
        return self._adapter

    def start(self, order_id: str, payload: dict[str, Any]) -> str:
        return self._get().start(order_id, payload)

    def complete_task(self, token: str, output: dict[str, Any]) -> bool:
        return self._get().complete_task(token, output)

    def stop(self, order_id: str, cause: str) -> bool:
        return self._get().stop(order_id, cause)


class _LazyQueue:
    def __init__(self, factory: Callable[[], DeliveryQueue]) -> None:
        self._factory = factory
        self._adapter: DeliveryQueue | None = None

    def send(self, body: dict[str, Any], *, group_id: str, deduplication_id: str) -> str:
        if self._adapter is None:
            self._adapter = self._factory()
        return self._adapter.send(body, group_id=group_id, deduplication_id=deduplication_id)


def deduplication_id(delivery_id: str) -> str:
    """An SQS FIFO deduplication id (≤ 128 chars of a restricted alphabet) for any sender id."""
    return hashlib.sha256(delivery_id.encode()).hexdigest()


__all__ = ["ConfigurationError", "Services", "deduplication_id", "override", "services"]
