"""Shopify returns end to end against the simulator: its returns API and returns/* webhooks, and the
publisher's refund of a return (returnProcess for a Shopify return, refundCreate for the hub's own)."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from chalicelib.domain.publishing import Milestone
from chalicelib.integrations.shopify.admin import ShopifyAdmin
from chalicelib.integrations.shopify.publisher import ShopifyPublisher
from chalicelib.integrations.shopify.webhook import parse_shopify
from local.simulators.shopify import API_VERSION, LOCATION_ID, MutationRejected, ShopifySimulator
from tests.webhook_receiver import ShopifyReceiver

SHOP = "sim-store.myshopify.com"
SECRET = "shpss_simulated_webhook_secret"
TOKEN = "shpat_simulated_access_token_returns"
SWEATER = {"title": "Merino Crew Sweater", "sku": "MCS-CHR-M", "price": "89.00", "quantity": 2}
MUG = {"title": "Café Crème Mug", "sku": "MUG-CC", "price": "18.50", "quantity": 1}

Receiver = ShopifyReceiver


@pytest.fixture
def make_sim(started, receiver, clock):
    return started.maker(
        ShopifySimulator, SHOP, SECRET, TOKEN, clock=clock, webhook_url=receiver.url, seed=31, senders=1
    )


@pytest.fixture
def publisher(sim, sleeps) -> ShopifyPublisher:
    admin = ShopifyAdmin(SHOP, TOKEN, api_base=sim.url, sleep=sleeps, clock=sleeps.clock, jitter=lambda: 0.0)
    return ShopifyPublisher(admin)


def delivered_order(sim: ShopifySimulator):
    """A paid order of two lines (2 sweaters, 1 mug), shipped; the hub's canonical order of it."""
    shop_order = sim.create_order(
        currency="USD", items=[SWEATER, MUG], shipping=[], discount={}, financial_status="paid"
    )
    sim.fulfil_order(shop_order["id"])
    return shop_order, parse_shopify("orders/create", shop_order, SHOP).order


def refunded(
    order, publication_id="refunded:r1", *, via, external_return_id=None, restock=True, amount="94.34"
):
    sweater = order.lines[0].line_id
    return Milestone(
        publication_id=publication_id, kind="refunded", at=datetime.now(UTC), amount=amount, reason="size",
        lines=[{"line_id": sweater, "quantity": 1}], return_id=f"{order.order_id}-r1",
        external_return_id=external_return_id, via=via,
        restock=[{"line_id": sweater, "quantity": 1, "restock": restock}],
    )  # fmt: skip


def graphql(sim, query, variables):
    body = json.dumps({"query": query, "variables": variables}).encode()
    return sim.handle_api("POST", f"/admin/api/{API_VERSION}/graphql.json", TOKEN, body).body


# --- the simulator's returns and their webhooks ---------------------------------------------------


def test_a_customer_request_sends_returns_request_that_reads_as_the_return_of_that_line(sim, receiver):
    shop_order, order = delivered_order(sim)
    sweater = shop_order["line_items"][0]["id"]

    ret = sim.request_return(
        shop_order["id"], [{"line_item_id": sweater, "quantity": 1, "reason": "size_too_small"}]
    )
    sim.approve_return(ret["id"])

    sim.flush(10)
    bodies = {topic: body for topic, body in receiver.received if topic.startswith("returns/")}
    requested = parse_shopify("returns/request", bodies["returns/request"], SHOP)
    assert (requested.external_order_id, requested.external_return_id) == (order.external_id, ret["id"])
    assert [(ln.line_id, ln.quantity, ln.reason) for ln in requested.lines] == [
        (order.lines[0].line_id, 1, "size")
    ]
    assert parse_shopify("returns/approve", bodies["returns/approve"], SHOP).status == "open"


def test_a_declined_request_sends_returns_decline_naming_only_the_return(sim, receiver):
    shop_order, _order = delivered_order(sim)
    ret = sim.request_return(
        shop_order["id"], [{"line_item_id": shop_order["line_items"][1]["id"], "quantity": 1}]
    )

    sim.decline_return(ret["id"], "FINAL_SALE", "final sale item")

    sim.flush(10)
    (body,) = [b for t, b in receiver.received if t == "returns/decline"]
    assert body == {"id": body["id"], "admin_graphql_api_id": ret["id"], "status": "declined",
                    "decline": {"reason": "final_sale", "note": "final sale item"}}  # fmt: skip


def test_more_units_than_were_shipped_cannot_be_returned(sim):
    shop_order, _order = delivered_order(sim)
    with pytest.raises(MutationRejected, match="not returnable"):
        sim.request_return(
            shop_order["id"], [{"line_item_id": shop_order["line_items"][1]["id"], "quantity": 2}]
        )


def test_return_process_refuses_too_many_units_and_a_closed_return(sim):
    shop_order, _order = delivered_order(sim)
    ret = sim.create_return(
        shop_order["id"], [{"line_item_id": shop_order["line_items"][0]["id"], "quantity": 1}]
    )
    rli = ret["returnLineItems"]["nodes"][0]["id"]
    mutation = (
        "mutation P($input: ReturnProcessInput!) { returnProcess(input: $input) "
        "{ return { id } userErrors { field message code } } }"
    )

    too_many = graphql(
        sim, mutation, {"input": {"returnId": ret["id"], "returnLineItems": [{"id": rli, "quantity": 2}]}}
    )
    sim.close_return(ret["id"])
    closed = graphql(
        sim, mutation, {"input": {"returnId": ret["id"], "returnLineItems": [{"id": rli, "quantity": 1}]}}
    )

    assert too_many["data"]["returnProcess"]["userErrors"][0]["code"] == "INVALID"
    assert closed["data"]["returnProcess"]["userErrors"][0]["code"] == "INVALID_STATE"
    assert sim.refunds(shop_order["id"]) == []


