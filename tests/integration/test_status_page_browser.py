"""The operator status page (`/status`) in a real browser: sign in, an order's page, a review, a redrive.

Headless Chromium through Playwright (fixtures in conftest.py); full-page screenshots of every step
land in test-artifacts/browser/<test>/.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from chalicelib import resources
from chalicelib.adapters.delivery_queue import SqsDeliveryQueue
from chalicelib.composition import deduplication_id
from chalicelib.domain.delivery import Delivery
from chalicelib.domain.order import derive_order_id
from tests.integration.conftest import WAIT_SECONDS, Stack, eventually
from tests.orders import manual_body

STORE = "it-status-page"


def dashboard(stack: Stack) -> str:
    return f"{stack.hub_url}/status"


def open_page(page: Page, url: str) -> None:
    """Navigate and fail at once on an error answer (rather than wait for elements that never come)."""
    response = page.goto(url)
    if response is None or not response.ok:
        pytest.fail(f"GET {url} answered {response and response.status}: {page.content()[:500]}")


def submit(page: Page, button: Locator) -> Any:
    """Click a form's button; return the answer to its POST (a Playwright `Response`)."""
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        button.click()
    return answer.value


def sign_in(page: Page, stack: Stack) -> None:
    open_page(page, dashboard(stack))
    page.locator('input[name="token"]').fill(stack.token)
    submit(page, page.get_by_role("button", name="Sign in"))
    expect(page.locator("h1")).to_contain_text("order-hub")


def reload_until(page: Page, url: str, check: Callable[[], Any], *, timeout: float = WAIT_SECONDS) -> Any:
    """Load `url` again and again until `check()` (on the loaded page) is truthy."""

    def attempt() -> Any:
        open_page(page, url)
        return check()

    return eventually(attempt, timeout=timeout, interval=0.5)


def order_json(stack: Stack, order_id: str) -> dict[str, Any] | None:
    response = stack.api("GET", f"/api/orders/{order_id}")
    return dict(response.json()) if response.status_code == 200 else None


def events(order: dict[str, Any] | None) -> list[str]:
    return [h["event"] for h in order["history"]] if order else []


def test_signing_in_takes_the_operator_token_and_refuses_another(stack, browser_page, screenshot):
    page = browser_page
    response = page.goto(dashboard(stack))
    assert response is not None and response.ok, response and response.status
    assert response.request.redirected_from is not None, "GET /status without a session must redirect"
    token = page.locator('input[name="token"]')
    expect(token).to_be_visible()
    screenshot(page, "login")

    token.fill("not-the-operator-token")
    refused = submit(page, page.get_by_role("button", name="Sign in"))
    assert refused.status == 401
    expect(page.locator('input[name="token"]')).to_be_visible()
    screenshot(page, "login-refused")

    page.locator('input[name="token"]').fill(stack.token)
    submit(page, page.get_by_role("button", name="Sign in"))
    expect(page.locator("h1")).to_contain_text("order-hub")
    screenshot(page, "dashboard")


