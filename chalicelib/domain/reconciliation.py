"""Use case: reconcile one store with its channel, from a stored watermark with an overlap.

The channel's orders changed since the watermark (minus an overlap, for clocks and late writes) go through
the same ingestion as a webhook, under a delivery id of their own: a missing order is created (exactly once:
the order id is derived from the channel's id, and creation is conditional), a newer channel state is
applied (drift), an equal one changes nothing (the fence); an equal stamp with other content is flagged, not
applied. Each run's report is kept (Stripe's payments are compared in `payment_reconciliation`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from chalicelib.domain.channel_events import OrderSnapshot
from chalicelib.domain.delivery import Delivery
from chalicelib.domain.errors import ConcurrentUpdate, HubError
from chalicelib.domain.ingest import Normalisers, Outcome, ingest, last_channel_state, normalise
from chalicelib.domain.payment_gateway import CaptureLedger
from chalicelib.domain.ports import OrderRepository, WorkflowStarter

# Pull a little before the watermark: channel clocks and writes committed late must not fall between runs.
OVERLAP = timedelta(minutes=10)
# The first run of a store looks this far back.
FIRST_LOOKBACK = timedelta(days=2)


@dataclass(frozen=True)
class ChannelOrder:
    """One order as the channel's read API gives it, in the shape the channel's normaliser takes. The
    channel's reconciliation reader (in its integration) reads the vendor's fields into this record."""

    external_id: str
    updated_at: str  # the channel's own stamp (part of the delivery id)
    topic: str
    payload: dict[str, Any]


# A store's orders changed since a time, as its channel's reader yields them.
ChannelPull = Callable[[datetime], Iterable[ChannelOrder]]


@dataclass
class ReconciliationReport:
    channel: str
    store: str
    started_at: datetime
    window_from: datetime
    finished_at: datetime | None = None
    seen: int = 0
    missing_restored: list[str] = field(default_factory=list)
    drift_applied: list[str] = field(default_factory=list)
    # The channel's order at the stamp the hub last applied, with other content: not applied, for an operator.
    drift_flagged: list[dict[str, Any]] = field(default_factory=list)
    in_sync: int = 0
    # Milestones the channel refused before, put back in the outbox now that the channel answers.
    republished: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    watermark: datetime | None = None
    # Payments (channel "stripe"): refunds made in Stripe that the hub did not make (the dashboard, ...).
    external_refunds: list[dict[str, Any]] = field(default_factory=list)
    # Captures in Stripe the hub's payment stage did not record (or recorded with another amount) ...
    external_captures: list[dict[str, Any]] = field(default_factory=list)
    # ... and captures the hub recorded that Stripe does not show.
    captures_not_in_stripe: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("started_at", "window_from", "finished_at", "watermark"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data


class ReconciliationStore(CaptureLedger, Protocol):
    def watermark(self, channel: str, store: str) -> datetime | None: ...

    def set_watermark(self, channel: str, store: str, at: datetime) -> None: ...

    def save_report(self, report: ReconciliationReport) -> None: ...

    def reports(self, limit: int = 50) -> list[dict[str, Any]]: ...


def reconcile_store(
    channel: str,
    store: str,
    pull: ChannelPull,
    *,
    normalisers: Normalisers,
    orders: OrderRepository,
    workflow: WorkflowStarter,
    runs: ReconciliationStore,
    now: Callable[[], datetime],
    compensators: Any = (),
) -> ReconciliationReport:
    started = now()
    mark = runs.watermark(channel, store)
    since = (mark - OVERLAP) if mark else started - FIRST_LOOKBACK
    report = ReconciliationReport(channel=channel, store=store, started_at=started, window_from=since)
    try:
        for found in pull(since):
            report.seen += 1
            delivery = Delivery(
                delivery_id=f"reconcile:{channel}:{store}:{found.external_id}:{found.updated_at}",
                channel=channel,
                store=store,
                topic=found.topic,
                received_at=now(),
                payload=found.payload,
                external_id=found.external_id,
            )
            try:
                _compare_one(
                    delivery,
                    report,
                    normalisers=normalisers,
                    orders=orders,
                    workflow=workflow,
                    now=now,
                    compensators=compensators,
                )
            except HubError as exc:
                report.errors.append(f"{found.external_id}: {type(exc).__name__}: {exc}"[:300])
    except HubError as exc:
        # The channel's API failed part way: what was seen is kept, the watermark stays for the next run.
        report.errors.append(f"pull: {type(exc).__name__}: {exc}"[:300])
    report.finished_at = now()
    if not report.errors:
        report.watermark = started
        runs.set_watermark(channel, store, started)
    runs.save_report(report)
    return report


def _compare_one(
    delivery: Delivery,
    report: ReconciliationReport,
    *,
    normalisers: Normalisers,
    orders: OrderRepository,
    **kwargs: Any,
) -> None:
    """One order of the channel's: flagged when its stamp is the one the hub applied but its content is not,
    else ingested like a webhook (restored, applied, or in sync)."""
    flagged = _unapplied_drift(delivery, normalisers, orders)
    if flagged is not None:
        # Which of two states with one stamp is the newer cannot be known: an operator decides.
        report.drift_flagged.append(flagged)
        report.republished += _republish_failed(orders, flagged["order_id"])
        return
    result = _ingest(delivery, normalisers=normalisers, orders=orders, **kwargs)
    if result.order_id is not None:
        report.republished += _republish_failed(orders, result.order_id)
    if result.outcome is Outcome.CREATED:
        report.missing_restored.append(delivery.external_id)
    elif result.outcome in (Outcome.UPDATED, Outcome.REFUNDED):
        report.drift_applied.append(delivery.external_id)
    else:
        report.in_sync += 1


def _ingest(delivery: Delivery, **kwargs: Any) -> Any:
    """Ingest, again when the order moved meanwhile (its lifecycle writes while we compare): a webhook's
    retry comes from its queue; reconciliation retries here."""
    for attempt in range(3):
        try:
            return ingest(delivery, **kwargs)
        except ConcurrentUpdate:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# A cancelled order whose money went back shows as refunded at the channel, often stamped in the second of the
# cancellation (the hub's own publishing cancels, then refunds; ingestion keeps "cancelled" as further along).
_SAME_OUTCOME = frozenset({("refunded", "cancelled"), ("partially_refunded", "cancelled")})


def _unapplied_drift(
    delivery: Delivery, normalisers: Normalisers, orders: OrderRepository
) -> dict[str, Any] | None:
    """What differs when the channel's order carries the stamp the hub last applied. Ingestion would drop it
    (the delivery id is per stamp, so a run that saw the stamp before finds a duplicate; otherwise the fence
    keeps the stored order unless the state is further along): changed without its stamp moving (a database
    edit, a plugin) or twice in one second, nothing says which is newer.

    Compared: the channel's state (a cancellation included) with the last one the hub applied, the currency
    and the totals; fields the hub never changes itself, so a difference is the channel's."""
    event = normalise(delivery, normalisers)
    if not isinstance(event, OrderSnapshot):
        return None
    channel = event.order
    stored = orders.get(channel.order_id)
    if stored is None or stored.order.updated_at != channel.updated_at:
        return None
    hub = stored.order
    applied = last_channel_state(hub)
    compared: dict[str, tuple[Any, Any]] = {
        "status": (event.state.value, applied),
        "currency": (channel.currency, hub.currency),
        "totals": (channel.totals, hub.totals),
    }
    if applied is None:
        del compared["status"]  # nothing applied to compare with (a state notice only)
    fields = [
        name
        for name, (theirs, ours) in compared.items()
        if theirs != ours and (name != "status" or (theirs, ours) not in _SAME_OUTCOME)
    ]
    if not fields:
        return None

    def shown(value: Any) -> Any:
        return value.model_dump(mode="json") if hasattr(value, "model_dump") else value

    return {
        "external_id": channel.external_id,
        "order_id": hub.order_id,
        "updated_at": channel.updated_at.isoformat(),
        "fields": fields,
        "channel_value": {name: shown(compared[name][0]) for name in fields},
        "hub_value": {name: shown(compared[name][1]) for name in fields},
    }


def _republish_failed(orders: OrderRepository, order_id: str) -> list[str]:
    """The channel answers again: every milestone it refused before goes back in the outbox (once per run)."""
    from chalicelib.domain.publishing import retry_publication

    stored = orders.get(order_id)
    if stored is None:
        return []
    failed = [p.publication_id for p in stored.order.publications if p.status == "failed"]
    for publication_id in failed:
        retry_publication(order_id, publication_id, orders=orders)
    return [f"{order_id}:{pid}" for pid in failed]


__all__ = ["ChannelOrder", "ChannelPull", "ReconciliationReport", "ReconciliationStore", "reconcile_store"]
