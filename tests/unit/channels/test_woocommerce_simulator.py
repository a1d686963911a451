"""The WooCommerce simulator: deliveries signed and scheduled as core does them, and the REST v3 reads."""

import base64
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests

from chalicelib.domain.channel_events import ChannelState
from chalicelib.domain.totals import totals_issues
from chalicelib.integrations.woocommerce.webhook import (
    bare_deletion_id,
    is_ping,
    parse_woocommerce,
    verify_wc_signature,
)
from local.simulators.woocommerce import WooCommerceSimulator
from tests.webhook_receiver import WebhookReceiver

SITE = "https://shop.example"
SECRET = "whsec-wc-0f3a"
KEY = "ck_4b1f0c2d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"
CONSUMER_SECRET = "cs_9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"


class Receiver(WebhookReceiver):
    """Answers with the statuses it is told to, in order; `default_status` once they run out."""

    path = "/webhooks/woocommerce"

    def __init__(self):
        self.statuses = []
        self.default_status = 200
        super().__init__()

    @property
    def requests(self):
        return self.received

    def status_for(self, item, index):
        return self.statuses.pop(0) if self.statuses else self.default_status

    def topics(self):
        with self._cond:
            return [headers["X-WC-Webhook-Topic"] for headers, _ in self.received]


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sim(started, receiver, clock):
    simulator = WooCommerceSimulator(
        SITE,
        SECRET,
        KEY,
        CONSUMER_SECRET,
        webhook_url=receiver.url,
        seed=7,
        delivery_delay=0,
        timeout=20,
        clock=clock,
    )
    return started(simulator.start())


def flushed(sim):
    assert sim.flush(20), "deliveries still pending"
    return sim


# ----- deliveries -------------------------------------------------------------------------------------


def test_checkout__fires_order_created_then_order_updated_each_signed_as_woocommerce_signs(sim, receiver):
    order = sim.create_order(payment_method="stripe", currency="EUR")
    flushed(sim)
    requests_ = receiver.wait_for(2)
    assert receiver.topics() == ["order.created", "order.updated"]
    for headers, body in requests_:
        assert verify_wc_signature(SECRET, body, headers["X-WC-Webhook-Signature"])
        assert headers["X-WC-Webhook-Source"] == "https://shop.example/"
        assert headers["X-WC-Webhook-Resource"] == "order"
        assert headers["X-WC-Webhook-Event"] == headers["X-WC-Webhook-Topic"].split(".")[1]
        assert headers["Content-Type"] == "application/json"
        assert (
            headers["User-Agent"].startswith("WooCommerce/9.")
            and "Hookshot (WordPress/6." in headers["User-Agent"]
        )
        assert len(headers["X-WC-Webhook-Delivery-ID"]) == 32
        # wp_json_encode: compact, slashes escaped, non-ASCII as \u escapes
        assert b'":' in body and b'": ' not in body and b"\\/" in body and body.isascii()
        snapshot = parse_woocommerce(
            headers["X-WC-Webhook-Topic"], json.loads(body), headers["X-WC-Webhook-Source"]
        )
        # The payload is built when sent, so even order.created already shows the paid order.
        assert snapshot.state is ChannelState.PAID
        assert snapshot.order.external_id == str(order["id"])
    created, updated = (headers["X-WC-Webhook-ID"] for headers, _ in requests_)
    assert created != updated  # one webhook per topic


def test_a_re_encoded_body_from_the_simulator_fails_verification(sim, receiver):
    sim.create_order(status="pending")
    flushed(sim)
    ((headers, body),) = receiver.wait_for(1)
    reencoded = json.dumps(json.loads(body)).encode()
    assert not verify_wc_signature(SECRET, reencoded, headers["X-WC-Webhook-Signature"])


def test_a_failed_delivery_is_never_retried(sim, receiver):
    receiver.default_status = 500
    sim.create_order(status="pending")
    flushed(sim)
    receiver.wait_for(1)
    assert flushed(sim).deliveries[-1].outcome == "failed"
    assert len(receiver.requests) == 1  # nothing left pending: flush returned, and no second attempt was made
    assert sim.webhook("order.created").failure_count == 1


def test_the_webhook_is_disabled_once_consecutive_failures_exceed_five(sim, receiver):
    receiver.default_status = 503
    for attempt in range(1, 8):
        sim.create_order(status="pending")
        flushed(sim)
        hook = sim.webhook("order.created")
        # core increments up to 6, and the 7th failure (count already > 5) disables the webhook
        assert (hook.status, hook.failure_count) == (("disabled", 6) if attempt == 7 else ("active", attempt))
    sim.create_order(status="pending")
    flushed(sim)
    assert len(receiver.requests) == 7  # a disabled webhook schedules nothing
    sim.set_webhook_status("order.created", "active")
    assert sim.webhook("order.created").failure_count == 0


