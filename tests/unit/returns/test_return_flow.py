"""GIVEN a delivered two-line card order WHEN one line comes back THEN exactly its share goes back, once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from chalicelib.domain.errors import IdempotencyKeyReused
from chalicelib.domain.order import OrderStatus
from chalicelib.domain.returns import intake, receiving, resolution, steps
from chalicelib.domain.returns.events import ReturnedUnit, ReturnEvent
from chalicelib.domain.returns.model import Outcome, ReturnStatus, find_return
from chalicelib.domain.returns.policy import ReturnPolicies
from tests.unit.returns.conftest import World


def _open(world: World, order_id: str, body: dict, *, key: str | None = None):
    return world.open_return(order_id, body, key=key)


def _run_to_inspection(world: World, order_id: str, rid: str, outcome: Outcome = Outcome.RESTOCK) -> None:
    kw = {"orders": world.orders, "now": world.clock}
    assert steps.approve(order_id, rid, policies=world.policies, **kw)["next"] == "label"
    labelled = steps.issue_label(
        order_id,
        rid,
        labels=lambda: world.labels,
        desk=lambda provider: world.desk,
        trackers=world.trackers,
        store=world.store,
        policies=world.policies,
        **kw,
    )
    assert labelled["next"] == "parcel"
    steps.await_stage(
        order_id, rid, "parcel", "tok-parcel", orders=world.orders, store=world.store, workflow=world.workflow
    )
    ret = find_return(world.order(order_id), rid)
    assert ret is not None
    units = tuple(ReturnedUnit(quantity=ln.quantity, sku=ln.sku) for ln in ret.lines)
    for kind, event_units in (
        ("received", units),
        ("inspected", tuple(ReturnedUnit(quantity=u.quantity, sku=u.sku, outcome=outcome) for u in units)),
    ):
        receiving.apply_return_event(
            ReturnEvent(
                event_id=f"ev-{kind}",
                provider="default",
                kind=kind,
                return_id=rid,
                at=world.clock(),
                units=event_units,
            ),
            orders=world.orders,
            store=world.store,
            workflow=world.workflow,
            now=world.clock,
        )


def _resolve(world: World, order_id: str, rid: str) -> dict:
    return resolution.resolve(
        order_id,
        rid,
        orders=world.orders,
        policies=world.policies,
        gateway=lambda: world.gateway,
        now=world.clock,
    )


def test_return_of_one_line__refunds_exactly_that_lines_share_with_its_tax_once(world: World):
    order_id = world.delivered_order()
    ret, created = _open(
        world, order_id, {"lines": [{"line_id": "L2", "quantity": 1, "reason": "defective"}]}
    )
    assert created and ret.return_id == f"{order_id}-r1"
    assert world.returns_workflow.started[-1][1] == {"order_id": order_id, "return_id": ret.return_id}
    assert world.order(order_id).status == OrderStatus.RETURN_REQUESTED

    _run_to_inspection(world, order_id, ret.return_id)
    # The parcel wait was resumed by the receipt, routed on to the inspection.
    assert ("tok-parcel", {"status": "received", "next": "inspection"}) in world.workflow.completed
    label_key = f"label-{ret.return_id}"
    assert (
        world.desk.expected[f"rma-{ret.return_id}"]["tracking_number"]
        == world.labels.bought[label_key].tracking_number
    )

    first = _resolve(world, order_id, ret.return_id)
    again = _resolve(world, order_id, ret.return_id)

    # 40.00 less its share of the 10.00 order discount (4.44), plus its 8.00 tax.
    assert first["amount"] == "43.56" and first["status"] == "resolved" and first["next"] == "done"
    assert again == first
    assert [c[2] for c in world.gateway.calls if c[0] == "refund"] == [4356]
    order = world.order(order_id)
    assert order.payment.amount_refunded == Decimal("43.56")
    assert order.status == OrderStatus.PARTIALLY_REFUNDED
    published = [p for p in order.publications if p.kind == "refunded"]
    assert [p.publication_id for p in published] == [f"refunded:{ret.return_id}"]
    assert published[0].detail["restock"] == [{"line_id": "L2", "quantity": 1, "restock": True}]


def test_damaged_unit__is_not_restocked_and_the_customer_pays_no_label(world: World):
    world.policies = ReturnPolicies.from_mapping({"restocking_fee_percent": "10"})
    order_id = world.delivered_order()
    ret, _ = _open(world, order_id, {"lines": [{"line_id": "L1", "quantity": 1, "reason": "damaged"}]})
    _run_to_inspection(world, order_id, ret.return_id, Outcome.SCRAP)
    done = _resolve(world, order_id, ret.return_id)
    stored = find_return(world.order(order_id), ret.return_id)
    assert stored is not None and stored.money is not None
    # 25.00 − 2.78 (discount share) + 2.50 tax; no fee for damage, the merchant pays the label.
    assert (stored.money.restocking_fee, stored.money.label_cost, done["amount"]) == (0, 0, "24.72")
    assert stored.label is not None and stored.label.paid_by == "merchant"
    refunded = next(p for p in world.order(order_id).publications if p.kind == "refunded")
    assert refunded.detail["restock"] == [{"line_id": "L1", "quantity": 1, "restock": False}]


def test_a_change_of_mind_after_the_withdrawal_week__pays_the_fee_and_its_label(world: World):
    world.policies = ReturnPolicies.from_mapping({"restocking_fee_percent": "10"})
    order_id = world.delivered_order()
    ret, _ = _open(world, order_id, {"lines": [{"line_id": "L2", "quantity": 1, "reason": "changed_mind"}]})
    _run_to_inspection(world, order_id, ret.return_id)
    done = _resolve(world, order_id, ret.return_id)
    # 43.56 − 3.56 fee (10 % of the goods' 35.56) − 6.50 label
    assert done["amount"] == "33.50"


def test_within_seven_days_of_delivery__no_window_fee_or_sku_rule_refuses(world: World):
    world.policies = ReturnPolicies.from_mapping(
        {"restocking_fee_percent": "10", "non_returnable_skus": ["LAMP-*"]}
    )
    order_id = world.delivered_order()
    world.clock.at = world.order(order_id).shipments[0].delivered_at + timedelta(days=6)  # type: ignore[operator]
    ret, _ = _open(world, order_id, {"lines": [{"line_id": "L2", "quantity": 1, "reason": "withdrawal"}]})
    _run_to_inspection(world, order_id, ret.return_id)
    assert _resolve(world, order_id, ret.return_id)["amount"] == "43.56"


def test_the_window__refuses_a_late_return_unless_an_operator_overrides_it(world: World):
    order_id = world.delivered_order()
    world.clock.at += timedelta(days=40)
    body = {"lines": [{"line_id": "L2", "quantity": 1}]}
    with pytest.raises(intake.ReturnRefused) as refused:
        _open(world, order_id, body)
    assert refused.value.rule == "outside_window"
    assert world.order(order_id).returns == []
    ret, _ = _open(
        world, order_id, {**body, "override": {"rule": "outside_window", "note": "loyal customer"}}
    )
    assert ret.override == {"rule": "outside_window", "note": "loyal customer", "by": "api"}


def test_returning_every_unit_with_a_merchant_fault__refunds_shipping_and_marks_the_order_returned(
    world: World,
):
    order_id = world.delivered_order()
    ret, _ = _open(
        world,
        order_id,
        {
            "lines": [
                {"line_id": "L1", "quantity": 2, "reason": "defective"},
                {"line_id": "L2", "quantity": 1, "reason": "defective"},
            ]
        },
    )
    _run_to_inspection(world, order_id, ret.return_id)
    assert _resolve(world, order_id, ret.return_id)["amount"] == "100.00"
    assert world.order(order_id).status == OrderStatus.RETURNED


def test_idempotency_key__answers_the_first_return_and_refuses_another_body(world: World):
    order_id = world.delivered_order()
    body = {"lines": [{"line_id": "L2", "quantity": 1}]}
    first, created = _open(world, order_id, body, key="k-1")
    again, created_again = _open(world, order_id, body, key="k-1")
    assert (created, created_again, again.return_id) == (True, False, first.return_id)
    with pytest.raises(IdempotencyKeyReused):
        _open(world, order_id, {"lines": [{"line_id": "L1", "quantity": 1}]}, key="k-1")
    assert len(world.order(order_id).returns) == 1


def test_duplicate_and_late_3pl_events__change_nothing_more(world: World):
    order_id = world.delivered_order()
    ret, _ = _open(world, order_id, {"lines": [{"line_id": "L2", "quantity": 1}]})
    _run_to_inspection(world, order_id, ret.return_id)
    before = world.order(order_id).model_dump()
    late = ReturnEvent(
        event_id="ev-received",
        provider="default",
        kind="received",
        return_id=ret.return_id,
        at=world.clock(),
        units=(ReturnedUnit(quantity=1, sku="LAMP-1"),),
    )
    receiving.apply_return_event(
        late, orders=world.orders, store=world.store, workflow=world.workflow, now=world.clock
    )
    assert world.order(order_id).model_dump() == before


def test_an_event_with_units_not_in_the_return__is_refused_and_recorded(world: World):
    order_id = world.delivered_order()
    ret, _ = _open(world, order_id, {"lines": [{"line_id": "L2", "quantity": 1}]})
    forged = ReturnEvent(
        event_id="ev-x",
        provider="default",
        kind="received",
        return_id=ret.return_id,
        at=world.clock(),
        units=(ReturnedUnit(quantity=3, sku="LAMP-1"),),
    )
    receiving.apply_return_event(
        forged, orders=world.orders, store=world.store, workflow=world.workflow, now=world.clock
    )
    stored = find_return(world.order(order_id), ret.return_id)
    assert stored is not None and stored.status == ReturnStatus.REQUESTED
    assert stored.refusal == {"rule": "event_units", "detail": "more units than returned for LAMP-1"}


def test_two_operators_acting_at_once__the_second_is_told(world: World):
    order_id = world.delivered_order()
    ret, _ = _open(world, order_id, {"lines": [{"line_id": "L2", "quantity": 1}]})
    kw = {"orders": world.orders, "store": world.store, "workflow": world.workflow, "now": world.clock}
    receiving.operator_action(order_id, ret.return_id, "receive", {"expected_status": "requested"}, **kw)
    with pytest.raises(receiving.ReturnStepConflict):
        receiving.operator_action(order_id, ret.return_id, "reject", {"expected_status": "requested"}, **kw)


def test_parcel_never_arrives__the_return_expires_and_the_order_is_completed_again(world: World):
    order_id = world.delivered_order()
    ret, _ = _open(world, order_id, {"lines": [{"line_id": "L2", "quantity": 1}]})
    out = steps.overdue(order_id, ret.return_id, "parcel", orders=world.orders, now=world.clock)
    assert (out["status"], out["next"]) == ("expired", "done")
    assert world.order(order_id).status == OrderStatus.COMPLETED
    # The units are free to return again.
    again, _ = _open(world, order_id, {"lines": [{"line_id": "L2", "quantity": 1}]})
    assert again.number == 2


def test_store_credit__is_issued_once_and_pays_a_later_order_once(world: World):
    from chalicelib.domain.credit.model import credit_account
    from chalicelib.domain.credit.redemption import redeem_credits

    world.policies = ReturnPolicies.from_mapping({"store_credit_bonus_percent": "10"})
    order_id = world.delivered_order()
    ret, _ = _open(
        world,
        order_id,
        {"lines": [{"line_id": "L2", "quantity": 1, "reason": "defective"}], "resolution": "store_credit"},
    )
    _run_to_inspection(world, order_id, ret.return_id)
    first = _resolve(world, order_id, ret.return_id)
    again = _resolve(world, order_id, ret.return_id)
    # 43.56 and a 10 % bonus (4.36): credit, not money back on the card.
    assert first["amount"] == again["amount"] == "47.92" and world.gateway.refunds == []
    account = credit_account("woocommerce", "default", "ana@example.com")
    assert world.orders.credit.balance(account).amount == Decimal("47.92")

    later_id = world.delivered_order(
        "R-2", payment={"source": "manual", "credits": [{"kind": "store_credit", "amount": "30.00"}]}
    )
    stored = world.orders.get(later_id)
    assert stored is not None
    pending = stored.order.model_copy(update={"status": OrderStatus.APPROVED})
    world.orders.save(pending, expected_version=stored.version)
    for _ in range(2):
        redeem_credits(later_id, orders=world.orders, now=world.clock)
    assert world.orders.credit.balance(account).amount == Decimal("17.92")


def test_a_refused_label__never_costs_the_return_it_goes_on_flagged(world: World):
    from chalicelib.domain.errors import InvalidInput

    class NoAddress:
        def return_label(self, order, ret, *, idempotency_key):
            raise InvalidInput("no warehouse address and no return_address on the carrier connection")

    order_id = world.delivered_order()
    ret, _ = _open(world, order_id, {"lines": [{"line_id": "L2", "quantity": 1, "reason": "defective"}]})
    steps.approve(order_id, ret.return_id, orders=world.orders, policies=world.policies, now=world.clock)
    out = steps.issue_label(
        order_id,
        ret.return_id,
        orders=world.orders,
        labels=NoAddress,
        desk=lambda p: world.desk,
        trackers=world.trackers,
        store=world.store,
        policies=world.policies,
        now=world.clock,
    )
    stored = find_return(world.order(order_id), ret.return_id)
    assert out["next"] == "parcel" and stored is not None and stored.label is None
    assert "label_refused" in stored.flags and f"rma-{ret.return_id}" in world.desk.expected


def test_money_no_one_can_give_back__is_flagged_for_the_operator_to_refund_by_hand(world: World):
    order_id = world.delivered_order(
        channel="manual", payment={"source": "bank_transfer", "amount_captured": "100.00"}
    )
    ret, _ = _open(world, order_id, {"lines": [{"line_id": "L2", "quantity": 1, "reason": "defective"}]})
    _run_to_inspection(world, order_id, ret.return_id)
    done = _resolve(world, order_id, ret.return_id)
    stored = find_return(world.order(order_id), ret.return_id)
    assert done["method"] == "manual" and done["amount"] == "43.56" and world.gateway.refunds == []
    assert stored is not None and "refund_by_hand" in stored.flags
