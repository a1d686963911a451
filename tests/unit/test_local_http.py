"""The local HTTP server at API Gateway's edge: path parameters decoded once, bodies capped before reading."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest
from chalice import Chalice
from chalice.config import Config
from chalice.local import LocalDevServer

from local.hub_http import MAX_REQUEST_BYTES, HubRequestHandler

app = Chalice(app_name="edge")
CALLS: list[str] = []


@app.route("/things/{kind}/{thing_id}", methods=["GET", "POST"], content_types=["application/json"])
def thing(kind: str, thing_id: str) -> dict[str, str]:
    CALLS.append(thing_id)
    return {"kind": kind, "thing_id": thing_id}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    config = Config.create(chalice_stage="local", app_name="edge", lambda_timeout=30, lambda_memory_size=128)
    dev = LocalDevServer(app, config, "127.0.0.1", 0, handler_cls=HubRequestHandler)
    thread = threading.Thread(target=dev.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", dev.server.server_address[1]
    dev.shutdown()


def exchange(address: tuple[str, int], head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send a request by hand (headers as given, then `body`), return status and answer body."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(head + b"\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer:
                headers, _, rest = answer.partition(b"\r\n\r\n")
                length = int(
                    next(h for h in headers.split(b"\r\n") if h.lower().startswith(b"content-length")).split(
                        b":"
                    )[1]
                )
                if len(rest) >= length:
                    break
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


PATHS = [
    ("a%2Fb%2Fc", "a/b/c"),  # API Gateway: %2F inside a parameter is a slash in its value
    ("caf%C3%A9", "café"),
    ("a+b", "a+b"),  # a path is not a form: + stays +
    ("100%25", "100%"),
    ("%252F", "%2F"),  # decoded once, not twice
    ("%E2%80%AEx", "\u202ex"),
]


@pytest.mark.parametrize(("raw", "decoded"), PATHS)
def test_path_parameters_are_percent_decoded_once(server, raw, decoded):
    status, body = exchange(server, f"GET /things/shopify/{raw} HTTP/1.1\r\nHost: x\r\n".encode())
    assert (status, json.loads(body)) == (200, {"kind": "shopify", "thing_id": decoded})


def test_a_body_over_the_limit_is_413_before_it_is_read(server):
    CALLS.clear()
    announced = 30 * 1024 * 1024
    head = (
        f"POST /things/shopify/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {announced}\r\n"
    ).encode()
    # Only 64 KiB of the announced 30 MiB is ever sent: an answer proves the rest was not waited for.
    status, body = exchange(server, head, b"x" * 65536)
    assert (status, json.loads(body)["message"]) == (413, "request body over 10 MB")
    assert CALLS == []
    assert announced > MAX_REQUEST_BYTES


@pytest.mark.parametrize("length", ["abc", "-1", "1" * 40, "\u0661"])
def test_a_content_length_that_is_not_a_number_is_400(server, length):
    head = f"POST /things/shopify/1 HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n".encode()
    status, _ = exchange(server, head)
    assert status == 400


def test_a_body_within_the_limit_is_served(server):
    head = b"POST /things/shopify/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: 2\r\n"
    status, body = exchange(server, head, b"{}")
    assert (status, json.loads(body)["thing_id"]) == (200, "1")
