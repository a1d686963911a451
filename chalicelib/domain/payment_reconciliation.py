"""Use case: Stripe's refunds and captures for a window against the hub's records; reported, never "fixed"."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from chalicelib.domain import money
from chalicelib.domain.errors import HubError
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.payment import stripe_intent
from chalicelib.domain.payment_gateway import CaptureView, PaymentError, PaymentIntentView, RecordedCapture
from chalicelib.domain.ports import OrderRepository
from chalicelib.domain.reconciliation import (
    FIRST_LOOKBACK,
    OVERLAP,
    ReconciliationReport,
    ReconciliationStore,
)

# A Stripe capture this recent, of an order whose payment stage may be running, can be the hub's own between
# Stripe's answer and the order's write: the next run (the overlap covers it) compares it again.
CAPTURE_SETTLE = timedelta(minutes=2)
_CAPTURING = frozenset({OrderStatus.APPROVED, OrderStatus.PAYMENT_PENDING, OrderStatus.ON_HOLD})


def reconcile_payments(
    *,
    refunds_since: Callable[[datetime], Iterable[Any]],
    orders: OrderRepository,
    runs: ReconciliationStore,
    now: Callable[[], datetime],
    captures_since: Callable[[datetime], Iterable[CaptureView]] | None = None,
    retrieve: Callable[[str], PaymentIntentView] | None = None,
) -> ReconciliationReport:
    """Stripe's refunds and captures for the window against the hub's: a refund the hub did not make, a
    capture its payment stage did not record (or for another amount), and a capture it recorded that Stripe
    does not show are reported (with the order when the hub knows the PaymentIntent), so an operator sees
    money that moved outside the hub. Nothing is changed."""
    started = now()
    mark = runs.watermark("stripe", "default")
    since = (mark - OVERLAP) if mark else started - FIRST_LOOKBACK
    report = ReconciliationReport(channel="stripe", store="default", started_at=started, window_from=since)
    try:
        _compare_refunds(report, refunds_since(since), orders)
        if captures_since is not None:
            matched = _compare_captures(report, captures_since(since), orders, started)
            if retrieve is not None:
                _confirm_recorded(report, runs.recorded_captures(since), matched, retrieve)
    except HubError as exc:
        report.errors.append(f"pull: {type(exc).__name__}: {exc}"[:300])
    report.finished_at = now()
    if not report.errors:
        report.watermark = started
        runs.set_watermark("stripe", "default", started)
    runs.save_report(report)
    return report


def _compare_refunds(report: ReconciliationReport, refunds: Iterable[Any], orders: OrderRepository) -> None:
    for refund in refunds:
        report.seen += 1
        order_id = orders.order_for_payment(refund.payment_intent_id) if refund.payment_intent_id else None
        stored = orders.get(order_id) if order_id else None
        ours = stored is not None and any(
            action.get("refund") == refund.id
            for entry in stored.order.history
            if entry.event == "compensated"
            for action in entry.detail.get("actions", [])
        )
        if ours:
            report.in_sync += 1
            continue
        amount = (
            f"{money.from_minor(refund.amount, refund.currency.upper()):f}"
            if refund.currency
            else str(refund.amount)
        )
        report.external_refunds.append(
            {
                "refund": refund.id,
                "payment_intent": refund.payment_intent_id,
                "order_id": order_id,
                "amount": amount,
                "currency": refund.currency.upper(),
                "reason": refund.reason,
            }
        )


def _compare_captures(
    report: ReconciliationReport,
    captures: Iterable[CaptureView],
    orders: OrderRepository,
    started: datetime,
) -> set[str]:
    """Each capture Stripe made in the window against what the order's payment stage recorded for that
    PaymentIntent; answers the PaymentIntents compared."""
    compared: set[str] = set()
    for capture in captures:
        report.seen += 1
        intent_id = capture.payment_intent_id
        compared.add(intent_id)
        currency = capture.currency.upper()
        amount = money.from_minor(capture.amount, currency)
        order_id = orders.order_for_payment(intent_id)
        stored = orders.get(order_id) if order_id else None
        recorded = _hub_capture(stored.order, intent_id) if stored is not None else None
        if recorded == amount:
            report.in_sync += 1
            continue
        if (
            stored is not None
            and recorded is None
            and stored.order.status in _CAPTURING
            and capture.captured_at > started - CAPTURE_SETTLE
        ):
            continue
        if order_id is None:
            reason = "unknown_payment_intent"
        elif recorded is None:
            reason = "not_captured_by_hub"
        else:
            reason = "amount_differs"
        report.external_captures.append(
            {
                "payment_intent": intent_id,
                "charge": capture.charge_id,
                "order_id": order_id,
                "amount": f"{amount:f}",
                "hub_amount": f"{recorded:f}" if recorded is not None else None,
                "currency": currency,
                "captured_at": capture.captured_at.isoformat(),
                "reason": reason,
                "order_status": stored.order.status.value if stored is not None else None,
            }
        )
    return compared


def _hub_capture(order: Order, intent_id: str) -> Decimal | None:
    """What the hub's payment stage recorded as captured on this PaymentIntent (None: nothing). A Stripe
    webhook's own record (`payment_captured_at_stripe`) is what Stripe said, not a capture of the hub's."""
    if stripe_intent(order) != intent_id:
        return None
    for entry in reversed(order.history):
        if entry.event == "payment_captured" and entry.detail.get("route") == "stripe":
            return Decimal(str(entry.detail.get("amount")))
    return None


def _confirm_recorded(
    report: ReconciliationReport,
    recorded: Iterable[RecordedCapture],
    compared: set[str],
    retrieve: Callable[[str], PaymentIntentView],
) -> None:
    """The hub's captures of the window that Stripe's list did not show: Stripe's PaymentIntent decides (its
    capture may predate the window: a checkout's automatic capture, recorded when the lifecycle got there)."""
    latest = {capture.payment_intent_id: capture for capture in recorded}
    for intent_id, capture in latest.items():
        if intent_id in compared:
            continue
        report.seen += 1
        try:
            intent: PaymentIntentView | None = retrieve(intent_id)
        except PaymentError as exc:
            if exc.code != "resource_missing":
                raise
            intent = None
        received = money.from_minor(intent.amount_received, capture.currency) if intent else None
        if intent is not None and intent.status == "succeeded" and received == capture.amount:
            report.in_sync += 1
            continue
        report.captures_not_in_stripe.append(
            {
                "payment_intent": intent_id,
                "order_id": capture.order_id,
                "hub_amount": f"{capture.amount:f}",
                "amount": f"{received:f}" if received is not None else None,
                "currency": capture.currency,
                "recorded_at": capture.recorded_at.isoformat(),
                "stripe_status": intent.status if intent is not None else "missing",
            }
        )


__all__ = ["CAPTURE_SETTLE", "reconcile_payments"]
