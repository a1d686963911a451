"""The demo stores: one simulated Shopify shop, WooCommerce site and Amazon seller, wired to the hub."""

from __future__ import annotations

import json
from typing import Any

import requests

from local.simulators.amazon import AmazonSimulator
from local.simulators.carrier import CarrierSimulator
from local.simulators.kit import SimulatorServer
from local.simulators.shopify import ShopifySimulator
from local.simulators.stripe import StripeSimulator
from local.simulators.threepl import ThreePLSimulator
from local.simulators.woocommerce import WooCommerceSimulator

SHOP = "demo-outfitters.myshopify.com"
WOO_SITE = "https://demo-woo.example/"
AMAZON_SELLER = "A3DEMOSELLER01"
AMAZON_MARKETPLACE = "ATVPDKIKX0DER"
STRIPE_KEY = "sk_test_demo_order_hub"
THREEPL = "demo-3pl"
THREEPL_KEY = "demo-3pl-api-key"
THREEPL_SECRET = "demo-3pl-webhook-secret"  # noqa: S105 (a demo value, local only)
EASYPOST_KEY = "EZTKdemo"
EASYPOST_SECRET = "demo-easypost-sécret"  # noqa: S105 (a demo value, local only)
# The demo 3PL's two warehouses (its simulator stocks any SKU in WH-EAST and WH-WEST); their addresses are
# where return labels send parcels back to.
FULFILMENT_POLICY = (
    '{"warehouses": ['
    '{"id": "WH-EAST", "provider": "demo-3pl", "countries": ["US", "CA"], "promise_days": 3,'
    ' "address": {"name": "Demo 3PL East", "line1": "100 Warehouse Way", "city": "Orlando", "region": "FL",'
    ' "postal_code": "32809", "country": "US"}},'
    '{"id": "WH-WEST", "provider": "demo-3pl", "countries": ["*"], "priority": 2, "promise_days": 6,'
    ' "address": {"name": "Demo 3PL West", "line1": "200 Depot Road", "city": "Reno", "region": "NV",'
    ' "postal_code": "89502", "country": "US"}}],'
    ' "silent_after_hours": 48}'
)
STRIPE_WEBHOOK_SECRET = "whsec_demo_order_hub"  # noqa: S105 (a demo value, local only)
# Schedules whose deployed cadence is hours, compressed for the demo (seconds between runs) as the simulators
# compress their clocks: Amazon's returns report is read every 6 hours in AWS, every minute here. Each stays
# pausable (POST /_local/schedules/<name>/pause) and runs on demand.
DEMO_SCHEDULE_CADENCE = {"amazon_returns": 60.0}


