"""The Amazon simulator's Reports API 2021-06-30 and the merchant-fulfilled returns it reports.

createReport (202 {reportId}) → getReport (IN_QUEUE, IN_PROGRESS after half of `report_delay` seconds on the
simulator's clock, then DONE with a reportDocumentId; CANCELLED with no document when the window holds no
data, as Amazon cancels empty reports itself; FATAL when `fail_next_report` says so) → getReportDocument
({reportDocumentId, url, compressionAlgorithm: GZIP when the simulator gzips reports}) → the document from
the pre-signed URL the simulator serves itself (its simulated S3). Only GET_XML_RETURNS_DATA_BY_RETURN_DATE
is built: the XML Amazon writes for merchant-fulfilled returns, from returns added with `add_return`.
"""

from __future__ import annotations

import copy
import string
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.simulators.amazon import AmazonSimulator

REPORTS_PATH = "/reports/2021-06-30"
RETURNS_REPORT = "GET_XML_RETURNS_DATA_BY_RETURN_DATE"
# Documented usage plans of the Reports operations the simulator answers: operation → (rps, burst).
REPORTS_RATE_LIMITS: dict[str, tuple[float, int]] = {
    "createReport": (0.0167, 15),
    "getReport": (2.0, 15),
    "getReportDocument": (0.0167, 15),
}
MAX_SPAN = timedelta(days=60)  # "You can request up to 60 days of data in a single report."
# Reason codes whose return label Amazon charges to the seller (the buyer is not at fault).
_SELLER_FAULT = frozenset({
    "CR-DEFECTIVE", "CR-QUALITY_UNACCEPTABLE", "CR-MISSING_PARTS", "CR-DAMAGED_BY_CARRIER",
    "CR-DAMAGED_BY_FC", "CR-SWITCHEROO", "CR-EXTRA_ITEM", "CR-NOT_AS_DESCRIBED", "AMZ-PG-BAD-DESC",
})  # fmt: skip
RETURN_STATUSES = ("Pending", "Authorized", "Approved", "Closed", "Rejected", "Cancelled")
_RETURNABLE = ("Shipped", "PartiallyShipped", "InvoiceUnconfirmed")

Answer = tuple[int, dict[str, Any] | None]


@dataclass
class _Return:
    rma: str
    order_id: str
    order_date: str
    requested: datetime
    status: str
    items: list[dict[str, str]]  # item_details, in Amazon's element order
    label: dict[str, str]  # label_details
    paid_by: str  # label_to_be_paid_by
    order_amount: str
    order_quantity: int
    refund: str  # what refund_amount says once Amazon refunded the buyer


@dataclass
class _Report:
    report_id: str
    marketplace_ids: list[str]
    start: datetime
    end: datetime
    created: float  # simulator clock
    created_time: str
    status: str = "IN_QUEUE"
    fails: bool = False
    started_time: str | None = None
    ended_time: str | None = None
    document_id: str | None = None


