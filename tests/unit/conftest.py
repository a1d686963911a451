"""Unit-test fixtures: the app with in-memory fakes behind the composition root."""

from datetime import UTC, datetime

import pytest
from chalice.test import Client

from chalicelib import composition
from chalicelib.settings import from_environ
from tests.fakes import (
    InMemoryConnectionRepository,
    InMemoryHeartbeats,
    InMemoryOrderRepository,
    InMemoryRawArchive,
    InMemorySecretStore,
    RecordingQueue,
    RecordingWorkflow,
)
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
