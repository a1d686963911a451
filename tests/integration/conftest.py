"""Boots the same local stack as `make run` (a separate process, free ports) for the whole session."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
BOOT_DEADLINE = 90.0
# Short visibility timeout so retries and redrives happen within seconds in tests.
VISIBILITY_SECONDS = 1
# How long a test waits for evidence before it fails. Waits end as soon as the evidence is there, so a
# generous deadline costs nothing when the suite passes and keeps a busy machine (a CPU hog beside the
# suite, a shared runner) from failing it.
WAIT_SECONDS = 60.0


# What the test process itself logs (the simulators, the test helpers): scanned with the stack's log.
TEST_PROCESS_LOG = ARTIFACTS / "test-process.log"
LOG_SCAN_MODULE = "test_log_scan.py"


class _TestProcessFormatter(logging.Formatter):
    """The hub's records as the hub writes them (Powertools JSON, extra keys included), others as text."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        from chalicelib.observability import logger

        self.hub = logger.registered_formatter

    def format(self, record: logging.LogRecord) -> str:
        return self.hub.format(record) if record.name == "order-hub" else super().format(record)


@pytest.fixture(scope="session", autouse=True)
def test_process_log() -> Iterator[logging.Handler]:
    """Every log record of the test process (the simulators' down to DEBUG, their access logs; everything
    else from INFO, the hub's code run in-process included) to TEST_PROCESS_LOG, for the whole run."""
    ARTIFACTS.mkdir(exist_ok=True)
    handler = logging.FileHandler(TEST_PROCESS_LOG, mode="w", encoding="utf-8")
    handler.setFormatter(_TestProcessFormatter())
    handler.addFilter(lambda record: record.levelno >= logging.INFO or record.name.startswith("local"))
    root, simulators = logging.getLogger(), logging.getLogger("local")
    levels = root.level, simulators.level
    root.addHandler(handler)
    root.setLevel(min(levels[0], logging.INFO) if levels[0] else logging.INFO)
    simulators.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(levels[0])
    simulators.setLevel(levels[1])
    handler.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The log scan (test_log_scan.py) runs after every other test: it reads what the whole run logged."""
    items.sort(key=lambda item: item.path.name == LOG_SCAN_MODULE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def eventually(check: Callable[[], Any], *, timeout: float = WAIT_SECONDS, interval: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy (and return it) or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s; last result: {last!r}")


@dataclass
class Stack:
    hub_url: str
    aws_url: str
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    health: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(
            service,
            region_name="us-east-1",
            endpoint_url=self.aws_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return requests.request(method, self.hub_url + path, headers=headers, timeout=30, **kwargs)

    def queue_url(self, name: str) -> str:
        return str(self.health["queues"][name])

    def local_status(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.aws_url}/_local/status", timeout=10).json())

    def order(self, order_id: str) -> dict[str, Any] | None:
        response = self.api("GET", f"/api/orders/{order_id}")
        return dict(response.json()) if response.status_code == 200 else None

    def order_when(
        self, order_id: str, predicate: Callable[[dict[str, Any]], Any], timeout: float = WAIT_SECONDS
    ) -> dict[str, Any]:
        """The order once `predicate` holds for it (polled through the API)."""

        def check() -> dict[str, Any] | None:
            order = self.order(order_id)
            return order if order is not None and predicate(order) else None

        return dict(eventually(check, timeout=timeout, interval=0.2))

    def lifecycle_arn(self, order_id: str) -> str:
        from chalicelib import resources

        sfn = self.client("stepfunctions")
        machine = next(
            m["stateMachineArn"]
            for m in sfn.list_state_machines()["stateMachines"]
            if m["name"] == resources.ORDER_LIFECYCLE.name
        )
        return str(machine.replace(":stateMachine:", ":execution:") + f":{order_id}")

    def execution(self, order_id: str) -> dict[str, Any]:
        """The order's lifecycle execution as DescribeExecution answers, with its `arn`."""
        arn = self.lifecycle_arn(order_id)
        return {"arn": arn, **self.client("stepfunctions").describe_execution(executionArn=arn)}

    def finished(self, order_id: str, status: str, timeout: float = WAIT_SECONDS) -> None:
        """Wait until the order's lifecycle execution is `status` (SUCCEEDED, FAILED, ...)."""
        eventually(lambda: self.execution(order_id)["status"] == status, timeout=timeout)

    def drained(self, queue_name: str, timeout: float = WAIT_SECONDS) -> None:
        """Wait until the queue holds nothing, visible or in flight: every message sent to it before the
        call has been processed and deleted (or dead-lettered). Evidence that a delivery was handled
        when the handling itself leaves no trace (a duplicate, a stale update)."""
        sqs, url = self.client("sqs"), self.queue_url(queue_name)
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]

        def empty() -> bool:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            return all(int(attributes.get(name, "0")) == 0 for name in names)

        eventually(empty, timeout=timeout, interval=0.2)

    def stop(self) -> None:
        """Stop the stack as Ctrl-C does (its buffered output is then in its log), killed after 20 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def publish_outbox(self) -> dict[str, Any]:
        """Run the channel outbox now (it runs every minute on its own)."""
        answer = requests.post(f"{self.aws_url}/_local/schedules/publish_outbox", timeout=60)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def events(order: dict[str, Any]) -> list[str]:
    """The order's history as event names, oldest first."""
    return [h["event"] for h in order["history"]]


