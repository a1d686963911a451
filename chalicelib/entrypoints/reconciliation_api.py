"""Reconciliation: every connected store pulled from its channel and ingested like a webhook; reports kept."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from chalice import Blueprint, Rate

from chalicelib.composition import Services, services
from chalicelib.domain.connections import Connection
from chalicelib.domain.errors import HubError
from chalicelib.domain.payment_reconciliation import reconcile_payments
from chalicelib.domain.reconciliation import (
    ChannelOrder,
    amazon_pull,
    reconcile_store,
    shopify_pull,
    woocommerce_pull,
)
from chalicelib.entrypoints.errors import http_errors
from chalicelib.observability import count, logger
from chalicelib.settings import ConfigurationError

bp = Blueprint(__name__)

RECONCILE = "reconcile"
_CHANNELS = ("shopify", "woocommerce", "amazon")


def run_all(svc: Services) -> list[dict[str, Any]]:
    reports = []
    for connection in svc.connections.list():
        if connection.channel not in _CHANNELS:
            continue
        secrets = svc.secrets.get(connection.secret_ref)
        try:
            pull = _pull(svc, connection, secrets)
        except (HubError, ConfigurationError) as exc:
            pull = _failing(exc)
        report = reconcile_store(
            connection.channel,
            connection.store,
            pull,
            orders=svc.orders,
            workflow=svc.workflow,
            runs=svc.reconciliation(),
            now=svc.now,
            compensators=svc.compensators,
        )
        reports.append(report.to_json())
        logger.info(
            "store reconciled",
            extra={
                "channel": connection.channel,
                "store": connection.store,
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
                    "ReconciliationHealed",
                    channel=connection.channel,
                    store=connection.store,
                    reason=name,
                    value=value,
                )
        if report.drift_flagged:
            count(
                "DriftFlagged",
                channel=connection.channel,
                store=connection.store,
                value=len(report.drift_flagged),
            )
    if any(c.channel == "stripe" for c in svc.connections.list()):
        payments = reconcile_payments(
            refunds_since=lambda since: svc.payments().refunds_since(since),
            captures_since=lambda since: svc.payments().captures_since(since),
            retrieve=lambda intent_id: svc.payments().retrieve(intent_id),
            orders=svc.orders,
            runs=svc.reconciliation(),
            now=svc.now,
        )
        reports.append(payments.to_json())
        for metric, found in (
            ("RefundOutsideHub", payments.external_refunds),
            ("CaptureOutsideHub", payments.external_captures),
            ("CaptureNotInStripe", payments.captures_not_in_stripe),
        ):
            if found:
                count(metric, channel="stripe", value=len(found))
    return reports


def _failing(exc: Exception) -> Callable[[datetime], Iterable[ChannelOrder]]:
    """A store that cannot be read this time: its report says why, its watermark stays."""

    def pull(since: datetime) -> Iterable[ChannelOrder]:
        raise HubError(f"cannot read the store: {type(exc).__name__}: {exc}")

    return pull


def _pull(
    svc: Services, connection: Connection, secrets: dict[str, str]
) -> Callable[[datetime], Iterable[ChannelOrder]]:
    if connection.channel == "woocommerce":
        from chalicelib.integrations.woocommerce.orders import WooCommerceOrders

        reader = WooCommerceOrders(
            connection.store,
            secrets["consumer_key"],
            secrets["consumer_secret"],
            api_base=svc.settings.woocommerce_api_base,
        )
        return woocommerce_pull(reader.page)
    if connection.channel == "amazon":
        client = svc.spapi(connection, secrets)
        marketplace = connection.settings.get("marketplace_id", "")

        def address(order: dict[str, Any]) -> dict[str, Any] | None:
            shipped_by_hub = order.get("FulfillmentChannel") == "MFN"
            if shipped_by_hub and order.get("OrderStatus") in ("Unshipped", "PartiallyShipped"):
                found: dict[str, Any] = client.get_order_address(str(order["AmazonOrderId"]))
                return found
            return None

        return amazon_pull(
            lambda since, token: client.get_orders([marketplace], since, token),
            client.get_order_items,
            address,
        )
    from chalicelib.integrations.shopify.admin import ShopifyAdmin
    from chalicelib.integrations.shopify.orders import changed_orders

    admin = ShopifyAdmin(connection.store, secrets["access_token"], api_base=svc.settings.shopify_api_base)
    # Small pages: each order asks for its lines, shipping and refunds (Shopify caps a query at 1,000 points).
    return shopify_pull(lambda since: changed_orders(admin, since, page_size=5))


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
