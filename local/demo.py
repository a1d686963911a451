"""Demo traffic for `make run`: a steady trickle of realistic orders through the public API."""

from __future__ import annotations

import logging
import random
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import requests

log = logging.getLogger("local.demo")

CATALOGUE = [
    ("TSHIRT-BLK-M", "Organic T-shirt, black, M", Decimal("24.90")),
    ("HOODIE-GRY-L", "Hoodie, grey, L", Decimal("59.00")),
    ("MUG-LOGO", "Enamel mug", Decimal("12.50")),
    ("CAP-NAVY", "Cap, navy", Decimal("19.95")),
    ("SOCKS-3PK", "Socks, 3-pack", Decimal("14.00")),
]
STORES = ["eu-flagship", "outlet"]
COUNTRIES = [("DE", "Berlin"), ("FR", "Lyon"), ("NL", "Utrecht"), ("US", "Portland")]


def demo_order(rng: random.Random, number: int) -> dict[str, Any]:
    picks = rng.sample(CATALOGUE, k=rng.randint(1, 3))
    country, city = rng.choice(COUNTRIES)
    now = datetime.now(UTC).isoformat()
    return {
        "store": rng.choice(STORES),
        "external_id": f"DEMO-{number:05d}",
        "external_number": f"#{1000 + number}",
        "currency": "EUR",
        "placed_at": now,
        "customer": {"email": f"customer{number}@example.com", "name": f"Demo Customer {number}"},
        "shipping_address": {"name": f"Demo Customer {number}", "city": city, "country": country},
        "lines": [
            {"sku": sku, "title": title, "quantity": rng.randint(1, 3), "unit_price": f"{price}"}
            for sku, title, price in picks
        ],
        "totals": {"shipping": "4.90"},
    }


class DemoTraffic:
    def __init__(self, hub_url: str, token: str, *, stop: threading.Event, every: float = 3.0):
        self._url = hub_url
        self._headers = {"Authorization": f"Bearer {token}"}
        self._stop = stop
        self._every = every
        self._rng = random.Random()
        self._thread = threading.Thread(target=self._run, name="demo", daemon=True)
        self._watcher = threading.Thread(target=self._watch, name="demo-watch", daemon=True)
        self._seen: dict[str, int] = {}

    def start(self) -> None:
        self._thread.start()
        self._watcher.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        self._watcher.join(timeout)

    def _watch(self) -> None:
        """Narrates each order's life: every new history event of the most recent orders."""
        session = requests.Session()
        while not self._stop.wait(2.0):
            try:
                page = session.get(
                    f"{self._url}/api/orders", params={"limit": 20}, headers=self._headers, timeout=10
                ).json()
            except (requests.RequestException, ValueError) as exc:
                log.warning("demo watcher: %s", exc)
                continue
            for order in reversed(page.get("orders", [])):
                self._narrate(order)

    def _narrate(self, order: dict[str, Any]) -> None:
        history = order.get("history", [])
        seen = self._seen.get(order["order_id"], 0)
        for entry in history[seen:]:
            detail = entry.get("detail", {})
            note = ""
            if entry["event"] == "validated":
                note = (
                    "totals add up" if detail.get("totals_consistent") else f"FLAGGED {detail.get('issues')}"
                )
            log.info(
                "%s %-10s %-10s %s %s",
                order["external_id"],
                order["status"],
                entry["event"],
                f"{order['totals']['total']} {order['currency']}",
                note,
            )
        self._seen[order["order_id"]] = len(history)

    def _run(self) -> None:
        number = self._rng.randint(1, 50_000)
        session = requests.Session()
        while not self._stop.wait(self._every):
            number += 1
            order = demo_order(self._rng, number)
            try:
                answer = session.post(
                    f"{self._url}/api/orders", json=order, headers=self._headers, timeout=10
                )
                answer.raise_for_status()
                log.info("demo order %s accepted as %s", order["external_id"], answer.json()["order_id"])
            except requests.RequestException as exc:
                log.warning("demo order %s not accepted: %s", order["external_id"], exc)
