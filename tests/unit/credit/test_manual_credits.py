"""POST /api/orders with `payment.credits`: kept exact in the canonical payment, or 400 and nothing queued."""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.manual_channel import normalise_manual
from tests.unit.api import AUTH

CODE = "ABCD-EFGH-JKLM-NPQR"
ORDER = {
    "external_id": "C-1",
    "currency": "EUR",
    "placed_at": "2026-11-23T10:00:00Z",
    "lines": [{"title": "Mug", "quantity": 2, "unit_price": "10.00"}],
}


def with_credits(credits, **payment):
    return {**ORDER, "payment": {"source": "voucher", **payment, "credits": credits}}


def test_credits_are_kept_in_the_canonical_payment_with_canonical_codes_and_amounts():
    order = normalise_manual(
        with_credits(
            [
                {"kind": "voucher", "code": "abcd efgh jklm npqr", "amount": "15"},
                {"kind": "store_credit", "amount": "5"},
            ]
        )
    )
    assert order.payment.credits == [
        {"kind": "voucher", "amount": "15.00", "code": CODE},
        {"kind": "store_credit", "amount": "5.00"},
    ]


def test_an_order_with_credits_is_accepted(client, svc):
    body = with_credits([{"kind": "voucher", "code": CODE, "amount": "20.00"}])
    response = client.http.post("/api/orders", headers=AUTH, body=json.dumps(body))
    assert response.status_code == 202 and len(svc.ingest_queue.sent) == 1


@pytest.mark.parametrize(
    ("credits", "payment", "fragment"),
    [
        ([{"kind": "gift", "amount": "1.00"}], {}, "kind"),
        ([{"kind": "voucher", "amount": "1.00"}], {}, "needs its code"),
        ([{"kind": "voucher", "code": "0000-OOOO-1111-IIII", "amount": "1.00"}], {}, "needs its code"),
        ([{"kind": "store_credit", "code": CODE, "amount": "1.00"}], {}, "no code"),
        ([{"kind": "voucher", "code": CODE, "amount": "1.001"}], {}, "decimals"),
        ([{"kind": "voucher", "code": CODE, "amount": "0"}], {}, "positive"),
        ([{"kind": "voucher", "code": CODE, "amount": 1.5}], {}, "amount"),
        ([{"kind": "voucher", "code": CODE, "amount": "20.01"}], {}, "more than the order owes"),
        ([{"kind": "voucher", "code": CODE, "amount": "5.00"}], {"amount_captured": "16.00"}, "more than"),
        (
            [{"kind": "store_credit", "amount": "1"}, {"kind": "store_credit", "amount": "1"}],
            {},
            "at most once",
        ),
        ([{"kind": "voucher", "code": CODE, "amount": "1"}] * 2, {}, "at most once"),
        ([{"kind": "store_credit", "amount": "0.01"}] * 11, {}, "credits"),
    ],
)
def test_malformed_credits_are_400_and_nothing_is_queued(client, svc, credits, payment, fragment):
    response = client.http.post(
        "/api/orders", headers=AUTH, body=json.dumps(with_credits(credits, **payment))
    )
    assert response.status_code == 400
    assert fragment in response.body.decode()
    assert svc.ingest_queue.sent == []
