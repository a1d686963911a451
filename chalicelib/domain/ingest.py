"""Use case: apply one accepted delivery to the hub's orders, exactly once, never going backwards."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from chalicelib.domain.cancellation import Compensator, wind_down
from chalicelib.domain.channel_events import (
    ChannelEvent,
    ChannelState,
    OrderSnapshot,
    RefundNotice,
    StateNotice,
)
from chalicelib.domain.delivery import Delivery
from chalicelib.domain.errors import (
    DuplicateDelivery,
    InvalidInput,
    InvalidOrder,
    MalformedDelivery,
    OrderNotYetKnown,
)
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.payment import stripe_intent
from chalicelib.domain.payment_recovery import paid_since_last_attempt, resume_payment
from chalicelib.domain.ports import OrderRepository, StoredOrder, WorkflowStarter
from chalicelib.domain.retention import keep_redacted
from chalicelib.domain.returns.events import ChannelReturn
from chalicelib.domain.status import is_forward
from chalicelib.domain.validation import validate_order

# A channel's payload for a topic (topic, payload, store) turned into a channel event: the port each sales
# channel's integration implements. The composition root hands ingestion the registry, channel → normaliser.
Normaliser = Callable[[str, dict[str, Any], str], ChannelEvent]
Normalisers = Mapping[str, Normaliser]
# A return opened or changed at the channel, handed to the returns intake (`returns.intake.
# record_channel_return` with its collaborators bound): one hub return per channel return id, idempotent.
ChannelReturns = Callable[[ChannelReturn], Mapping[str, Any]]

# Fields the channel owns; everything else on the order (status, fraud, history, ...) is the hub's.
CHANNEL_FIELDS = (
    "external_number",
    "currency",
    "placed_at",
    "updated_at",
    "customer",
    "shipping_address",
    "billing_address",
    "lines",
    "totals",
    "missing",
)

# The hub's reaction to what the channel says happened (the lifecycle reacts to the status).
_STATE_STATUS = {
    ChannelState.CANCELLED: OrderStatus.CANCELLED,
    ChannelState.REFUNDED: OrderStatus.REFUNDED,
    ChannelState.PARTIALLY_REFUNDED: OrderStatus.PARTIALLY_REFUNDED,
    ChannelState.DELETED: OrderStatus.ON_HOLD,
}


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    STALE = "stale"
    DUPLICATE = "duplicate"
    REFUNDED = "refunded"
    RETURN = "return"  # a channel's return recorded (or already known) by the returns intake


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    order_id: str | None


def normalise_manual_event(topic: str, payload: dict[str, Any], store: str) -> ChannelEvent:
    """The hub's own channel (orders entered by hand or through the API) as a normaliser."""
    return OrderSnapshot(order=normalise_manual(payload), state=ChannelState.OPEN)


def normalise(delivery: Delivery, normalisers: Normalisers) -> ChannelEvent:
    normaliser = normalisers.get(delivery.channel)
    if normaliser is None:
        raise MalformedDelivery(f"no normaliser for channel {delivery.channel!r}")
    if delivery.payload is None:
        raise MalformedDelivery("the delivery's body was not resolved from the raw archive")
    try:
        return normaliser(delivery.topic, delivery.payload, delivery.store)
    except InvalidOrder:
        raise
    except InvalidInput as exc:
        # The channel's payload is not an order the hub can keep: permanent, never retried into storage.
        raise InvalidOrder(str(exc)) from exc


