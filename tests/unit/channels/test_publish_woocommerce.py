"""Publishing milestones to WooCommerce: the REST v3 publisher against the WooCommerce simulator."""

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.publishing import Milestone, PublishRejected, PublishThrottled, PublishUnavailable
from chalicelib.integrations.woocommerce.publisher import WooCommercePublisher, publication_marker
from chalicelib.integrations.woocommerce.webhook import parse_woocommerce
from local.simulators.woocommerce import WooCommerceSimulator
from tests.webhook_receiver import WebhookReceiver

SITE = "https://shop.example"
KEY = "ck_4b1f0c2d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"
CONSUMER_SECRET = "cs_9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


class Receiver(WebhookReceiver):
    path = "/webhooks/woocommerce"

    def topics(self):
        with self._cond:
            return [headers["X-WC-Webhook-Topic"] for headers, _ in self.received]


@pytest.fixture
def sim(started, receiver):
    simulator = WooCommerceSimulator(
        SITE,
        "whsec-wc",
        KEY,
        CONSUMER_SECRET,
        webhook_url=receiver.url,
        seed=11,
        delivery_delay=0,
        timeout=20,
    )
    return started(simulator.start())


@pytest.fixture
def publisher(sim, sleeps):
    return WooCommercePublisher(SITE, KEY, CONSUMER_SECRET, api_base=sim.url, timeout=20, sleep=sleeps)


def canonical(sim, order_id):
    """The hub's order, normalised from the store's order as a webhook would carry it."""
    return parse_woocommerce("order.created", sim.get_order(order_id), SITE + "/").order


def hub_notes(sim, order_id):
    return [n for n in sim.notes(order_id) if "[order-hub " in n["note"]]


