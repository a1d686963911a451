"""Use cases behind the return workflow's tasks (step_functions/order_return.asl.json): approve, label,
wait for the parcel, wait for the inspection, mark overdue waits, record a failure. Resolution is in
resolution.py, events from the 3PL and the carrier in receiving.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.fulfilment.ports import FulfilmentStore, Trackers
from chalicelib.domain.fulfilment.shipments import resume_waiting
from chalicelib.domain.lifecycle import failure_summary
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.ports import OrderRepository, WorkflowStarter
from chalicelib.domain.returns.kit_lines import rma_lines
from chalicelib.domain.returns.model import (
    RETURN_PATH,
    OrderReturn,
    ReturnStatus,
    delivered_units,
    find_return,
    put_return,
    returned_units,
    returns_of,
)
from chalicelib.domain.returns.policy import ReturnPolicies
from chalicelib.domain.returns.ports import ReturnLabels, ReturnsBoard, ReturnsDesk
from chalicelib.domain.upstream import UpstreamRejected

DAY = 86400
PARCEL = "return_parcel"
INSPECTION = "return_inspection"


def load_return(orders: OrderRepository, order_id: str, rid: str) -> tuple[Order, OrderReturn]:
    stored = orders.get(order_id)
    if stored is None:
        raise NotFound(f"order {order_id} does not exist")
    ret = find_return(stored.order, rid)
    if ret is None:
        raise NotFound(f"order {order_id} has no return {rid}")
    return stored.order, ret


def reached(ret: OrderReturn, status: ReturnStatus) -> bool:
    """The return is at `status` or past it on the forward path."""
    if ret.status not in RETURN_PATH:
        return False
    return RETURN_PATH.index(ret.status) >= RETURN_PATH.index(status)


def change_return(
    orders: OrderRepository,
    order_id: str,
    rid: str,
    change: Callable[[Order, OrderReturn], OrderReturn | None],
) -> OrderReturn:
    """Load, change and save one return of an order (retrying on a concurrent writer); `change` answers
    the new return, or None to leave the order as it is. Answers the return as stored."""

    def apply(order: Order) -> tuple[OrderReturn, bool]:
        ret = find_return(order, rid)
        if ret is None:
            raise NotFound(f"order {order_id} has no return {rid}")
        updated = change(order, ret)
        if updated is None:
            return ret, True
        put_return(order, updated)
        settle_order_status(order)
        return updated, False

    result: OrderReturn = mutate(orders, order_id, apply, unchanged=lambda r: r[1])[0]
    return result


def next_step(ret: OrderReturn) -> str:
    """The return workflow's next step for a return where it is (the one Choice state routes on it)."""
    if ret.final:
        return "done"
    if reached(ret, ReturnStatus.INSPECTED):
        return "resolve"
    if reached(ret, ReturnStatus.RECEIVED):
        return "inspection"
    if not reached(ret, ReturnStatus.LABEL_SENT):
        return "label"  # buys the label when the hub sends one, and announces the return to the 3PL
    return "parcel"


def settle_order_status(order: Order) -> None:
    """The order's status follows its returns: RETURN_REQUESTED while one is open; afterwards RETURNED
    when every delivered unit has come back, PARTIALLY_REFUNDED when some money went back, else as the
    returns found it (COMPLETED)."""
    customer = returns_of(order)
    if not customer or order.status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
        return
    if any(not r.final for r in customer):
        order.status = OrderStatus.RETURN_REQUESTED
        return
    resolved = [r for r in customer if r.status == ReturnStatus.RESOLVED]
    back = returned_units(order)
    everything = all(back.get(lid, 0) >= n for lid, n in delivered_units(order).items() if n > 0)
    if resolved and everything:
        order.status = OrderStatus.RETURNED
    elif any(r.money is not None and r.money.total > 0 for r in resolved):
        order.status = OrderStatus.PARTIALLY_REFUNDED
    elif order.status == OrderStatus.RETURN_REQUESTED:
        order.status = OrderStatus.COMPLETED