# Long on purpose: the fence (duplicate, create, stale, newer) and its reactions read as one flow.
def ingest(
    delivery: Delivery,
    *,
    normalisers: Normalisers,
    orders: OrderRepository,
    workflow: WorkflowStarter,
    now: Callable[[], datetime],
    compensators: Sequence[Compensator] = (),
    channel_returns: ChannelReturns | None = None,
) -> IngestResult:
    """Apply a delivery: create the order, update it if the channel's state is newer, or drop it.

    Safe to run any number of times for the same delivery and in any order across deliveries:
    the delivery id is recorded in the same transaction as the change, and an update older than
    what is stored (by the channel's own `updated_at`) changes nothing.
    """
    event = normalise(delivery, normalisers)
    if isinstance(event, RefundNotice | StateNotice):
        return _apply_notice(delivery, event, orders=orders, now=now)
    if isinstance(event, ChannelReturn):
        return _apply_return(delivery, event, orders=orders, channel_returns=channel_returns)
    candidate = event.order
    # An order that breaks the rules is never stored: InvalidOrder is permanent (a MalformedDelivery).
    validate_order(candidate, now=now())
    stored = orders.get(candidate.order_id)

    if orders.has_delivery(delivery.delivery_id):
        _ensure_started(stored, orders, workflow)
        return IngestResult(Outcome.DUPLICATE, candidate.order_id)

    try:
        if stored is None:
            candidate.record(
                "received", now(), delivery_id=delivery.delivery_id, channel_state=event.state.value
            )
            if candidate.missing:
                candidate.record("data_missing", now(), missing=list(candidate.missing))
            _apply_channel_state(candidate, event.state, None, now)
            version = orders.save(candidate, expected_version=None, delivery_id=delivery.delivery_id)
            stored = StoredOrder(candidate, version)
            outcome = Outcome.CREATED
        elif not _is_newer(candidate, event.state, stored.order):
            orders.record_delivery(delivery.delivery_id, candidate.order_id)
            outcome = Outcome.STALE
        else:
            merged = _merge(stored.order, candidate)
            merged.record(
                "updated",
                now(),
                delivery_id=delivery.delivery_id,
                channel_updated_at=candidate.updated_at.isoformat(),
                channel_state=event.state.value,
            )
            _record_missing(stored.order, merged, now())
            _apply_channel_state(merged, event.state, last_channel_state(stored.order), now)
            version = orders.save(
                merged,
                expected_version=stored.version,
                delivery_id=delivery.delivery_id,
                replacing=stored.order.status,
            )
            if merged.status == OrderStatus.CANCELLED != stored.order.status:
                # Cancelled at the channel: the lifecycle stops here and what it did is undone.
                wind_down(
                    merged.order_id,
                    "cancelled at the channel",
                    orders=orders,
                    workflow=workflow,
                    now=now,
                    compensators=compensators,
                    stop_workflow=stored.execution_arn is not None,
                )
            elif merged.status == OrderStatus.PAYMENT_PENDING and (
                paid_since_last_attempt(merged) or stripe_intent(merged) != stripe_intent(stored.order)
            ):
                # Paid at the channel (or a PaymentIntent attached) while the lifecycle waits: wake it.
                _link_payment(merged, orders)
                resume_payment(merged.order_id, "paid_at_channel", orders=orders, workflow=workflow, now=now)
            stored = StoredOrder(merged, version, stored.execution_arn)
            outcome = Outcome.UPDATED
    except DuplicateDelivery:
        # A concurrent copy of this delivery won the race; it also starts the workflow.
        return IngestResult(Outcome.DUPLICATE, candidate.order_id)

    _link_payment(stored.order, orders)
    _ensure_started(stored, orders, workflow)
    return IngestResult(outcome, candidate.order_id)


def _link_payment(order: Order, orders: OrderRepository) -> None:
    """Let the payment's webhooks find the order (a Stripe PaymentIntent id → order id)."""
    intent = stripe_intent(order)
    if intent is not None:
        orders.link_payment(intent, order.order_id)


# Channels stamp changes to the second (WooCommerce, Amazon): two changes can share one
# `updated_at`. Between equal stamps, the state further along wins.
_STATE_PROGRESS = {
    state: rank
    for rank, state in enumerate(
        [
            ChannelState.OPEN,
            ChannelState.AUTHORIZED,
            ChannelState.PAID,
            ChannelState.PARTIALLY_FULFILLED,
            ChannelState.FULFILLED,
            ChannelState.PARTIALLY_REFUNDED,
            ChannelState.REFUNDED,
            ChannelState.CANCELLED,
            ChannelState.DELETED,
        ]
    )
}


