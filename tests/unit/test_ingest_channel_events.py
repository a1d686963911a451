"""Channel states and refunds applied by ingestion: forward only, exactly once, in any order."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from chalicelib.domain.channel_events import ChannelState, OrderSnapshot, RefundNotice
from chalicelib.domain.delivery import Delivery
from chalicelib.domain.errors import OrderNotYetKnown
from chalicelib.domain.ingest import Outcome, ingest
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import OrderStatus
from chalicelib.domain.returns.events import ChannelReturn, ChannelReturnLine
from tests.fakes import InMemoryOrderRepository, RecordingWorkflow, StepClock

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def snapshot(updated: datetime, state: ChannelState, total: str = "20.00") -> OrderSnapshot:
    order = normalise_manual(
        {
            "store": "s",
            "external_id": "X-1",
            "currency": "EUR",
            "placed_at": T0.isoformat(),
            "updated_at": updated.isoformat(),
            "lines": [{"title": "Mug", "quantity": 2, "unit_price": "10.00"}],
            "totals": {"total": total},
        }
    )
    return OrderSnapshot(order=order, state=state)


def refund(refund_id: str, amount: str) -> RefundNotice:
    return RefundNotice(
        channel="manual",
        store="s",
        external_order_id="X-1",
        refund_id=refund_id,
        amount=Decimal(amount),
        currency="EUR",
        created_at=T0,
        line_ids=("1",),
    )


@pytest.fixture
def events():
    """Deliveries whose payload names the prepared event to return (a stand-in channel)."""
    return {}


def deliver(events, delivery_id, event, repo, workflow):
    events[delivery_id] = event
    d = Delivery(delivery_id, "test", "s", "t", T0, {"e": delivery_id}, "X-1")
    normalisers = {"test": lambda topic, payload, store: events[payload["e"]]}
    return ingest(d, normalisers=normalisers, orders=repo, workflow=workflow, now=StepClock(T0))


def test_channel_cancellation_cancels_once_and_later_states_do_not_revive(events):
    repo, wf = InMemoryOrderRepository(), RecordingWorkflow()
    created = deliver(events, "d1", snapshot(T0, ChannelState.PAID), repo, wf)
    deliver(events, "d2", snapshot(T0 + timedelta(minutes=1), ChannelState.CANCELLED), repo, wf)
    order = repo.get(created.order_id).order
    assert order.status is OrderStatus.CANCELLED
    assert [h.event for h in order.history] == ["received", "updated", "cancelled_at_channel"]
    deliver(events, "d3", snapshot(T0 + timedelta(minutes=2), ChannelState.PAID), repo, wf)
    assert repo.get(created.order_id).order.status is OrderStatus.CANCELLED


def test_an_order_first_seen_cancelled_is_stored_but_not_started(events):
    repo, wf = InMemoryOrderRepository(), RecordingWorkflow()
    result = deliver(events, "d1", snapshot(T0, ChannelState.CANCELLED), repo, wf)
    assert repo.get(result.order_id).order.status is OrderStatus.CANCELLED
    assert wf.started == []


def test_update_before_create__the_newest_state_wins(events):
    repo, wf = InMemoryOrderRepository(), RecordingWorkflow()
    newer = deliver(events, "upd", snapshot(T0 + timedelta(minutes=5), ChannelState.PAID, "25.00"), repo, wf)
    late_create = deliver(events, "create", snapshot(T0, ChannelState.OPEN, "20.00"), repo, wf)
    assert (newer.outcome, late_create.outcome) == (Outcome.CREATED, Outcome.STALE)
    assert repo.get(newer.order_id).order.totals.total == Decimal("25.00")


def test_refunds__partial_then_full_each_applied_once(events):
    repo, wf = InMemoryOrderRepository(), RecordingWorkflow()
    created = deliver(events, "d1", snapshot(T0, ChannelState.PAID), repo, wf)
    assert deliver(events, "r1", refund("R1", "5.00"), repo, wf).outcome is Outcome.REFUNDED
    order = repo.get(created.order_id).order
    assert order.status is OrderStatus.PARTIALLY_REFUNDED
    assert order.payment.amount_refunded == Decimal("5.00")
    # the same refund again, under another delivery id (a second subscription): no double count
    assert deliver(events, "r1-again", refund("R1", "5.00"), repo, wf).outcome is Outcome.DUPLICATE
    deliver(events, "r2", refund("R2", "15.00"), repo, wf)
    order = repo.get(created.order_id).order
    assert order.status is OrderStatus.REFUNDED and order.payment.amount_refunded == Decimal("20.00")


def test_a_refund_that_overtakes_its_order_is_retried_later(events):
    repo, wf = InMemoryOrderRepository(), RecordingWorkflow()
    with pytest.raises(OrderNotYetKnown):
        deliver(events, "r1", refund("R1", "5.00"), repo, wf)
    deliver(events, "d1", snapshot(T0, ChannelState.PAID), repo, wf)
    assert deliver(events, "r1", refund("R1", "5.00"), repo, wf).outcome is Outcome.REFUNDED


def test_deletion_at_the_channel_puts_the_order_on_hold(events):
    repo, wf = InMemoryOrderRepository(), RecordingWorkflow()
    created = deliver(events, "d1", snapshot(T0, ChannelState.OPEN), repo, wf)
    deliver(events, "d2", snapshot(T0 + timedelta(minutes=1), ChannelState.DELETED), repo, wf)
    order = repo.get(created.order_id).order
    assert order.status is OrderStatus.ON_HOLD and order.history[-1].event == "deleted_at_channel"


def test_equal_stamps__the_state_further_along_wins_and_a_repeat_is_stale(events):
    repo, wf = InMemoryOrderRepository(), RecordingWorkflow()
    created = deliver(events, "d1", snapshot(T0, ChannelState.PAID), repo, wf)
    same_second = deliver(events, "d2", snapshot(T0, ChannelState.PARTIALLY_REFUNDED), repo, wf)
    assert same_second.outcome is Outcome.UPDATED
    assert repo.get(created.order_id).order.status is OrderStatus.PARTIALLY_REFUNDED
    behind = deliver(events, "d3", snapshot(T0, ChannelState.PAID), repo, wf)
    assert behind.outcome is Outcome.STALE


# --- returns opened at the channel ----------------------------------------------------------------


def channel_return(order_id: str = "X-1", status: str = "requested") -> ChannelReturn:
    return ChannelReturn(
        channel="manual",
        store="s",
        external_order_id=order_id,
        external_return_id="RMA-1",
        status=status,
        lines=(ChannelReturnLine(quantity=1, line_id="1", reason="size"),),
        at=T0,
    )


def deliver_return(events, delivery_id, event, repo, wf, *, intake):
    events[delivery_id] = event
    d = Delivery(delivery_id, "test", "s", "t", T0, {"e": delivery_id}, "X-1")
    normalisers = {"test": lambda topic, payload, store: events[payload["e"]]}
    return ingest(
        d, normalisers=normalisers, orders=repo, workflow=wf, now=StepClock(T0), channel_returns=intake
    )


def test_a_channel_return_is_handed_to_the_returns_intake_once_per_delivery(events):
    repo, wf, handed = InMemoryOrderRepository(), RecordingWorkflow(), []
    created = deliver(events, "d1", snapshot(T0, ChannelState.PAID), repo, wf)

    first = deliver_return(events, "d2", channel_return(), repo, wf, intake=lambda e: handed.append(e) or {})
    again = deliver_return(events, "d2", channel_return(), repo, wf, intake=lambda e: handed.append(e) or {})

    assert (first.outcome, first.order_id) == (Outcome.RETURN, created.order_id)
    assert again.outcome is Outcome.DUPLICATE
    assert handed == [channel_return()]
    assert repo.has_delivery("d2")


def test_a_channel_return_that_overtook_its_order_is_retried_later(events):
    repo, wf, handed = InMemoryOrderRepository(), RecordingWorkflow(), []
    with pytest.raises(OrderNotYetKnown):
        deliver_return(events, "d1", channel_return(), repo, wf, intake=handed.append)
    assert handed == [] and not repo.has_delivery("d1")


def test_a_channel_return_naming_only_the_return__finds_its_order_through_the_link(events):
    repo, wf, handed = InMemoryOrderRepository(), RecordingWorkflow(), []
    created = deliver(events, "d1", snapshot(T0, ChannelState.PAID), repo, wf)
    opened = channel_return()
    repo.link_return(f"{opened.channel}:{opened.store}:{opened.external_return_id}", str(created.order_id))

    result = deliver_return(
        events, "d2", channel_return(order_id=""), repo, wf, intake=lambda e: handed.append(e) or {}
    )

    assert (result.outcome, result.order_id) == (Outcome.RETURN, created.order_id)
    assert [e.external_order_id for e in handed] == [opened.external_order_id]


def test_a_declined_return_the_hub_never_heard_of__changes_nothing_and_is_not_parked(events):
    repo, wf, handed = InMemoryOrderRepository(), RecordingWorkflow(), []
    result = deliver_return(events, "d1", channel_return(order_id=""), repo, wf, intake=handed.append)
    assert result.outcome is Outcome.DUPLICATE and handed == [] and repo.has_delivery("d1")
