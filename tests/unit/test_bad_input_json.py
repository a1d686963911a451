"""Bad-input catalogue, JSON at every door (issue #15): input → answer, and nothing stored, nothing queued.

Every body below is refused by the one JSON reader (`domain/json_reader.py`) with a 4xx that names the
limit, on each of the five webhooks (correctly signed, so only the body is at fault) and on every API route
that reads JSON. Before the reader, the deep ones were a RecursionError (500) and the rest were accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from chalicelib.domain.json_reader import MAX_DEPTH, JsonRefused, read_json
from tests.unit.api import AUTH
from tests.unit.test_webhook_pipeline import CONNECTIONS, SECRET, SHOP, WOO, base64_hmac

DEEP = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1)

# (name, body, expected status, a fragment of the answer's message)
CATALOGUE = [
    ("nested 10,000 deep", DEEP, 400, f"nested deeper than {MAX_DEPTH}"),
    ("objects nested 65 deep", DEEP_OBJECT, 400, f"nested deeper than {MAX_DEPTH}"),
    ("NaN", b'{"id": 1, "total_price": NaN}', 400, "NaN is not a JSON number"),
    ("Infinity", b'{"id": 1, "total": Infinity}', 400, "Infinity is not a JSON number"),
    ("-Infinity", b'{"id": 1, "total": -Infinity}', 400, "-Infinity is not a JSON number"),
    ("1e400", b'{"id": 1, "unit_price": 1e400}', 400, "1e400 is out of range"),
    ("45-digit number", b'{"id": 1, "total_price": ' + b"9" * 45 + b"}", 400, "longer than 40"),
    ("5,000-digit number", b'{"id": ' + b"1" * 5000 + b"}", 400, "longer than 40"),
    ("leading UTF-8 BOM", b'\xef\xbb\xbf{"id": 1}', 400, "byte order mark"),
    ("invalid UTF-8", b'{"id": 1, "name": "\xff\xfe"}', 400, "not UTF-8"),
    ("lone surrogate", b'{"id": 1, "name": "\\ud800"}', 400, "lone UTF-16 surrogate"),
]
WEBHOOKS = ["shopify", "woocommerce", "stripe", "3pl", "easypost"]
STRIPE_SECRET = "whsec_unit_secret"
STRIPE = {"channel": "stripe", "secret_key": "sk_test_unit", "webhook_secret": STRIPE_SECRET}


def nothing_stored_nothing_queued(svc) -> None:
    assert svc.ingest_queue.sent == []
    assert svc.raw_archive.items == {}
    assert svc.orders.list_orders(status=None, channel=None, limit=100, cursor=None).orders == []


def connect_all(client) -> None:
    for body in [*(CONNECTIONS[c] for c in ("shopify", "woocommerce", "3pl", "easypost")), STRIPE]:
        assert client.http.post("/api/connections", headers=AUTH, body=json.dumps(body)).status_code == 201


def signed(sender: str, body: bytes, at: int) -> tuple[str, dict[str, str]]:
    """The route and headers of a correctly signed delivery of exactly `body`."""
    stamped = hmac.new(SECRET.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    json_type = {"Content-Type": "application/json"}
    if sender == "shopify":
        return "/webhooks/shopify", {
            **json_type,
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": base64_hmac(body),
            "X-Shopify-Shop-Domain": SHOP,
            "X-Shopify-Event-Id": "evt-1",
        }
    if sender == "woocommerce":
        return "/webhooks/woocommerce", {
            **json_type,
            "X-WC-Webhook-Source": WOO,
            "X-WC-Webhook-Topic": "order.created",
            "X-WC-Webhook-Signature": base64_hmac(body),
            "X-WC-Webhook-Delivery-ID": "d-1",
        }
    if sender == "stripe":
        stamped = hmac.new(STRIPE_SECRET.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
        return "/webhooks/stripe", {**json_type, "Stripe-Signature": f"t={at},v1={stamped}"}
    if sender == "3pl":
        return "/webhooks/3pl/acme", {**json_type, "X-ThreePL-Signature": f"t={at},v1={stamped}"}
    hexed = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return "/webhooks/carriers/easypost", {**json_type, "X-Hmac-Signature": f"hmac-sha256-hex={hexed}"}


@pytest.mark.parametrize("sender", WEBHOOKS)
@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_webhooks__json_beyond_a_limit_is_refused_nothing_queued(client, svc, sender, case):
    _, body, status, fragment = case
    connect_all(client)
    path, headers = signed(sender, body, int(svc.now().timestamp()))
    answer = client.http.post(path, headers=headers, body=body)
    assert (answer.status_code, fragment in json.loads(answer.body)["message"]) == (status, True)
    nothing_stored_nothing_queued(svc)


API_ROUTES = [
    "/api/orders",
    "/api/connections",
    "/api/orders/ord_x/review",
    "/api/orders/ord_x/cancel",
    "/api/orders/ord_x/payment/retry",
    "/api/deliveries/replay",
]


@pytest.mark.parametrize("path", API_ROUTES)
@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_api_routes__json_beyond_a_limit_is_refused_nothing_stored(client, svc, path, case):
    _, body, status, fragment = case
    answer = client.http.post(path, headers=AUTH, body=body)
    assert (answer.status_code, fragment in json.loads(answer.body)["Message"]) == (status, True)
    nothing_stored_nothing_queued(svc)
    assert svc.connections.items == {} and svc.secrets.values == {}
    assert svc.workflow.started == []


@pytest.mark.parametrize("path", API_ROUTES)
def test_api_routes__a_body_over_2_mib_is_413_before_parsing(client, svc, path):
    body = b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    answer = client.http.post(path, headers=AUTH, body=body)
    assert answer.status_code == 413 and "body over 2048 KiB" in json.loads(answer.body)["Message"]
    nothing_stored_nothing_queued(svc)


def test_reader__keeps_what_is_json_within_the_limits():
    nested = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert read_json(nested) is not None
    assert read_json(b'{"a": "[[[[ {{{{", "n": 1234567890123456789012345678901234567890}')["n"] == int(
        "1234567890" * 4
    )
    assert read_json(b'{"s": "\\ud83d\\ude00", "x": 0.1}') == {"s": "\U0001f600", "x": 0.1}
    with pytest.raises(JsonRefused, match="not JSON"):
        read_json(b"{not json")
