"""The smoke test's store: a throwaway WooCommerce or Shopify connection and one signed virtual order.

The order is a paid virtual good (one line, 1.00 USD, no shipping address, no customer e-mail, IP or
card), so on any stage it goes the same way without the hub calling anyone back: fraud finds nothing to
score, the channel already took the money (recorded, no payment call), allocation finds nothing to ship
(no warehouse, 3PL or fulfilment policy is consulted) and the lifecycle ends in COMPLETED, with no
milestone for the channel's outbox. WooCommerce is the default: the hub never reads a WooCommerce store
while ingesting, while for a Shopify order the fraud check asks the shop for its risk assessment (a
throwaway shop cannot answer: logged as an unavailable signal, and the order goes on).
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local.simulators.kit.signatures import base64_hmac_sha256

CHANNELS = ("woocommerce", "shopify")
SMOKE_SKU = "SMOKE-VIRTUAL"
SMOKE_TITLE = "order-hub smoke test (virtual good)"
# Shopify's webhook API version the headers name (the hub reads the body, not the version).
SHOPIFY_API_VERSION = "2026-10"


@dataclass(frozen=True)
class SmokeStore:
    """Where the smoke order goes in: a channel's store and the webhook secret the hub holds for it."""

    channel: str
    store: str
    webhook_secret: str
    throwaway: bool

    @staticmethod
    def throwaway_store(channel: str) -> SmokeStore:
        """A store no one else uses (`smoke-<random>`), on a reserved name that never resolves."""
        name = f"smoke-{secrets.token_hex(6)}"
        store = f"https://{name}.example/" if channel == "woocommerce" else f"{name}.myshopify.com"
        return SmokeStore(channel, store, secrets.token_urlsafe(32), throwaway=True)

    def connection_body(self) -> dict[str, str]:
        """The POST /api/connections body registering this throwaway store (credentials made up)."""
        if self.channel == "woocommerce":
            return {
                "channel": "woocommerce",
                "store": self.store,
                "webhook_secret": self.webhook_secret,
                "consumer_key": f"ck_{secrets.token_hex(20)}",
                "consumer_secret": f"cs_{secrets.token_hex(20)}",
            }
        return {
            "channel": "shopify",
            "store": self.store,
            "webhook_secret": self.webhook_secret,
            "access_token": f"shpat_{secrets.token_hex(16)}",
        }

    @property
    def webhook_path(self) -> str:
        return f"/webhooks/{self.channel}"

    def order_delivery(self, external_id: int, now: datetime) -> tuple[bytes, dict[str, str]]:
        """One `order created` delivery of the virtual order, signed as the channel signs it."""
        if self.channel == "woocommerce":
            body = _compact(_woocommerce_order(external_id, now))
            return body, self._woocommerce_headers(body)
        body = _compact(_shopify_order(external_id, now))
        return body, self._shopify_headers(body, now)

    def _woocommerce_headers(self, body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": "WooCommerce/9.4 Hookshot (WordPress/6.7)",
            "X-WC-Webhook-Source": self.store,
            "X-WC-Webhook-Topic": "order.created",
            "X-WC-Webhook-Resource": "order",
            "X-WC-Webhook-Event": "created",
            "X-WC-Webhook-Signature": base64_hmac_sha256(self.webhook_secret, body),
            "X-WC-Webhook-ID": "1",
            "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
        }

    def _shopify_headers(self, body: bytes, now: datetime) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": base64_hmac_sha256(self.webhook_secret, body),
            "X-Shopify-Shop-Domain": self.store,
            "X-Shopify-API-Version": SHOPIFY_API_VERSION,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Event-Id": str(uuid.uuid4()),
            "X-Shopify-Triggered-At": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }


def new_external_id() -> int:
    """A channel order id this smoke run alone uses (Shopify's ids are 64-bit, WooCommerce's a post id)."""
    return 9_000_000_000 + secrets.randbelow(1_000_000_000)


def _compact(payload: Mapping[str, Any]) -> bytes:
    # Both vendors send compact UTF-8 JSON; the signature covers exactly these bytes.
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _woocommerce_order(external_id: int, now: datetime) -> dict[str, Any]:
    """A REST v3 order as WooCommerce's `order.created` sends it: paid by bank transfer, virtual."""
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    empty = {"first_name": "", "last_name": "", "company": "", "address_1": "", "address_2": "", "city": "",
             "state": "", "postcode": "", "country": ""}  # fmt: skip
    return {
        "id": external_id,
        "number": str(external_id),
        "status": "processing",
        "currency": "USD",
        "prices_include_tax": False,
        "date_created_gmt": stamp,
        "date_modified_gmt": stamp,
        "date_paid_gmt": stamp,
        "discount_total": "0.00",
        "shipping_total": "0.00",
        "total_tax": "0.00",
        "total": "1.00",
        "payment_method": "bacs",
        "payment_method_title": "Direct bank transfer",
        "billing": {**empty, "email": "", "phone": ""},
        "shipping": empty,
        "line_items": [
            {
                "id": 1,
                "name": SMOKE_TITLE,
                "sku": SMOKE_SKU,
                "quantity": 1,
                "subtotal": "1.00",
                "subtotal_tax": "0.00",
                "total": "1.00",
                "total_tax": "0.00",
                "taxes": [],
                "meta_data": [],
            }
        ],
        "shipping_lines": [],
        "fee_lines": [],
        "refunds": [],
        "meta_data": [],
    }


def _shopify_order(external_id: int, now: datetime) -> dict[str, Any]:
    """An `orders/create` body as Shopify sends it: paid, nothing to ship."""
    stamp = now.astimezone(UTC).isoformat(timespec="seconds")
    return {
        "id": external_id,
        "name": f"#SMOKE{external_id % 100000}",
        "created_at": stamp,
        "updated_at": stamp,
        "currency": "USD",
        "financial_status": "paid",
        "fulfillment_status": None,
        "cancelled_at": None,
        "gateway": "manual",
        "total_price": "1.00",
        "subtotal_price": "1.00",
        "total_tax": "0.00",
        "total_discounts": "0.00",
        "taxes_included": False,
        "line_items": [
            {
                "id": external_id + 1,
                "sku": SMOKE_SKU,
                "title": SMOKE_TITLE,
                "variant_title": None,
                "quantity": 1,
                "price": "1.00",
                "requires_shipping": False,
                "discount_allocations": [],
                "tax_lines": [],
            }
        ],
        "shipping_lines": [],
    }