class AmazonReports:
    """The Reports side of one AmazonSimulator (it routes the HTTP requests here and serves documents)."""

    def __init__(self, sim: AmazonSimulator, *, report_delay: float, clock: Callable[[], float]) -> None:
        self._sim = sim
        self.report_delay = report_delay  # seconds (simulator clock) from createReport until it is built
        self._clock = clock
        self._lock = threading.RLock()
        self._returns: dict[str, _Return] = {}
        self._reports: dict[str, _Report] = {}
        self._fail_next = 0

    def routes(self) -> list[tuple[str, str, str, Callable[[Any], Answer]]]:
        """(method, path, operation, work given the request) for the simulator's router."""
        return [
            ("POST", f"{REPORTS_PATH}/reports", "createReport", lambda r: self.create_report(_json(r))),
            ("GET", f"{REPORTS_PATH}/reports/{{id}}", "getReport", lambda r: self.get_report(r.params["id"])),
            ("GET", f"{REPORTS_PATH}/documents/{{id}}", "getReportDocument",
             lambda r: self.get_report_document(r.params["id"])),
        ]  # fmt: skip

    # --- seller-side actions -----------------------------------------------------------------

    def add_return(
        self,
        order_id: str,
        sku: str,
        quantity: int = 1,
        reason: str = "CR-DEFECTIVE",
        *,
        requested_at: datetime | None = None,
        status: str = "Authorized",
        refunded: bool = False,
    ) -> str:
        """A buyer's return of `quantity` units of `sku` from a shipped order, authorised by Amazon with a
        prepaid label; later reports covering `requested_at` (default now) list it. Answers the RMA id."""
        if status not in RETURN_STATUSES:
            raise ValueError(f"return_request_status must be one of {RETURN_STATUSES}")
        order, items, currency = self._sim.order_for_return(order_id)
        if order["OrderStatus"] not in _RETURNABLE:
            raise ValueError(f"order {order_id} is {order['OrderStatus']}: only shipped orders are returned")
        item = next((i for i in items if i["SellerSKU"] == sku), None)
        if item is None:
            raise ValueError(f"order {order_id} has no item with SKU {sku!r}")
        with self._lock:
            earlier = sum(
                int(i["return_quantity"])
                for r in self._returns.values()
                if r.order_id == order_id and r.status not in ("Rejected", "Cancelled")
                for i in r.items
                if i["merchant_sku"] == sku
            )
            if quantity < 1 or earlier + quantity > int(item["QuantityOrdered"]):
                raise ValueError(f"{quantity} unit(s) of {sku}: {earlier} of {item['QuantityOrdered']} "
                                 "already in a return")  # fmt: skip
            unit = Decimal(item["ItemPrice"]["Amount"]) / int(item["QuantityOrdered"])
            details = {
                "item_name": str(item["Title"]),
                "asin": str(item["ASIN"]),
                "return_reason_code": reason,
                "merchant_sku": sku,
                "in_policy": "Y",
                "return_quantity": str(quantity),
                "resolution": "StandardRefund",
            }
            refund = f"{unit * quantity:.2f}"
            if refunded:
                details["refund_amount"] = refund
            seller_pays = reason in _SELLER_FAULT
            rng = self._sim.rng
            rma = "D" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(8)) + "RMA"
            self._returns[rma] = _Return(
                rma=rma,
                order_id=order_id,
                order_date=str(order["PurchaseDate"]),
                requested=(requested_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0),
                status=status,
                items=[details],
                label={
                    "tracking_id": f"9{rng.randint(10**20, 10**21 - 1)}",
                    "return_carrier": "USPS",
                    "currency_code": currency,
                    "label_cost": "7.45" if seller_pays else "0.0",
                    "label_type": "AmazonPrePaidLabel" if seller_pays else "AmazonUnPaidLabel",
                },
                paid_by="Seller" if seller_pays else "Customer",
                order_amount=str((order.get("OrderTotal") or {}).get("Amount", "0")),
                order_quantity=sum(int(i["QuantityOrdered"]) for i in items),
                refund=refund,
            )
        return rma

    def set_return_status(self, rma: str, status: str, *, refunded: bool | None = None) -> None:
        """Move a return along (Closed once the parcel is back and refunded); refund_amount when refunded."""
        if status not in RETURN_STATUSES:
            raise ValueError(f"return_request_status must be one of {RETURN_STATUSES}")
        with self._lock:
            ret = self._returns[rma]
            ret.status = status
            if refunded:
                for item in ret.items:
                    item["refund_amount"] = ret.refund

    def fail_next_report(self, times: int = 1) -> None:
        """The next `times` reports created end FATAL."""
        with self._lock:
            self._fail_next += times

    def cancel_report(self, report_id: str) -> bool:
        """cancelReport: a report still IN_QUEUE is CANCELLED (no processing times); False otherwise."""
        self.advance()
        with self._lock:
            report = self._reports.get(report_id)
            if report is None or report.status != "IN_QUEUE":
                return False
            report.status, report.ended_time = "CANCELLED", _iso(datetime.now(UTC))
            return True

    def reports(self) -> list[dict[str, Any]]:
        """Every report created, advanced as far as the clock allows (getReport's view)."""
        self.advance()
        with self._lock:
            return [self._view(r) for r in self._reports.values()]

    def returns(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(vars(r)) for r in self._returns.values()]

    # --- operations --------------------------------------------------------------------------

    def create_report(self, body: Any) -> Answer:
        spec = body if isinstance(body, dict) else {}
        if spec.get("reportType") != RETURNS_REPORT:
            return 400, _errors(f"Invalid reportType {spec.get('reportType')!r} (the simulator builds "
                                f"{RETURNS_REPORT} only).")  # fmt: skip
        marketplaces = spec.get("marketplaceIds")
        if (
            not isinstance(marketplaces, list)
            or not marketplaces
            or not all(self._sim.knows_marketplace(m) for m in marketplaces)
        ):
            return 400, _errors("Invalid marketplaceIds.")
        now = datetime.now(UTC)
        start, end = _moment(spec.get("dataStartTime"), now), _moment(spec.get("dataEndTime"), now)
        if start is None or end is None:
            return 400, _errors("dataStartTime and dataEndTime must be ISO 8601 date-times.")
        if end > now + timedelta(seconds=5) or start > end:
            return 400, _errors("dataStartTime must be before dataEndTime, and both no later than now.")
        if end - start > MAX_SPAN:
            return 400, _errors("The requested date range exceeds the 60 days this report covers.")
        with self._lock:
            report_id = str(self._sim.rng.randint(10**10, 10**11 - 1))
            fails = self._fail_next > 0
            self._fail_next -= 1 if fails else 0
            self._reports[report_id] = _Report(
                report_id, list(marketplaces), start, end, self._clock(), _iso(now), fails=fails
            )
        return 202, {"reportId": report_id}

    def get_report(self, report_id: str) -> Answer:
        self.advance()
        with self._lock:
            report = self._reports.get(report_id)
            if report is None:
                return 404, _errors("The resource specified does not exist.", "NotFound")
            return 200, self._view(report)

    def get_report_document(self, document_id: str) -> Answer:
        with self._lock:
            known = any(r.document_id == document_id for r in self._reports.values())
        if not known:
            return 404, _errors("The resource specified does not exist.", "NotFound")
        url, gzipped = self._sim.result_document_url(document_id)
        answer = {"reportDocumentId": document_id, "url": url}
        if gzipped:
            answer["compressionAlgorithm"] = "GZIP"
        return 200, answer

    def advance(self) -> None:
        """Move reports along the clock: IN_PROGRESS after half the delay, built after all of it."""
        now = self._clock()
        with self._lock:
            for report in self._reports.values():
                if report.status not in ("IN_QUEUE", "IN_PROGRESS"):
                    continue
                if report.status == "IN_QUEUE" and now >= report.created + self.report_delay / 2:
                    report.status, report.started_time = "IN_PROGRESS", _iso(datetime.now(UTC))
                if now >= report.created + self.report_delay:
                    self._build(report)

    def _build(self, report: _Report) -> None:
        report.started_time = report.started_time or _iso(datetime.now(UTC))
        report.ended_time = _iso(datetime.now(UTC))
        if report.fails:
            report.status = "FATAL"
            return
        found = sorted(
            (r for r in self._returns.values() if report.start <= r.requested <= report.end),
            key=lambda r: (r.requested, r.rma),
        )
        if not found:
            report.status = "CANCELLED"  # Amazon's own cancellation of a report with no data
            return
        report.document_id = self._sim.store_result_document(_returns_xml(found), "text/xml")
        report.status = "DONE"

    def _view(self, report: _Report) -> dict[str, Any]:
        view: dict[str, Any] = {
            "reportId": report.report_id,
            "reportType": RETURNS_REPORT,
            "marketplaceIds": list(report.marketplace_ids),
            "dataStartTime": _iso(report.start),
            "dataEndTime": _iso(report.end),
            "createdTime": report.created_time,
            "processingStatus": report.status,
        }
        optional = {"processingStartTime": report.started_time, "processingEndTime": report.ended_time,
                    "reportDocumentId": report.document_id}  # fmt: skip
        view.update({k: v for k, v in optional.items() if v is not None})
        return view