def test_an_operator_opens_an_order_in_review_and_approves_it(stack, stripe, browser_page, screenshot):
    page = browser_page
    external_id = f"SP-{uuid.uuid4().hex[:8]}"
    intent = stripe.create_payment_intent(240000, "eur", "pm_card_visa")
    body = manual_body(
        STORE,
        external_id,
        customer={"email": f"{external_id.lower()}@example.com"},
        # High value alone sends an order to review on the test stack (HUB_FRAUD_POLICY).
        lines=[{"title": "E-bike", "quantity": 1, "unit_price": "2400.00"}],
        payment={"source": "stripe", "reference": intent["id"]},
    )
    assert stack.api("POST", "/api/orders", json=body).status_code == 202
    order_id = derive_order_id("manual", STORE, external_id)
    # In review, and the workflow's task token is stored (before that an approval cannot resume it).
    eventually(
        lambda: (
            (order := order_json(stack, order_id))
            and order["status"] == "FRAUD_REVIEW"
            and "review_requested" in events(order)
        ),
    )

    sign_in(page, stack)
    row = page.locator(f'#review-queue tr[data-order-id="{order_id}"]')
    reload_until(page, dashboard(stack), lambda: row.count() == 1)
    screenshot(page, "review-queue")

    row.locator(f'a[href="/status/orders/{order_id}"]').first.click()
    expect(page.locator("h1")).to_contain_text(order_id)
    for section in ("timeline", "payments", "shipments", "publications"):
        expect(page.locator(f"#{section}")).to_be_attached()
    screenshot(page, "order")

    open_page(page, dashboard(stack))
    form = row.locator(f'form[action="/status/orders/{order_id}/review"]').filter(
        has=page.get_by_role("button", name="Approve")
    )
    expect(form.locator('input[name="decision"]')).to_have_value("approve")
    assert form.locator('input[name="csrf"]').get_attribute("value"), "the review form carries no CSRF token"
    answer = submit(page, form.get_by_role("button", name="Approve"))
    assert 300 <= answer.status < 400, f"POST {answer.url} answered {answer.status}, not a redirect"
    expect(page.locator("p.flash")).to_be_visible()
    screenshot(page, "approved")

    approved = eventually(
        lambda: (order := order_json(stack, order_id)) and order["status"] != "FRAUD_REVIEW" and order,
    )
    assert "review_approved" in events(approved)


def test_an_operator_redrives_a_dead_lettered_delivery(stack, browser_page, screenshot):
    page = browser_page
    spec = resources.INGEST_QUEUE
    sqs = stack.client("sqs")
    dlq_url = stack.queue_url(spec.dlq_name)
    # A manual order's delivery exactly as POST /api/orders queues it (intake.enqueue), parked in the DLQ
    # as if every receive had failed (say, the table was throttled for a while).
    external_id = f"SP-{uuid.uuid4().hex[:8]}"
    order = manual_body(
        STORE,
        external_id,
        customer={"email": "buyer@example.com"},
        lines=[{"sku": "MUG", "title": "Mug", "quantity": 2, "unit_price": "12.50"}],
        payment={"source": "bank_transfer", "reference": f"BT-{external_id}", "amount_captured": "25.00"},
    )
    raw = json.dumps(order)
    delivery = Delivery(
        delivery_id=f"manual:{uuid.uuid4().hex}",
        channel="manual",
        store=STORE,
        topic="orders/create",
        received_at=datetime.now(UTC),
        payload=order,
        external_id=external_id,
        raw=raw,
    )
    SqsDeliveryQueue(sqs, dlq_url).send(
        delivery.to_message(),
        group_id=delivery.message_group(),
        deduplication_id=deduplication_id(delivery.delivery_id),
    )
    order_id = derive_order_id("manual", STORE, external_id)
    assert order_json(stack, order_id) is None

    sign_in(page, stack)
    row = page.locator(f'#queues tr[data-queue="{spec.key}"]')
    depth = row.locator("td.dlq-depth")
    reload_until(page, dashboard(stack), lambda: depth.count() == 1 and int(depth.inner_text().strip()) >= 1)
    screenshot(page, "dead-lettered")

    form = row.locator(f'form[action="/status/queues/{spec.key}/redrive"]')
    assert form.locator('input[name="csrf"]').get_attribute("value"), "the redrive form carries no CSRF token"
    answer = submit(page, form.get_by_role("button", name="Redrive"))
    assert 300 <= answer.status < 400, f"POST {answer.url} answered {answer.status}, not a redirect"
    expect(page.locator("p.flash")).to_be_visible()
    screenshot(page, "redriven")

    assert "received" in events(eventually(lambda: order_json(stack, order_id)))

    # Other tests may leave poison in this DLQ (it comes back after its own retries): only ours must go.
    def ours_parked() -> bool:
        messages = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
        ).get("Messages", [])
        return any(delivery.delivery_id in m["Body"] for m in messages)

    eventually(lambda: not ours_parked())