def shipped(pub_id, lines, *, complete, parcels=None):
    return Milestone(
        publication_id=pub_id,
        kind="shipped",
        at=AT,
        shipment_id=pub_id,
        lines=lines,
        parcels=parcels or [{"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}],
        complete=complete,
    )


def basic():
    return {"Authorization": "Basic " + base64.b64encode(f"{KEY}:{CONSUMER_SECRET}".encode()).decode()}


# ----- milestones ------------------------------------------------------------------------------------------


def test_shipped__partial_note_then_completed_on_the_last_each_once_even_if_published_twice(sim, publisher):
    placed = sim.create_order(payment_method="stripe", item_count=2)
    order = canonical(sim, placed["id"])
    first, second = order.lines[0], order.lines[1]
    partial = shipped("pub-ship-1", [{"line_id": first.line_id, "quantity": first.quantity}], complete=False)

    answer = publisher.publish(order, partial)
    again = publisher.publish(order, partial)

    (note,) = hub_notes(sim, placed["id"])
    assert note["customer_note"] is True
    assert "Shipped with UPS, tracking 1Z999AA10123456784." in note["note"]
    assert f"{first.quantity} × {first.title}" in note["note"]
    assert "partial shipment" in note["note"]
    assert publication_marker("pub-ship-1") in note["note"]
    assert sim.status(placed["id"]) == "processing"
    assert (answer["note_id"], answer["replayed"]) == (note["id"], False)
    assert (again["note_id"], again["replayed"]) == (note["id"], True)

    last = shipped(
        "pub-ship-2",
        [{"line_id": second.line_id, "quantity": second.quantity}],
        complete=True,
        parcels=[
            {"carrier": "DHL", "tracking_number": "JD0146000011"},
            {"carrier": "DHL", "tracking_number": "JD0146000012"},
        ],
    )
    done = publisher.publish(order, last)
    publisher.publish(order, last)

    latest, earlier = hub_notes(sim, placed["id"])  # newest first, as WooCommerce lists notes
    assert earlier["id"] == note["id"]
    assert "Shipped with DHL, tracking JD0146000011, JD0146000012." in latest["note"]
    assert "partial" not in latest["note"]
    assert (done["status"], done["changed"]) == ("completed", True)
    assert sim.status(placed["id"]) == "completed"
    changes = [n for n in sim.notes(placed["id"]) if n["note"].endswith("to Completed.")]
    assert len(changes) == 1


def test_delivered__a_private_note_once_and_the_status_stays(sim, publisher):
    placed = sim.create_order(payment_method="cod", status="completed")
    order = canonical(sim, placed["id"])
    milestone = Milestone(
        publication_id="pub-delivered",
        kind="delivered",
        at=AT,
        parcels=[{"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}],
    )
    publisher.publish(order, milestone)
    publisher.publish(order, milestone)

    (note,) = hub_notes(sim, placed["id"])
    assert note["customer_note"] is False
    assert note["note"].startswith("Delivered on 2026-11-24 09:30 UTC (UPS 1Z999AA10123456784).")
    assert sim.status(placed["id"]) == "completed"


def test_cancelled__reaches_the_store_once_and_leaves_a_refunded_order_alone(sim, publisher, receiver):
    placed = sim.create_order(payment_method="bacs")  # on-hold, awaiting the transfer
    order = canonical(sim, placed["id"])
    assert sim.flush(20)
    receiver.received.clear()
    milestone = Milestone(publication_id="pub-cancel", kind="cancelled", at=AT, reason="out of stock")

    answer = publisher.publish(order, milestone)
    again = publisher.publish(order, milestone)

    assert sim.status(placed["id"]) == "cancelled"
    assert (answer["changed"], again["changed"]) == (True, False)
    (note,) = hub_notes(sim, placed["id"])
    assert "out of stock" in note["note"] and note["customer_note"] is False
    # WooCommerce core fires order.updated on the status change; notes fire nothing.
    assert sim.flush(20)
    assert receiver.topics() == ["order.updated"]
    assert json.loads(receiver.received[0][1])["status"] == "cancelled"

    refunded = sim.create_order(payment_method="cod", status="refunded")
    skipped = publisher.publish(canonical(sim, refunded["id"]), milestone)
    assert (skipped["status"], skipped["changed"]) == ("refunded", False)
    assert sim.status(refunded["id"]) == "refunded"


def test_refunded__money_the_hub_refunded_itself_is_recorded_once_without_the_gateway(sim, publisher):
    placed = sim.create_order(payment_method="stripe", status="pending", currency="USD")
    sim.attach_stripe_intent(placed["id"], "pi_3HubHeldIntent0001")
    order = canonical(sim, placed["id"])
    assert order.payment.source == "stripe" and order.payment.reference == "pi_3HubHeldIntent0001"
    milestone = Milestone(
        publication_id="pub-refund-1", kind="refunded", at=AT, amount="5.00", reason="damaged"
    )

    answer = publisher.publish(order, milestone)
    again = publisher.publish(order, milestone)

    (refund,) = sim.refunds(placed["id"])
    assert refund["amount"] == "5.00"
    assert refund["refunded_payment"] is False  # api_refund false: the hub's Stripe already paid it back
    assert refund["reason"] == "damaged " + publication_marker("pub-refund-1")
    assert (answer["refund_id"], answer["api_refund"], answer["replayed"]) == (refund["id"], False, False)
    assert (again["refund_id"], again["replayed"]) == (refund["id"], True)
    snapshot = parse_woocommerce("order.updated", sim.get_order(placed["id"]), SITE + "/")
    assert snapshot.order.payment.amount_refunded == Decimal("5.00")


def test_refunded__money_the_store_holds_is_refunded_through_its_gateway(sim, publisher, receiver):
    placed = sim.create_order(payment_method="ppcp-gateway", currency="EUR")
    order = canonical(sim, placed["id"])
    assert sim.flush(20)
    receiver.received.clear()
    milestone = Milestone(
        publication_id="pub-refund-all", kind="refunded", at=AT, amount=f"{order.totals.total:f}"
    )

    publisher.publish(order, milestone)

    (refund,) = sim.refunds(placed["id"])
    assert refund["refunded_payment"] is True
    assert Decimal(refund["amount"]) == order.totals.total
    assert sim.status(placed["id"]) == "refunded"  # fully refunded, as wc_create_refund leaves it
    assert sim.flush(20)
    assert receiver.topics() == ["order.updated"]  # core has no refund topic


def test_refunded__over_the_refundable_amount_is_rejected_without_retrying(sim, publisher, sleeps):
    placed = sim.create_order(payment_method="ppcp-gateway", currency="USD")
    order = canonical(sim, placed["id"])
    too_much = f"{order.totals.total + 1:f}"
    milestone = Milestone(publication_id="pub-refund-x", kind="refunded", at=AT, amount=too_much)

    with pytest.raises(PublishRejected, match=r"woocommerce_rest_cannot_create_order_refund: Invalid refund"):
        publisher.publish(order, milestone)
    assert sim.refunds(placed["id"]) == [] and sleeps == []


def test_refunded__a_gateway_that_cannot_refund_is_rejected_not_recorded(sim, publisher):
    placed = sim.create_order(payment_method="cod", status="processing")
    milestone = Milestone(publication_id="pub-refund-cod", kind="refunded", at=AT, amount="1.00")
    with pytest.raises(PublishRejected, match="does not support automatic refunds"):
        publisher.publish(canonical(sim, placed["id"]), milestone)
    assert sim.refunds(placed["id"]) == []


def test_paid__moves_a_waiting_order_to_processing_once_and_leaves_later_statuses(sim, publisher):
    placed = sim.create_order(payment_method="bacs")
    order = canonical(sim, placed["id"])
    milestone = Milestone(publication_id="pub-paid", kind="paid", at=AT)
    assert sim.status(placed["id"]) == "on-hold"

    assert publisher.publish(order, milestone)["changed"] is True
    assert publisher.publish(order, milestone)["changed"] is False
    assert sim.status(placed["id"]) == "processing"

    done = sim.create_order(payment_method="cod", status="completed")
    assert publisher.publish(canonical(sim, done["id"]), milestone)["changed"] is False
    assert sim.status(done["id"]) == "completed"


# ----- failures ------------------------------------------------------------------------------------------


def test_a_429_is_waited_out_for_its_retry_after_and_the_note_written_once(sim, publisher, sleeps):
    placed = sim.create_order(payment_method="stripe")
    order = canonical(sim, placed["id"])
    sim.fail_writes(1, 429, retry_after=2)

    publisher.publish(order, Milestone(publication_id="pub-429", kind="delivered", at=AT))

    assert sleeps == [2.0]
    assert len(hub_notes(sim, placed["id"])) == 1


def test_throttled_on_every_attempt__publish_throttled_with_the_retry_after(sim, publisher, sleeps):
    placed = sim.create_order(payment_method="stripe")
    sim.fail_writes(3, 429, retry_after=4)
    with pytest.raises(PublishThrottled) as caught:
        publisher.publish(
            canonical(sim, placed["id"]), Milestone(publication_id="p", kind="delivered", at=AT)
        )
    assert caught.value.retry_after == 4.0
    assert sleeps == [4.0, 4.0]
    assert hub_notes(sim, placed["id"]) == []


def test_a_retry_after_longer_than_max_wait_is_handed_back_at_once(sim, sleeps):
    publisher = WooCommercePublisher(SITE, KEY, CONSUMER_SECRET, api_base=sim.url, sleep=sleeps, max_wait=5)
    placed = sim.create_order(payment_method="stripe")
    sim.fail_writes(1, 429, retry_after=60)
    with pytest.raises(PublishThrottled) as caught:
        publisher.publish(
            canonical(sim, placed["id"]), Milestone(publication_id="p", kind="delivered", at=AT)
        )
    assert (caught.value.retry_after, sleeps) == (60.0, [])


def test_a_persistent_500_is_publish_unavailable_after_backing_off(sim, publisher, sleeps):
    placed = sim.create_order(payment_method="bacs")
    sim.fail_writes(5, 500)
    with pytest.raises(PublishUnavailable, match="500 internal_server_error"):
        publisher.publish(canonical(sim, placed["id"]), Milestone(publication_id="p", kind="paid", at=AT))
    assert sleeps == [0.5, 1.0]
    assert sim.status(placed["id"]) == "on-hold"


def test_a_400_is_rejected_with_woocommerces_code(sim, publisher, sleeps):
    placed = sim.create_order(payment_method="stripe", status="processing")
    milestone = Milestone(publication_id="p", kind="refunded", at=AT, amount="-5.00")
    with pytest.raises(PublishRejected, match="400 woocommerce_rest_invalid_order_refund"):
        publisher.publish(canonical(sim, placed["id"]), milestone)
    assert sleeps == []


def test_wrong_credentials_are_rejected_and_never_shown(sim, sleeps):
    publisher = WooCommercePublisher(SITE, KEY, "cs_wrong_secret", api_base=sim.url, sleep=sleeps)
    placed = sim.create_order(payment_method="stripe")
    with pytest.raises(PublishRejected, match="401 woocommerce_rest_authentication_error") as caught:
        publisher.publish(
            canonical(sim, placed["id"]), Milestone(publication_id="p", kind="delivered", at=AT)
        )
    assert "cs_wrong_secret" not in str(caught.value) and "cs_wrong_secret" not in repr(publisher)


def test_a_lost_answer_is_not_written_twice(sim, sleeps):
    class LosesTheFirstWriteAnswer(requests.Session):
        lost = False

        def request(self, method, url, **kwargs):
            response = super().request(method, url, **kwargs)
            if method == "POST" and not self.lost:
                self.lost = True
                raise requests.ConnectionError("connection reset after the request was sent")
            return response

    publisher = WooCommercePublisher(
        SITE, KEY, CONSUMER_SECRET, api_base=sim.url, session=LosesTheFirstWriteAnswer(), sleep=sleeps
    )
    placed = sim.create_order(payment_method="stripe")
    answer = publisher.publish(
        canonical(sim, placed["id"]), Milestone(publication_id="pub-lost", kind="delivered", at=AT)
    )
    assert answer["replayed"] is True and sleeps == [0.5]
    assert len(hub_notes(sim, placed["id"])) == 1


def test_a_plain_http_site_is_refused_without_an_api_base():
    with pytest.raises(InvalidInput, match="HTTPS"):
        WooCommercePublisher("http://shop.example", KEY, CONSUMER_SECRET)


# ----- the simulator's write API ---------------------------------------------------------------------------


def test_simulator__writes_need_credentials_and_validate_as_wordpress_does(sim):
    placed = sim.create_order(payment_method="stripe")
    url = f"{sim.url}/wp-json/wc/v3/orders/{placed['id']}"
    anonymous = requests.post(f"{url}/notes", json={"note": "hi"}, timeout=20)
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "woocommerce_rest_cannot_create")
    bad = requests.put(url, json={"status": "shipped"}, headers=basic(), timeout=20)
    assert bad.status_code == 400
    assert bad.json()["code"] == "rest_invalid_param"
    assert bad.json()["data"]["params"]["status"].startswith("status is not one of pending, processing")
    missing = requests.post(f"{url}/notes", json={}, headers=basic(), timeout=20)
    assert (missing.status_code, missing.json()["code"]) == (400, "rest_missing_callback_param")
    numeric = requests.post(f"{url}/refunds", json={"amount": 5}, headers=basic(), timeout=20)
    assert (numeric.status_code, numeric.json()["code"]) == (400, "rest_invalid_param")
    unknown = requests.put(f"{sim.url}/wp-json/wc/v3/orders/999999", json={}, headers=basic(), timeout=20)
    assert (unknown.status_code, unknown.json()["code"]) == (400, "woocommerce_rest_shop_order_invalid_id")


def test_simulator__notes_and_refunds_have_woocommerces_shapes(sim):
    placed = sim.create_order(payment_method="stripe", status="processing")
    url = f"{sim.url}/wp-json/wc/v3/orders/{placed['id']}"
    created = requests.post(
        f"{url}/notes", json={"note": "Order ok!!!", "customer_note": True}, headers=basic(), timeout=20
    )
    assert created.status_code == 201
    assert set(created.json()) == {
        "id", "author", "date_created", "date_created_gmt", "note", "customer_note", "_links"
    }  # fmt: skip
    assert created.json()["_links"]["up"][0]["href"] == f"{SITE}/wp-json/wc/v3/orders/{placed['id']}"
    customer = requests.get(f"{url}/notes", params={"type": "customer"}, headers=basic(), timeout=20).json()
    assert [n["note"] for n in customer] == ["Order ok!!!"]
    internal = requests.get(f"{url}/notes", params={"type": "internal"}, headers=basic(), timeout=20).json()
    assert internal[-1]["note"] == "Order status changed from Pending payment to Processing."

    refund = requests.post(
        f"{url}/refunds",
        json={"amount": "1.50", "reason": "late", "api_refund": False,
              "line_items": [{"id": placed["line_items"][0]["id"], "quantity": 1, "refund_total": 1.5}]},
        headers=basic(),
        timeout=20,
    )  # fmt: skip
    assert refund.status_code == 201
    body = refund.json()
    assert (body["amount"], body["reason"], body["refunded_payment"]) == ("1.50", "late", False)
    (line,) = body["line_items"]
    assert line["quantity"] == -1 and line["total"] == "-1.50"
    meta = line["meta_data"][0]
    assert (meta["key"], meta["value"]) == ("_refunded_item_id", str(placed["line_items"][0]["id"]))
    listed = requests.get(f"{url}/refunds", headers=basic(), timeout=20)
    assert listed.headers["X-WP-Total"] == "1" and listed.json()[0]["id"] == body["id"]
    assert sim.get_order(placed["id"])["refunds"] == [{"id": body["id"], "reason": "late", "total": "-1.50"}]


# --- a return's refund --------------------------------------------------------------------------------


def return_refund(order, *, via, restock, publication_id="refunded:r1", quantity=2, amount="30.00"):
    lines = [{"line_id": order.lines[1].line_id, "quantity": quantity}]
    return Milestone(
        publication_id=publication_id, kind="refunded", at=AT, amount=amount, reason="size",
        lines=lines, return_id=f"{order.order_id}-r1", via=via,
        restock=[{"line_id": order.lines[1].line_id, "quantity": n, "restock": True} for n in [restock] if n],
    )  # fmt: skip


def test_refunded__a_returns_line_is_refunded_through_the_gateway_with_its_share_and_restocked_once(
    sim, publisher
):
    placed = sim.create_order(payment_method="ppcp-gateway", currency="EUR", item_count=2)
    order = canonical(sim, placed["id"])
    milestone = return_refund(order, via="channel", restock=2)

    first = publisher.publish(order, milestone)
    again = publisher.publish(order, milestone)

    (refund,) = sim.refunds(placed["id"])
    assert (refund["amount"], refund["refunded_payment"]) == ("30.00", True)
    (line,) = refund["line_items"]
    assert (line["quantity"], line["total"], line["total_tax"]) == (-2, "-63.00", "-12.60")  # 2 of 3 units
    assert (first["replayed"], again["replayed"]) == (False, True)
    item = placed["line_items"][1]
    assert sim.stock[item["variation_id"]] == 102
    assert any("stock increased from 100 to 102" in n["note"] for n in sim.notes(placed["id"]))


def test_refunded__a_return_the_hub_refunded_is_recorded_without_the_gateway_and_partly_restocked(
    sim, publisher
):
    placed = sim.create_order(payment_method="ppcp-gateway", currency="EUR", item_count=2)
    order = canonical(sim, placed["id"])
    milestone = return_refund(order, via="hub", restock=1)

    first = publisher.publish(order, milestone)
    again = publisher.publish(order, milestone)

    refunds = sim.refunds(placed["id"])
    assert sorted(r["amount"] for r in refunds) == ["15.00", "15.00"]
    assert {r["refunded_payment"] for r in refunds} == {False}
    assert {r["reason"] for r in refunds} == {
        "size " + publication_marker("refunded:r1:restock"),
        "size " + publication_marker("refunded:r1:keep"),
    }
    assert sim.stock[placed["line_items"][1]["variation_id"]] == 101  # only the restocked unit
    assert (first["replayed"], again["replayed"]) == (False, True)


def test_refunded__a_return_of_more_units_than_the_line_has_is_rejected(sim, publisher):
    placed = sim.create_order(payment_method="ppcp-gateway", currency="EUR", item_count=2)
    order = canonical(sim, placed["id"])
    with pytest.raises(PublishRejected, match="units to refund"):
        publisher.publish(order, return_refund(order, via="channel", restock=0, quantity=9))
    assert sim.refunds(placed["id"]) == []
