"""GET /api/credit/*: a voucher's balance and movements, the liabilities; 404 for an unknown code."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.domain.manual_channel import normalise_manual
from tests.fakes_credit import InMemoryCreditLedger, issue_with
from tests.unit.api import AUTH

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def voucher(svc):
    svc.orders.credit = InMemoryCreditLedger(now=svc.now)
    svc.credit_ledger = svc.orders.credit
    order = normalise_manual(
        {
            "external_id": "origin",
            "currency": "EUR",
            "placed_at": "2026-11-23T10:00:00Z",
            "lines": [{"title": "Lamp", "quantity": 1, "unit_price": "20.00"}],
        }
    )
    svc.orders.save(order, expected_version=None)

    return issue_with(
        svc.orders, order.order_id, kind="voucher", amount="15", return_id="r-1", at=NOW, days=30
    )


def test_a_voucher_shows_its_balance_expiry_and_movements_typed_in_any_case(client, voucher):
    typed = voucher.code.lower().replace("-", "")
    response = client.http.get(f"/api/credit/vouchers/{typed}", headers=AUTH)
    assert response.status_code == 200
    body = response.json_body
    assert (body["code"], body["balance"], body["currency"], body["status"]) == (
        voucher.code,
        "15.00",
        "EUR",
        "active",
    )
    assert body["expires_at"] == "2026-12-23T12:00:00+00:00"
    assert [(m["kind"], m["amount"], m["return_id"]) for m in body["movements"]] == [
        ("issue", "15.00", "r-1")
    ]


def test_liabilities_are_the_running_totals_per_currency(client, voucher):
    response = client.http.get("/api/credit/liabilities", headers=AUTH)
    assert response.json_body == {"liabilities": {"EUR": "15.00"}}


@pytest.mark.parametrize("code", ["ABCD-EFGH-JKLM-NPQR", "not-a-code", "0000"])
def test_an_unknown_or_malformed_code_is_404_without_echoing_it(client, voucher, code):
    response = client.http.get(f"/api/credit/vouchers/{code}", headers=AUTH)
    assert response.status_code == 404 and code not in response.body.decode()


def test_the_credit_routes_need_the_operator_token(client, voucher):
    assert client.http.get("/api/credit/liabilities").status_code == 401
