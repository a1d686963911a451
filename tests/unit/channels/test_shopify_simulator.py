"""The Shopify simulator: signed deliveries, Shopify's retry rules, fault knobs and the Admin read API."""

import json
import re
import socket
import uuid
from datetime import datetime
from decimal import Decimal

import pytest
import requests

from chalicelib.domain.channel_events import ChannelState, OrderSnapshot, RefundNotice
from chalicelib.domain.totals import totals_issues
from chalicelib.integrations.shopify.webhook import parse_shopify, verify_shopify_hmac
from local.simulators.shopify import API_VERSION, RETRY_DELAYS_S, UNAUTHORIZED_ERROR, ShopifySimulator
from tests.waiting import eventually
from tests.webhook_receiver import Signed, SignedReceiver

SHOP = "sim-store.myshopify.com"
SECRET = "shpss_simulated_webhook_secret"
TOKEN = "shpat_simulated_access_token"
API = f"/admin/api/{API_VERSION}"


class Received(Signed):
    @property
    def topic(self) -> str:
        return self.headers["X-Shopify-Topic"]

    def json(self) -> dict:
        return self.event


class Receiver(SignedReceiver):
    """Fails only deliveries of `fail_topic`, when one is set."""

    fail_topic: str | None = None

    def __init__(self) -> None:
        super().__init__("/webhooks/shopify", "X-Shopify-Hmac-Sha256", Received)

    def may_fail(self, item: Received) -> bool:
        return self.fail_topic in (None, item.topic)


@pytest.fixture
def make_sim(started, receiver):
    return started.maker(
        ShopifySimulator,
        SHOP,
        SECRET,
        TOKEN,
        webhook_url=receiver.url,
        seed=7,
        time_scale=1e-5,  # the 4-hour retry schedule in about 0.15 s
        senders=1,  # one delivery at a time, so arrival order is the send order
    )


def get(sim: ShopifySimulator, path: str, token: str | None = TOKEN, **params) -> requests.Response:
    headers = {"X-Shopify-Access-Token": token} if token else {}
    return requests.get(f"{sim.url}{path}", headers=headers, params=params, timeout=20)


def graphql(sim: ShopifySimulator, query: str, variables: dict | None = None) -> requests.Response:
    return requests.post(
        f"{sim.url}{API}/graphql.json",
        json={"query": query, "variables": variables or {}},
        headers={"X-Shopify-Access-Token": TOKEN},
        timeout=20,
    )


# --- webhooks -----------------------------------------------------------------------------------------


def test_webhooks__carry_shopifys_headers_and_a_signature_the_adapter_verifies(make_sim, receiver):
    sim = make_sim()
    order = sim.create_order(financial_status="paid")
    created, paid = receiver.wait_for(2)
    assert (created.topic, paid.topic) == ("orders/create", "orders/paid")
    for delivery in (created, paid):
        headers = delivery.headers
        assert verify_shopify_hmac(SECRET, delivery.body, headers["X-Shopify-Hmac-Sha256"])
        assert not verify_shopify_hmac("another-secret", delivery.body, headers["X-Shopify-Hmac-Sha256"])
        assert headers["X-Shopify-Shop-Domain"] == SHOP
        assert headers["X-Shopify-API-Version"] == API_VERSION == "2026-10"
        assert headers["Content-Type"] == "application/json"
        uuid.UUID(headers["X-Shopify-Webhook-Id"])
        uuid.UUID(headers["X-Shopify-Event-Id"])
        assert datetime.fromisoformat(headers["X-Shopify-Triggered-At"]).tzinfo is not None
        event = parse_shopify(delivery.topic, delivery.json(), headers["X-Shopify-Shop-Domain"])
        assert isinstance(event, OrderSnapshot)
        assert event.order.external_id == str(order["id"])
        assert event.state is ChannelState.PAID
    # Each topic is its own event; the body is compact UTF-8 JSON, as Shopify sends it.
    assert created.headers["X-Shopify-Event-Id"] != paid.headers["X-Shopify-Event-Id"]
    assert created.body == json.dumps(order, separators=(",", ":"), ensure_ascii=False).encode()
    assert sim.flush(20)
    assert [(d.topic, d.attempt, d.status) for d in sim.deliveries] == [
        ("orders/create", 1, 200),
        ("orders/paid", 1, 200),
    ]


