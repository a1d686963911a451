"""The HTTP API through Chalice's own test client, with fakes behind the composition root."""

import json

import pytest

from chalicelib.entrypoints.auth import is_authorised
from tests.unit.api import AUTH

ORDER = {
    "external_id": "H-1",
    "currency": "EUR",
    "placed_at": "2026-11-23T10:00:00Z",
    "lines": [{"title": "Mug", "quantity": 1, "unit_price": "9.90"}],
}


def test_is_authorised__bearer_only_and_exact():
    assert is_authorised("Bearer abc", "abc")
    assert is_authorised("bearer abc", "abc")
    assert not is_authorised("Bearer abd", "abc")
    assert not is_authorised("Basic abc", "abc")
    assert not is_authorised(None, "abc")
    assert not is_authorised("Bearer abc", None)  # no token configured: nobody gets in


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_api__rejects_missing_or_wrong_operator_token(client, headers):
    response = client.http.get("/api/orders", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_post_order__enqueues_one_delivery_and_answers_202(client, svc):
    response = client.http.post("/api/orders", headers=AUTH, body=json.dumps(ORDER))
    assert response.status_code == 202
    body = json.loads(response.body)
    [sent] = svc.ingest_queue.sent
    assert sent["body"]["delivery_id"] == body["delivery_id"]
    assert sent["group_id"] == "manual:default:H-1"
    assert len(sent["deduplication_id"]) == 64


def test_post_order__idempotency_key_names_the_delivery(client, svc):
    headers = {**AUTH, "Idempotency-Key": "abc-1"}
    response = client.http.post("/api/orders", headers=headers, body=json.dumps(ORDER))
    assert json.loads(response.body)["delivery_id"] == "manual:abc-1"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{not json", "BadRequest"),
        ("[]", "JSON object"),
        (json.dumps({**ORDER, "lines": []}), "lines"),
    ],
)
def test_post_order__malformed_bodies_are_400_and_nothing_is_queued(client, svc, body, fragment):
    response = client.http.post("/api/orders", headers=AUTH, body=body)
    assert response.status_code == 400
    assert fragment in response.body.decode()
    assert svc.ingest_queue.sent == []


def test_get_order__404_for_unknown_and_the_canonical_order_otherwise(client, svc):
    assert client.http.get("/api/orders/ord_nope", headers=AUTH).status_code == 404
    from chalicelib.domain.manual_channel import normalise_manual

    order = normalise_manual(ORDER)
    svc.orders.save(order, expected_version=None)
    response = client.http.get(f"/api/orders/{order.order_id}", headers=AUTH)
    assert json.loads(response.body)["totals"]["total"] == "9.90"
    by_channel = client.http.get("/api/orders/by-channel/manual/H-1", headers=AUTH)
    assert json.loads(by_channel.body)["order_id"] == order.order_id


def test_list_orders__validates_its_parameters(client):
    assert client.http.get("/api/orders?status=nope", headers=AUTH).status_code == 400
    assert client.http.get("/api/orders?limit=x", headers=AUTH).status_code == 400
    assert client.http.get("/api/orders?cursor=%%%", headers=AUTH).status_code == 400


def test_list_orders__pages_newest_first(client, svc):
    from chalicelib.domain.manual_channel import normalise_manual

    for day in (1, 2, 3):
        svc.orders.save(
            normalise_manual({**ORDER, "external_id": f"P-{day}", "placed_at": f"2026-11-0{day}T00:00:00Z"}),
            expected_version=None,
        )
    first = json.loads(client.http.get("/api/orders?limit=2", headers=AUTH).body)
    assert [o["external_id"] for o in first["orders"]] == ["P-3", "P-2"]
    second = json.loads(
        client.http.get(f"/api/orders?limit=2&cursor={first['next_cursor']}", headers=AUTH).body
    )
    assert [o["external_id"] for o in second["orders"]] == ["P-1"]
    assert second["next_cursor"] is None
