"""Returns on the local stack: the return workflow (real ASL), the carrier's return label and tracking, the
3PL's signed receipt and inspection, Stripe and channel refunds, store credit, exchanges, Shopify returns
by webhook and Amazon's returns report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import requests

from chalicelib.domain.order import derive_order_id
from tests.integration.conftest import (
    AMAZON_CREDENTIALS,
    AMAZON_MARKETPLACE,
    AMAZON_SELLER,
    PUBLISH_SHOP,
    PUBLISH_WOO,
    eventually,
)
from tests.integration.test_fulfilment_lifecycle import line, place
from tests.integration.test_publishing import SHOP_ADDRESS


def completed(stack, order_id: str) -> dict[str, Any]:
    return stack.order_when(order_id, lambda o: o["status"] == "COMPLETED")


def open_return(stack, order_id: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    answer = stack.api("POST", f"/api/orders/{order_id}/returns", json=body, headers=headers)
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


def return_when(stack, order_id: str, rid: str, predicate) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        answer = stack.api("GET", f"/api/orders/{order_id}/returns/{rid}")
        ret = answer.json() if answer.status_code == 200 else None
        return ret if ret is not None and predicate(ret) else None

    return dict(eventually(check, interval=0.2))


def status_is(*statuses: str):
    return lambda ret: ret["status"] in statuses


def shipped_at_channel(stack, order_id: str) -> None:
    """The channel has the order's shipment (the outbox told it)."""

    def sent() -> bool:
        stack.publish_outbox()
        order = stack.order(order_id) or {}
        return any(p["kind"] == "shipped" and p["status"] == "sent" for p in order.get("publications", []))

    eventually(sent, interval=0.5)


def brought_back(stack, threepl, order_id: str, rid: str) -> dict[str, Any]:
    """The warehouse receives the parcel once the 3PL knows the return (it inspects it by itself: restock);
    answers the resolved return."""
    return_when(stack, order_id, rid, status_is("label_sent", "in_transit"))
    threepl.returns.receive(rid)
    return return_when(stack, order_id, rid, status_is("resolved"))


def test_one_line_of_two_comes_back__label_transit_receipt_inspection_and_exactly_its_refund(
    stack, stripe, threepl, carrier
):
    order_id, intent = place(
        stack, stripe, [line("1", "MUG", 2, "10.00"), line("2", "LAMP", 1, "40.00")], total=6000
    )
    completed(stack, order_id)
    ret = open_return(stack, order_id, {"lines": [{"line_id": "2", "quantity": 1, "reason": "defective"}]})
    rid = ret["return_id"]
    assert (ret["status"], rid) == ("requested", f"{order_id}-r1")
    threepl.returns.hold(rid)  # the warehouse keeps the parcel at "received" until the test inspects it

    labelled = return_when(stack, order_id, rid, status_is("label_sent", "in_transit"))
    [shipment] = carrier.by_reference(f"label-{rid}")
    assert shipment["is_return"] and shipment["tracking_code"] == labelled["label"]["tracking_number"]
    rma_lines = threepl.returns.snapshot(rid)["lines"]
    assert [(ln["sku"], ln["quantity"]) for ln in rma_lines] == [("LAMP", 1)]
    return_when(stack, order_id, rid, status_is("in_transit"))
    stock_before = threepl.stock("WH-EAST", "LAMP")
    threepl.returns.receive(rid)
    return_when(stack, order_id, rid, status_is("received"))
    threepl.returns.inspect(rid, {"2": "restock"})
    done = return_when(stack, order_id, rid, status_is("resolved"))

    assert done["money"]["total"] == "40.00" and done["money"]["method"] == "stripe"
    refunds = stripe.refunds_for(intent)
    assert [r["amount"] for r in refunds] == [4000]
    assert done["money"]["reference"] == refunds[0]["id"]
    assert threepl.stock("WH-EAST", "LAMP") == stock_before + 1
    order = stack.order(order_id)
    assert order is not None and order["status"] == "PARTIALLY_REFUNDED"
    assert Decimal(order["payment"]["amount_refunded"]) == Decimal("40.00")
    # The return's workflow ended where its status says.
    execution = stack.client("stepfunctions").describe_execution(
        executionArn=stack.lifecycle_arn(order_id).replace("order-lifecycle", "order-return") + "-r1"
    )
    assert execution["status"] == "SUCCEEDED"


