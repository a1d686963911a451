"""Reconciliation: every connected store pulled from its channel and ingested like a webhook; reports kept."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice import Blueprint, Rate

from chalicelib.composition import Services, services
from chalicelib.entrypoints.errors import http_errors
from chalicelib.observability import count, logger

if TYPE_CHECKING:
    from chalicelib.domain.reconciliation import ReconciliationReport

bp = Blueprint(__name__)

RECONCILE = "reconcile"


def run_all(svc: Services) -> list[dict[str, Any]]:
    from chalicelib.domain.reconciliation_run import reconcile_all

    reports = reconcile_all(
        connections=svc.connections,
        pull_for=svc.channel_pull,
        payments=svc.payments,
        normalisers=svc.normalisers,
        orders=svc.orders,
        workflow=svc.workflow,
        runs=svc.reconciliation(),
        now=svc.now,
        compensators=svc.compensators,
    )
    for report in reports:
        _observe(report)
    return [report.to_json() for report in reports]


def _observe(report: ReconciliationReport) -> None:
    """One run's report in the logs and metrics (a store's, or the payments')."""
    if report.channel == "stripe":
        for metric, found in (
            ("RefundOutsideHub", report.external_refunds),
            ("CaptureOutsideHub", report.external_captures),
            ("CaptureNotInStripe", report.captures_not_in_stripe),
        ):
            if found:
                count(metric, channel="stripe", value=len(found))
        return
    logger.info(
        "store reconciled",
        extra={
            "channel": report.channel,
            "store": report.store,
            "seen": report.seen,
            "restored": len(report.missing_restored),
            "drift": len(report.drift_applied),
            "flagged": len(report.drift_flagged),
            "errors": len(report.errors),
        },
    )
    for name, value in (("restored", len(report.missing_restored)), ("drift", len(report.drift_applied))):
        if value:
            count(
                "ReconciliationHealed", channel=report.channel, store=report.store, reason=name, value=value
            )
    if report.drift_flagged:
        count("DriftFlagged", channel=report.channel, store=report.store, value=len(report.drift_flagged))


@bp.route("/api/reconciliation/run", methods=["POST"])
@http_errors
def run_now() -> dict[str, Any]:
    """Reconcile every connected store now (also every 15 minutes on its own)."""
    return {"runs": run_all(services())}


@bp.route("/api/reconciliation/runs", methods=["GET"])
@http_errors
def list_runs() -> dict[str, Any]:
    """The latest runs' reports, newest first."""
    return {"runs": services().reconciliation().reports(limit=50)}


@bp.schedule(
    Rate(15, unit=Rate.MINUTES), name=RECONCILE, description="Reconciles every store with its channel."
)
def reconcile(event: Any) -> dict[str, int]:
    reports = run_all(services())
    return {"stores": len(reports), "restored": sum(len(r["missing_restored"]) for r in reports)}