class DemoChannels:
    """Starts the simulators, points their webhooks at the hub and registers them as connections."""

    def __init__(self, *, host: str, hub_url: str, sqs: Any, amazon_queue_url: str, seed: int | None = None):
        self._sqs = sqs
        self._amazon_queue_url = amazon_queue_url
        self.shopify = ShopifySimulator(
            SHOP,
            "demo-shopify-webhook-secret",
            "shpat_demo_access_token",
            host=host,
            webhook_url=f"{hub_url}/webhooks/shopify",
            seed=seed,
            time_scale=0.01,  # Shopify's 4-hour retry schedule, compressed to minutes
        )
        self.woocommerce = WooCommerceSimulator(
            WOO_SITE,
            "demo-woo-webhook-secret",
            "ck_demo_consumer_key",
            "cs_demo_consumer_secret",
            host=host,
            webhook_url=f"{hub_url}/webhooks/woocommerce",
            seed=seed,
        )
        self.amazon = AmazonSimulator(
            AMAZON_SELLER,
            AMAZON_MARKETPLACE,
            "amzn1.application-oa2-client.demo",
            "demo-lwa-client-secret",
            "Atzr|demo-refresh-token",
            host=host,
            seed=seed,
            notify=self._notify_amazon,
        )
        self.threepl = ThreePLSimulator(
            THREEPL,
            THREEPL_KEY,
            THREEPL_SECRET,
            host=host,
            webhook_url=f"{hub_url}/webhooks/3pl/{THREEPL}",
            time_scale=0.1,
            ship_after_s=60.0,  # 6 s after the request
            handover_delay_s=30.0,
            split_rate=0.2,
            parcels_per_shipment=(1, 2),
            seed=seed,
        )
        self.carrier = CarrierSimulator(
            EASYPOST_KEY,
            EASYPOST_SECRET,
            host=host,
            webhook_url=f"{hub_url}/webhooks/carriers/easypost",
            step_s=4.0,
            seed=seed,
        )
        self.stripe = StripeSimulator(
            api_key=STRIPE_KEY,
            host=host,
            webhook_url=f"{hub_url}/webhooks/stripe",
            webhook_secret=STRIPE_WEBHOOK_SECRET,
            time_scale=0.01,
            seed=seed,
        )

    def _notify_amazon(self, notification: dict[str, Any]) -> None:
        # What SP-API does: the notification JSON is the SQS message body.
        self._sqs.send_message(QueueUrl=self._amazon_queue_url, MessageBody=json.dumps(notification))

    def _simulators(self) -> tuple[SimulatorServer, ...]:
        return (self.shopify, self.woocommerce, self.amazon, self.stripe, self.threepl, self.carrier)

    def start(self) -> None:
        for simulator in self._simulators():
            simulator.start()

    def stop(self) -> None:
        for simulator in self._simulators():
            simulator.stop()

    def environment(self) -> dict[str, str]:
        """The base-URL overrides that point the hub at these simulators (DESIGN §3; the 3PL's is on its
        connection), and the demo's warehouses (a seed of the fulfilment_policy setting)."""
        return {
            "HUB_SHOPIFY_API_BASE": self.shopify.url,
            "HUB_WOOCOMMERCE_API_BASE": self.woocommerce.url,
            "HUB_AMAZON_SPAPI_ENDPOINT": self.amazon.url,
            "HUB_AMAZON_LWA_ENDPOINT": self.amazon.lwa_url,
            "HUB_STRIPE_API_BASE": self.stripe.url,
            "HUB_CARRIER_API_BASE": self.carrier.url,
            "HUB_FULFILMENT_POLICY": FULFILMENT_POLICY,
        }

    def schedule_cadence(self) -> dict[str, float]:
        """Seconds between runs of the schedules the demo compresses (DEMO_SCHEDULE_CADENCE)."""
        return dict(DEMO_SCHEDULE_CADENCE)

    def connections(self) -> list[dict[str, str]]:
        return [
            {
                "channel": "shopify",
                "store": SHOP,
                "webhook_secret": self.shopify.webhook_secret,
                "access_token": self.shopify.access_token,
            },
            {
                "channel": "woocommerce",
                "store": WOO_SITE,
                "webhook_secret": "demo-woo-webhook-secret",
                "consumer_key": self.woocommerce.consumer_key,
                "consumer_secret": self.woocommerce.consumer_secret,
            },
            {
                "channel": "amazon",
                "store": AMAZON_SELLER,
                "marketplace_id": AMAZON_MARKETPLACE,
                "lwa_client_id": "amzn1.application-oa2-client.demo",
                "lwa_client_secret": "demo-lwa-client-secret",
                "refresh_token": "Atzr|demo-refresh-token",
            },
            {"channel": "stripe", "secret_key": STRIPE_KEY, "webhook_secret": STRIPE_WEBHOOK_SECRET},
            {
                "channel": "3pl",
                "store": THREEPL,
                "api_base": self.threepl.url,
                "api_key": THREEPL_KEY,
                "webhook_secret": THREEPL_SECRET,
            },
            {"channel": "easypost", "api_key": EASYPOST_KEY, "webhook_secret": EASYPOST_SECRET},
        ]

    def register(self, hub_url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        for body in self.connections():
            requests.post(
                f"{hub_url}/api/connections", json=body, headers=headers, timeout=10
            ).raise_for_status()
