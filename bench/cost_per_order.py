"""Cost model: what one order costs in AWS, per path, from what the local stack actually did.

Run: .venv/bin/python bench/cost_per_order.py [orders per scenario, default 20] [--json FILE]
(prints Markdown for bench/RESULTS.md; --json also writes the raw figures).

It boots its own local stack on free ports (HUB_DEMO=0, HUB_LOCAL_COUNTERS=1, the demo's fraud policy so that
large orders go to the review) and plays a few scenarios one after another, N orders each: an order arrives
(a signed Shopify webhook, or the operator API) and, whenever its lifecycle execution waits on a task token,
the scenario's operator answers (approve, reject, cancel) or leaves it waiting. For each scenario:

- Step Functions, from every new execution's history (`GetExecutionHistory`): billed state transitions,
  Lambda invocations, retries, task-token waits; grouped by the path (the states entered, in order, and the
  execution's end) and the order's final status (`GET /api/orders/{id}`). Nothing here knows a state name.
- Everything else from the local AWS endpoint's request counters (`GET /_local/counters`, reset before each
  scenario): DynamoDB requests, read units and written items (priced from the stored items' sizes and the
  indexes each item is in), SQS requests (FIFO or standard; empty polls apart), Secrets Manager calls;
  Lambda invocations and handler time from `/_local/status`; API Gateway requests are the hub requests the
  scenario made (webhooks, operator actions), and their wall time stands for the API function's duration, plus
  the webhooks the simulators sent (their delivery logs; each at WEBHOOK_SECONDS).
- Returns (RETURN_SCENARIOS): N orders delivered first, outside the counters; then one return each, opened
  over the API, its parcel received at the 3PL once the carrier delivered it; measured alike, per return.
- Scheduled functions run on the clock, not per order: each one's footprint is measured once (fired on
  demand) and taken out of the scenarios it happened to run in.

The bench's own reads (executions, histories, item sizes) go straight to moto, past the counters.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.local_stack import (  # noqa: E402
    boot,
    free_port,
    shopify_headers,
    shopify_order,
    shut_down,
    wait_healthy,
)
from chalicelib.domain.order import derive_order_id  # noqa: E402
from local.counters import item_size  # noqa: E402  (DynamoDB's item-size rule, as the counters use it)

SHOP = "bench-shop.myshopify.com"
SECRET = "bench-webhook-secret"
TOKEN = "bench-token"
# The demo's policy (local/stack.py): orders above 250 score 45 points, past the review threshold (40).
FRAUD_POLICY = (
    '{"weights": {"high_value": 45}, "high_value": {"EUR": "250", "USD": "250", "GBP": "250"},'
    ' "velocity": {"card": {"1h": 100000}}}'
)
STRIPE_KEY = "sk_test_bench"
THREEPL = "bench-3pl"
THREEPL_KEY = "bench-3pl-key"
THREEPL_SECRET = "bench-3pl-secret"
EASYPOST_KEY = "EZTKbench"
EASYPOST_SECRET = "bench-easypost-secret"
STRIPE_WEBHOOK_SECRET = "whsec_bench"
WAREHOUSE = {"name": "Bench 3PL East", "line1": "100 Warehouse Way", "city": "Orlando", "region": "FL",
             "postal_code": "32801", "country": "US"}  # fmt: skip
# The webhooks the simulators send (3PL, carrier, Stripe) are API Gateway requests and API-function
# invocations like the bench's own; their handler time is not seen from here: each is taken at the
# webhook ack's p50 measured by bench/webhook_ack.py (45 ms, bench/RESULTS.md).
WEBHOOK_SECONDS = 0.045

# us-east-1, on-demand list prices in USD, read on PRICES_DATE; the sources are in bench/RESULTS.md.
PRICES_DATE = "2026-11-23"
LAMBDA_MEMORY_GB = 512 / 1024  # infra/stacks/model.py FUNCTION_MEMORY_MB; Chalice's default arch, x86_64
PRICE = {
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000166667,
    "sfn_transition": 0.025 / 1000,
    "dynamodb_wru": 0.625 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "sqs_fifo_request": 0.50 / 1e6,
    "sqs_standard_request": 0.40 / 1e6,
    "apigw_rest_request": 3.50 / 1e6,
    "secretsmanager_call": 0.05 / 10_000,
}
# Step Functions' own API (StartExecution, SendTaskSuccess, ...) is not billed: only state transitions are.
FREE_SERVICES = {"states"}
SCHEDULE_TIMEOUT_S = 30


# ---------------------------------------------------------------------------------------------- orders


def shopify_order_body(number: int, price: str) -> bytes:
    tag = uuid.uuid4().hex[:8]
    line = {"id": 9_100_000_000 + number, "quantity": 1, "price": price, "tax_lines": []}
    return shopify_order(
        8_000_000_000 + number,
        f"#C{number}",
        f"buyer-{tag}@example.com",  # one buyer per order: no velocity rule fires
        line,
        "0.00",
        customer={"first_name": "Cost", "last_name": tag, "email": f"buyer-{tag}@example.com"},
        shipping_address={
            "name": f"Cost {tag}",
            "address1": "150 Elgin St",
            "city": "Ottawa",
            "zip": "K2P 1L4",
            "country_code": "CA",
        },
    )


def signed_headers(body: bytes) -> dict[str, str]:
    return shopify_headers(body, secret=SECRET, shop=SHOP)


def manual_order(number: int, price: str, intent_id: str | None = None) -> dict[str, Any]:
    total = f"{Decimal(price) + Decimal('4.90'):.2f}"
    payment = (
        {"source": "stripe", "reference": intent_id}
        if intent_id
        else {"source": "bank_transfer", "reference": f"BT-{number}", "amount_captured": total}
    )
    return {
        "payment": payment,
        "store": "phone-orders",
        "shipping_address": {
            "name": "Caller",
            "line1": "12 Rue de la Gare",
            "city": "Lyon",
            "postal_code": "69002",
            "country": "FR",
        },
        "external_id": f"COST-{number:05d}-{uuid.uuid4().hex[:6]}",
        "currency": "EUR",
        "placed_at": datetime.now(UTC).isoformat(),
        "customer": {"email": f"caller-{uuid.uuid4().hex[:8]}@example.com", "name": "Caller"},
        "lines": [{"sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": price}],
        "totals": {"shipping": "4.90"},
    }


@dataclass(frozen=True)
class Scenario:
    label: str
    channel: str  # "shopify" (signed webhook) or "manual" (operator API)
    price: str
    # What the operator does when the execution waits on a task token: None leaves it waiting.
    # {"path": "review" | "cancel", "body": {...}}, or {"card": "pm_..."}: the customer pays again.
    on_wait: dict[str, Any] | None = None
    # Manual orders: the Stripe test card authorised at checkout (None: paid by bank transfer).
    card: str | None = None


SCENARIOS = (
    Scenario("Shopify webhook, small order", "shopify", "44.00"),
    Scenario("operator API (manual order), paid by bank transfer", "manual", "12.50"),
    Scenario("manual order, Stripe card authorised, captured", "manual", "12.50", card="pm_card_visa"),
    Scenario(
        "manual order, Stripe card declined, new card, captured",
        "manual",
        "12.50",
        {"card": "pm_card_visa"},
        card="pm_card_chargeDeclined",
    ),
    Scenario(
        "Shopify, large order, review approved",
        "shopify",
        "400.00",
        {"path": "review", "body": {"decision": "approve"}},
    ),
    Scenario(
        "Shopify, large order, review rejected",
        "shopify",
        "400.00",
        {"path": "review", "body": {"decision": "reject"}},
    ),
    Scenario(
        "Shopify, large order, cancelled during review",
        "shopify",
        "400.00",
        {"path": "cancel", "body": {"reason": "bench"}},
    ),
    Scenario("Shopify, large order, left waiting for review", "shopify", "400.00", None),
)


# ---------------------------------------------------------------------------------------------- histories


def history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        events.extend(page["events"])
    return events


def waiting_on_token(events: list[dict[str, Any]]) -> bool:
    """Waits for SendTaskSuccess/Failure: a `.waitForTaskToken` task was submitted and has not ended."""
    open_waits = 0
    for event in events:
        details: dict[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {}) or {}
        resource = str(details.get("resource", ""))
        if event["type"] == "TaskSubmitted" and resource.endswith("waitForTaskToken"):
            open_waits += 1
        elif event["type"] in (
            "TaskSucceeded",
            "TaskFailed",
            "TaskTimedOut",
            "TaskAborted",
        ) and resource.endswith("waitForTaskToken"):
            open_waits = max(0, open_waits - 1)
    return open_waits > 0


@dataclass
class ExecutionFigures:
    order_id: str
    status: str
    path: str
    states_entered: int
    retries: int
    lambda_invocations: int
    token_waits: int
    token_wait_seconds: float
    task_failures: int

    @property
    def billed_transitions(self) -> int:
        return self.states_entered + self.retries


def figures(execution: dict[str, Any], events: list[dict[str, Any]]) -> ExecutionFigures:
    """Counts from one execution's history; nothing here depends on the definition's state names.

    - billed transitions: AWS bills "a state transition each time a step of your workflow is executed ...
      including retries": every `*StateEntered` event, plus every retry (a task attempt after the first in the
      same state visit: `TaskScheduled` / `LambdaFunctionScheduled` / `ActivityScheduled` beyond one per
      `TaskStateEntered`);
    - Lambda invocations: `LambdaFunctionScheduled` (plain function ARNs) and `TaskScheduled` whose resource
      type is `lambda` (`arn:aws:states:::lambda:invoke*`), every attempt;
    - task-token waits: `TaskSubmitted` of a `.waitForTaskToken` resource, and the time until it ended.
    """
    names: list[str] = []
    task_states = attempts = lambdas = waits = failures = 0
    wait_seconds = 0.0
    submitted_at: datetime | None = None
    for event in events:
        kind = event["type"]
        details: dict[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {}) or {}
        if kind.endswith("StateEntered"):
            names.append(details.get("name", "?"))
            task_states += kind == "TaskStateEntered"
        elif kind in ("TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"):
            attempts += 1
            lambdas += kind == "LambdaFunctionScheduled" or details.get("resourceType") == "lambda"
        elif kind == "TaskSubmitted" and str(details.get("resource", "")).endswith("waitForTaskToken"):
            waits += 1
            submitted_at = event["timestamp"]
        elif kind in ("TaskFailed", "LambdaFunctionFailed", "TaskTimedOut", "LambdaFunctionTimedOut"):
            failures += 1
        ends = kind in ("TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskAborted")
        if (
            ends
            and submitted_at is not None
            and str(details.get("resource", "")).endswith("waitForTaskToken")
        ):
            wait_seconds += (event["timestamp"] - submitted_at).total_seconds()
            submitted_at = None
    status = execution["status"]
    if status == "RUNNING" and waiting_on_token(events):
        status = "RUNNING, waiting on a task token"
    order_id = str(json.loads(execution.get("input") or "{}").get("order_id") or execution["name"])
    return ExecutionFigures(
        order_id=order_id,
        status=status,
        path=" → ".join(names),
        states_entered=len(names),
        retries=max(0, attempts - task_states),
        lambda_invocations=lambdas,
        token_waits=waits,
        token_wait_seconds=wait_seconds,
        task_failures=failures,
    )


# ---------------------------------------------------------------------------------------------- the stack


class Stack:
    def __init__(self) -> None:
        from local.simulators.carrier import CarrierSimulator
        from local.simulators.stripe import StripeSimulator
        from local.simulators.threepl import ThreePLSimulator

        self.hub_port, self.aws_port, self.moto_port = free_port(), free_port(), free_port()
        self.stripe = StripeSimulator(
            api_key=STRIPE_KEY,
            webhook_url=f"http://127.0.0.1:{self.hub_port}/webhooks/stripe",
            webhook_secret=STRIPE_WEBHOOK_SECRET,
            time_scale=0.001,
        ).start()
        # Every order ships: a 3PL that ships half a second after the request, a carrier that delivers
        # after four tracking events 0.3 s apart (on time).
        self.threepl = ThreePLSimulator(
            THREEPL,
            THREEPL_KEY,
            THREEPL_SECRET,
            webhook_url=f"http://127.0.0.1:{self.hub_port}/webhooks/3pl/{THREEPL}",
            time_scale=0.01,
            ship_after_s=50.0,
            tracking_code_factory=lambda carrier, n: f"COST-ON-TIME-{n:06d}",
        ).start()
        self.carrier = CarrierSimulator(
            EASYPOST_KEY,
            EASYPOST_SECRET,
            webhook_url=f"http://127.0.0.1:{self.hub_port}/webhooks/carriers/easypost",
            step_s=0.3,
        ).start()
        env = {
            "HUB_LOCAL_AWS_PORT": str(self.aws_port),
            "HUB_LOCAL_MOTO_PORT": str(self.moto_port),
            "HUB_LOCAL_COUNTERS": "1",
            "HUB_FRAUD_POLICY": os.environ.get("HUB_FRAUD_POLICY", FRAUD_POLICY),
            "HUB_STRIPE_API_BASE": self.stripe.url,
            "HUB_CARRIER_API_BASE": self.carrier.url,
            "HUB_FULFILMENT_POLICY": json.dumps(
                {
                    "warehouses": [
                        {
                            "id": "WH-EAST",
                            "provider": THREEPL,
                            "countries": ["*"],
                            "promise_days": 3,
                            "address": WAREHOUSE,  # where return labels send parcels back to
                        }
                    ]
                }
            ),
        }
        self.process = boot(self.hub_port, TOKEN, **env)
        self.url = f"http://127.0.0.1:{self.hub_port}"
        self.auth = {"Authorization": f"Bearer {TOKEN}"}
        self.session = requests.Session()
        health = wait_healthy(self.url)
        self.aws_url = health.json()["aws_endpoint"]  # the gateway: counted
        moto = f"http://127.0.0.1:{self.moto_port}"  # the bench's own reads: not counted
        self.sfn = self._client("stepfunctions", moto)
        self.ddb = self._client("dynamodb", moto)
        machines = self.sfn.list_state_machines()["stateMachines"]
        self.machines = [m["stateMachineArn"] for m in machines]

    @staticmethod
    def _client(service: str, url: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="b",
            aws_secret_access_key="b",
        )

    def stop(self) -> None:
        shut_down(self.process)
        for simulator in (self.stripe, self.threepl, self.carrier):
            simulator.stop()

    def counters(self, reset: bool = False) -> dict[str, Any]:
        if reset:
            return dict(requests.post(f"{self.aws_url}/_local/counters/reset", timeout=10).json())
        return dict(requests.get(f"{self.aws_url}/_local/counters", timeout=10).json())

    def status(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.aws_url}/_local/status", timeout=10).json())

    def executions(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for machine in self.machines:
            for page in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
                for execution in page["executions"]:
                    found[execution["executionArn"]] = execution
        return found

    def webhooks(self) -> int:
        """Webhook deliveries the simulators attempted so far (each one a request to the hub's API)."""
        return sum(len(sim.deliveries) for sim in (self.stripe, self.threepl, self.carrier))

    def api(self, method: str, path: str, **kwargs: Any) -> tuple[requests.Response, float]:
        started = time.perf_counter()
        answer = self.session.request(method, f"{self.url}{path}", timeout=30, **kwargs)
        return answer, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------- measuring


def activity(counts: dict[str, Any]) -> int:
    """Requests counted so far, idle polls aside: unchanged for a while means the work has settled."""
    return sum(
        n
        for ops in counts["requests"].values()
        for op, n in ops.items()
        if not op.startswith("ReceiveMessage (empty)")
    )


def settle(stack: Stack, quiet_s: float = 2.0, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = activity(stack.counters())
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.25)


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


@dataclass
class Measured:
    label: str
    orders: int
    executions: list[ExecutionFigures] = field(default_factory=list)
    final_status: dict[str, str] = field(default_factory=dict)  # order id → status
    counters: dict[str, Any] = field(default_factory=dict)
    invocations: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    api_requests: int = 0
    api_seconds: float = 0.0
    webhooks: int = 0  # the simulators' webhook deliveries to the hub (every attempt)
    per: str = "order"  # what the figures are divided by: the orders' executions, or "return"s
    write_units: float = 0.0
    index_write_units: float = 0.0
    schedule_runs: dict[str, int] = field(default_factory=dict)


def schedule_runs(status: dict[str, Any]) -> dict[str, int]:
    return {name: int(s.get("runs", 0)) for name, s in status.get("schedules", {}).items()}


def measure_schedules(stack: Stack) -> dict[str, dict[str, Any]]:
    """One run of each scheduled function, fired on demand: what to take out of the scenarios."""
    footprints: dict[str, dict[str, Any]] = {}
    for name in stack.status().get("schedules", {}):
        settle(stack)
        stack.counters(reset=True)
        requests.post(
            f"{stack.aws_url}/_local/schedules/{name}", timeout=SCHEDULE_TIMEOUT_S
        ).raise_for_status()
        settle(stack, quiet_s=1.0)
        footprints[name] = stack.counters()
    return footprints


def run_scenario(stack: Stack, scenario: Scenario, n: int, number: int) -> Measured:
    settle(stack)
    known = set(stack.executions())
    status_before = stack.status()
    webhooks_before = stack.webhooks()
    stack.counters(reset=True)
    measured = Measured(scenario.label, n)
    intents: dict[str, str] = {}
    for i in range(n):
        if scenario.channel == "shopify":
            body = shopify_order_body(number + i, scenario.price)
            answer, took = stack.api("POST", "/webhooks/shopify", data=body, headers=signed_headers(body))
        else:
            intent_id = None
            if scenario.card:
                amount = int((Decimal(scenario.price) + Decimal("4.90")) * 100)
                intent_id = stack.stripe.create_payment_intent(amount, "eur", scenario.card)["id"]
            body = manual_order(number + i, scenario.price, intent_id)
            answer, took = stack.api("POST", "/api/orders", json=body, headers=stack.auth)
            if intent_id:
                intents[derive_order_id("manual", "phone-orders", body["external_id"])] = intent_id
        answer.raise_for_status()
        measured.api_requests += 1
        measured.api_seconds += took
    answered: set[str] = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        new = {arn: e for arn, e in stack.executions().items() if arn not in known}
        settled = 0
        for arn, execution in new.items():
            if execution["status"] != "RUNNING":
                settled += 1
                continue
            events = history(stack.sfn, arn)
            if not waiting_on_token(events):
                continue
            if scenario.on_wait is None or arn in answered:
                settled += 1
                continue
            order_id = figures(stack.sfn.describe_execution(executionArn=arn), events).order_id
            if "card" in scenario.on_wait:
                # The customer, not the operator: Stripe's webhook resumes the order.
                stack.stripe.confirm_payment_intent(intents[order_id], scenario.on_wait["card"])
                answered.add(arn)
                continue
            answer, took = stack.api(
                "POST",
                f"/api/orders/{order_id}/{scenario.on_wait['path']}",
                json=scenario.on_wait["body"],
                headers=stack.auth,
            )
            answered.add(arn)
            measured.api_requests += 1
            measured.api_seconds += took
            if answer.status_code >= 300:
                print(
                    f"  {scenario.label}: operator action answered {answer.status_code}: {answer.text[:200]}",
                    file=sys.stderr,
                )
        if len(new) >= n and settled == len(new):
            break
        time.sleep(0.5)
    else:
        print(f"  {scenario.label}: not every execution settled within the wait", file=sys.stderr)
    return close_window(stack, measured, known, status_before, webhooks_before)


def close_window(
    stack: Stack, measured: Measured, known: set[str], status_before: dict[str, Any], webhooks_before: int
) -> Measured:
    """Once the work settled: the counters, then the window's executions and final statuses."""
    settle(stack)
    take_counters(stack, measured, status_before, webhooks_before)
    # Everything below reads past the counters (moto directly) or after they were taken.
    for arn in (a for a in stack.executions() if a not in known):
        execution = stack.sfn.describe_execution(executionArn=arn)
        measured.executions.append(figures(execution, history(stack.sfn, arn)))
    final_statuses(stack, measured)
    return measured


def take_counters(
    stack: Stack, measured: Measured, status_before: dict[str, Any], webhooks_before: int
) -> None:
    measured.counters = stack.counters()
    measured.webhooks = stack.webhooks() - webhooks_before
    status_after = stack.status()
    measured.invocations = diff(status_after["invocations"], status_before["invocations"])
    measured.seconds = diff(
        status_after.get("invocation_seconds", {}), status_before.get("invocation_seconds", {})
    )
    before_runs, after_runs = schedule_runs(status_before), schedule_runs(status_after)
    measured.schedule_runs = {
        k: v - before_runs.get(k, 0) for k, v in after_runs.items() if v - before_runs.get(k, 0)
    }


def final_statuses(stack: Stack, measured: Measured) -> None:
    for figure in measured.executions:
        answer = stack.session.get(
            f"{stack.url}/api/orders/{figure.order_id}", headers=stack.auth, timeout=10
        )
        measured.final_status[figure.order_id] = (
            answer.json().get("status", "?") if answer.ok else f"HTTP {answer.status_code}"
        )


# ---------------------------------------------------------------------------------------------- returns


@dataclass(frozen=True)
class ReturnScenario:
    label: str
    body: dict[str, Any]  # the return's request besides its lines (resolution, exchange)
    reason: str = "defective"


RETURN_SCENARIOS = (
    ReturnScenario("return of one line of two, card refund (Stripe)", {}),
    ReturnScenario("return of one line of two, store credit (voucher)", {"resolution": "voucher"}),
    ReturnScenario(
        "return of one line of two, exchange (return and replacement order)",
        {
            "resolution": "exchange",
            "exchange": {"lines": [{"sku": "LAMP-XL", "quantity": 1, "unit_price": "40.00"}]},
        },
        reason="size",
    ),
)
# The exchange's replacement is an ordinary manual order without a payment to take: the scenario priced with
# it is subtracted to leave the return's own figures.
REPLACEMENT_LIKE = "operator API (manual order), paid by bank transfer"
EXCHANGE_HEADER = ("transitions", "Lambda invocations", "DynamoDB WRU / RRU", "SQS requests", "API GW")


def delivered_orders(stack: Stack, n: int, number: int) -> list[tuple[str, str]]:
    """n manual orders of two lines (a mug, a lamp), paid by Stripe card, delivered: (order id, the lamp's
    line id). Made before a return scenario's counters are reset: their cost is not the returns'."""
    placed = []
    for i in range(n):
        intent = stack.stripe.create_payment_intent(5740, "eur", "pm_card_visa")["id"]
        body = manual_order(number + i, "12.50", intent)
        body["lines"].append({"sku": "LAMP", "title": "Lamp", "quantity": 1, "unit_price": "40.00"})
        answer, _ = stack.api("POST", "/api/orders", json=body, headers=stack.auth)
        answer.raise_for_status()
        placed.append(str(answer.json()["order_id"]))
    done: dict[str, str] = {}
    deadline = time.monotonic() + 240
    while len(done) < n and time.monotonic() < deadline:
        for order_id in (o for o in placed if o not in done):
            order = stack.session.get(f"{stack.url}/api/orders/{order_id}", headers=stack.auth, timeout=10)
            if order.ok and order.json().get("status") == "COMPLETED":
                lines = order.json().get("lines") or []
                done[order_id] = next(str(ln["line_id"]) for ln in lines if ln.get("sku") == "LAMP")
        time.sleep(0.5)
    if len(done) < n:
        print(f"  {n - len(done)} of {n} orders not delivered in time: left out", file=sys.stderr)
    return list(done.items())


def parcel_arrived(stack: Stack, return_id: str) -> bool:
    """The carrier delivered the return label's parcel to the warehouse (its tracker is final)."""
    labels = stack.carrier.by_reference(f"label-{return_id}")
    codes = {str(s.get("tracking_code")) for s in labels if s.get("tracking_code")}
    return any(
        t.get("tracking_code") in codes and t.get("status") == "delivered" for t in stack.carrier.trackers()
    )


def run_returns(stack: Stack, scenario: ReturnScenario, orders: list[tuple[str, str]]) -> Measured:
    """One return per delivered order: opened over the API; once its workflow waits for the parcel and the
    carrier delivered it, the warehouse receives it (the 3PL inspects it by itself: restock); until every
    return's execution ended and the work settled. State is read from moto and the simulators, uncounted."""
    settle(stack)
    known = set(stack.executions())
    status_before = stack.status()
    webhooks_before = stack.webhooks()
    stack.counters(reset=True)
    measured = Measured(scenario.label, len(orders), per="return")
    returns: dict[str, str] = {}  # return id → its execution's ARN
    machine = next(m for m in stack.machines if "order-return" in m)
    for order_id, line_id in orders:
        body = {"lines": [{"line_id": line_id, "quantity": 1, "reason": scenario.reason}], **scenario.body}
        answer, took = stack.api("POST", f"/api/orders/{order_id}/returns", json=body, headers=stack.auth)
        measured.api_requests += 1
        measured.api_seconds += took
        if answer.status_code >= 300:
            print(f"  {scenario.label}: {answer.status_code} {answer.text[:200]}", file=sys.stderr)
            continue
        return_id = str(answer.json()["return_id"])
        returns[return_id] = machine.replace(":stateMachine:", ":execution:") + f":{return_id}"
    received: set[str] = set()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        running = 0
        for return_id, arn in returns.items():
            try:
                execution = stack.sfn.describe_execution(executionArn=arn)
            except stack.sfn.exceptions.ExecutionDoesNotExist:
                running += 1
                continue
            if execution["status"] != "RUNNING":
                continue
            running += 1
            waiting = return_id not in received and waiting_on_token(history(stack.sfn, arn))
            if waiting and parcel_arrived(stack, return_id):
                stack.threepl.returns.receive(return_id)
                received.add(return_id)
        if not running:
            break
        time.sleep(0.5)
    else:
        print(f"  {scenario.label}: not every return ended within the wait", file=sys.stderr)
    settle_executions(stack, known)
    return close_window(stack, measured, known, status_before, webhooks_before)


def settle_executions(stack: Stack, known: set[str], timeout_s: float = 120.0) -> None:
    """Executions started in the window (an exchange's replacement order) ran to their end."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        new = [e for arn, e in stack.executions().items() if arn not in known]
        if all(e["status"] != "RUNNING" for e in new):
            return
        time.sleep(0.5)


def minus(cost: Cost, other: Cost, label: str) -> Cost:
    """`cost` less one `other` (per unit): an exchange's return without its replacement order."""
    return Cost(
        label=label,
        orders=cost.orders,
        transitions=cost.transitions - other.transitions,
        sfn_lambda=cost.sfn_lambda - other.sfn_lambda,
        lambda_requests=cost.lambda_requests - other.lambda_requests,
        gb_seconds=cost.gb_seconds - other.gb_seconds,
        wru=cost.wru - other.wru,
        rru=cost.rru - other.rru,
        sqs_fifo=cost.sqs_fifo - other.sqs_fifo,
        sqs_standard=cost.sqs_standard - other.sqs_standard,
        apigw=cost.apigw - other.apigw,
        secrets=cost.secrets - other.secrets,
        unpriced={k: v - other.unpriced.get(k, 0.0) for k, v in cost.unpriced.items()},
    )


def price_writes(stack: Stack, counters: dict[str, Any]) -> tuple[float, float]:
    """Write request units of the counted writes: (table, indexes).

    Each written item is sized as it is stored now (after the scenario: an upper bound for its earlier
    writes). A write costs ceil(size / 1 KB) units, twice that in a transaction; every global secondary index
    the item is in (ALL projection) costs ceil(size / 1 KB) more per write. Not counted: the extra index
    delete when a write changes an index key. An item deleted since is priced at its put size, or 1 KB.
    """
    table_units = index_units = 0.0
    for table, keys in counters["dynamodb"]["writes"].items():
        description = stack.ddb.describe_table(TableName=table)["Table"]
        indexes = [
            [k["AttributeName"] for k in gsi["KeySchema"]]
            for gsi in description.get("GlobalSecondaryIndexes", [])
        ]
        for key_json, entry in keys.items():
            key = {k: v for k, v in json.loads(key_json).items() if v is not None}
            item = (
                stack.ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item") if key else None
            )
            size = item_size(item) if item else (entry["put_bytes"] or 1024)
            units = max(1, math.ceil(size / 1024))
            plain = entry["writes"] - entry["transactional"]
            table_units += units * (plain + 2 * entry["transactional"] + 2 * entry["condition_checks"])
            in_indexes = sum(all(a in item for a in names) for names in indexes) if item else 0
            index_units += units * in_indexes * (entry["writes"] - entry["deletes"])
    return table_units, index_units


def subtract_schedules(measured: Measured, footprints: dict[str, dict[str, Any]]) -> None:
    for name, runs in measured.schedule_runs.items():
        footprint = footprints.get(name)
        if not footprint or runs <= 0:
            continue
        for service, ops in footprint["requests"].items():
            mine = measured.counters["requests"].setdefault(service, {})
            for op, n in ops.items():
                if not op.startswith("ReceiveMessage (empty)"):
                    mine[op] = max(0, mine.get(op, 0) - runs * n)
        ddb = measured.counters["dynamodb"]
        for op, units in footprint["dynamodb"]["read_units"].items():
            ddb["read_units"][op] = max(0.0, ddb["read_units"].get(op, 0.0) - runs * units)
        for table, keys in footprint["dynamodb"]["writes"].items():
            for key in keys:
                ddb["writes"].get(table, {}).pop(key, None)  # the schedule's own items (e.g. a heartbeat)
        measured.invocations[name] = max(0, measured.invocations.get(name, 0) - runs)
        measured.seconds.pop(name, None)


# ---------------------------------------------------------------------------------------------- pricing


@dataclass
class Cost:
    label: str
    orders: int
    transitions: float
    sfn_lambda: float
    lambda_requests: float
    gb_seconds: float
    wru: float
    rru: float
    sqs_fifo: float
    sqs_standard: float
    apigw: float
    secrets: float
    unpriced: dict[str, float]

    def usd(self) -> dict[str, float]:
        return {
            "Step Functions": self.transitions * PRICE["sfn_transition"],
            "Lambda": self.lambda_requests * PRICE["lambda_request"]
            + self.gb_seconds * PRICE["lambda_gb_second"],
            "DynamoDB": self.wru * PRICE["dynamodb_wru"] + self.rru * PRICE["dynamodb_rru"],
            "SQS": self.sqs_fifo * PRICE["sqs_fifo_request"]
            + self.sqs_standard * PRICE["sqs_standard_request"],
            "API Gateway": self.apigw * PRICE["apigw_rest_request"],
            "Secrets Manager": self.secrets * PRICE["secretsmanager_call"],
        }


def cost_of(measured: Measured, write_units: tuple[float, float]) -> Cost:
    n = max(1, measured.orders if measured.per == "return" else len(measured.executions) or measured.orders)
    requests_ = measured.counters["requests"]
    sqs = requests_.get("sqs", {})
    fifo = sum(
        v for k, v in sqs.items() if k.endswith("[fifo]") and not k.startswith("ReceiveMessage (empty)")
    )
    standard = sum(
        v for k, v in sqs.items() if not k.endswith("[fifo]") and not k.startswith("ReceiveMessage (empty)")
    )
    functions = sum(measured.invocations.values())
    # One API-function invocation per API Gateway request; its wall time (client side) stands for its run.
    seconds = sum(measured.seconds.values()) + measured.api_seconds + measured.webhooks * WEBHOOK_SECONDS
    invocations = functions + measured.api_requests + measured.webhooks
    billed_seconds = seconds + 0.0005 * invocations  # each invocation is rounded up to the next 1 ms
    unpriced = {
        f"{service} {op}": float(v)
        for service, ops in requests_.items()
        if service not in ("dynamodb", "sqs", "secretsmanager", "lambda") and service not in FREE_SERVICES
        for op, v in ops.items()
        if v
    }
    return Cost(
        label=measured.label,
        orders=n,
        transitions=sum(e.billed_transitions for e in measured.executions) / n,
        sfn_lambda=sum(e.lambda_invocations for e in measured.executions) / n,
        lambda_requests=invocations / n,
        gb_seconds=billed_seconds * LAMBDA_MEMORY_GB / n,
        wru=sum(write_units) / n,
        rru=sum(measured.counters["dynamodb"]["read_units"].values()) / n,
        sqs_fifo=fifo / n,
        sqs_standard=standard / n,
        apigw=(measured.api_requests + measured.webhooks) / n,
        secrets=sum(requests_.get("secretsmanager", {}).values()) / n,
        unpriced={k: v / n for k, v in unpriced.items()},
    )


def usd(value: float) -> str:
    if value == 0:
        return "0"
    if value < 0.01:
        return f"${value:.6f}".rstrip("0")
    return f"${value:,.2f}"


# ---------------------------------------------------------------------------------------------- report


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def report(results: list[tuple[Measured, Cost]], n: int, unit: str = "order") -> str:
    memory = f"{LAMBDA_MEMORY_GB * 1024:.0f} MB x86_64"
    out = [f"{unit}s per scenario: {n}; prices: us-east-1 on-demand, {PRICES_DATE}; Lambda at {memory}", ""]
    out += ["### Paths (from the execution histories)", ""]
    rows: list[list[str]] = []
    for measured, _ in results:
        groups: dict[tuple[str, str, str], list[ExecutionFigures]] = defaultdict(list)
        for e in measured.executions:
            groups[(measured.final_status.get(e.order_id, "?"), e.status, e.path)].append(e)
        for (order_status, status, path), members in sorted(groups.items(), key=lambda g: -len(g[1])):
            k = len(members)

            def mean(values: list[int], k: int = k) -> str:
                return f"{sum(values) / k:g}"

            rows.append(
                [
                    measured.label,
                    str(k),
                    order_status,
                    status,
                    path,
                    mean([e.billed_transitions for e in members]),
                    mean([e.lambda_invocations for e in members]),
                    mean([e.retries for e in members]),
                    mean([e.token_waits for e in members]),
                ]
            )
    header = ["scenario", "executions", "order status", "execution", "path (states entered)"]
    out += table([*header, "billed transitions", "Lambda tasks", "retries", "token waits"], rows)
    out += ["", f"### Requests per {unit} (counters; schedules and idle polls taken out)", ""]
    rows = []
    for measured, cost in results:
        ddb_ops = measured.counters["requests"].get("dynamodb", {})
        ddb_requests = sum(v for k, v in ddb_ops.items() if k != "CreateTable")
        rows.append(
            [
                cost.label,
                f"{cost.transitions:g}",
                f"{cost.lambda_requests:.2f} ({cost.sfn_lambda:g})",
                f"{cost.gb_seconds:.3f}",
                f"{cost.wru:.1f} / {cost.rru:.1f}",
                f"{ddb_requests / cost.orders:.1f}",
                f"{cost.sqs_fifo + cost.sqs_standard:.2f}",
                f"{cost.apigw:.2f} ({measured.webhooks / cost.orders:.2f})",
                f"{cost.secrets:.2f}",
                ", ".join(f"{k} {v:g}" for k, v in cost.unpriced.items()) or "none",
            ]
        )
    header = [
        "scenario",
        "transitions",
        "Lambda invocations (SFN tasks)",
        "Lambda GB-s",
        "DynamoDB WRU / RRU",
    ]
    header += ["DynamoDB requests", "SQS requests", "API GW requests (webhooks)", "Secrets Manager", "other"]
    out += table(header, rows)
    out += ["", f"### Cost per {unit} and per 1,000 / 100,000 {unit}s (USD, no free tier)", ""]
    services = list(results[0][1].usd()) if results else []
    rows = []
    for _, cost in results:
        parts = cost.usd()
        total = sum(parts.values())
        money = [usd(parts[s]) for s in services]
        rows.append([cost.label, *money, usd(total), usd(total * 1000), usd(total * 100_000)])
    out += table(["scenario", *services, f"per {unit}", "per 1,000", "per 100,000"], rows)
    out += ["", f"### Where the requests went (per {unit})", ""]
    for measured, cost in results:
        flat = {
            f"{s} {op}": v / cost.orders
            for s, ops in measured.counters["requests"].items()
            for op, v in ops.items()
            if v and not op.startswith("ReceiveMessage (empty)") and op != "CreateTable"
        }
        functions = ", ".join(
            f"{k} {v / cost.orders:.2f}" for k, v in sorted(measured.invocations.items()) if v
        )
        ms = ", ".join(
            f"{k} {1000 * v / max(1, measured.invocations.get(k, 1)):.0f} ms"
            for k, v in sorted(measured.seconds.items())
        )
        api_ms = 1000 * measured.api_seconds / max(1, measured.api_requests)
        out.append(f"- {cost.label}: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(flat.items())))
        out.append(
            f"  - Lambda invocations by function: {functions}; API {cost.apigw:.2f} (the bench's own"
            f" requests: mean {api_ms:.0f} ms; webhooks {measured.webhooks / cost.orders:.2f},"
            f" at {WEBHOOK_SECONDS * 1000:.0f} ms)"
        )
        out.append(f"  - mean handler time: {ms}")
    return "\n".join(out)


def measure_returns(
    stack: Stack, n: int, footprints: dict[str, dict[str, Any]]
) -> list[tuple[Measured, Cost]]:
    """Each return scenario on n orders delivered first (outside its counters)."""
    returned: list[tuple[Measured, Cost]] = []
    for index, scenario in enumerate(RETURN_SCENARIOS):
        print(f"returns {index + 1}/{len(RETURN_SCENARIOS)}: {scenario.label}", file=sys.stderr)
        orders = delivered_orders(stack, n, 20_000 + 1000 * index)
        measured = run_returns(stack, scenario, orders)
        subtract_schedules(measured, footprints)
        units = price_writes(stack, measured.counters)
        measured.write_units, measured.index_write_units = units
        returned.append((measured, cost_of(measured, units)))
    return returned


def main() -> None:
    args = sys.argv[1:]
    json_path = None
    if "--json" in args:
        at = args.index("--json")
        json_path = Path(args[at + 1])
        del args[at : at + 2]
    n = int(args[0]) if args else 20
    stack = Stack()
    try:
        connection = {"channel": "shopify", "store": SHOP, "webhook_secret": SECRET, "access_token": "x"}
        stripe = {"channel": "stripe", "secret_key": STRIPE_KEY, "webhook_secret": STRIPE_WEBHOOK_SECRET}
        threepl = {
            "channel": "3pl",
            "store": THREEPL,
            "api_base": stack.threepl.url,
            "api_key": THREEPL_KEY,
            "webhook_secret": THREEPL_SECRET,
        }
        easypost = {"channel": "easypost", "api_key": EASYPOST_KEY, "webhook_secret": EASYPOST_SECRET}
        for body in (connection, stripe, threepl, easypost):
            stack.session.post(
                f"{stack.url}/api/connections", json=body, headers=stack.auth, timeout=10
            ).raise_for_status()
        # Warm the app (imports, cached store lookup) so the first scenario is not a cold start.
        stack.api(
            "POST", "/webhooks/shopify", data=(b := shopify_order_body(0, "1.00")), headers=signed_headers(b)
        )
        footprints = measure_schedules(stack)
        results: list[tuple[Measured, Cost]] = []
        for index, scenario in enumerate(SCENARIOS):
            print(f"scenario {index + 1}/{len(SCENARIOS)}: {scenario.label}", file=sys.stderr)
            measured = run_scenario(stack, scenario, n, 1000 * (index + 1))
            subtract_schedules(measured, footprints)
            units = price_writes(stack, measured.counters)
            measured.write_units, measured.index_write_units = units
            results.append((measured, cost_of(measured, units)))
        returned = measure_returns(stack, n, footprints)
        print(report(results, n))
        print()
        print(report(returned, n, unit="return"))
        replacement_like = next(c for m, c in results if m.label == REPLACEMENT_LIKE)
        exchange = minus(returned[-1][1], replacement_like, "exchange, the return only")
        print()
        print(f"### Exchange without its replacement order (less one '{REPLACEMENT_LIKE}' order of this run)")
        print()
        parts = exchange.usd()
        print(
            "\n".join(
                table(
                    [*EXCHANGE_HEADER, *parts, "per return", "per 1,000"],
                    [
                        [
                            f"{exchange.transitions:g}",
                            f"{exchange.lambda_requests:.2f}",
                            f"{exchange.wru:.1f} / {exchange.rru:.1f}",
                            f"{exchange.sqs_fifo + exchange.sqs_standard:.2f}",
                            f"{exchange.apigw:.2f}",
                            *(usd(v) for v in parts.values()),
                            usd(sum(parts.values())),
                            usd(sum(parts.values()) * 1000),
                        ]
                    ],
                )
            )
        )
        results += returned
        if json_path is not None:
            raw = {
                "orders_per_scenario": n,
                "prices": PRICE,
                "prices_date": PRICES_DATE,
                "schedules": footprints,
                "scenarios": [
                    {
                        "label": m.label,
                        "executions": [
                            e.__dict__ | {"billed_transitions": e.billed_transitions} for e in m.executions
                        ],
                        "final_status": m.final_status,
                        "counters": m.counters,
                        "invocations": m.invocations,
                        "seconds": m.seconds,
                        "api_requests": m.api_requests,
                        "api_seconds": m.api_seconds,
                        "webhooks": m.webhooks,
                        "per": m.per,
                        "write_units": {"table": m.write_units, "indexes": m.index_write_units},
                        "cost": c.__dict__ | {"usd": c.usd()},
                    }
                    for m, c in results
                ],
                "status_counts": dict(Counter(s for m, _ in results for s in m.final_status.values())),
            }
            json_path.write_text(json.dumps(raw, indent=2, default=str))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
