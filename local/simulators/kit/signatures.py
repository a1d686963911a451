"""How Shopify and WooCommerce sign a webhook: one place for the simulators and `python -m local.smoke`."""

from __future__ import annotations

import base64
import hashlib
import hmac


def base64_hmac_sha256(key: str, body: bytes) -> str:
    """Base64 of the raw HMAC-SHA256 of the exact body bytes: Shopify's `X-Shopify-Hmac-Sha256` (keyed with
    the app's webhook secret) and WooCommerce's `X-WC-Webhook-Signature` (keyed with the webhook's secret
    as `wp_specialchars_decode` leaves it) are both this."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
