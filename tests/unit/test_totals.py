from decimal import Decimal

from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.totals import totals_issues

BODY = {
    "external_id": "T-1",
    "currency": "USD",
    "placed_at": "2026-11-23T10:00:00Z",
    "lines": [{"title": "Mug", "quantity": 3, "unit_price": "10.00"}],
    "totals": {"shipping": "5.00", "tax": "2.40"},
}


def test_totals_issues__none_for_an_order_that_adds_up():
    assert totals_issues(normalise_manual(BODY)) == []


def test_totals_issues__names_each_disagreement():
    order = normalise_manual({**BODY, "totals": {"shipping": "5.00", "tax": "2.40", "total": "40.00"}})
    line = order.lines[0].model_copy(update={"total": Decimal("31.00")})
    order = order.model_copy(update={"lines": [line]})
    issues = totals_issues(order)
    assert any(i.startswith("line 1: total 31.00") for i in issues)
    assert any(i.startswith("subtotal 30.00 != sum of lines 31.00") for i in issues)
    assert any(i.startswith("total 40.00 != subtotal") for i in issues)
