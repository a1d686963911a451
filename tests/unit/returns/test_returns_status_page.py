"""Returns on the status page through Chalice's test client (fakes behind): a return's own page and its
actions, an order's returns with the forms that open a return or refund without one."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from chalicelib.domain.order import OrderStatus
from chalicelib.domain.returns.model import ReturnLabel, ReturnStatus, find_return, put_return
from tests.unit.api import TOKEN
from tests.unit.returns.conftest import World
from tests.unit.test_status_page import FORM, _sign_in

BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def world(svc) -> World:
    """The returns world on the page's own services: its orders, workflows, 3PL store and Stripe."""
    w = World(orders=svc.orders, workflow=svc.workflow)
    svc.return_workflow = w.returns_workflow
    svc.fulfilment_store = w.store
    svc.payments = lambda: w.gateway
    return w


def _open(world: World, svc, order_id: str):
    body = {"lines": [{"line_id": "L1", "quantity": 2, "reason": "damaged"}], "resolution": "refund"}
    return world.open_return(order_id, body, now=svc.now)[0]


def _post(client, path: str, fields: dict, headers=None):
    response = client.http.post(path, headers={**(headers or BEARER), **FORM}, body=urlencode(fields))
    assert response.status_code == 303, response.body
    return parse_qs(urlparse(response.headers["Location"]).query)["msg"][0]


def _ret(svc, order_id: str, rid: str):
    ret = find_return(svc.orders.get(order_id).order, rid)
    assert ret is not None
    return ret


def test_given_an_open_return_when_its_page_is_read_then_it_shows_lines_timeline_label_and_actions(
    client, svc, world
):
    order_id = world.delivered_order()
    ret = _open(world, svc, order_id)
    label = ReturnLabel(carrier="USPS", tracking_number="RET000001", label_url="https://labels.test/1.pdf")
    stored = svc.orders.get(order_id)
    order = stored.order.model_copy(deep=True)
    put_return(order, ret.model_copy(update={"status": ReturnStatus.LABEL_SENT, "label": label}))
    svc.orders.save(order, expected_version=stored.version)

    page = client.http.get(f"/status/orders/{order_id}/returns/{ret.return_id}", headers=BEARER)
    assert page.status_code == 200
    body = page.body.decode()
    for section in ("return-lines", "return-timeline", "return-label", "return-money", "return-actions"):
        assert f'id="{section}"' in body
    assert "damaged" in body and "MUG-1" in body
    assert "return_requested" in body  # the order's history entries for this return
    assert "RET000001" in body and 'href="https://labels.test/1.pdf"' in body
    buttons = set(re.findall(r"<button[^>]*>([^<]+)</button>", body)) - {"Sign out"}
    assert buttons == {"Mark received", "Record inspection", "Reject"}
    assert body.count('name="expected_status" value="label_sent"') == 3
    assert "ana@example.com" not in body
    missing = client.http.get(f"/status/orders/{order_id}/returns/{order_id}-r9", headers=BEARER)
    assert missing.status_code == 404


def test_given_two_operators_when_both_mark_a_return_received_then_the_second_is_told_it_moved_on(
    client, svc, world
):
    order_id = world.delivered_order()
    ret = _open(world, svc, order_id)
    cookie, csrf = _sign_in(client)
    path = f"/status/orders/{order_id}/returns/{ret.return_id}/receive"
    form = {"csrf": csrf, "expected_status": "requested", "next": f"/status/orders/{order_id}"}

    first = _post(client, path, form, cookie)
    assert first == f"Return {ret.return_id}: received."
    second = _post(client, path, form, cookie)
    assert second.startswith("Refused: this return moved on: reload")
    assert _ret(svc, order_id, ret.return_id).status == ReturnStatus.RECEIVED
    events = [h.event for h in svc.orders.get(order_id).order.history]
    assert events.count("return_received") == 1

    forged = client.http.post(path, headers={**cookie, **FORM}, body=urlencode({**form, "csrf": "x"}))
    assert forged.status_code == 403


def test_given_a_received_return_when_the_inspection_is_recorded_per_line_then_each_outcome_is_kept(
    client, svc, world
):
    order_id = world.delivered_order()
    ret = _open(world, svc, order_id)
    path = f"/status/orders/{order_id}/returns/{ret.return_id}"
    _post(client, f"{path}/receive", {"expected_status": "requested"})

    message = _post(
        client,
        f"{path}/inspect",
        {
            "expected_status": "received",
            "il0": "L1",
            "iq0": "1",
            "iv0": "restock",
            "il1": "L1",
            "iq1": "1",
            "iv1": "scrap",
        },
    )
    assert message == f"Return {ret.return_id}: inspected."
    inspected = _ret(svc, order_id, ret.return_id).inspected
    assert sorted((u.line_id, u.quantity, u.outcome.value) for u in inspected) == [
        ("L1", 1, "restock"),
        ("L1", 1, "scrap"),
    ]


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"il0": "L1", "iq0": "3", "iv0": "restock"}, "more units than returned"),
        ({"il0": "L1", "iq0": "two", "iv0": "restock"}, "whole number"),
        ({"il0": "L1", "iq0": "1", "iv0": "burn"}, "outcome must be one of"),
        ({"il0": "L1", "iq0": "0", "iv0": "restock"}, "at least one unit"),
    ],
)
def test_given_a_wrong_inspection_form_then_it_is_refused_and_nothing_changes(
    client, svc, world, fields, said
):
    order_id = world.delivered_order()
    ret = _open(world, svc, order_id)
    path = f"/status/orders/{order_id}/returns/{ret.return_id}/inspect"
    message = _post(client, path, {"expected_status": "requested", **fields})
    assert message.startswith("Refused:") and said in message
    assert _ret(svc, order_id, ret.return_id).status == ReturnStatus.REQUESTED


