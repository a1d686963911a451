"""The smoke test's own rules (local/smoke.py): what it signs and sends, the URLs it refuses, its needs."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from chalicelib.domain.channel_events import OrderSnapshot
from chalicelib.domain.validation import validate_order
from chalicelib.integrations.shopify.webhook import parse_shopify, verify_shopify_hmac
from chalicelib.integrations.woocommerce.webhook import parse_woocommerce, verify_wc_signature
from local.smoke import Hub, Report, Unusable, main, refuse_unless_allowed, run
from local.smoke_channels import SMOKE_SKU, SmokeStore, new_external_id

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_the_woocommerce_delivery_is_signed_and_read_as_the_hub_reads_it():
    # GIVEN a throwaway WooCommerce store and the smoke's order delivery
    store = SmokeStore.throwaway_store("woocommerce")
    body, headers = store.order_delivery(new_external_id(), NOW)

    # THEN the hub's verifier accepts its signature, its normaliser reads a paid virtual order
    assert verify_wc_signature(store.webhook_secret, body, headers["X-WC-Webhook-Signature"])
    assert not verify_wc_signature("another secret", body, headers["X-WC-Webhook-Signature"])
    assert headers["X-WC-Webhook-Source"] == store.store == store.connection_body()["store"]
    order = parse_woocommerce(headers["X-WC-Webhook-Topic"], json.loads(body), store.store).order
    validate_order(order, now=NOW)
    assert order.shipping_address is None and order.customer.email is None  # nothing to ship, no velocity
    assert (order.payment.status, order.payment.amount_captured) == ("paid", Decimal("1.00"))
    assert [line.sku for line in order.lines] == [SMOKE_SKU]


def test_the_shopify_delivery_is_signed_and_read_as_the_hub_reads_it():
    store = SmokeStore.throwaway_store("shopify")
    body, headers = store.order_delivery(new_external_id(), NOW)

    assert verify_shopify_hmac(store.webhook_secret, body, headers["X-Shopify-Hmac-Sha256"])
    assert headers["X-Shopify-Shop-Domain"] == store.store
    assert store.store.startswith("smoke-") and store.store.endswith(".myshopify.com")
    event = parse_shopify(headers["X-Shopify-Topic"], json.loads(body), store.store)
    assert isinstance(event, OrderSnapshot)
    order = event.order
    validate_order(order, now=NOW)
    assert order.shipping_address is None and order.customer.email is None
    assert order.payment.amount_captured == Decimal("1.00")


def test_throwaway_stores_are_unique_and_on_names_that_never_resolve():
    stores = {SmokeStore.throwaway_store("woocommerce").store for _ in range(50)}
    assert len(stores) == 50
    assert all(s.startswith("https://smoke-") and s.endswith(".example/") for s in stores)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://localhost:8000/", "https://127.0.0.2", "http://[::1]:8000"]
)
def test_loopback_urls_are_allowed_without_deployed(url):
    refuse_unless_allowed(url, deployed=False)


@pytest.mark.parametrize(
    ("url", "deployed", "says"),
    [
        ("https://abc.execute-api.eu-west-1.amazonaws.com/api", False, "pass --deployed"),
        ("http://10.0.0.5:8000", False, "pass --deployed"),
        ("http://127.0.0.1.nip.io:8000", False, "pass --deployed"),
        ("http://abc.execute-api.eu-west-1.amazonaws.com/api", True, "https only"),
        ("ftp://127.0.0.1/", False, "not an http(s) URL"),
        ("127.0.0.1:8000", False, "not an http(s) URL"),
    ],
)
def test_other_urls_are_refused_before_anything_is_sent(url, deployed, says):
    with pytest.raises(Unusable, match=re.escape(says)):
        refuse_unless_allowed(url, deployed=deployed)


def test_a_deployed_stage_is_allowed_over_https_with_deployed():
    refuse_unless_allowed("https://abc.execute-api.eu-west-1.amazonaws.com/api", deployed=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def test_an_unreachable_hub_is_a_clear_message_and_exit_2(capsys):
    url = f"http://127.0.0.1:{closed_port()}"
    assert main(["--base-url", url], {"HUB_OPERATOR_TOKEN": "t"}) == 2
    err = capsys.readouterr().err
    assert err == f"smoke: cannot reach the hub at {url}: connection refused or host not found\n"


def test_no_token_or_a_store_without_its_secret_is_refused_before_anything_is_sent(capsys):
    assert main([], {}) == 2
    assert "no operator token" in capsys.readouterr().err
    assert main(["--store", "https://shop.example/"], {"HUB_OPERATOR_TOKEN": "t"}) == 2
    assert "HUB_SMOKE_WEBHOOK_SECRET" in capsys.readouterr().err
    assert main(["--base-url", "https://hub.example/api"], {"HUB_OPERATOR_TOKEN": "t"}) == 2
    assert "pass --deployed" in capsys.readouterr().err


def test_the_smoke_command_needs_only_requests_and_the_standard_library():
    # It runs from a laptop against a deployed stage: nothing of the hub (chalicelib), boto3 or pydantic.
    code = "import sys, local.smoke; print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    # (cython_runtime: the module Cython registers when a compiled extension loads, not a package)
    allowed = set(sys.stdlib_module_names) | {"requests", "urllib3", "idna", "charset_normalizer", "certifi"}
    allowed.add("cython_runtime")
    foreign = [m for m in loaded if m not in allowed and m != "local" and not m.startswith("_")]
    assert foreign == []


HEALTHY = {
    "status": "ok",
    "components": {c: {"status": "ok"} for c in ("table", "queues", "workflows", "scheduler")},
}
PATHS = ("/health", "/api/orders", "/api/connections/{connection_id}", "/webhooks/woocommerce")
CANNED = {
    "/health": HEALTHY,
    "/openapi.json": {"openapi": "3.1.0", "paths": {p: {} for p in PATHS}},
    "/api/orders": {"orders": []},
}


class FakeHub(Hub):
    """A hub whose order rests in FRAUD_REVIEW (a stage whose fraud policy flags everything)."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:1", "t")
        self.calls: list[tuple[str, str, object]] = []

    def call(self, method: str, path: str, *, auth: bool = True, **kwargs: object) -> requests.Response:
        self.calls.append((method, path, kwargs.get("json")))
        if path in CANNED:
            return answer(200, CANNED[path])
        if path == "/api/connections" and method == "POST":
            return answer(201, {"connection_id": "conn_1"})
        if path == "/api/connections":
            return answer(200, {"connections": []})
        if path.startswith("/api/orders/by-channel/"):
            return answer(
                200, {"order_id": "ord_1", "status": "FRAUD_REVIEW", "history": [{"event": "received"}]}
            )
        return answer(204 if method == "DELETE" else 200, {})

    def sign_in(self) -> requests.Response:
        return answer(401, {})


def answer(status: int, body: object) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    return response


def test_an_order_resting_elsewhere_fails_the_run_and_is_cancelled_then_the_store_deleted():
    hub, report = FakeHub(), Report(out=lambda line: None)

    run(hub, SmokeStore.throwaway_store("woocommerce"), timeout_s=5, report=report)

    failed = [name for ok, name, _ in report.lines if not ok]
    assert failed == ["order", "status page"]
    assert ("POST", "/api/orders/ord_1/cancel", {"reason": "smoke test"}) in hub.calls
    assert ("DELETE", "/api/connections/conn_1", None) in hub.calls
    assert [name for _, name, _ in report.lines][-2:] == ["cleanup order", "cleanup connection"]
