"""Lambda functions that Step Functions Tasks invoke; each delegates to one use case.

`validate_order`, `fraud_check`, `allocate_shipments`, `request_fulfilment` and `await_delivery` are retired:
the lifecycle calls `check_order`, `fulfil_order` and `await_order_delivery` instead. They stay (with the
state machine's permission to invoke them, `resources.ORDER_LIFECYCLE.retired_functions`) for executions
started under the earlier definition, which keep it to their end (the longest waits: 14 + 60 days)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib import resources
from chalicelib.composition import services
from chalicelib.observability import logger
from chalicelib.settings import ConfigurationError

bp = Blueprint(__name__)


@bp.lambda_function(name=resources.FUNCTION_VALIDATE_ORDER)
def validate_order(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import lifecycle

    svc = services()
    return lifecycle.validate_order(event["order_id"], orders=svc.orders, now=svc.now)


@bp.lambda_function(name=resources.FUNCTION_CHECK_ORDER)
def check_order(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import review

    svc = services()
    if svc.velocity is None:
        raise ConfigurationError("no velocity counter configured")
    stored = svc.orders.get(event["order_id"])
    signals = svc.fraud_signals(stored.order) if stored is not None else None
    return review.check_order(
        event["order_id"],
        orders=svc.orders,
        velocity=svc.velocity,
        policy=svc.fraud_policy,
        now=svc.now,
        signals=signals,
    )


@bp.lambda_function(name=resources.FUNCTION_RECORD_FAILURE)
def record_failure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import lifecycle

    svc = services()
    error = event.get("error") or {}
    cause = str(error.get("Cause", ""))
    # The whole cause (traceback included) stays in the logs; the order keeps one line of it.
    logger.error(
        "lifecycle step failed",
        extra={"order_id": event["order_id"], "error": error.get("Error"), "cause": cause},
    )
    return lifecycle.record_failure(
        event["order_id"],
        str(error.get("Error", "Unknown")),
        cause,
        orders=svc.orders,
        now=svc.now,
    )


@bp.lambda_function(name=resources.FUNCTION_FRAUD_CHECK)
def fraud_check(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import review

    svc = services()
    if svc.velocity is None:
        raise ConfigurationError("no velocity counter configured")
    stored = svc.orders.get(event["order_id"])
    signals = svc.fraud_signals(stored.order) if stored is not None else None
    return review.fraud_check(
        event["order_id"],
        orders=svc.orders,
        velocity=svc.velocity,
        policy=svc.fraud_policy,
        now=svc.now,
        signals=signals,
    )


@bp.lambda_function(name=resources.FUNCTION_REQUEST_REVIEW)
def request_review(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import review

    svc = services()
    return review.request_review(event["order_id"], event["task_token"], orders=svc.orders, now=svc.now)


@bp.lambda_function(name=resources.FUNCTION_REVIEW_TIMED_OUT)
def review_timed_out(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import review

    svc = services()
    return review.review_timed_out(event["order_id"], orders=svc.orders, now=svc.now)


@bp.lambda_function(name=resources.FUNCTION_TAKE_PAYMENT)
def take_payment(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import payment

    svc = services()
    return payment.take_payment(
        event["order_id"],
        orders=svc.orders,
        gateway=svc.payments,
        channel_capturer=svc.channel_capturer,
        policy=svc.payment_policy,
        now=svc.now,
        captures=svc.reconciliation_store,
    )


@bp.lambda_function(name=resources.FUNCTION_REQUEST_PAYMENT_METHOD)
def request_payment_method(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import payment_recovery

    svc = services()
    return payment_recovery.request_payment_method(
        event["order_id"], event["task_token"], orders=svc.orders, workflow=svc.workflow, now=svc.now
    )


@bp.lambda_function(name=resources.FUNCTION_CANCEL_ORDER)
def cancel_order(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The lifecycle's own cancellation (fraud or review reject, payment never came): compensate, no stop."""
    from chalicelib.domain import cancellation

    svc = services()
    return cancellation.cancel(
        event["order_id"],
        str(event.get("reason") or "cancelled by the lifecycle"),
        source=str(event.get("source") or "lifecycle"),
        **svc.wind_down_with(stop_workflow=False),
    )


@bp.lambda_function(name=resources.FUNCTION_FULFIL_ORDER)
def fulfil_order(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import fulfilment

    svc = services()
    return fulfilment.fulfil_order(
        event["order_id"],
        event["task_token"],
        orders=svc.orders,
        store=svc.store(),
        workflow=svc.workflow,
        threepl=svc.threepl,
        policy=svc.fulfilment_policy,
        now=svc.now,
    )


@bp.lambda_function(name=resources.FUNCTION_AWAIT_ORDER_DELIVERY)
def await_order_delivery(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import fulfilment

    svc = services()
    return fulfilment.await_order_delivery(
        event["order_id"], event["task_token"], orders=svc.orders, store=svc.store(), workflow=svc.workflow
    )


@bp.lambda_function(name=resources.FUNCTION_ALLOCATE)
def allocate_shipments(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import fulfilment

    svc = services()
    return fulfilment.allocate(
        event["order_id"], orders=svc.orders, threepl=svc.threepl, policy=svc.fulfilment_policy, now=svc.now
    )


@bp.lambda_function(name=resources.FUNCTION_REQUEST_FULFILMENT)
def request_fulfilment(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import fulfilment

    svc = services()
    return fulfilment.request_fulfilment(
        event["order_id"],
        event["shipment_id"],
        event["task_token"],
        orders=svc.orders,
        store=svc.store(),
        workflow=svc.workflow,
        threepl=svc.threepl,
        now=svc.now,
    )


@bp.lambda_function(name=resources.FUNCTION_AWAIT_DELIVERY)
def await_delivery(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import fulfilment

    svc = services()
    return fulfilment.await_delivery(
        event["order_id"],
        event["shipment_id"],
        event["task_token"],
        orders=svc.orders,
        store=svc.store(),
        workflow=svc.workflow,
    )


@bp.lambda_function(name=resources.FUNCTION_COMPLETE_ORDER)
def complete_order(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.domain import fulfilment

    svc = services()
    return fulfilment.complete_order(event["order_id"], orders=svc.orders, now=svc.now)
