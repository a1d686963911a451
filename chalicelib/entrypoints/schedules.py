"""Scheduled jobs."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Rate

from chalicelib.composition import services
from chalicelib.entrypoints.health import HEARTBEAT

bp = Blueprint(__name__)


@bp.schedule(Rate(1, unit=Rate.MINUTES), name=HEARTBEAT, description="Proves the scheduler runs.")
def heartbeat(event: Any) -> dict[str, str]:
    svc = services()
    at = svc.now()
    svc.heartbeats.beat(HEARTBEAT, at)
    return {"heartbeat": at.isoformat()}


WATCH_SHIPMENTS = "watch_shipments"


@bp.schedule(
    Rate(15, unit=Rate.MINUTES),
    name=WATCH_SHIPMENTS,
    description="Flags shipments late against their promise or silent too long.",
)
def watch_shipments(event: Any) -> dict[str, int]:
    from chalicelib.domain import fulfilment
    from chalicelib.observability import count

    svc = services()
    flagged = fulfilment.watch(
        orders=svc.orders, store=svc.store(), policy=svc.fulfilment_policy, now=svc.now
    )
    for name in ("late", "silent"):
        if flagged[name]:
            count("ShipmentFlagged", channel="fulfilment", reason=name, value=flagged[name])
    return flagged


PUBLISH_OUTBOX = "publish_outbox"
# Leave the rest of the invocation's time to the last publication in flight.
PUBLISH_BUDGET_S = 20.0
# Orders per store per run (one run a minute): well inside Shopify's, WooCommerce hosts' and SP-API's limits.
PUBLISH_PER_STORE_PER_RUN = 30


@bp.schedule(
    Rate(1, unit=Rate.MINUTES),
    name=PUBLISH_OUTBOX,
    description="Publishes pending order milestones to their channels (the outbox).",
)
def publish_outbox(event: Any) -> dict[str, int]:
    """Orders with pending milestones, oldest first (a sparse index), one store at a time within a run;
    a throttled or unavailable channel keeps its milestones pending for the next run."""
    import time

    from chalicelib.domain import publishing
    from chalicelib.domain.upstream import UpstreamThrottled, UpstreamUnavailable
    from chalicelib.observability import count, logger

    svc = services()
    started = time.monotonic()
    totals = {"orders": 0, "sent": 0, "failed": 0, "skipped": 0, "busy": 0, "deferred": 0}
    per_store: dict[str, int] = {}
    throttled: set[str] = set()
    for order_id in svc.orders.pending_publications(limit=100):
        if time.monotonic() - started > PUBLISH_BUDGET_S:
            break
        stored = svc.orders.get(order_id)
        if stored is None:
            continue
        store = f"{stored.order.channel}:{stored.order.store}"
        # The per-store governor: a store that throttled us rests until the next run, and no store gets
        # more than its share of a run, so one busy store never starves the others or trips its limits.
        if store in throttled or per_store.get(store, 0) >= PUBLISH_PER_STORE_PER_RUN:
            totals["deferred"] += 1
            continue
        per_store[store] = per_store.get(store, 0) + 1
        totals["orders"] += 1
        try:
            done = publishing.publish_pending(
                order_id, orders=svc.orders, publisher_for=svc.publisher_for, now=svc.now
            )
        except UpstreamUnavailable as exc:
            totals["deferred"] += 1
            if isinstance(exc, UpstreamThrottled):
                throttled.add(store)
                count("ChannelThrottled", channel=stored.order.channel, store=stored.order.store)
            logger.warning("publication deferred", extra={"order_id": order_id, "error": type(exc).__name__})
            count("PublicationDeferred", channel="publishing", reason=type(exc).__name__)
            continue
        for name in ("sent", "failed", "skipped", "busy"):
            totals[name] += done[name]
    for name in ("sent", "failed"):
        if totals[name]:
            count(f"Publication{name.capitalize()}", channel="publishing", value=totals[name])
    return totals