def test_webhooks__a_failed_delivery_is_retried_with_the_original_body_and_ids(make_sim, receiver):
    receiver.fail_first, receiver.fail_topic = 2, "orders/create"
    sim = make_sim()
    order = sim.create_order(financial_status="pending")
    sim.update_order(order["id"], note="leave at the door")  # a later change must not leak into the retry
    received = receiver.wait_for(4)
    assert sim.flush(20)
    creates = [r for r in received if r.topic == "orders/create"]
    assert len(creates) == 3
    assert {r.body for r in creates} == {creates[0].body}
    assert creates[0].json()["note"] is None
    assert len({(r.headers["X-Shopify-Webhook-Id"], r.headers["X-Shopify-Event-Id"]) for r in creates}) == 1
    attempts = [(d.attempt, d.status) for d in sim.deliveries if d.topic == "orders/create"]
    assert attempts == [(1, 500), (2, 500), (3, 200)]


def test_webhooks__a_redirect_counts_as_a_failure(make_sim, receiver):
    receiver.fail_first, receiver.fail_status = 1, 302
    sim = make_sim()
    sim.create_order(financial_status="pending")
    receiver.wait_for(2)
    assert sim.flush(20)
    assert [(d.attempt, d.status, d.error) for d in sim.deliveries] == [(1, 302, "HTTP 302"), (2, 200, None)]


def test_webhooks__eight_retries_then_shopify_gives_up(make_sim, receiver):
    receiver.fail_first = 100
    sim = make_sim()
    sim.create_order(financial_status="pending")
    assert sim.flush(20)
    assert len(RETRY_DELAYS_S) == 8
    assert abs(sum(RETRY_DELAYS_S) - 4 * 3600) < 1
    assert [d.attempt for d in sim.deliveries] == list(range(1, 10))
    assert len(receiver.received) == 9


def test_webhooks__an_unreachable_endpoint_is_retried_and_flush_times_out_while_retries_wait(make_sim):
    with socket.socket() as bound_not_listening:  # held, so nothing else can answer on the port
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        sim = make_sim(webhook_url=f"http://127.0.0.1:{port}/refused", time_scale=1.0)
        sim.create_order(financial_status="pending")
        (first,) = eventually(lambda: sim.deliveries, what="the first delivery attempt")
        assert not sim.flush(0.3)  # the first retry is about a minute away
    assert (first.attempt, first.status, first.error) == (1, None, "ConnectionError")


def test_webhooks__a_duplicate_keeps_event_id_and_body_with_a_new_webhook_id(make_sim, receiver):
    sim = make_sim(duplicate_rate=1.0)
    sim.create_order(financial_status="pending")
    first, second = receiver.wait_for(2)
    assert first.body == second.body
    assert first.headers["X-Shopify-Event-Id"] == second.headers["X-Shopify-Event-Id"]
    assert first.headers["X-Shopify-Webhook-Id"] != second.headers["X-Shopify-Webhook-Id"]
    assert verify_shopify_hmac(SECRET, second.body, second.headers["X-Shopify-Hmac-Sha256"])


def test_webhooks__dropped_ones_are_never_sent_but_the_order_is_readable(make_sim, receiver):
    sim = make_sim(drop_rate=1.0)
    order = sim.create_order(financial_status="paid")
    assert sim.flush(20)
    assert receiver.received == [] and sim.deliveries == []
    assert [(d.topic, d.order_id) for d in sim.dropped] == [
        ("orders/create", order["id"]),
        ("orders/paid", order["id"]),
    ]
    assert get(sim, f"{API}/orders/{order['id']}.json").json()["order"]["id"] == order["id"]


def test_webhooks__reorder_delivers_a_later_event_first(make_sim, receiver):
    sim = make_sim(reorder=True, senders=1)
    order = sim.create_order(financial_status="pending")
    sim.update_order(order["id"], note="gift wrap")
    topics = [r.topic for r in receiver.wait_for(2)]
    assert topics == ["orders/updated", "orders/create"]
    created, updated = sorted(receiver.received, key=lambda r: r.topic)
    assert updated.json()["updated_at"] > created.json()["updated_at"]  # the hub's fence can sort it out


def test_webhooks__flush_releases_deliveries_held_for_reordering(make_sim, receiver):
    sim = make_sim(reorder=True, reorder_window=5)
    sim.create_order(financial_status="pending")
    assert sim.flush(20)
    assert [r.topic for r in receiver.received] == ["orders/create"]