def has_event(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda order: name in events(order)


def status_is(*statuses: str) -> Callable[[dict[str, Any]], bool]:
    return lambda order: order["status"] in statuses


AMAZON_SELLER = "A1ITSELLER0001"
AMAZON_MARKETPLACE = "ATVPDKIKX0DER"
AMAZON_CREDENTIALS = {
    "lwa_client_id": "amzn1.application-oa2-client.it",
    "lwa_client_secret": "it-lwa-secret",
    "refresh_token": "Atzr|it-refresh",
}


class AmazonNotifier:
    """Where the Amazon simulator's notifications go: the stack's SP-API queue, once it is known."""

    def __init__(self) -> None:
        self.sqs: Any = None
        self.queue_url: str | None = None

    def __call__(self, notification: dict[str, Any]) -> None:
        assert self.sqs is not None and self.queue_url, "stack not started"
        import json

        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(notification))


@pytest.fixture(scope="session")
def amazon_notifier() -> AmazonNotifier:
    return AmazonNotifier()


@pytest.fixture(scope="session")
def amazon(amazon_notifier: AmazonNotifier) -> Iterator[Any]:
    """A simulated SP-API seller the stack is pointed at (its endpoints must be known at start-up)."""
    from local.simulators.amazon import AmazonSimulator

    with AmazonSimulator(
        AMAZON_SELLER,
        AMAZON_MARKETPLACE,
        AMAZON_CREDENTIALS["lwa_client_id"],
        AMAZON_CREDENTIALS["lwa_client_secret"],
        AMAZON_CREDENTIALS["refresh_token"],
        seed=7,
        notify=amazon_notifier,
    ) as simulator:
        yield simulator


STRIPE_SECRET_KEY = "sk_test_integration"
STRIPE_WEBHOOK_SECRET = "whsec_integration"
# Sales recovery waits this long for a new payment method before the order is cancelled. It is what holds
# a declined order in PAYMENT_PENDING while a test brings the new card (a few requests), and what the
# test of the wait running out waits for: long enough for the first on a busy machine, short for the second.
PAYMENT_RECOVERY_SECONDS = 20


def serving(
    make: Callable[..., Any], hub_port: int, webhook_path: str, *args: Any, **knobs: Any
) -> Iterator[Any]:
    """A simulator `make(*args, **knobs)` sending its webhooks to the stack's `webhook_path`, for as long
    as the fixture lasts."""
    with make(*args, webhook_url=f"http://127.0.0.1:{hub_port}{webhook_path}", **knobs) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def hub_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def stripe(hub_port: int) -> Iterator[Any]:
    """A simulated Stripe account; its webhooks go to the stack's POST /webhooks/stripe."""
    from local.simulators.stripe import StripeSimulator

    yield from serving(
        StripeSimulator,
        hub_port,
        "/webhooks/stripe",
        api_key=STRIPE_SECRET_KEY,
        webhook_secret=STRIPE_WEBHOOK_SECRET,
        time_scale=0.001,
        seed=11,
    )


THREEPL = "it-3pl"
THREEPL_KEY = "it-3pl-key"
THREEPL_SECRET = "it-3pl-webhook-secret"
EASYPOST_KEY = "EZTKintegration"
EASYPOST_SECRET = "it-easypost-sécret"
# Warehouses of the integration 3PL (its simulator stocks any SKU in WH-EAST and WH-WEST); SLOW-* SKUs are
# promised for the same day, so the watchdog finds them late; BULKY-* ship from WH-WEST (split orders).
# Where return labels send parcels back to.
EAST = {"name": "IT 3PL East", "line1": "100 Warehouse Way", "city": "Orlando", "region": "FL",
        "postal_code": "32801", "country": "US"}  # fmt: skip
WEST = {"name": "IT 3PL West", "line1": "200 Depot Road", "city": "Reno", "region": "NV",
        "postal_code": "89501", "country": "US"}  # fmt: skip
