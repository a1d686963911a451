"""Bad-input catalogue (issue #15): each input → its answer, and nothing stored, queued or kept."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.domain.delivery import Delivery
from chalicelib.domain.errors import InvalidOrder, MalformedDelivery
from chalicelib.domain.ingest import ingest, normalise_manual_event
from tests.fakes import InMemoryOrderRepository, RecordingWorkflow
from tests.unit.api import AUTH
from tests.unit.test_webhook_pipeline import SHOP, WOO, connect, counts, shopify, woocommerce

CONNECTED = {"shopify": SHOP, "woocommerce": WOO}
__all__ = ["counts"]  # the pytest fixture, used by name

ORDER: dict[str, Any] = {
    "external_id": "CAT-1",
    "currency": "EUR",
    "placed_at": "2026-11-23T10:00:00Z",
    "customer": {"email": "buyer@example.com", "name": "Ada"},
    "shipping_address": {"line1": "1 Rue", "city": "Paris", "country": "FR"},
    "lines": [{"title": "Mug", "quantity": 2, "unit_price": "9.90"}],
}


def with_(**changes: Any) -> dict[str, Any]:
    """ORDER with dotted paths replaced: `with_(**{"lines.0.unit_price": "1"})`."""
    body = copy.deepcopy(ORDER)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return body


def nothing_kept(svc) -> bool:
    stored = svc.orders.list_orders(status=None, channel=None, limit=10, cursor=None).orders
    return not stored and not svc.ingest_queue.sent and not svc.raw_archive.items


BIG_LINES = [{"title": "x" * 1000, "quantity": 1, "unit_price": "1.00"} for _ in range(300)]

# (what, body, status, a fragment of the answer)
API_CATALOGUE = [
    ("six decimals in EUR", with_(**{"lines.0.unit_price": "9.900001"}), 400, "more decimals"),
    ("a decimal in JPY", with_(currency="JPY", **{"lines.0.unit_price": "100.5"}), 400, "more decimals"),
    ("four decimals in KWD", with_(currency="KWD", **{"lines.0.unit_price": "1.2345"}), 400, "more decimals"),
    ("currency XXX", with_(currency="XXX"), 400, "ISO 4217"),
    ("currency QQQ", with_(currency="QQQ"), 400, "ISO 4217"),
    ("country Narnia", with_(**{"shipping_address.country": "Narnia"}), 400, "ISO 3166"),
    ("negative unit price", with_(**{"lines.0.unit_price": "-1.00"}), 400, "negative"),
    ("negative total", with_(totals={"total": "-5.00"}), 400, "negative"),
    ("negative discount raising the total", with_(totals={"discount": "-5.00"}), 400, "negative"),
    ("line discount above its price", with_(**{"lines.0.discount": "50.00"}), 400, "discount"),
    (
        "negative captured amount",
        with_(payment={"source": "cash", "amount_captured": "-1.00"}),
        400,
        "negative",
    ),
    (
        "captured above the total",
        with_(payment={"source": "cash", "amount_captured": "100.00"}),
        400,
        "more than the total",
    ),
    (
        "captured above both the given total and its parts",
        with_(totals={"total": "10.00"}, payment={"source": "cash", "amount_captured": "25.00"}),
        400,
        "more than the total",
    ),
    ("no lines", with_(lines=[]), 400, "lines"),
    ("quantity 10^400", with_(**{"lines.0.quantity": 10**400}), 400, "longer than 40 characters"),
    ("quantity 100001", with_(**{"lines.0.quantity": 100_001}), 400, "quantity"),
    ("quantity -1", with_(**{"lines.0.quantity": -1}), 400, "quantity"),
    ("quantity 0", with_(**{"lines.0.quantity": 0}), 400, "quantity"),
    ("quantity 1.5", with_(**{"lines.0.quantity": 1.5}), 400, "quantity"),
    ("a 1.5 MB title", with_(**{"lines.0.title": "t" * 1_500_000}), 400, "title"),
    ("a 300-character e-mail", with_(**{"customer.email": "a" * 290 + "@example.com"}), 400, "email"),
    ("an object as e-mail", with_(**{"customer.email": {"$ne": ""}}), 400, "email"),
    ("placed in year 1", with_(placed_at="0001-01-01T00:00:00Z"), 400, "placed_at"),
    ("placed in 2099", with_(placed_at="2099-01-01T00:00:00Z"), 400, "placed_at"),
    ("9999 with a negative offset", with_(placed_at="9999-12-31T23:00:00-05:00"), 400, "range"),
    ("external id with /", with_(external_id="a/b"), 400, "path separator"),
    ("external id ../", with_(external_id="../etc"), 400, "path separator"),
    ("external id with a backslash", with_(external_id="a\\b"), 400, "path separator"),
    ("external id with NUL", with_(external_id="a\x00b"), 400, "control"),
    ("external id with CR/LF", with_(external_id="a\r\nb"), 400, "control"),
    ("external id with U+202E", with_(external_id="abc\u202egpj.exe"), 400, "bidirectional"),
    ("external id blank", with_(external_id="   "), 400, "blank"),
    ("external id of 10 KB", with_(external_id="i" * 10_000), 400, "at most 200 characters"),
    ("line id with /", with_(**{"lines.0.line_id": "1/2"}), 400, "path separator"),
    ("store with /", with_(store="a/b"), 400, "path separator"),
    ("unit price NaN", with_(**{"lines.0.unit_price": "NaN"}), 400, "not an amount"),
    ("unit price Infinity", with_(**{"lines.0.unit_price": "Infinity"}), 400, "not an amount"),
    ("unit price 1e400", with_(**{"lines.0.unit_price": "1e400"}), 400, "out of range"),
    ("unit price 10^400", with_(**{"lines.0.unit_price": str(10**400)}), 400, "not an amount"),
    ("unit price a JSON 1e400", with_(**{"lines.0.unit_price": float("inf")}), 400, "not a JSON number"),
    ("an order too big to store", with_(lines=BIG_LINES), 413, "too large"),
]


@pytest.mark.parametrize("case", API_CATALOGUE, ids=[c[0] for c in API_CATALOGUE])
def test_post_order__bad_input_is_refused_and_nothing_is_kept(client, svc, case):
    _, body, status, fragment = case
    answer = client.http.post("/api/orders", headers=AUTH, body=json.dumps(body))
    assert (answer.status_code, fragment in answer.body.decode()) == (status, True), answer.body[:300]
    assert nothing_kept(svc)


@pytest.mark.parametrize(
    "body",
    [
        ORDER,
        with_(currency="JPY", **{"lines.0.unit_price": "100"}),
        with_(currency="JPY", **{"lines.0.unit_price": "100.00"}),  # trailing zeros are exact
        with_(currency="KWD", **{"lines.0.unit_price": "1.234"}),
        with_(payment={"source": "cash", "amount_captured": "19.80"}),
        # A given total below its parts is kept and flagged; what the parts add up to may be captured.
        with_(totals={"total": "10.00"}, payment={"source": "cash", "amount_captured": "19.80"}),
        with_(**{"shipping_address.country": "de"}),
    ],
)
def test_post_order__the_valid_neighbours_are_accepted(client, svc, body):
    assert client.http.post("/api/orders", headers=AUTH, body=json.dumps(body)).status_code == 202
    assert len(svc.ingest_queue.sent) == 1


# --- Idempotency-Key ----------------------------------------------------------------------------------


def test_idempotency_key__another_body_under_the_same_key_is_409_and_not_queued(client, svc):
    headers = {**AUTH, "Idempotency-Key": "key-1"}
    first = client.http.post("/api/orders", headers=headers, body=json.dumps(ORDER))
    other = client.http.post("/api/orders", headers=headers, body=json.dumps(with_(external_id="CAT-2")))
    assert (first.status_code, other.status_code) == (202, 409)
    assert "already used with another body" in other.body.decode()
    assert [m["body"]["external_id"] for m in svc.ingest_queue.sent] == ["CAT-1"]


def test_idempotency_key__the_same_body_again_is_the_same_answer(client, svc):
    headers = {**AUTH, "Idempotency-Key": "key-2"}
    first = client.http.post("/api/orders", headers=headers, body=json.dumps(ORDER))
    # The same JSON, spaced and ordered differently.
    again = client.http.post("/api/orders", headers=headers, body=json.dumps(ORDER, indent=2, sort_keys=True))
    assert (first.status_code, again.status_code) == (202, 202)
    assert json.loads(first.body) == json.loads(again.body)
    assert {m["deduplication_id"] for m in svc.ingest_queue.sent} == {
        svc.ingest_queue.sent[0]["deduplication_id"]
    }


@pytest.mark.parametrize(
    "key", ["k" * 256, "k" * 5000, "a\x01b", "tab\there", "\u00e9t\u00e9", "   "], ids=lambda k: repr(k[:12])
)
def test_idempotency_key__too_long_or_with_control_characters_is_400(client, svc, key):
    answer = client.http.post("/api/orders", headers={**AUTH, "Idempotency-Key": key}, body=json.dumps(ORDER))
    assert answer.status_code == 400
    assert "Idempotency-Key" in answer.body.decode()
    assert nothing_kept(svc)


def test_idempotency_key__255_printable_characters_are_a_key(client, svc):
    answer = client.http.post(
        "/api/orders", headers={**AUTH, "Idempotency-Key": "k" * 255}, body=json.dumps(ORDER)
    )
    assert answer.status_code == 202


# --- ingestion: the same rules again, permanent ---------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        with_(currency="QQQ"),
        with_(**{"shipping_address.country": "Narnia"}),
        with_(external_id="../x"),
        with_(placed_at="1999-12-31T23:59:59Z"),
        with_(payment={"source": "cash", "amount_captured": "100.00"}),
    ],
)
def test_ingest__an_invalid_snapshot_is_a_permanent_invalid_order_and_is_not_stored(payload):
    orders, workflow = InMemoryOrderRepository(), RecordingWorkflow()
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    delivery = Delivery("manual:x", "manual", "default", "orders/create", now, payload)
    with pytest.raises(InvalidOrder) as raised:
        ingest(
            delivery,
            normalisers={"manual": normalise_manual_event},
            orders=orders,
            workflow=workflow,
            now=lambda: now,
        )
    assert isinstance(raised.value, MalformedDelivery)  # never retried into storage
    assert orders.list_orders(status=None, channel=None, limit=10, cursor=None).orders == []
    assert not orders.has_delivery("manual:x") and workflow.started == []


# --- webhooks: what Shopify's reader can tell at the edge -----------------------------------------------

SHOPIFY_ORDER: dict[str, Any] = {
    "id": 42,
    "currency": "USD",
    "total_price": "10.00",
    "created_at": "2026-11-23T10:00:00-05:00",
    "updated_at": "2026-11-23T10:00:00-05:00",
    "line_items": [{"id": 1, "title": "Mug", "quantity": 1, "price": "10.00"}],
}


def shopify_with(**changes: Any) -> bytes:
    body = copy.deepcopy(SHOPIFY_ORDER)
    line = changes.pop("line", None)
    body.update(changes)
    if line:
        body["line_items"][0].update(line)
    return json.dumps(body).encode()


SHOPIFY_CATALOGUE = [
    ("total_price NaN", shopify_with(total_price=float("nan")), "not a JSON number"),
    ("total_price a 45-digit number", shopify_with(total_price=10**44), "longer than 40 characters"),
    ("total_price Infinity", shopify_with(total_price=float("inf")), "not a JSON number"),
    ("a 500 KB title", shopify_with(line={"title": "t" * 500_000}), "title"),
    ("empty line_items with money", shopify_with(line_items=[]), "at least one line"),
    ("id NaN", shopify_with(id=float("nan")), "not a JSON number"),
    ("id Infinity", shopify_with(id=float("inf")), "not a JSON number"),
    ("line id 1e400", shopify_with(line={"id": float("inf")}), "not a JSON number"),
    ("line id with /", shopify_with(line={"id": "1/2"}), "path separator"),
    ("quantity 10^400", shopify_with(line={"quantity": 10**400}), "longer than 40 characters"),
    ("quantity -1", shopify_with(line={"quantity": -1}), "quantity"),
    ("line price NaN", shopify_with(line={"price": "NaN"}), "price"),
]


@pytest.mark.parametrize(
    ("what", "body", "fragment"), SHOPIFY_CATALOGUE, ids=[c[0] for c in SHOPIFY_CATALOGUE]
)
def test_shopify_webhook__bad_orders_are_400_and_nothing_is_queued(client, svc, what, body, fragment):
    connect(client, "shopify")
    status, answer = shopify(client, body)
    assert (status, fragment in answer["message"]) == (400, True), answer
    assert svc.ingest_queue.sent == [] and not svc.raw_archive.items


def test_shopify_webhook__a_good_order_is_still_accepted(client, svc):
    connect(client, "shopify")
    assert shopify(client, json.dumps(SHOPIFY_ORDER).encode()) == (200, {"message": "accepted"})


@pytest.mark.parametrize(
    "body",
    [
        shopify_with(currency="XXX"),
        shopify_with(created_at="9999-12-31T23:00:00-05:00"),
        shopify_with(customer={"email": {"nested": True}}),
        shopify_with(shipping_address={"address1": "1 Road", "country_code": "Narnia"}),
        shopify_with(line_items=[]),
    ],
)
def test_shopify_ingest__an_invalid_order_that_reaches_ingestion_is_refused_permanently(svc, body):
    from chalicelib.composition import channel_normalisers

    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    delivery = Delivery(
        "shopify:s:e:orders/create", "shopify", "s.myshopify.com", "orders/create", now, json.loads(body)
    )
    with pytest.raises(InvalidOrder):
        ingest(
            delivery,
            normalisers=channel_normalisers(),
            orders=svc.orders,
            workflow=svc.workflow,
            now=lambda: now,
        )
    assert nothing_kept(svc)


# --- the queue message fits SQS ------------------------------------------------------------------------


def test_enqueue__a_body_that_escapes_past_sqs_limit_travels_by_claim_check(client, svc):
    # 150 KB of JSON, but each non-ASCII character is six in the queue message: over 256 KiB inline.
    body = with_(
        **{
            "customer.name": "\u00e9" * 200,
            "lines": [{"title": "\u4e2d" * 900, "quantity": 1, "unit_price": "1.00"}] * 50,
        }
    )
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert client.http.post("/api/orders", headers=AUTH, body=raw).status_code == 202
    [sent] = svc.ingest_queue.sent
    assert len(json.dumps(sent["body"])) <= 256 * 1024
    assert "raw" not in sent["body"] and sent["body"]["payload"] is None
    assert len(svc.raw_archive.items) == 1


# --- webhooks: a whole order on an order topic is normalised and validated at the edge ----------------

WOO_ORDER: dict[str, Any] = {
    "id": 5181,
    "status": "processing",
    "currency": "EUR",
    "date_created_gmt": "2026-11-23T10:00:00",
    "date_modified_gmt": "2026-11-23T10:00:00",
    "total": "19.90",
    "billing": {"first_name": "Ada", "last_name": "L", "email": "ada@example.com", "country": "FR"},
    "shipping": {"first_name": "Ada", "address_1": "1 Rue", "city": "Paris", "country": "FR"},
    "payment_method": "ppcp-gateway",
    "date_paid_gmt": "2026-11-23T10:00:00",
    "line_items": [{"id": 851, "name": "Mug", "quantity": 1, "subtotal": "19.90", "total": "19.90"}],
}


def woo_with(**changes: Any) -> bytes:
    body = copy.deepcopy(WOO_ORDER)
    for key, value in changes.items():
        if key == "shipping":
            body["shipping"].update(value)
        else:
            body[key] = value
    return json.dumps(body).encode()


# (what, sender, topic, body, a fragment of the 400's message)
EDGE_ORDER_CATALOGUE = [
    ("woo total 'Infinity'", "woocommerce", "order.created", woo_with(total="Infinity"), "not an amount"),
    ("woo total 'NaN'", "woocommerce", "order.created", woo_with(total="NaN"), "not an amount"),
    ("woo currency XXX", "woocommerce", "order.created", woo_with(currency="XXX"), "XXX"),
    (
        "woo country Narnia",
        "woocommerce",
        "order.updated",
        woo_with(shipping={"country": "Narnia"}),
        "ISO 3166",
    ),
    ("woo no lines", "woocommerce", "order.created", woo_with(line_items=[], total="0.00"), "line"),
    ("woo no currency", "woocommerce", "order.updated", woo_with(currency=""), "currency"),
    ("shopify currency QQQ", "shopify", "orders/create", shopify_with(currency="QQQ"), "QQQ"),
    ("shopify currency XXX", "shopify", "orders/updated", shopify_with(currency="XXX"), "XXX"),
    (
        "shopify country Narnia",
        "shopify",
        "orders/paid",
        shopify_with(shipping_address={"address1": "1 Road", "country_code": "Narnia"}),
        "ISO 3166",
    ),
    (
        "shopify placed in 9999",
        "shopify",
        "orders/create",
        shopify_with(created_at="9999-12-31T23:00:00-05:00"),
        "timestamp out of range",
    ),
    (
        "shopify e-mail an object",
        "shopify",
        "orders/create",
        shopify_with(customer={"email": {"a": 1}}),
        "text expected",
    ),
    ("shopify no lines", "shopify", "orders/cancelled", shopify_with(line_items=[]), "line"),
    (
        "shopify a bare id",
        "shopify",
        "orders/create",
        json.dumps({"id": 42, "line_items": []}).encode(),
        "currency",
    ),
]


@pytest.mark.parametrize("case", EDGE_ORDER_CATALOGUE, ids=[c[0] for c in EDGE_ORDER_CATALOGUE])
def test_webhook_order_topics__what_ingestion_would_refuse_is_400_and_nothing_is_kept(
    client, svc, counts, case
):
    _, sender, topic, body, fragment = case
    connect(client, sender)
    send = shopify if sender == "shopify" else woocommerce
    status, answer = send(client, body, topic)
    assert (status, fragment.lower() in answer["message"].lower()) == (400, True), answer
    assert nothing_kept(svc) and svc.workflow.started == []
    assert ("WebhookRejected", sender, CONNECTED[sender]) in counts
    assert not any(c[0] == "WebhookAccepted" for c in counts)


@pytest.mark.parametrize(
    ("sender", "topic", "body"),
    [
        ("shopify", "orders/create", json.dumps(SHOPIFY_ORDER).encode()),
        ("woocommerce", "order.created", json.dumps(WOO_ORDER).encode()),
        # Not orders: a refund and a bare deletion are left to ingestion, as before.
        ("shopify", "refunds/create", json.dumps({"id": 7, "order_id": 42}).encode()),
        ("woocommerce", "order.deleted", json.dumps({"id": 5181}).encode()),
    ],
)
def test_webhook_order_topics__valid_orders_and_non_order_topics_are_still_accepted(
    client, svc, sender, topic, body
):
    connect(client, sender)
    send = shopify if sender == "shopify" else woocommerce
    assert send(client, body, topic) == (200, {"message": "accepted"})
    assert len(svc.ingest_queue.sent) == 1