def test_given_an_open_return_when_the_operator_rejects_it_then_the_reason_is_kept(client, svc, world):
    order_id = world.delivered_order()
    ret = _open(world, svc, order_id)
    path = f"/status/orders/{order_id}/returns/{ret.return_id}/reject"
    message = _post(client, path, {"expected_status": "requested", "reason": "<b>worn</b> and washed"})
    assert message == f"Return {ret.return_id}: rejected."
    rejected = _ret(svc, order_id, ret.return_id)
    assert rejected.refusal == {"rule": "operator", "detail": "<b>worn</b> and washed"}
    page = client.http.get(f"/status/orders/{order_id}/returns/{ret.return_id}", headers=BEARER).body.decode()
    assert "&lt;b&gt;worn&lt;/b&gt;" in page and "<b>worn</b>" not in page
    assert "Nothing to do: the return is rejected." in page


def test_given_a_delivered_order_when_a_return_is_opened_from_its_page_then_it_is_one_return(
    client, svc, world
):
    order_id = world.delivered_order()
    page = client.http.get(f"/status/orders/{order_id}", headers=BEARER).body.decode()
    assert 'id="open-return"' in page and 'id="refund"' in page
    key = re.search(r'name="key" value="([^"]+-return)"', page)
    assert key is not None
    form = {
        "key": key.group(1),
        "rl0": "L1",
        "rq0": "1",
        "rv0": "size",
        "rl1": "L2",
        "rq1": "0",
        "rv1": "other",
    }
    form["resolution"] = "store_credit"

    first = _post(client, f"/status/orders/{order_id}/returns", form)
    again = _post(client, f"/status/orders/{order_id}/returns", form)  # a double submit
    assert first == f"Return {order_id}-r1 opened." and again == f"Return {order_id}-r1 already opened."
    ret = _ret(svc, order_id, f"{order_id}-r1")
    assert ret.source == "status_page" and ret.resolution.value == "store_credit"
    assert [(ln.line_id, ln.quantity, ln.reason) for ln in ret.lines] == [("L1", 1, "size")]
    # The workflow's start is asked again (named after the return, so it is the same execution).
    assert {payload["return_id"] for _, payload in world.returns_workflow.started} == {ret.return_id}
    listed = client.http.get(f"/status/orders/{order_id}", headers=BEARER).body.decode()
    assert f'href="/status/orders/{order_id}/returns/{ret.return_id}"' in listed


def test_given_an_order_past_the_window_when_a_return_is_opened_then_the_page_names_the_rule(
    client, svc, world
):
    order_id = world.delivered_order(delivered_at=svc.now() - timedelta(days=45))
    form = {"rl0": "L1", "rq0": "1", "rv0": "size", "resolution": "refund"}
    message = _post(client, f"/status/orders/{order_id}/returns", form)
    assert message.startswith("Refused by the returns policy: outside_window:")
    assert not [r for r in svc.orders.get(order_id).order.returns if "return_id" in r]
    empty = _post(
        client, f"/status/orders/{order_id}/returns", {"rl0": "L1", "rq0": "0", "resolution": "refund"}
    )
    assert empty == "Refused: choose at least one unit to return"


def test_given_a_paid_order_when_refunded_without_a_return_then_stripe_refunds_once_and_too_much_is_refused(
    client, svc, world
):
    order_id = world.delivered_order()
    form = {"key": "k-1", "amount": "12.50", "reason": "late delivery"}
    message = _post(client, f"/status/orders/{order_id}/refunds", form)
    assert message == "Refund rf1 of 12.50: issued."
    assert _post(client, f"/status/orders/{order_id}/refunds", form).endswith("(already).")
    assert [r.amount for r in world.gateway.refunds] == [1250]
    assert svc.orders.get(order_id).order.payment.amount_refunded == Decimal("12.50")

    too_much = _post(client, f"/status/orders/{order_id}/refunds", {"amount": "500.00", "reason": "x"})
    assert too_much.startswith("Refused: refund_exceeds_captured:")
    bad = _post(client, f"/status/orders/{order_id}/refunds", {"amount": "1,5", "reason": "x"})
    assert bad.startswith("Refused: amount")


def test_an_order_not_delivered_offers_no_return_form(client, svc, world):
    order_id = world.delivered_order()
    stored = svc.orders.get(order_id)
    order = stored.order.model_copy(update={"status": OrderStatus.SHIPPED})
    svc.orders.save(order, expected_version=stored.version)
    page = client.http.get(f"/status/orders/{order_id}", headers=BEARER).body.decode()
    assert 'id="open-return"' not in page
    assert "A return can be opened once the order is delivered (SHIPPED)" in page
