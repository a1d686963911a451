"""Amazon SP-API simulator: LWA token exchange, Orders v0 under usage plans, ORDER_CHANGE notifications."""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import random
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from local.http_server import NoDelayRequestHandler

log = logging.getLogger("local.amazon")

# Documented Orders v0 usage plans: operation → (requests per second, burst).
DEFAULT_RATE_LIMITS: dict[str, tuple[float, int]] = {
    "getOrder": (0.5, 30),
    "getOrderItems": (0.5, 30),
    "getOrders": (0.0167, 20),
}
ORDER_STATUSES = (
    "Pending", "PendingAvailability", "Unshipped", "PartiallyShipped", "Shipped", "InvoiceUnconfirmed",
    "Canceled", "Unfulfillable",
)  # fmt: skip
JP_MARKETPLACE = "A1VC38T7YXB528"
_DENIED = "Access to requested resource is denied."


# AddressLine1, AddressLine2, StateOrRegion, City, PostalCode, CountryCode
_Address = tuple[str, str | None, str | None, str, str, str]


@dataclass(frozen=True)
class _Market:
    currency: str
    sales_channel: str
    tax_inclusive: bool  # EU, UK and JP prices include VAT, and SP-API then reports ItemTax as 0.00
    shipping: str
    catalogue: tuple[tuple[str, str, str, str], ...]  # ASIN, SellerSKU, Title, unit price
    buyers: tuple[str, ...]
    addresses: tuple[_Address, ...]
    tax_rate: Decimal = Decimal(0)


_US = _Market(
    "USD", "Amazon.com", False, "5.99",
    (
        ("B0C7WQ2M4K", "TMP-ESP-58", "Stainless Steel Espresso Tamper, 58 mm", "24.99"),
        ("B09XKJ8TQ1", "MUG-CER-12", "Ceramic Coffee Mug, 12 oz, Matte Black", "14.50"),
        ("B08L5NP6ZT", "GRN-BUR-02", "Conical Burr Coffee Grinder", "89.00"),
        ("B07PXGQC1S", "FLT-PPR-100", "Unbleached Paper Coffee Filters, 100 Count", "6.49"),
        ("B0BSHF7WHL", "KTL-GSN-1L", "Gooseneck Pour-Over Kettle, 1 L", "42.95"),
    ),
    ("Zoë Bergström", "José Martínez", "Renée O'Connor", "Nguyễn Thị Lan", "John Smith", "Chloé Dubois"),
    (
        ("1200 SW Morrison St", "Apt 4B", "OR", "Portland", "97205", "US"),
        ("500 Congress Ave", None, "TX", "Austin", "78701", "US"),
        ("77 Atlantic Ave", "Unit 3", "NY", "Brooklyn", "11201", "US"),
    ),
    Decimal("0.0825"),
)  # fmt: skip
_MARKETS: dict[str, _Market] = {
    "ATVPDKIKX0DER": _US,
    "A1PA6795UKMFR9": _Market(
        "EUR", "Amazon.de", True, "4.99",
        (
            ("B0CZ1KXQ2N", "KAN-MLK-350", "Edelstahl-Milchkännchen, 350 ml", "17.99"),
            ("B0B8T3WJ6L", "MUE-KGL-01", "Kaffeemühle mit Kegelmahlwerk", "79.00"),
            ("B09QF5R2HD", "KAR-GLS-600", "Glaskaraffe für Pour-Over, 600 ml", "22.50"),
        ),
        ("Jürgen Groß", "Zoë Weiß", "Ömer Yılmaz", "Łukasz Wójcik", "Anneliese Müller"),
        (
            ("Torstraße 12", "Hinterhaus, 3. OG", None, "Berlin", "10115", "DE"),
            ("Domkloster 4", None, None, "Köln", "50667", "DE"),
        ),
    ),
    "A1F83G8C2ARO7P": _Market(
        "GBP", "Amazon.co.uk", True, "3.49",
        (
            ("B0CZ1KXQ2N", "JUG-MLK-350", "Stainless Steel Milk Jug, 350 ml", "15.99"),
            ("B09QF5R2HD", "CAR-GLS-600", "Glass Pour-Over Carafe, 600 ml", "19.50"),
        ),
        ("Siobhán Ní Bhriain", "Aoife O'Sullivan", "Dafydd ap Gruffydd"),
        (("221B Baker Street", None, "Greater London", "London", "NW1 6XE", "GB"),),
    ),
    JP_MARKETPLACE: _Market(
        "JPY", "Amazon.co.jp", True, "500",
        (
            ("B0C9JPTMP1", "TMP-ESP-58", "ステンレス製エスプレッソタンパー 58mm", "2980"),
            ("B0C9JPMUG2", "MUG-CER-350", "セラミック マグカップ 350ml", "1650"),
            ("B0C9JPMIL3", "MIL-HND-01", "手挽きコーヒーミル セラミック刃", "5480"),
        ),
        ("山田 太郎", "佐藤 花子", "鈴木 一郎"),
        (
            ("渋谷2-21-1", "渋谷ヒカリエ 10F", "東京都", "渋谷区", "150-0002", "JP"),
            ("梅田3-1-3", None, "大阪府", "大阪市北区", "530-0001", "JP"),
        ),
    ),
}  # fmt: skip