def test_refund_order__emits_the_refund_resource_then_the_updated_order(make_sim, receiver):
    sim = make_sim()
    order = sim.create_order(
        currency="USD",
        items=[
            {"title": "Waxed Canvas Tote", "sku": "WCT", "price": "68.00", "quantity": 1},
            {"title": "Trail Socks", "sku": "TS3", "price": "24.00", "quantity": 2},
        ],
        shipping=["6.00"],
        discount={},
        financial_status="paid",
    )
    socks = order["line_items"][1]["id"]
    refund = sim.refund_order(order["id"], line_item_ids=[socks], note="too small")
    received = receiver.wait_for(4)
    assert [r.topic for r in received] == ["orders/create", "orders/paid", "refunds/create", "orders/updated"]
    notice = parse_shopify("refunds/create", received[2].json(), SHOP)
    assert isinstance(notice, RefundNotice)
    assert (notice.refund_id, notice.line_ids, notice.reason) == (
        str(refund["id"]),
        (str(socks),),
        "too small",
    )
    assert notice.amount == Decimal("48.00") + Decimal("2.88")  # the lines' subtotal and 6% tax
    snapshot = parse_shopify("orders/updated", received[3].json(), SHOP)
    assert isinstance(snapshot, OrderSnapshot)
    assert snapshot.state is ChannelState.PARTIALLY_REFUNDED
    assert snapshot.order.payment.amount_refunded == notice.amount
    with pytest.raises(ValueError, match="no refundable line items"):
        sim.refund_order(order["id"], line_item_ids=[socks])


def test_orders__of_every_kind_normalise_cleanly(make_sim, receiver):
    sim = make_sim(seed=3)
    jpy = sim.create_order(
        currency="JPY",
        items=[{"title": "抹茶", "price": "2800", "quantity": 2}],
        shipping=["800", "1200"],
        discount={"code": "WELCOME10", "type": "percentage", "value": "10"},
        financial_status="authorized",
        customer=None,
    )
    assert jpy["total_price"] == "7744"  # (5600 - 560) + (800 + 1200) + 10% tax on goods and shipping
    for _ in range(25):
        sim.create_order()
    sim.mark_paid(jpy["id"])
    sim.fulfil_order(jpy["id"])
    sim.cancel_order(sim.create_order(financial_status="paid")["id"], refund=True)
    assert sim.flush(20)
    for delivery in receiver.received:
        if delivery.topic == "orders/partially_fulfilled":
            continue
        event = parse_shopify(delivery.topic, delivery.json(), SHOP)
        if isinstance(event, OrderSnapshot):
            assert totals_issues(event.order) == [], delivery.body
    currencies = {o["currency"] for o in sim.orders()}
    assert len(currencies) >= 3
    topics = {r.topic for r in receiver.received}
    assert topics >= {
        "orders/create",
        "orders/paid",
        "orders/updated",
        "orders/fulfilled",
        "orders/cancelled",
    }
    assert "refunds/create" in topics


def test_actions__refuse_what_shopify_refuses(make_sim):
    sim = make_sim(webhook_url=None)
    order = sim.create_order(financial_status="pending")
    with pytest.raises(ValueError, match="nothing to refund"):
        sim.refund_order(order["id"])
    sim.cancel_order(order["id"])
    assert sim.get_order(order["id"])["financial_status"] == "voided"
    with pytest.raises(ValueError, match="already cancelled"):
        sim.cancel_order(order["id"])
    with pytest.raises(KeyError):
        sim.mark_paid(1)


# --- Admin API ----------------------------------------------------------------------------------------


def test_api__needs_the_access_token(make_sim):
    sim = make_sim(webhook_url=None)
    for token in (None, "shpat_wrong"):
        answer = get(sim, f"{API}/orders.json", token=token)
        assert answer.status_code == 401
        assert answer.json() == {"errors": UNAUTHORIZED_ERROR}
    graphql_answer = requests.post(
        f"{sim.url}{API}/graphql.json", json={"query": "{ shop { name } }"}, timeout=20
    )
    assert graphql_answer.status_code == 401


def test_api__gets_one_order_or_404_with_the_call_limit_header(make_sim):
    sim = make_sim(webhook_url=None)
    order = sim.create_order()
    answer = get(sim, f"{API}/orders/{order['id']}.json")
    assert answer.status_code == 200
    assert answer.json() == {"order": sim.get_order(order["id"])}
    assert re.fullmatch(r"\d+/40", answer.headers["X-Shopify-Shop-Api-Call-Limit"])
    missing = get(sim, f"{API}/orders/123.json")
    assert (missing.status_code, missing.json()) == (404, {"errors": "Not Found"})
    assert "X-Shopify-Shop-Api-Call-Limit" in missing.headers


def test_api__lists_orders_with_link_header_pagination(make_sim):
    sim = make_sim(webhook_url=None)
    ids = [sim.create_order()["id"] for _ in range(5)]
    sim.cancel_order(ids[0])
    seen, pages = [], 0
    url = f"{sim.url}{API}/orders.json?status=any&limit=2"
    while url:
        answer = requests.get(url, headers={"X-Shopify-Access-Token": TOKEN}, timeout=20)
        assert answer.status_code == 200
        seen += [o["id"] for o in answer.json()["orders"]]
        pages += 1
        if pages == 2:
            assert 'rel="previous"' in answer.headers["Link"]
        url = answer.links.get("next", {}).get("url")
    assert seen == list(reversed(ids))  # newest first, each once
    assert pages == 3
    open_orders = get(sim, f"{API}/orders.json", limit=10).json()["orders"]
    assert ids[0] not in {o["id"] for o in open_orders}  # the default status=open leaves out the cancelled