def test_a_damaged_unit__is_not_restocked_and_the_refund_follows_the_policy(stack, stripe, threepl):
    order_id, intent = place(stack, stripe, [line("1", "VASE", 2, "15.00")], total=3000)
    completed(stack, order_id)
    ret = open_return(stack, order_id, {"lines": [{"line_id": "1", "quantity": 1, "reason": "damaged"}]})
    rid = ret["return_id"]
    threepl.returns.hold(rid)
    return_when(stack, order_id, rid, status_is("label_sent", "in_transit"))
    before = threepl.stock("WH-EAST", "VASE")
    threepl.returns.receive(rid)
    return_when(stack, order_id, rid, status_is("received"))
    threepl.returns.inspect(rid, {"1": "scrap"})
    done = return_when(stack, order_id, rid, status_is("resolved"))
    assert [u["outcome"] for u in done["inspected"]] == ["scrap"]
    assert [r["amount"] for r in stripe.refunds_for(intent)] == [1500]
    assert threepl.stock("WH-EAST", "VASE") == before


def test_part_of_a_kit_then_the_rest__the_3pl_handles_components_and_the_refunds_add_up_to_the_kit(
    stack, stripe, threepl
):
    order_id, intent = place(stack, stripe, [line("1", "IT-KIT-BREW", 1, "30.00")], total=3000)
    completed(stack, order_id)
    cups = {
        "line_id": "1",
        "quantity": 1,
        "reason": "damaged",
        "components": [{"sku": "IT-CUP", "quantity": 2}],
    }
    ret = open_return(stack, order_id, {"lines": [cups]})
    rid = ret["return_id"]
    assert ret["lines"][0]["components"] == [{"sku": "IT-CUP", "quantity": 2}]
    threepl.returns.hold(rid)
    return_when(stack, order_id, rid, status_is("label_sent", "in_transit"))
    assert [(ln["line_id"], ln["sku"], ln["quantity"]) for ln in threepl.returns.snapshot(rid)["lines"]] == [
        ("1:IT-CUP", "IT-CUP", 2)
    ]
    before = threepl.stock("WH-EAST", "IT-CUP")
    threepl.returns.receive(rid)
    return_when(stack, order_id, rid, status_is("received"))
    threepl.returns.inspect(rid, {"1:IT-CUP": "restock"})
    done = return_when(stack, order_id, rid, status_is("resolved"))
    assert done["money"]["total"] == "9.00"  # two cups: 0.3 of the kit's 30.00
    assert threepl.stock("WH-EAST", "IT-CUP") == before + 2
    # More cups than the kit holds, or the cups again: refused, nothing recorded.
    for components in ([{"sku": "IT-CUP", "quantity": 3}], [{"sku": "IT-CUP", "quantity": 1}]):
        body = {"lines": [{"line_id": "1", "quantity": 1, "components": components}]}
        answer = stack.api("POST", f"/api/orders/{order_id}/returns", json=body)
        assert answer.status_code == 422 and answer.json()["rule"] == "too_many_components", answer.text

    rest = open_return(stack, order_id, {"lines": [{"line_id": "1", "quantity": 1, "reason": "damaged"}]})
    assert rest["lines"][0]["components"] == [{"sku": "IT-POT", "quantity": 1}]
    brought_back(stack, threepl, order_id, rest["return_id"])
    assert [r["amount"] for r in stripe.refunds_for(intent)] == [900, 2100]
    order = stack.order_when(order_id, lambda o: o["status"] == "RETURNED")
    assert Decimal(order["payment"]["amount_refunded"]) == Decimal("30.00")


def test_a_voucher__issued_once_and_redeemed_on_a_later_order_once(stack, stripe, threepl):
    order_id, _ = place(stack, stripe, [line("1", "SCARF", 1, "25.00")], total=2500)
    first = completed(stack, order_id)
    email = first["customer"]["email"]
    before = stack.api("GET", "/api/credit/liabilities").json()
    ret = open_return(
        stack,
        order_id,
        {"lines": [{"line_id": "1", "quantity": 1, "reason": "defective"}], "resolution": "voucher"},
    )
    done = brought_back(stack, threepl, order_id, ret["return_id"])
    code = done["money"]["reference"]
    voucher = stack.api("GET", f"/api/credit/vouchers/{code}").json()
    assert Decimal(voucher["balance"]) == Decimal("25.00")
    after = stack.api("GET", "/api/credit/liabilities").json()
    owed = Decimal(after["liabilities"]["USD"]) - Decimal(before["liabilities"].get("USD", "0"))
    assert owed == Decimal("25.00")

    from tests.orders import manual_body

    credits = [{"kind": "voucher", "code": code, "amount": "10.00"}]
    later = manual_body(
        "it-fulfilment",
        f"CREDIT-{code[-4:]}",
        currency="USD",
        customer={"email": email},
        lines=[line("1", "SCARF", 1, "10.00")],
        payment={"source": "voucher", "credits": credits},
    )
    posted = stack.api("POST", "/api/orders", json=later)
    assert posted.status_code == 202, posted.text
    later_id = posted.json()["order_id"]
    stack.order_when(later_id, lambda o: o["status"] in ("COMPLETED", "SHIPPED", "FULFILMENT_REQUESTED"))
    # Replayed: the same order again changes nothing.
    assert stack.api("POST", "/api/orders", json=later).status_code == 202
    stack.drained("order-hub-ingest.fifo")
    voucher = stack.api("GET", f"/api/credit/vouchers/{code}").json()
    assert Decimal(voucher["balance"]) == Decimal("15.00")
    assert [m["kind"] for m in voucher["movements"]].count("redeem") == 1