# --- publishing a return's refund -------------------------------------------------------------------


def test_a_shopify_return_refunded_by_the_channel_is_processed_once_refunding_and_restocking_one_unit(
    sim, publisher, receiver
):
    shop_order, order = delivered_order(sim)
    ret = sim.request_return(
        shop_order["id"], [{"line_item_id": shop_order["line_items"][0]["id"], "quantity": 1}]
    )
    sim.approve_return(ret["id"])
    milestone = refunded(order, via="channel", external_return_id=ret["id"])

    first = publisher.publish(order, milestone)
    again = publisher.publish(order, milestone)

    (refund,) = sim.refunds(shop_order["id"])
    assert (refund.amount, refund.note) == (Decimal("94.34"), "order-hub:refunded:r1")
    assert (first["replayed"], again["replayed"]) == (False, True)
    (processed,) = sim.returns(shop_order["id"])
    assert processed["returnLineItems"]["nodes"][0]["processedQuantity"] == 1
    (rfo_line,) = processed["reverseFulfillmentOrders"]["nodes"][0]["lineItems"]["nodes"]
    assert rfo_line["dispositions"] == [
        {"type": "RESTOCKED", "quantity": 1, "location": {"id": f"gid://shopify/Location/{LOCATION_ID}"}}
    ]
    shopify_refund = sim.get_order(shop_order["id"])["refunds"][0]
    assert [
        (rl["line_item_id"], rl["quantity"], rl["restock_type"]) for rl in shopify_refund["refund_line_items"]
    ] == [(shop_order["line_items"][0]["id"], 1, "return")]
    sim.flush(10)
    assert "refunds/create" in receiver.topics()


def test_a_shopify_return_the_hub_refunded_is_processed_without_moving_money(sim, publisher):
    shop_order, order = delivered_order(sim)
    ret = sim.create_return(
        shop_order["id"], [{"line_item_id": shop_order["line_items"][0]["id"], "quantity": 1}]
    )
    milestone = refunded(order, via="hub", external_return_id=ret["id"], restock=False)

    first = publisher.publish(order, milestone)
    again = publisher.publish(order, milestone)

    assert sim.refunds(shop_order["id"]) == []
    assert sim.get_order(shop_order["id"])["financial_status"] == "paid"
    (processed,) = sim.returns(shop_order["id"])
    assert processed["returnLineItems"]["nodes"][0]["processedQuantity"] == 1
    dispositions = processed["reverseFulfillmentOrders"]["nodes"][0]["lineItems"]["nodes"][0]["dispositions"]
    assert [d["type"] for d in dispositions] == ["NOT_RESTOCKED"]
    assert (first["replayed"], again["replayed"]) == (False, True)


def test_a_return_the_hub_started_is_refunded_by_refund_create_for_its_line_only(sim, publisher):
    shop_order, order = delivered_order(sim)
    milestone = refunded(order, via="channel")

    first = publisher.publish(order, milestone)
    again = publisher.publish(order, milestone)

    (refund,) = sim.refunds(shop_order["id"])
    assert refund.amount == Decimal("94.34")
    lines = sim.get_order(shop_order["id"])["refunds"][0]["refund_line_items"]
    assert [(rl["line_item_id"], rl["quantity"], rl["restock_type"]) for rl in lines] == [
        (shop_order["line_items"][0]["id"], 1, "return")
    ]
    assert sim.get_order(shop_order["id"])["line_items"][1]["current_quantity"] == 1  # the mug stays sold
    assert (first["refund_id"], again["replayed"]) == (refund.refund_id, True)


def test_a_return_the_hub_started_and_refunded_itself_records_the_goods_without_money(sim, publisher):
    shop_order, order = delivered_order(sim)

    publisher.publish(order, refunded(order, via="hub", restock=False))
    publisher.publish(order, refunded(order, via="hub", restock=False))

    (refund,) = sim.refunds(shop_order["id"])
    assert refund.amount == Decimal(0)
    assert (
        sim.get_order(shop_order["id"])["refunds"][0]["refund_line_items"][0]["restock_type"] == "no_restock"
    )
    assert sim.get_order(shop_order["id"])["financial_status"] == "paid"


def test_a_customer_request_the_hub_accepted_is_approved_in_shopify_then_processed_once(sim, publisher):
    shop_order, order = delivered_order(sim)
    ret = sim.request_return(
        shop_order["id"], [{"line_item_id": shop_order["line_items"][0]["id"], "quantity": 1}]
    )
    milestone = refunded(order, via="hub", external_return_id=ret["id"])

    publisher.publish(order, milestone)
    again = publisher.publish(order, milestone)

    (processed,) = sim.returns(shop_order["id"])
    assert processed["status"] == "OPEN" and again["replayed"] is True
    assert processed["returnLineItems"]["nodes"][0]["processedQuantity"] == 1
