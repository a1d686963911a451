"""GIVEN an order with a kit line WHEN some or all of its components come back THEN the 3PL receives
components, the refund is the returned components' share to the cent, once, and no component comes back
twice."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.order import OrderStatus, Shipment
from chalicelib.domain.returns import intake, receiving, resolution
from chalicelib.domain.returns.amounts import line_share
from chalicelib.domain.returns.errors import ReturnRefused
from chalicelib.domain.returns.events import ReturnedUnit, ReturnEvent
from chalicelib.domain.returns.model import OrderReturn, Outcome, ReturnStatus, find_return
from chalicelib.domain.returns.policy import ReturnPolicies
from tests.unit.returns.conftest import World

BREW = {
    "KIT-BREW": [
        {"sku": "POT-1", "quantity": 1, "share": "0.7"},
        {"sku": "CUP-1", "quantity": 2, "share": "0.3"},
    ]
}


def _kit_order(world: World, lines: list[dict[str, Any]], **totals: str) -> str:
    """A delivered card order of `lines` (every unit delivered)."""
    order_id = world.delivered_order(lines=lines, totals=totals)
    stored = world.orders.get(order_id)
    assert stored is not None
    order = stored.order
    shipped = [{"line_id": ln.line_id, "sku": ln.sku, "quantity": ln.quantity} for ln in order.lines]
    order.shipments = [
        order.shipments[0].model_copy(update={"lines": shipped, "shipped_lines": shipped}),
    ]
    assert isinstance(order.shipments[0], Shipment)
    world.orders.save(order, expected_version=stored.version)
    return order_id


def _brew_order(world: World) -> str:
    """2 mugs (2 × 25.00, 5.00 tax) and 2 KIT-BREW (2 × 30.00, 6.00 tax), 10.00 discount, 7.00 shipping."""
    world.policies = ReturnPolicies.from_mapping({"kits": BREW})
    return _kit_order(
        world,
        [
            {"line_id": "L1", "sku": "MUG-1", "title": "Mug", "quantity": 2, "unit_price": "25.00",
             "tax": "5.00"},
            {"line_id": "K1", "sku": "KIT-BREW", "title": "Brew kit", "quantity": 2, "unit_price": "30.00",
             "tax": "6.00"},
        ],
        discount="10.00",
        shipping="7.00",
    )  # fmt: skip


def _through_3pl(world: World, order_id: str, rid: str, outcomes: dict[str, Outcome] | None = None) -> None:
    """Approve, label and announce; the 3PL receives and inspects what its RMA lists (by RMA line, as the
    3PL answers), each component restocked unless `outcomes` says otherwise (by SKU)."""
    world.approve_and_label(order_id, rid)
    rma = world.desk.expected[f"rma-{rid}"]["lines"]
    for kind in ("received", "inspected"):
        units = tuple(
            ReturnedUnit(
                quantity=ln["quantity"],
                sku=ln["sku"],
                line_id=ln["line_id"],
                outcome=(outcomes or {}).get(ln["sku"], Outcome.RESTOCK) if kind == "inspected" else None,
            )
            for ln in rma
        )
        receiving.apply_return_event(
            ReturnEvent(event_id=f"ev-{rid}-{kind}", provider="default", kind=kind, return_id=rid,
                        at=world.clock(), units=units),
            orders=world.orders,
            store=world.store,
            workflow=world.workflow,
            now=world.clock,
        )  # fmt: skip


def _resolve(world: World, order_id: str, rid: str) -> dict[str, Any]:
    return resolution.resolve(
        order_id, rid, orders=world.orders, policies=world.policies, gateway=lambda: world.gateway,
        now=world.clock,
    )  # fmt: skip


def _stored(world: World, order_id: str, rid: str) -> OrderReturn:
    ret = find_return(world.order(order_id), rid)
    assert ret is not None
    return ret


def _refunded(world: World, order_id: str) -> list[dict[str, Any]]:
    return [dict(p.detail) for p in world.order(order_id).publications if p.kind == "refunded"]


def test_whole_kit_return__lists_every_component_for_the_3pl_and_refunds_the_kits_share(world: World):
    order_id = _brew_order(world)
    ret, _ = world.open_return(order_id, {"lines": [{"line_id": "K1", "quantity": 1, "reason": "defective"}]})
    assert ret.lines[0].components == [{"sku": "POT-1", "quantity": 1}, {"sku": "CUP-1", "quantity": 2}]

    _through_3pl(world, order_id, ret.return_id)
    done = _resolve(world, order_id, ret.return_id)

    assert world.desk.expected[f"rma-{ret.return_id}"]["lines"] == [
        {"line_id": "K1:POT-1", "sku": "POT-1", "quantity": 1},
        {"line_id": "K1:CUP-1", "sku": "CUP-1", "quantity": 2},
    ]
    # One kit of two: (60.00 − 60/110 of the 10.00 discount) / 2 = 27.27, plus 3.00 tax.
    assert done["amount"] == "30.27" and done["status"] == "resolved"
    assert [c[2] for c in world.gateway.calls if c[0] == "refund"] == [3027]
    [published] = _refunded(world, order_id)
    assert published["lines"] == [{"line_id": "K1", "quantity": 1}]
    assert published["restock"] == [{"line_id": "K1", "quantity": 1, "restock": True}]


def test_part_of_a_kit__refunds_its_components_share_and_the_kit_is_not_restocked_at_the_channel(
    world: World,
):
    order_id = _brew_order(world)
    ret, _ = world.open_return(
        order_id,
        {"lines": [{"line_id": "K1", "quantity": 1, "reason": "damaged",
                    "components": [{"sku": "CUP-1", "quantity": 2}]}]},
    )  # fmt: skip
    _through_3pl(world, order_id, ret.return_id)
    done = _resolve(world, order_id, ret.return_id)

    assert world.desk.expected[f"rma-{ret.return_id}"]["lines"] == [
        {"line_id": "K1:CUP-1", "sku": "CUP-1", "quantity": 2}
    ]
    # Two cups are 0.3 of a kit: 0.3 × 27.2727 = 8.18 and 0.3 × 3.00 tax = 0.90.
    stored = _stored(world, order_id, ret.return_id)
    assert stored.money is not None and (stored.money.lines, stored.money.tax) == (
        Decimal("8.18"),
        Decimal("0.90"),
    )
    assert done["amount"] == "9.08"
    assert [(u.line_id, u.sku, u.quantity) for u in stored.inspected] == [("K1", "CUP-1", 2)]
    # The 3PL restocked the cups; at the channel, no whole kit came back.
    assert _refunded(world, order_id)[0]["restock"] == [{"line_id": "K1", "quantity": 1, "restock": False}]


def test_a_kit_returned_in_three_parts__adds_up_to_what_was_paid_for_it_to_the_cent(world: World):
    world.policies = ReturnPolicies.from_mapping(
        {"kits": {"KIT-3": [{"sku": sku, "quantity": 1} for sku in "ABC"]}}
    )
    order_id = _kit_order(
        world,
        [
            {
                "line_id": "K",
                "sku": "KIT-3",
                "title": "Kit",
                "quantity": 1,
                "unit_price": "10.00",
                "tax": "1.00",
            }
        ],
    )
    amounts = []
    for sku in ("A", "B", "C"):
        body = {
            "line_id": "K",
            "quantity": 1,
            "reason": "defective",
            "components": [{"sku": sku, "quantity": 1}],
        }
        ret, _ = world.open_return(order_id, {"lines": [body]})
        _through_3pl(world, order_id, ret.return_id)
        amounts.append(Decimal(_resolve(world, order_id, ret.return_id)["amount"]))

    order = world.order(order_id)
    goods, tax = line_share(order, order.lines[0], 1)
    # By quantity each is a third: 3.33 + 0.33; then 6.67 + 0.67 less that; then the rest of 11.00.
    assert amounts == [Decimal("3.66"), Decimal("3.68"), Decimal("3.66")]
    assert sum(amounts) == goods + tax == Decimal("11.00")
    assert order.status == OrderStatus.RETURNED
    assert order.payment.amount_refunded == Decimal("11.00")


def test_components_returned_earlier__count_against_later_returns_of_the_kit_line(world: World):
    order_id = _brew_order(world)
    first, _ = world.open_return(
        order_id,
        {"lines": [{"line_id": "K1", "quantity": 2, "components": [{"sku": "POT-1", "quantity": 2}]}]},
    )
    with pytest.raises(ReturnRefused) as refused:
        world.open_return(
            order_id,
            {"lines": [{"line_id": "K1", "quantity": 1, "components": [{"sku": "POT-1", "quantity": 1}]}]},
        )
    assert refused.value.rule == "too_many_components"

    # The rest of the kits: only what is still with the customer (the four cups).
    rest, _ = world.open_return(
        order_id, {"lines": [{"line_id": "K1", "quantity": 2, "reason": "defective"}]}
    )
    assert rest.lines[0].components == [{"sku": "CUP-1", "quantity": 4}]
    with pytest.raises(ReturnRefused) as nothing_left:
        world.open_return(order_id, {"lines": [{"line_id": "K1", "quantity": 1}]})
    assert nothing_left.value.rule == "too_many_units"  # both kits are back, whole

    for ret in (rest, first):  # resolved out of order: each keeps its place in the line's running total
        _through_3pl(world, order_id, ret.return_id)
    _resolve(world, order_id, rest.return_id)
    _resolve(world, order_id, first.return_id)
    money = [_stored(world, order_id, r.return_id).money for r in (first, rest)]
    assert all(m is not None for m in money)
    order = world.order(order_id)
    goods, tax = line_share(order, order.lines[1], 2)
    assert sum((m.lines + m.tax for m in money if m), Decimal(0)) == goods + tax == Decimal("60.55")


def test_a_rejected_return_gives_its_components_back_to_the_customer(world: World):
    order_id = _brew_order(world)
    ret, _ = world.open_return(order_id, {"lines": [{"line_id": "K1", "quantity": 2}]})
    receiving.operator_action(
        order_id, ret.return_id, "reject", {}, orders=world.orders, store=world.store,
        workflow=world.workflow, now=world.clock,
    )  # fmt: skip
    again, _ = world.open_return(order_id, {"lines": [{"line_id": "K1", "quantity": 2}]})
    assert again.lines[0].components == [{"sku": "POT-1", "quantity": 2}, {"sku": "CUP-1", "quantity": 4}]


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ({"line_id": "K1", "quantity": 1, "components": [{"sku": "LID-1", "quantity": 1}]},
         "unknown_component"),
        ({"line_id": "L1", "quantity": 1, "components": [{"sku": "MUG-1", "quantity": 1}]},
         "unknown_component"),
        ({"line_id": "K1", "quantity": 1, "components": [{"sku": "CUP-1", "quantity": 3}]},
         "too_many_components"),
        ({"line_id": "K1", "quantity": 3}, "too_many_units"),
    ],
)  # fmt: skip
def test_components_a_kit_does_not_hold__are_refused_naming_the_rule_and_nothing_is_recorded(
    world: World, line: dict[str, Any], rule: str
):
    order_id = _brew_order(world)
    with pytest.raises(ReturnRefused) as refused:
        world.open_return(order_id, {"lines": [line]})
    assert refused.value.rule == rule
    assert world.order(order_id).returns == [] and world.returns_workflow.started == []


@pytest.mark.parametrize(
    ("components", "message"),
    [
        ({}, "lines[0].components must be a list"),
        ([], "lines[0].components must be a list"),
        ([{"sku": "CUP-1"}], "lines[0].components[0].quantity must be a whole number"),
        ([{"sku": "CUP-1", "quantity": 0}], "lines[0].components[0].quantity must be a whole number"),
        ([{"sku": "", "quantity": 1}], "lines[0].components[0].sku must be a non-empty string"),
        ([{"sku": "CUP-1", "quantity": 1, "colour": "red"}], "lines[0].components must be a list"),
        ([{"sku": "CUP-1", "quantity": 1}, {"sku": "CUP-1", "quantity": 1}], "names 'CUP-1' twice"),
    ],
)
def test_malformed_components__are_400s_naming_the_field(components: Any, message: str):
    with pytest.raises(InvalidInput, match=re.escape(message)):
        intake.parse_return_request({"lines": [{"line_id": "K1", "quantity": 1, "components": components}]})


def test_an_operator_grades_a_kits_components__a_scrapped_one_keeps_the_kit_from_restock(world: World):
    order_id = _brew_order(world)
    ret, _ = world.open_return(order_id, {"lines": [{"line_id": "K1", "quantity": 1, "reason": "damaged"}]})
    rid = ret.return_id
    kw: dict[str, Any] = {
        "orders": world.orders,
        "store": world.store,
        "workflow": world.workflow,
        "now": world.clock,
    }
    receiving.operator_action(order_id, rid, "receive", {}, **kw)
    with pytest.raises(InvalidInput, match="is a kit: name the component"):
        receiving.operator_action(
            order_id,
            rid,
            "inspect",
            {"units": [{"line_id": "K1", "quantity": 2, "outcome": "restock"}]},
            **kw,
        )
    units = [
        {"line_id": "K1", "sku": "POT-1", "quantity": 1, "outcome": "restock"},
        {"line_id": "K1", "sku": "CUP-1", "quantity": 1, "outcome": "restock"},
        {"line_id": "K1", "sku": "CUP-1", "quantity": 1, "outcome": "scrap"},
    ]
    inspected = receiving.operator_action(order_id, rid, "inspect", {"units": units}, **kw)
    assert inspected.status == ReturnStatus.INSPECTED
    assert [(u.line_id, u.sku, u.outcome.value) for u in inspected.inspected] == [
        ("K1", "POT-1", "restock"), ("K1", "CUP-1", "restock"), ("K1", "CUP-1", "scrap"),
    ]  # fmt: skip
    _resolve(world, order_id, rid)
    assert _refunded(world, order_id)[0]["restock"] == [{"line_id": "K1", "quantity": 1, "restock": False}]


def test_a_3pl_event_naming_a_component_twice_over__is_refused_and_recorded(world: World):
    order_id = _brew_order(world)
    ret, _ = world.open_return(
        order_id,
        {"lines": [{"line_id": "K1", "quantity": 1, "components": [{"sku": "CUP-1", "quantity": 1}]}]},
    )
    receiving.apply_return_event(
        ReturnEvent(event_id="ev-1", provider="default", kind="received", return_id=ret.return_id,
                    at=world.clock(), units=(ReturnedUnit(quantity=2, sku="CUP-1", line_id="K1:CUP-1"),)),
        orders=world.orders, store=world.store, workflow=world.workflow, now=world.clock,
    )  # fmt: skip
    stored = _stored(world, order_id, ret.return_id)
    assert stored.status != ReturnStatus.RECEIVED
    assert stored.refusal == {"rule": "event_units", "detail": "more units than returned for CUP-1"}


@pytest.mark.parametrize(
    ("kits", "message"),
    [
        ({"K": [{"sku": "A", "quantity": 0}]}, "kits['K'][0].quantity must be a whole number"),
        ({"K": [{"sku": "A", "quantity": 1.5}]}, "kits['K'][0].quantity must be a whole number"),
        ({"K": []}, "kits['K'] must list 1 to 50 components"),
        ({"K": [{"sku": "A", "quantity": 1, "share": "0"}]}, "kits['K'][0].share must be more than 0"),
        ({"K": [{"sku": "A", "quantity": 1, "share": 0.5}]}, "kits['K'][0].share must be a decimal string"),
        ({"K": [{"sku": "A", "quantity": 1, "share": "0.5"}, {"sku": "B", "quantity": 1, "share": "0.4"}]},
         "the shares must add up to 1"),
        ({"K": [{"sku": "A", "quantity": 1, "share": "0.5"}, {"sku": "B", "quantity": 1}]},
         "give a share for every component or for none"),
        ({"K": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}]}, "names a component twice"),
        ({"K": [{"sku": "K2", "quantity": 1}], "K2": [{"sku": "A", "quantity": 1}]},
         "no kit inside a kit (K contains K2)"),
        ({"K": [{"sku": "K", "quantity": 1}]}, "lists itself"),
        ({"K": [{"sku": "A", "quantity": 1, "price": "3"}]}, 'must be {"sku", "quantity", "share"?}'),
        (["K"], "kits must be"),
    ],
)  # fmt: skip
def test_bad_kit_definitions__are_refused_when_the_policy_is_read(kits: Any, message: str):
    with pytest.raises(InvalidInput, match=re.escape(message)):
        ReturnPolicies.from_mapping({"kits": kits})


def test_kit_definitions__are_read_per_store_with_shares_defaulting_to_quantity():
    policies = ReturnPolicies.from_mapping(
        {
            "kits": BREW,
            "stores": {"shopify:b.myshopify.com": {"kits": {"DUO": [{"sku": "X", "quantity": 2}]}}},
        }
    )
    brew = policies.default.kits["KIT-BREW"]
    assert [(c.sku, c.quantity, c.share) for c in brew] == [
        ("POT-1", 1, Decimal("0.7")),
        ("CUP-1", 2, Decimal("0.3")),
    ]
    assert list(policies.for_store("shopify", "b.myshopify.com").kits) == ["DUO"]
    assert list(policies.for_store("woocommerce", "other").kits) == ["KIT-BREW"]
