"""Shopify returns/* webhook bodies read as ChannelReturn: shapes per topic, reasons, bad input."""

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.returns.events import ChannelReturn, ChannelReturnLine
from chalicelib.domain.returns.policy import REASONS
from chalicelib.domain.webhooks import WebhookRequest
from chalicelib.integrations.shopify import returns as shopify_returns
from chalicelib.integrations.shopify.webhook import SHOPIFY_WEBHOOK, parse_shopify, read_delivery

SHOP = "sim-store.myshopify.com"


def request_body(**changes) -> dict:
    """A returns/request body as Shopify documents it (REST-style Return resource)."""
    body = {
        "id": 3547267221,
        "admin_graphql_api_id": "gid://shopify/Return/3547267221",
        "status": "requested",
        "order": {"id": 5196695273621, "admin_graphql_api_id": "gid://shopify/Order/5196695273621"},
        "total_return_line_items": 2,
        "name": "#1106-R2",
        "return_line_items": [
            {
                "id": 6200524949,
                "admin_graphql_api_id": "gid://shopify/ReturnLineItem/6200524949",
                "fulfillment_line_item": {
                    "id": 10736341352597,
                    "admin_graphql_api_id": "gid://shopify/FulfillmentLineItem/10736341352597",
                    "line_item": {
                        "id": 12695210000533,
                        "admin_graphql_api_id": "gid://shopify/LineItem/12695210000533",
                    },
                },
                "quantity": 1,
                "return_reason": "size_too_small",
                "return_reason_note": "",
                "customer_note": None,
            },
            {
                "id": 6200524950,
                "fulfillment_line_item": {"id": 1, "line_item": {"id": 12695210000534}},
                "quantity": 2,
                "return_reason": "defective",
            },
        ],
        "exchange_line_items": [],
        "return_shipping_fees": [],
    }
    return {**body, **changes}


def test_a_return_request_reads_as_a_requested_return_of_the_order_by_line_item_ids():
    event = parse_shopify("returns/request", request_body(), SHOP)

    assert isinstance(event, ChannelReturn)
    assert (event.channel, event.store) == ("shopify", SHOP)
    assert event.external_order_id == "5196695273621"
    assert event.external_return_id == "gid://shopify/Return/3547267221"
    assert event.status == "requested"
    assert event.lines == (
        ChannelReturnLine(quantity=1, line_id="12695210000533", reason="size"),
        ChannelReturnLine(quantity=2, line_id="12695210000534", reason="defective"),
    )
    assert (event.label_provided, event.resolution) == (False, "refund")


def test_an_approved_return_is_open_and_a_label_on_its_reverse_delivery_is_noticed():
    delivery = {
        "id": 88,
        "shipping_deliverable": {
            "label": {"public_file_url": "https://cdn.shopify.com/label.pdf", "created_at": None},
            "tracking": {"carrier_name": "USPS", "tracking_number": "9400100000000000000009"},
        },
    }
    event = parse_shopify("returns/approve", request_body(status="open", reverse_deliveries=[delivery]), SHOP)

    assert event.status == "open"
    assert (event.label_provided, event.carrier, event.tracking_number) == (
        True,
        "USPS",
        "9400100000000000000009",
    )


@pytest.mark.parametrize(
    ("topic", "body", "status", "order_id"),
    [
        ("returns/close", {"admin_graphql_api_id": "gid://shopify/Return/5", "order_id": 42}, "closed", "42"),
        ("returns/cancel", {"id": 5, "order_id": 42, "status": "canceled"}, "cancelled", "42"),
        ("returns/reopen", {"id": 5, "order_id": 42, "status": "open"}, "open", "42"),
        ("returns/decline", {"id": 5, "decline": {"reason": "final_sale"}}, "declined", ""),
    ],
)  # fmt: skip
def test_bare_status_topics_read_as_a_status_change_without_lines(topic, body, status, order_id):
    event = parse_shopify(topic, body, SHOP)

    assert (event.status, event.external_order_id, event.lines) == (status, order_id, ())
    assert event.external_return_id == "gid://shopify/Return/5"


def test_every_shopify_return_reason_maps_to_a_policy_reason_and_unknown_ones_to_other():
    assert set(shopify_returns.REASONS.values()) <= REASONS
    item = request_body()["return_line_items"][0]
    event = parse_shopify(
        "returns/request", request_body(return_line_items=[{**item, "return_reason": "bored"}]), SHOP
    )
    assert event.lines[0].reason == "other"


def test_a_status_it_does_not_know_falls_back_to_the_topics_own():
    assert (
        parse_shopify("returns/close", {"id": 5, "order_id": 1, "status": "archived"}, SHOP).status
        == "closed"
    )


def test_an_exchange_reads_as_an_exchange_resolution():
    event = parse_shopify(
        "returns/request", request_body(exchange_line_items=[{"id": 1, "line_item": {}}]), SHOP
    )
    assert event.resolution == "exchange"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"id": None, "admin_graphql_api_id": None}, "no return id"),
        ({"return_line_items": []}, "at least one return line item"),
        ({"return_line_items": "x"}, "not a list"),
        ({"return_line_items": [{"quantity": 1}]}, "no line item id"),
        ({"return_line_items": [{"fulfillment_line_item": {"line_item": {"id": 1}}}]}, "quantity"),
        ({"return_line_items": [{"line_item_id": 1, "quantity": True}]}, "quantity"),
        ({"return_line_items": [7]}, "not an object"),
    ],
)  # fmt: skip
def test_bad_return_bodies_are_refused_with_the_field_named(changes, problem):
    with pytest.raises(InvalidInput, match=problem):
        parse_shopify("returns/request", request_body(**changes), SHOP)


def test_the_webhook_accepts_returns_topics_and_groups_them_by_the_return_order():
    assert SHOPIFY_WEBHOOK.handles("returns/request") and SHOPIFY_WEBHOOK.handles("returns/decline")
    assert "returns/request" not in SHOPIFY_WEBHOOK.order_topics

    def delivered(topic: str, body: dict):
        headers = {"x-shopify-topic": topic, "x-shopify-event-id": "ev-1"}
        return read_delivery(SHOP, WebhookRequest(headers=headers, body=body, raw=b"{}"))

    assert delivered("returns/request", request_body()).external_id == "5196695273621"
    declined = delivered("returns/decline", {"id": 5, "status": "declined"})
    assert declined.external_id == "gid://shopify/Return/5"
