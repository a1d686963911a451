"""Bad input over real HTTP against the local stack: refused with a 4xx, and nothing of it is ever stored."""

from __future__ import annotations

import uuid

import pytest

from chalicelib import resources
from tests.integration.test_order_path import manual_order


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(
    ("what", "overrides", "status"),
    [
        ("currency QQQ", {"currency": "QQQ"}, 400),
        ("six decimals", {"lines": [{"title": "Mug", "quantity": 1, "unit_price": "9.900001"}]}, 400),
        ("placed in 9999 with a negative offset", {"placed_at": "9999-12-31T23:00:00-05:00"}, 400),
        ("a 1.5 MB title", {"lines": [{"title": "t" * 1_500_000, "quantity": 1, "unit_price": "1.00"}]}, 400),
    ],
)
def test_post_order__refused_orders_never_reach_the_queue(stack, what, overrides, status):
    external_id = unique("BAD")
    answer = stack.api("POST", "/api/orders", json=manual_order(external_id, **overrides))
    assert answer.status_code == status, answer.text[:300]
    stack.drained(resources.INGEST_QUEUE.name)
    assert stack.api("GET", f"/api/orders/by-channel/manual/{external_id}?store=it-store").status_code == 404


def test_idempotency_key__a_5000_character_key_is_400(stack):
    external_id = unique("KEY")
    answer = stack.api(
        "POST", "/api/orders", json=manual_order(external_id), headers={"Idempotency-Key": "k" * 5000}
    )
    assert answer.status_code == 400
    assert "Idempotency-Key" in answer.text


def test_idempotency_key__another_body_under_a_used_key_is_409_and_only_the_first_order_exists(stack):
    key, first_id, second_id = unique("idem"), unique("IDEM"), unique("IDEM")
    headers = {"Idempotency-Key": key}
    first = stack.api("POST", "/api/orders", json=manual_order(first_id), headers=headers)
    again = stack.api("POST", "/api/orders", json=manual_order(first_id), headers=headers)
    other = stack.api("POST", "/api/orders", json=manual_order(second_id), headers=headers)
    assert (first.status_code, again.status_code, other.status_code) == (202, 202, 409)
    assert again.json() == first.json()
    assert "already used with another body" in other.text
    stack.order_when(first.json()["order_id"], lambda order: True)
    stack.drained(resources.INGEST_QUEUE.name)
    assert stack.api("GET", f"/api/orders/by-channel/manual/{second_id}?store=it-store").status_code == 404
