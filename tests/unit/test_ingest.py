"""GIVEN a delivery WHEN ingested THEN the order is created, updated or left alone, exactly once."""

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.composition import channel_normalisers
from chalicelib.domain.delivery import Delivery
from chalicelib.domain.errors import MalformedDelivery
from chalicelib.domain.ingest import Outcome, ingest
from chalicelib.domain.order import OrderStatus
from tests.fakes import RecordingWorkflow, StepClock

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def delivery(delivery_id: str, *, updated_at: datetime = T0, quantity: int = 1) -> Delivery:
    return Delivery(
        delivery_id=delivery_id,
        channel="manual",
        store="s1",
        topic="orders/create",
        received_at=T0,
        payload={
            "store": "s1",
            "external_id": "E-1",
            "currency": "EUR",
            "placed_at": T0.isoformat(),
            "updated_at": updated_at.isoformat(),
            "lines": [{"title": "Mug", "quantity": quantity, "unit_price": "10.00"}],
        },
    )


def run(d, repo, workflow):
    return ingest(d, normalisers=channel_normalisers(), orders=repo, workflow=workflow, now=StepClock(T0))


def test_ingest__new_order_is_created_and_its_lifecycle_started(repo, workflow):
    result = run(delivery("d1"), repo, workflow)
    assert result.outcome is Outcome.CREATED
    stored = repo.get(result.order_id)
    assert stored.order.status is OrderStatus.RECEIVED
    assert [h.event for h in stored.order.history] == ["received"]
    assert workflow.started == [(result.order_id, {"order_id": result.order_id})]
    assert stored.execution_arn.endswith(result.order_id)


def test_ingest__same_delivery_twice_changes_nothing_the_second_time(repo, workflow):
    first = run(delivery("d1"), repo, workflow)
    second = run(delivery("d1"), repo, workflow)
    assert second.outcome is Outcome.DUPLICATE
    assert len(repo.get(first.order_id).order.history) == 1
    assert len(workflow.started) == 1


def test_ingest__newer_update_replaces_channel_fields_and_keeps_hub_fields(repo, workflow):
    created = run(delivery("d1"), repo, workflow)
    result = run(delivery("d2", updated_at=T0 + timedelta(minutes=5), quantity=3), repo, workflow)
    assert result.outcome is Outcome.UPDATED
    order = repo.get(created.order_id).order
    assert order.lines[0].quantity == 3
    assert [h.event for h in order.history] == ["received", "updated"]
    assert len(workflow.started) == 1


def test_ingest__older_update_arriving_late_never_overwrites_newer_state(repo, workflow):
    run(delivery("d-new", updated_at=T0 + timedelta(minutes=5), quantity=3), repo, workflow)
    late = run(delivery("d-old", updated_at=T0, quantity=1), repo, workflow)
    assert late.outcome is Outcome.STALE
    assert repo.get(late.order_id).order.lines[0].quantity == 3
    assert repo.has_delivery("d-old")  # remembered, so a redelivery is a plain duplicate


def test_ingest__a_crash_between_save_and_start_is_healed_by_the_retry(repo):
    flaky = RecordingWorkflow(fail_times=1)
    with pytest.raises(ConnectionError):
        run(delivery("d1"), repo, flaky)
    retry = run(delivery("d1"), repo, flaky)  # SQS redelivers the same message
    assert retry.outcome is Outcome.DUPLICATE
    assert [o for o, _ in flaky.started] == [retry.order_id]
    assert repo.get(retry.order_id).execution_arn is not None


def test_ingest__unknown_channel_is_a_poison_message(repo, workflow):
    d = delivery("d1")
    unknown = Delivery(d.delivery_id, "ebay", d.store, d.topic, d.received_at, d.payload)
    with pytest.raises(MalformedDelivery):
        run(unknown, repo, workflow)


def test_delivery_message__round_trips_and_rejects_garbage():
    d = delivery("d1")
    import json

    assert Delivery.from_message(json.dumps(d.to_message())) == d
    with pytest.raises(MalformedDelivery):
        Delivery.from_message("not json")
    with pytest.raises(MalformedDelivery):
        Delivery.from_message('{"delivery_id": "x"}')


def test_ingest_handler__a_lost_race_with_another_writer_is_applied_again_at_once(svc):
    from chalicelib.domain.errors import ConcurrentUpdate
    from chalicelib.entrypoints.queue_records import ingest as ingest_handler

    run(delivery("d1"), svc.orders, svc.workflow)
    real_save, raced = svc.orders.save, []

    def save(order, **kwargs):
        if not raced:  # the outbox wrote the order between ingestion's read and its write
            raced.append(True)
            raise ConcurrentUpdate("version moved")
        return real_save(order, **kwargs)

    svc.orders.save = save
    result = ingest_handler(delivery("d2", updated_at=T0 + timedelta(minutes=1), quantity=2), svc)
    assert result.outcome is Outcome.UPDATED and raced == [True]
    stored = svc.orders.get(result.order_id)
    assert stored is not None and stored.order.lines[0].quantity == 2 and svc.orders.has_delivery("d2")


def test_ingest__a_newer_copy_of_a_redacted_order_does_not_bring_its_customer_back(repo, workflow):
    from chalicelib.domain.retention import REDACTED, redact

    d1 = delivery("d1")
    assert d1.payload is not None
    d1.payload["customer"] = {"email": "ada@example.com", "name": "Ada"}
    created = run(d1, repo, workflow)
    stored = repo.get(created.order_id)
    redact(stored.order, T0 + timedelta(minutes=1), "closed")
    repo.save(stored.order, expected_version=stored.version)

    newer = delivery("d2", updated_at=T0 + timedelta(minutes=5), quantity=3)
    assert newer.payload is not None
    newer.payload["customer"] = {"email": "ada@example.com", "name": "Ada"}
    result = run(newer, repo, workflow)

    order = repo.get(created.order_id).order
    assert result.outcome is Outcome.UPDATED and order.lines[0].quantity == 3
    assert order.customer.email is None and order.customer.name == REDACTED