# A kit the returns tests sell (test_returns.py): a pot (0.7 of its price) and two cups (0.3).
RETURN_KITS = {
    "IT-KIT-BREW": [
        {"sku": "IT-POT", "quantity": 1, "share": "0.7"},
        {"sku": "IT-CUP", "quantity": 2, "share": "0.3"},
    ]
}
FULFILMENT_POLICY = {
    "warehouses": [
        {"id": "WH-EAST", "provider": THREEPL, "countries": ["US", "CA"], "promise_days": 3, "address": EAST},
        {
            "id": "WH-WEST",
            "provider": THREEPL,
            "countries": ["*"],
            "priority": 2,
            "promise_days": 5,
            "address": WEST,
        },
        {"id": "WH-EAST", "provider": THREEPL, "skus": ["SLOW-*"], "priority": 0, "promise_days": 0},
        {"id": "WH-WEST", "provider": THREEPL, "skus": ["BULKY-*"], "priority": 0, "promise_days": 6},
    ],
    "silent_after_hours": 1000,
}


class TrackingCodes:
    """The 3PL simulator's tracking codes name the carrier simulator's scenario (`IT-LATE-000007`)."""

    def __init__(self) -> None:
        self.scenario = "on-time"

    def __call__(self, carrier: str, n: int) -> str:
        return f"IT-{self.scenario.upper()}-{n:06d}"


@pytest.fixture(scope="session")
def tracking_codes() -> TrackingCodes:
    return TrackingCodes()


@pytest.fixture(scope="session")
def threepl(hub_port: int, tracking_codes: TrackingCodes) -> Iterator[Any]:
    """A simulated 3PL: ships a second after the request; confirmations to /webhooks/3pl/it-3pl."""
    from local.simulators.threepl import ThreePLSimulator

    yield from serving(
        ThreePLSimulator,
        hub_port,
        f"/webhooks/3pl/{THREEPL}",
        THREEPL,
        THREEPL_KEY,
        THREEPL_SECRET,
        time_scale=0.01,
        ship_after_s=100.0,  # 1 s
        handover_delay_s=50.0,  # 0.5 s after shipping the parcels are with the carrier
        seed=13,
        tracking_code_factory=tracking_codes,
    )


@pytest.fixture(scope="session")
def carrier(hub_port: int) -> Iterator[Any]:
    """A simulated EasyPost: a tracking event every 0.4 s, signed as EasyPost signs."""
    from local.simulators.carrier import CarrierSimulator

    yield from serving(
        CarrierSimulator,
        hub_port,
        "/webhooks/carriers/easypost",
        EASYPOST_KEY,
        EASYPOST_SECRET,
        step_s=0.4,
        seed=17,
    )


PUBLISH_WOO = "https://it-publish-woo.example/"
PUBLISH_WOO_SECRET = "it-publish-woo-secret"
PUBLISH_SHOP = "it-publish.myshopify.com"
PUBLISH_SHOP_SECRET = "it-publish-shopify-secret"


@pytest.fixture(scope="session")
def woo_store(hub_port: int) -> Iterator[Any]:
    """The WooCommerce store the hub publishes to (HUB_WOOCOMMERCE_API_BASE)."""
    from local.simulators.woocommerce import WooCommerceSimulator

    yield from serving(
        WooCommerceSimulator,
        hub_port,
        "/webhooks/woocommerce",
        PUBLISH_WOO,
        PUBLISH_WOO_SECRET,
        "ck_it_publish",
        "cs_it_publish",
        seed=23,
    )


@pytest.fixture(scope="session")
def shopify_store(hub_port: int) -> Iterator[Any]:
    """The Shopify shop the hub publishes to and reads risk from (HUB_SHOPIFY_API_BASE)."""
    from local.simulators.shopify import ShopifySimulator

    yield from serving(
        ShopifySimulator,
        hub_port,
        "/webhooks/shopify",
        PUBLISH_SHOP,
        PUBLISH_SHOP_SECRET,
        "shpat_it_publish",
        seed=29,
    )


