"""Scheduled jobs."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Rate

from chalicelib.composition import services
from chalicelib.entrypoints.health import HEARTBEAT
from chalicelib.settings import AMAZON_RETURNS_EVERY_HOURS, REDACT_PERSONAL_DATA_EVERY_MINUTES

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


AMAZON_RETURNS = "amazon_returns"


@bp.schedule(
    Rate(AMAZON_RETURNS_EVERY_HOURS, unit=Rate.HOURS),
    name=AMAZON_RETURNS,
    description="Reads each Amazon store's merchant-fulfilled returns report and records the returns.",
)
def amazon_returns(event: Any) -> dict[str, int]:
    from chalicelib.domain.returns.report_sync import sync_channel_returns
    from chalicelib.observability import count, logger
    from chalicelib.settings import ConfigurationError

    svc = services()
    if svc.returns_report is None or svc.returns_cursor is None:
        raise ConfigurationError("no returns report or returns cursor configured")

    runs = sync_channel_returns(
        channel="amazon",
        connections=svc.connections,
        report_for=svc.returns_report,
        record=svc.record_channel_return,
        cursor=svc.returns_cursor,
        now=svc.now,
    )
    for run in runs:
        logger.info("returns report read", extra=run.to_json())
        if run.error is not None:
            count("ReturnsReportFailed", channel=run.channel, store=run.store, reason=run.error)
        if run.failed:
            count("ChannelReturnFailed", channel=run.channel, store=run.store, value=len(run.failed))
    return {
        "stores": len(runs),
        "failed_stores": sum(1 for r in runs if r.error is not None),
        "returns": sum(r.seen for r in runs),
        "recorded": sum(r.recorded for r in runs),
    }


REDACT_PERSONAL_DATA = "redact_personal_data"


@bp.schedule(
    Rate(REDACT_PERSONAL_DATA_EVERY_MINUTES, unit=Rate.MINUTES),
    name=REDACT_PERSONAL_DATA,
    description="Redacts closed orders' personal data past their channel's retention, raw deliveries too.",
)
def redact_personal_data(event: Any) -> dict[str, Any]:
    from chalicelib.domain.retention import redact_due
    from chalicelib.observability import count, logger
    from chalicelib.settings import ConfigurationError

    svc = services()
    if svc.closed_orders is None or svc.retention_cursor is None:
        raise ConfigurationError("no closed-orders index or retention cursor configured")
    run = redact_due(
        closed=svc.closed_orders,
        orders=svc.orders,
        archive=svc.raw_archive,
        cursor=svc.retention_cursor,
        policy=svc.personal_data_retention,
        now=svc.now,
    )
    logger.info("personal data retention run", extra=run.to_json())
    if run.redacted:
        count("PersonalDataRedacted", channel="retention", value=run.redacted)
    if run.more:
        count("RetentionBacklog", channel="retention", value=len(run.more))
    return run.to_json()