def test_an_exchange__ships_a_replacement_through_the_normal_lifecycle(stack, stripe, threepl):
    order_id, intent = place(stack, stripe, [line("1", "SHOE-42", 1, "50.00")], total=5000)
    completed(stack, order_id)
    ret = open_return(
        stack, order_id,
        {"lines": [{"line_id": "1", "quantity": 1, "reason": "size"}], "resolution": "exchange",
         "exchange": {"lines": [{"sku": "SHOE-43", "quantity": 1, "unit_price": "50.00"}]}},
    )  # fmt: skip
    done = brought_back(stack, threepl, order_id, ret["return_id"])
    replacement_id = done["exchange_order_id"]
    replacement = stack.order_when(replacement_id, lambda o: o["status"] == "COMPLETED")
    assert [ln["sku"] for ln in replacement["lines"]] == ["SHOE-43"]
    assert replacement["payment"]["source"] == "exchange"
    # The same price: the returned shoe pays the replacement, nothing goes back to the card.
    assert Decimal(replacement["payment"]["amount_captured"]) == Decimal("50.00")
    assert stripe.refunds_for(intent) == []
    assert threepl.by_reference(replacement["shipments"][0]["shipment_id"])["status"] == "shipped"


def test_bad_returns_over_http__409_422_400_and_nothing_changes(stack, stripe, threepl):
    order_id, _ = place(stack, stripe, [line("1", "MUG", 1)], total=1000, held_by=threepl)
    stack.order_when(order_id, lambda o: o["status"] == "FULFILMENT_REQUESTED")
    early = stack.api(
        "POST", f"/api/orders/{order_id}/returns", json={"lines": [{"line_id": "1", "quantity": 1}]}
    )
    assert early.status_code == 409, early.text
    shipment_id = stack.order(order_id)["shipments"][0]["shipment_id"]  # type: ignore[index]
    threepl.ship_now(threepl.by_reference(shipment_id)["id"])
    completed(stack, order_id)
    for body, status, rule in (
        ({"lines": [{"line_id": "9", "quantity": 1}]}, 422, "unknown_line"),
        ({"lines": [{"line_id": "1", "quantity": 2}]}, 422, "too_many_units"),
        ({"lines": [{"line_id": "1", "quantity": -1}]}, 400, None),
        ({"lines": [{"line_id": "1", "quantity": 0.5}]}, 400, None),
    ):
        answer = stack.api("POST", f"/api/orders/{order_id}/returns", json=body)
        assert answer.status_code == status, answer.text
        assert rule is None or answer.json()["rule"] == rule
    refund = stack.api("POST", f"/api/orders/{order_id}/refunds", json={"amount": "10.01", "reason": "x"})
    assert refund.status_code == 422 and refund.json()["rule"] == "refund_exceeds_captured"
    order = stack.order(order_id)
    assert order is not None and order["returns"] == [] and order["status"] == "COMPLETED"


def test_a_woocommerce_return__refunded_by_the_store_for_exactly_that_line(stack, woo_store, threepl):
    placed = woo_store.create_order(payment_method="ppcp-gateway", item_count=2)
    order_id = derive_order_id("woocommerce", PUBLISH_WOO, str(placed["id"]))
    order = completed(stack, order_id)
    first = order["lines"][0]
    ret = open_return(
        stack, order_id, {"lines": [{"line_id": first["line_id"], "quantity": 1, "reason": "defective"}]}
    )
    done = brought_back(stack, threepl, order_id, ret["return_id"])
    assert done["money"]["method"] == "channel"

    def refunded() -> list[dict[str, Any]]:
        stack.publish_outbox()
        return woo_store.refunds(placed["id"])

    [refund] = eventually(refunded, interval=0.5)
    assert Decimal(refund["amount"]) == Decimal(done["money"]["total"])
    [item] = refund["line_items"]
    refunded_item = next(m["value"] for m in item["meta_data"] if m["key"] == "_refunded_item_id")
    assert (str(refunded_item), item["quantity"]) == (first["line_id"], -1)
    stack.publish_outbox()
    assert len(woo_store.refunds(placed["id"])) == 1


