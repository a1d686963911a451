"""Unit-test fixtures: the app with in-memory fakes behind the composition root."""

from datetime import UTC, datetime

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import composition, resources
from chalicelib.adapters import models
from chalicelib.settings import from_environ
from local.provision import create_table
from tests.fake_time import Clock, Sleeps
from tests.fakes import (
    InMemoryConnectionRepository,
    InMemoryHeartbeats,
    InMemoryOrderRepository,
    InMemoryRawArchive,
    InMemorySecretStore,
    RecordingQueue,
    RecordingWorkflow,
)
from tests.started import Started
from tests.unit.api import TOKEN


@pytest.fixture
def svc():
    services = composition.Services(
        settings=from_environ({}),
        orders=InMemoryOrderRepository(),
        workflow=RecordingWorkflow(),
        ingest_queue=RecordingQueue(),
        heartbeats=InMemoryHeartbeats(),
        now=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        operator_token=lambda: TOKEN,
        connections=InMemoryConnectionRepository(),
        secrets=InMemorySecretStore(),
        raw_archive=InMemoryRawArchive(),
    )
    composition.override(services)
    yield services
    composition.override(None)


@pytest.fixture
def client(svc):
    from app import app

    with Client(app) as c:
        yield c


@pytest.fixture
def started():
    """Receivers and simulators a test starts through it are stopped when the test ends, newest first."""
    running = Started()
    yield running
    running.stop_all()


@pytest.fixture
def receiver(started, request):
    """A running instance of the test module's `Receiver` (a `tests.webhook_receiver.WebhookReceiver`)."""
    return started(request.module.Receiver())


@pytest.fixture
def sim(make_sim):
    """The test module's simulator (its `make_sim` fixture) with the module's default knobs."""
    return make_sim()


@pytest.fixture
def clock() -> Clock:
    """One clock for a client and its simulator, moved by the test or by `sleeps`."""
    return Clock()


@pytest.fixture
def sleeps(clock) -> Sleeps:
    return Sleeps(clock)


@pytest.fixture
def repo() -> InMemoryOrderRepository:
    return InMemoryOrderRepository()


@pytest.fixture
def workflow() -> RecordingWorkflow:
    return RecordingWorkflow()


@pytest.fixture
def table(monkeypatch):
    """The single table in moto, in-process, with every PynamoDB model bound to it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name="us-east-1"), resources.TABLE)
        models.bind(resources.TABLE.name, "us-east-1", None)
        yield
    models.bind(resources.TABLE.name, "us-east-1", None)
