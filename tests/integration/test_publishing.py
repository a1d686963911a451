"""Publishing back on the local stack: milestones reach the channel simulators exactly once, throttling is
waited out, a persistent failure is visible and recovers, cancellations and refunds reach the channel."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.order import derive_order_id
from tests.integration.conftest import (
    AMAZON_CREDENTIALS,
    AMAZON_MARKETPLACE,
    AMAZON_SELLER,
    PUBLISH_SHOP,
    PUBLISH_WOO,
    WAIT_SECONDS,
    eventually,
)


def publish(stack) -> dict[str, Any]:
    """Run the outbox now (the suite's stack runs it only when asked: see conftest)."""
    return stack.publish_outbox()


def order_when(stack, order_id: str, predicate, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
    return stack.order_when(order_id, predicate, timeout=timeout)


def publications(order: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["publication_id"]: p for p in order["publications"]}


def all_sent(order: dict[str, Any]) -> bool:
    return bool(order["publications"]) and all(p["status"] == "sent" for p in order["publications"])


def published(stack, order_id: str, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
    def check():
        publish(stack)
        order = stack.api("GET", f"/api/orders/{order_id}").json()
        return order if all_sent(order) else None

    return eventually(check, timeout=timeout, interval=0.5)


WOO_ADDRESS = {
    "first_name": "Ada",
    "last_name": "Buyer",
    "address_1": "1 Harbour St",
    "city": "Boston",
    "state": "MA",
    "postcode": "02110",
    "country": "US",
}


SHOP_ADDRESS = {
    "name": "Ada Buyer",
    "address1": "1 Harbour St",
    "city": "Boston",
    "province_code": "MA",
    "zip": "02110",
    "country_code": "US",
}


def woo_order(woo_store, **overrides: Any) -> tuple[dict[str, Any], str]:
    placed = woo_store.create_order(payment_method="ppcp-gateway", shipping=WOO_ADDRESS, **overrides)
    return placed, derive_order_id("woocommerce", PUBLISH_WOO, str(placed["id"]))


def shop_order(shopify_store, item: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A paid USD order of one `item` placed at the publishing shop, and the hub's id for it."""
    placed = shopify_store.create_order(
        currency="USD", financial_status="paid", items=[item], shipping_address=SHOP_ADDRESS
    )
    return placed, derive_order_id("shopify", PUBLISH_SHOP, str(placed["id"]))


def test_woocommerce__shipped_and_completed_exactly_once_with_tracking(stack, woo_store):
    placed, order_id = woo_order(woo_store)
    order_when(stack, order_id, lambda o: o["status"] == "COMPLETED")
    order = published(stack, order_id)
    assert {p["kind"] for p in order["publications"]} == {"shipped", "delivered"}
    publish(stack)  # again: nothing more reaches the store
    notes = [n["note"] for n in woo_store.notes(placed["id"]) if "order-hub" in n["note"]]
    shipped = [n for n in notes if n.startswith("Shipped")]
    assert len(shipped) == 1 and len(notes) == 2  # the shipped note (customer) and the delivered one
    tracking = order["shipments"][0]["tracking_number"]
    assert tracking in shipped[0]
    assert woo_store.status(placed["id"]) == "completed"


def test_woocommerce__a_persistent_failure_is_visible_and_recovers(stack, woo_store):
    placed, order_id = woo_order(woo_store)
    order_when(stack, order_id, lambda o: o["status"] == "COMPLETED")
    # Down for one run: every in-call retry of the first milestone fails (the publisher tries three times).
    woo_store.fail_writes(3, 500)
    publish(stack)
    stuck = stack.api("GET", f"/api/orders/{order_id}").json()
    pending = [p for p in stuck["publications"] if p["status"] == "pending"]
    assert pending and pending[0]["attempts"] >= 1 and "Unavailable" in pending[0]["last_error"]
    assert stuck["status"] == "COMPLETED"  # the lifecycle did not wait for the channel
    order = published(stack, order_id)
    assert all(p["last_error"] is None for p in order["publications"])
    assert woo_store.status(placed["id"]) == "completed"


def test_woocommerce__throttling_is_waited_out(stack, woo_store):
    placed, order_id = woo_order(woo_store)
    order_when(stack, order_id, lambda o: o["status"] == "COMPLETED")
    woo_store.fail_writes(1, 429, retry_after=1)
    order = published(stack, order_id)
    assert all(p["attempts"] == 1 for p in order["publications"])  # waited within the attempt
    assert woo_store.status(placed["id"]) == "completed"


def test_woocommerce__a_cancellation_and_its_refund_reach_the_store(stack, woo_store, threepl):
    threepl.auto_ship = False  # cancelled while the warehouse still has it
    try:
        placed, order_id = woo_order(woo_store)
        order_when(stack, order_id, lambda o: o["status"] == "FULFILMENT_REQUESTED")
        answer = stack.api("POST", f"/api/orders/{order_id}/cancel", json={"reason": "customer called"})
        assert answer.status_code == 200, answer.text
    finally:
        threepl.auto_ship = True
    order = published(stack, order_id)
    assert {p["kind"] for p in order["publications"]} == {"cancelled", "refunded"}
    assert woo_store.status(placed["id"]) in ("cancelled", "refunded")
    [refund] = woo_store.refunds(placed["id"])
    assert refund["amount"] == placed["total"]
    publish(stack)
    assert len(woo_store.refunds(placed["id"])) == 1


def test_shopify__fulfilment_with_tracking_reaches_the_shop_once(stack, shopify_store):
    placed, order_id = shop_order(
        shopify_store, {"title": "Mug", "price": "12.00", "quantity": 2, "sku": "MUG"}
    )
    done = order_when(stack, order_id, lambda o: o["status"] in ("COMPLETED", "FAILED"))
    assert done["status"] == "COMPLETED", done["history"][-1]
    published(stack, order_id)
    publish(stack)
    [fulfillment] = shopify_store.fulfillments(placed["id"])
    assert fulfillment.tracking_numbers == (done["shipments"][0]["tracking_number"],)
    assert sum(fulfillment.lines.values()) == 2


def test_amazon__shipment_confirmed_once_per_parcel(stack, amazon):
    body = {
        "channel": "amazon",
        "store": AMAZON_SELLER,
        "marketplace_id": AMAZON_MARKETPLACE,
        **AMAZON_CREDENTIALS,
    }
    assert stack.api("POST", "/api/connections", json=body).status_code in (200, 201)
    placed = amazon.create_order(OrderStatus="Unshipped")
    order_id = derive_order_id("amazon", AMAZON_SELLER, placed["AmazonOrderId"])
    done = order_when(stack, order_id, lambda o: o["status"] in ("COMPLETED", "FAILED"))
    assert done["status"] == "COMPLETED", done["history"][-1]
    published(stack, order_id)
    publish(stack)
    confirmations = amazon.shipment_confirmations(placed["AmazonOrderId"])
    assert len(confirmations) == len(done["shipments"][0]["parcels"])
    assert all(c.get("submissions", 1) == 1 for c in confirmations)


def test_shopify__throttling_is_waited_out_and_a_cancellation_refunds_at_the_shop(
    stack, shopify_store, threepl
):
    threepl.auto_ship = False  # still at the warehouse when the customer cancels
    try:
        placed, order_id = shop_order(
            shopify_store, {"title": "Lamp", "price": "40.00", "quantity": 1, "sku": "LAMP"}
        )
        order_when(stack, order_id, lambda o: o["status"] == "FULFILMENT_REQUESTED")
        answer = stack.api("POST", f"/api/orders/{order_id}/cancel", json={"reason": "customer called"})
        assert answer.status_code == 200, answer.text
    finally:
        threepl.auto_ship = True
    shopify_store.throttle_api(1)  # the first mutation finds the bucket empty
    order = published(stack, order_id)
    assert [p["kind"] for p in order["publications"]] == ["cancelled"]
    [cancellation] = shopify_store.cancellations(placed["id"])
    # Shopify Payments holds the money: Shopify refunds it as it cancels (no separate refund milestone).
    assert cancellation.refund is True and cancellation.via == "api"
    publish(stack)
    assert len(shopify_store.cancellations(placed["id"])) == 1


def test_amazon__a_cancellation_is_acknowledged_by_feed(stack, amazon, threepl):
    body = {
        "channel": "amazon",
        "store": AMAZON_SELLER,
        "marketplace_id": AMAZON_MARKETPLACE,
        **AMAZON_CREDENTIALS,
    }
    assert stack.api("POST", "/api/connections", json=body).status_code in (200, 201)
    threepl.auto_ship = False
    try:
        placed = amazon.create_order(OrderStatus="Unshipped")
        order_id = derive_order_id("amazon", AMAZON_SELLER, placed["AmazonOrderId"])
        order_when(stack, order_id, lambda o: o["status"] == "FULFILMENT_REQUESTED")
        answer = stack.api("POST", f"/api/orders/{order_id}/cancel", json={"reason": "out of stock"})
        assert answer.status_code == 200, answer.text
    finally:
        threepl.auto_ship = True
    published(stack, order_id)
    assert amazon.order(placed["AmazonOrderId"])["OrderStatus"] == "Canceled"
    feeds = [f for f in amazon.feeds() if placed["AmazonOrderId"] in str(f.get("content", ""))]
    assert len(feeds) == 1
