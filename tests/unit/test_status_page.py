"""The status page's sign-in, session, CSRF and order pages through Chalice's test client (fakes behind);
the overview's queries run against DynamoDB in the integration and browser tests."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from chalicelib.domain.lifecycle import RetryConflict, record_failure, retry_failed
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import OrderStatus
from chalicelib.entrypoints.status_html import ago, esc
from chalicelib.entrypoints.status_page import COOKIE, csrf_token, new_session, session_valid
from tests.unit.api import TOKEN

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _order(svc, status=OrderStatus.RECEIVED, external_id="S-1", missing=(), **extra):
    order = normalise_manual(
        {
            "external_id": external_id,
            "currency": "EUR",
            "placed_at": "2026-11-23T10:00:00Z",
            "lines": [{"title": "Mug", "quantity": 1, "unit_price": "9.90"}],
            **extra,
        }
    )
    order.status = status
    order.missing = list(missing)
    svc.orders.save(order, expected_version=None)
    return order


def _sign_in(client) -> tuple[dict[str, str], str]:
    response = client.http.post(
        "/status/login", headers=FORM, body=urlencode({"token": TOKEN, "next": "/status/orders"})
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/status/orders"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/status" in cookie
    assert TOKEN not in cookie  # the token never sits in the browser
    session = cookie.split(";")[0].split("=", 1)[1]
    return {"Cookie": f"{COOKIE}={session}"}, csrf_token(TOKEN, session)


def test_pages_send_a_stranger_to_the_login_form(client):
    response = client.http.get("/status")
    assert response.status_code == 303
    location = urlparse(response.headers["Location"])
    assert location.path == "/status/login"
    login = client.http.get(f"/status/login?{location.query}")
    assert login.status_code == 200
    assert 'name="token"' in login.body.decode() and 'type="password"' in login.body.decode()


@pytest.mark.parametrize("token", ["", "wrong", TOKEN + "x"])
def test_a_wrong_token_is_refused_with_401_and_no_cookie(client, token):
    response = client.http.post("/status/login", headers=FORM, body=urlencode({"token": token}))
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers
    assert "Wrong token" in response.body.decode()


def test_the_session_cookie_opens_the_pages(client, svc):
    order = _order(svc)
    cookie, _ = _sign_in(client)
    page = client.http.get("/status/orders", headers=cookie)
    assert page.status_code == 200
    assert f'href="/status/orders/{order.order_id}"' in page.body.decode()
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Cache-Control"] == "no-store"


def test_a_bearer_token_opens_the_pages_too(client, svc):
    order = _order(svc)
    page = client.http.get(f"/status/orders/{order.order_id}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200
    body = page.body.decode()
    for section in ("timeline", "payments", "shipments", "publications"):
        assert f'id="{section}"' in body


def test_the_order_page_shows_what_the_channel_withheld(client, svc):
    order = _order(svc, external_id="W-1", missing=["shipping_address (restricted data token refused)"])
    page = client.http.get(f"/status/orders/{order.order_id}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "<th>Missing</th><td>shipping_address (restricted data token refused)</td>" in page.body.decode()


def test_sessions_expire_and_cannot_be_forged():
    now = time.time()
    session = new_session(TOKEN, now)
    assert session_valid(session, TOKEN, now)
    assert not session_valid(session, TOKEN, now + 13 * 3600)  # after 12 hours
    assert not session_valid(session, "rotated-token", now)  # a new token ends every session
    expires, _, signature = session.partition(".")
    assert not session_valid(f"{int(expires) + 9999}.{signature}", TOKEN, now)
    assert not session_valid("", TOKEN, now) and not session_valid("x.y", TOKEN, now)


def test_an_action_needs_the_forms_csrf_token(client, svc):
    _order(svc, OrderStatus.FAILED)
    order_id = next(iter(svc.orders._orders))
    cookie, csrf = _sign_in(client)
    headers = {**cookie, **FORM}
    refused = client.http.post(
        f"/status/orders/{order_id}/cancel", headers=headers, body=urlencode({"csrf": "forged"})
    )
    assert refused.status_code == 403
    assert svc.orders.get(order_id).order.status == OrderStatus.FAILED

    done = client.http.post(
        f"/status/orders/{order_id}/cancel",
        headers=headers,
        body=urlencode({"csrf": csrf, "next": f"/status/orders/{order_id}"}),
    )
    assert done.status_code == 303
    location = urlparse(done.headers["Location"])
    assert location.path == f"/status/orders/{order_id}"
    assert "cancelled" in parse_qs(location.query)["msg"][0]
    assert svc.orders.get(order_id).order.status == OrderStatus.CANCELLED


def test_an_action_without_a_session_is_401(client, svc):
    order = _order(svc, OrderStatus.FAILED)
    response = client.http.post(f"/status/orders/{order.order_id}/retry", headers=FORM, body="csrf=x")
    assert response.status_code == 401
    assert svc.orders.get(order.order_id).order.status == OrderStatus.FAILED


def test_a_refused_action_says_why_and_changes_nothing(client, svc):
    order = _order(svc, OrderStatus.PAID)
    cookie, csrf = _sign_in(client)
    response = client.http.post(
        f"/status/orders/{order.order_id}/review",
        headers={**cookie, **FORM},
        body=urlencode({"csrf": csrf, "decision": "approve"}),
    )
    assert response.status_code == 303
    message = parse_qs(urlparse(response.headers["Location"]).query)["msg"][0]
    assert message.startswith("Refused:") and "PAID" in message
    assert svc.orders.get(order.order_id).order.status == OrderStatus.PAID


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/status", "/api/orders", "/status/../x"]
)
def test_redirects_stay_on_the_status_pages(client, target):
    response = client.http.post(
        "/status/login", headers=FORM, body=urlencode({"token": TOKEN, "next": target})
    )
    assert response.headers["Location"] in ("/status", target) and response.headers["Location"].startswith(
        "/status"
    )
    assert "evil" not in response.headers["Location"]


def test_channel_values_are_escaped_and_personal_data_is_not_shown(client, svc):
    order = _order(
        svc,
        external_id="<script>alert(1)</script>",
        shipping_address={"line1": "1 Secret Lane", "city": "Paris", "postal_code": "75001", "country": "FR"},
        customer={"email": "buyer@example.com", "name": "Ada Buyer"},
    )
    body = client.http.get(
        f"/status/orders/{order.order_id}", headers={"Authorization": f"Bearer {TOKEN}"}
    ).body.decode()
    assert "<script>alert(1)</script>" not in body
    assert esc("<script>alert(1)</script>") in body
    for secret in ("1 Secret Lane", "buyer@example.com", "Ada Buyer", "75001"):
        assert secret not in body
    assert re.search(r"Ships to</th><td>FR<", body)


def test_the_order_page_offers_what_the_status_allows(client, svc):
    review = _order(svc, OrderStatus.FRAUD_REVIEW, external_id="R-1")
    failed = _order(svc, OrderStatus.FAILED, external_id="F-1")
    done = _order(svc, OrderStatus.COMPLETED, external_id="C-1")
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def buttons(order):
        body = client.http.get(f"/status/orders/{order.order_id}", headers=auth).body.decode()
        return set(re.findall(r"<button[^>]*>([^<]+)</button>", body)) - {"Sign out"}

    assert buttons(review) == {"Approve", "Reject", "Cancel"}
    assert buttons(failed) == {"Retry", "Cancel"}
    assert buttons(done) == {"Open return"}  # a completed order can come back (nothing captured to refund)
    assert client.http.get("/status/orders/nope", headers=auth).status_code == 404


def test_retry_puts_a_failed_order_back_where_it_failed_under_a_new_execution(svc):
    order = _order(svc, OrderStatus.PAID)
    record_failure(order.order_id, "States.Timeout", "3PL down", orders=svc.orders, now=svc.now)
    assert svc.orders.get(order.order_id).order.status == OrderStatus.FAILED

    result = retry_failed(order.order_id, orders=svc.orders, workflow=svc.workflow, now=svc.now)
    assert result["status"] == "PAID" and result["attempt"] == 1
    assert result["execution_arn"].endswith(f":{order.order_id}-retry-1")
    stored = svc.orders.get(order.order_id)
    assert stored.order.status == OrderStatus.PAID
    assert stored.execution_arn == result["execution_arn"]
    assert stored.order.history[-1].event == "retried"
    with pytest.raises(RetryConflict):
        retry_failed(order.order_id, orders=svc.orders, workflow=svc.workflow, now=svc.now)

    record_failure(order.order_id, "States.Timeout", "again", orders=svc.orders, now=svc.now)
    again = retry_failed(order.order_id, orders=svc.orders, workflow=svc.workflow, now=svc.now)
    assert again["attempt"] == 2 and again["execution_arn"].endswith("-retry-2")


def test_a_retry_that_cannot_start_leaves_the_order_failed(svc):
    from tests.fakes import RecordingWorkflow

    order = _order(svc, OrderStatus.PAID)
    record_failure(order.order_id, "X", "y", orders=svc.orders, now=svc.now)
    with pytest.raises(ConnectionError):
        retry_failed(order.order_id, orders=svc.orders, workflow=RecordingWorkflow(fail_times=1), now=svc.now)
    stored = svc.orders.get(order.order_id).order
    assert stored.status == OrderStatus.FAILED
    assert stored.history[-1].detail["error"] == "RetryNotStarted"


def test_ago_reads_like_a_person():
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert ago(None, now) == "–"
    assert ago(now - timedelta(seconds=5), now) == "5 s ago"
    assert ago(now - timedelta(minutes=30), now) == "30 min ago"
    assert ago((now - timedelta(hours=5)).isoformat(), now) == "5 h ago"
    assert ago(now - timedelta(days=3), now) == "3 d ago"