def approve(
    order_id: str, rid: str, *, orders: OrderRepository, policies: ReturnPolicies, now: Callable[[], datetime]
) -> dict[str, Any]:
    """The workflow's first step: a requested return is approved (the policy was checked when it was
    opened) and the next step named; a return already moved on (a retried task, a late start) answers
    where it is."""

    def change(order: Order, ret: OrderReturn) -> OrderReturn | None:
        if ret.status != ReturnStatus.REQUESTED:
            return None
        at = now()
        order.record("return_approved", at, return_id=rid)
        return ret.model_copy(update={"status": ReturnStatus.APPROVED, "updated_at": at})

    ret = change_return(orders, order_id, rid, change)
    order, _ = load_return(orders, order_id, rid)
    policy = policies.for_store(order.channel, order.store)
    step = next_step(ret)
    return {
        "order_id": order_id,
        "return_id": rid,
        "status": ret.status.value,
        "next": step,
        "parcel_seconds": policy.parcel_days * DAY,
        "inspection_seconds": policy.inspection_days * DAY,
    }


def issue_label(
    order_id: str,
    rid: str,
    *,
    orders: OrderRepository,
    labels: Callable[[], ReturnLabels],
    desk: Callable[[str], ReturnsDesk],
    trackers: Trackers,
    store: FulfilmentStore,
    policies: ReturnPolicies,
    now: Callable[[], datetime],
) -> dict[str, Any]:
    """Buy the return label once (the carrier call is keyed by the return), announce the return to the
    3PL that will receive it, follow the parcel like an outbound one."""
    order, ret = load_return(orders, order_id, rid)
    label = ret.label
    refused: str | None = None
    if label is None and ret.label_needed:
        policy = policies.for_store(order.channel, order.store)
        merchant_pays = any(policy.label_paid_by(ln.reason) == "merchant" for ln in ret.lines)
        payer = "merchant" if merchant_pays else "customer"
        try:
            bought = labels().return_label(
                order, ret.model_copy(update={"label": None}), idempotency_key=f"label-{rid}"
            )
        except (InvalidInput, UpstreamRejected) as exc:
            # An optional call refused never costs the return: it goes on without a hub label (the
            # customer sends the parcel their own way), flagged with why for an operator.
            refused = f"label_refused: {str(exc)[:200]}"
        else:
            label = bought.model_copy(update={"paid_by": payer})
    provider, warehouse = _warehouse_of(order, ret)
    desk(provider).expect_return(
        {
            "return_id": rid,
            "order_id": order_id,
            "warehouse": warehouse,
            "tracking_number": label.tracking_number if label else None,
            "lines": rma_lines(ret),
        },
        idempotency_key=f"rma-{rid}",
    )
    if label is not None:
        store.link_tracking(label.tracking_number, order_id, rid)
        trackers.register(label.tracking_number, label.carrier)

    def change(order: Order, current: OrderReturn) -> OrderReturn | None:
        if reached(current, ReturnStatus.LABEL_SENT) or current.final:
            return None
        at = now()
        order.record(
            "return_label_sent" if label else "return_announced",
            at,
            return_id=rid,
            **({"carrier": label.carrier, "tracking_number": label.tracking_number} if label else {}),
            **({"label_refused": refused} if refused else {}),
        )
        flags = sorted({*current.flags, "label_refused"}) if refused else current.flags
        return current.model_copy(
            update={"status": ReturnStatus.LABEL_SENT, "label": label, "updated_at": at, "flags": flags}
        )

    done = change_return(orders, order_id, rid, change)
    return {"order_id": order_id, "return_id": rid, "status": done.status.value, "next": next_step(done)}


def _warehouse_of(order: Order, ret: OrderReturn) -> tuple[str, str]:
    """(3PL provider, warehouse) the returned lines shipped from (the first that carried one of them)."""
    wanted = {ln.line_id for ln in ret.lines}
    for shipment in order.shipments:
        if any(str(line.get("line_id")) in wanted for line in shipment.lines):
            return shipment.provider or "default", shipment.warehouse or "main"
    return "default", "main"


# The workflow's two waits: the token's kind, and the status that ends the wait.
WAITS = {"parcel": (PARCEL, ReturnStatus.RECEIVED), "inspection": (INSPECTION, ReturnStatus.INSPECTED)}