def _is_newer(candidate: Order, state: ChannelState, stored: Order) -> bool:
    """The fence: the channel's own `updated_at`, then (for equal stamps) how far along the order is."""
    if candidate.updated_at != stored.updated_at:
        return candidate.updated_at > stored.updated_at
    last = last_channel_state(stored)
    stored_rank = _STATE_PROGRESS.get(ChannelState(last), -1) if last else -1
    candidate_key = (
        _STATE_PROGRESS[state],
        candidate.payment.amount_refunded,
        candidate.payment.amount_captured,
    )
    stored_key = (stored_rank, stored.payment.amount_refunded, stored.payment.amount_captured)
    # The same version read again with what was withheld before (an address) is newer too.
    fills = set(candidate.missing) < set(stored.missing)
    return candidate_key > stored_key or (candidate_key == stored_key and fills)


def _record_missing(before: Order, after: Order, at: datetime) -> None:
    """What the channel withheld and has now given (filled), or withholds anew, in the history."""
    filled = [m for m in before.missing if m not in after.missing]
    withheld = [m for m in after.missing if m not in before.missing]
    if filled:
        after.record("data_filled", at, filled=filled)
    if withheld:
        after.record("data_missing", at, missing=withheld)


def _merge(current: Order, newer: Order) -> Order:
    changes: dict[str, Any] = {name: getattr(keep_redacted(current, newer), name) for name in CHANNEL_FIELDS}
    if stripe_intent(current) is None:
        # The channel holds the money (no PaymentIntent of the hub's own): its view is the truth.
        changes["payment"] = newer.payment
    return current.model_copy(update=changes, deep=True)


def last_channel_state(order: Order) -> str | None:
    """The channel's own state the hub last applied to the order (None: none recorded yet)."""
    for entry in reversed(order.history):
        if "channel_state" in entry.detail:
            return str(entry.detail["channel_state"])
    return None


def _apply_channel_state(
    order: Order, state: ChannelState, previous: str | None, now: Callable[[], datetime]
) -> None:
    """React to a change of the channel's own state (a cancellation, a refund, a deletion)."""
    target = _STATE_STATUS.get(state)
    if target is None or previous == state.value or not is_forward(order.status, target):
        return
    before = order.status
    order.status = target
    order.record(f"{state.value}_at_channel", now(), previous_status=before.value)


def _apply_notice(
    delivery: Delivery,
    notice: RefundNotice | StateNotice,
    *,
    orders: OrderRepository,
    now: Callable[[], datetime],
) -> IngestResult:
    """Record a notice on a copy of the order it is about, then save it with the delivery: REFUNDED or
    UPDATED, or DUPLICATE for a delivery (or a refund) the order already holds, then nothing is saved."""
    if orders.has_delivery(delivery.delivery_id):
        return IngestResult(Outcome.DUPLICATE, None)
    stored = orders.get_by_channel(notice.channel, notice.store, notice.external_order_id)
    if stored is None:
        # The notice overtook its order: fail so the queue retries it once the order exists.
        raise OrderNotYetKnown(f"{notice.channel} order {notice.external_order_id} is not stored yet")
    order = stored.order.model_copy(deep=True)
    try:
        if isinstance(notice, RefundNotice):
            outcome = _record_refund(order, notice, delivery, orders=orders, now=now)
        else:
            outcome = _record_state(order, notice, delivery, now=now)
        if outcome is not Outcome.DUPLICATE:
            orders.save(
                order,
                expected_version=stored.version,
                delivery_id=delivery.delivery_id,
                replacing=stored.order.status,
            )
    except DuplicateDelivery:
        return IngestResult(Outcome.DUPLICATE, order.order_id)
    return IngestResult(outcome, order.order_id)


