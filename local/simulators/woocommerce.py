"""A local WooCommerce store: in-memory orders, webhooks delivered as core delivers them, REST v3 reads and
the writes the hub publishes with (order status, order notes, refunds)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Unpack
from urllib.parse import parse_qs, urlsplit

import requests

from local.simulators.kit import (
    FaultQueue,
    Knobs,
    Outbox,
    Reply,
    Request,
    SimulatorServer,
    base64_hmac_sha256,
)

log = logging.getLogger("local.simulators.woocommerce")

WC_VERSION = "9.4.2"
WP_VERSION = "6.7.1"
USER_AGENT = f"WooCommerce/{WC_VERSION} Hookshot (WordPress/{WP_VERSION})"
TOPICS = ("order.created", "order.updated", "order.deleted", "order.restored")
ORDER_STATUSES = frozenset(
    {"pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed"}
)
# Default of the woocommerce_max_webhook_delivery_failures filter; core disables once the count exceeds it.
MAX_DELIVERY_FAILURES = 5
_API = "/wp-json/wc/v3"
_ORDER_PATH = re.compile(r"/wp-json/wc/v3/orders/([0-9]+)")
_SUB_PATH = re.compile(r"/wp-json/wc/v3/orders/([0-9]+)/(notes|refunds)")
_EDITABLE = frozenset({"POST", "PUT", "PATCH"})  # WP_REST_Server::EDITABLE
# wc_get_order_status_name(), as the "Order status changed from … to …." note spells them.
_STATUS_NAMES = {
    "pending": "Pending payment",
    "processing": "Processing",
    "on-hold": "On hold",
    "completed": "Completed",
    "cancelled": "Cancelled",
    "refunded": "Refunded",
    "failed": "Failed",
}
# Gateways whose can_refund_order() is true: api_refund=true goes through them; the others cannot refund.
_REFUNDING_GATEWAYS = frozenset({"stripe", "ppcp-gateway"})
# (code, message) WordPress answers an anonymous request with, per route kind.
_ANONYMOUS = {
    "list": ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources."),
    "read": ("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."),
    "update": ("woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource."),
    "create": ("woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources."),
}


@dataclass
class Webhook:
    """One WooCommerce webhook: core registers one per topic, each with its own id, status and failures."""

    webhook_id: int
    topic: str
    delivery_url: str
    status: str = "active"  # active | paused | disabled (disabled = switched off by failures)
    failure_count: int = 0


@dataclass(frozen=True)
class Delivery:
    """One attempt (or a drop) as the simulator made it, for tests and the demo to inspect."""

    webhook_id: int
    topic: str
    order_id: int
    delivery_id: str
    headers: dict[str, str]
    body: bytes
    outcome: str  # delivered | failed | dropped
    status_code: int | None = None
    error: str | None = None
    duplicate: bool = False


@dataclass
class _Attempt:
    hook: Webhook
    order_id: int
    url: str
    delivery_id: str
    headers: dict[str, str]
    body: bytes
    drop: bool
    duplicate: bool


@dataclass
class _Stored:
    data: dict[str, Any]
    status_before_trash: str | None = None
    notes: list[dict[str, Any]] = field(default_factory=list)  # newest first, as the API lists them
    refunds: list[dict[str, Any]] = field(default_factory=list)  # the refund resources, newest first


@dataclass(frozen=True)
class _Market:
    country: str
    currency: str
    symbol: str
    prices_include_tax: bool
    tax_rate: Decimal
    tax_rate_id: int
    rate_code: str
    tax_label: str
    tax_shipping: bool
    people: tuple[tuple[str, str], ...]
    addresses: tuple[tuple[str, str, str, str], ...]  # address_1, city, state, postcode
    phone: str


_MARKETS = (
    _Market(
        "US", "USD", "$", False, Decimal("0.0725"), 75, "US-CA-STATE TAX-1", "State Tax", False,
        (("John", "Doe"), ("María", "García"), ("Chloé", "Nguyen")),
        (("969 Market", "San Francisco", "CA", "94103"), ("1 Ferry Bldg", "San Francisco", "CA", "94111")),
        "(415) 555-{:04d}",
    ),
    _Market(
        "GB", "GBP", "£", True, Decimal("0.20"), 12, "GB-VAT-1", "VAT", True,
        (("Siobhán", "O'Connor"), ("Oliver", "Smith")),
        (("221B Baker Street", "London", "", "NW1 6XE"),),
        "+44 20 7946 {:04d}",
    ),
    _Market(
        "DE", "EUR", "€", True, Decimal("0.19"), 21, "DE-MWST-1", "MwSt.", True,
        (("Jürgen", "Weiß"), ("Zoë", "Müller")),
        (("Königstraße 12", "Stuttgart", "", "70173"),),
        "+49 711 {:06d}",
    ),
    _Market(
        "FR", "EUR", "€", True, Decimal("0.20"), 22, "FR-TVA-1", "TVA", True,
        (("Éloïse", "Lefèvre"), ("François", "Dupont")),
        (("8 Rue de l'Église", "Lyon", "", "69002"),),
        "+33 4 78 {:06d}",
    ),
    _Market(
        "JP", "JPY", "¥", True, Decimal("0.10"), 31, "JP-CT-1", "消費税", True,
        (("太郎", "山田"), ("花子", "佐藤")),
        (("千代田1-1", "千代田区", "JP13", "100-0001"),),
        "03-5555-{:04d}",
    ),
)  # fmt: skip

# (product_id, variation_id, name as WordPress stores it, sku, prices as the shop shows them per currency)
_Product = tuple[int, int, str, str, dict[str, str]]
_CATALOGUE: tuple[_Product, ...] = (
    (93, 0, "Woo Single #1", "WOO-SINGLE-1", {"USD": "3.00", "GBP": "2.50", "EUR": "2.90", "JPY": "450"}),
    (22, 23, "Ship Your Idea &ndash; Color: Black, Size: M", "SYI-BLK-M",
     {"USD": "12.00", "GBP": "10.00", "EUR": "11.90", "JPY": "1800"}),
    (31, 0, "Café Crème Mug", "MUG-CAFE", {"USD": "14.50", "GBP": "12.00", "EUR": "13.90", "JPY": "2200"}),
    (47, 0, "抹茶 Matcha 100g", "MATCHA-100",
     {"USD": "24.00", "GBP": "19.99", "EUR": "22.50", "JPY": "3300"}),
    (58, 61, "Hoodie &ndash; Größe L", "HOOD-L",
     {"USD": "45.00", "GBP": "39.00", "EUR": "42.00", "JPY": "6800"}),
    (72, 0, "Beanie", "", {"USD": "9.99", "GBP": "8.00", "EUR": "9.50", "JPY": "1500"}),
)  # fmt: skip

# (method_id, instance_id, title, cost excluding tax per currency)
_Method = tuple[str, int, str, dict[str, str]]
_SHIPPING: tuple[_Method, ...] = (
    ("flat_rate", 1, "Flat rate", {"USD": "10.00", "GBP": "3.95", "EUR": "4.90", "JPY": "700"}),
    ("flat_rate", 3, "Express", {"USD": "24.00", "GBP": "8.95", "EUR": "9.90", "JPY": "1500"}),
    ("free_shipping", 2, "Free shipping", {"USD": "0", "GBP": "0", "EUR": "0", "JPY": "0"}),
)
_GIFT_WRAP = {"USD": "4.00", "GBP": "3.00", "EUR": "3.50", "JPY": "500"}
# method → (title, status the gateway leaves a fresh order in)
_GATEWAYS = {
    "stripe": ("Credit Card (Stripe)", "processing"),
    "ppcp-gateway": ("PayPal", "processing"),
    "bacs": ("Direct bank transfer", "on-hold"),
    "cod": ("Cash on delivery", "processing"),
}
_GENERATION_KEYS = frozenset(
    (
        "id",
        "currency",
        "status",
        "payment_method",
        "item_count",
        "coupon_percent",
        "shipping_line_count",
        "fee",
    )
)


def wp_json_encode(value: Any) -> bytes:
    """PHP json_encode's default output: compact, non-ASCII as \\uXXXX and "/" escaped as "\\/"."""
    # "/" never appears outside a string in JSON, so replacing it everywhere only touches strings.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode("ascii")


