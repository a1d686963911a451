"""The local server's edge over real HTTP (issue #15): path parameters decoded as API Gateway does, bodies
capped before they are read, and a body with a byte order mark refused, with nothing stored or queued."""

from __future__ import annotations

import socket
import uuid
from urllib.parse import quote, urlparse

import pytest

from chalicelib import resources
from chalicelib.domain.manual_channel import normalise_manual


def _save_directly(stack, monkeypatch, external_id: str) -> str:
    """An order whose external id holds reserved characters, saved as an older hub or a channel might have."""
    from chalicelib.adapters import models
    from chalicelib.adapters.order_repository import DynamoOrderRepository

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    models.bind(resources.TABLE.name, "us-east-1", stack.aws_url)
    order = normalise_manual(
        {
            "store": "edge",
            "external_id": f"E-{uuid.uuid4().hex[:8]}",
            "currency": "EUR",
            "placed_at": "2026-11-01T00:00:00Z",
            "lines": [{"title": "Mug", "quantity": 1, "unit_price": "5.00"}],
        }
    )
    order.external_id = external_id
    DynamoOrderRepository().save(order, expected_version=None)
    return order.order_id


def test_a_path_parameter_with_reserved_characters_is_found_as_api_gateway_decodes_it(stack, monkeypatch):
    external_id = f"a/b/c é+{uuid.uuid4().hex[:6]}"
    order_id = _save_directly(stack, monkeypatch, external_id)
    found = stack.api("GET", f"/api/orders/by-channel/manual/{quote(external_id, safe='')}")
    assert found.status_code == 200, found.text
    assert (found.json()["order_id"], found.json()["external_id"]) == (order_id, external_id)
    missing = stack.api("GET", "/api/orders/ord%2Fnope%3F")
    assert missing.status_code == 404 and "ord/nope?" in missing.text


def _raw_post(stack, path: str, announced: int, headers: str = "") -> tuple[int, bytes]:
    """Announce `announced` bytes, send 64 KiB of them and read the answer: a server that waited for the
    rest would never answer, and the socket's timeout would fail the test."""
    url = urlparse(stack.hub_url)
    with socket.create_connection((url.hostname, url.port), timeout=20) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {stack.token}\r\n{headers}Content-Length: {announced}\r\n\r\n".encode()
        )
        sock.sendall(b"{" + b" " * 65535)  # 64 KiB of the announced body, never the rest
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/orders", ""),
        (
            "/webhooks/shopify",
            "X-Shopify-Hmac-Sha256: bm9wZQ==\r\nX-Shopify-Shop-Domain: nobody.myshopify.com\r\n",
        ),
    ],
)
def test_a_30_mib_body_is_413_before_it_is_read(stack, path, headers):
    status, body = _raw_post(stack, path, 30 * 1024 * 1024, headers)
    assert status == 413 and b"over 10 MB" in body  # answered with 29.9 MiB never sent


def test_a_body_with_a_byte_order_mark_is_400_and_not_queued(stack):
    external_id = f"BOM-{uuid.uuid4().hex[:8]}"
    body = (
        b'\xef\xbb\xbf{"external_id": "' + external_id.encode() + b'", "currency": "EUR", '
        b'"placed_at": "2026-11-23T10:00:00Z", '
        b'"lines": [{"title": "Mug", "quantity": 1, "unit_price": "9.90"}]}'
    )
    answer = stack.api("POST", "/api/orders", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "byte order mark" in answer.json()["Message"]
    deep = stack.api(
        "POST",
        "/api/orders",
        data=b"[" * 10_000 + b"]" * 10_000,
        headers={"Content-Type": "application/json"},
    )
    assert deep.status_code == 400 and "nested deeper" in deep.json()["Message"]
    stack.drained(resources.INGEST_QUEUE.name)  # anything queued would have been handled by now
    assert stack.api("GET", f"/api/orders/by-channel/manual/{external_id}").status_code == 404


def _raw_headers(stack, extra: str) -> tuple[int, bytes]:
    url = urlparse(stack.hub_url)
    with socket.create_connection((url.hostname, url.port), timeout=20) as sock:
        sock.sendall(
            f"GET /api/orders HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {stack.token}\r\n"
            f"{extra}Connection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


@pytest.mark.parametrize(
    ("what", "extra"),
    [
        ("one 100 KB header", "X-Pad: " + "a" * 100_000 + "\r\n"),
        ("200 headers", "".join(f"X-Pad-{n}: x\r\n" for n in range(200))),
    ],
)
def test_oversized_headers_are_431_and_the_server_keeps_serving(stack, what, extra):
    status, _ = _raw_headers(stack, extra)
    assert status == 431, what
    assert stack.api("GET", "/health").status_code == 200
