"""Soak: orders at volume across every channel, faults mixed, the handler process killed with SIGKILL.

Run: .venv/bin/python bench/soak.py [--orders N] [--kills K] [--max-seconds S] [--json FILE]

It starts the simulators in this process (Shopify, WooCommerce, Amazon, Stripe, the 3PL, EasyPost), moto
on its own (`python -m local moto`) and the hub's handler process (`python -m local run` with
HUB_LOCAL_EXTERNAL_MOTO=1), so the handler side can be killed (SIGKILL) and started again while the AWS
state (DynamoDB, SQS, Step Functions) survives, as it survives a Lambda crash. Orders go round-robin to
Shopify (the shop's orders/create webhook), WooCommerce (order.created), Amazon (an SP-API notification on
the hub's SQS queue) and the operator API (POST /api/orders, paid by a Stripe card the hub captures).

Faults, through the simulators' knobs: duplicate deliveries (20 %: every webhook sender's duplicate_rate,
and a second POST of a manual order), out of order (10 %: WooCommerce, Amazon, the 3PL's confirmations
(late ones) and the carrier's tracker events), channel 429/5xx (5 % of orders each arm one on reads and
one on publishing writes), Stripe network errors (2 % of the manual orders: an unexecuted dropped request or
a capture executed whose answer is lost), operator cancels in flight (3 %), operator returns on 10 % of the
card orders once delivered (the parcel received at the 3PL), 10 % of Shopify orders' webhooks reordered, and
`--kills` SIGKILLs of the handler process at random moments of the traffic, each followed by a restart (the
Lambda service front of `python -m local moto` outlives it). When traffic ends it runs the reconciliation once
(WooCommerce never retries a refused delivery).

Then it checks from the data, not logs: every accepted delivery is exactly one order (one order per
external id, found by its derived id; no order the bench did not place); every order terminal or in a
named wait; no PaymentIntent captured or refunded twice, no refund above its capture (the Stripe
simulator's ledger of executed requests); every milestone reached its channel exactly once (the channel
simulators' records: Shopify fulfillments, WooCommerce notes, Amazon shipment confirmations); every return
ended with one Stripe refund; every DLQ message read and explained by the order it concerns. Bounded by
`--orders` and `--max-seconds` (traffic and settling together): it stops by itself and reports what had not
settled as a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.local_stack import die_with_parent, free_ports, wait_healthy  # noqa: E402
from chalicelib import resources  # noqa: E402
from chalicelib.domain.order import derive_order_id  # noqa: E402
from chalicelib.domain.retention import CLOSED_STATUSES  # noqa: E402
from chalicelib.domain.returns.model import FINAL_RETURN_STATUSES  # noqa: E402

TOKEN = "soak-token"
SELLER = "A1SOAKSELLER01"
MARKETPLACE = "ATVPDKIKX0DER"
LWA = {
    "lwa_client_id": "amzn1.application-oa2-client.soak",
    "lwa_client_secret": "soak-lwa",
    "refresh_token": "Atzr|soak",
}
STRIPE_KEY = "sk_test_soak"
STRIPE_WEBHOOK_SECRET = "whsec_soak"
THREEPL = "soak-3pl"
THREEPL_KEY = "soak-3pl-key"
THREEPL_SECRET = "soak-3pl-secret"
EASYPOST_KEY = "EZTKsoak"
EASYPOST_SECRET = "soak-easypost-secret"
WOO = "https://soak-woo.example/"
WOO_SECRET = "soak-woo-secret"
SHOP = "soak-shop.myshopify.com"
SHOP_SECRET = "soak-shop-secret"
MANUAL_STORE = "soak-phone"
ADDRESS = {"name": "Soak Buyer", "line1": "1 Harbour St", "city": "Boston", "region": "MA",
           "postal_code": "02110", "country": "US"}  # fmt: skip
SHOP_ADDRESS = {"name": "Soak Buyer", "address1": "1 Harbour St", "city": "Boston", "province_code": "MA",
                "zip": "02110", "country_code": "US"}  # fmt: skip
WOO_ADDRESS = {"first_name": "Soak", "last_name": "Buyer", "address_1": "1 Harbour St", "city": "Boston",
               "state": "MA", "postcode": "02110", "country": "US"}  # fmt: skip
FULFILMENT_POLICY = {
    "warehouses": [
        {"id": "WH-EAST", "provider": THREEPL, "countries": ["*"], "promise_days": 3, "address": ADDRESS},
    ],
    "silent_after_hours": 1000,
}
CHANNELS = ("shopify", "woocommerce", "amazon", "manual")
# Where an order may rest: the lifecycle's ends, and the waits it names (a person or a payment to come).
# The hub's closed statuses (a delivered order with a resolved return rests PARTIALLY_REFUNDED), and FAILED.
TERMINAL = {str(status) for status in CLOSED_STATUSES} | {"FAILED"}
NAMED_WAITS = {"FRAUD_REVIEW", "PAYMENT_PENDING", "ON_HOLD"}
HUB_ORDER_ID = re.compile(r"ord_[a-z0-9]{24}")
RETURN_FINAL = {str(status) for status in FINAL_RETURN_STATUSES}
RETURN_AT_WAREHOUSE = {"label_sent", "in_transit"}
RETURN_SHARE = 0.1  # of the manual (card) orders: returned once delivered, while the traffic goes on
QUIET_SECONDS = 20.0
# The vendors' webhook retry schedules (Shopify's first retry after ~56 s, EasyPost's after 60 s) run at
# this share of real time: a delivery refused while the handlers restart comes back in seconds.
VENDOR_TIME = 0.05
ENDED = (
    "FAILED",
    "ABORTED",
    "TIMED_OUT",
)  # settled: nothing changed in the orders' statuses for this long, queues empty


@dataclass
class Placed:
    channel: str
    external_id: str
    order_id: str
    intent: str | None = None
    cancelled: bool = False
    accepted: int = 0  # deliveries the hub answered 2xx (bench-sent ones; simulators keep their own)


@dataclass
class SoakReturn:
    """An operator's return on a delivered manual order, opened while the traffic goes on."""

    placed: Placed
    return_id: str | None = None
    status: str | None = None
    received: bool = False
    refused: str | None = None  # the hub's answer when it refused to open it

    @property
    def done(self) -> bool:
        return self.refused is not None or self.status in RETURN_FINAL