def _wp_specialchars_decode(text: str) -> str:
    table = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#039;": "'", "&#x27;": "'"}
    return re.sub("|".join(map(re.escape, table)), lambda m: table[m.group(0)], text)


def _q(amount: Decimal, dp: int) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-dp), rounding=ROUND_HALF_UP)  # PHP round() is half-up


def _s(amount: Decimal, dp: int) -> str:
    return f"{_q(amount, dp):f}"


def _plain(amount: Decimal) -> str:
    # wc_format_decimal without a precision trims trailing zeros ("0.9" in the per-rate taxes arrays).
    text = f"{amount:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _error(code: str, message: str, status: int, **data: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "data": {"status": status, **data}}


class WooCommerceSimulator(SimulatorServer):
    """An in-memory WooCommerce store that sends webhooks and answers REST v3 order reads like the real one.

    Delivery is modelled on core: each topic is a webhook of its own; an action schedules one async
    delivery per webhook and order unless one is already pending, and the body is built when it is sent
    (so quick updates collapse into one delivery of the latest state); 200–302 is success, anything else
    increments failure_count with no retry, and the webhook is disabled once that count exceeds 5.

    REST writes as the hub publishes them: `PUT /orders/{id}` (status; order.updated on a change, with
    core's "Order status changed" note), `GET|POST /orders/{id}/notes` (no webhook), `GET|POST
    /orders/{id}/refunds` (order.updated; over the refundable amount, or api_refund through a gateway
    that cannot refund, a 500 `woocommerce_rest_cannot_create_order_refund` as core answers). Knobs:
    `fail_writes(n, status, retry_after)`; inspection: `notes()`, `status()`, `refunds()`.
    """

    def __init__(
        self,
        site_url: str,
        webhook_secret: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        webhook_url: str | None = None,
        drop_rate: float = 0.0,
        reorder_rate: float = 0.0,
        delivery_delay: float = 0.02,
        timeout: float = 60.0,
        site_utc_offset: timedelta = timedelta(hours=-3),
        clock: Callable[[], datetime] | None = None,
        **knobs: Unpack[Knobs],
    ) -> None:
        super().__init__(name="woocommerce-api", log=log, server_version="Apache", **knobs)
        self.site_url = site_url.rstrip("/") + "/"
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        # Core may hold the secret HTML-escaped and signs with wp_specialchars_decode() of it.
        self._stored_secret = (
            webhook_secret.replace("&", "&amp;").replace('"', "&quot;").replace("'", "&#039;")
        )
        self.drop_rate = drop_rate
        self.reorder_rate = reorder_rate
        self.delivery_delay = delivery_delay
        self.timeout = timeout  # core waits 60 s
        self.site_utc_offset = site_utc_offset
        self._clock = clock or (lambda: datetime.now(UTC))
        self._salt = secrets.token_bytes(32)  # stands in for wp_salt() in wp_hash()
        self._cond = threading.Condition(threading.RLock())
        self._orders: dict[int, _Stored] = {}
        self._hooks: dict[str, Webhook] = {}
        # Scheduled deliveries, one per (webhook id, order id) at a time, as Action Scheduler holds them.
        self._outbox: Outbox[tuple[int, int]] = self._run(
            Outbox(self._deliver, name="woocommerce-webhooks", cond=self._cond, join_timeout=5)
        )
        self._next_post_id = 1000 + self._rng.randint(0, 500)
        self._next_item_id = 10 * self._next_post_id
        # Product stock as wc_restock_refunded_items() moves it (a managed stock of 100 until moved).
        self.stock: dict[int, int] = {}
        self._deliveries: list[Delivery] = []
        self._next_note_id = 100 + self._rng.randint(0, 50)  # comments have an id sequence of their own
        self._write_failures = FaultQueue()  # answers for the next REST writes
        if webhook_url:
            self.set_webhook_url(webhook_url)

    def _reply(self, request: Request) -> Reply:
        status, payload, headers = self.handle_api(
            request.method, request.target, request.headers.get("authorization"), request.body
        )
        return Reply(
            status, wp_json_encode(payload), {"Content-Type": "application/json; charset=UTF-8", **headers}
        )

    # ----- webhooks ----------------------------------------------------------------------------------

    def set_webhook_url(self, url: str) -> None:
        """Point every order webhook at `url`, creating them (active, ids 1–4) on first use."""
        with self._cond:
            for number, topic in enumerate(TOPICS, start=1):
                hook = self._hooks.setdefault(
                    topic, Webhook(webhook_id=number, topic=topic, delivery_url=url)
                )
                hook.delivery_url = url

    def webhook(self, topic: str) -> Webhook:
        with self._cond:
            return dataclasses.replace(self._hooks[topic])

    def set_webhook_status(self, topic: str, status: str) -> None:
        if status not in ("active", "paused", "disabled"):
            raise ValueError(f"not a webhook status: {status!r}")
        with self._cond:
            hook = self._hooks[topic]
            if status == "active" and hook.status != "active":
                hook.failure_count = 0  # as when an admin switches a disabled webhook back on
            hook.status = status

    def send_ping(self, topic: str = "order.created") -> bool:
        """POST the creation ping (form-encoded `webhook_id=<id>`, unsigned); True only for exactly 200."""
        hook = self.webhook(topic)
        try:
            response = requests.post(
                hook.delivery_url,
                data=f"webhook_id={hook.webhook_id}",
                headers={"User-Agent": USER_AGENT, "Content-Type": "application/x-www-form-urlencoded"},
                timeout=5,  # wp_safe_remote_post's default
                allow_redirects=False,
            )
        except requests.RequestException:
            return False
        return response.status_code == 200

    @property
    def deliveries(self) -> list[Delivery]:
        with self._cond:
            return list(self._deliveries)

    def pause_deliveries(self) -> None:
        """Hold every scheduled delivery (Action Scheduler has not run yet); new actions still collapse."""
        self._outbox.pause()

    def resume_deliveries(self) -> None:
        self._outbox.resume()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every scheduled delivery has been attempted; False if that did not happen in time."""
        return self._outbox.flush(timeout)

    # ----- REST write knobs and inspection -------------------------------------------------------------

    def fail_writes(self, n: int, status: int, retry_after: float | None = None) -> None:
        """Answer the next `n` REST writes (POST/PUT/PATCH) with `status` instead of doing them:
        429 as a rate-limiting host does (with `Retry-After` when given), 5xx as a PHP fatal error does."""
        if n < 0 or not 400 <= status <= 599:
            raise ValueError("fail_writes needs n >= 0 and a 4xx or 5xx status")
        self._write_failures.add(n, status, retry_after=retry_after)

    def notes(self, order_id: int) -> list[dict[str, Any]]:
        """The order's notes as `GET …/notes` lists them (newest first, system notes included)."""
        with self._cond:
            stored = self._stored(order_id)
            return [self._render_note(stored, note) for note in stored.notes]

    def status(self, order_id: int) -> str:
        with self._cond:
            return str(self._stored(order_id).data["status"])

    def refunds(self, order_id: int) -> list[dict[str, Any]]:
        """The order's refund resources as `GET …/refunds` lists them (newest first)."""
        with self._cond:
            stored = self._stored(order_id)
            return [self._render_refund(stored, refund) for refund in stored.refunds]

    # ----- store actions -------------------------------------------------------------------------------

    def create_order(self, **overrides: Any) -> dict[str, Any]:
        """Place an order as checkout does: order.created, then order.updated once a gateway moved it on.

        Generation knobs: id, currency (USD, GBP, EUR, JPY), status, payment_method (stripe,
        ppcp-gateway, bacs, cod), item_count, coupon_percent, shipping_line_count, fee. Any other key
        replaces that top-level field of the generated order verbatim.
        """
        knobs = {k: v for k, v in overrides.items() if k in _GENERATION_KEYS}
        fields = {k: v for k, v in overrides.items() if k not in _GENERATION_KEYS}
        with self._cond:
            stored = _Stored(self._generate(knobs))
            stored.data.update(deepcopy(fields))
            order_id = int(stored.data["id"])
            if order_id in self._orders:
                raise ValueError(f"order {order_id} already exists")
            self._orders[order_id] = stored
            status = str(knobs.get("status") or _GATEWAYS[stored.data["payment_method"]][1])
            self._schedule("order.created", order_id)
            if status != "pending":
                # The gateway's payment_complete()/on-hold step saves the order again in the same request.
                self._set_status(stored, status)
                self._schedule("order.updated", order_id)
            return self._render(stored)

    def get_order(self, order_id: int) -> dict[str, Any]:
        with self._cond:
            return self._render(self._stored(order_id))

    def update_status(self, order_id: int, status: str) -> dict[str, Any]:
        status = status.removeprefix("wc-")
        if status not in ORDER_STATUSES:
            raise ValueError(f"not a WooCommerce order status: {status!r}")
        with self._cond:
            stored = self._stored(order_id)
            if stored.data["status"] != status:
                self._set_status(stored, status)
                self._touch(stored)
                self._schedule("order.updated", order_id)
            return self._render(stored)

    def edit_quietly(self, order_id: int, **fields: Any) -> dict[str, Any]:
        """A change written straight to the database (SQL, a plugin's `update_post_meta`): the given
        top-level fields change, `date_modified` does not, and no webhook is sent."""
        with self._cond:
            stored = self._stored(order_id)
            stored.data.update(deepcopy(fields))
            return self._render(stored)

    def attach_stripe_intent(self, order_id: int, intent_id: str, status: str = "on-hold") -> dict[str, Any]:
        """What WooCommerce Stripe Gateway does once the PaymentIntent is confirmed with manual capture:
        `_stripe_intent_id` kept in the order's meta, the order put on-hold, saved (order.updated)."""
        with self._cond:
            stored = self._stored(order_id)
            meta = [m for m in stored.data.get("meta_data", []) if m.get("key") != "_stripe_intent_id"]
            next_id = 1 + max((int(m.get("id", 0)) for m in meta), default=0)
            meta.append({"id": next_id, "key": "_stripe_intent_id", "value": intent_id})
            stored.data["meta_data"] = meta
            if stored.data["status"] != status:
                self._set_status(stored, status)
            self._touch(stored)
            self._schedule("order.updated", order_id)
            return self._render(stored)

    def refund_order(
        self, order_id: int, amount: str | Decimal, line_item_ids: list[int] | None = None, reason: str = ""
    ) -> dict[str, Any]:
        """wc_create_refund(): a refund object, the order's date_modified bumped, then order.updated.

        The listed items are recorded as refunded in full quantity; the amount is the refund's own."""
        with self._cond:
            stored = self._stored(order_id)
            items = {int(i["id"]): i for i in self._items(stored)}
            unknown = set(line_item_ids or ()) - set(items)
            if unknown:
                raise ValueError(f"not items of order {order_id}: {sorted(unknown)}")
            rows = [{"id": i, "quantity": int(items[i].get("quantity") or 1)} for i in line_item_ids or ()]
            return self._create_refund(stored, Decimal(str(amount)), reason, rows, refunded_payment=False)

    def delete_order(self, order_id: int, *, force: bool = False) -> None:
        """Trash the order (order.deleted carries only its id); force deletes it for good, firing nothing."""
        with self._cond:
            stored = self._stored(order_id)
            if force:
                del self._orders[order_id]
                return
            if stored.data["status"] == "trash":
                return
            stored.status_before_trash = stored.data["status"]
            stored.data["status"] = "trash"
            self._touch(stored)
            self._schedule("order.deleted", order_id)

    def restore_order(self, order_id: int) -> dict[str, Any]:
        with self._cond:
            stored = self._stored(order_id)
            if stored.data["status"] != "trash":
                raise ValueError(f"order {order_id} is not in the trash")
            stored.data["status"] = stored.status_before_trash or "pending"
            stored.status_before_trash = None
            self._touch(stored)
            self._schedule("order.restored", order_id)
            return self._render(stored)

    # ----- store internals (call with the lock held) -------------------------------------------------

    def _stored(self, order_id: int) -> _Stored:
        try:
            return self._orders[int(order_id)]
        except KeyError:
            raise ValueError(f"Invalid ID: no order {order_id}") from None

    def _now(self) -> tuple[str, str]:
        gmt = self._clock().astimezone(UTC).replace(microsecond=0, tzinfo=None)
        return (gmt + self.site_utc_offset).isoformat(), gmt.isoformat()

    def _touch(self, stored: _Stored) -> None:
        stored.data["date_modified"], stored.data["date_modified_gmt"] = self._now()

    def _items(self, stored: _Stored) -> list[dict[str, Any]]:
        return [i for key in ("line_items", "shipping_lines", "fee_lines") for i in stored.data[key]]

    def _create_refund(
        self,
        stored: _Stored,
        amount: Decimal,
        reason: str,
        rows: list[dict[str, Any]],
        *,
        refunded_payment: bool,
    ) -> dict[str, Any]:
        """wc_create_refund() for a valid request; ValueError("Invalid refund amount.") as core throws."""
        dp = self._dp(stored)
        value = _q(amount, dp)
        if value <= 0 or value > self._remaining(stored):
            raise ValueError("Invalid refund amount.")
        refund = self._add_refund(stored, value, reason, rows, refunded_payment=refunded_payment)
        if self._remaining(stored) == 0 and stored.data["status"] != "refunded":
            # woocommerce_order_fully_refunded_status, with the status change note core adds
            self._note_status_change(stored, str(stored.data["status"]), "refunded")
            stored.data["status"] = "refunded"
        self._touch(stored)
        self._schedule("order.updated", int(stored.data["id"]))
        return self._render_refund(stored, refund)

    def _restock(self, stored: _Stored, rows: list[dict[str, Any]]) -> None:
        """wc_restock_refunded_items(): each refunded product line's quantity back to stock, with the
        order note core writes for it."""
        items = {int(i["id"]): i for i in stored.data["line_items"]}
        for row in rows:
            item, quantity = items.get(int(row["id"])), int(row.get("quantity") or 0)
            if item is None or quantity <= 0 or not item.get("product_id"):
                continue
            product = int(item["variation_id"] or item["product_id"])
            old = self.stock.get(product, 100)
            self.stock[product] = old + quantity
            self._add_note(
                stored,
                f"Item #{product} stock increased from {old} to {old + quantity}.",
                customer_note=False,
            )

    def _add_note(
        self, stored: _Stored, text: str, *, customer_note: bool, author: str = "system"
    ) -> dict[str, Any]:
        self._next_note_id += 1
        local, gmt = self._now()
        note = {
            "id": self._next_note_id,
            "author": author,
            "date_created": local,
            "date_created_gmt": gmt,
            "note": text,
            "customer_note": customer_note,
        }
        stored.notes.insert(0, note)
        return note

    def _note_status_change(self, stored: _Stored, old: str, new: str) -> None:
        if old != new:
            names = (_STATUS_NAMES.get(old, old), _STATUS_NAMES.get(new, new))
            self._add_note(stored, "Order status changed from {} to {}.".format(*names), customer_note=False)

    def _dp(self, stored: _Stored) -> int:
        return 0 if stored.data["currency"] == "JPY" else 2

    def _remaining(self, stored: _Stored) -> Decimal:
        refunded = sum((abs(Decimal(r["total"])) for r in stored.data["refunds"]), Decimal(0))
        return Decimal(stored.data["total"]) - refunded

    def _post_id(self) -> int:
        # Orders and refunds share one id sequence with every other post, so ids have gaps.
        self._next_post_id += self._rng.randint(1, 4)
        return self._next_post_id

    def _item_id(self) -> int:
        self._next_item_id += 1
        return self._next_item_id

    def _set_status(self, stored: _Stored, status: str) -> None:
        data = stored.data
        self._note_status_change(stored, str(data["status"]), status)
        data["status"] = status
        local, gmt = self._now()
        if status in ("processing", "completed") and not data["date_paid_gmt"]:
            data["date_paid"], data["date_paid_gmt"] = local, gmt  # maybe_set_date_paid()
            if data["payment_method"] in ("stripe", "ppcp-gateway") and not data["transaction_id"]:
                data["transaction_id"] = self._transaction_id(data["payment_method"])
        if status == "completed":
            data["date_completed"], data["date_completed_gmt"] = local, gmt
        data["needs_payment"] = status in ("pending", "failed")
        data["is_editable"] = status in ("pending", "on-hold", "auto-draft")
        if status == "refunded" and self._remaining(stored) > 0:
            # wc_order_fully_refunded(): setting the status by hand records a refund of what is left.
            self._add_refund(
                stored, self._remaining(stored), "Order fully refunded.", [], refunded_payment=False
            )

    def _add_refund(
        self,
        stored: _Stored,
        amount: Decimal,
        reason: str,
        rows: list[dict[str, Any]],
        *,
        refunded_payment: bool,
    ) -> dict[str, Any]:
        refund_id = self._post_id()
        dp = self._dp(stored)
        stored.data["refunds"].insert(0, {"id": refund_id, "reason": reason, "total": "-" + _s(amount, dp)})
        items = {int(i["id"]): i for i in self._items(stored)}
        local, gmt = self._now()
        refund = {
            "id": refund_id,
            "date_created": local,
            "date_created_gmt": gmt,
            "amount": _s(amount, dp),
            "reason": reason,
            "refunded_by": 1,
            "refunded_payment": refunded_payment,
            "meta_data": [],
            "line_items": [self._refund_line(items[int(row["id"])], row, dp) for row in rows],
        }
        stored.refunds.insert(0, refund)
        return refund

    def _refund_line(self, item: Mapping[str, Any], row: Mapping[str, Any], dp: int) -> dict[str, Any]:
        # A refund's items are negative copies of the order's, pointing back through _refunded_item_id.
        quantity = int(row.get("quantity") or 0)
        total = _q(_decimal(row.get("refund_total")), dp)
        tax = sum((_decimal(t.get("refund_total")) for t in row.get("refund_tax") or []), Decimal(0))
        line_id = self._item_id()
        return {
            "id": line_id,
            "name": item.get("name") or item.get("method_title"),
            "product_id": item.get("product_id", 0),
            "variation_id": item.get("variation_id", 0),
            "quantity": -quantity,
            "tax_class": "",
            "subtotal": _s(-total, dp),
            "subtotal_tax": _s(-tax, dp),
            "total": _s(-total, dp),
            "total_tax": _s(-tax, dp),
            "taxes": [],
            "meta_data": [{"id": line_id + 1, "key": "_refunded_item_id", "value": str(item["id"])}],
            "sku": item.get("sku", ""),
            "price": float(-total / quantity) if quantity else 0.0,
        }

    def _render(self, stored: _Stored) -> dict[str, Any]:
        data = deepcopy(stored.data)
        base = f"{self.site_url}wp-json/wc/v3/orders"
        data["_links"] = {"self": [{"href": f"{base}/{data['id']}"}], "collection": [{"href": base}]}
        return data

    def _render_child(self, stored: _Stored, kind: str, child: Mapping[str, Any]) -> dict[str, Any]:
        data = deepcopy(dict(child))
        order = f"{self.site_url}wp-json/wc/v3/orders/{stored.data['id']}"
        data["_links"] = {
            "self": [{"href": f"{order}/{kind}/{child['id']}"}],
            "collection": [{"href": f"{order}/{kind}"}],
            "up": [{"href": order}],
        }
        return data

    def _render_note(self, stored: _Stored, note: Mapping[str, Any]) -> dict[str, Any]:
        return self._render_child(stored, "notes", note)

    def _render_refund(self, stored: _Stored, refund: Mapping[str, Any]) -> dict[str, Any]:
        return self._render_child(stored, "refunds", refund)

    def _transaction_id(self, method: str) -> str:
        alphabet = string.ascii_letters + string.digits
        if method == "stripe":
            return "pi_3" + "".join(self._rng.choice(alphabet) for _ in range(23))
        return "".join(self._rng.choice(string.ascii_uppercase + string.digits) for _ in range(17))

    # ----- order generation ---------------------------------------------------------------------------

    def _generate(self, knobs: Mapping[str, Any]) -> dict[str, Any]:
        rng = self._rng
        currency = knobs.get("currency")
        markets = [m for m in _MARKETS if currency is None or m.currency == currency]
        if not markets:
            raise ValueError(f"the simulated store does not sell in {currency!r}")
        market = rng.choice(markets)
        method = str(knobs.get("payment_method") or rng.choice(tuple(_GATEWAYS)))
        if method not in _GATEWAYS:
            raise ValueError(f"the simulated store has no gateway {method!r}")
        dp = 0 if market.currency == "JPY" else 2
        coupon = Decimal(knobs.get("coupon_percent", rng.choice((0, 0, 0, 10, 15))))
        products = rng.sample(_CATALOGUE, int(knobs.get("item_count", rng.choice((1, 1, 2, 3)))))
        lines = [self._line(p, rng.choice((1, 1, 1, 2, 3)), market, dp, coupon) for p in products]
        ship_count = int(knobs.get("shipping_line_count", rng.choices((0, 1, 2), weights=(1, 7, 2))[0]))
        shipping = [self._shipping_line(s, market, dp) for s in rng.sample(_SHIPPING, ship_count)]
        fees = [self._fee_line(market, dp)] if knobs.get("fee", rng.random() < 0.1) else []

        # The order-level figures are sums of the items', as WC_Abstract_Order::calculate_totals() makes them.
        def sum_of(rows: list[dict[str, Any]], key: str) -> Decimal:
            return sum((Decimal(r[key]) for r in rows), Decimal(0))

        cart_tax = sum_of(lines, "total_tax") + sum_of(fees, "total_tax")
        shipping_tax = sum_of(shipping, "total_tax")
        discount = sum_of(lines, "subtotal") - sum_of(lines, "total")
        discount_tax = sum_of(lines, "subtotal_tax") - sum_of(lines, "total_tax")
        items_total = sum_of(lines, "total") + sum_of(fees, "total") + sum_of(shipping, "total")
        order_id = int(knobs.get("id") or self._post_id())
        local, gmt = self._now()
        coupons = [
            {
                "id": self._item_id(),
                "code": f"save{coupon}",
                "discount": _s(discount, dp),
                "discount_tax": _s(discount_tax, dp),
                "discount_type": "percent",
                "nominal_amount": int(coupon),
                "free_shipping": False,
                "meta_data": [],
            }
        ]
        tax_line = {
            "id": self._item_id(),
            "rate_code": market.rate_code,
            "rate_id": market.tax_rate_id,
            "label": market.tax_label,
            "compound": False,
            "tax_total": _s(cart_tax, dp),
            "shipping_tax_total": _s(shipping_tax, dp),
            "rate_percent": float(market.tax_rate * 100),
            "meta_data": [],
        }
        billing, shipping_address = self._addresses(market, has_shipping=bool(shipping))
        return {
            "id": order_id,
            "parent_id": 0,
            "status": "pending",
            "currency": market.currency,
            "version": WC_VERSION,
            "prices_include_tax": market.prices_include_tax,
            "date_created": local,
            "date_modified": local,
            "discount_total": _s(discount, dp),
            "discount_tax": _s(discount_tax, dp),
            "shipping_total": _s(sum_of(shipping, "total"), dp),
            "shipping_tax": _s(shipping_tax, dp),
            "cart_tax": _s(cart_tax, dp),
            "total": _s(items_total + cart_tax + shipping_tax, dp),
            "total_tax": _s(cart_tax + shipping_tax, dp),
            "customer_id": rng.choice((0, rng.randint(2, 400))),
            "order_key": "wc_order_" + "".join(rng.choice(string.ascii_letters) for _ in range(13)),
            "billing": billing,
            "shipping": shipping_address,
            "payment_method": method,
            "payment_method_title": _GATEWAYS[method][0],
            "transaction_id": "",
            "customer_ip_address": f"203.0.113.{rng.randint(1, 254)}",
            "customer_user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15",
            "created_via": "checkout",
            "customer_note": "",
            "date_completed": None,
            "date_paid": None,
            "cart_hash": hashlib.md5(str(order_id).encode(), usedforsecurity=False).hexdigest(),
            "number": str(order_id),
            "meta_data": [],
            "line_items": lines,
            "tax_lines": [tax_line],
            "shipping_lines": shipping,
            "fee_lines": fees,
            "coupon_lines": coupons if coupon else [],
            "refunds": [],
            "payment_url": f"{self.site_url}checkout/order-pay/{order_id}/",
            "is_editable": True,
            "needs_payment": True,
            "needs_processing": True,
            "date_created_gmt": gmt,
            "date_modified_gmt": gmt,
            "date_completed_gmt": None,
            "date_paid_gmt": None,
            "currency_symbol": market.symbol,
        }

    def _addresses(self, market: _Market, *, has_shipping: bool) -> tuple[dict[str, str], dict[str, str]]:
        first, last = self._rng.choice(market.people)
        street, city, state, postcode = self._rng.choice(market.addresses)
        address = {
            "first_name": first,
            "last_name": last,
            "company": "",
            "address_1": street,
            "address_2": "",
            "city": city,
            "state": state,
            "postcode": postcode,
            "country": market.country,
        }
        billing = {
            **address,
            "email": f"customer{self._rng.randint(100, 999)}@example.com",
            "phone": market.phone.format(self._rng.randint(0, 9999)),
        }
        # Without anything to ship (local pickup, virtual goods) WooCommerce sends every field empty.
        shipping = {**address, "phone": ""} if has_shipping else dict.fromkeys((*address, "phone"), "")
        return billing, shipping

    def _line(self, product: _Product, qty: int, market: _Market, dp: int, coupon: Decimal) -> dict[str, Any]:
        product_id, variation_id, name, sku, prices = product
        rate = market.tax_rate
        gross = Decimal(prices[market.currency]) * qty  # as the shop shows it
        discounted = _q(gross * (100 - coupon) / 100, dp)
        if market.prices_include_tax:
            subtotal, total = _q(gross / (1 + rate), dp), _q(discounted / (1 + rate), dp)
            subtotal_tax, total_tax = gross - subtotal, discounted - total
        else:
            subtotal, total = gross, discounted
            subtotal_tax, total_tax = _q(gross * rate, dp), _q(discounted * rate, dp)
        return {
            "id": self._item_id(),
            "name": name,
            "product_id": product_id,
            "variation_id": variation_id,
            "quantity": qty,
            "tax_class": "",
            "subtotal": _s(subtotal, dp),
            "subtotal_tax": _s(subtotal_tax, dp),
            "total": _s(total, dp),
            "total_tax": _s(total_tax, dp),
            "taxes": [
                {"id": market.tax_rate_id, "total": _plain(total_tax), "subtotal": _plain(subtotal_tax)}
            ],
            "meta_data": [],
            "sku": sku,
            "price": float(subtotal / qty),  # a float, as WooCommerce sends it: never to be used for money
            "image": {"id": product_id + 100, "src": f"{self.site_url}wp-content/uploads/{product_id}.jpg"},
            "parent_name": None,
        }

    def _shipping_line(self, method: _Method, market: _Market, dp: int) -> dict[str, Any]:
        method_id, instance_id, title, costs = method
        cost = Decimal(costs[market.currency])  # shipping costs are entered excluding tax
        tax = _q(cost * market.tax_rate, dp) if market.tax_shipping else Decimal(0)
        return {
            "id": self._item_id(),
            "method_title": title,
            "method_id": method_id,
            "instance_id": str(instance_id),
            "total": _s(cost, dp),
            "total_tax": _s(tax, dp),
            "taxes": [{"id": market.tax_rate_id, "total": _plain(tax), "subtotal": ""}] if tax else [],
            "meta_data": [],
        }

    def _fee_line(self, market: _Market, dp: int) -> dict[str, Any]:
        amount = Decimal(_GIFT_WRAP[market.currency])
        tax = _q(amount * market.tax_rate, dp)
        return {
            "id": self._item_id(),
            "name": "Gift wrapping",
            "tax_class": "",
            "tax_status": "taxable",
            "amount": _plain(amount),
            "total": _s(amount, dp),
            "total_tax": _s(tax, dp),
            "taxes": [{"id": market.tax_rate_id, "total": _plain(tax), "subtotal": ""}],
            "meta_data": [],
        }

    # ----- webhook delivery ----------------------------------------------------------------------------

    def _schedule(self, topic: str, order_id: int) -> None:
        hook = self._hooks.get(topic)
        if hook is None or hook.status != "active":
            return
        job = (hook.webhook_id, order_id)
        if self._outbox.waiting(job):
            return  # core schedules no second action while one for this webhook and resource is pending
        delay = self.delivery_delay
        if self.reorder_rate and self._rng.random() < self.reorder_rate:
            delay += 0.2  # a slower runner: later actions overtake this one
        self._outbox.put(job, time.monotonic() + delay, key=job)

    def _deliver(self, job: tuple[int, int]) -> None:
        with self._cond:
            attempt = self._prepare(job)
        self._attempt(attempt)

    def _prepare(self, job: tuple[int, int]) -> _Attempt:
        webhook_id, order_id = job
        hook = next(h for h in self._hooks.values() if h.webhook_id == webhook_id)
        stored = self._orders.get(order_id)
        payload: dict[str, Any]
        if hook.topic == "order.deleted":
            payload = {"id": order_id}  # build_payload(): a deleted resource is only its id
        elif stored is None:
            # Built at send time through the REST endpoint: a vanished order yields the endpoint's error.
            payload = _error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
        else:
            payload = self._render(stored)
        body = wp_json_encode(payload)
        key = _wp_specialchars_decode(self._stored_secret)
        # get_new_delivery_id() is wp_hash(webhook id . time()): unique per webhook and second only.
        stamp = int(self._clock().timestamp())
        delivery_id = hmac.new(self._salt, f"{hook.webhook_id}{stamp}".encode(), hashlib.md5).hexdigest()
        resource, event = hook.topic.split(".")
        headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            "X-WC-Webhook-Source": self.site_url,
            "X-WC-Webhook-Topic": hook.topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": base64_hmac_sha256(key, body),
            "X-WC-Webhook-ID": str(hook.webhook_id),
            "X-WC-Webhook-Delivery-ID": delivery_id,
        }
        return _Attempt(
            hook=hook,
            order_id=order_id,
            url=hook.delivery_url,
            delivery_id=delivery_id,
            headers=headers,
            body=body,
            drop=self._rng.random() < self.drop_rate,
            duplicate=self._rng.random() < self.duplicate_rate,
        )

    def _attempt(self, attempt: _Attempt) -> None:
        if attempt.drop:
            self._record(attempt, "dropped", None, None, duplicate=False)
            return
        for duplicate in (False, True) if attempt.duplicate else (False,):
            try:
                response = requests.post(
                    attempt.url,
                    data=attempt.body,
                    headers=attempt.headers,
                    timeout=self.timeout,
                    allow_redirects=False,  # core sets 'redirection' => 0
                )
                response.close()
                code: int | None = response.status_code
                error = None
            except requests.RequestException as exc:
                code, error = None, f"{type(exc).__name__}: {exc}"
            ok = code is not None and 200 <= code < 303  # 301 and 302 count as success in core
            self._record(attempt, "delivered" if ok else "failed", code, error, duplicate=duplicate)

    def _record(
        self, attempt: _Attempt, outcome: str, code: int | None, error: str | None, *, duplicate: bool
    ) -> None:
        with self._cond:
            hook = attempt.hook
            if outcome == "delivered":
                hook.failure_count = 0
            elif outcome == "failed":
                if hook.failure_count > MAX_DELIVERY_FAILURES:
                    hook.status = "disabled"
                else:
                    hook.failure_count += 1
            self._deliveries.append(
                Delivery(
                    webhook_id=hook.webhook_id,
                    topic=hook.topic,
                    order_id=attempt.order_id,
                    delivery_id=attempt.delivery_id,
                    headers=dict(attempt.headers),
                    body=attempt.body,
                    outcome=outcome,
                    status_code=code,
                    error=error,
                    duplicate=duplicate,
                )
            )

    # ----- REST v3 API --------------------------------------------------------------------------------

    def handle_api(
        self, method: str, target: str, authorization: str | None, body: bytes = b""
    ) -> tuple[int, Any, dict[str, str]]:
        """Answer one REST request: (status, JSON body, extra headers)."""
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        route = _route(method, path)
        if route is None:
            return (
                404,
                _error("rest_no_route", "No route was found matching the URL and request method.", 404),
                {},
            )
        action, order_id = route
        if method != "GET":
            failure = self._take_write_failure()
            if failure is not None:
                return failure
        denied = self._authenticate(authorization, query, anonymous=_ANONYMOUS[action.split("_")[0]])
        if denied is not None:
            return 401, denied, {}
        params: dict[str, Any] = dict(query)
        if method != "GET" and body.strip():
            try:
                decoded = json.loads(body)
            except ValueError:
                return 400, _error("rest_invalid_json", "Invalid JSON body passed.", 400), {}
            if isinstance(decoded, dict):
                params.update(decoded)  # WP_REST_Request: JSON body parameters win over the query string
        with self._cond:
            if action == "list":
                return self._list_orders(query)
            return self._api_order_action(action, self._orders.get(order_id or 0), params)

    def _api_order_action(
        self, action: str, stored: _Stored | None, params: Mapping[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        if action == "read":
            if stored is None:
                return 404, _error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404), {}
            return 200, self._render(stored), {}
        if action == "update":
            if stored is None:  # WC_REST_CRUD_Controller::update_item answers 400 here, not 404
                return 400, _error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 400), {}
            return self._api_update_order(stored, params)
        if stored is None:
            if action.endswith("refunds"):
                return 404, _error("woocommerce_rest_invalid_order_id", "Invalid order ID.", 404), {}
            return 404, _error("woocommerce_rest_order_invalid_id", "Invalid order ID.", 404), {}
        handler = {
            "list_notes": self._api_list_notes,
            "create_notes": self._api_create_note,
            "list_refunds": self._api_list_refunds,
            "create_refunds": self._api_create_refund,
        }[action]
        return handler(stored, params)

    def _take_write_failure(self) -> tuple[int, Any, dict[str, str]] | None:
        failure = self._write_failures.take()
        if failure is None:
            return None
        status, retry_after = failure.status, failure.retry_after
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        if status == 429:
            # Core has no REST rate limit of its own; hosts and the Store API answer in this shape.
            message = "Too many requests. Please wait and try again."
            return status, _error("woocommerce_rate_limited", message, status), headers
        if status >= 500:
            # What WordPress's fatal error handler answers a REST request with.
            message = "<p>There has been a critical error on this website.</p>"
            body = {**_error("internal_server_error", message, status), "additional_errors": []}
            return status, body, headers
        return status, _error("rest_forbidden", "Sorry, you are not allowed to do that.", status), headers

    def _api_update_order(
        self, stored: _Stored, params: Mapping[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        # Only `status` is writable here; other fields of the order schema are accepted and ignored.
        if "status" in params:
            status = params["status"]
            allowed = sorted(ORDER_STATUSES, key=list(_STATUS_NAMES).index)
            if not isinstance(status, str) or status.removeprefix("wc-") not in ORDER_STATUSES:
                reason = f"status is not one of {', '.join(allowed[:-1])}, and {allowed[-1]}."
                return 400, _invalid_param("status", reason, "rest_not_in_enum"), {}
            self.update_status(int(stored.data["id"]), status)
        return 200, self._render(stored), {}

    def _api_list_notes(self, stored: _Stored, params: Mapping[str, Any]) -> tuple[int, Any, dict[str, str]]:
        kind = params.get("type", "any")
        if kind not in ("any", "customer", "internal"):
            return 400, _invalid_param("type", "type is not one of any, customer, and internal."), {}
        notes = [
            self._render_note(stored, n)
            for n in stored.notes
            if kind == "any" or n["customer_note"] == (kind == "customer")
        ]
        return 200, notes, {}

    def _api_create_note(self, stored: _Stored, params: Mapping[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if "note" not in params:
            error = _error("rest_missing_callback_param", "Missing parameter(s): note", 400, params=["note"])
            return 400, error, {}
        text = params["note"]
        if not isinstance(text, str):
            return 400, _invalid_param("note", "note is not of type string.", "rest_invalid_type"), {}
        flags = {}
        for name in ("customer_note", "added_by_user"):
            value = _boolean(params.get(name, False))
            if value is None:
                return 400, _invalid_param(name, f"{name} is not of type boolean.", "rest_invalid_type"), {}
            flags[name] = value
        if not text.strip():
            # add_order_note() stores nothing for an empty note and the controller answers 500.
            message = "Cannot create order note, please try again."
            return 500, _error("woocommerce_api_cannot_create_order_note", message, 500), {}
        note = self._add_note(
            stored,
            text,
            customer_note=flags["customer_note"],
            author="admin" if flags["added_by_user"] else "system",
        )
        return 201, self._render_note(stored, note), {}

    def _api_list_refunds(
        self, stored: _Stored, params: Mapping[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        query = {k: str(v) for k, v in params.items()}
        try:
            per_page = _int_param(query, "per_page", 10, 1, 100)
            page = _int_param(query, "page", 1, 1, None)
        except _InvalidParam as exc:
            return 400, _invalid_param(exc.name, exc.reason), {}
        rows = stored.refunds
        chunk = rows[(page - 1) * per_page : page * per_page]
        headers = {
            "X-WP-Total": str(len(rows)),
            "X-WP-TotalPages": str((len(rows) + per_page - 1) // per_page),
        }
        return 200, [self._render_refund(stored, r) for r in chunk], headers

    def _api_create_refund(
        self, stored: _Stored, params: Mapping[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        amount = params.get("amount")
        if amount is not None and not isinstance(amount, str):
            return 400, _invalid_param("amount", "amount is not of type string.", "rest_invalid_type"), {}
        reason = params.get("reason") or ""
        if not isinstance(reason, str):
            return 400, _invalid_param("reason", "reason is not of type string.", "rest_invalid_type"), {}
        api_refund = _boolean(params.get("api_refund", True))
        if api_refund is None:
            return (
                400,
                _invalid_param("api_refund", "api_refund is not of type boolean.", "rest_invalid_type"),
                {},
            )
        restock = _boolean(params.get("restock_items", False))
        if restock is None:
            message = "restock_items is not of type boolean."
            return 400, _invalid_param("restock_items", message, "rest_invalid_type"), {}
        rows = params.get("line_items") or []
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "id" in r for r in rows):
            return 400, _invalid_param("line_items", "line_items[0] is not of type object."), {}
        # wc_create_refund() skips ids that are not items of the order.
        known = {str(i["id"]) for i in self._items(stored)}
        rows = [r for r in rows if str(r["id"]) in known]
        value = _refund_value(amount, rows)
        if value < 0:
            message = "Refund amount must be greater than zero."
            return 400, _error("woocommerce_rest_invalid_order_refund", message, 400), {}
        try:
            refundable = 0 < value <= self._remaining(stored)
            # wc_refund_payment(): the gateway must be able to refund, or the refund is rolled back.
            if api_refund and refundable and stored.data["payment_method"] not in _REFUNDING_GATEWAYS:
                raise ValueError("The payment gateway for this order does not support automatic refunds.")
            refund = self._create_refund(stored, value, reason, rows, refunded_payment=api_refund)
            if restock:
                self._restock(stored, rows)
        except ValueError as exc:
            # Every WP_Error of wc_create_refund() leaves the controller as a 500 with this code.
            return 500, _error("woocommerce_rest_cannot_create_order_refund", str(exc), 500), {}
        return 201, refund, {}

    def _authenticate(
        self, authorization: str | None, query: Mapping[str, str], *, anonymous: tuple[str, str]
    ) -> dict[str, Any] | None:
        key = secret = None
        if authorization and authorization[:6].lower() == "basic ":
            try:
                key, _, secret = base64.b64decode(authorization[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                key = secret = None
        elif "consumer_key" in query:
            key, secret = query["consumer_key"], query.get("consumer_secret", "")
        if key is None or secret is None:
            return _error(*anonymous, 401)
        if not hmac.compare_digest(key.encode(), self.consumer_key.encode()):
            return _error("woocommerce_rest_authentication_error", "Consumer key is invalid.", 401)
        if not hmac.compare_digest(secret.encode(), self.consumer_secret.encode()):
            return _error("woocommerce_rest_authentication_error", "Consumer secret is invalid.", 401)
        return None

    def _list_orders(self, query: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
        try:
            per_page = _int_param(query, "per_page", 10, 1, 100)
            page = _int_param(query, "page", 1, 1, None)
            orderby = _choice_param(
                query, "orderby", "date", ("date", "id", "modified", "include", "title", "slug")
            )
            order = _choice_param(query, "order", "desc", ("asc", "desc"))
            gmt = query.get("dates_are_gmt", "false").lower() in ("1", "true")
            bounds = {
                name: _date_param(query, name)
                for name in ("after", "before", "modified_after", "modified_before")
            }
        except _InvalidParam as exc:
            error = _error(
                "rest_invalid_param", f"Invalid parameter(s): {exc.name}", 400, params={exc.name: exc.reason}
            )
            return 400, error, {}
        statuses = {s for s in query.get("status", "any").split(",") if s}
        rows = [s.data for s in self._orders.values()]
        if "any" in statuses:
            rows = [r for r in rows if r["status"] != "trash"]  # "any" leaves trashed orders out, as WP does
        else:
            rows = [r for r in rows if r["status"] in statuses]
        for name, bound in bounds.items():
            if bound is None:
                continue
            column = ("date_modified" if name.startswith("modified") else "date_created") + (
                "_gmt" if gmt or bound.tzinfo is not None else ""
            )  # without dates_are_gmt a bare date is compared with the site's local time, as WooCommerce does
            limit = bound.astimezone(UTC).replace(tzinfo=None) if bound.tzinfo else bound
            # WordPress date queries are exclusive at both ends.
            if name.endswith("after"):
                rows = [r for r in rows if datetime.fromisoformat(r[column]) > limit]
            else:
                rows = [r for r in rows if datetime.fromisoformat(r[column]) < limit]
        sort_field = {"modified": "date_modified_gmt", "id": "id"}.get(orderby, "date_created_gmt")
        rows.sort(key=lambda r: (r[sort_field], r["id"]), reverse=order == "desc")
        total = len(rows)
        pages = (total + per_page - 1) // per_page
        chunk = rows[(page - 1) * per_page : page * per_page]
        body = [self._render(self._orders[r["id"]]) for r in chunk]
        return 200, body, {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}


def _route(method: str, path: str) -> tuple[str, int | None] | None:
    """(action, order id) for the REST routes the simulator serves; None when WordPress has no such route."""
    if path == f"{_API}/orders":
        return ("list", None) if method == "GET" else None
    single = _ORDER_PATH.fullmatch(path)
    if single is not None:
        if method == "GET":
            return "read", int(single.group(1))
        return ("update", int(single.group(1))) if method in _EDITABLE else None
    sub = _SUB_PATH.fullmatch(path)
    if sub is not None:
        if method == "GET":
            return f"list_{sub.group(2)}", int(sub.group(1))
        return (f"create_{sub.group(2)}", int(sub.group(1))) if method == "POST" else None
    return None


def _refund_value(amount: str | None, rows: list[dict[str, Any]]) -> Decimal:
    """The refund's amount: `amount` when given (it takes precedence), else what the line items add up to."""
    try:
        if amount not in (None, ""):
            value = Decimal(str(amount).strip())
        else:
            value = sum((_decimal(r.get("refund_total")) for r in rows), Decimal(0))
            value += sum(
                (_decimal(t.get("refund_total")) for r in rows for t in r.get("refund_tax") or []), Decimal(0)
            )
    except ArithmeticError:
        return Decimal(0)
    return value if value.is_finite() else Decimal(0)  # wc_format_decimal() of garbage is 0


def _decimal(value: Any) -> Decimal:
    try:
        parsed = Decimal(str(value or 0).strip())
    except ArithmeticError:
        return Decimal(0)
    return parsed if parsed.is_finite() else Decimal(0)  # wc_format_decimal() of garbage is 0


def _invalid_param(name: str, reason: str, code: str = "rest_invalid_param") -> dict[str, Any]:
    # WP_REST_Request::has_valid_params(): one 400 naming each parameter, with the reason's own code.
    return _error(
        "rest_invalid_param",
        f"Invalid parameter(s): {name}",
        400,
        params={name: reason},
        details={name: {"code": code, "message": reason, "data": None}},
    )


def _boolean(value: Any) -> bool | None:
    """rest_sanitize_boolean() after rest_is_boolean(): None when WordPress would reject the value."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", ""):
        return value.strip().lower() in ("true", "1")
    return None


class _InvalidParam(ValueError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.strip().isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        span = (
            f"between {low} (inclusive) and {high} (inclusive)" if high else f"greater than or equal to {low}"
        )
        raise _InvalidParam(name, f"{name} must be {span}")
    return int(raw)


def _choice_param(query: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = query.get(name, default)
    if value not in choices:
        raise _InvalidParam(name, f"{name} is not one of {', '.join(choices)}.")
    return value


def _date_param(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise _InvalidParam(name, "Invalid date.") from None
