"""Personal-data retention: closed orders redacted on schedule, per channel, bounded, idempotent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from chalicelib.domain.delivery import Delivery
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import Order, OrderStatus, Shipment
from chalicelib.domain.retention import (
    PERSONAL_DATA_REDACTED,
    REDACTED,
    RetentionPolicy,
    keep_redacted,
    redact_due,
)
from chalicelib.entrypoints.status_html import order_page
from tests.fakes import (
    InMemoryClosedOrders,
    InMemoryOrderRepository,
    InMemoryRawArchive,
    InMemoryRetentionCursor,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = RetentionPolicy.parse("default=90d,amazon=30d")


class World:
    def __init__(self) -> None:
        self.now = START
        self.orders = InMemoryOrderRepository()
        self.closed = InMemoryClosedOrders(self.orders)
        self.cursor = InMemoryRetentionCursor()
        self.archive = InMemoryRawArchive()

    def close(
        self, name: str, *, channel: str = "shopify", status: OrderStatus = OrderStatus.COMPLETED
    ) -> Order:
        """An order with a customer, both addresses, a shipment and a delivery, closed now."""
        order = normalise_manual(
            {
                "external_id": name,
                "currency": "EUR",
                "placed_at": (self.now - timedelta(days=3)).isoformat(),
                "customer": {
                    "email": f"{name}@example.com",
                    "name": "Ada Lovelace",
                    "phone": "+44 20 7946 0000",
                },
                "shipping_address": {
                    "name": "Ada Lovelace",
                    "line1": "12 St James's Sq",
                    "city": "London",
                    "postal_code": "SW1Y 4JH",
                    "country": "GB",
                },
                "billing_address": {
                    "name": "Ada Lovelace",
                    "line1": "12 St James's Sq",
                    "city": "London",
                    "country": "GB",
                },
                "lines": [{"title": "Mug", "quantity": 2, "unit_price": "5.00"}],
            }
        ).model_copy(update={"channel": channel})
        delivery_id = f"d-{name}"
        order.record("received", self.now - timedelta(days=3), delivery_id=delivery_id)
        order.record("address_checked", self.now - timedelta(days=3), address={"line1": "12 St James's Sq"})
        order.shipments = [
            Shipment(
                shipment_id=f"{name}-s1",
                carrier="ups",
                tracking_number="1Z999",
                status="delivered",
                delivered_at=self.now,
            )
        ]
        order.payment = order.payment.model_copy(update={"amount_captured": Decimal("10.00")})
        order.status = status
        order.record("completed", self.now)
        self.orders.save(order, expected_version=None)
        self.archive.put(
            Delivery(delivery_id, channel, "s", "orders/create", self.now, None), b'{"email": "x"}'
        )
        return order

    def run(self, limit: int = 50):  # type: ignore[no-untyped-def]
        return redact_due(
            closed=self.closed,
            orders=self.orders,
            archive=self.archive,
            cursor=self.cursor,
            policy=POLICY,
            now=lambda: self.now,
            limit_per_lane=limit,
        )

    def order(self, order_id: str) -> Order:
        stored = self.orders.get(order_id)
        assert stored is not None
        return stored.order


def redacted(order: Order) -> bool:
    return any(e.event == PERSONAL_DATA_REDACTED for e in order.history)


def test_policy__parses_a_default_and_channel_periods():
    assert POLICY.period("amazon") == timedelta(days=30)
    assert POLICY.period("woocommerce") == timedelta(days=90)
    assert RetentionPolicy.parse("default=5s").period("x") == timedelta(seconds=5)
    for bad in ("amazon=30d", "default=30", "default=-1d", "default=xd"):
        with pytest.raises(ValueError):
            RetentionPolicy.parse(bad)


def test_redact_due__redacts_past_the_channels_period_and_keeps_what_the_order_needs():
    world = World()
    old = world.close("old")
    amazon = world.close("amz", channel="amazon")
    world.now += timedelta(days=31)
    young = world.close("young")
    world.now += timedelta(days=60)  # old: 91 days closed; amazon: 91; young: 60

    run = world.run()

    assert run.redacted == 2 and run.deliveries_forgotten == 2
    for order_id in (old.order_id, amazon.order_id):
        after = world.order(order_id)
        assert redacted(after)
        assert (
            after.customer.email is None
            and after.customer.name == REDACTED
            and after.customer.phone == REDACTED
        )
        assert after.shipping_address is not None and after.shipping_address.line1 == REDACTED
        assert after.shipping_address.city == REDACTED and after.shipping_address.country == "GB"
        assert after.billing_address is not None and after.billing_address.name == REDACTED
        assert next(e for e in after.history if e.event == "address_checked").detail["address"] == REDACTED
        before = old if order_id == old.order_id else amazon
        assert (
            after.lines == before.lines and after.totals == before.totals and after.payment == before.payment
        )
        assert after.shipments == before.shipments and after.status == OrderStatus.COMPLETED
        assert world.archive.get(f"d-{after.external_id}") is None
    assert not redacted(world.order(young.order_id))
    assert world.archive.get("d-young") is not None


def test_redact_due__amazon_goes_after_thirty_days_the_rest_after_ninety():
    world = World()
    amazon, shopify = world.close("amz", channel="amazon"), world.close("shop")
    world.now += timedelta(days=31)

    world.run()

    assert redacted(world.order(amazon.order_id)) and not redacted(world.order(shopify.order_id))
    world.now += timedelta(days=60)
    world.run()
    assert redacted(world.order(shopify.order_id))


def test_redact_due__is_idempotent_and_reads_nothing_twice():
    world = World()
    order = world.close("once")
    world.now += timedelta(days=91)
    world.run()
    history = world.order(order.order_id).history

    reads = world.closed.reads
    again = world.run()

    assert again.redacted == 0 and world.closed.reads == reads  # the cursor moved past it: no re-read
    assert world.order(order.order_id).history == history
    assert [e.event for e in history].count(PERSONAL_DATA_REDACTED) == 1


def test_redact_due__is_bounded_per_run_and_goes_on_where_it_stopped():
    world = World()
    names = [world.close(f"o{n}") for n in range(5)]
    world.now += timedelta(days=91)

    first = world.run(limit=2)

    assert first.redacted == 2 and "COMPLETED#*" in first.more
    world.run(limit=2)
    world.run(limit=2)
    assert all(redacted(world.order(o.order_id)) for o in names)


def test_redact_due__waits_for_an_open_return_without_holding_up_the_others():
    world = World()
    returning = world.close("ret", status=OrderStatus.REFUNDED)
    stored = world.orders.get(returning.order_id)
    assert stored is not None
    opened = stored.order.model_copy(update={"returns": [{"return_id": "r1", "status": "received"}]})
    world.orders.save(opened, expected_version=stored.version)
    world.now += timedelta(seconds=1)
    later = world.close("later", status=OrderStatus.REFUNDED)
    world.now += timedelta(days=91)

    run = world.run()

    assert run.waiting == 1 and run.redacted == 1
    assert not redacted(world.order(returning.order_id)) and redacted(world.order(later.order_id))
    stored = world.orders.get(returning.order_id)
    assert stored is not None
    done = stored.order.model_copy(update={"returns": [{"return_id": "r1", "status": "resolved"}]})
    world.orders.save(done, expected_version=stored.version)
    world.run()
    assert redacted(world.order(returning.order_id))


def test_a_channels_later_copy_does_not_bring_personal_data_back():
    world = World()
    order = world.close("back")
    world.now += timedelta(days=91)
    world.run()
    current = world.order(order.order_id)

    merged = keep_redacted(current, order)

    assert merged.customer == current.customer and merged.shipping_address == current.shipping_address
    assert keep_redacted(order, current) is current  # not redacted: the channel's copy as it came


def test_the_status_page_shows_redacted():
    world = World()
    order = world.close("page")
    world.now += timedelta(days=91)
    world.run()

    html = order_page("", world.order(order.order_id), "csrf", None, world.now)

    assert REDACTED in html and "Ada" not in html and "St James" not in html
