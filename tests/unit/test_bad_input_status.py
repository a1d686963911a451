"""Bad-input catalogue, operator doors (issue #15): cursors, session cookies, `next`, logout, what is shown.

Input → answer, and nothing changed: a crafted cursor is a 400, a forged cookie is a stranger (never a 500),
a `next` with CR/LF is a safe redirect, logout needs the page's CSRF token, invisible characters are shown
as `[U+XXXX]`, and a failed order shows one line of its cause (no traceback, no server path).
"""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlencode

import pytest

from chalicelib.domain.lifecycle import failure_summary, record_failure
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import OrderStatus
from chalicelib.domain.status_views import OrderRow
from chalicelib.entrypoints.status_html import esc, failed_section
from chalicelib.entrypoints.status_page import COOKIE, SESSION_SECONDS, csrf_token, new_session
from tests.unit.api import AUTH, TOKEN

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _saved(svc, external_id: str = "S-1", status: OrderStatus = OrderStatus.RECEIVED):
    order = normalise_manual(
        {
            "external_id": "S-1",
            "currency": "EUR",
            "placed_at": "2026-11-23T10:00:00Z",
            "lines": [{"title": "Mug", "quantity": 1, "unit_price": "9.90"}],
        }
    )
    # Set after validation: the page must show safely whatever an older hub (or a channel) stored.
    order.external_id = external_id
    order.status = status
    svc.orders.save(order, expected_version=None)
    return order


def _session(now: float) -> tuple[dict[str, str], str]:
    session = new_session(TOKEN, now)
    return {"Cookie": f"{COOKIE}={session}"}, csrf_token(TOKEN, session)


CURSORS = [
    ("not base64", "%%%", 400),
    ("not ASCII", "%C3%A9", 400),
    ("a list", _b64("[]"), 400),
    ("offset 1e400", _b64('{"offset": 1e400}'), 400),
    ("offset of 5,000 digits", _b64('{"offset": "' + "9" * 5000 + '"}'), 400),
    ("nested 5,000 deep", _b64("[" * 5000 + "]" * 5000), 400),
]


@pytest.mark.parametrize(("name", "cursor", "status"), CURSORS, ids=[c[0] for c in CURSORS])
def test_a_crafted_cursor_is_400_on_the_api_and_the_status_page(client, svc, name, cursor, status):
    _saved(svc)
    assert client.http.get(f"/api/orders?cursor={cursor}", headers=AUTH).status_code == status
    assert client.http.get(f"/status/orders?cursor={cursor}", headers=BEARER).status_code == status


COOKIES = [
    ("5,000-digit expiry", "9" * 5000 + ".abc"),
    ("superscript digits", "\u00b2\u00b3.abc"),
    ("Arabic-Indic digits", "\u0661\u0662\u0663.abc"),
    ("no signature", "99999999999"),
    ("empty", ""),
]


@pytest.mark.parametrize(("name", "cookie"), COOKIES, ids=[c[0] for c in COOKIES])
def test_a_forged_session_cookie_is_a_stranger_never_a_500(client, svc, name, cookie):
    order = _saved(svc)
    headers = {"Cookie": f"{COOKIE}={cookie}"}
    page = client.http.get("/status", headers=headers)
    assert page.status_code == 303 and page.headers["Location"].startswith("/status/login")
    action = client.http.post(
        f"/status/orders/{order.order_id}/cancel", headers={**FORM, **headers}, body="csrf=x"
    )
    assert action.status_code == 401
    assert svc.orders.get(order.order_id).order.status is OrderStatus.RECEIVED


NEXTS = [
    "/status\r\nSet-Cookie: evil=1",
    "/status/orders\nLocation: https://evil.example/",
    "/status\x00",
    "/status/orders/\u202eabc",
    "/status orders",
]


@pytest.mark.parametrize("target", NEXTS)
def test_next_with_control_characters_is_a_safe_redirect(client, svc, target):
    login = client.http.post("/status/login", headers=FORM, body=urlencode({"token": TOKEN, "next": target}))
    assert (login.status_code, login.headers["Location"]) == (303, "/status")
    form = client.http.get(f"/status/login?{urlencode({'next': target})}")
    assert form.status_code == 200 and 'name="next" value="/status"' in form.body.decode()
    order = _saved(svc, status=OrderStatus.FAILED)
    headers, csrf = _session(time.time())
    retry = client.http.post(
        f"/status/orders/{order.order_id}/cancel",
        headers={**FORM, **headers},
        body=urlencode({"csrf": csrf, "next": target}),
    )
    assert retry.status_code == 303 and retry.headers["Location"].startswith("/status?msg=")
    assert "\r" not in retry.headers["Location"] and "\n" not in retry.headers["Location"]