class _Bucket:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._tokens, self._stamp = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


@dataclass
class _SimOrder:
    order: dict[str, Any]
    items: list[dict[str, Any]]
    withheld: dict[str, Any] = field(default_factory=dict)  # what Amazon shows only once payment clears


class AmazonSimulator:
    """Plays one seller's Amazon: LWA, Orders v0 (getOrder, getOrderItems, getOrders) and ORDER_CHANGE.

    `marketplace_id` is the seller's home marketplace (US, DE, UK or JP here); `url` is the SP-API
    endpoint and `lwa_url` the token URL, for HUB_AMAZON_SPAPI_ENDPOINT / HUB_AMAZON_LWA_ENDPOINT.
    Usage plans are the documented ones unless `rate_limits` overrides them; every Orders answer
    carries x-amzn-RateLimit-Limit, and an empty bucket answers 429 QuotaExceeded.

    `notify(notification)` receives each notification exactly as Amazon writes it to the seller's
    SQS queue (the message body), synchronously from `create_order` / `set_status`; exceptions
    propagate. `duplicate_rate` re-sends a notification with the same NotificationId and
    `reorder_rate` holds one back until after the next (`flush()` releases it).
    """

    def __init__(
        self,
        seller_id: str,
        marketplace_id: str,
        lwa_client_id: str,
        lwa_client_secret: str,
        refresh_token: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        notify: Callable[[dict[str, Any]], None] | None = None,
        rate_limits: dict[str, tuple[float, int]] | None = None,
        items_page_size: int = 10,
        orders_page_size: int = 100,
        token_ttl: int = 3600,
        duplicate_rate: float = 0.0,
        reorder_rate: float = 0.0,
        jp_rate: float = 0.15,
        pii_absent_rate: float = 0.25,
        retry_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if marketplace_id not in _MARKETS:
            raise ValueError(f"simulated marketplaces: {sorted(_MARKETS)}")
        self.seller_id = seller_id
        self.marketplace_id = marketplace_id
        self._client_id = lwa_client_id
        self._client_secret = lwa_client_secret
        self._refresh_token = refresh_token
        self.notify = notify
        # Knobs, also adjustable on a running simulator.
        self.items_page_size = items_page_size
        self.orders_page_size = orders_page_size
        self.token_ttl = token_ttl
        self.duplicate_rate = duplicate_rate
        self.reorder_rate = reorder_rate
        self.jp_rate = jp_rate  # share of orders placed on amazon.co.jp (JPY) instead of marketplace_id
        self.pii_absent_rate = pii_absent_rate
        self.retry_after = retry_after  # SP-API sends no Retry-After on 429; set it to play servers that do
        self._clock = clock
        self._rng = random.Random(seed)
        self._limits = {**DEFAULT_RATE_LIMITS, **(rate_limits or {})}
        self._buckets = {op: _Bucket(rate, burst, clock) for op, (rate, burst) in self._limits.items()}
        self._orders: dict[str, _SimOrder] = {}
        self._tokens: dict[str, float] = {}  # access token → expiry on the simulator's clock
        self._failures: dict[str, list[int]] = {}
        self._held: dict[str, Any] | None = None
        self._lock = threading.RLock()
        self._notify_lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # operation (and "lwaToken") → requests answered
        self.delivered: list[dict[str, Any]] = []  # every notification handed to notify, duplicates included
        self.application_id = f"amzn1.sp.solution.{uuid.UUID(int=self._rng.getrandbits(128))}"
        self.subscription_id = str(uuid.UUID(int=self._rng.getrandbits(128)))
        simulator = self

        class Handler(_Handler):
            owner = simulator

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="amazon-sim", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def lwa_url(self) -> str:
        return f"{self.url}/auth/o2/token"

    def start(self) -> AmazonSimulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- seller-side actions -----------------------------------------------------------------

    def create_order(
        self, *, item_count: int | None = None, pii: bool | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """A new realistic order (the getOrder payload); Amazon fields in overrides win (None deletes one)."""
        with self._lock:
            rng = self._rng
            marketplace = overrides.get("MarketplaceId") or (
                JP_MARKETPLACE if rng.random() < self.jp_rate else self.marketplace_id
            )
            if marketplace not in _MARKETS:
                raise ValueError(f"simulated marketplaces: {sorted(_MARKETS)}")
            market = _MARKETS[marketplace]
            status = overrides.get("OrderStatus") or rng.choice(("Unshipped", "Unshipped", "Pending"))
            now = datetime.now(UTC).replace(microsecond=0)
            count = item_count if item_count is not None else rng.choice((1, 1, 2, 2, 3, 4))
            # Distinct products while the catalogue lasts (Amazon merges a repeated product into one item).
            products = rng.sample(market.catalogue, k=min(count, len(market.catalogue)))
            products += [rng.choice(market.catalogue) for _ in range(count - len(products))]
            items = [self._item(market, product, position) for position, product in enumerate(products)]
            order_id = self._order_id()
            line1, line2, region, city, postal, country = rng.choice(market.addresses)
            name = rng.choice(market.buyers)
            phone = f"+{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(10**6, 10**7 - 1)}"
            address = {"Name": name, "AddressLine1": line1, "AddressLine2": line2, "City": city,
                       "StateOrRegion": region, "PostalCode": postal, "CountryCode": country,
                       "Phone": phone, "AddressType": "Residential"}  # fmt: skip
            if pii is False or (pii is None and rng.random() < self.pii_absent_rate):
                # Without a restricted data token Amazon shows only where the parcel goes, not to whom.
                address = {k: address[k] for k in ("City", "StateOrRegion", "PostalCode", "CountryCode")}
                buyer: dict[str, Any] = {}
            else:
                # Amazon relays mail through an anonymised address on the marketplace's own domain.
                email = f"{rng.getrandbits(56):014x}@marketplace.{market.sales_channel.lower()}"
                buyer = {"BuyerEmail": email, "BuyerName": name}
            order: dict[str, Any] = {
                "AmazonOrderId": order_id,
                "PurchaseDate": _iso(now),
                "LastUpdateDate": _iso(now),
                "OrderStatus": status,
                "FulfillmentChannel": "MFN",
                "SalesChannel": market.sales_channel,
                "ShipServiceLevel": "Std Dom",
                "OrderTotal": {"CurrencyCode": market.currency, "Amount": _order_total(items, market)},
                "NumberOfItemsShipped": 0,
                "NumberOfItemsUnshipped": sum(i["QuantityOrdered"] for i in items),
                "PaymentMethod": "Other",
                "PaymentMethodDetails": ["Standard"],
                "MarketplaceId": marketplace,
                "ShipmentServiceLevelCategory": "Standard",
                "OrderType": "StandardOrder",
                "EarliestShipDate": _iso(now + timedelta(days=1)),
                "LatestShipDate": _iso(now + timedelta(days=3)),
                "IsBusinessOrder": False,
                "IsPrime": rng.random() < 0.4,
                "IsPremiumOrder": False,
                "IsGlobalExpressEnabled": False,
                "IsReplacementOrder": False,
                "IsSoldByAB": False,
                "IsISPU": False,
                "IsAccessPointOrder": False,
                "ShippingAddress": {k: v for k, v in address.items() if v is not None},
                "BuyerInfo": buyer,
            }
            sim = _SimOrder(order, items)
            if status in ("Pending", "PendingAvailability"):
                # Until payment clears Amazon shows neither the total nor who or where the buyer is.
                sim.withheld = {k: order.pop(k) for k in ("OrderTotal", "ShippingAddress", "BuyerInfo")}
            for key, value in overrides.items():
                if value is None:
                    order.pop(key, None)
                else:
                    order[key] = value
            self._orders[order_id] = sim
            snapshot = copy.deepcopy(order)
        self._emit(self._notification(sim, "Order created"))
        return snapshot

    def set_status(self, order_id: str, status: str) -> dict[str, Any]:
        """Move an order to another OrderStatus, bump LastUpdateDate, notify; returns its getOrder view."""
        if status not in ORDER_STATUSES:
            raise ValueError(f"unknown OrderStatus {status!r}")
        with self._lock:
            sim = self._orders[order_id]
            order = sim.order
            previous = datetime.fromisoformat(order["LastUpdateDate"])
            # SP-API timestamps have whole seconds: keep LastUpdateDate strictly increasing anyway.
            now = max(datetime.now(UTC).replace(microsecond=0), previous + timedelta(seconds=1))
            order["OrderStatus"], order["LastUpdateDate"] = status, _iso(now)
            if status not in ("Pending", "PendingAvailability", "Canceled"):
                order.update(sim.withheld)
                sim.withheld = {}
            shipped_lines = {
                "Shipped": len(sim.items),
                "InvoiceUnconfirmed": len(sim.items),
                "PartiallyShipped": 1,
            }
            for position, item in enumerate(sim.items):
                item["QuantityShipped"] = (
                    item["QuantityOrdered"] if position < shipped_lines.get(status, 0) else 0
                )
            shipped = sum(i["QuantityShipped"] for i in sim.items)
            order["NumberOfItemsShipped"] = shipped
            order["NumberOfItemsUnshipped"] = sum(i["QuantityOrdered"] for i in sim.items) - shipped
            snapshot = copy.deepcopy(order)
        self._emit(self._notification(sim, f"Order status changed to {status}"))
        return snapshot

    def flush(self) -> None:
        """Deliver a notification still held back by `reorder_rate`."""
        with self._notify_lock:
            held, self._held = self._held, None
            if held is not None:
                self._deliver(held)

    def fail_next(self, operation: str, status: int = 503, times: int = 1) -> None:
        """Answer the next `times` calls of an operation (or "lwaToken") with a 429 or a 5xx."""
        with self._lock:
            self._failures.setdefault(operation, []).extend([status] * times)

    def revoke_tokens(self) -> None:
        """Invalidate every access token issued so far (as a revoked authorisation would)."""
        with self._lock:
            self._tokens.clear()

    def order(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._orders[order_id].order)

    # --- building blocks ---------------------------------------------------------------------

    def _order_id(self) -> str:
        while True:
            rng = self._rng
            candidate = (
                f"{rng.randint(111, 999)}-{rng.randint(0, 10**7 - 1):07d}-{rng.randint(0, 10**7 - 1):07d}"
            )
            if candidate not in self._orders:
                return candidate

    def _item(self, market: _Market, product: tuple[str, str, str, str], position: int) -> dict[str, Any]:
        rng = self._rng
        asin, sku, title, unit = product
        quantity = rng.choice((1, 1, 1, 2, 3))
        price = Decimal(unit) * quantity
        discount = _round(price * Decimal("0.10"), market) if rng.random() < 0.3 else Decimal(0)
        shipping = Decimal(market.shipping) if position == 0 else Decimal(0)
        free_shipping = position == 0 and rng.random() < 0.25
        ship_discount = shipping if free_shipping else Decimal(0)
        rate = Decimal(0) if market.tax_inclusive else market.tax_rate
        promotions = ([f"PLM-{rng.getrandbits(32):08X}"] if discount else []) + (
            ["FREESHIP"] if free_shipping else []
        )

        def money(amount: Decimal) -> dict[str, str]:
            return {"CurrencyCode": market.currency, "Amount": _text(_round(amount, market), market)}

        item: dict[str, Any] = {
            "ASIN": asin,
            "OrderItemId": f"{rng.randint(10**13, 10**14 - 1)}",
            "SellerSKU": sku,
            "Title": title,
            "QuantityOrdered": quantity,
            "QuantityShipped": 0,
            "ProductInfo": {"NumberOfItems": "1"},
            "ItemPrice": money(price),
            "ItemTax": money(price * rate),
            "ShippingPrice": money(shipping),
            "ShippingTax": money(shipping * rate),
            "ShippingDiscount": money(ship_discount),
            "ShippingDiscountTax": money(ship_discount * rate),
            "PromotionDiscount": money(discount),
            "PromotionDiscountTax": money(discount * rate),
            "IsGift": "false",
            "ConditionId": "New",
            "ConditionSubtypeId": "New",
            "IsTransparency": False,
            "SerialNumberRequired": False,
        }
        if promotions:
            item["PromotionIds"] = promotions
        return item

    def _notification(self, sim: _SimOrder, reason: str) -> dict[str, Any]:
        with self._lock:
            order, items = copy.deepcopy(sim.order), copy.deepcopy(sim.items)
            address = order.get("ShippingAddress") or sim.withheld.get("ShippingAddress") or {}
        now = datetime.now(UTC)
        stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {
            "NotificationVersion": "1.0",
            "NotificationType": "ORDER_CHANGE",
            "PayloadVersion": "1.0",
            "EventTime": stamp,
            "Payload": {
                "OrderChangeNotification": {
                    "NotificationLevel": "OrderLevel",
                    "SellerId": self.seller_id,
                    "AmazonOrderId": order["AmazonOrderId"],
                    "OrderChangeType": "OrderStatusChange",
                    "OrderChangeTrigger": {
                        "TimeOfOrderChange": order["LastUpdateDate"],
                        "ChangeReason": reason,
                    },
                    "Summary": {
                        "MarketplaceId": order["MarketplaceId"],
                        "OrderStatus": order["OrderStatus"],
                        "PurchaseDate": order["PurchaseDate"],
                        "DestinationPostalCode": address.get("PostalCode"),
                        "FulfillmentType": "MFN",
                        "OrderType": order["OrderType"],
                        "NumberOfItemsShipped": order["NumberOfItemsShipped"],
                        "NumberOfItemsUnshipped": order["NumberOfItemsUnshipped"],
                        "EarliestShipDate": order["EarliestShipDate"],
                        "LatestShipDate": order["LatestShipDate"],
                        "OrderItems": [
                            {
                                "OrderItemId": i["OrderItemId"],
                                "SellerSKU": i["SellerSKU"],
                                "OrderItemStatus": order["OrderStatus"],
                                "Quantity": i["QuantityOrdered"],
                                "QuantityShipped": i["QuantityShipped"],
                                "IsBuyerRequestedCancel": False,
                            }
                            for i in items
                        ],
                    },
                }
            },
            "NotificationMetadata": {
                "ApplicationId": self.application_id,
                "SubscriptionId": self.subscription_id,
                "PublishTime": stamp,
                "NotificationId": str(uuid.uuid4()),
            },
        }

    def _emit(self, notification: dict[str, Any]) -> None:
        with self._notify_lock:
            if self._held is None and self._rng.random() < self.reorder_rate:
                self._held = notification
                return
            self._deliver(notification)
            held, self._held = self._held, None
            if held is not None:
                self._deliver(held)

    def _deliver(self, notification: dict[str, Any]) -> None:
        copies = 2 if self._rng.random() < self.duplicate_rate else 1
        for _ in range(copies):
            body = copy.deepcopy(notification)
            self.delivered.append(body)
            if self.notify is not None:
                self.notify(body)

    # --- HTTP side ---------------------------------------------------------------------------

    def _issue_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self._count("lwaToken")
        failure = self._injected("lwaToken")
        if failure is not None:
            return failure, _lwa_error("server_error", "The server encountered an unexpected error")
        if form.get("grant_type") != "refresh_token":
            return 400, _lwa_error(
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server",
            )
        for name in ("client_id", "refresh_token"):
            if not form.get(name):
                return 400, _lwa_error(
                    "invalid_request", f"The request is missing a required parameter : {name}"
                )
        if not (
            secrets.compare_digest(form["client_id"], self._client_id)
            and secrets.compare_digest(form.get("client_secret", ""), self._client_secret)
        ):
            return 401, _lwa_error("invalid_client", "Client authentication failed")
        if not secrets.compare_digest(form["refresh_token"], self._refresh_token):
            return 400, _lwa_error(
                "invalid_grant", "The request has an invalid grant parameter : refresh_token"
            )
        token = "Atza|" + secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = self._clock() + self.token_ttl
        return 200, {
            "access_token": token,
            "refresh_token": self._refresh_token,
            "token_type": "bearer",
            "expires_in": self.token_ttl,
        }

    def _injected(self, operation: str) -> int | None:
        with self._lock:
            failures = self._failures.get(operation)
            return failures.pop(0) if failures else None

    def _count(self, operation: str) -> None:
        with self._lock:
            self.requests[operation] += 1

    def _authorise(self, token: str | None) -> tuple[int, dict[str, Any]] | None:
        with self._lock:
            expiry = self._tokens.get(token or "")
        if expiry is None:
            return 403, _errors("Unauthorized", _DENIED)
        if self._clock() >= expiry:
            return 403, _errors("Unauthorized", _DENIED, "The access token you provided has expired.")
        return None

    def _handle_orders(
        self, operation: str, order_id: str | None, query: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        failure = self._injected(operation)
        if failure == 429:
            return 429, _errors("QuotaExceeded", "You exceeded your quota for the requested resource.")
        if failure is not None:
            code = "ServiceUnavailable" if failure == 503 else "InternalFailure"
            return failure, _errors(code, "We encountered an internal error. Please try again.")
        if not self._buckets[operation].take():
            return 429, _errors("QuotaExceeded", "You exceeded your quota for the requested resource.")
        if operation == "getOrders":
            return self._get_orders(query)
        with self._lock:
            sim = self._orders.get(order_id or "")
            if sim is None:
                return 404, _errors("NotFound", "The resource specified does not exist.")
            if operation == "getOrder":
                return 200, {"payload": copy.deepcopy(sim.order)}
            offset = 0
            if query.get("NextToken"):
                decoded = _untoken(query["NextToken"])
                if decoded is None or decoded.get("o") != order_id:
                    return 400, _errors("InvalidInput", "Invalid NextToken")
                offset = int(decoded.get("i", 0))
            page = sim.items[offset : offset + self.items_page_size]
            payload: dict[str, Any] = {"AmazonOrderId": order_id, "OrderItems": copy.deepcopy(page)}
            if offset + self.items_page_size < len(sim.items):
                payload["NextToken"] = _token({"o": order_id, "i": offset + self.items_page_size})
            return 200, {"payload": payload}

    def _get_orders(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not query.get("MarketplaceIds"):
            return 400, _errors("InvalidInput", "Missing required 'MarketplaceIds'")
        marketplaces = set(query["MarketplaceIds"].split(","))
        offset = 0
        if query.get("NextToken"):
            decoded = _untoken(query["NextToken"])
            if decoded is None:
                return 400, _errors("InvalidInput", "Invalid NextToken")
            key, since, offset = str(decoded["k"]), str(decoded["a"]), int(decoded["i"])
        elif query.get("LastUpdatedAfter") or query.get("CreatedAfter"):
            key = "LastUpdateDate" if query.get("LastUpdatedAfter") else "PurchaseDate"
            since = query.get("LastUpdatedAfter") or query["CreatedAfter"]
        else:
            return 400, _errors("InvalidInput", "Either CreatedAfter or LastUpdatedAfter must be specified")
        try:
            after = datetime.fromisoformat(since)
        except ValueError:
            return 400, _errors("InvalidInput", f"Invalid date {since!r}")
        with self._lock:
            wanted = [s.order for s in self._orders.values() if s.order["MarketplaceId"] in marketplaces]
            matching = sorted(
                (o for o in wanted if datetime.fromisoformat(o[key]) >= after),
                key=lambda o: (o[key], o["AmazonOrderId"]),
            )
            page = copy.deepcopy(matching[offset : offset + self.orders_page_size])
        payload: dict[str, Any] = {"Orders": page, "LastUpdatedBefore": _iso(datetime.now(UTC))}
        if offset + self.orders_page_size < len(matching):
            payload["NextToken"] = _token({"k": key, "a": since, "i": offset + self.orders_page_size})
        return 200, {"payload": payload}


class _Handler(NoDelayRequestHandler):
    owner: AmazonSimulator
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: without this, Nagle + delayed ACK add ~40 ms a call.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if urlsplit(self.path).path != "/auth/o2/token":
            self._answer(404, _errors("NotFound", "Resource not found"))
            return
        form = {k: v[0] for k, v in parse_qs(body).items()}
        self._answer(*self.owner._issue_token(form))

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if segments[:3] != ["orders", "v0", "orders"] or len(segments) > 5:
            self._answer(404, _errors("NotFound", "Resource not found"))
            return
        if len(segments) == 3:
            operation, order_id = "getOrders", None
        elif len(segments) == 4:
            operation, order_id = "getOrder", segments[3]
        elif segments[4] == "orderItems":
            operation, order_id = "getOrderItems", segments[3]
        else:
            self._answer(404, _errors("NotFound", "Resource not found"))
            return
        rate = {"x-amzn-RateLimit-Limit": f"{self.owner._limits[operation][0]:g}"}
        denied = self.owner._authorise(self.headers.get("x-amz-access-token"))
        status, answer = denied or self.owner._handle_orders(operation, order_id, query)
        self.owner._count(operation)
        if status == 429 and self.owner.retry_after is not None:
            rate["Retry-After"] = f"{self.owner.retry_after:g}"
        self._answer(status, answer, rate)

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _errors(code: str, message: str, details: str = "") -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "details": details}]}


def _lwa_error(error: str, description: str) -> dict[str, str]:
    return {"error_description": description, "error": error}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _round(amount: Decimal, market: _Market) -> Decimal:
    return amount.quantize(
        Decimal(1) if market.currency == "JPY" else Decimal("0.01"), rounding=ROUND_HALF_UP
    )


def _text(amount: Decimal, market: _Market) -> str:
    return f"{_round(amount, market):f}"


def _order_total(items: list[dict[str, Any]], market: _Market) -> str:
    def amount(item: dict[str, Any], key: str) -> Decimal:
        return Decimal(item[key]["Amount"])

    total = sum(
        (
            amount(i, "ItemPrice") - amount(i, "PromotionDiscount") + amount(i, "ItemTax")
            - amount(i, "PromotionDiscountTax") + amount(i, "ShippingPrice") - amount(i, "ShippingDiscount")
            + amount(i, "ShippingTax") - amount(i, "ShippingDiscountTax")
            for i in items
        ),
        Decimal(0),
    )  # fmt: skip
    return _text(total, market)


def _token(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _untoken(token: str) -> dict[str, Any] | None:
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError):
        return None
    return state if isinstance(state, dict) else None
