"""Benchmark: Shopify webhook ack latency beside its floor (a bare SQS SendMessage), and a burst.

Run: .venv/bin/python bench/webhook_ack.py [deliveries]   (record the printout in bench/RESULTS.md)

It boots the local stack (HUB_DEMO=0) on free ports, registers a Shopify store, then in one run:
1. floor: N bare SQS SendMessage calls of the same body to the same local endpoint (a FIFO queue), which a
   consumer drains as the runtime drains the hub's ingest queue (receive up to 10, delete what it got), so
   the floor's queue stays as short as the hub's and the two pay moto's per-message costs alike;
2. ack: N signed `orders/create` deliveries posted one after another to /webhooks/shopify, alternating with
   the floor; the hub's own share of an ack is ack minus the floor sent just before it (paired); twice:
   under load (the stack processes each accepted order meanwhile, in the same process) and idle (the queue
   consumers paused, the issue #19 target: ack <= 2x the floor at p50, <= 3x at p99);
3. burst: 8 concurrent senders posting N deliveries in all; deliveries/s;
and finally checks that every accepted delivery became exactly one order.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.local_stack import boot, free_port, shopify_headers, shopify_order, shut_down, wait_healthy  # noqa: E402

SHOP = "bench-shop.myshopify.com"
SECRET = "bench-webhook-secret"
TOKEN = "bench-token"


def order_body(number: int) -> bytes:
    line = {
        "id": 9_000_000_000 + number,
        "quantity": 2,
        "price": "22.00",
        "tax_lines": [{"price": "4.00", "rate": 0.1, "title": "Tax"}],
    }
    return shopify_order(
        7_000_000_000 + number,
        f"#B{number}",
        "bench@example.com",
        line,
        "4.00",
        customer={"first_name": "Bench", "last_name": "Mark", "email": "bench@example.com"},
        shipping_address={"name": "Bench Mark", "city": "Ottawa", "country_code": "CA"},
    )


def headers_for(body: bytes) -> dict[str, str]:
    return shopify_headers(body, secret=SECRET, shop=SHOP)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class FloorDrain:
    """Drains the floor queue the way the local runtime drains the ingest queue (its event-source mapping):
    long-poll up to 10, delete what arrived. It stops by itself when told or after `limit_s`."""

    def __init__(self, sqs_endpoint: str, queue_url: str, limit_s: float = 1800.0) -> None:
        self._sqs = boto3.client(
            "sqs",
            region_name="us-east-1",
            endpoint_url=sqs_endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        self._queue_url = queue_url
        self._stop = threading.Event()
        self._deadline = time.monotonic() + limit_s
        self.drained = 0
        self._thread = threading.Thread(target=self._run, name="floor-drain", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            got = self._sqs.receive_message(
                QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if got:
                entries = [{"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(got)]
                self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)
                self.drained += len(got)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def queued(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    hub, aws = free_port(), free_port()
    process = boot(hub, TOKEN, HUB_LOCAL_AWS_PORT=str(aws))
    url, aws_url = f"http://127.0.0.1:{hub}", f"http://127.0.0.1:{aws}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        wait_healthy(url)
        connection = {"channel": "shopify", "store": SHOP, "webhook_secret": SECRET, "access_token": "x"}
        requests.post(f"{url}/api/connections", json=connection, headers=auth, timeout=10).raise_for_status()

        sqs = boto3.client(
            "sqs",
            region_name="us-east-1",
            endpoint_url=aws_url,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        floor_queue = sqs.create_queue(QueueName="bench-floor.fifo", Attributes={"FifoQueue": "true"})[
            "QueueUrl"
        ]
        drain = FloorDrain(aws_url, floor_queue)
        body = order_body(0)
        session = requests.Session()
        session.post(f"{url}/webhooks/shopify", data=body, headers=headers_for(body), timeout=10)  # warm-up

        def sequential(first: int) -> tuple[list[float], list[float]]:
            """n signed deliveries one after another, each right after its floor SendMessage."""
            floor, ack = [], []
            for i in range(n):
                started = time.perf_counter()
                sqs.send_message(
                    QueueUrl=floor_queue,
                    MessageBody=body.decode(),
                    MessageGroupId=str(first + i),
                    MessageDeduplicationId=uuid.uuid4().hex,
                )
                floor.append(time.perf_counter() - started)
                payload = order_body(first + i)
                headers = headers_for(payload)
                started = time.perf_counter()
                answer = session.post(f"{url}/webhooks/shopify", data=payload, headers=headers, timeout=10)
                ack.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
            return floor, ack

        # Under load: the stack processes each accepted order (ingest, Step Functions, tasks) in the same
        # process meanwhile. Idle: the queue consumers paused (the target), so the hub's process does
        # nothing but answer; the ingest queue grows by n while the floor's is drained.
        floor, ack = sequential(1)
        requests.post(f"{aws_url}/_local/event-sources/pause", timeout=90).raise_for_status()
        idle_floor, idle_ack = sequential(3 * n + 1)
        requests.post(f"{aws_url}/_local/event-sources/resume", timeout=90).raise_for_status()
        floor_left = drain.queued()
        drain.stop()

        def send(numbers: range) -> int:
            local = requests.Session()
            accepted = 0
            for number in numbers:
                payload = order_body(number)
                answer = local.post(
                    f"{url}/webhooks/shopify", data=payload, headers=headers_for(payload), timeout=30
                )
                accepted += answer.status_code == 200
            return accepted

        base = 4 * n + 1
        chunks = [range(base + k * (n // 8), base + (k + 1) * (n // 8)) for k in range(8)]
        # The burst twice: the webhook edge alone (queue consumers paused, as a throttled or disabled
        # mapping would be; the queue absorbs it), then with the consumers working at the same time.
        rates = {}
        for label, paused in (("edge only, consumers paused", True), ("consumers running", False)):
            if paused:
                requests.post(f"{aws_url}/_local/event-sources/pause", timeout=90).raise_for_status()
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=8) as pool:
                accepted = sum(pool.map(send, chunks))
            rates[label] = (accepted, time.perf_counter() - started)
            requests.post(f"{aws_url}/_local/event-sources/resume", timeout=90).raise_for_status()
            base += n
            chunks = [range(base + k * (n // 8), base + (k + 1) * (n // 8)) for k in range(8)]
        accepted_burst = sum(a for a, _ in rates.values())
        expected = 1 + 2 * n + accepted_burst  # warm-up order 0 + both sequential phases + bursts
        deadline = time.monotonic() + 900
        stored = 0
        while time.monotonic() < deadline:
            status = requests.get(f"{aws_url}/_local/status", timeout=10).json()
            processed = status["event_sources"]["ingest_deliveries"]["succeeded"]
            if processed >= expected:
                break
            time.sleep(0.5)
        cursor, ids = None, set()
        while True:
            params = {"channel": "shopify", "limit": 100, **({"cursor": cursor} if cursor else {})}
            page = requests.get(f"{url}/api/orders", params=params, headers=auth, timeout=30).json()
            ids.update(o["order_id"] for o in page["orders"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        stored = len(ids)

        def ms(v: float) -> str:
            return f"{v * 1000:.1f} ms"

        print(
            f"deliveries: sequential {n} twice (under load, idle), "
            f"two bursts of {8 * (n // 8)} from 8 senders"
        )
        for phase, phase_floor, phase_ack in (("under load", floor, ack), ("idle", idle_floor, idle_ack)):
            print(f"-- {phase}")
            for label, values in (("floor (bare SQS SendMessage)", phase_floor), ("webhook ack", phase_ack)):
                print(f"{label:<29} p50 {ms(percentile(values, 0.5))}, p99 {ms(percentile(values, 0.99))}")
            print(
                f"ratio ack/floor: p50 {percentile(phase_ack, 0.5) / percentile(phase_floor, 0.5):.2f}x, "
                f"p99 {percentile(phase_ack, 0.99) / percentile(phase_floor, 0.99):.2f}x; "
                f"mean ack {ms(statistics.mean(phase_ack))}, mean floor {ms(statistics.mean(phase_floor))}"
            )
            # Each ack against the floor sent just before it, so both met the same moment of the run.
            share = [a - f for a, f in zip(phase_ack, phase_floor, strict=True)]
            print(
                f"hub's own share (ack - paired floor): p50 {ms(percentile(share, 0.5))}, "
                f"p99 {ms(percentile(share, 0.99))}, mean {ms(statistics.mean(share))} = "
                f"{statistics.mean(share) / statistics.mean(phase_ack):.0%} of the mean ack"
            )
        first, last = floor[: n // 4], floor[-(n // 4) :]
        print(
            f"floor drained: {drain.drained} of {2 * n} received and deleted, "
            f"{floor_left} queued at the end; "
            f"floor p50 first quarter {ms(percentile(first, 0.5))}, last quarter {ms(percentile(last, 0.5))}"
        )
        for label, (accepted, elapsed) in rates.items():
            print(f"burst, {label}: {accepted} accepted in {elapsed:.2f} s = {accepted / elapsed:.0f}/s")
        print(f"orders stored: {stored} of {expected} accepted deliveries (each a distinct order)")
    finally:
        shut_down(process)


if __name__ == "__main__":
    main()
