"""Amazon SP-API simulator: LWA, RDTs, Orders v0 (confirmShipment too), Feeds 2021-06-30, ORDER_CHANGE."""

from __future__ import annotations

import base64
import binascii
import copy
import gzip
import json
import logging
import secrets
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Unpack
from urllib.parse import parse_qs, unquote

from local.simulators.amazon_reports import REPORTS_RATE_LIMITS, AmazonReports
from local.simulators.kit import FaultQueue, Knobs, Reply, Request, Router, SimulatorServer, TokenBucket

log = logging.getLogger("local.amazon")

# Documented usage plans (Orders v0, Tokens 2021-03-01, Feeds 2021-06-30): operation → (rps, burst).
DEFAULT_RATE_LIMITS: dict[str, tuple[float, int]] = {
    "getOrder": (0.5, 30),
    "getOrderAddress": (0.5, 30),
    "getOrderItems": (0.5, 30),
    "getOrders": (0.0167, 20),
    "confirmShipment": (2.0, 10),
    "createRestrictedDataToken": (1.0, 10),
    "createFeedDocument": (0.5, 15),
    "createFeed": (0.0083, 15),
    "getFeed": (2.0, 15),
    "getFeedDocument": (0.0222, 10),
    **REPORTS_RATE_LIMITS,
}
RDT_PATH = "/tokens/2021-03-01/restrictedDataToken"
FEEDS_PATH = "/feeds/2021-06-30"
ORDER_ACKNOWLEDGEMENT_FEED = "POST_ORDER_ACKNOWLEDGEMENT_DATA"
# The simulated S3 behind pre-signed feed-document URLs; fail_next() takes this name too.
DOCUMENT_STORE = "feedDocument"
_DOCUMENTS_PREFIX = "/feed-documents/"
# Amazon CarrierCode values the simulator accepts (a subset of Amazon's list); "Other" needs a carrierName.
CARRIER_CODES = frozenset({
    "USPS", "UPS", "UPS Mail Innovations", "FedEx", "FedEx SmartPost", "DHL", "DHL eCommerce", "OnTrac",
    "Lasership", "Amazon Shipping", "Canada Post", "Royal Mail", "Parcelforce", "DPD", "GLS", "Hermes",
    "Evri", "Deutsche Post", "Australia Post", "Japan Post", "Yamato Transport", "Sagawa Express", "Other",
})  # fmt: skip
CANCEL_REASONS = frozenset({
    "NoInventory", "ShippingAddressUndeliverable", "CustomerExchange", "BuyerCanceled", "GeneralAdjustment",
    "CarrierCreditDecision", "RiskAssessmentInformationNotValid", "CarrierCoverageFailure", "CustomerReturn",
    "MerchandiseNotReceived", "CannotVerifyInformation", "PricingError", "RejectOrder", "WeatherDelay",
})  # fmt: skip
# confirmShipment's answer for a package of an order Amazon already considers fulfilled (as sellers
# report it: amzn/selling-partner-api-models issue #5037).
ALREADY_FULFILLED = (
    "Failed to create package due to not finding a matching package or order already fulfilled."
)
_INVALID_TYPE = "The input you have submitted is not valid. Please check the fields with invalid type [{}]."
ORDER_STATUSES = (
    "Pending", "PendingAvailability", "Unshipped", "PartiallyShipped", "Shipped", "InvoiceUnconfirmed",
    "Canceled", "Unfulfillable",
)  # fmt: skip
JP_MARKETPLACE = "A1VC38T7YXB528"
_DENIED = "Access to requested resource is denied."
_EXPIRED = "The access token you provided has expired."
_QUOTA = "You exceeded your quota for the requested resource."


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


@dataclass
class _SimOrder:
    order: dict[str, Any]
    items: list[dict[str, Any]]
    withheld: dict[str, Any] = field(default_factory=dict)  # what Amazon shows only once payment clears
    address: dict[str, Any] = field(default_factory=dict)  # the full ShippingAddress (getOrderAddress)


@dataclass(frozen=True)
class _Rdt:
    resources: frozenset[tuple[str, str]]  # (method, path) pairs it was issued for
    expires: float


@dataclass
class _Document:
    content_type: str
    secret: str  # the pre-signed URL's signature
    content: bytes | None = None
    result: bool = False  # a processing report (downloadable) rather than an input (uploadable)


@dataclass
class _Feed:
    feed_id: str
    feed_type: str
    marketplace_ids: list[str]
    document_id: str
    created: float  # simulator clock
    created_time: str
    status: str = "IN_QUEUE"
    claimed: bool = False
    started_time: str | None = None
    ended_time: str | None = None
    result_document_id: str | None = None