@pytest.fixture(scope="session")
def stack(
    *,
    woo_store: Any,
    shopify_store: Any,
    amazon: Any,
    amazon_notifier: AmazonNotifier,
    stripe: Any,
    threepl: Any,
    carrier: Any,
    hub_port: int,
) -> Iterator[Stack]:
    ARTIFACTS.mkdir(exist_ok=True)
    hub, aws, moto = hub_port, free_port(), free_port()
    token = "integration-token"
    env = {
        **os.environ,
        "HUB_PORT": str(hub),
        "HUB_LOCAL_AWS_PORT": str(aws),
        "HUB_LOCAL_MOTO_PORT": str(moto),
        "HUB_OPERATOR_TOKEN": token,
        "HUB_DEMO": "0",
        "HUB_LOCAL_QUEUE_VISIBILITY_SECONDS": str(VISIBILITY_SECONDS),
        "POWERTOOLS_LOG_LEVEL": "INFO",
        # A high-value order alone is enough for a review here, so tests can reach the review stage.
        # Every test pays with Stripe's few test cards, each one fingerprint (as on Stripe): card velocity
        # would otherwise reject orders by the order the tests run in.
        "HUB_FRAUD_POLICY": '{"weights": {"high_value": 45}, "velocity": {"card": {"1h": 10000}}}',
        "HUB_AMAZON_SPAPI_ENDPOINT": amazon.url,
        "HUB_AMAZON_LWA_ENDPOINT": amazon.lwa_url,
        "HUB_STRIPE_API_BASE": stripe.url,
        "HUB_WOOCOMMERCE_API_BASE": woo_store.url,
        "HUB_SHOPIFY_API_BASE": shopify_store.url,
        "HUB_CARRIER_API_BASE": carrier.url,
        "HUB_FULFILMENT_POLICY": json.dumps(FULFILMENT_POLICY),
        # Only kits: every other returns setting keeps its default.
        "HUB_RETURNS_POLICY": json.dumps({"kits": RETURN_KITS}),
        "HUB_PAYMENT_RECOVERY_SECONDS": str(PAYMENT_RECOVERY_SECONDS),
    }
    log_path = ARTIFACTS / "local-stack.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "local", "run"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    hub_url = f"http://127.0.0.1:{hub}"

    def healthy() -> dict[str, Any] | None:
        if process.poll() is not None:
            pytest.fail(f"local stack exited with {process.returncode}: {log_path.read_text()[-3000:]}")
        try:
            response = requests.get(f"{hub_url}/health", timeout=2)
        except (requests.ConnectionError, requests.Timeout):  # still booting, or a busy machine
            return None
        return dict(response.json()) if response.status_code == 200 else None

    try:
        health = eventually(healthy, timeout=BOOT_DEADLINE, interval=0.2)
        running = Stack(hub_url, f"http://127.0.0.1:{aws}", token, process, log_path, health)
        from chalicelib import resources

        # The outbox runs when a test asks (publish_outbox), not on its own minute as well: a test that
        # arranges what a run meets (a store refusing writes, throttling) is then sure its run meets it.
        paused = requests.post(f"{running.aws_url}/_local/schedules/publish_outbox/pause", timeout=10)
        assert paused.status_code == 200, paused.text
        amazon_notifier.sqs = running.client("sqs")
        amazon_notifier.queue_url = running.queue_url(resources.AMAZON_NOTIFICATIONS_QUEUE.name)
        registered = running.api(
            "POST",
            "/api/connections",
            json={
                "channel": "stripe",
                "secret_key": STRIPE_SECRET_KEY,
                "webhook_secret": STRIPE_WEBHOOK_SECRET,
            },
        )
        assert registered.status_code in (200, 201), registered.text
        for body in (
            {
                "channel": "3pl",
                "store": THREEPL,
                "api_base": threepl.url,
                "api_key": THREEPL_KEY,
                "webhook_secret": THREEPL_SECRET,
            },
            {"channel": "easypost", "api_key": EASYPOST_KEY, "webhook_secret": EASYPOST_SECRET},
            {
                "channel": "woocommerce",
                "store": PUBLISH_WOO,
                "webhook_secret": PUBLISH_WOO_SECRET,
                "consumer_key": woo_store.consumer_key,
                "consumer_secret": woo_store.consumer_secret,
            },
            {
                "channel": "shopify",
                "store": PUBLISH_SHOP,
                "webhook_secret": PUBLISH_SHOP_SECRET,
                "access_token": shopify_store.access_token,
            },
        ):
            answer = running.api("POST", "/api/connections", json=body)
            assert answer.status_code in (200, 201), answer.text
        yield running
    finally:
        Stack(hub_url, "", token, process, log_path, {}).stop()
        log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium (Playwright `Browser`) for the session: see tests/integration/browser.py."""
    from playwright.sync_api import expect, sync_playwright

    from tests.integration.browser import STEP_TIMEOUT_MS, launch

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    shutil.rmtree(ARTIFACTS / "browser", ignore_errors=True)  # no screenshots of an earlier run
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Any:
    """`screenshot(page, "step")`: a full-page PNG under test-artifacts/browser/<test>/, numbered."""
    from tests.integration.browser import Screenshots

    return Screenshots(ARTIFACTS / "browser" / request.node.name)


@pytest.fixture
def browser_page(browser: Any, screenshot: Any) -> Iterator[Any]:
    """A page in a fresh context (no cookies). At the end: a last screenshot and the console's messages."""
    from tests.integration.browser import STEP_TIMEOUT_MS

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    try:
        yield page
    finally:
        try:
            screenshot(page, "last")
        finally:
            (screenshot.directory / "console.log").write_text("".join(f"{line}\n" for line in console))
            context.close()