def test_api__page_info_cannot_be_combined_with_filters(make_sim):
    sim = make_sim(webhook_url=None)
    for _ in range(3):
        sim.create_order()
    first = get(sim, f"{API}/orders.json", limit=1, status="any")
    page_info = re.search(r"page_info=([^&>]+)", first.headers["Link"]).group(1)
    answer = get(sim, f"{API}/orders.json", page_info=page_info, status="any")
    assert answer.status_code == 400
    assert "page_info" in answer.json()["errors"]
    assert get(sim, f"{API}/orders.json", page_info="not-a-cursor").status_code == 400


def test_api__filters_by_updated_at_min(make_sim):
    sim = make_sim(webhook_url=None)
    old = sim.create_order()
    new = sim.create_order()
    answer = get(
        sim, f"{API}/orders.json", status="any", updated_at_min=new["updated_at"], fields="id,updated_at"
    )
    assert answer.json()["orders"] == [{"id": new["id"], "updated_at": new["updated_at"]}]
    assert old["updated_at"] < new["updated_at"]


def test_api__rest_leaky_bucket_answers_429_with_retry_after(make_sim):
    sim = make_sim(webhook_url=None, clock=lambda: 0.0)  # no time passes: the bucket never leaks
    session = requests.Session()
    session.headers["X-Shopify-Access-Token"] = TOKEN
    statuses = []
    for _ in range(41):
        answer = session.get(f"{sim.url}{API}/orders.json", timeout=20)
        statuses.append(answer.status_code)
    assert statuses == [200] * 40 + [429]
    assert answer.headers["Retry-After"] == "2.0"
    assert answer.headers["X-Shopify-Shop-Api-Call-Limit"] == "40/40"
    assert "Exceeded 2 calls per second" in answer.json()["errors"]


def test_api__fail_api_answers_5xx(make_sim):
    sim = make_sim(webhook_url=None)
    sim.fail_api(times=1, status=503)
    assert get(sim, f"{API}/orders.json").status_code == 503
    assert get(sim, f"{API}/orders.json").status_code == 200


ORDERS_QUERY = """
query Orders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    edges { cursor node { id legacyResourceId updatedAt name } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def test_graphql__orders_updated_since_with_cursor_pagination_and_cost(make_sim):
    sim = make_sim(webhook_url=None)
    before = sim.create_order()
    later = [sim.create_order() for _ in range(3)]
    since = datetime.fromisoformat(before["updated_at"]).isoformat()
    variables = {"first": 2, "query": f"updated_at:>'{since}'"}
    seen: list[str] = []
    while True:
        body = graphql(sim, ORDERS_QUERY, variables).json()
        connection = body["data"]["orders"]
        for edge in connection["edges"]:
            node = edge["node"]
            assert node["id"] == f"gid://shopify/Order/{node['legacyResourceId']}"
            assert node["updatedAt"].endswith("Z")
            seen.append(node["legacyResourceId"])
        cost = body["extensions"]["cost"]
        assert cost["requestedQueryCost"] == 4
        assert cost["actualQueryCost"] == 2 + len(connection["edges"])
        assert cost["throttleStatus"]["maximumAvailable"] == 1000.0
        assert cost["throttleStatus"]["restoreRate"] == 50.0
        if not connection["pageInfo"]["hasNextPage"]:
            break
        variables["after"] = connection["pageInfo"]["endCursor"]
    assert seen == [str(o["id"]) for o in later]


def test_graphql__throttled_and_unsupported_queries_answer_errors(make_sim):
    sim = make_sim(webhook_url=None)
    sim.graphql_bucket.size = 10
    throttled = graphql(sim, ORDERS_QUERY, {"first": 20}).json()
    assert throttled["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert throttled["extensions"]["cost"]["requestedQueryCost"] == 22
    unsupported = graphql(sim, "{ products(first: 1) { edges { node { id } } } }").json()
    assert "orders" in unsupported["errors"][0]["message"]
    bad_search = graphql(sim, ORDERS_QUERY, {"first": 1, "query": "tag:vip"}).json()
    assert "tag:vip" in bad_search["errors"][0]["message"]


def test_stop__without_start_returns_at_once():
    sim = ShopifySimulator(SHOP, SECRET, TOKEN)
    sim.stop()
