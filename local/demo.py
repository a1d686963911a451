"""Demo traffic for `make run`: orders placed and changed in every simulated channel, narrated."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import requests

from local.demo_channels import DemoChannels
from local.demo_returns import DemoReturns

log = logging.getLogger("local.demo")

CATALOGUE = [
    ("TSHIRT-BLK-M", "Organic T-shirt, black, M", Decimal("24.90")),
    ("HOODIE-GRY-L", "Hoodie, grey, L", Decimal("59.00")),
    ("MUG-LOGO", "Enamel mug", Decimal("12.50")),
    ("CAP-NAVY", "Cap, navy", Decimal("19.95")),
]


# The customer's card at checkout (Stripe test payment methods): mostly fine, some declined, a few risky.
CARDS = [
    ("pm_card_visa", 60),
    ("pm_card_mastercard", 12),
    ("pm_card_chargeDeclined", 10),
    ("pm_card_chargeDeclinedInsufficientFunds", 6),
    ("pm_card_riskLevelElevated", 8),
    ("pm_card_chargeDeclinedFraudulent", 4),
]


def pick_card(rng: random.Random) -> str:
    return rng.choices([c for c, _ in CARDS], [w for _, w in CARDS])[0]


def minor(amount: Decimal | str, currency: str) -> int:
    exponent = 0 if currency.upper() == "JPY" else 2
    return int(Decimal(str(amount)).scaleb(exponent))


def manual_order(rng: random.Random, number: int) -> dict[str, Any]:
    picks = rng.sample(CATALOGUE, k=rng.randint(1, 3))
    return {
        "store": "phone-orders",
        "external_id": f"PHONE-{number:05d}",
        "currency": "EUR",
        "placed_at": datetime.now(UTC).isoformat(),
        "customer": {"email": f"caller{number}@example.com", "name": f"Caller {number}"},
        "shipping_address": {
            "name": f"Caller {number}",
            "line1": f"{number % 90 + 1} Rue de la Gare",
            "city": "Lyon",
            "postal_code": "69002",
            "country": "FR",
        },
        "lines": [
            {"sku": sku, "title": title, "quantity": rng.randint(1, 3), "unit_price": f"{price}"}
            for sku, title, price in picks
        ],
        "totals": {"shipping": "4.90"},
    }


class DemoTraffic:
    """Every few seconds one channel action: a new order somewhere, or a change to an earlier one."""

    def __init__(
        self,
        hub_url: str,
        token: str,
        *,
        channels: DemoChannels,
        stop: threading.Event,
        every: float = 2.0,
        seed: int | None = None,
    ) -> None:
        self._url = hub_url
        self._headers = {"Authorization": f"Bearer {token}"}
        self._channels = channels
        self._stop = stop
        self._every = every
        self._rng = random.Random(seed)
        self._open: list[tuple[str, Any]] = []  # (channel, channel order id) that can still change
        # A handful of delivered orders come back, one per returns path (local/demo_returns.py).
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        self.returns = DemoReturns(hub_url, api, channels, stop)
        self._threads = [
            threading.Thread(target=self._run, name="demo", daemon=True),
            threading.Thread(target=self._watch, name="demo-watch", daemon=True),
            threading.Thread(target=self.returns.run, name="demo-returns", daemon=True),
        ]
        self._seen: dict[str, int] = {}
        self._declined: list[str] = []  # PaymentIntents whose customer may come back with another card
        self._number = self._rng.randint(1, 50_000)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.step()
            except Exception as exc:  # the demo keeps going; the hub's answer is what matters
                log.warning("demo step failed: %s", exc)

    def step(self) -> None:
        if self._rng.random() < 0.3 and self._review_one():
            return
        if self._declined and self._rng.random() < 0.25:
            self._recover_one()
            return
        if self._rng.random() < 0.03 and self._cancel_one():
            return
        if self._open and self._rng.random() < 0.45:
            channel, order_id = self._open.pop(self._rng.randrange(len(self._open)))
            self._follow_up(channel, order_id)
            return
        choice = self._rng.choices(["shopify", "woocommerce", "amazon", "manual"], [4, 3, 3, 1])[0]
        shop, woo, amazon = self._channels.shopify, self._channels.woocommerce, self._channels.amazon
        if choice == "shopify":
            order = shop.create_order()
            self._open.append(("shopify", order["id"]))
            log.info("shopify: order %s placed", order["name"])
        elif choice == "woocommerce" and self._rng.random() < 0.6:
            self._woocommerce_with_stripe()
        elif choice == "woocommerce":
            order = woo.create_order()
            self._open.append(("woocommerce", order["id"]))
            log.info("woocommerce: order #%s placed", order["number"])
        elif choice == "amazon":
            order = amazon.create_order()
            self._open.append(("amazon", order["AmazonOrderId"]))
            log.info("amazon: order %s placed (%s)", order["AmazonOrderId"], order["OrderStatus"])
        else:
            self._number += 1
            body = manual_order(self._rng, self._number)
            total = sum(Decimal(line["unit_price"]) * line["quantity"] for line in body["lines"]) + Decimal(
                "4.90"
            )
            intent = self._authorise(total, "EUR")
            body["payment"] = {"source": "stripe", "reference": intent["id"]}
            requests.post(f"{self._url}/api/orders", json=body, headers=self._headers, timeout=10)
            log.info("manual: order %s posted (card %s)", body["external_id"], intent["status"])

    def _authorise(self, total: Decimal, currency: str) -> dict[str, Any]:
        """The checkout's card payment: a manual-capture PaymentIntent, authorised or declined."""
        card = pick_card(self._rng)
        intent = self._channels.stripe.create_payment_intent(minor(total, currency), currency.lower(), card)
        if intent["status"] == "requires_payment_method":
            self._declined.append(intent["id"])
        return intent

    def _woocommerce_with_stripe(self) -> None:
        """WooCommerce Stripe Gateway: order placed, card authorised, `_stripe_intent_id` saved, on-hold."""
        woo = self._channels.woocommerce
        order = woo.create_order(payment_method="stripe", status="pending")
        intent = self._authorise(Decimal(order["total"]), order["currency"])
        status = "on-hold" if intent["status"] == "requires_capture" else "failed"
        woo.attach_stripe_intent(order["id"], intent["id"], status=status)
        self._open.append(("woocommerce", order["id"]))
        log.info("woocommerce: order #%s placed, paid by card (%s)", order["number"], intent["status"])

    def _orders(self, status: str, limit: int) -> list[dict[str, Any]]:
        """The operator's order list: the first `limit` orders in `status`."""
        params = {"status": status, "limit": str(limit)}
        answer = requests.get(f"{self._url}/api/orders", params=params, headers=self._headers, timeout=10)
        orders: list[dict[str, Any]] = answer.json()["orders"]
        return orders

    def _act(
        self, order: dict[str, Any], action: str, body: dict[str, Any], *, timeout: float = 10
    ) -> requests.Response:
        """The operator's action on one order (POST /api/orders/{id}/`action`)."""
        url = f"{self._url}/api/orders/{order['order_id']}/{action}"
        return requests.post(url, json=body, headers=self._headers, timeout=timeout)

    def _cancel_one(self) -> bool:
        """Play the operator taking a customer's call: cancel a paid card order (the capture is refunded)."""
        paid = self._orders("PAID", 10)
        by_card = [o for o in paid if o["payment"]["source"] == "stripe"]
        if not by_card:
            return False
        order = by_card[0]
        answer = self._act(order, "cancel", {"reason": "customer called to cancel"}, timeout=30).json()
        done = ", ".join(f"{c['action']} {c.get('amount', '')}" for c in answer.get("compensations", []))
        log.info("operator: cancelled %s (%s)", order["external_id"], done or "nothing to undo")
        return True

    def _recover_one(self) -> None:
        """A customer whose card was declined comes back with another one (sales recovery)."""
        intent_id = self._declined.pop(0)
        if self._rng.random() < 0.7:
            intent = self._channels.stripe.confirm_payment_intent(intent_id, "pm_card_visa")
            log.info("customer: new card for %s (%s)", intent_id, intent["status"])
        else:
            log.info("customer: never came back for %s (the order will be cancelled)", intent_id)

    def _review_one(self) -> bool:
        """Play the operator: decide one order waiting in the fraud review (mostly approve)."""
        waiting = self._orders("FRAUD_REVIEW", 5)
        ready = [o for o in waiting if o["history"] and o["history"][-1]["event"] == "review_requested"]
        if not ready:
            return False
        order = ready[0]
        decision = "approve" if self._rng.random() < 0.75 else "reject"
        self._act(order, "review", {"decision": decision})
        log.info("operator: %s %s (fraud score %s)", decision, order["external_id"], order["fraud"]["score"])
        return True

    def _follow_up(self, channel: str, order_id: Any) -> None:
        shop, woo, amazon = self._channels.shopify, self._channels.woocommerce, self._channels.amazon
        roll = self._rng.random()
        actions: dict[str, list[tuple[float, Callable[[], Any], str]]] = {
            # Only what happens at the channel itself: shipping is the hub's (its 3PL), and comes back to
            # the channel as publications.
            "shopify": [
                (0.6, lambda: shop.mark_paid(order_id), "paid"),
                (0.8, lambda: shop.refund_order(order_id), "refunded in part"),
                (1.0, lambda: shop.cancel_order(order_id), "cancelled"),
            ],
            "woocommerce": [
                (0.7, lambda: woo.refund_order(order_id, "5.00"), "refunded 5.00"),
                (1.0, lambda: woo.update_status(order_id, "cancelled"), "cancelled"),
            ],
            "amazon": [
                (0.3, lambda: amazon.set_status(order_id, "Canceled"), "cancelled"),
            ],
        }
        for threshold, action, label in actions[channel]:
            if roll <= threshold:
                try:
                    action()
                except (ValueError, KeyError) as exc:  # not allowed in this order's state
                    log.debug("demo: %s %s skipped: %s", channel, order_id, exc)
                    return
                log.info("%s: order %s %s", channel, order_id, label)
                return

    def _watch(self) -> None:
        """Narrates each order's life: every new history event of the most recent orders."""
        session = requests.Session()
        while not self._stop.wait(2.0):
            try:
                page = session.get(
                    f"{self._url}/api/orders", params={"limit": 30}, headers=self._headers, timeout=10
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
                "  hub %-11s %-14s %-20s %-18s %s %s",
                order["channel"],
                order["external_number"] or order["external_id"],
                order["status"],
                entry["event"],
                f"{order['totals']['total']} {order['currency']}",
                note,
            )
        self._seen[order["order_id"]] = len(history)
