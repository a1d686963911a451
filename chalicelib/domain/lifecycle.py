"""Use cases behind the order lifecycle's Lambda tasks."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import ConcurrentUpdate, NotFound
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.ports import OrderRepository, WorkflowStarter
from chalicelib.domain.totals import totals_issues

# Statuses an order never leaves through the lifecycle's own failure path.
_FINAL = {OrderStatus.CANCELLED, OrderStatus.COMPLETED, OrderStatus.REFUNDED}
# A stored failure cause: one line an operator can read, without traceback or server paths.
MAX_CAUSE_CHARS = 300
# A server path (`/var/task/chalicelib/x.py`, `/home/u/.venv/...`), not a URL's path (`https://h/a/b`).
_SERVER_PATH = re.compile(r"(?<![\w:/.])/(?:[\w.@+-]+/)+[\w.@+-]*")


def failure_summary(cause: object) -> str:
    """One line from a Step Functions error cause: Lambda's `{"errorType", "errorMessage", "stackTrace"}`
    becomes `errorType: first line of errorMessage`; a traceback becomes its last line; paths become `…`.
    The full cause goes to the logs only (entrypoints/workflow_tasks.record_failure)."""
    text = str(cause or "").strip()
    try:
        parsed = json.loads(text) if text.startswith("{") else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and ("errorMessage" in parsed or "errorType" in parsed):
        message = str(parsed.get("errorMessage") or "").strip().splitlines()
        kind = str(parsed.get("errorType") or "").strip()
        text = ": ".join(part for part in (kind, message[0] if message else "") if part)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback"):
        lines = lines[-1:]
    line = _SERVER_PATH.sub("…", lines[0] if lines else "")
    return line if len(line) <= MAX_CAUSE_CHARS else line[: MAX_CAUSE_CHARS - 1] + "…"


def record_validation(order: Order, at: datetime) -> list[str]:
    """Check the order's own figures and keep the result in its history; answers the issues found."""
    issues = totals_issues(order)
    order.record("validated", at, totals_consistent=not issues, issues=issues)
    return issues


def validate_order(order_id: str, *, orders: OrderRepository, now: Callable[[], datetime]) -> dict[str, Any]:
    """Check the order's figures; a mismatch is recorded and flagged, and the order goes on."""

    def change(order: Order) -> dict[str, Any]:
        issues = record_validation(order, now())
        return {"order_id": order_id, "totals_consistent": not issues, "issues": issues}

    result: dict[str, Any] = mutate(orders, order_id, change)
    return result


def record_failure(
    order_id: str,
    error: str,
    cause: str,
    *,
    orders: OrderRepository,
    now: Callable[[], datetime],
) -> dict[str, Any]:
    """Park the order in FAILED with the reason, for an operator to act on."""

    def change(order: Order) -> dict[str, Any]:
        previous = order.status
        if previous not in _FINAL:
            order.status = OrderStatus.FAILED
        order.record("failed", now(), error=error, cause=failure_summary(cause), previous=previous.value)
        return {"order_id": order_id, "status": order.status.value, "error": error}

    try:
        result: dict[str, Any] = mutate(orders, order_id, change)
    except NotFound:
        # Nothing to mark: the execution still ends in its Fail state, visible in Step Functions.
        return {"order_id": order_id, "status": None, "error": error, "recorded": False}
    return result


class RetryConflict(ConcurrentUpdate):
    """Only a FAILED order's lifecycle is retried."""


def retry_failed(
    order_id: str, *, orders: OrderRepository, workflow: WorkflowStarter, now: Callable[[], datetime]
) -> dict[str, Any]:
    """An operator's retry of a FAILED order: back to the status it failed in, and a new execution of
    the lifecycle (`<order>-retry-<n>`). Every step is idempotent (payment and fulfilment carry their own
    keys), so what was done before the failure is recognised, not repeated."""

    def change(order: Order) -> tuple[int, OrderStatus]:
        if order.status != OrderStatus.FAILED:
            raise RetryConflict(f"order {order_id} is {order.status.value}: only FAILED orders are retried")
        failure = next((h for h in reversed(order.history) if h.event == "failed"), None)
        previous = str((failure.detail if failure else {}).get("previous") or OrderStatus.RECEIVED.value)
        resumed = OrderStatus(previous) if previous in OrderStatus.__members__ else OrderStatus.RECEIVED
        if resumed == OrderStatus.FAILED:
            resumed = OrderStatus.RECEIVED
        attempt = 1 + sum(1 for h in order.history if h.event == "retried")
        order.status = resumed
        order.record("retried", now(), attempt=attempt, resumed_status=resumed.value)
        return attempt, resumed

    attempt, resumed = mutate(orders, order_id, change)
    try:
        arn = workflow.start(order_id, {"order_id": order_id}, name=f"{order_id}-retry-{attempt}")
    except Exception as exc:
        # Not started: the order goes back to FAILED, where the operator sees it and can retry again.
        record_failure(order_id, "RetryNotStarted", f"{type(exc).__name__}: {exc}", orders=orders, now=now)
        raise
    orders.attach_execution(order_id, arn)
    return {"order_id": order_id, "status": resumed.value, "attempt": attempt, "execution_arn": arn}
