"""GIVEN the app's routes as Chalice registered them WHEN each is called without a credential, with a
wrong one or with an expired one (a session cookie past its expiry, credentials from before the operator
token was rotated) THEN it answers 401 or sends to the sign-in form: a new route cannot skip authentication.
And GIVEN /openapi.json THEN it documents every route with its answers, as a valid OpenAPI 3.1 document."""

from __future__ import annotations

import re
import time
from urllib.parse import urlparse

import pytest
from openapi_spec_validator import validate

from app import app
from chalicelib.entrypoints.openapi_document import PUBLIC_PATHS, PUBLIC_PREFIXES
from chalicelib.entrypoints.status_page import COOKIE, SESSION_SECONDS, new_session
from tests.unit.api import TOKEN

# The documented public ones (README "HTTP API" and "Status page"): each has its own check or none.
EXPECTED_PUBLIC = {
    "/health",
    "/openapi.json",
    "/status/login",
    "/status/logout",
    "/webhooks/shopify",
    "/webhooks/woocommerce",
    "/webhooks/stripe",
    "/webhooks/3pl/{provider}",
    "/webhooks/carriers/{carrier}",
}


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


PROTECTED = sorted(
    (method, path)
    for path, methods in app.routes.items()
    for method in methods
    if path.startswith(("/api/", "/status")) and not _public(path)
)
WRONG = {
    "no credential": {},
    "a wrong bearer token": {"Authorization": "Bearer not-the-token"},
    "the token under another scheme": {"Authorization": f"Basic {TOKEN}"},
    "a forged session cookie": {"Cookie": f"{COOKIE}=1999999999.forged"},
}

# Credentials that were good once: the operator token rotates (README "Status page"), sessions expire.
BEFORE_ROTATION = "op-token-before-rotation"
EXPIRED = {
    "a session cookie past its expiry": lambda: {
        "Cookie": f"{COOKIE}={new_session(TOKEN, time.time() - SESSION_SECONDS - 60)}"
    },
    "a session cookie one second past its expiry": lambda: {
        "Cookie": f"{COOKIE}={new_session(TOKEN, time.time() - SESSION_SECONDS - 1)}"
    },
    "a session cookie signed before the token was rotated": lambda: {
        "Cookie": f"{COOKIE}={new_session(BEFORE_ROTATION, time.time())}"
    },
    "the bearer token before it was rotated": lambda: {"Authorization": f"Bearer {BEFORE_ROTATION}"},
}


def test_the_public_routes_are_exactly_the_documented_ones():
    public = {path for path in app.routes if _public(path)}
    assert public == EXPECTED_PUBLIC
    assert len(PROTECTED) >= 30  # the enumeration found the app's routes, not an empty list


@pytest.mark.parametrize("credential", WRONG.values(), ids=WRONG.keys())
@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_every_api_and_status_route_refuses_a_missing_or_wrong_credential(
    client, svc, method, path, credential
):
    url = re.sub(r"{\w+}", "x", path)
    route = app.routes[path][method]
    content_type = route.content_types[0]
    body = "{}" if content_type == "application/json" else ""
    headers = {"Content-Type": content_type, **credential}

    answer = client.http.request(method, url, headers=headers, body=body if method != "GET" else b"")

    if answer.status_code == 303:
        assert urlparse(answer.headers["Location"]).path == "/status/login"
    else:
        assert answer.status_code == 401, answer.body[:200]
    assert svc.ingest_queue.sent == [] and svc.workflow.started == []


@pytest.mark.parametrize("credential", EXPIRED.values(), ids=EXPIRED.keys())
@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_every_api_and_status_route_refuses_an_expired_credential(client, svc, method, path, credential):
    test_every_api_and_status_route_refuses_a_missing_or_wrong_credential(
        client, svc, method, path, credential()
    )


def test_a_session_cookie_within_its_expiry_is_accepted(client):
    """The neighbour of the expired ones: the same cookie, minted a minute before it would expire."""
    cookie = {"Cookie": f"{COOKIE}={new_session(TOKEN, time.time() - SESSION_SECONDS + 60)}"}
    assert client.http.get("/status/orders", headers=cookie).status_code == 200


def test_openapi_json__public_and_a_valid_openapi_3_1_document(client):
    answer = client.http.get("/openapi.json")

    assert answer.status_code == 200
    document = answer.json_body
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_openapi_json__every_route_of_the_app_with_its_documented_answers(client):
    document = client.http.get("/openapi.json").json_body

    listed = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    served = {(m, p) for p, methods in app.routes.items() for m in methods}
    assert listed == served
    undocumented = [
        f"{m.upper()} {p}"
        for p, ops in document["paths"].items()
        for m, op in ops.items()
        if op.get("x-undocumented")
    ]
    assert undocumented == [], "add their answers to openapi_document.ANSWERS (and the README table)"
    assert "401" in document["paths"]["/api/orders"]["get"]["responses"]
    assert document["paths"]["/health"]["get"]["security"] == []


def test_openapi_json__request_bodies_come_from_the_routes_models(client):
    paths = client.http.get("/openapi.json").json_body["paths"]

    def schema(path: str) -> dict:
        return paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert {"external_id", "currency", "lines"} <= set(schema("/api/orders")["properties"])
    assert schema("/api/connections")["discriminator"]["propertyName"] == "channel"
    returns = schema("/api/orders/{order_id}/returns")
    assert returns["required"] == ["lines"] and "refund" in returns["properties"]["resolution"]["enum"]
    assert schema("/api/orders/{order_id}/refunds")["required"] == ["amount", "reason"]
    assert [p["name"] for p in paths["/api/orders/{order_id}/returns"]["post"]["parameters"]] == ["order_id"]