def test_a_success_resets_the_failure_count_and_302_counts_as_success(sim, receiver):
    receiver.statuses = [500, 500, 500, 302]
    for _ in range(3):
        sim.create_order(status="pending")
        flushed(sim)
    assert sim.webhook("order.created").failure_count == 3
    sim.create_order(status="pending")
    flushed(sim)
    assert sim.webhook("order.created").failure_count == 0
    assert [d.outcome for d in sim.deliveries] == ["failed"] * 3 + ["delivered"]
    assert len(receiver.requests) == 4  # the redirect was not followed


def test_quick_updates_collapse_into_one_delivery_carrying_the_latest_state(sim, receiver):
    # GIVEN Action Scheduler has not run yet
    sim.pause_deliveries()
    order = sim.create_order(status="pending")
    sim.update_status(order["id"], "processing")
    sim.update_status(order["id"], "completed")
    # WHEN it runs
    sim.resume_deliveries()
    flushed(sim)
    # THEN one delivery per webhook, each built at send time
    requests_ = receiver.wait_for(2)
    assert receiver.topics() == ["order.created", "order.updated"]
    assert [json.loads(body)["status"] for _, body in requests_] == ["completed", "completed"]


def test_a_refund_arrives_as_order_updated_with_negative_refund_totals(sim, receiver):
    order = sim.create_order(payment_method="stripe", status="processing", currency="USD")
    flushed(sim)
    receiver.clear()
    refund = sim.refund_order(
        order["id"], "5.00", line_item_ids=[order["line_items"][0]["id"]], reason="scratched"
    )
    flushed(sim)
    ((headers, body),) = receiver.wait_for(1)
    payload = json.loads(body)
    assert headers["X-WC-Webhook-Topic"] == "order.updated"
    assert payload["refunds"] == [{"id": refund["id"], "reason": "scratched", "total": "-5.00"}]
    snapshot = parse_woocommerce("order.updated", payload, headers["X-WC-Webhook-Source"])
    assert snapshot.state is ChannelState.PARTIALLY_REFUNDED
    # refunding the rest flips the order to refunded, as wc_create_refund does
    receiver.clear()
    sim.refund_order(order["id"], snapshot.order.totals.total - snapshot.order.payment.amount_refunded)
    flushed(sim)
    ((headers, body),) = receiver.wait_for(1)
    assert json.loads(body)["status"] == "refunded"
    assert parse_woocommerce("order.updated", json.loads(body), SITE + "/").state is ChannelState.REFUNDED
    with pytest.raises(ValueError, match="Invalid refund amount"):
        sim.refund_order(order["id"], "0.01")


def test_delete_sends_only_the_id_and_restore_sends_the_whole_order(sim, receiver, clock):
    order = sim.create_order(status="on-hold")
    flushed(sim)
    receiver.clear()
    clock.now += timedelta(minutes=5)
    sim.delete_order(order["id"])
    flushed(sim)
    ((headers, body),) = receiver.wait_for(1)
    assert headers["X-WC-Webhook-Topic"] == "order.deleted"
    assert body == f'{{"id":{order["id"]}}}'.encode()
    assert bare_deletion_id("order.deleted", json.loads(body)) == str(order["id"])
    trashed = sim.get_order(order["id"])
    assert parse_woocommerce("order.deleted", trashed, SITE + "/").state is ChannelState.DELETED
    clock.now += timedelta(minutes=5)
    sim.restore_order(order["id"])
    flushed(sim)
    headers, body = receiver.wait_for(2)[1]
    restored = parse_woocommerce("order.restored", json.loads(body), SITE + "/")
    assert (headers["X-WC-Webhook-Topic"], restored.state) == ("order.restored", ChannelState.OPEN)
    assert json.loads(body)["status"] == "on-hold"


def test_delivery_ids_are_a_hash_of_webhook_and_second_not_unique_per_delivery(sim, clock):
    # get_new_delivery_id() is wp_hash(webhook id . time()): two orders in the same second share one.
    sim.create_order(status="pending")
    sim.create_order(status="pending")
    flushed(sim)
    clock.now += timedelta(seconds=1)
    sim.create_order(status="pending")
    flushed(sim)
    ids = [d.delivery_id for d in sim.deliveries]
    assert ids[0] == ids[1] != ids[2]


def test_the_creation_ping_is_form_encoded_and_needs_exactly_200(sim, receiver):
    assert sim.send_ping("order.created")
    ((headers, body),) = receiver.wait_for(1)
    assert body == b"webhook_id=1"
    assert "X-WC-Webhook-Signature" not in headers
    assert is_ping(headers["Content-Type"], body) == 1
    receiver.default_status = 204
    assert not sim.send_ping("order.updated")


def test_dropped_deliveries_are_never_sent_and_duplicates_repeat_the_exact_request(sim, receiver):
    sim.drop_rate = 1.0
    sim.create_order(status="pending")
    flushed(sim)
    assert [d.outcome for d in sim.deliveries] == ["dropped"]
    assert receiver.requests == []
    sim.drop_rate, sim.duplicate_rate = 0.0, 1.0
    sim.create_order(status="pending")
    flushed(sim)
    (first_headers, first_body), (second_headers, second_body) = receiver.wait_for(2)
    assert first_body == second_body
    assert dict(first_headers.items()) == dict(second_headers.items())
    assert [d.duplicate for d in sim.deliveries[1:]] == [False, True]


