"""Personal-data retention on the local stack: the schedule, run on demand, redacts an order closed longer
ago than its channel's period (made old by the clock its history was written with) and deletes its raw
delivery, and leaves a recently closed one alone. The stack keeps the deployed periods
(90 days, Amazon 30)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from chalicelib import resources
from chalicelib.domain.delivery import Delivery
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import Order, OrderStatus, Shipment
from chalicelib.domain.outbox import sync_outbox

SCHEDULE = "redact_personal_data"


@pytest.fixture
def table(stack, monkeypatch):  # type: ignore[no-untyped-def]
    """The stack's table through the hub's own adapters (as the repository contract test binds them)."""
    from chalicelib.adapters import models
    from chalicelib.adapters.order_repository import DynamoOrderRepository
    from chalicelib.adapters.raw_archive import DynamoRawArchive

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    models.bind(resources.TABLE.name, "us-east-1", stack.aws_url)
    return DynamoOrderRepository(), DynamoRawArchive()


def closed_order(table, channel: str, closed_at: datetime) -> Order:  # type: ignore[no-untyped-def]
    """A delivered, completed order with its customer and addresses, its raw delivery archived, closed at
    `closed_at` (what the by-status index orders by)."""
    orders, archive = table
    name = f"ret-{uuid.uuid4().hex[:10]}"
    order = normalise_manual(
        {
            "store": "retention-shop",
            "external_id": name,
            "currency": "EUR",
            "placed_at": (closed_at - timedelta(days=5)).isoformat(),
            "customer": {"email": f"{name}@example.com", "name": "Grace Hopper", "phone": "+1 202 555 0143"},
            "shipping_address": {
                "name": "Grace Hopper",
                "line1": "1 Navy Yard Way",
                "city": "Arlington",
                "postal_code": "22202",
                "country": "US",
            },
            "lines": [{"title": "Teapot", "quantity": 1, "unit_price": "30.00"}],
        }
    ).model_copy(update={"channel": channel})
    delivery_id = f"d-{name}"
    order.record("received", closed_at - timedelta(days=5), delivery_id=delivery_id)
    order.shipments = [
        Shipment(
            shipment_id=f"{name}-s1",
            carrier="ups",
            tracking_number=f"1Z{name[-8:]}",
            status="delivered",
            delivered_at=closed_at,
        )
    ]
    order.payment = order.payment.model_copy(update={"amount_captured": Decimal("30.00")})
    order.status = OrderStatus.COMPLETED
    order.record("completed", closed_at)
    # Its milestones went out long ago (so the redaction's save has nothing to add to the outbox).
    sync_outbox(order, closed_at)
    order.publications = [
        p.model_copy(update={"status": "sent", "sent_at": closed_at}) for p in order.publications
    ]
    orders.save(order, expected_version=None)
    raw = b'{"customer": {"email": "' + f"{name}@example.com".encode() + b'"}}'
    archive.put(Delivery(delivery_id, channel, "retention-shop", "orders/create", closed_at, None), raw)
    return order


def test_the_schedule_redacts_an_order_closed_past_its_period_and_its_raw_delivery(stack, table):
    _, archive = table
    now = datetime.now(UTC)
    old = closed_order(table, "shopify", now - timedelta(days=100))
    amazon = closed_order(table, "amazon", now - timedelta(days=31))
    recent = closed_order(table, "shopify", now - timedelta(days=31))
    # The run the test fires is the only one (its cadence would fire it on its own every 15 minutes).
    paused = requests.post(f"{stack.aws_url}/_local/schedules/{SCHEDULE}/pause", timeout=10)
    assert paused.status_code == 200, paused.text

    answer = requests.post(f"{stack.aws_url}/_local/schedules/{SCHEDULE}", timeout=120)

    assert answer.status_code == 200 and answer.json()["error"] is None, answer.text
    for before in (old, amazon):
        after = stack.order(before.order_id)
        assert after is not None
        assert "personal_data_redacted" in [e["event"] for e in after["history"]]
        assert after["customer"] == {"email": None, "name": "[redacted]", "phone": "[redacted]"}
        assert (
            after["shipping_address"]["line1"] == "[redacted]"
            and after["shipping_address"]["country"] == "US"
        )
        assert after["totals"]["total"] == "30.00" and after["payment"]["amount_captured"] == "30.00"
        assert [s["tracking_number"] for s in after["shipments"]] == [before.shipments[0].tracking_number]
        assert after["status"] == "COMPLETED" and len(after["lines"]) == 1
        assert all(p["status"] == "sent" for p in after["publications"])  # nothing new for the channel
        assert archive.get(f"d-{before.external_id}") is None
        page = stack.api("GET", f"/status/orders/{before.order_id}")
        assert page.status_code == 200 and "[redacted]" in page.text and "Grace" not in page.text
    kept = stack.order(recent.order_id)
    assert kept is not None and kept["customer"]["name"] == "Grace Hopper"
    assert archive.get(f"d-{recent.external_id}") is not None

    again = requests.post(f"{stack.aws_url}/_local/schedules/{SCHEDULE}", timeout=120)
    assert again.status_code == 200 and again.json()["payload"]["redacted"] == 0, again.text
