"""Bad returns and refunds: each a clear refusal, and nothing changed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chalicelib.domain.errors import IdempotencyKeyReused, InvalidInput
from chalicelib.domain.order import OrderStatus
from chalicelib.domain.returns import intake, refunds, resolution
from chalicelib.domain.returns.errors import ReturnNotAllowed, ReturnRefused
from chalicelib.domain.returns.events import ChannelReturn, ChannelReturnLine
from chalicelib.domain.returns.model import ReturnStatus, returns_of
from chalicelib.domain.returns.policy import ReturnPolicies
from tests.fakes import RecordingQueue
from tests.unit.returns.conftest import World


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"lines": [{"line_id": "L1", "quantity": -1}]}, "lines[0].quantity must be at least 1"),
        ({"lines": [{"line_id": "L1", "quantity": 0}]}, "lines[0].quantity must be at least 1"),
        ({"lines": [{"line_id": "L1", "quantity": 1.5}]}, "lines[0].quantity must be a whole number"),
        ({"lines": [{"line_id": "L1", "quantity": True}]}, "lines[0].quantity must be a whole number"),
        ({"lines": [{"line_id": "L1", "quantity": "1"}]}, "lines[0].quantity must be a whole number"),
        ({"lines": []}, "lines must be a list of 1 to 250 lines"),
        ({"lines": [{"quantity": 1}]}, "lines[0].line_id must be a non-empty string"),
        ({"lines": [{"line_id": "L1", "quantity": 1, "reason": "bored"}]}, "lines[0].reason must be one of"),
        ({"lines": [{"line_id": "L1", "quantity": 1}], "resolution": "cash"}, "resolution must be one of"),
        (
            {"lines": [{"line_id": "L1", "quantity": 1}, {"line_id": "L1", "quantity": 1}]},
            "the same line_id twice",
        ),
        ({"lines": [{"line_id": "L1", "quantity": 1}], "extra": 1}, "unknown fields: ['extra']"),
        ([], "body must be"),
        ({"lines": [{"line_id": "L1", "quantity": 1}], "exchange": {"lines": []}}, "exchange is only for"),
    ],
)
def test_malformed_return_requests__are_400s_naming_the_field(body, message):
    with pytest.raises(
        InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
    ):
        intake.parse_return_request(body)


def _request(world: World, order_id: str, body: dict):
    return intake.request_return(
        order_id,
        intake.parse_return_request(body),
        orders=world.orders,
        workflow=world.returns_workflow,
        policies=world.policies,
        now=world.clock,
    )


def _open(world: World, order_id: str, lines: list[dict]) -> None:
    intake.request_return(
        order_id,
        intake.parse_return_request({"lines": lines}),
        orders=world.orders,
        workflow=world.returns_workflow,
        policies=world.policies,
        now=world.clock,
    )


@pytest.mark.parametrize(
    ("lines", "rule"),
    [
        ([{"line_id": "L9", "quantity": 1}], "unknown_line"),
        ([{"line_id": "L1", "quantity": 3}], "too_many_units"),
    ],
)
def test_returns_the_order_cannot_hold__are_422s_naming_the_rule(world: World, lines, rule):
    order_id = world.delivered_order()
    with pytest.raises(ReturnRefused) as refused:
        _open(world, order_id, lines)
    assert refused.value.rule == rule
    assert world.order(order_id).returns == [] and world.returns_workflow.started == []


def test_units_already_returned__cannot_come_back_twice(world: World):
    order_id = world.delivered_order()
    _open(world, order_id, [{"line_id": "L1", "quantity": 2}])
    with pytest.raises(ReturnRefused, match="0 delivered and not returned"):
        _open(world, order_id, [{"line_id": "L1", "quantity": 1}])


def test_an_order_not_delivered_or_cancelled__cannot_be_returned(world: World):
    order_id = world.delivered_order()
    for status in (OrderStatus.SHIPPED, OrderStatus.CANCELLED, OrderStatus.PAID):
        stored = world.orders.get(order_id)
        assert stored is not None
        order = stored.order.model_copy(update={"status": status})
        world.orders.save(order, expected_version=stored.version)
        with pytest.raises(ReturnNotAllowed):
            _open(world, order_id, [{"line_id": "L1", "quantity": 1}])


def test_a_non_returnable_sku_after_the_withdrawal_week__is_refused(world: World):
    world.policies = ReturnPolicies.from_mapping({"non_returnable_skus": ["MUG-*"]})
    order_id = world.delivered_order()
    with pytest.raises(ReturnRefused) as refused:
        _open(world, order_id, [{"line_id": "L1", "quantity": 1}])
    assert refused.value.rule == "non_returnable_sku"


def test_a_policy_below_the_withdrawal_right__is_refused():
    with pytest.raises(InvalidInput, match="below the 7-day withdrawal right"):
        ReturnPolicies.from_mapping({"stores": {"shopify:s": {"window_days": 5}}})


# --- refunds without a return ----------------------------------------------------------------------------


def _refund(world: World, order_id: str, body: object, key: str | None = None):
    return refunds.refund(
        order_id, body, orders=world.orders, gateway=lambda: world.gateway, now=world.clock, key=key
    )


def test_a_goodwill_refund__is_exact_once_per_key_and_never_above_what_is_left(world: World):
    order_id = world.delivered_order()
    made, created = _refund(world, order_id, {"amount": "12.50", "reason": "late delivery"}, key="g-1")
    again, created_again = _refund(world, order_id, {"amount": "12.50", "reason": "late delivery"}, key="g-1")
    assert (created, created_again, made["refund"], again["refund"]) == (True, False, "re_1", "re_1")
    assert [c[2] for c in world.gateway.calls if c[0] == "refund"] == [1250]
    with pytest.raises(IdempotencyKeyReused):
        _refund(world, order_id, {"amount": "1.00", "reason": "other"}, key="g-1")
    with pytest.raises(ReturnRefused) as refused:
        _refund(world, order_id, {"amount": "87.51", "reason": "too much"})
    assert refused.value.rule == "refund_exceeds_captured"
    assert world.order(order_id).payment.amount_refunded == Decimal("12.50")
    published = [p.publication_id for p in world.order(order_id).publications if p.kind == "refunded"]
    assert published == ["refunded:rf1"]


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 5, "reason": "x"},
        {"amount": "5.001", "reason": "x"},
        {"amount": "-5", "reason": "x"},
        {"amount": "5"},
        {"amount": "5", "reason": "x", "lines": [{"line_id": "L1", "quantity": 0}]},
        "5",
    ],
)
def test_malformed_refunds__are_400s_and_change_nothing(world: World, body):
    order_id = world.delivered_order()
    with pytest.raises(InvalidInput):
        _refund(world, order_id, body)
    assert world.order(order_id).history == [] and world.gateway.refunds == []


def test_a_refund_reserved_but_not_yet_made__counts_against_the_next_one(world: World):
    order_id = world.delivered_order()
    stored = world.orders.get(order_id)
    assert stored is not None
    order = stored.order.model_copy(deep=True)
    order.record("refund_requested", world.clock(), refund_ref="rf1", amount="90.00")
    world.orders.save(order, expected_version=stored.version)
    assert resolution.refundable(world.order(order_id)) == Decimal("10.00")
    with pytest.raises(ReturnRefused):
        _refund(world, order_id, {"amount": "10.01", "reason": "another operator at once"})


# --- channel returns -----------------------------------------------------------------------------------


def _channel_return(order_external_id: str, status: str = "requested", **kw) -> ChannelReturn:
    return ChannelReturn(
        channel="woocommerce",
        store="default",
        external_order_id=order_external_id,
        external_return_id=kw.pop("rid", "RMA-1"),
        status=status,
        lines=kw.pop("lines", (ChannelReturnLine(quantity=1, sku="LAMP-1", reason="damaged"),)),
        at=kw.pop("at", None)
        or __import__("datetime").datetime(2026, 11, 25, tzinfo=__import__("datetime").UTC),
        label_provided=True,
        **kw,
    )


def test_a_channel_return_heard_of_many_times__is_one_return(world: World):
    order_id = world.delivered_order()
    for _ in range(3):
        intake.record_channel_return(
            _channel_return("R-1"),
            orders=world.orders,
            workflow=world.returns_workflow,
            policies=world.policies,
            now=world.clock,
        )
    (ret,) = returns_of(world.order(order_id))
    assert (ret.external_id, ret.lines[0].line_id, ret.label_needed) == ("RMA-1", "L2", False)
    assert len(world.returns_workflow.started) == 1


def test_a_channel_return_the_channel_declines__is_rejected_and_its_wait_woken(world: World):
    order_id = world.delivered_order()
    woken: list[str] = []
    kw = {
        "orders": world.orders,
        "workflow": world.returns_workflow,
        "policies": world.policies,
        "now": world.clock,
        "resume": lambda ret: woken.append(ret.status.value),
    }
    intake.record_channel_return(_channel_return("R-1"), **kw)
    intake.record_channel_return(_channel_return("R-1", "declined"), **kw)
    (ret,) = returns_of(world.order(order_id))
    assert ret.status == ReturnStatus.REJECTED and woken == ["rejected"]
    assert world.order(order_id).status == OrderStatus.COMPLETED


# --- exchange ------------------------------------------------------------------------------------------


def test_an_exchange__places_one_replacement_paid_by_the_returned_value(world: World):
    from chalicelib.domain.returns import receiving, steps
    from chalicelib.domain.returns.events import ReturnedUnit, ReturnEvent

    order_id = world.delivered_order()
    ret, _ = intake.request_return(
        order_id,
        intake.parse_return_request(
            {
                "lines": [{"line_id": "L1", "quantity": 1, "reason": "size"}],
                "resolution": "exchange",
                "label": False,
            }
        ),
        orders=world.orders,
        workflow=world.returns_workflow,
        policies=world.policies,
        now=world.clock,
    )
    steps.approve(order_id, ret.return_id, orders=world.orders, policies=world.policies, now=world.clock)
    for kind in ("received", "inspected"):
        receiving.apply_return_event(
            ReturnEvent(
                event_id=kind,
                provider="default",
                kind=kind,
                return_id=ret.return_id,
                at=world.clock(),
                units=(
                    ReturnedUnit(quantity=1, sku="MUG-1", outcome=None if kind == "received" else "restock"),
                ),
            ),
            orders=world.orders,
            store=world.store,
            workflow=world.workflow,
            now=world.clock,
        )
    queue = RecordingQueue()
    placed: list[tuple[dict, str]] = []

    def place(body: dict, delivery_id: str) -> str:
        placed.append((body, delivery_id))
        queue.send(body, group_id="g", deduplication_id=delivery_id)
        return "ord_replacement"

    for _ in range(2):
        done = resolution.resolve(
            order_id,
            ret.return_id,
            orders=world.orders,
            policies=world.policies,
            gateway=lambda: world.gateway,
            now=world.clock,
            place_replacement=place,
        )
    assert done["reference"] == "ord_replacement" and len(placed) == 1
    body, delivery_id = placed[0]
    assert delivery_id == f"exchange:{ret.return_id}"
    # The same mug (25.00 + 2.50 tax) against the 24.72 paid for it: 24.72 is credited, 2.78 is owed.
    assert body["lines"][0]["sku"] == "MUG-1" and body["payment"]["amount_captured"] == "24.72"
    assert world.gateway.refunds == []


def test_an_exchange_for_a_sku_the_order_lacks__needs_an_exact_price(world: World):
    order_id = world.delivered_order()
    base = {"lines": [{"line_id": "L1", "quantity": 1, "reason": "size"}], "resolution": "exchange"}
    with pytest.raises(ReturnRefused) as refused:
        _request(world, order_id, {**base, "exchange": {"lines": [{"sku": "MUG-XL", "quantity": 1}]}})
    assert refused.value.rule == "exchange_price_unknown"
    with pytest.raises(InvalidInput, match="unit_price"):
        _request(
            world,
            order_id,
            {**base, "exchange": {"lines": [{"sku": "MUG-XL", "quantity": 1, "unit_price": "9.999"}]}},
        )
    with pytest.raises(InvalidInput, match="unit_price must be a decimal string"):
        _request(
            world,
            order_id,
            {**base, "exchange": {"lines": [{"sku": "MUG-XL", "quantity": 1, "unit_price": 9}]}},
        )
    assert world.order(order_id).returns == []


def test_a_cheaper_exchange__refunds_the_difference_to_the_card_once(world: World):
    from chalicelib.domain.returns import receiving, steps
    from chalicelib.domain.returns.events import ReturnedUnit, ReturnEvent

    order_id = world.delivered_order()
    body = {
        "lines": [{"line_id": "L2", "quantity": 1, "reason": "size"}],
        "resolution": "exchange",
        "label": False,
        "exchange": {
            "lines": [{"sku": "LAMP-S", "quantity": 1, "unit_price": "30.00", "title": "Small lamp"}]
        },
    }
    ret, _ = _request(world, order_id, body)
    steps.approve(order_id, ret.return_id, orders=world.orders, policies=world.policies, now=world.clock)
    for kind in ("received", "inspected"):
        unit = ReturnedUnit(quantity=1, sku="LAMP-1", outcome=None if kind == "received" else "restock")
        receiving.apply_return_event(
            ReturnEvent(
                event_id=kind,
                provider="default",
                kind=kind,
                return_id=ret.return_id,
                at=world.clock(),
                units=(unit,),
            ),
            orders=world.orders,
            store=world.store,
            workflow=world.workflow,
            now=world.clock,
        )
    placed: list[dict] = []
    for _ in range(2):
        resolution.resolve(
            order_id,
            ret.return_id,
            orders=world.orders,
            policies=world.policies,
            gateway=lambda: world.gateway,
            now=world.clock,
            place_replacement=lambda b, d: placed.append(b) or "ord_x",
        )
    # The lamp paid 43.56 (35.56 + 8.00 tax); the small lamp is 30.00: 13.56 goes back to the card, once.
    assert (
        placed[0]["payment"]["amount_captured"] == "30.00" and placed[0]["lines"][0]["title"] == "Small lamp"
    )
    assert [c[2] for c in world.gateway.calls if c[0] == "refund"] == [1356]
    assert world.order(order_id).payment.amount_refunded == Decimal("13.56")