def test_generated_orders_are_realistic_and_their_figures_add_up():
    store = WooCommerceSimulator(SITE, SECRET, KEY, CONSUMER_SECRET, seed=11)  # no webhooks, not started
    try:
        orders = [store.create_order() for _ in range(60)]
        orders.append(store.create_order(currency="JPY", coupon_percent=10, shipping_line_count=2, fee=True))
        seen = Counter()
        for payload in orders:
            order = parse_woocommerce("order.created", payload, SITE + "/").order
            assert totals_issues(order) == [], payload["id"]
            seen["jpy"] += order.currency == "JPY"
            seen["coupon"] += bool(payload["coupon_lines"])
            seen["multi_shipping"] += len(payload["shipping_lines"]) > 1
            seen["fee"] += bool(payload["fee_lines"])
            seen["non_ascii"] += not (order.customer.name or "").isascii()
            seen["unpaid"] += payload["date_paid_gmt"] is None
        assert all(seen[k] for k in ("jpy", "coupon", "multi_shipping", "fee", "non_ascii", "unpaid")), seen
        assert len({o["id"] for o in orders}) == len(orders)
    finally:
        store.stop()


# ----- REST v3 read API ------------------------------------------------------------------------------------


def basic(key=KEY, secret=CONSUMER_SECRET):
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()}


def test_api__needs_the_consumer_key_and_secret(sim):
    url = f"{sim.url}/wp-json/wc/v3/orders"
    anonymous = requests.get(url, timeout=20)
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "code": "woocommerce_rest_cannot_view",
        "message": "Sorry, you cannot list resources.",
        "data": {"status": 401},
    }
    wrong = requests.get(url, headers=basic(secret="cs_wrong"), timeout=20)
    assert (wrong.status_code, wrong.json()["code"]) == (401, "woocommerce_rest_authentication_error")
    assert requests.get(url, headers=basic(), timeout=20).status_code == 200
    as_query = requests.get(url, params={"consumer_key": KEY, "consumer_secret": CONSUMER_SECRET}, timeout=20)
    assert as_query.status_code == 200


def test_api__reads_one_order_and_answers_404_for_an_unknown_id(sim):
    order = sim.create_order(status="pending")
    found = requests.get(f"{sim.url}/wp-json/wc/v3/orders/{order['id']}", headers=basic(), timeout=20)
    assert found.status_code == 200
    assert found.json()["id"] == order["id"]
    assert found.json()["_links"]["self"][0]["href"] == f"{SITE}/wp-json/wc/v3/orders/{order['id']}"
    missing = requests.get(f"{sim.url}/wp-json/wc/v3/orders/999999", headers=basic(), timeout=20)
    assert missing.status_code == 404
    assert missing.json()["code"] == "woocommerce_rest_shop_order_invalid_id"


def test_api__pages_orders_modified_after_a_time(sim, clock):
    ids = []
    for _ in range(5):
        ids.append(sim.create_order(status="pending")["id"])
        clock.now += timedelta(minutes=1)
    sim.update_status(ids[0], "cancelled")  # modified last now
    since = "2026-11-23T12:01:00"  # UTC: orders 3, 4, 5 and the cancelled first one are newer
    query = {
        "modified_after": since,
        "dates_are_gmt": "true",
        "orderby": "modified",
        "order": "asc",
        "per_page": 3,
    }
    first = requests.get(
        f"{sim.url}/wp-json/wc/v3/orders", params={**query, "page": 1}, headers=basic(), timeout=20
    )
    second = requests.get(
        f"{sim.url}/wp-json/wc/v3/orders", params={**query, "page": 2}, headers=basic(), timeout=20
    )
    assert (first.headers["X-WP-Total"], first.headers["X-WP-TotalPages"]) == ("4", "2")
    assert [o["id"] for o in first.json() + second.json()] == [ids[2], ids[3], ids[4], ids[0]]
    # Without dates_are_gmt WooCommerce reads a bare date as the site's local time (UTC-3 here).
    local = requests.get(
        f"{sim.url}/wp-json/wc/v3/orders", params={"modified_after": since}, headers=basic(), timeout=20
    )
    assert local.headers["X-WP-Total"] == "0"


def test_api__leaves_trashed_orders_out_unless_asked_and_rejects_bad_paging(sim):
    kept = sim.create_order(status="pending")
    trashed = sim.create_order(status="pending")
    sim.delete_order(trashed["id"])
    url = f"{sim.url}/wp-json/wc/v3/orders"
    assert [o["id"] for o in requests.get(url, headers=basic(), timeout=20).json()] == [kept["id"]]
    in_trash = requests.get(url, params={"status": "trash"}, headers=basic(), timeout=20).json()
    assert [o["id"] for o in in_trash] == [trashed["id"]]
    too_many = requests.get(url, params={"per_page": 101}, headers=basic(), timeout=20)
    assert (too_many.status_code, too_many.json()["code"]) == (400, "rest_invalid_param")