def _record_refund(
    order: Order,
    notice: RefundNotice,
    delivery: Delivery,
    *,
    orders: OrderRepository,
    now: Callable[[], datetime],
) -> Outcome:
    known = {
        str(h.detail.get("refund_id")): Decimal(str(h.detail.get("amount", "0")))
        for h in order.history
        if h.event == "refund_at_channel"
    }
    if notice.refund_id in known:
        orders.record_delivery(delivery.delivery_id, order.order_id)
        return Outcome.DUPLICATE
    refunded = sum(known.values(), Decimal(0)) + notice.amount
    # The order snapshot may already count this refund: take the larger, never the sum of both.
    order.payment = order.payment.model_copy(
        update={"amount_refunded": max(order.payment.amount_refunded, refunded)}
    )
    order.record(
        "refund_at_channel",
        now(),
        delivery_id=delivery.delivery_id,
        refund_id=notice.refund_id,
        amount=f"{notice.amount:f}",
        line_ids=list(notice.line_ids),
        reason=notice.reason,
    )
    full = order.payment.amount_refunded >= order.totals.total
    target = OrderStatus.REFUNDED if full else OrderStatus.PARTIALLY_REFUNDED
    if is_forward(order.status, target):
        order.status = target
    return Outcome.REFUNDED


def _record_state(
    order: Order, notice: StateNotice, delivery: Delivery, *, now: Callable[[], datetime]
) -> Outcome:
    _apply_channel_state(order, notice.state, last_channel_state(order), now)
    order.record("channel_state", now(), delivery_id=delivery.delivery_id, channel_state=notice.state.value)
    return Outcome.UPDATED


def _apply_return(
    delivery: Delivery,
    event: ChannelReturn,
    *,
    orders: OrderRepository,
    channel_returns: ChannelReturns | None,
) -> IngestResult:
    """Hand a channel's return to the returns intake once its order is stored, then record the delivery.

    The intake keeps one return per channel return id, so a copy that slips past the delivery check
    (a crash between the two writes) changes nothing twice."""
    if orders.has_delivery(delivery.delivery_id):
        return IngestResult(Outcome.DUPLICATE, None)
    if channel_returns is None:
        raise MalformedDelivery(f"{event.channel} return {event.external_return_id}: no returns intake wired")
    if not event.external_order_id:
        # Shopify's returns/decline names only the return: its order is the one the hub linked it to.
        order_id = orders.order_for_return(channel_return_key(event))
        if order_id is None:
            # A return the hub never heard of, declined: nothing to change.
            orders.record_delivery(delivery.delivery_id, f"unknown-return:{event.external_return_id}")
            return IngestResult(Outcome.DUPLICATE, None)
        known = orders.get(order_id)
        if known is None:
            raise OrderNotYetKnown(f"order {order_id} of {event.channel} return {event.external_return_id}")
        event = replace(event, external_order_id=known.order.external_id)
    stored = orders.get_by_channel(event.channel, event.store, event.external_order_id)
    if stored is None:
        # The return overtook its order: fail so the queue retries it once the order exists.
        raise OrderNotYetKnown(f"{event.channel} order {event.external_order_id} is not stored yet")
    channel_returns(event)
    orders.record_delivery(delivery.delivery_id, stored.order.order_id)
    return IngestResult(Outcome.RETURN, stored.order.order_id)


def channel_return_key(event: ChannelReturn) -> str:
    """How the hub names a channel's return across channels and stores."""
    return f"{event.channel}:{event.store}:{event.external_return_id}"


def _ensure_started(stored: StoredOrder | None, orders: OrderRepository, workflow: WorkflowStarter) -> None:
    """Start the lifecycle if it was not yet (also heals a crash between saving and starting)."""
    if stored is None or stored.execution_arn:
        return
    if stored.order.status == OrderStatus.CANCELLED:
        return  # first seen already cancelled at the channel: there is nothing to run
    arn = workflow.start(stored.order.order_id, {"order_id": stored.order.order_id})
    orders.attach_execution(stored.order.order_id, arn)