class AmazonSimulator(SimulatorServer):
    """Plays one seller's Amazon: LWA, Orders v0 (getOrder, getOrderItems, getOrders), ORDER_CHANGE, and
    getOrderAddress behind a restricted data token (Tokens 2021-03-01 createRestrictedDataToken).

    `marketplace_id` is the seller's home marketplace (US, DE, UK or JP here); `url` is the SP-API
    endpoint and `lwa_url` the token URL, for HUB_AMAZON_SPAPI_ENDPOINT / HUB_AMAZON_LWA_ENDPOINT.
    Usage plans are the documented ones unless `rate_limits` overrides them; every Orders answer
    carries x-amzn-RateLimit-Limit, and an empty bucket answers 429 QuotaExceeded.

    An RDT (`rdt_ttl` seconds, default 3600) is issued to an LWA token for getOrderAddress paths of
    specific orders only, and is good only for the (method, path) pairs it names; getOrderAddress
    refuses a plain LWA token, an expired RDT, or one issued for another path (403 Unauthorized).
    `restricted_role=False` plays an application without the restricted role (Direct-to-Consumer
    Shipping): createRestrictedDataToken then answers 403 Unauthorized to every request, as SP-API does.

    Merchant-fulfilled orders are published back through confirmShipment (one call per package; the same
    packageReferenceId again edits that package; an order already Shipped answers 400 InvalidInput; all
    items shipped → Shipped, some → PartiallyShipped) and the POST_ORDER_ACKNOWLEDGEMENT_DATA feed
    (createFeedDocument → PUT to a pre-signed URL served by the simulator itself → createFeed → getFeed;
    processed `feed_delay` seconds after createFeed, into an XML processing report; StatusCode Failure
    cancels the order). `reject_feed_message(order_id, ...)` makes the next message about an order fail.
    ResultMessageCode numbers in the reports are the simulator's own, not Amazon's.

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
        notify: Callable[[dict[str, Any]], None] | None = None,
        rate_limits: dict[str, tuple[float, int]] | None = None,
        items_page_size: int = 10,
        orders_page_size: int = 100,
        token_ttl: int = 3600,
        rdt_ttl: int = 3600,
        restricted_role: bool = True,
        reorder_rate: float = 0.0,
        jp_rate: float = 0.15,
        pii_absent_rate: float = 0.25,
        retry_after: float | None = None,
        feed_delay: float = 2.0,
        report_delay: float = 2.0,
        gzip_reports: bool = False,
        clock: Callable[[], float] = time.monotonic,
        **knobs: Unpack[Knobs],
    ) -> None:
        if marketplace_id not in _MARKETS:
            raise ValueError(f"simulated marketplaces: {sorted(_MARKETS)}")
        super().__init__(name="amazon-sim", log=log, methods=("GET", "POST", "PUT"), **knobs)
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
        self.rdt_ttl = rdt_ttl
        self.restricted_role = restricted_role  # False: the app lacks the restricted role, RDTs refused
        self.reorder_rate = reorder_rate
        self.jp_rate = jp_rate  # share of orders placed on amazon.co.jp (JPY) instead of marketplace_id
        self.pii_absent_rate = pii_absent_rate
        self.retry_after = retry_after  # SP-API sends no Retry-After on 429; set it to play servers that do
        self.feed_delay = feed_delay  # seconds (simulator clock) from createFeed until the report is ready
        self.gzip_reports = gzip_reports  # serve processing reports GZIP-compressed, as Amazon may
        self._clock = clock
        self._limits = {**DEFAULT_RATE_LIMITS, **(rate_limits or {})}
        self._buckets = {op: TokenBucket(rate, burst, clock) for op, (rate, burst) in self._limits.items()}
        self._orders: dict[str, _SimOrder] = {}
        self._tokens: dict[str, float] = {}  # access token → expiry on the simulator's clock
        self._rdts: dict[str, _Rdt] = {}  # restricted data token → what it opens and until when
        self._faults: dict[str, FaultQueue] = {}  # by operation
        self._packages: dict[str, dict[str, dict[str, Any]]] = {}  # order → packageReferenceId → package
        self._documents: dict[str, _Document] = {}
        self._feeds: dict[str, _Feed] = {}
        self._rejections: dict[str, list[tuple[str, str]]] = {}  # order → (code, description) to answer
        self._held: dict[str, Any] | None = None
        self._lock = threading.RLock()
        self._notify_lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # operation (and "lwaToken") → requests answered
        self.delivered: list[dict[str, Any]] = []  # every notification handed to notify, duplicates included
        self.application_id = f"amzn1.sp.solution.{uuid.UUID(int=self._rng.getrandbits(128))}"
        self.subscription_id = str(uuid.UUID(int=self._rng.getrandbits(128)))
        self._router: Router[Reply] = Router()
        orders = "/orders/v0/orders"
        for method, path, handler in (
            ("POST", RDT_PATH, self._rdt_request),
            ("POST", "/auth/o2/token", self._token_request),
            ("POST", f"{orders}/{{id}}/shipmentConfirmation", self._confirm_request),
            ("POST", f"{FEEDS_PATH}/documents", self._create_feed_document_request),
            ("POST", f"{FEEDS_PATH}/feeds", self._create_feed_request),
            ("GET", f"{_DOCUMENTS_PREFIX}{{id:.+}}", self._document),
            ("GET", f"{FEEDS_PATH}/feeds/{{id}}", self._get_feed_request),
            ("GET", f"{FEEDS_PATH}/documents/{{id}}", self._get_feed_document_request),
            ("GET", orders, self._orders_request),
            ("GET", f"{orders}/{{id}}", self._orders_request),
            ("GET", f"{orders}/{{id}}/orderItems", self._orders_request),
            ("GET", f"{orders}/{{id}}/address", self._address_request),
        ):
            self._router.add(method, path, handler)
        # Reports 2021-06-30 (merchant-fulfilled returns): its own module, same auth and usage plans.
        self.reports = AmazonReports(self, report_delay=report_delay, clock=clock)
        for method, path, operation, work in self.reports.routes():
            self._router.add(method, path, self._reports_handler(operation, work))

    @property
    def lwa_url(self) -> str:
        return f"{self.url}/auth/o2/token"

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
            full_address = {k: v for k, v in address.items() if v is not None}
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
            sim = _SimOrder(order, items, address=full_address)
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
            shipped_lines = {
                "Shipped": len(sim.items),
                "InvoiceUnconfirmed": len(sim.items),
                "PartiallyShipped": 1,
            }
            shipped = {
                item["OrderItemId"]: item["QuantityOrdered"] if position < shipped_lines.get(status, 0) else 0
                for position, item in enumerate(sim.items)
            }
            snapshot = self._change(sim, status, shipped)
        self._emit(self._notification(sim, f"Order status changed to {status}"))
        return snapshot

    def _change(self, sim: _SimOrder, status: str, shipped: dict[str, int]) -> dict[str, Any]:
        """Under the lock: a new OrderStatus and QuantityShipped per item, LastUpdateDate bumped."""
        order = sim.order
        previous = datetime.fromisoformat(order["LastUpdateDate"])
        # SP-API timestamps have whole seconds: keep LastUpdateDate strictly increasing anyway.
        now = max(datetime.now(UTC).replace(microsecond=0), previous + timedelta(seconds=1))
        order["OrderStatus"], order["LastUpdateDate"] = status, _iso(now)
        if status not in ("Pending", "PendingAvailability", "Canceled"):
            order.update(sim.withheld)
            sim.withheld = {}
        for item in sim.items:
            item["QuantityShipped"] = shipped.get(item["OrderItemId"], 0)
        total = sum(i["QuantityShipped"] for i in sim.items)
        order["NumberOfItemsShipped"] = total
        order["NumberOfItemsUnshipped"] = sum(i["QuantityOrdered"] for i in sim.items) - total
        return copy.deepcopy(order)

    def flush(self) -> None:
        """Deliver a notification still held back by `reorder_rate`."""
        with self._notify_lock:
            held, self._held = self._held, None
            if held is not None:
                self._deliver(held)

    def fail_next(self, operation: str, status: int = 503, times: int = 1) -> None:
        """Answer the next `times` calls of an operation (or "lwaToken") with a 429 or a 5xx."""
        with self._lock:
            self._faults.setdefault(operation, FaultQueue()).add(times, status)

    def revoke_tokens(self) -> None:
        """Invalidate every access token and restricted data token issued so far (a revoked authorisation)."""
        with self._lock:
            self._tokens.clear()
            self._rdts.clear()

    def reject_feed_message(
        self,
        order_id: str,
        description: str = "The order cannot be cancelled: the buyer has been sent a replacement.",
        code: str = "18999",
    ) -> None:
        """Make the next feed message about this order fail with this ResultMessageCode and description."""
        with self._lock:
            self._rejections.setdefault(order_id, []).append((code, description))

    def shipment_confirmations(self, order_id: str) -> list[dict[str, Any]]:
        """Every package confirmed for an order: {packageDetail, submissions} in confirmation order."""
        with self._lock:
            return copy.deepcopy(list(self._packages.get(order_id, {}).values()))

    def feeds(self) -> list[dict[str, Any]]:
        """Every feed created, processed as far as the clock allows: id, type, status, content, report."""
        self._advance_feeds()
        with self._lock:
            return [
                {
                    "feedId": f.feed_id,
                    "feedType": f.feed_type,
                    "marketplaceIds": list(f.marketplace_ids),
                    "processingStatus": f.status,
                    "content": (self._documents[f.document_id].content or b"").decode(),
                    "report": (
                        (self._documents[f.result_document_id].content or b"").decode()
                        if f.result_document_id
                        else None
                    ),
                }
                for f in self._feeds.values()
            ]

    def shipping_address(self, order_id: str) -> dict[str, Any]:
        """The order's full ShippingAddress, as getOrderAddress shows it once Amazon releases it."""
        with self._lock:
            return copy.deepcopy(self._orders[order_id].address)

    def order(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._orders[order_id].order)

    # --- what the Reports module reads and writes ---------------------------------------------

    @property
    def rng(self) -> Any:
        return self._rng

    def knows_marketplace(self, marketplace_id: Any) -> bool:
        return marketplace_id in _MARKETS

    def order_for_return(self, order_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
        """(getOrder view, items, currency) of an order; KeyError when the simulator has no such order."""
        with self._lock:
            sim = self._orders[order_id]
            currency = _MARKETS[sim.order["MarketplaceId"]].currency
            return copy.deepcopy(sim.order), copy.deepcopy(sim.items), currency

    def store_result_document(self, content: bytes, content_type: str) -> str:
        """Keep a document Amazon produced (a report) in the simulated S3; answers its document id."""
        document_id = f"amzn1.spdoc.1.4.na.{uuid.uuid4()}"
        with self._lock:
            self._documents[document_id] = _Document(
                content_type=content_type, secret=secrets.token_hex(32), content=content, result=True
            )
        return document_id

    def result_document_url(self, document_id: str) -> tuple[str, bool]:
        """(pre-signed URL, whether the download is GZIP-compressed) of a stored result document."""
        with self._lock:
            return self._document_url(document_id, self._documents[document_id]), self.gzip_reports

    def _reports_handler(
        self, operation: str, work: Callable[[Request], tuple[int, dict[str, Any] | None]]
    ) -> Callable[[Request], Reply]:
        return lambda request: self._operation(operation, request, lambda: work(request))

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
            faults = self._faults.get(operation)
        fault = faults.take() if faults is not None else None
        return fault.status if fault is not None else None

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

    def _authorise_restricted(
        self, token: str | None, method: str, path: str
    ) -> tuple[int, dict[str, Any]] | None:
        """A restricted operation takes only an unexpired RDT issued for exactly this method and path."""
        with self._lock:
            rdt = self._rdts.get(token or "")
        if rdt is None or (method, path) not in rdt.resources:
            # A plain LWA token, an unknown token, or an RDT for another resource.
            return 403, _errors("Unauthorized", _DENIED)
        if self._clock() >= rdt.expires:
            return 403, _errors("Unauthorized", _DENIED, _EXPIRED)
        return None

    def _limited(self, operation: str) -> tuple[int, dict[str, Any]] | None:
        """An injected failure or an empty usage-plan bucket, as SP-API would answer it; None to proceed."""
        # Amazon processes feeds in the background: whatever the seller asks next sees their effect.
        self._advance_feeds()
        failure = self._injected(operation)
        if failure == 429:
            return 429, _errors("QuotaExceeded", _QUOTA)
        if failure is not None:
            code = "ServiceUnavailable" if failure == 503 else "InternalFailure"
            return failure, _errors(code, "We encountered an internal error. Please try again.")
        if not self._buckets[operation].take():
            return 429, _errors("QuotaExceeded", _QUOTA)
        return None

    def _create_rdt(self, body: Any) -> tuple[int, dict[str, Any]]:
        resources = body.get("restrictedResources") if isinstance(body, dict) else None
        if not isinstance(resources, list) or not resources:
            return 400, _errors("InvalidInput", "Request is missing or has invalid parameters",
                                "Resource not provided.")  # fmt: skip
        if len(resources) > 50:
            return 400, _errors("InvalidInput", "Request is missing or has invalid parameters",
                                "At most 50 restricted resources.")  # fmt: skip
        granted: set[tuple[str, str]] = set()
        for resource in resources:
            method = resource.get("method") if isinstance(resource, dict) else None
            path = resource.get("path") if isinstance(resource, dict) else None
            if method not in ("GET", "PUT", "POST", "DELETE") or not isinstance(path, str) or not path:
                return 400, _errors("InvalidInput", "Request is missing or has invalid parameters",
                                    "Resource not provided.")  # fmt: skip
            segments = [unquote(s) for s in path.strip("/").split("/")]
            # Only getOrderAddress for a specific order is simulated among SP-API's restricted operations.
            if not (
                method == "GET"
                and len(segments) == 5
                and segments[:3] == ["orders", "v0", "orders"]
                and segments[4] == "address"
                and not segments[3].startswith("{")
            ):
                return 400, _errors("InvalidInput", "Request is missing or has invalid parameters",
                                    f"Not a restricted resource: {method} {path}")  # fmt: skip
            granted.add((method, "/" + "/".join(segments)))
        token = "Atz.sprdt|" + secrets.token_urlsafe(48)
        with self._lock:
            self._rdts[token] = _Rdt(frozenset(granted), self._clock() + self.rdt_ttl)
        return 200, {"restrictedDataToken": token, "expiresIn": self.rdt_ttl}

    def _get_order_address(self, order_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            sim = self._orders.get(order_id)
            if sim is None:
                return 404, _errors("NotFound", "The resource specified does not exist.")
            payload: dict[str, Any] = {"AmazonOrderId": order_id}
            if "ShippingAddress" not in sim.withheld:
                # Until payment clears Amazon withholds the address even from an RDT.
                payload["ShippingAddress"] = copy.deepcopy(sim.address)
        return 200, {"payload": payload}

    def _confirm_shipment(self, order_id: str, body: Any) -> tuple[int, dict[str, Any] | None]:
        with self._lock:
            sim = self._orders.get(order_id)
            if sim is None:
                return 404, _errors("NotFound", "The resource specified does not exist.")
            problem = _package_problem(body, sim)
            if problem is not None:
                return 400, _errors("InvalidInput", problem)
            detail = body["packageDetail"]
            reference = detail["packageReferenceId"]
            status = sim.order["OrderStatus"]
            if status in ("Shipped", "InvoiceUnconfirmed"):
                return 400, _errors("InvalidInput", ALREADY_FULFILLED)
            if status not in ("Unshipped", "PartiallyShipped"):
                return 400, _errors(
                    "InvalidInput", f"Order {order_id} in status {status} cannot be confirmed."
                )
            packages = self._packages.setdefault(order_id, {})
            shipped = _shipped_quantities(p["packageDetail"] for r, p in packages.items() if r != reference)
            for item in detail["orderItems"]:
                shipped[item["orderItemId"]] = shipped.get(item["orderItemId"], 0) + item["quantity"]
            for item in sim.items:
                if shipped.get(item["OrderItemId"], 0) > item["QuantityOrdered"]:
                    return 400, _errors("InvalidInput", f"Quantity for OrderItemId {item['OrderItemId']} "
                                        "exceeds the quantity ordered.")  # fmt: skip
            previous = packages.get(reference)
            # The same packageReferenceId again edits that package (Amazon's guide): one package, updated.
            packages[reference] = {
                "packageDetail": copy.deepcopy(detail),
                "submissions": (previous["submissions"] if previous else 0) + 1,
            }
            everything = all(shipped.get(i["OrderItemId"], 0) >= i["QuantityOrdered"] for i in sim.items)
            new_status = "Shipped" if everything else "PartiallyShipped"
            changed = new_status != status or any(
                shipped.get(i["OrderItemId"], 0) != i["QuantityShipped"] for i in sim.items
            )
            if changed:
                self._change(sim, new_status, shipped)
        if changed:
            self._emit(self._notification(sim, f"Order status changed to {new_status}"))
        return 204, None

    # --- Feeds 2021-06-30 ------------------------------------------------------------------

    def _create_feed_document(self, body: Any) -> tuple[int, dict[str, Any] | None]:
        content_type = body.get("contentType") if isinstance(body, dict) else None
        if not isinstance(content_type, str) or not content_type.strip():
            return 400, _errors("InvalidInput", "Request is missing or has invalid parameters",
                                "contentType is required.")  # fmt: skip
        document_id = f"amzn1.tortuga.4.na.{uuid.uuid4()}"
        document = _Document(content_type=content_type, secret=secrets.token_hex(32))
        with self._lock:
            self._documents[document_id] = document
        return 201, {"feedDocumentId": document_id, "url": self._document_url(document_id, document)}

    def _document_url(self, document_id: str, document: _Document) -> str:
        return f"{self.url}{_DOCUMENTS_PREFIX}{document_id}?X-Amz-Signature={document.secret}"

    def _store_document(
        self, method: str, document_id: str, query: dict[str, str], content_type: str, data: bytes
    ) -> tuple[int, bytes, str]:
        """S3's side of a pre-signed URL: PUT an input document, GET a result document."""
        self._count(DOCUMENT_STORE)
        failure = self._injected(DOCUMENT_STORE)
        if failure is not None:
            return failure, _s3_error("InternalError", "We encountered an internal error."), "application/xml"
        with self._lock:
            document = self._documents.get(document_id)
            signature = query.get("X-Amz-Signature", "")
            if document is None or not secrets.compare_digest(signature, document.secret):
                return 403, _s3_error("AccessDenied", "Access Denied"), "application/xml"
            if method == "PUT":
                if document.result:
                    return 403, _s3_error("AccessDenied", "Access Denied"), "application/xml"
                if content_type != document.content_type:
                    # The content type is part of what the URL signs.
                    return (
                        403,
                        _s3_error(
                            "SignatureDoesNotMatch",
                            "The request signature we calculated does not match the signature you provided.",
                        ),
                        "application/xml",
                    )
                document.content = data
                return 200, b"", "application/xml"
            if not document.result or document.content is None:
                return 403, _s3_error("AccessDenied", "Access Denied"), "application/xml"
            if self.gzip_reports:
                return 200, gzip.compress(document.content), document.content_type
            return 200, document.content, document.content_type

    def _create_feed(self, body: Any) -> tuple[int, dict[str, Any] | None]:
        spec = body if isinstance(body, dict) else {}
        feed_type, marketplaces = spec.get("feedType"), spec.get("marketplaceIds")
        document_id = spec.get("inputFeedDocumentId")
        if feed_type != ORDER_ACKNOWLEDGEMENT_FEED:
            return 400, _errors("InvalidInput", f"Invalid feedType {feed_type!r} (the simulator processes "
                                f"{ORDER_ACKNOWLEDGEMENT_FEED} only).")  # fmt: skip
        if (
            not isinstance(marketplaces, list)
            or not marketplaces
            or not all(m in _MARKETS for m in marketplaces)
        ):
            return 400, _errors("InvalidInput", "Invalid marketplaceIds.")
        with self._lock:
            document = self._documents.get(document_id) if isinstance(document_id, str) else None
            if document is None or document.result or document.content is None:
                return 400, _errors("InvalidInput", "Invalid inputFeedDocumentId: no uploaded document.")
            feed_id = str(self._rng.randint(10**10, 10**11 - 1))
            self._feeds[feed_id] = _Feed(
                feed_id=feed_id,
                feed_type=feed_type,
                marketplace_ids=list(marketplaces),
                document_id=str(document_id),
                created=self._clock(),
                created_time=_iso(datetime.now(UTC)),
            )
        return 202, {"feedId": feed_id}

    def _get_feed(self, feed_id: str) -> tuple[int, dict[str, Any] | None]:
        self._advance_feeds()
        with self._lock:
            feed = self._feeds.get(feed_id)
            if feed is None:
                return 404, _errors("NotFound", "The resource specified does not exist.")
            answer: dict[str, Any] = {
                "feedId": feed.feed_id,
                "feedType": feed.feed_type,
                "marketplaceIds": list(feed.marketplace_ids),
                "createdTime": feed.created_time,
                "processingStatus": feed.status,
            }
            optional = {"processingStartTime": feed.started_time, "processingEndTime": feed.ended_time,
                        "resultFeedDocumentId": feed.result_document_id}  # fmt: skip
            answer.update({k: v for k, v in optional.items() if v is not None})
        return 200, answer

    def _get_feed_document(self, document_id: str) -> tuple[int, dict[str, Any] | None]:
        with self._lock:
            document = self._documents.get(document_id)
            if document is None:
                return 404, _errors("NotFound", "The resource specified does not exist.")
            answer = {"feedDocumentId": document_id, "url": self._document_url(document_id, document)}
            if document.result and self.gzip_reports:
                answer["compressionAlgorithm"] = "GZIP"
        return 200, answer

    def _advance_feeds(self) -> None:
        """Move feeds along the clock: IN_QUEUE, IN_PROGRESS after half the delay, processed after it."""
        now = self._clock()
        due: list[_Feed] = []
        with self._lock:
            for feed in self._feeds.values():
                if feed.claimed:
                    continue
                if now >= feed.created + self.feed_delay:
                    feed.claimed = True
                    due.append(feed)
                elif now >= feed.created + self.feed_delay / 2 and feed.status == "IN_QUEUE":
                    feed.status, feed.started_time = "IN_PROGRESS", _iso(datetime.now(UTC))
        for feed in due:
            self._process_feed(feed)

    def _process_feed(self, feed: _Feed) -> None:
        # Outside the lock: cancelling an order notifies, and notify() may call back into the simulator.
        with self._lock:
            content = self._documents[feed.document_id].content or b""
        results: list[tuple[str, str, str, str]] = []  # (MessageID, ResultCode, ResultMessageCode, text)
        messages = _acknowledgement_messages(content)
        if messages is None:
            status, processed = "FATAL", 0
            results.append(("0", "Error", "5001", "XML Parsing Fatal Error: the document is not a valid "
                            "OrderAcknowledgement AmazonEnvelope."))  # fmt: skip
        else:
            status, processed = "DONE", len(messages)
            for message in messages:
                outcome = self._acknowledge(message)
                if outcome is not None:
                    results.append((message["MessageID"], "Error", *outcome))
        report = _processing_report(feed.feed_id, processed, results)
        result_id = f"amzn1.tortuga.4.na.{uuid.uuid4()}"
        with self._lock:
            self._documents[result_id] = _Document(
                content_type="text/xml", secret=secrets.token_hex(32), content=report, result=True
            )
            feed.status, feed.result_document_id = status, result_id
            feed.started_time = feed.started_time or _iso(datetime.now(UTC))
            feed.ended_time = _iso(datetime.now(UTC))

    def _acknowledge(self, message: dict[str, Any]) -> tuple[str, str] | None:
        """One OrderAcknowledgement message applied: None, or (ResultMessageCode, description)."""
        order_id = message.get("AmazonOrderID") or ""
        with self._lock:
            rejections = self._rejections.get(order_id)
            if rejections:
                return rejections.pop(0)
            sim = self._orders.get(order_id)
            if sim is None:
                return "18028", f"The AmazonOrderID {order_id!r} is not a valid order for this merchant."
            if message.get("StatusCode") not in ("Success", "Failure"):
                return "18100", "StatusCode must be Success or Failure."
            if message["StatusCode"] == "Success":
                return None
            known = {i["OrderItemId"] for i in sim.items}
            for item_id, reason in message["Items"]:
                if item_id not in known:
                    return "18032", f"AmazonOrderItemCode {item_id} is not an item of order {order_id}."
                if reason not in CANCEL_REASONS:
                    return "18101", f"Invalid CancelReason {reason!r}."
            status = sim.order["OrderStatus"]
            if status == "Canceled":
                return "18102", f"Order {order_id} is already canceled."
            if status not in ("Pending", "Unshipped"):
                return "18103", f"Order {order_id} is {status}: shipped items cannot be canceled."
        self.set_status(order_id, "Canceled")
        return None

    def _handle_orders(
        self, operation: str, order_id: str | None, query: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
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

    # --- HTTP routes ---------------------------------------------------------------------------

    def _reply(self, request: Request) -> Reply:
        if request.method == "PUT":  # any PUT is an upload to a pre-signed URL
            return self._document(request)
        return self._router.dispatch(
            request, lambda _: _answer(404, _errors("NotFound", "Resource not found"))
        )

    def _rdt_request(self, request: Request) -> Reply:
        def work() -> tuple[int, dict[str, Any] | None]:
            try:
                parsed = request.json()
            except ValueError:
                parsed = None
            if not self.restricted_role:
                # The LWA token is good, the application is not approved for PII: SP-API's 403.
                return 403, _errors("Unauthorized", _DENIED)
            return self._create_rdt(parsed)  # looked up at call time: tests wrap it

        return self._operation("createRestrictedDataToken", request, work)

    def _token_request(self, request: Request) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.text()).items()}
        return _answer(*self._issue_token(form))

    def _confirm_request(self, request: Request) -> Reply:
        order_id = request.params["id"]
        return self._operation(
            "confirmShipment", request, lambda: self._confirm_shipment(order_id, _json(request))
        )

    def _create_feed_document_request(self, request: Request) -> Reply:
        return self._operation(
            "createFeedDocument", request, lambda: self._create_feed_document(_json(request))
        )

    def _create_feed_request(self, request: Request) -> Reply:
        return self._operation("createFeed", request, lambda: self._create_feed(_json(request)))

    def _get_feed_request(self, request: Request) -> Reply:
        return self._operation("getFeed", request, lambda: self._get_feed(request.params["id"]))

    def _get_feed_document_request(self, request: Request) -> Reply:
        return self._operation(
            "getFeedDocument", request, lambda: self._get_feed_document(request.params["id"])
        )

    def _orders_request(self, request: Request) -> Reply:
        order_id = request.params.get("id")
        operation = "getOrders" if order_id is None else "getOrder"
        if request.path.rstrip("/").endswith("/orderItems"):
            operation = "getOrderItems"
        query = request.query_first()
        return self._operation(operation, request, lambda: self._handle_orders(operation, order_id, query))

    def _address_request(self, request: Request) -> Reply:
        order_id = request.params["id"]
        resource = f"/orders/v0/orders/{order_id}/address"
        denied = self._authorise_restricted(request.headers.get("x-amz-access-token"), "GET", resource)
        return self._operation("getOrderAddress", request, lambda: self._get_order_address(order_id), denied)

    def _operation(
        self,
        operation: str,
        request: Request,
        work: Callable[[], tuple[int, dict[str, Any] | None]],
        denied: tuple[int, dict[str, Any]] | None = None,
    ) -> Reply:
        """An SP-API operation behind an LWA token (or `denied` already) and its usage plan (injected
        failures, empty bucket), with its usage-plan header (and Retry-After when set)."""
        rate = {"x-amzn-RateLimit-Limit": f"{self._limits[operation][0]:g}"}
        if denied is None and operation != "getOrderAddress":
            denied = self._authorise(request.headers.get("x-amz-access-token"))
        if denied is None:
            denied = self._limited(operation)
        status, answer = denied if denied is not None else work()
        self._count(operation)
        if status == 429 and self.retry_after is not None:
            rate["Retry-After"] = f"{self.retry_after:g}"
        return _answer(status, answer, rate)

    def _document(self, request: Request) -> Reply:
        query = {k: v[0] for k, v in parse_qs(request.query).items()}
        document_id = unquote(request.path[len(_DOCUMENTS_PREFIX) :])
        content_type = request.headers.get("content-type") or ""
        status, body, kind = self._store_document(
            request.method, document_id, query, content_type, request.body
        )
        return Reply(status, body, {"Content-Type": kind})


def _answer(status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> Reply:
    data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
    content = {"Content-Type": "application/json;charset=UTF-8"} if body is not None else {}
    return Reply(status, data, {**content, "x-amzn-RequestId": str(uuid.uuid4()), **(headers or {})})


def _json(request: Request) -> Any:
    try:
        return request.json()
    except ValueError:
        return None


def _package_problem(body: Any, sim: _SimOrder) -> str | None:
    """Why a confirmShipment body is invalid for this order (InvalidInput), or None."""
    if not isinstance(body, dict) or not isinstance(body.get("packageDetail"), dict):
        return "Request is missing or has invalid parameters: packageDetail is required."
    if body.get("marketplaceId") != sim.order["MarketplaceId"]:
        return f"Invalid marketplaceId {body.get('marketplaceId')!r} for this order."
    detail = body["packageDetail"]
    reference = detail.get("packageReferenceId")
    if not isinstance(reference, str) or not reference.isdigit() or int(reference) <= 0:
        return _INVALID_TYPE.format("packageDetail.packageReferenceId")
    for name in ("carrierCode", "trackingNumber", "shipDate"):
        if not isinstance(detail.get(name), str) or not detail[name].strip():
            return f"Missing required field packageDetail.{name}."
    if detail["carrierCode"] not in CARRIER_CODES:
        return f"Invalid carrierCode {detail['carrierCode']!r}."
    if detail["carrierCode"] == "Other" and not detail.get("carrierName"):
        return "carrierName is required when carrierCode is Other."
    try:
        datetime.fromisoformat(detail["shipDate"].replace("Z", "+00:00"))
    except ValueError:
        return _INVALID_TYPE.format("packageDetail.shipDate")
    items = detail.get("orderItems")
    if not isinstance(items, list) or not items:
        return "Missing required field packageDetail.orderItems."
    known = {i["OrderItemId"] for i in sim.items}
    for item in items:
        item_id = item.get("orderItemId") if isinstance(item, dict) else None
        if item_id not in known:
            return (f"OrderItemId {item_id} is invalid, please obtain the value through the getOrderItems "
                    "API or Manage Orders page")  # fmt: skip
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            return _INVALID_TYPE.format("packageDetail.orderItems.quantity")
    return None


def _shipped_quantities(details: Any) -> dict[str, int]:
    shipped: dict[str, int] = {}
    for detail in details:
        for item in detail["orderItems"]:
            shipped[item["orderItemId"]] = shipped.get(item["orderItemId"], 0) + item["quantity"]
    return shipped


def _acknowledgement_messages(content: bytes) -> list[dict[str, Any]] | None:
    """The OrderAcknowledgement messages of a feed document; None when it is not one."""
    if b"<!DOCTYPE" in content or b"<!ENTITY" in content:
        return None
    try:
        root = ET.fromstring(content)  # noqa: S314 (no DTD, checked above)
    except ET.ParseError:
        return None
    if root.tag != "AmazonEnvelope" or (root.findtext("MessageType") or "").strip() != "OrderAcknowledgement":
        return None
    messages = []
    for message in root.findall("Message"):
        acknowledgement = message.find("OrderAcknowledgement")
        if acknowledgement is None:
            return None
        messages.append({
            "MessageID": (message.findtext("MessageID") or "").strip(),
            "AmazonOrderID": (acknowledgement.findtext("AmazonOrderID") or "").strip(),
            "StatusCode": (acknowledgement.findtext("StatusCode") or "").strip(),
            "Items": [
                ((i.findtext("AmazonOrderItemCode") or "").strip(),
                 (i.findtext("CancelReason") or "").strip())
                for i in acknowledgement.findall("Item")
            ],
        })  # fmt: skip
    return messages


def _processing_report(feed_id: str, processed: int, results: list[tuple[str, str, str, str]]) -> bytes:
    """The XML processing report Amazon writes for XML feeds (AmazonEnvelope / ProcessingReport)."""
    envelope = ET.Element("AmazonEnvelope", {
        "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xsi:noNamespaceSchemaLocation": "amzn-envelope.xsd",
    })  # fmt: skip
    header = ET.SubElement(envelope, "Header")
    ET.SubElement(header, "DocumentVersion").text = "1.02"
    ET.SubElement(header, "MerchantIdentifier").text = "M_SIMULATED"
    ET.SubElement(envelope, "MessageType").text = "ProcessingReport"
    message = ET.SubElement(envelope, "Message")
    ET.SubElement(message, "MessageID").text = "1"
    report = ET.SubElement(message, "ProcessingReport")
    ET.SubElement(report, "DocumentTransactionID").text = feed_id
    ET.SubElement(report, "StatusCode").text = "Complete"
    summary = ET.SubElement(report, "ProcessingSummary")
    failed = len({r[0] for r in results if r[1] == "Error" and r[0] != "0"})
    counts = {
        "MessagesProcessed": processed,
        "MessagesSuccessful": processed - failed,
        "MessagesWithError": failed if processed else len(results),
        "MessagesWithWarning": 0,
    }
    for name, value in counts.items():
        ET.SubElement(summary, name).text = str(value)
    for message_id, code, message_code, description in results:
        result = ET.SubElement(report, "Result")
        ET.SubElement(result, "MessageID").text = message_id
        ET.SubElement(result, "ResultCode").text = code
        ET.SubElement(result, "ResultMessageCode").text = message_code
        ET.SubElement(result, "ResultDescription").text = description
    document: bytes = ET.tostring(envelope, encoding="utf-8", xml_declaration=True)
    return document


def _s3_error(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>").encode()  # fmt: skip


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