def test_logout_needs_the_pages_csrf_token(client, svc):
    headers, csrf = _session(time.time())
    for forged in ({}, {"csrf": "forged"}):
        refused = client.http.post("/status/logout", headers={**FORM, **headers}, body=urlencode(forged))
        assert refused.status_code == 403 and "Set-Cookie" not in refused.headers
    assert client.http.get("/status/orders", headers=headers).status_code == 200  # still signed in
    done = client.http.post("/status/logout", headers={**FORM, **headers}, body=urlencode({"csrf": csrf}))
    assert done.status_code == 303 and "Max-Age=0" in done.headers["Set-Cookie"]
    # Not signed in: nothing to protect, the cookie is cleared all the same.
    stranger = client.http.post("/status/logout", headers=FORM, body="")
    assert stranger.status_code == 303 and "Max-Age=0" in stranger.headers["Set-Cookie"]
    assert SESSION_SECONDS > 0


IDS = [
    ("right-to-left override", "INV\u202egnp.exe", "INV[U+202E]gnp.exe", "\u202e"),
    ("bell and NUL", "A\x07B\x00", "A[U+0007]B[U+0000]", "\x07"),
    ("CR/LF", "A\r\nB", "A[U+000D][U+000A]B", "\r\n"),
    ("zero-width space", "A\u200bB", "A[U+200B]B", "\u200b"),
    ("isolate", "\u2066A\u2069", "[U+2066]A[U+2069]", "\u2066"),
]


@pytest.mark.parametrize("case", IDS, ids=[c[0] for c in IDS])
def test_ids_with_invisible_characters_are_shown_visibly(client, svc, case):
    _, external_id, shown, raw = case
    order = _saved(svc, external_id)
    for path in (f"/status/orders/{order.order_id}", "/status/orders"):
        body = client.http.get(path, headers=BEARER).body.decode()
        assert shown in body and raw not in body


LAMBDA_CAUSE = json.dumps(
    {
        "errorMessage": "'order' missing in /var/task/chalicelib/domain/payment.py\nsecond line",
        "errorType": "KeyError",
        "requestId": "r-1",
        "stackTrace": [
            '  File "/var/task/chalicelib/entrypoints/workflow_tasks.py", line 40, in take_payment\n'
        ],
    }
)
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/home/hub/.venv/lib/python3.11/site-packages/x.py", line 3, in f\n'
    "ValueError: bad value read from /opt/python/lib/y.py"
)
CAUSES = [
    ("Lambda's error JSON", LAMBDA_CAUSE, "KeyError: 'order' missing in …"),
    ("a Python traceback", TRACEBACK, "ValueError: bad value read from …"),
    ("plain text", "took too long", "took too long"),
    ("a URL stays", "3PL at https://3pl.example/api/v1 is down", "3PL at https://3pl.example/api/v1 is down"),
]


@pytest.mark.parametrize(("name", "cause", "summary"), CAUSES, ids=[c[0] for c in CAUSES])
def test_a_failed_orders_cause_is_one_line_without_traceback_or_paths(client, svc, name, cause, summary):
    assert failure_summary(cause) == summary
    order = _saved(svc)
    record_failure(order.order_id, "States.TaskFailed", cause, orders=svc.orders, now=svc.now)
    stored = svc.orders.get(order.order_id).order.history[-1].detail
    assert stored["cause"] == summary
    for path in (f"/status/orders/{order.order_id}", f"/api/orders/{order.order_id}"):
        body = client.http.get(path, headers=AUTH).body.decode()
        assert "/var/task" not in body and "Traceback" not in body and ".venv" not in body
        assert "/opt/python" not in body and (esc(summary) in body or json.dumps(summary) in body)


def test_a_cause_stored_before_is_shown_as_one_line_too(client, svc):
    order = _saved(svc, status=OrderStatus.FAILED)
    order.record("failed", svc.now(), error="States.TaskFailed", cause=TRACEBACK, previous="RECEIVED")
    svc.orders.save(order, expected_version=1)
    page = client.http.get(f"/status/orders/{order.order_id}", headers=BEARER).body.decode()
    row = OrderRow(order.order_id, "manual", "default", "S-1", "FAILED", "", order)
    overview = failed_section("", [row], "csrf", "/status", svc.now())
    for body in (page, overview):
        assert "ValueError: bad value read from …" in body and "/opt/python" not in body
