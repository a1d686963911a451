"""The webhook pipeline over every sender's spec: answers, counters and delivery ids, route by route."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.errors import MalformedDelivery
from chalicelib.observability import use_count_sink
from tests.unit.api import AUTH

SHOP = "unit-shop.myshopify.com"
WOO = "https://unit-woo.example/"
SECRET = "unit-webhook-secret"
FIXTURES = Path(__file__).parents[1] / "fixtures"


def order_fixture(name: str, **changes: Any) -> dict[str, Any]:
    """A whole channel order (tests/fixtures/<channel>/<name>.json): order topics are checked at the edge."""
    body = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return {**body, **changes}


SHOPIFY_ORDER = order_fixture("shopify/orders_create_minimal", id=42)
WOO_ORDER = order_fixture("woocommerce/order_minimal", id=9)

CONNECTIONS = {
    "shopify": {"channel": "shopify", "store": SHOP, "webhook_secret": SECRET, "access_token": "shpat_u"},
    "woocommerce": {
        "channel": "woocommerce",
        "store": WOO,
        "webhook_secret": SECRET,
        "consumer_key": "ck_u",
        "consumer_secret": "cs_u",
    },
    "3pl": {
        "channel": "3pl",
        "store": "acme",
        "api_base": "https://api.acme-3pl.example",
        "api_key": "k",
        "webhook_secret": SECRET,
    },
    "easypost": {"channel": "easypost", "api_key": "EZAK_u", "webhook_secret": SECRET},
}


@pytest.fixture
def counts():
    seen: list[tuple[str, str, str | None]] = []

    def sink(name, channel, store, value):
        seen.append((name, channel, store))

    use_count_sink(sink)
    yield seen
    use_count_sink(None)


def connect(client, *channels: str) -> None:
    for channel in channels:
        body = json.dumps(CONNECTIONS[channel])
        assert client.http.post("/api/connections", headers=AUTH, body=body).status_code == 201


def post(client, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    answer = client.http.post(path, headers={"Content-Type": "application/json", **headers}, body=body)
    return answer.status_code, json.loads(answer.body)


def base64_hmac(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def shopify(client, body: bytes, topic: str = "orders/create", **over: str) -> tuple[int, dict]:
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": base64_hmac(body),
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Event-Id": "evt-1",
        **over,
    }
    return post(client, "/webhooks/shopify", body, headers)


def woocommerce(client, body: bytes, topic: str = "order.created") -> tuple[int, dict]:
    headers = {
        "X-WC-Webhook-Source": WOO,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Signature": base64_hmac(body),
        "X-WC-Webhook-Delivery-ID": "d-1",
    }
    return post(client, "/webhooks/woocommerce", body, headers)


def threepl(client, svc, event: dict, provider: str = "acme") -> tuple[int, dict]:
    body = json.dumps(event).encode()
    at = int(svc.now().timestamp())
    signature = hmac.new(SECRET.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {"X-ThreePL-Signature": f"t={at},v1={signature}"}
    return post(client, f"/webhooks/3pl/{provider}", body, headers)


def easypost(client, event: dict, carrier: str = "easypost") -> tuple[int, dict]:
    body = json.dumps(event).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hmac-Signature": f"hmac-sha256-hex={signature}"}
    return post(client, f"/webhooks/carriers/{carrier}", body, headers)


def test_shopify__accepted_refused_and_ignored_as_the_readme_says(client, svc, counts):
    body = json.dumps(SHOPIFY_ORDER).encode()
    assert shopify(client, body) == (401, {"message": "unknown shop"})
    connect(client, "shopify")
    forged = shopify(client, body, **{"X-Shopify-Hmac-Sha256": "bm9wZQ=="})
    assert forged == (401, {"message": "invalid signature"})
    ignored = shopify(client, body, "products/update")
    assert ignored == (200, {"message": "topic not handled", "topic": "products/update"})
    assert shopify(client, b"[1]") == (400, {"message": "body is not a JSON object"})
    no_id = shopify(client, body, **{"X-Shopify-Event-Id": ""})
    assert no_id == (400, {"message": "missing event id or order id"})
    huge = b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert shopify(client, huge) == (413, {"message": "body over 2 MB"})
    # An order topic's body must be a whole order: ingestion would refuse a bare id (issue #15).
    bare = shopify(client, json.dumps({"id": 42, "line_items": []}).encode())
    assert bare == (400, {"message": "shopify orders/create: missing required field 'currency'"})
    assert shopify(client, body) == (200, {"message": "accepted"})
    refund = json.dumps({"id": 7, "order_id": 42}).encode()
    assert shopify(client, refund, "refunds/create")[0] == 200
    first, second = (sent["body"] for sent in svc.ingest_queue.sent)
    assert first["delivery_id"] == f"shopify:{SHOP}:evt-1:orders/create" and first["external_id"] == "42"
    assert second["delivery_id"] == f"shopify:{SHOP}:evt-1:refunds/create" and second["external_id"] == "42"
    assert json.loads(first["raw"]) == SHOPIFY_ORDER
    assert svc.ingest_queue.sent[0]["group_id"] == f"shopify:{SHOP}:42"
    rejected = [c for c in counts if c[0] == "WebhookRejected"]
    assert rejected[0] == ("WebhookRejected", "shopify", None)
    assert ("WebhookIgnoredTopic", "shopify", SHOP) in counts
    # Their metric lines went out; the status page's count is kept by the consumer that archives them.
    assert counts.count(("WebhookAccepted", "shopify", SHOP)) == 0


def test_woocommerce__the_unsigned_ping_is_exactly_200_and_deliveries_are_named_by_body(client, svc, counts):
    ping = client.http.post(
        "/webhooks/woocommerce",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=b"webhook_id=12",
    )
    assert ping.status_code == 200 and json.loads(ping.body) == {"message": "pong"}
    assert ("WebhookPing", "woocommerce", None) in counts
    body = json.dumps(WOO_ORDER).encode()
    assert woocommerce(client, body) == (401, {"message": "unknown store"})
    connect(client, "woocommerce")
    assert woocommerce(client, body, "product.created") == (
        200,
        {"message": "topic not handled", "topic": "product.created"},
    )
    assert woocommerce(client, b'{"no": "id"}') == (400, {"message": "body is not a JSON order"})
    # order.created carries the whole order: a bare id is refused at the edge (issue #15).
    status, answer = woocommerce(client, b'{"id": 9}')
    assert status == 400 and "lacks required field(s)" in answer["message"]
    assert woocommerce(client, body) == (200, {"message": "accepted"})
    [sent] = svc.ingest_queue.sent
    body_hash = hashlib.sha256(body).hexdigest()[:32]
    assert sent["body"]["delivery_id"] == f"woocommerce:{WOO}:d-1:{body_hash}"
    assert sent["group_id"] == f"woocommerce:{WOO}:9"


def threepl_event(event_type: str = "fulfillment_order.accepted") -> dict:
    line = {"line_id": "l1", "sku": "TEE", "quantity": 1, "shipped_quantity": 0}
    order = {"id": "fo_1", "reference": "shp-1", "order_id": "ord-1", "status": "accepted", "lines": [line]}
    return {"id": "evt_9", "type": event_type, "created": 1, "data": {"fulfillment_order": order}}


def test_threepl__the_provider_comes_from_the_path(client, svc):
    assert threepl(client, svc, threepl_event()) == (401, {"message": "unknown 3PL provider"})
    connect(client, "3pl")
    assert threepl(client, svc, threepl_event("inventory.changed")) == (
        200,
        {"message": "event type not handled", "type": "inventory.changed"},
    )
    status, answer = threepl(client, svc, {"id": "evt_9"})
    assert status == 400 and answer["message"].startswith("3pl event:")
    assert threepl(client, svc, threepl_event()) == (200, {"message": "accepted"})
    [sent] = svc.ingest_queue.sent
    assert sent["body"]["delivery_id"] == "3pl:acme:evt_9" and sent["group_id"] == "3pl:acme:ord-1"


def tracker_event(description: str = "tracker.updated") -> dict:
    tracker = {"object": "Tracker", "id": "trk_1", "tracking_code": "EZ1", "status": "in_transit"}
    return {"object": "Event", "id": "evt_ep", "description": description, "result": tracker}


def test_easypost__other_carriers_404_other_events_ignored_tracker_events_queued(client, svc):
    assert easypost(client, tracker_event(), "ups") == (
        404,
        {"message": "no carrier integration 'ups' (easypost is)"},
    )
    assert easypost(client, tracker_event()) == (401, {"message": "no EasyPost account connected"})
    connect(client, "easypost")
    assert easypost(client, tracker_event("batch.updated")) == (
        200,
        {"message": "event type not handled", "type": "batch.updated"},
    )
    status, answer = easypost(client, tracker_event("tracker.deleted"))
    assert status == 400 and "not a tracker event" in answer["message"]
    assert easypost(client, tracker_event()) == (200, {"message": "accepted"})
    [sent] = svc.ingest_queue.sent
    assert sent["body"]["delivery_id"] == "easypost:evt_ep" and sent["group_id"] == "easypost:default:EZ1"


def eventbridge(topic: str = "orders/create", shop: str = SHOP) -> dict:
    metadata = {"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": shop, "X-Shopify-Event-Id": "evt-eb"}
    return {
        "source": "aws.partner/shopify.com/1/unit",
        "detail-type": "shopifyWebhook",
        "detail": {"payload": SHOPIFY_ORDER, "metadata": metadata},
    }


def test_eventbridge__the_same_pipeline_unsigned_archived_instead_of_queued(client, svc, counts):
    from chalicelib.entrypoints.queue_records import from_shopify_event

    body = eventbridge()
    with pytest.raises(MalformedDelivery):
        from_shopify_event(body, json.dumps(body), svc)
    connect(client, "shopify")
    ignored = eventbridge("products/update")
    assert from_shopify_event(ignored, json.dumps(ignored), svc) is None
    delivery = from_shopify_event(body, json.dumps(body), svc)
    assert delivery is not None and delivery.delivery_id == f"shopify:{SHOP}:evt-eb:orders/create"
    assert delivery.payload == SHOPIFY_ORDER and delivery.external_id == "42"
    assert svc.raw_archive.items[delivery.delivery_id].raw == json.dumps(body).encode()
    assert svc.ingest_queue.sent == []
    assert ("WebhookIgnoredTopic", "shopify", SHOP) in counts
    assert ("WebhookAccepted", "shopify", SHOP) in counts


def test_an_accepted_delivery_is_counted_once_by_the_consumer_that_archives_it(client, svc, counts):
    """The answer waits for one AWS call (SendMessage): the status page's count moved to the consumer,
    which counts a message on its first receive only (a retried one was counted already)."""
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from chalicelib.entrypoints.queue_records import ingest_record

    connect(client, "shopify")
    assert shopify(client, json.dumps(SHOPIFY_ORDER).encode()) == (200, {"message": "accepted"})
    assert ("WebhookAccepted", "shopify", SHOP) not in counts
    message = json.dumps(svc.ingest_queue.sent[0]["body"])
    for receive_count in ("1", "2"):
        ingest_record(
            SQSRecord(
                {
                    "messageId": "m-1",
                    "body": message,
                    "attributes": {"ApproximateReceiveCount": receive_count},
                }
            )
        )
    assert counts.count(("WebhookAccepted", "shopify", SHOP)) == 1
    assert len(svc.raw_archive.items) == 1