def await_stage(
    order_id: str,
    rid: str,
    stage: str,
    task_token: str,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
) -> dict[str, Any]:
    """Keep the token until the 3PL has received the parcel (`parcel`) or inspected every returned unit
    (`inspection`); resumed at once when that already happened."""
    kind, status = WAITS[stage]
    return _await(order_id, rid, task_token, kind, status, orders=orders, store=store, workflow=workflow)


def _await(
    order_id: str,
    rid: str,
    task_token: str,
    kind: str,
    status: ReturnStatus,
    *,
    orders: OrderRepository,
    store: FulfilmentStore,
    workflow: WorkflowStarter,
) -> dict[str, Any]:
    store.set_token(order_id, rid, kind, task_token)
    _, ret = load_return(orders, order_id, rid)
    if reached(ret, status) or ret.final:
        resume_waiting(store, workflow, order_id, rid, kind=kind, output=_resumed(ret))
    return {"order_id": order_id, "return_id": rid, "status": ret.status.value}


def _resumed(ret: OrderReturn) -> dict[str, Any]:
    return {"status": ret.status.value, "next": next_step(ret)}


def resume_return(store: FulfilmentStore, workflow: WorkflowStarter, ret: OrderReturn) -> None:
    """Wake the return workflow's wait that `ret`'s status satisfies (received, inspected, or final)."""
    if reached(ret, ReturnStatus.RECEIVED) or ret.final:
        resume_waiting(store, workflow, ret.order_id, ret.return_id, kind=PARCEL, output=_resumed(ret))
    if reached(ret, ReturnStatus.INSPECTED) or ret.final:
        resume_waiting(store, workflow, ret.order_id, ret.return_id, kind=INSPECTION, output=_resumed(ret))


def overdue(
    order_id: str,
    rid: str,
    stage: str,
    *,
    orders: OrderRepository,
    now: Callable[[], datetime],
    board: ReturnsBoard | None = None,
) -> dict[str, Any]:
    """A wait ran past its deadline. No parcel by the deadline: the return expires (the customer kept the
    goods; recorded on `board`, the status page's day list). An inspection overdue: flagged for operators,
    and the workflow waits again."""

    def change(order: Order, ret: OrderReturn) -> OrderReturn | None:
        at = now()
        if stage == "parcel" and not reached(ret, ReturnStatus.RECEIVED) and not ret.final:
            order.record("return_expired", at, return_id=rid, reason="parcel not received by the deadline")
            return ret.model_copy(
                update={
                    "status": ReturnStatus.EXPIRED,
                    "updated_at": at,
                    "flags": sorted({*ret.flags, "parcel_overdue"}),
                    "refusal": {
                        "rule": "parcel_overdue",
                        "detail": "the parcel did not arrive by the deadline",
                    },
                }
            )
        if stage == "inspection" and "inspection_overdue" not in ret.flags:
            order.record("return_overdue", at, return_id=rid, stage="inspection")
            return ret.model_copy(
                update={"flags": sorted({*ret.flags, "inspection_overdue"}), "updated_at": at}
            )
        return None

    ret = change_return(orders, order_id, rid, change)
    if board is not None and ret.status == ReturnStatus.EXPIRED:
        board.closed(ret)
    return {"order_id": order_id, "return_id": rid, "status": ret.status.value, "next": next_step(ret)}


def record_failure(
    order_id: str, rid: str, error: str, cause: str, *, orders: OrderRepository, now: Callable[[], datetime]
) -> dict[str, Any]:
    """A step failed for good: flagged on the return for an operator (its workflow ends Failed)."""

    def change(order: Order, ret: OrderReturn) -> OrderReturn | None:
        at = now()
        order.record("return_failed", at, return_id=rid, error=error, cause=failure_summary(cause))
        return ret.model_copy(update={"flags": sorted({*ret.flags, "failed"}), "updated_at": at})

    try:
        ret = change_return(orders, order_id, rid, change)
    except NotFound:
        return {"order_id": order_id, "return_id": rid, "recorded": False}
    return {"order_id": order_id, "return_id": rid, "status": ret.status.value, "error": error}
