"""Lambda functions the return workflow's Tasks invoke (step_functions/order_return.asl.json); each
delegates to one use case of chalicelib/domain/returns."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib import resources
from chalicelib.composition import services
from chalicelib.observability import logger

bp = Blueprint(__name__)


@bp.lambda_function(name=resources.FUNCTION_APPROVE_RETURN)
def approve_return(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain.returns import steps

    svc = services()
    return steps.approve(
        event["order_id"], event["return_id"], orders=svc.orders, policies=svc.return_policies, now=svc.now
    )


@bp.lambda_function(name=resources.FUNCTION_ISSUE_RETURN_LABEL)
def issue_return_label(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain.returns import steps

    svc = services()
    return steps.issue_label(
        event["order_id"],
        event["return_id"],
        orders=svc.orders,
        labels=svc.return_labels,
        desk=svc.returns_desk,
        trackers=svc.trackers,
        store=svc.store(),
        policies=svc.return_policies,
        now=svc.now,
    )


@bp.lambda_function(name=resources.FUNCTION_AWAIT_RETURN)
def await_return(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain.returns import steps

    svc = services()
    return steps.await_stage(
        event["order_id"],
        event["return_id"],
        "inspection" if event.get("stage") == "inspection" else "parcel",
        event["task_token"],
        orders=svc.orders,
        store=svc.store(),
        workflow=svc.workflow,
    )


@bp.lambda_function(name=resources.FUNCTION_RETURN_OVERDUE)
def return_overdue(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain.returns import steps

    svc = services()
    return steps.overdue(
        event["order_id"],
        event["return_id"],
        str(event.get("stage")),
        orders=svc.orders,
        now=svc.now,
        board=svc.returns_board,
    )


@bp.lambda_function(name=resources.FUNCTION_RESOLVE_RETURN)
def resolve_return(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain.returns import resolution

    svc = services()
    return resolution.resolve(
        event["order_id"],
        event["return_id"],
        orders=svc.orders,
        policies=svc.return_policies,
        gateway=svc.payments,
        now=svc.now,
        place_replacement=svc.place_replacement,
        board=svc.returns_board,
    )


@bp.lambda_function(name=resources.FUNCTION_RECORD_RETURN_FAILURE)
def record_return_failure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain.returns import steps

    svc = services()
    error = event.get("error") or {}
    cause = str(error.get("Cause", ""))
    logger.error(
        "return step failed",
        extra={
            "order_id": event["order_id"],
            "return_id": event["return_id"],
            "error": error.get("Error"),
            "cause": cause,
        },
    )
    return steps.record_failure(
        event["order_id"],
        event["return_id"],
        str(error.get("Error", "Unknown")),
        cause,
        orders=svc.orders,
        now=svc.now,
    )