def _returns_xml(found: list[_Return]) -> bytes:
    """The report document: an AmazonEnvelope whose Message lists one return_details per RMA."""
    envelope = ET.Element("AmazonEnvelope", {
        "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xsi:noNamespaceSchemaLocation": "amzn-envelope.xsd",
    })  # fmt: skip
    ET.SubElement(ET.SubElement(envelope, "Header"), "DocumentVersion").text = "1.00"
    ET.SubElement(envelope, "MessageType").text = "Returns-Report"
    message = ET.SubElement(envelope, "Message")
    for ret in found:
        details = ET.SubElement(message, "return_details")
        for item in ret.items:
            element = ET.SubElement(details, "item_details")
            for name, value in item.items():
                ET.SubElement(element, name).text = value
        fields = {
            "order_id": ret.order_id,
            "order_date": ret.order_date,
            "amazon_rma_id": ret.rma,
            "return_request_date": _iso(ret.requested),
            "return_request_status": ret.status,
            "a_to_z_claim": "false",
            "is_prime": "N",
        }
        for name, value in fields.items():
            ET.SubElement(details, name).text = value
        label = ET.SubElement(details, "label_details")
        for name, value in ret.label.items():
            ET.SubElement(label, name).text = value
        tail = {"label_to_be_paid_by": ret.paid_by, "return_type": "C-Returns",
                "order_amount": ret.order_amount, "order_quantity": str(ret.order_quantity)}  # fmt: skip
        for name, value in tail.items():
            ET.SubElement(details, name).text = value
    document: bytes = ET.tostring(envelope, encoding="utf-8", xml_declaration=True)
    return document


def _moment(value: Any, default: datetime) -> datetime | None:
    if value is None:
        return default
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _errors(message: str, code: str = "InvalidInput") -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "details": ""}]}


def _json(request: Any) -> Any:
    try:
        return request.json()
    except ValueError:
        return None