@dataclass
class Faults:
    duplicates_sent: int = 0
    channel_read_faults: int = 0
    channel_write_faults: int = 0
    stripe_dropped: int = 0
    stripe_lost_answers: int = 0
    cancels: int = 0
    shopify_reordered: int = 0
    kills: list[float] = field(default_factory=list)  # seconds into the run


class Soak:
    def __init__(self, orders: int, kills: int, max_seconds: float, seed: int, log: Any = print) -> None:
        self.n, self.kill_count, self.max_seconds = orders, kills, max_seconds
        self.rng = random.Random(seed)
        self.log = log
        self.placed: list[Placed] = []
        self.faults = Faults()
        self.returns: list[SoakReturn] = []
        self._sfn: Any = None
        self.reconciled = threading.Event()
        self._lifecycle_arn: str | None = None
        self.hub_port, self.aws_port, self.moto_port, self.lambda_port = free_ports(4)
        self.hub_url = f"http://127.0.0.1:{self.hub_port}"
        self.aws_url = f"http://127.0.0.1:{self.aws_port}"
        self.moto: subprocess.Popen[bytes] | None = None
        self.handler: subprocess.Popen[bytes] | None = None
        self.sims: dict[str, Any] = {}
        self._stack_env: dict[str, str] = {}
        self._lock = threading.Lock()
        self._log_file: Any = None

    # ------------------------------------------------------------------------------------- the stack

    def _start_simulators(self) -> None:
        from local.simulators.amazon import AmazonSimulator
        from local.simulators.carrier import CarrierSimulator
        from local.simulators.shopify import ShopifySimulator
        from local.simulators.stripe import StripeSimulator
        from local.simulators.threepl import ThreePLSimulator
        from local.simulators.woocommerce import WooCommerceSimulator

        hook = f"{self.hub_url}"
        self.sims["stripe"] = StripeSimulator(
            api_key=STRIPE_KEY, webhook_secret=STRIPE_WEBHOOK_SECRET, webhook_url=f"{hook}/webhooks/stripe",
            time_scale=0.001, seed=11, duplicate_rate=0.2,
        )  # fmt: skip
        self.sims["threepl"] = ThreePLSimulator(
            THREEPL, THREEPL_KEY, THREEPL_SECRET, webhook_url=f"{hook}/webhooks/3pl/{THREEPL}",
            time_scale=0.01, ship_after_s=100.0, handover_delay_s=50.0, seed=13, duplicate_rate=0.2,
            reorder_rate=0.1, tracking_code_factory=lambda carrier, n: f"SOAK-ON-TIME-{n:07d}",
        )  # fmt: skip
        self.sims["carrier"] = CarrierSimulator(
            EASYPOST_KEY, EASYPOST_SECRET, webhook_url=f"{hook}/webhooks/carriers/easypost",
            step_s=0.4 / VENDOR_TIME, seed=17, duplicate_rate=0.2, reorder_rate=0.1, time_scale=VENDOR_TIME,
        )  # fmt: skip
        self.sims["woocommerce"] = WooCommerceSimulator(
            WOO, WOO_SECRET, "ck_soak", "cs_soak", webhook_url=f"{hook}/webhooks/woocommerce",
            seed=23, duplicate_rate=0.2, reorder_rate=0.1,
        )  # fmt: skip
        self.sims["shopify"] = ShopifySimulator(
            SHOP,
            SHOP_SECRET,
            "shpat_soak",
            webhook_url=f"{hook}/webhooks/shopify",
            seed=29,
            duplicate_rate=0.2,
            time_scale=VENDOR_TIME,
        )
        self.sims["amazon"] = AmazonSimulator(
            SELLER, MARKETPLACE, LWA["lwa_client_id"], LWA["lwa_client_secret"], LWA["refresh_token"],
            seed=7, notify=self._notify_amazon, duplicate_rate=0.2, reorder_rate=0.1, jp_rate=0.0,
        )  # fmt: skip
        for simulator in self.sims.values():
            simulator.__enter__()

    def _notify_amazon(self, notification: dict[str, Any]) -> None:
        self.sqs.send_message(QueueUrl=self.amazon_queue, MessageBody=json.dumps(notification))

    def _start_moto(self) -> None:
        self.moto = subprocess.Popen(
            [sys.executable, "-m", "local", "moto"],
            cwd=ROOT,
            env={
                **os.environ,
                "HUB_LOCAL_AWS_PORT": str(self.aws_port),
                "HUB_LOCAL_MOTO_PORT": str(self.moto_port),
                "HUB_LOCAL_LAMBDA_PORT": str(self.lambda_port),
            },
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, no locks involved
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _start_handler(self) -> None:
        env = {
            **os.environ,
            "HUB_PORT": str(self.hub_port),
            "HUB_LOCAL_AWS_PORT": str(self.aws_port),
            "HUB_LOCAL_MOTO_PORT": str(self.moto_port),
            "HUB_LOCAL_EXTERNAL_MOTO": "1",
            "HUB_OPERATOR_TOKEN": TOKEN,
            "HUB_DEMO": "0",
            # A killed batch comes back in 20 s (180 s in AWS); shorter, a slow batch would be received again
            # while it runs and reach the DLQ on receive counts alone.
            "HUB_LOCAL_QUEUE_VISIBILITY_SECONDS": "20",
            # Lambda scales an SQS mapping out; four pollers per queue here (FIFO groups keep their order).
            "HUB_LOCAL_POLLER_CONCURRENCY": "4",
            "HUB_FRAUD_POLICY": '{"velocity": {"card": {"1h": 1000000}, "email": {"1h": 1000000}}}',
            "HUB_AMAZON_SPAPI_ENDPOINT": self.sims["amazon"].url,
            "HUB_AMAZON_LWA_ENDPOINT": self.sims["amazon"].lwa_url,
            "HUB_STRIPE_API_BASE": self.sims["stripe"].url,
            "HUB_WOOCOMMERCE_API_BASE": self.sims["woocommerce"].url,
            "HUB_SHOPIFY_API_BASE": self.sims["shopify"].url,
            "HUB_CARRIER_API_BASE": self.sims["carrier"].url,
            "HUB_FULFILMENT_POLICY": json.dumps(FULFILMENT_POLICY),
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        self.handler = subprocess.Popen(
            [sys.executable, "-m", "local", "run"],
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=self._log_file,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, no locks involved
        )
        wait_healthy(self.hub_url, timeout_s=90)

    def start(self, log_path: Path) -> None:
        self._log_file = log_path.open("ab")
        self._start_simulators()
        self._start_moto()
        self._start_handler()
        session = boto3.session.Session()
        self.sqs = session.client(
            "sqs", region_name="us-east-1", endpoint_url=self.aws_url,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        health = requests.get(f"{self.hub_url}/health", timeout=10).json()
        self.queues: dict[str, str] = health["queues"]
        self.amazon_queue = self.queues[resources.AMAZON_NOTIFICATIONS_QUEUE.name]
        for body in (
            {"channel": "stripe", "secret_key": STRIPE_KEY, "webhook_secret": STRIPE_WEBHOOK_SECRET},
            {"channel": "3pl", "store": THREEPL, "api_base": self.sims["threepl"].url,
             "api_key": THREEPL_KEY, "webhook_secret": THREEPL_SECRET},
            {"channel": "easypost", "api_key": EASYPOST_KEY, "webhook_secret": EASYPOST_SECRET},
            {"channel": "woocommerce", "store": WOO, "webhook_secret": WOO_SECRET,
             "consumer_key": "ck_soak", "consumer_secret": "cs_soak"},
            {"channel": "shopify", "store": SHOP, "webhook_secret": SHOP_SECRET,
             "access_token": "shpat_soak"},
            {"channel": "amazon", "store": SELLER, "marketplace_id": MARKETPLACE, **LWA},
        ):  # fmt: skip
            answer = self.api("POST", "/api/connections", json=body)
            if answer.status_code not in (200, 201):
                raise RuntimeError(f"connection {body['channel']}: {answer.status_code} {answer.text}")

    def kill_and_restart(self, started: float) -> None:
        assert self.handler is not None
        self.handler.send_signal(signal.SIGKILL)
        self.handler.wait(timeout=30)
        self.faults.kills.append(round(time.monotonic() - started, 1))
        self.log(f"  SIGKILL handler process at {self.faults.kills[-1]} s; restarting (moto keeps its state)")
        self._start_handler()

    def stop(self) -> None:
        for process in (self.handler, self.moto):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for simulator in self.sims.values():
            simulator.__exit__(None, None, None)
        if self._log_file is not None:
            self._log_file.close()

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
        return requests.request(method, self.hub_url + path, headers=headers, timeout=30, **kwargs)

    def _api_until_answered(
        self, method: str, path: str, deadline: float, **kwargs: Any
    ) -> requests.Response:
        """As a client does while the hub restarts: retry a refused connection or a 5xx until the deadline."""
        while True:
            try:
                answer = self.api(method, path, **kwargs)
                if answer.status_code < 500:
                    return answer
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path}: no answer before the deadline")
            time.sleep(0.2)

    # ------------------------------------------------------------------------------------- traffic

    def _arm_channel_faults(self, channel: str) -> None:
        """5 % of orders arm one read fault and one publishing-write fault at their channel."""
        if self.rng.random() < 0.05:
            self.faults.channel_read_faults += 1
            status = self.rng.choice((429, 500, 503))
            if channel == "shopify":
                self.sims["shopify"].fail_api(1, status, retry_after=1 if status == 429 else None)
            elif channel == "amazon":
                self.sims["amazon"].fail_next("getOrder", status)
            elif channel == "woocommerce":
                self.sims["woocommerce"].fail_writes(1, status, retry_after=1 if status == 429 else None)
            else:
                self.sims["threepl"].fail_next(1, status)
        if self.rng.random() < 0.05:
            self.faults.channel_write_faults += 1
            status = self.rng.choice((429, 503))
            if channel == "shopify":
                self.sims["shopify"].throttle_api(1)
            elif channel == "woocommerce":
                self.sims["woocommerce"].fail_writes(1, status, retry_after=1 if status == 429 else None)
            elif channel == "amazon":
                self.sims["amazon"].fail_next("confirmShipment", status)
            else:
                self.sims["carrier"].fail_next(1, 503)

    def place(self, number: int, deadline: float) -> Placed:
        channel = CHANNELS[number % len(CHANNELS)]
        self._arm_channel_faults(channel)
        if channel == "shopify":
            # 10 %: this order's webhooks are held back and sent newest first with the next ones.
            reordered = self.rng.random() < 0.1
            self.sims["shopify"].reorder = reordered
            self.faults.shopify_reordered += reordered
            created = self.sims["shopify"].create_order(
                currency="USD", financial_status="paid", shipping_address=SHOP_ADDRESS,
                items=[{"title": "Mug", "price": "12.00", "quantity": 1 + number % 3, "sku": "MUG"}],
            )  # fmt: skip
            external = str(created["id"])
            return Placed(channel, external, derive_order_id("shopify", SHOP, external))
        if channel == "woocommerce":
            created = self.sims["woocommerce"].create_order(
                payment_method="ppcp-gateway", shipping=WOO_ADDRESS
            )
            external = str(created["id"])
            return Placed(channel, external, derive_order_id("woocommerce", WOO, external))
        if channel == "amazon":
            created = self.sims["amazon"].create_order(OrderStatus="Unshipped")
            external = str(created["AmazonOrderId"])
            return Placed(channel, external, derive_order_id("amazon", SELLER, external))
        return self._place_manual(number, deadline)

    def _place_manual(self, number: int, deadline: float) -> Placed:
        stripe = self.sims["stripe"]
        intent = stripe.create_payment_intent(1000 * (1 + number % 2), "usd", "pm_card_visa")
        external = f"SOAK-{number:06d}-{uuid.uuid4().hex[:6]}"
        body = {
            "store": MANUAL_STORE,
            "external_id": external,
            "currency": "USD",
            "placed_at": datetime.now(UTC).isoformat(),
            "customer": {"email": f"soak-{number}@example.com", "name": "Soak Buyer"},
            "shipping_address": ADDRESS,
            "lines": [{"line_id": "1", "sku": "MUG", "title": "Mug", "quantity": 1 + number % 2,
                       "unit_price": "10.00"}],
            "payment": {"source": "stripe", "reference": intent["id"]},
        }  # fmt: skip
        if self.rng.random() < 0.02:  # Stripe: a network error on one of the next requests
            if self.rng.random() < 0.5:
                stripe.fail_next(1, 0)  # the connection drops before Stripe did anything
                self.faults.stripe_dropped += 1
            else:
                stripe.lose_next_response("/capture")  # done, and the answer lost
                self.faults.stripe_lost_answers += 1
        placed = Placed("manual", external, derive_order_id("manual", MANUAL_STORE, external), intent["id"])
        if self.rng.random() < RETURN_SHARE:
            self.returns.append(SoakReturn(placed))
        copies = 2 if self.rng.random() < 0.2 else 1
        self.faults.duplicates_sent += copies - 1
        for _ in range(copies):
            answer = self._api_until_answered("POST", "/api/orders", deadline, json=body)
            if answer.status_code in (200, 201, 202):
                placed.accepted += 1
        return placed

    def cancel_in_flight(self, placed: Placed, deadline: float) -> None:
        answer = self._api_until_answered(
            "POST",
            f"/api/orders/{placed.order_id}/cancel",
            deadline,
            json={"reason": "soak: customer called"},
        )
        placed.cancelled = answer.status_code == 200
        self.faults.cancels += 1

    def traffic(self, started: float, deadline: float, rate: float) -> None:
        kill_at = sorted(self.rng.uniform(0.15, 0.9) * self.n for _ in range(self.kill_count))
        kill_at = [int(k) for k in kill_at]
        to_cancel: list[Placed] = []
        for number in range(self.n):
            if time.monotonic() > deadline:
                self.log(f"  traffic stopped at the time cap after {number} orders")
                break
            while kill_at and number >= kill_at[0]:
                kill_at.pop(0)
                self.kill_and_restart(started)
            placed = self.place(number, deadline)
            self.placed.append(placed)
            if self.rng.random() < 0.03:
                to_cancel.append(placed)
            if len(to_cancel) > 3:  # a few orders later: the order is somewhere in its lifecycle
                self.cancel_in_flight(to_cancel.pop(0), deadline)
            if number % 50 == 49:
                self.move_returns(None, deadline)
            if number % 100 == 99:
                self.log(f"  {number + 1} orders placed, {time.monotonic() - started:.0f} s")
            time.sleep(1.0 / rate)
        for placed in to_cancel:
            self.cancel_in_flight(placed, deadline)

    def move_returns(self, orders: dict[str, dict[str, Any] | None] | None, deadline: float) -> None:
        """Open a return on each chosen order once it is delivered; hand its parcel to the 3PL once the
        label is out. `orders` as `orders()` read them, or None to read the few orders concerned."""
        for ret in self.returns:
            if ret.done or ret.placed.cancelled:
                continue
            order_id = ret.placed.order_id
            if orders is not None:
                order = orders.get(order_id)
            else:
                answer = self._api_until_answered("GET", f"/api/orders/{order_id}", deadline)
                order = answer.json() if answer.status_code == 200 else None
            if order is None:
                continue
            if ret.return_id is None:
                if order.get("status") == "COMPLETED":
                    self._open_return(ret, deadline)
                elif order.get("status") in TERMINAL:
                    # Cancelled before delivery: nothing to return.
                    ret.refused = f"order {order.get('status')}"
                continue
            found = next((r for r in order.get("returns") or [] if r.get("return_id") == ret.return_id), None)
            ret.status = (found or {}).get("status")
            if ret.status in RETURN_AT_WAREHOUSE and not ret.received:
                with contextlib.suppress(KeyError, ValueError):  # not at the desk yet: the next look
                    self.sims["threepl"].returns.receive(ret.return_id)
                    ret.received = True

    def _open_return(self, ret: SoakReturn, deadline: float) -> None:
        answer = self._api_until_answered(
            "POST",
            f"/api/orders/{ret.placed.order_id}/returns",
            deadline,
            json={"lines": [{"line_id": "1", "quantity": 1, "reason": "changed_mind"}]},
            headers={"Idempotency-Key": f"soak-return-{ret.placed.order_id}"},
        )
        if answer.status_code in (200, 201):
            ret.return_id = answer.json()["return_id"]
        else:
            ret.refused = f"{answer.status_code} {answer.json().get('message', '')}"[:200]

    # ------------------------------------------------------------------------------------- settling

    def orders(self) -> dict[str, dict[str, Any] | None]:
        """Every placed order as the hub holds it (None: not there), read a page of 100 at a time."""
        listed = self._listing()
        return {placed.order_id: listed.get(placed.order_id) for placed in self.placed}

    def _listing(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        while True:
            params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
            answer = self.api("GET", "/api/orders", params=params)
            answer.raise_for_status()
            page = answer.json()
            found.update((o["order_id"], o) for o in page.get("orders", []))
            cursor = page.get("next_cursor")
            if not cursor:
                return found

    def queues_empty(self) -> bool:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        for name, url in self.queues.items():
            if name.endswith("-dlq") or "dlq" in name.lower():
                continue
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            if any(int(attributes.get(n, "0")) for n in names):
                return False
        return True

    def settle(self, deadline: float, quiet_s: float = QUIET_SECONDS) -> dict[str, dict[str, Any] | None]:
        """Publish and poll until every order rests (terminal or a named wait) and nothing moved for
        `quiet_s`, or the deadline."""
        last: dict[str, str | None] = {}
        quiet_since = time.monotonic()
        self.sims["shopify"].reorder = False
        self.sims["shopify"].flush(timeout=30)  # a reordered delivery still held back goes out now
        # WooCommerce never retries a refused delivery (it counts the failure): what a restart refused is
        # the scheduled reconciliation's to find, as in production; run it now rather than in 15 minutes.
        # It paces itself to the channels' rate limits: in the background, while settling goes on.
        threading.Thread(target=self._reconcile, name="soak-reconcile", daemon=True).start()
        while True:
            with contextlib.suppress(requests.RequestException):  # a run meeting a restart: the next one
                requests.post(f"{self.aws_url}/_local/schedules/publish_outbox", timeout=120)
            orders = self.orders()
            self.move_returns(orders, deadline)
            statuses = {k: (v or {}).get("status") for k, v in orders.items()}
            moving = [
                k
                for k, v in orders.items()
                if v is None
                or v["status"] not in TERMINAL | NAMED_WAITS
                or any(p.get("status") == "pending" for p in v.get("publications", []))
            ]
            if statuses != last:
                last, quiet_since = statuses, time.monotonic()
                pending = len(moving)
            else:
                # Nothing moved for a while: an order whose lifecycle execution ended (FAILED, ...)
                # outside a resting status moves no more. Asked only then (moto is slow to answer).
                pending = sum(1 for k in moving if not self._execution_status(k).startswith(ENDED))
            self.log(f"  settling: {pending} orders still moving; {dict(Counter(statuses.values()))}")
            quiet = time.monotonic() - quiet_since >= quiet_s
            if pending == 0 and quiet and self.reconciled.is_set() and self.queues_empty():
                return orders
            if time.monotonic() > deadline:
                self.log("  settling stopped at the time cap")
                return orders
            time.sleep(3)

    def _reconcile(self) -> None:
        with contextlib.suppress(requests.RequestException):
            requests.post(f"{self.aws_url}/_local/schedules/reconcile", timeout=600)
        self.reconciled.set()

    # ------------------------------------------------------------------------------------- checks

    def check(self, orders: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
        problems: list[str] = []
        # 1. Every accepted delivery is exactly one order: each placed order exists once, under its id, and
        # the hub holds no order the bench did not place (duplicates would be extra orders).
        missing = [p.order_id for p in self.placed if orders.get(p.order_id) is None]
        problems += [f"lost: {order_id}" for order_id in missing[:20]]
        listed = self._all_order_ids()
        extra = listed - {p.order_id for p in self.placed}
        problems += [f"an order the bench did not place: {order_id}" for order_id in sorted(extra)[:20]]
        # 2. Every order terminal or in a named wait.
        unsettled = {
            oid: o["status"] for oid, o in orders.items() if o and o["status"] not in TERMINAL | NAMED_WAITS
        }
        problems += [
            f"not at rest: {oid} {status} (lifecycle {self._execution_status(oid)})"
            for oid, status in list(unsettled.items())[:20]
        ]
        # 3. Stripe's ledger: captures and refunds per PaymentIntent.
        stripe = self.sims["stripe"]
        captures, refunds_over = Counter(), []
        for method, path, _ in stripe.executed_requests():
            if method == "POST" and path.endswith("/capture"):
                captures[path.split("/")[-2]] += 1
        double = {intent: n for intent, n in captures.items() if n > 1}
        problems += [f"PaymentIntent captured {n}x: {intent}" for intent, n in double.items()]
        refunded_twice = 0
        for placed in self.placed:
            if placed.intent is None:
                continue
            intent = stripe.payment_intent(placed.intent)
            refunds = [r for r in stripe.refunds_for(placed.intent) if r.get("status") != "failed"]
            total = sum(int(r["amount"]) for r in refunds)
            if total > int(intent.get("amount_received") or 0):
                refunds_over.append(placed.intent)
            if len(refunds) > 1:
                refunded_twice += 1
        problems += [f"refund above capture: {intent}" for intent in refunds_over]
        problems += [f"{refunded_twice} PaymentIntents refunded more than once"] if refunded_twice else []
        # 4. Every milestone reached its channel exactly once.
        milestones = self._milestones(orders, problems)
        # 5. Every DLQ message explained.
        dlq = self._dlq(orders, problems)
        # 6. Every return opened came to an end, its refund executed once (the Stripe checks above).
        returns = self._returns_report(problems)
        return {
            "orders_placed": len(self.placed),
            "by_channel": dict(Counter(p.channel for p in self.placed)),
            "orders_found": len(self.placed) - len(missing),
            "orders_in_hub": len(listed),
            "statuses": dict(Counter((o or {}).get("status", "missing") for o in orders.values())),
            "lost": len(missing),
            "doubled": len(extra),
            "not_at_rest": len(unsettled),
            "stripe": {
                "intents": sum(1 for p in self.placed if p.intent),
                "captures_executed": sum(captures.values()),
                "captured_twice": len(double),
                "refunded_more_than_once": refunded_twice,
                "refund_above_capture": len(refunds_over),
            },
            "milestones": milestones,
            "returns": returns,
            "dlq": dlq,
            "faults": {
                **{k: v for k, v in vars(self.faults).items() if k != "kills"},
                "kills": len(self.faults.kills),
                "kill_seconds": self.faults.kills,
                "webhook_duplicates": self._webhook_duplicates(),
            },
            "problems": problems,
            "ok": not problems,
        }

    def _execution_status(self, order_id: str) -> str:
        """The order's lifecycle execution as Step Functions tells it: status and the last event's type."""
        if self._lifecycle_arn is None:
            self._sfn = boto3.session.Session().client(
                "stepfunctions", region_name="us-east-1", endpoint_url=self.aws_url,
                aws_access_key_id="testing", aws_secret_access_key="testing",
            )  # fmt: skip
            machines = self._sfn.list_state_machines()["stateMachines"]
            self._lifecycle_arn = next(
                m["stateMachineArn"] for m in machines if m["name"] == resources.ORDER_LIFECYCLE.name
            )
        execution = self._lifecycle_arn.replace(":stateMachine:", ":execution:") + f":{order_id}"
        try:
            status = self._sfn.describe_execution(executionArn=execution)["status"]
            events = self._sfn.get_execution_history(executionArn=execution, reverseOrder=True, maxResults=1)
        except Exception as exc:
            return f"unknown: {type(exc).__name__}"
        last = events["events"][0]["type"] if events["events"] else "-"
        return f"{status}, last event {last}"

    def _all_order_ids(self) -> set[str]:
        return set(self._listing())

    def _milestones(self, orders: dict[str, dict[str, Any] | None], problems: list[str]) -> dict[str, Any]:
        reached: Counter[str] = Counter()
        for placed in self.placed:
            order = orders.get(placed.order_id)
            if order is None:
                continue
            shipped = any(
                p["kind"] == "shipped" and p["status"] != "pending" for p in order.get("publications", [])
            )
            if placed.channel == "shopify":
                count = len(self.sims["shopify"].fulfillments(int(placed.external_id)))
            elif placed.channel == "woocommerce":
                notes = self.sims["woocommerce"].notes(int(placed.external_id))
                count = sum(1 for n in notes if "order-hub" in n["note"] and n["note"].startswith("Shipped"))
            elif placed.channel == "amazon":
                count = len(self.sims["amazon"].shipment_confirmations(placed.external_id))
            else:
                continue
            reached[placed.channel] += count
            if count != (1 if shipped else 0):
                problems.append(
                    f"{placed.channel} {placed.external_id}: shipped reached the channel {count}x"
                )
        return {"shipped_at_channel": dict(reached)}

    def _returns_report(self, problems: list[str]) -> dict[str, Any]:
        opened = [r for r in self.returns if r.return_id is not None]
        refunded = 0
        for ret in opened:
            if ret.status not in RETURN_FINAL:
                problems.append(f"return {ret.return_id} of {ret.placed.order_id} not ended: {ret.status}")
            assert ret.placed.intent is not None
            refunds = self.sims["stripe"].refunds_for(ret.placed.intent)
            refunds = [r for r in refunds if r.get("status") != "failed"]
            refunded += len(refunds) == 1
            if ret.status == "resolved" and len(refunds) != 1:
                problems.append(f"return {ret.return_id}: {len(refunds)} Stripe refunds for its order")
        return {
            "chosen": len(self.returns),
            "opened": len(opened),
            "by_status": dict(Counter(r.status for r in opened)),
            "refunded_once_at_stripe": refunded,
            "not_opened": dict(Counter((r.refused or "never delivered").split(" ")[0] for r in self.returns
                                       if r.return_id is None)),
        }  # fmt: skip

    def _dlq(self, orders: dict[str, dict[str, Any] | None], problems: list[str]) -> dict[str, Any]:
        """Read every dead-lettered message and explain it from the data: a delivery whose order the hub
        holds at rest was applied by another copy (a duplicate, a retry, a replay); anything else is not
        explained and fails the run."""
        explained: Counter[str] = Counter()
        for name, url in self.queues.items():
            if "dlq" not in name.lower():
                continue
            while True:
                batch = self.sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600, WaitTimeSeconds=0
                ).get("Messages", [])
                if not batch:
                    break
                for message in batch:
                    order_id = self._order_of_message(message.get("Body", ""))
                    order = orders.get(order_id) if order_id else None
                    if order is not None and order.get("status") in TERMINAL | NAMED_WAITS:
                        explained[f"{name}: order applied by another copy"] += 1
                    else:
                        explained[f"{name}: unexplained"] += 1
                        problems.append(f"{name}: a message not explained ({order_id or 'no order in it'})")
        return dict(explained)

    @staticmethod
    def _order_of_message(body: str) -> str | None:
        """The placed order a dead-lettered message is about: a channel's delivery names its order by the
        channel's id, an SP-API notification by the Amazon order id, a 3PL, carrier or Stripe event by the
        hub's own order id somewhere in its payload."""
        with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
            message = json.loads(body)
            if message.get("channel") in CHANNELS:  # the ingest queue: a channel's delivery
                return derive_order_id(message["channel"], message["store"], str(message["external_id"]))
            if "Payload" in message:  # SP-API
                amazon_id = message["Payload"]["OrderChangeNotification"]["AmazonOrderId"]
                return derive_order_id("amazon", SELLER, str(amazon_id))
        found = HUB_ORDER_ID.search(body)
        return found.group(0) if found else None

    def _webhook_duplicates(self) -> int:
        total = 0
        for name in ("stripe", "threepl", "carrier"):
            deliveries = getattr(self.sims[name], "deliveries", [])
            ids = Counter(getattr(d, "event_id", None) or getattr(d, "id", None) for d in deliveries)
            total += sum(n - 1 for n in ids.values() if n > 1)
        return total


def run(  # noqa: PLR0917 - the command line's options, in its order
    orders: int,
    kills: int,
    max_seconds: float,
    rate: float,
    seed: int,
    log_path: Path,
    log: Any = print,
    quiet_s: float = QUIET_SECONDS,
) -> dict[str, Any]:
    soak = Soak(orders, kills, max_seconds, seed, log)
    started = time.monotonic()
    deadline = started + max_seconds
    soak.start(log_path)
    try:
        log(f"soak: {orders} orders, {kills} kills, cap {max_seconds:.0f} s")
        soak.traffic(started, deadline, rate)
        traffic_s = time.monotonic() - started
        settled = soak.settle(deadline, quiet_s)
        report = soak.check(settled)
        report.update(
            traffic_seconds=round(traffic_s, 1),
            total_seconds=round(time.monotonic() - started, 1),
            capped=time.monotonic() > deadline,
        )
        return report
    finally:
        soak.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("--rate", type=float, default=20.0, help="orders placed per second at most")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    log_path = ROOT / "test-artifacts" / "soak-stack.log"
    log_path.parent.mkdir(exist_ok=True)
    report = run(args.orders, args.kills, args.max_seconds, args.rate, args.seed, log_path)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
