"""Use case: one reconciliation run: every connected sales channel's store, then the payment provider."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from chalicelib.domain.cancellation import Compensator
from chalicelib.domain.connections import Connection, ConnectionRepository
from chalicelib.domain.errors import HubError
from chalicelib.domain.ingest import Normalisers
from chalicelib.domain.payment_gateway import PaymentGateway
from chalicelib.domain.payment_reconciliation import reconcile_payments
from chalicelib.domain.ports import OrderRepository, WorkflowStarter
from chalicelib.domain.reconciliation import (
    ChannelOrder,
    ChannelPull,
    ReconciliationReport,
    ReconciliationStore,
    reconcile_store,
)


class StoreUnreadable(HubError):
    """A store's reader cannot be built (its connection or the deployment lacks something); the cause says."""


# The channels whose stores are read back (the payment provider is compared separately).
SALES_CHANNELS = ("shopify", "woocommerce", "amazon")


def reconcile_all(
    *,
    connections: ConnectionRepository,
    pull_for: Callable[[Connection], ChannelPull],
    payments: Callable[[], PaymentGateway],
    normalisers: Normalisers,
    orders: OrderRepository,
    workflow: WorkflowStarter,
    runs: ReconciliationStore,
    now: Callable[[], datetime],
    compensators: Sequence[Compensator] = (),
) -> list[ReconciliationReport]:
    """Reconcile every connected store with its channel (`pull_for` builds its reader; a store whose reader
    cannot be built is reported, its watermark kept), then Stripe's payments when a Stripe account is
    connected. Answers each store's report, the payments' last."""
    reports = []
    for connection in connections.list():
        if connection.channel not in SALES_CHANNELS:
            continue
        try:
            pull = pull_for(connection)
        except HubError as exc:
            pull = _failing(exc)
        reports.append(
            reconcile_store(
                connection.channel,
                connection.store,
                pull,
                normalisers=normalisers,
                orders=orders,
                workflow=workflow,
                runs=runs,
                now=now,
                compensators=compensators,
            )
        )
    if any(c.channel == "stripe" for c in connections.list()):
        reports.append(
            reconcile_payments(
                refunds_since=lambda since: payments().refunds_since(since),
                captures_since=lambda since: payments().captures_since(since),
                retrieve=lambda intent_id: payments().retrieve(intent_id),
                orders=orders,
                runs=runs,
                now=now,
            )
        )
    return reports


def _failing(exc: Exception) -> ChannelPull:
    """A store that cannot be read this time: its report says why, its watermark stays."""

    cause = exc.__cause__ if isinstance(exc, StoreUnreadable) and exc.__cause__ is not None else exc

    def pull(since: datetime) -> Iterable[ChannelOrder]:
        raise HubError(f"cannot read the store: {type(cause).__name__}: {cause}")

    return pull
