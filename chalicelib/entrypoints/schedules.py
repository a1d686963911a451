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


@bp.schedule(
    Rate(1, unit=Rate.MINUTES),
    name=PUBLISH_OUTBOX,
    description="Publishes pending order milestones to their channels (the outbox).",
)
def publish_outbox(event: Any) -> dict[str, int]:
    from chalicelib.domain import publishing
    from chalicelib.domain.upstream import UpstreamThrottled
    from chalicelib.observability import count, logger

    svc = services()
    run = publishing.publish_outbox(
        orders=svc.orders,
        publisher_for=svc.publisher_for,
        now=svc.now,
        claim_seconds=svc.publish_claim_seconds,
    )
    for deferred in run.deferred:
        if isinstance(deferred.error, UpstreamThrottled):
            count("ChannelThrottled", channel=deferred.channel, store=deferred.store)
        error = type(deferred.error).__name__
        logger.warning("publication deferred", extra={"order_id": deferred.order_id, "error": error})
        count("PublicationDeferred", channel="publishing", reason=error)
    for name in ("sent", "failed"):
        if run.totals[name]:
            count(f"Publication{name.capitalize()}", channel="publishing", value=run.totals[name])
    return run.totals
