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

from chalicelib.domain.channel_events import OrderSnapshot
from chalicelib.domain.validation import validate_order
from chalicelib.integrations.shopify.webhook import parse_shopify, verify_shopify_hmac
from chalicelib.integrations.woocommerce.webhook import parse_woocommerce, verify_wc_signature
from local.smoke import Unusable, main, refuse_unless_allowed
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
