"""One contract, two implementations of the capture ledger: DynamoDB (on the local stack) and the fake."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

from chalicelib import resources
from chalicelib.domain.payment_gateway import RecordedCapture
from tests.fakes_reconciliation import InMemoryReconciliationStore


@pytest.fixture(params=["dynamodb", "fake"])
def ledger(request, monkeypatch):
    if request.param == "fake":
        yield InMemoryReconciliationStore()
        return
    stack = request.getfixturevalue("stack")
    from chalicelib.adapters import models
    from chalicelib.adapters.reconciliation_store import DynamoReconciliationStore

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    models.bind(resources.TABLE.name, "us-east-1", stack.aws_url)
    yield DynamoReconciliationStore()


def test_recorded_captures__a_window_across_midnight_oldest_first_from_since_on(ledger):
    # Before any window the running stack reconciles (two days back at most): these intents exist in no
    # Stripe account, and no later run must look for them.
    midnight = datetime.combine(datetime.now(UTC).date() - timedelta(days=2), time(), tzinfo=UTC)
    tag = uuid.uuid4().hex[:8]

    def capture(intent: str, at: datetime, amount: str = "12.50") -> RecordedCapture:
        return RecordedCapture(f"pi_{tag}{intent}", f"contract-{tag}", Decimal(amount), "EUR", at)

    too_early = capture("early", midnight - timedelta(minutes=5))
    late = capture("late", midnight - timedelta(seconds=1, microseconds=500))
    after = capture("after", midnight + timedelta(microseconds=250), "0.99")
    for entry in (after, too_early, late):
        ledger.record_capture(entry)
    ledger.record_capture(late)  # recorded again (a retried Task): read once

    since = midnight - timedelta(minutes=1)
    found = [c for c in ledger.recorded_captures(since) if c.order_id == f"contract-{tag}"]
    assert found == [late, after]
    assert [c for c in ledger.recorded_captures(midnight) if c.order_id == f"contract-{tag}"] == [after]
