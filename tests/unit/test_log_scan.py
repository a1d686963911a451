"""The integration run's log scan (tests/log_scan.py): each kind it must find, and the lines it must pass."""

from __future__ import annotations

import pytest

from tests.log_scan import fixture_personal_data, luhn, scan, scan_line

SECRETS = {"integration-token": "operator token"}
PERSONAL = fixture_personal_data(["1 Harbour St"])

LEAKS = [
    ("operator token", "try: curl -H 'Authorization: Bearer integration-token'"),
    ("Stripe key", '{"api_key": "sk_test_51Habc123"}'),
    ("Stripe key", "secret whsec_abcdef1234"),
    ("LWA token", "access_token=Atza|IwEBIJk2f"),
    ("LWA token", '"refresh_token": "Atzr|it-refresh"'),
    ("card number", "card 4242 4242 4242 4242 declined"),
    ("card number", '"number": "5555555555554444"'),
    ("card number", "amex 378282246310005"),
    ("e-mail address", "customer jörg.b@example.com"),
    ("e-mail address", "0f3a1b2c3d4e5f@marketplace.amazon.com"),
    ("phone number", "call +44 20 7946 0018"),
    ("phone number", "phone +12125550143"),
    ("phone number", "(415) 555-0142"),
    ("street address", "ships to 221B Baker Street, London"),
    ("street address", "line1=1 Harbour St"),
]


@pytest.mark.parametrize(("kind", "line"), LEAKS)
def test_each_kind_is_found(kind, line):
    assert kind in scan_line(line, SECRETS, PERSONAL)


CLEAN = [
    '{"level":"INFO","message":"delivery applied","timestamp":"2026-12-02 15:54:42,565+0000"}',
    "order ord_h5tt3tpii7wc6enhnntfbbxu shopify:it-shop.myshopify.com:1234567890123:orders/create",
    "epoch 1796227053483 and Shopify order id 5678901234567",  # not a card: no brand prefix or no Luhn
    "at 2026-11-23T10:00:00+00:00 for 19.90 EUR, pi_3Nabc, pm_card_visa",
    "version 4.3.0.1 and 16-digit trace 4000000000000001",  # fails Luhn
]


@pytest.mark.parametrize("line", CLEAN)
def test_what_a_log_line_may_hold_is_not_a_finding(line):
    assert scan_line(line, SECRETS, PERSONAL) == []


def test_a_finding_names_the_line_and_the_kind_never_the_value(tmp_path):
    log = tmp_path / "stack.log"
    log.write_text("fine\nBearer integration-token\nfine\nmail a@b.example\n", encoding="utf-8")
    findings = [str(f) for f in scan(log, SECRETS, PERSONAL, name="stack.log")]
    assert findings == ["stack.log:2: operator token", "stack.log:4: e-mail address"]
    assert not any("integration-token" in f or "a@b" in f for f in findings)


def test_luhn_and_the_personal_data_it_knows():
    assert luhn("4242424242424242") and not luhn("4242424242424241")
    kinds = set(PERSONAL.values())
    assert kinds == {"street address", "phone number"} and len(PERSONAL) >= 20


def test_an_amazon_order_id_and_a_vendors_support_address__are_not_findings():
    from tests.log_scan import scan_line

    assert scan_line('"GET /orders/v0/orders/359-7935169-6829332/orderItems HTTP/1.1" 200 -', {}, {}) == []
    assert scan_line("let us know at support@stripe.com.", {}, {}) == []
    assert scan_line("card 4242 4242 4242 4242 and ana@example.com", {}, {}) == [
        "card number",
        "e-mail address",
    ]
