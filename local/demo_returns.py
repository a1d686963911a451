"""Demo returns for `make run`: a handful of delivered orders come back, one per path, narrated.

The paths: a card order's line refunded after a `restock` inspection, a damaged unit `scrap`ped, a
voucher later redeemed on a new manual order, an exchange for another SKU, a Shopify return requested by
the customer and approved in the shop, and an Amazon return that reaches the hub through the returns
report. Returns are opened through the hub's API (or at the channel) and the parcel is received at the
demo 3PL through its simulator; everything else is the hub's own doing. Bounded: every `every`-th
completed order that fits a path still open gets a return, each path once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import requests

from local.demo_channels import DemoChannels

log = logging.getLogger("local.demo")

RESTOCK, SCRAP, VOUCHER, EXCHANGE, SHOPIFY, AMAZON = (
    "restock refund",
    "damaged, scrapped",
    "voucher",
    "exchange",
    "shopify return",
    "amazon return",
)
PATHS = (RESTOCK, SCRAP, VOUCHER, EXCHANGE, SHOPIFY, AMAZON)
# Opened through the hub's API, on orders whose money the hub or the store's own site holds.
_API_CHANNELS = ("manual", "woocommerce")
_AT_WAREHOUSE = ("label_sent", "in_transit")
_FINAL = ("resolved", "rejected", "expired")
TICK_S = 3.0  # how often the returns are looked at and moved on
GIVE_UP_AFTER_S = 600.0  # a demo return that has not resolved by then is narrated as stuck and dropped
# The voucher's new order ships to the demo's phone-order street (as local.demo.manual_order's do).
DEMO_ADDRESS = {
    "name": "Voucher customer",
    "line1": "1 Rue de la Gare",
    "city": "Lyon",
    "postal_code": "69002",
    "country": "FR",
}
EXCHANGE_SKUS = ("TSHIRT-BLK-L", "HOODIE-GRY-M", "CAP-BLACK")


def fits(path: str, order: Mapping[str, Any]) -> bool:
    """Whether a completed order (as GET /api/orders answers it) can play `path`."""
    channel = order.get("channel")
    lines = order.get("lines") or []
    payment = order.get("payment") or {}
    shipments = order.get("shipments") or []
    if not any(isinstance(s, Mapping) and s.get("status") == "delivered" for s in shipments):
        return False  # nothing reached the customer by parcel (e.g. nothing to ship): nothing to send back
    if path == SHOPIFY:
        return channel == "shopify" and bool(lines)
    if path == AMAZON:
        return channel == "amazon" and bool(lines)
    if channel not in _API_CHANNELS or not lines:
        return False
    if path == RESTOCK:  # one line of two, back to the card
        return payment.get("source") == "stripe" and len(lines) >= 2
    return True


class ReturnPicker:
    """Which completed orders come back: each order is offered once; every `every`-th order that fits a
    path still open gets the first such path; each path is played once, so a run makes a handful."""

    def __init__(self, paths: tuple[str, ...] = PATHS, *, every: int = 2) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.open = list(paths)
        self.every = every
        self._offered: set[str] = set()
        self._fitting = 0

    @property
    def done(self) -> bool:
        return not self.open

    def offer(self, order: Mapping[str, Any]) -> str | None:
        order_id = str(order.get("order_id") or "")
        if not order_id or order_id in self._offered or self.done:
            return None
        self._offered.add(order_id)
        path = next((p for p in self.open if fits(p, order)), None)
        if path is None:
            return None
        self._fitting += 1
        if self._fitting % self.every:
            return None
        self.open.remove(path)
        return path


@dataclass
class DemoReturn:
    path: str
    order: dict[str, Any]
    started: float
    return_id: str | None = None
    status: str | None = None
    external_id: str | None = None  # the channel's return id (Shopify gid / Amazon RMA)
    received: bool = False
    voucher: str | None = None  # the voucher's code, while its redemption is awaited
    redeeming: str | None = None  # the manual order that spends it
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.order.get("external_number") or self.order.get("external_id"))


def _tail(code: str) -> str:
    """A voucher code as narrated: only its last four characters (the code is the customer's money)."""
    return f"…{code[-4:]}"


class DemoReturns:
    """Plays the customers and the warehouse of the returns; one `tick()` every few seconds."""

    def __init__(
        self, hub_url: str, api: requests.Session, channels: DemoChannels, stop: threading.Event
    ) -> None:
        """`api`: a session that carries the operator's token."""
        self._url, self._session = hub_url, api
        self._channels, self._stop = channels, stop
        self.picker = ReturnPicker()
        self.active: list[DemoReturn] = []

    def run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception as exc:  # the demo keeps going
                log.warning("demo returns: %s", exc)

    def tick(self) -> None:
        if not self.picker.done:
            for order in self._get("/api/orders", params={"status": "COMPLETED", "limit": "20"})["orders"]:
                path = self.picker.offer(order)
                if path is not None:
                    self.active.append(DemoReturn(path, order, time.monotonic()))
                    log.info(
                        "returns: %s %s chosen to come back (%s)", order["channel"], self._name(order), path
                    )
        for ret in list(self.active):
            try:
                finished = self._advance(ret)
            except (requests.RequestException, ValueError, KeyError) as exc:  # tried again next tick
                log.debug("demo return %s (%s): %s", ret.name, ret.path, exc)
                finished = False
            if not finished and time.monotonic() - ret.started > GIVE_UP_AFTER_S:
                log.warning("returns: %s %s stuck at %s, left alone", ret.path, ret.name, ret.status or "-")
                finished = True
            if finished:
                self.active.remove(ret)

    # --- one return ---------------------------------------------------------------------------------

    def _advance(self, ret: DemoReturn) -> bool:
        """One step of `ret`; True when the demo is done with it."""
        if ret.return_id is None:
            return self._open(ret)
        if ret.redeeming is not None:
            return self._redeemed(ret)
        current = self._get(f"/api/orders/{ret.order['order_id']}/returns/{ret.return_id}")
        if current["status"] != ret.status:
            ret.status = current["status"]
            log.info("returns: %-17s %s %s", ret.path, ret.return_id, self._progress(current))
        if ret.status in _AT_WAREHOUSE and not ret.received:
            self._receive(ret)
        if ret.status == "resolved" and ret.path == VOUCHER:
            return self._spend_voucher(ret, current)
        return ret.status in _FINAL

    def _open(self, ret: DemoReturn) -> bool:
        if ret.path == SHOPIFY:
            return self._shopify(ret)
        if ret.path == AMAZON:
            return self._amazon(ret)
        order_id = ret.order["order_id"]
        answer = self._session.post(
            f"{self._url}/api/orders/{order_id}/returns",
            json=self._request(ret),
            headers={"Idempotency-Key": f"demo-return-{order_id}"},
            timeout=15,
        )
        if answer.status_code >= 500:
            raise ValueError(f"the hub answered {answer.status_code}")  # tried again with the same key
        body = answer.json()
        if answer.status_code not in (200, 201):
            log.warning("returns: %s for %s refused (%s): %s", ret.path, ret.name, answer.status_code,
                        body.get("rule") or body.get("message"))  # fmt: skip
            return True
        ret.return_id = body["return_id"]
        log.info(
            "returns: %-17s %s opened for %s %s", ret.path, ret.return_id, ret.order["channel"], ret.name
        )
        return False

    def _request(self, ret: DemoReturn) -> dict[str, Any]:
        line = ret.order["lines"][0]
        one = {"line_id": str(line["line_id"]), "quantity": 1}
        if ret.path == RESTOCK:
            return {"lines": [{**one, "reason": "changed_mind"}]}
        if ret.path == SCRAP:
            return {"lines": [{**one, "reason": "damaged"}]}
        if ret.path == VOUCHER:
            return {"lines": [{**one, "reason": "defective"}], "resolution": "voucher"}
        other = next(s for s in EXCHANGE_SKUS if s != line.get("sku"))
        return {
            "lines": [{**one, "reason": "size"}],
            "resolution": "exchange",
            # Another size at the same price: the returned unit pays for it.
            "exchange": {"lines": [{"sku": other, "quantity": 1, "unit_price": str(line["unit_price"])}]},
        }

    def _receive(self, ret: DemoReturn) -> None:
        """The parcel arrives at the demo 3PL (which knows the return once it is label_sent)."""
        desk, rid = self._channels.threepl.returns, str(ret.return_id)
        if ret.path == SCRAP:
            desk.set_outcomes(rid, {str(ret.order["lines"][0]["line_id"]): "scrap"})
        desk.receive(rid)
        ret.received = True
        log.info(
            "returns: %-17s %s parcel received at %s",
            ret.path,
            ret.return_id,
            self._channels.threepl.provider,
        )

    def _shopify(self, ret: DemoReturn) -> bool:
        """The customer asks in the shop, the merchant approves; the hub hears it by webhook."""
        shop = self._channels.shopify
        if ret.external_id is None:
            if not self._shipped_at_channel(ret):
                return False
            line = ret.order["lines"][0]
            asked = shop.request_return(
                int(ret.order["external_id"]),
                [{"line_item_id": int(line["line_id"]), "quantity": 1, "reason": "SIZE_TOO_SMALL"}],
            )
            ret.external_id = str(asked["id"])
            log.info("returns: %-17s requested in the shop for %s", ret.path, ret.name)
        if not ret.notes.get("approved"):
            shop.approve_return(ret.external_id)  # the merchant approves it in Shopify's admin
            ret.notes["approved"] = True
            log.info("returns: %-17s approved in the shop for %s", ret.path, ret.name)
        return self._channel_return_arrived(ret)

    def _amazon(self, ret: DemoReturn) -> bool:
        """The buyer returns through Amazon; the hub reads it from the returns report (its schedule)."""
        if ret.external_id is None:
            if not self._shipped_at_channel(ret):
                return False
            reports = self._channels.amazon.reports
            earlier = datetime.now(UTC) - timedelta(minutes=10)  # reports cover up to a few minutes ago
            sku = ret.order["lines"][0]["sku"]
            ret.external_id = reports.add_return(ret.order["external_id"], sku, 1, requested_at=earlier)
            log.info("returns: %-17s %s authorised by Amazon for %s", ret.path, ret.external_id, ret.name)
        return self._channel_return_arrived(ret)

    def _shipped_at_channel(self, ret: DemoReturn) -> bool:
        order = self._get(f"/api/orders/{ret.order['order_id']}")
        return any(
            p.get("kind") == "shipped" and p.get("status") == "sent" for p in order.get("publications", [])
        )

    def _channel_return_arrived(self, ret: DemoReturn) -> bool:
        order = self._get(f"/api/orders/{ret.order['order_id']}")
        channel = "shopify" if ret.path == SHOPIFY else "amazon"
        found = [r for r in order.get("returns", []) if r.get("source") == channel and "return_id" in r]
        if found:
            ret.return_id = str(found[0]["return_id"])
            log.info("returns: %-17s %s recorded by the hub", ret.path, ret.return_id)
        return False

    # --- the voucher, spent --------------------------------------------------------------------------

    def _spend_voucher(self, ret: DemoReturn, resolved: dict[str, Any]) -> bool:
        """The customer comes back and pays a new phone order with the voucher (a card for any rest)."""
        code = (resolved.get("money") or {}).get("reference")
        if not code:
            log.warning("returns: %s %s resolved without a voucher", ret.path, ret.return_id)
            return True
        voucher = self._get(f"/api/credit/vouchers/{code}")
        balance, currency = Decimal(str(voucher["balance"])), str(ret.order.get("currency") or "EUR")
        price = Decimal("12.50")
        spent = min(balance, price)
        payment: dict[str, Any] = {
            "source": "voucher",
            "credits": [{"kind": "voucher", "code": code, "amount": f"{spent:.2f}"}],
        }
        if spent < price:  # the rest by card
            from local.demo import minor

            stripe = self._channels.stripe
            intent = stripe.create_payment_intent(
                minor(price - spent, currency), currency.lower(), "pm_card_visa"
            )
            payment = {**payment, "source": "stripe", "reference": intent["id"]}
        external_id = f"VOUCHER-{ret.return_id}"
        body = {
            "store": "phone-orders",
            "external_id": external_id,
            "currency": currency,
            "placed_at": datetime.now(UTC).isoformat(),
            "shipping_address": DEMO_ADDRESS,
            "lines": [{"sku": "MUG-LOGO", "title": "Enamel mug", "quantity": 1, "unit_price": f"{price}"}],
            "totals": {"shipping": "0"},
            "payment": payment,
        }
        posted = self._session.post(f"{self._url}/api/orders", json=body, timeout=15)
        if posted.status_code != 202:
            log.warning("returns: voucher %s order refused (%s)", _tail(code), posted.status_code)
            return True
        ret.voucher, ret.redeeming = code, posted.json()["order_id"]
        log.info("returns: %-17s voucher %s (%s %s) spent on new order %s", ret.path, _tail(code), balance,
                 currency, external_id)  # fmt: skip
        return False

    def _redeemed(self, ret: DemoReturn) -> bool:
        assert ret.voucher is not None
        voucher = self._get(f"/api/credit/vouchers/{ret.voucher}")
        if not any(m.get("kind") == "redeem" for m in voucher.get("movements", [])):
            return False
        log.info(
            "returns: %-17s voucher %s redeemed, balance %s", ret.path, _tail(ret.voucher), voucher["balance"]
        )
        return True

    # --- helpers --------------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        answer = self._session.get(f"{self._url}{path}", params=params, timeout=15)
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        return body

    @staticmethod
    def _name(order: Mapping[str, Any]) -> str:
        return str(order.get("external_number") or order.get("external_id"))

    @staticmethod
    def _progress(ret: Mapping[str, Any]) -> str:
        status = str(ret.get("status"))
        money = ret.get("money") or {}
        if status == "resolved":
            extra = f" → replacement {ret['exchange_order_id']}" if ret.get("exchange_order_id") else ""
            outcomes = ",".join(sorted({u.get("outcome", "?") for u in ret.get("inspected", [])}))
            return f"resolved: {money.get('total')} by {money.get('method')} (inspected {outcomes}){extra}"
        if status in ("rejected", "expired"):
            return f"{status}: {(ret.get('refusal') or {}).get('rule') or ret.get('flags')}"
        if status == "label_sent" and ret.get("label"):
            return f"label_sent ({ret['label'].get('carrier')})"
        return status
