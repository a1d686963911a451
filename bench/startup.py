"""Benchmark: seconds from `python -m local run` to a healthy /health, and first order end to end.

Run: .venv/bin/python bench/startup.py [runs]   (results go to bench/RESULTS.md by hand)
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.local_stack import boot, free_port, shut_down, wait_healthy  # noqa: E402


def one_run() -> tuple[float, float]:
    hub = free_port()
    url = f"http://127.0.0.1:{hub}"
    started = time.monotonic()
    process = boot(hub, "bench")
    try:
        wait_healthy(url, poll_s=0.05)
        healthy = time.monotonic() - started
        headers = {"Authorization": "Bearer bench"}
        order = {
            "external_id": f"B-{uuid.uuid4().hex[:6]}",
            "currency": "EUR",
            "placed_at": "2026-11-23T10:00:00Z",
            "lines": [{"title": "Mug", "quantity": 1, "unit_price": "9.90"}],
        }
        posted = time.monotonic()
        order_id = requests.post(f"{url}/api/orders", json=order, headers=headers, timeout=10).json()[
            "order_id"
        ]
        while True:
            body = requests.get(f"{url}/api/orders/{order_id}", headers=headers, timeout=5)
            if body.status_code == 200 and any(h["event"] == "validated" for h in body.json()["history"]):
                break
            time.sleep(0.02)
        return healthy, time.monotonic() - posted
    finally:
        shut_down(process)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    results = [one_run() for _ in range(runs)]
    healthy = [h for h, _ in results]
    first = [f for _, f in results]
    print(f"runs: {runs}")
    print(f"healthy after start: median {statistics.median(healthy):.2f} s, max {max(healthy):.2f} s")
    print(f"first order HTTP → validated: median {statistics.median(first):.2f} s, max {max(first):.2f} s")


if __name__ == "__main__":
    main()
