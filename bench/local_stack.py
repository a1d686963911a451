"""What the benchmarks share: the local stack on free ports, and signed Shopify orders/create webhooks."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """A child's preexec_fn: Linux sends it SIGTERM when the process (thread) that started it dies, even by
    SIGKILL or a test's timeout, so a bench leaves nothing running behind it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# Below Linux's ephemeral range (32768-60999 by default): no outgoing connection is given one of these, so a
# port chosen here stays free until its server binds it, and again after that server is killed.
_STABLE_PORTS = range(20000, 32000)


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that are free now, from outside the ephemeral range."""
    chosen: list[int] = []
    for port in random.sample(_STABLE_PORTS, len(_STABLE_PORTS)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"no {count} free ports in {_STABLE_PORTS}")


def boot(hub_port: int, token: str, **env: str) -> subprocess.Popen[bytes]:
    """`python -m local run` without the demo on `hub_port`; its AWS and moto ports are free ones unless
    `env` names them (HUB_LOCAL_AWS_PORT, HUB_LOCAL_MOTO_PORT), and `env` adds any other setting."""
    environ = {
        **os.environ,
        "HUB_PORT": str(hub_port),
        "HUB_LOCAL_AWS_PORT": str(free_port()),
        "HUB_LOCAL_MOTO_PORT": str(free_port()),
        "HUB_OPERATOR_TOKEN": token,
        "HUB_DEMO": "0",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "local", "run"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_healthy(url: str, timeout_s: float = 60.0, poll_s: float = 0.1) -> requests.Response:
    """The hub's first 200 answer to /health, polled every `poll_s`; RuntimeError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            health = requests.get(f"{url}/health", timeout=5)
            if health.status_code == 200:
                return health
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or busy starting: ask again until the deadline
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stack was not healthy within {timeout_s:.0f} s")
        time.sleep(poll_s)


def shut_down(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)


def shopify_order(
    order_id: int, name: str, email: str, line: dict[str, Any], tax: str, **fields: Any
) -> bytes:
    """A compact orders/create body of one `line` (id, quantity, price, tax_lines) with 6.00 shipping and
    `tax` on top, in USD and paid; `fields` (customer, shipping_address) complete it."""
    subtotal = Decimal(line["price"]) * line["quantity"]
    order = {
        "id": order_id,
        "name": name,
        "email": email,
        "created_at": "2026-11-23T10:00:00-05:00",
        "updated_at": "2026-11-23T10:00:00-05:00",
        "currency": "USD",
        "financial_status": "paid",
        "fulfillment_status": None,
        "cancelled_at": None,
        "gateway": "shopify_payments",
        "total_price": f"{subtotal + 6 + Decimal(tax):.2f}",
        "subtotal_price": f"{subtotal:.2f}",
        "total_tax": tax,
        "total_discounts": "0.00",
        "line_items": [
            {"sku": "MUG", "title": "Mug", "variant_title": None, "discount_allocations": [], **line}
        ],
        "shipping_lines": [{"id": 1, "title": "Standard", "price": "6.00", "discount_allocations": []}],
        **fields,
    }
    return json.dumps(order, separators=(",", ":")).encode()


def shopify_headers(body: bytes, *, secret: str, shop: str, topic: str = "orders/create") -> dict[str, str]:
    """The headers Shopify sends `body` with, signed with the store's webhook `secret`."""
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    ids = {"X-Shopify-Webhook-Id": str(uuid.uuid4()), "X-Shopify-Event-Id": str(uuid.uuid4())}
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": "2024-04",
        **ids,
        "X-Shopify-Triggered-At": "2026-11-23T15:00:00Z",
    }