def test_a_shopify_return_by_webhook__is_received_inspected_and_processed_at_the_shop(
    stack, shopify_store, threepl
):
    placed = shopify_store.create_order(
        currency="USD",
        financial_status="paid",
        items=[{"title": "Cap", "price": "12.00", "quantity": 2, "sku": "CAP"}],
        shipping_address=SHOP_ADDRESS,
    )
    order_id = derive_order_id("shopify", PUBLISH_SHOP, str(placed["id"]))
    order = completed(stack, order_id)
    shipped_at_channel(stack, order_id)  # only fulfilled units can come back
    # The customer asks in Shopify; the hub accepts it, and approves and processes it there once inspected.
    shopify_store.request_return(
        placed["id"],
        [{"line_item_id": int(order["lines"][0]["line_id"]), "quantity": 1, "reason": "DEFECTIVE"}],
    )

    def channel_return() -> dict[str, Any] | None:
        current = stack.order(order_id)
        found = [r for r in (current or {}).get("returns", []) if r.get("source") == "shopify"]
        return found[0] if found else None

    ret = eventually(channel_return)
    done = brought_back(stack, threepl, order_id, ret["return_id"])
    assert done["external_id"].startswith("gid://shopify/Return/")

    def processed() -> list[dict[str, Any]]:
        stack.publish_outbox()
        [shop_return] = shopify_store.returns(placed["id"])
        lines = shop_return["returnLineItems"]["nodes"]
        return [ln for ln in lines if ln["processedQuantity"] == ln["quantity"] == 1]

    assert eventually(processed, interval=0.5)
    stack.publish_outbox()
    [shop_return] = shopify_store.returns(placed["id"])
    assert shop_return["returnLineItems"]["nodes"][0]["processedQuantity"] == 1
    assert shop_return["status"] in ("OPEN", "CLOSED")


def test_an_amazon_return_from_the_report__is_recorded_once_however_often_it_is_read(stack, amazon, threepl):
    body = {
        "channel": "amazon",
        "store": AMAZON_SELLER,
        "marketplace_id": AMAZON_MARKETPLACE,
        **AMAZON_CREDENTIALS,
    }
    assert stack.api("POST", "/api/connections", json=body).status_code in (200, 201)
    placed = amazon.create_order(OrderStatus="Unshipped")
    order_id = derive_order_id("amazon", AMAZON_SELLER, placed["AmazonOrderId"])
    order = completed(stack, order_id)
    sku = order["lines"][0]["sku"]
    shipped_at_channel(stack, order_id)  # only shipped orders are returned

    def returned() -> str | None:
        try:
            earlier = datetime.now(UTC) - timedelta(minutes=10)
            return str(amazon.reports.add_return(placed["AmazonOrderId"], sku, 1, requested_at=earlier))
        except ValueError:
            return None

    # Reports cover up to a few minutes ago: the return was asked for before that.
    rma = eventually(returned, interval=0.5)
    for _ in range(2):
        answer = requests.post(f"{stack.aws_url}/_local/schedules/amazon_returns", timeout=120)
        assert answer.status_code == 200, answer.text
    returns = [r for r in stack.order(order_id)["returns"] if r.get("external_id") == rma]  # type: ignore[index]
    assert len(returns) == 1 and returns[0]["label_needed"] is False


def test_a_shopify_return_declined_in_the_shop__is_rejected_at_the_hub(stack, shopify_store, threepl):
    placed = shopify_store.create_order(
        currency="USD",
        financial_status="paid",
        items=[{"title": "Belt", "price": "20.00", "quantity": 1, "sku": "BELT"}],
        shipping_address=SHOP_ADDRESS,
    )
    order_id = derive_order_id("shopify", PUBLISH_SHOP, str(placed["id"]))
    order = completed(stack, order_id)
    shipped_at_channel(stack, order_id)
    asked = shopify_store.request_return(
        placed["id"], [{"line_item_id": int(order["lines"][0]["line_id"]), "quantity": 1}]
    )

    def recorded() -> list[dict[str, Any]]:
        return [r for r in (stack.order(order_id) or {}).get("returns", []) if r.get("source") == "shopify"]

    [ret] = eventually(recorded)
    shopify_store.decline_return(asked["id"])  # names only the return, not its order
    rejected = return_when(stack, order_id, ret["return_id"], status_is("rejected"))
    assert rejected["refusal"]["rule"] == "channel_declined"
    assert stack.order_when(order_id, lambda o: o["status"] == "COMPLETED")
    # Its workflow ends now, not at the parcel deadline.
    arn = stack.lifecycle_arn(order_id).replace("order-lifecycle", "order-return") + "-r1"
    sfn = stack.client("stepfunctions")
    eventually(lambda: sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED")
