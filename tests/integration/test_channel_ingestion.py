"""Channel webhooks end to end over real HTTP: signatures, rejections, dedup, ordering, Amazon via SQS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from typing import Any

import pytest
import requests

from chalicelib import resources
from chalicelib.domain.order import derive_order_id
from tests.integration.conftest import (
    AMAZON_CREDENTIALS,
    AMAZON_MARKETPLACE,
    AMAZON_SELLER,
    WAIT_SECONDS,
    eventually,
)

SHOP = "it-shop.myshopify.com"
SHOP_SECRET = "it-shopify-secret"
WOO = "https://it-woo.example/"
WOO_SECRET = "it-woo-secret"


@pytest.fixture(scope="module")
def connected(stack):
    for body in (
        {"channel": "shopify", "store": SHOP, "webhook_secret": SHOP_SECRET, "access_token": "shpat_it"},
        {
            "channel": "woocommerce",
            "store": WOO,
            "webhook_secret": WOO_SECRET,
            "consumer_key": "ck_it",
            "consumer_secret": "cs_it",
        },
        {
            "channel": "amazon",
            "store": AMAZON_SELLER,
            "marketplace_id": AMAZON_MARKETPLACE,
            **AMAZON_CREDENTIALS,
        },
    ):
        assert stack.api("POST", "/api/connections", json=body).status_code in (200, 201)
    return stack


def shopify_order(order_id: int, updated_at: str = "2026-11-23T10:00:00-05:00", quantity: int = 1) -> dict:
    return {
        "id": order_id,
        "name": f"#{order_id % 100000}",
        "email": "jörg@example.com",
        "created_at": "2026-11-23T10:00:00-05:00",
        "updated_at": updated_at,
        "currency": "USD",
        "financial_status": "paid",
        "fulfillment_status": None,
        "cancelled_at": None,
        "gateway": "shopify_payments",
        "total_price": f"{20 * quantity + 5:.2f}",
        "subtotal_price": f"{20 * quantity:.2f}",
        "total_tax": "0.00",
        "total_discounts": "0.00",
        "taxes_included": False,
        "line_items": [
            {
                "id": order_id + 1,
                "sku": "MUG",
                "title": "Mug",
                "variant_title": None,
                "quantity": quantity,
                "price": "20.00",
                "discount_allocations": [],
                "tax_lines": [],
            }
        ],
        "shipping_lines": [{"id": 9, "title": "Standard", "price": "5.00", "discount_allocations": []}],
        "customer": {"first_name": "Jörg", "last_name": "Šimůnek", "email": "jörg@example.com"},
        "shipping_address": {"name": "Jörg Šimůnek", "city": "Brno", "country_code": "CZ"},
    }


def shopify_headers(body: bytes, topic: str = "orders/create", event_id: str | None = None, **over: str):
    digest = hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-API-Version": "2024-04",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": "2026-11-23T15:00:00Z",
        **over,
    }


def post_shopify(stack, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{stack.hub_url}/webhooks/shopify", data=body, headers=headers, timeout=10)


def new_shopify_id() -> int:
    return 6_000_000_000_000 + uuid.uuid4().int % 1_000_000_000


def order_when(stack, order_id: str, predicate, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
    def check():
        response = stack.api("GET", f"/api/orders/{order_id}")
        return response.json() if response.status_code == 200 and predicate(response.json()) else None

    return eventually(check, timeout=timeout)


def events_of(order: dict[str, Any]) -> list[str]:
    return [h["event"] for h in order["history"]]


def test_shopify__same_delivery_five_times_is_one_order_and_one_execution(connected):
    shop_id = new_shopify_id()
    body = json.dumps(shopify_order(shop_id)).encode()
    headers = shopify_headers(body)
    answers = [
        post_shopify(connected, body, {**headers, "X-Shopify-Webhook-Id": str(uuid.uuid4())})
        for _ in range(5)
    ]
    assert [a.status_code for a in answers] == [200] * 5
    order_id = derive_order_id("shopify", SHOP, str(shop_id))
    connected.drained(resources.INGEST_QUEUE.name)  # every copy handled
    order = order_when(connected, order_id, lambda o: "fraud_checked" in events_of(o))
    assert events_of(order)[:3] == ["received", "validated", "fraud_checked"]
    assert order["customer"]["name"] == "Jörg Šimůnek"
    sfn = connected.client("stepfunctions")
    arn = next(
        m["stateMachineArn"]
        for m in sfn.list_state_machines()["stateMachines"]
        if m["name"] == resources.ORDER_LIFECYCLE.name
    )
    executions = sfn.list_executions(stateMachineArn=arn, maxResults=1000)["executions"]
    assert [e["name"] for e in executions].count(order_id) == 1


def test_shopify__concurrent_duplicates_from_several_threads_are_one_order(connected):
    shop_id = new_shopify_id()
    body = json.dumps(shopify_order(shop_id)).encode()
    event_id = str(uuid.uuid4())
    barrier = threading.Barrier(6)
    codes: list[int] = []

    def send():
        barrier.wait()
        codes.append(post_shopify(connected, body, shopify_headers(body, event_id=event_id)).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 6
    order_id = derive_order_id("shopify", SHOP, str(shop_id))
    connected.drained(resources.INGEST_QUEUE.name)  # every copy handled
    order = order_when(connected, order_id, lambda o: "validated" in events_of(o))
    assert events_of(order).count("received") == 1


def test_shopify__update_before_create_and_a_stale_update_end_in_the_newest_state(connected):
    shop_id = new_shopify_id()
    newer = json.dumps(shopify_order(shop_id, "2026-11-23T10:05:00-05:00", quantity=3)).encode()
    older = json.dumps(shopify_order(shop_id, "2026-11-23T10:00:00-05:00", quantity=1)).encode()
    assert post_shopify(connected, newer, shopify_headers(newer, "orders/updated")).status_code == 200
    assert post_shopify(connected, older, shopify_headers(older, "orders/create")).status_code == 200
    order_id = derive_order_id("shopify", SHOP, str(shop_id))
    order_when(connected, order_id, lambda o: "validated" in events_of(o))
    connected.drained(resources.INGEST_QUEUE.name)  # the late create has been handled too
    # the late create was remembered as a delivery and changed nothing
    final = connected.order(order_id)
    assert final is not None
    assert final["lines"][0]["quantity"] == 3 and final["totals"]["total"] == "65.00"
    assert "updated" not in events_of(final) and events_of(final).count("received") == 1


@pytest.mark.parametrize(
    "tamper",
    ["hex", "reserialised", "wrong_secret", "empty", "missing"],
)
def test_shopify__bad_signatures_are_401_and_nothing_is_queued(connected, tamper):
    shop_id = new_shopify_id()
    order = shopify_order(shop_id)
    body = json.dumps(order).encode()
    headers = shopify_headers(body)
    if tamper == "hex":
        headers["X-Shopify-Hmac-Sha256"] = hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    elif tamper == "reserialised":
        body = json.dumps(order, indent=2).encode()
    elif tamper == "wrong_secret":
        digest = hmac.new(b"not-the-secret", body, hashlib.sha256).digest()
        headers["X-Shopify-Hmac-Sha256"] = base64.b64encode(digest).decode()
    elif tamper == "empty":
        body = b""
    else:
        del headers["X-Shopify-Hmac-Sha256"]
    assert post_shopify(connected, body, headers).status_code == 401
    order_id = derive_order_id("shopify", SHOP, str(shop_id))
    assert connected.api("GET", f"/api/orders/{order_id}").status_code == 404


def test_shopify__unknown_shop_401_malformed_400_too_large_413_unknown_topic_200(connected):
    body = json.dumps(shopify_order(new_shopify_id())).encode()
    unknown = shopify_headers(body, **{"X-Shopify-Shop-Domain": "stranger.myshopify.com"})
    assert post_shopify(connected, body, unknown).status_code == 401
    garbage = b'{"id": 1, "oops'
    assert post_shopify(connected, garbage, shopify_headers(garbage)).status_code == 400
    huge = b'{"id": 1, "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert post_shopify(connected, huge, shopify_headers(huge)).status_code == 413
    topic = post_shopify(connected, body, shopify_headers(body, "products/update"))
    assert topic.status_code == 200 and topic.json()["message"] == "topic not handled"


def woo_headers(body: bytes, topic: str = "order.created") -> dict[str, str]:
    digest = hmac.new(WOO_SECRET.encode(), body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": WOO,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-WC-Webhook-Delivery-ID": str(uuid.uuid4()),
    }


def woo_order(order_id: int, **changes: Any) -> dict[str, Any]:
    return {
        "id": order_id,
        "status": "processing",
        "currency": "EUR",
        "date_created_gmt": "2026-11-23T10:00:00",
        "date_modified_gmt": "2026-11-23T10:00:00",
        "total": "19.90",
        "line_items": [{"id": 1, "name": "Mug", "quantity": 1, "subtotal": "19.90", "total": "19.90"}],
        **changes,
    }


@pytest.mark.parametrize(
    ("what", "channel", "changes"),
    [
        ("shopify currency QQQ", "shopify", {"currency": "QQQ"}),
        ("shopify country Narnia", "shopify", {"shipping_address": {"city": "X", "country_code": "Narnia"}}),
        ("woocommerce total 'Infinity'", "woocommerce", {"total": "Infinity"}),
        ("woocommerce currency XXX", "woocommerce", {"currency": "XXX"}),
    ],
)
def test_order_webhooks__what_ingestion_would_refuse_is_400_and_never_stored(
    connected, what, channel, changes
):
    order_id = new_shopify_id()
    if channel == "shopify":
        body = json.dumps({**shopify_order(order_id), **changes}).encode()
        answer = post_shopify(connected, body, shopify_headers(body))
        store = SHOP
    else:
        body = json.dumps(woo_order(order_id, **changes)).encode()
        url = f"{connected.hub_url}/webhooks/woocommerce"
        answer = requests.post(url, data=body, headers=woo_headers(body), timeout=10)
        store = WOO
    assert answer.status_code == 400, answer.text[:300]
    connected.drained(resources.INGEST_QUEUE.name)
    assert (
        connected.api("GET", f"/api/orders/{derive_order_id(channel, store, str(order_id))}").status_code
        == 404
    )


def test_shopify_simulator__duplicates_and_reordering_end_as_one_order_each(connected, threepl):
    threepl.auto_ship = False  # the warehouse keeps them: the cancellation finds its order unshipped
    try:
        _duplicates_and_reordering_end_as_one_order_each(connected)
    finally:
        threepl.auto_ship = True


def _duplicates_and_reordering_end_as_one_order_each(connected):
    from local.simulators.shopify import ShopifySimulator

    simulator = ShopifySimulator(
        SHOP,
        SHOP_SECRET,
        "shpat_it",
        webhook_url=f"{connected.hub_url}/webhooks/shopify",
        seed=11,
        time_scale=0.0001,
        duplicate_rate=0.5,
        reorder=True,
    ).start()
    try:
        placed = [simulator.create_order(financial_status="paid") for _ in range(4)]
        simulator.fulfil_order(placed[0]["id"])
        simulator.refund_order(placed[1]["id"])
        simulator.cancel_order(placed[2]["id"])
        assert simulator.flush(timeout=WAIT_SECONDS)
    finally:
        simulator.stop()
    connected.drained(resources.INGEST_QUEUE.name)  # every copy the hub accepted has been handled
    for shop_order in placed:
        order_id = derive_order_id("shopify", SHOP, str(shop_order["id"]))
        order = order_when(
            connected, order_id, lambda o: "validated" in events_of(o) or o["status"] == "CANCELLED"
        )
        assert events_of(order).count("received") == 1
    cancelled = derive_order_id("shopify", SHOP, str(placed[2]["id"]))
    order_when(connected, cancelled, lambda o: o["status"] == "CANCELLED")
    refunded = derive_order_id("shopify", SHOP, str(placed[1]["id"]))
    order_when(connected, refunded, lambda o: o["status"] in ("PARTIALLY_REFUNDED", "REFUNDED"))


def test_woocommerce__ping_signed_deliveries_and_refunds(connected):
    from local.simulators.woocommerce import WooCommerceSimulator

    simulator = WooCommerceSimulator(
        WOO, WOO_SECRET, "ck_it", "cs_it", webhook_url=f"{connected.hub_url}/webhooks/woocommerce", seed=5
    ).start()
    try:
        assert simulator.send_ping() is True  # exactly 200
        # Paid at checkout (PayPal): an unpaid order would be cancelled when the payment wait runs out.
        placed = simulator.create_order(payment_method="ppcp-gateway")
        order_id = derive_order_id("woocommerce", WOO, str(placed["id"]))
        order_when(connected, order_id, lambda o: "validated" in events_of(o))
        simulator.refund_order(placed["id"], "1.00")
        assert simulator.flush(timeout=WAIT_SECONDS)
        order = order_when(connected, order_id, lambda o: o["status"] == "PARTIALLY_REFUNDED")
        assert order["payment"]["amount_refunded"] in ("1.00", "1")
    finally:
        simulator.stop()
    bad = requests.post(
        f"{connected.hub_url}/webhooks/woocommerce",
        data=b'{"id": 1}',
        headers={
            "Content-Type": "application/json",
            "X-WC-Webhook-Source": WOO,
            "X-WC-Webhook-Topic": "order.created",
            "X-WC-Webhook-Signature": "bm90LWEtc2lnbmF0dXJl",
        },
        timeout=10,
    )
    assert bad.status_code == 401


def test_amazon__notification_fetches_the_order_once_even_when_repeated(connected, amazon, threepl):
    threepl.auto_ship = False  # the warehouse keeps it: a cancellation after delivery would be a return
    try:
        _amazon_order_fetched_once_then_cancelled(connected, amazon)
    finally:
        threepl.auto_ship = True


def _amazon_order_fetched_once_then_cancelled(connected, amazon):
    placed = amazon.create_order(OrderStatus="Unshipped")
    amazon_id = placed["AmazonOrderId"]
    order_id = derive_order_id("amazon", AMAZON_SELLER, amazon_id)
    order = order_when(connected, order_id, lambda o: "validated" in events_of(o))
    assert order["external_id"] == amazon_id and order["payment"]["source"] == "amazon"
    notification = amazon.delivered[-1]
    for _ in range(3):  # SQS standard queues deliver at least once
        connected.client("sqs").send_message(
            QueueUrl=connected.queue_url(resources.AMAZON_NOTIFICATIONS_QUEUE.name),
            MessageBody=json.dumps(notification),
        )
    connected.drained(resources.AMAZON_NOTIFICATIONS_QUEUE.name)  # the repeats fetched the order
    connected.drained(resources.INGEST_QUEUE.name)  # and what they fetched was handled
    amazon.set_status(amazon_id, "Canceled")
    final = order_when(connected, order_id, lambda o: o["status"] == "CANCELLED")
    assert events_of(final).count("received") == 1


def test_dlq_redrive_and_delivery_replay(connected):
    """A delivery parked in the DLQ (say, its store was connected late) is redriven and then applied."""
    sqs = connected.client("sqs")
    spec = resources.INGEST_QUEUE
    parked_id = new_shopify_id()
    parked = {
        "delivery_id": f"shopify:{SHOP}:parked-{parked_id}:orders/create",
        "channel": "shopify",
        "store": SHOP,
        "topic": "orders/create",
        "received_at": "2026-11-23T15:00:00+00:00",
        "external_id": str(parked_id),
        "payload": shopify_order(parked_id),
    }
    sqs.send_message(
        QueueUrl=connected.queue_url(spec.dlq_name),
        MessageBody=json.dumps(parked),
        MessageGroupId=f"shopify:{SHOP}:{parked_id}",
        MessageDeduplicationId=uuid.uuid4().hex,
    )
    redriven = connected.api("POST", f"/api/dlq/{spec.key}/redrive").json()
    assert redriven["moved"] >= 1 and redriven["queue"] == spec.name
    order_when(
        connected, derive_order_id("shopify", SHOP, str(parked_id)), lambda o: "received" in events_of(o)
    )
    assert connected.api("POST", "/api/dlq/nope/redrive").status_code == 404

    shop_id = new_shopify_id()
    body = json.dumps(shopify_order(shop_id)).encode()
    event_id = str(uuid.uuid4())
    post_shopify(connected, body, shopify_headers(body, event_id=event_id))
    order_id = derive_order_id("shopify", SHOP, str(shop_id))
    order_when(connected, order_id, lambda o: "validated" in events_of(o))
    delivery_id = f"shopify:{SHOP}:{event_id}:orders/create"
    replay = connected.api("POST", "/api/deliveries/replay", json={"delivery_id": delivery_id})
    assert replay.status_code == 202
    replay_id = replay.json()["delivery_id"]
    connected.drained(resources.INGEST_QUEUE.name)  # the replay has been handled
    order = order_when(connected, order_id, lambda o: True)
    assert replay_id.startswith(delivery_id + "#replay-")
    assert events_of(order).count("received") == 1  # replayed old news changes nothing
    assert connected.api("POST", "/api/deliveries/replay", json={"delivery_id": "nope"}).status_code == 404
    assert connected.api("POST", "/api/deliveries/replay", json={}).status_code == 400


def test_shopify_through_eventbridge__partner_source_rule_to_the_ingest_queue(connected):
    """Shopify → partner event bus → rule → the ingest FIFO queue; the same event by HTTPS too: one order."""
    events = connected.client("events")
    # In AWS the bus is the partner bus `aws.partner/shopify.com/<id>/<name>`; moto cannot attach rules
    # to a bus whose name holds '/', so a plain bus stands in for it. Source and envelope are Shopify's.
    source = f"aws.partner/shopify.com/4242/it-{uuid.uuid4().hex[:6]}"
    bus_arn = events.create_event_bus(Name=f"shopify-partner-{uuid.uuid4().hex[:6]}")["EventBusArn"]
    rule = f"shopify-to-ingest-{uuid.uuid4().hex[:6]}"
    events.put_rule(
        Name=rule,
        EventBusName=bus_arn,
        EventPattern=json.dumps({"source": [{"prefix": "aws.partner/shopify.com"}]}),
    )
    queue_arn = connected.client("sqs").get_queue_attributes(
        QueueUrl=connected.queue_url(resources.INGEST_QUEUE.name), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    events.put_targets(
        Rule=rule,
        EventBusName=bus_arn,
        Targets=[
            {"Id": "ingest", "Arn": queue_arn, "SqsParameters": {"MessageGroupId": "shopify-eventbridge"}}
        ],
    )
    shop_id = new_shopify_id()
    order = shopify_order(shop_id)
    event_id = str(uuid.uuid4())
    metadata = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-API-Version": "2024-04",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Triggered-At": "2026-11-23T15:00:00Z",
    }
    answer = events.put_events(
        Entries=[
            {
                "Source": source,
                "DetailType": "shopifyWebhook",
                "Detail": json.dumps({"payload": order, "metadata": metadata}),
                "EventBusName": bus_arn,
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0
    order_id = derive_order_id("shopify", SHOP, str(shop_id))
    stored = order_when(connected, order_id, lambda o: "validated" in events_of(o))
    assert stored["customer"]["name"] == "Jörg Šimůnek"
    body = json.dumps(order).encode()
    assert (
        post_shopify(connected, body, shopify_headers(body, event_id=event_id)).status_code == 200
    )  # HTTPS twin
    # The twin is in another message group than the EventBridge copy: an empty queue, not a marker order,
    # is the evidence that it was handled.
    connected.drained(resources.INGEST_QUEUE.name)
    final = connected.api("GET", f"/api/orders/{order_id}").json()
    assert events_of(final).count("received") == 1 and "updated" not in events_of(final)


def _store_row(stack, channel: str, store: str) -> dict[str, str]:
    """The status page's traffic row of one store: {kind: 'hour / day'} and the last event."""
    import re

    page = requests.get(f"{stack.hub_url}/status", headers=stack.auth, timeout=30)
    assert page.status_code == 200
    row = re.search(rf'<tr data-store="{re.escape(channel)}:{re.escape(store)}">(.*?)</tr>', page.text)
    assert row, f"no row for {channel}:{store} on the status page"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
    kinds = ("received", "rejected", "duplicates", "ignored")
    counts = {k: int(cells[2 + i].split(" / ")[0]) for i, k in enumerate(kinds)}
    return {**counts, "last_event": cells[6]}


def test_the_status_page_counts_a_stores_deliveries_as_they_come(connected):
    before = _store_row(connected, "shopify", SHOP)
    body = json.dumps(shopify_order(new_shopify_id())).encode()
    assert post_shopify(connected, body, shopify_headers(body)).status_code == 200
    assert (
        post_shopify(connected, body, shopify_headers(body)).status_code == 200
    )  # another event, same order
    forged = {**shopify_headers(body), "X-Shopify-Hmac-Sha256": base64.b64encode(b"x" * 32).decode()}
    assert post_shopify(connected, body, forged).status_code == 401
    assert post_shopify(connected, body, shopify_headers(body, "products/update")).status_code == 200

    def moved():
        now = _store_row(connected, "shopify", SHOP)
        delta = {k: now[k] - before[k] for k in ("received", "rejected", "ignored")}
        return (delta, now) if delta == {"received": 2, "rejected": 1, "ignored": 1} else None

    _, now = eventually(moved)
    assert now["last_event"].endswith("s ago")
