"""Amazon's merchant-fulfilled returns report (GET_XML_RETURNS_DATA_BY_RETURN_DATE) read into ChannelReturns.

The document is an AmazonEnvelope whose Message holds one `return_details` per RMA: order_id, order_date,
amazon_rma_id, return_request_date, return_request_status, a_to_z_claim, is_prime, label_details
(tracking_id, return_carrier, currency_code, label_cost, label_type), label_to_be_paid_by, return_type,
order_amount, order_quantity, and one `item_details` per returned item (item_name, asin,
return_reason_code, merchant_sku, in_policy, return_quantity, resolution, refund_amount).

Parsed with the standard library's ElementTree, not defusedxml: the report comes from Amazon's own S3 over
TLS, and what defusedxml guards against is refused here anyway: a document with any DTD (`<!DOCTYPE`,
`<!ENTITY`) is rejected before parsing (Amazon's report has none), so no entity can be declared, let alone
expanded; ElementTree never fetches external resources; and the bundled expat (2.4+) caps entity
amplification on its own. The decompressed size is capped by the client (spapi.MAX_DOCUMENT_BYTES).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from chalicelib.domain.returns.events import ChannelReturn, ChannelReturnLine

CHANNEL = "amazon"
REPORT_TYPE = "GET_XML_RETURNS_DATA_BY_RETURN_DATE"

# Amazon's return reason codes (Seller Central's returns reports) → the returns policy's reasons
# (domain/returns/policy.REASONS). A code not listed reads as "other".
REASON_CODES = {
    "CR-DEFECTIVE": "defective",
    "CR-QUALITY_UNACCEPTABLE": "defective",
    "CR-MISSING_PARTS": "defective",
    "AMZ-PG-DEFECTIVE": "defective",
    "CR-DAMAGED_BY_CARRIER": "damaged",
    "CR-DAMAGED_BY_FC": "damaged",
    "AMZ-PG-DAMAGED": "damaged",
    "CR-SWITCHEROO": "wrong_item",
    "CR-EXTRA_ITEM": "wrong_item",
    "AMZ-PG-WRONG-ITEM": "wrong_item",
    "CR-NOT_AS_DESCRIBED": "not_as_described",
    "AMZ-PG-BAD-DESC": "not_as_described",
    "AMZ-PG-APP-TOO-SMALL": "size",
    "AMZ-PG-APP-TOO-LARGE": "size",
    "CR-UNWANTED_ITEM": "unwanted",
    "CR-FOUND_BETTER_PRICE": "unwanted",
    "CR-ORDERED_WRONG_ITEM": "changed_mind",
    "AMZ-PG-MISORDERED": "changed_mind",
    "CR-MISSED_ESTIMATED_DELIVERY": "late",
}
# return_request_status → ChannelReturn.status (requested | open | declined | closed | cancelled). Amazon
# authorises most MFN returns itself ("Authorized"); "Pending" waits for the seller. Unknown: requested,
# the state that commits the hub to nothing.
STATUSES = {
    "pending": "requested",
    "pendingapproval": "requested",
    "authorized": "open",
    "approved": "open",
    "closed": "closed",
    "completed": "closed",
    "rejected": "declined",
    "declined": "declined",
    "denied": "declined",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}
# item_details/resolution → ChannelReturn.resolution.
RESOLUTIONS = {"replacement": "exchange", "exchange": "exchange"}


class MalformedReport(ValueError):
    """The document is not a returns report at all (not XML, a DTD, another root): nothing in it is used."""


@dataclass
class ParsedReport:
    returns: list[ChannelReturn] = field(default_factory=list)
    # One line per return left out, naming the RMA (or its position) and why: no personal data.
    skipped: list[str] = field(default_factory=list)


def parse_returns_report(content: bytes, store: str, *, read_at: datetime) -> ParsedReport:
    """Every well-formed return of the document; a return missing what identifies it (order_id,
    amazon_rma_id, a line with a SKU and a quantity) is skipped and named in `skipped`. A missing or
    unreadable optional element leaves its field unset. `read_at` stands in for a missing request date."""
    root = _root(content)
    parsed = ParsedReport()
    for position, element in enumerate(_iter(root, "return_details"), start=1):
        found, why = _return(element, store, read_at)
        if found is None:
            rma = _text(element, "amazon_rma_id")
            parsed.skipped.append(f"{rma or f'return #{position}'}: {why}")
        else:
            parsed.returns.append(found)
    return parsed


def _root(content: bytes) -> ET.Element:
    if b"<!DOCTYPE" in content or b"<!ENTITY" in content:
        raise MalformedReport("the returns report declares a DTD; refused")
    try:
        return ET.fromstring(content)  # noqa: S314 (no DTD can reach the parser: checked above)
    except ET.ParseError as exc:
        raise MalformedReport(f"the returns report is not well-formed XML ({exc})") from None


def _iter(root: ET.Element, tag: str) -> Iterator[ET.Element]:
    """Elements named `tag` anywhere under root, namespaced or not."""
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.rsplit("}", 1)[-1] == tag:
            yield element


def _child(element: ET.Element, tag: str) -> ET.Element | None:
    return next((c for c in element if isinstance(c.tag, str) and c.tag.rsplit("}", 1)[-1] == tag), None)


def _text(element: ET.Element | None, tag: str) -> str | None:
    child = _child(element, tag) if element is not None else None
    text = (child.text or "").strip() if child is not None else ""
    return text or None


def _return(element: ET.Element, store: str, read_at: datetime) -> tuple[ChannelReturn | None, str]:
    order_id, rma = _text(element, "order_id"), _text(element, "amazon_rma_id")
    if order_id is None:
        return None, "no order_id"
    if rma is None:
        return None, "no amazon_rma_id"
    lines, refunded, resolution = _lines(element)
    if not lines:
        return None, "no item_details with a merchant_sku and a positive return_quantity"
    label = _child(element, "label_details")
    status = (_text(element, "return_request_status") or "").replace(" ", "").replace("_", "").lower()
    return (
        ChannelReturn(
            channel=CHANNEL,
            store=store,
            external_order_id=order_id,
            external_return_id=rma,
            status=STATUSES.get(status, "requested"),
            lines=tuple(lines),
            at=_moment(_text(element, "return_request_date")) or read_at,
            label_provided=True,  # Amazon issues the return label (prepaid or not) with the RMA
            tracking_number=_text(label, "tracking_id"),
            carrier=_text(label, "return_carrier"),
            resolution=resolution,
            refunded=refunded,
        ),
        "",
    )


def _lines(element: ET.Element) -> tuple[list[ChannelReturnLine], Decimal | None, str]:
    """The return's lines (one per SKU and reason, quantities summed: Amazon lists a unit per
    item_details at times), what Amazon refunded (None when no item says), and the resolution."""
    quantities: dict[tuple[str, str], int] = {}
    refunded: Decimal | None = None
    resolution = "refund"
    for item in (c for c in element if isinstance(c.tag, str) and c.tag.rsplit("}", 1)[-1] == "item_details"):
        sku, quantity = _text(item, "merchant_sku"), _quantity(_text(item, "return_quantity"))
        if sku is None or quantity is None:
            continue
        reason = REASON_CODES.get((_text(item, "return_reason_code") or "").upper(), "other")
        quantities[(sku, reason)] = quantities.get((sku, reason), 0) + quantity
        amount = _amount(_text(item, "refund_amount"))
        if amount is not None:
            refunded = (refunded or Decimal(0)) + amount
        resolution = RESOLUTIONS.get((_text(item, "resolution") or "").lower(), resolution)
    lines = [ChannelReturnLine(quantity=q, sku=sku, reason=reason) for (sku, reason), q in quantities.items()]
    return lines, refunded, resolution


def _quantity(text: str | None) -> int | None:
    try:
        value = int(Decimal(text)) if text is not None else None
    except (InvalidOperation, ValueError):
        return None
    return value if value is not None and value > 0 else None


def _amount(text: str | None) -> Decimal | None:
    try:
        value = Decimal(text) if text is not None else None
    except InvalidOperation:
        return None
    return value if value is not None and value.is_finite() and value >= 0 else None


def _moment(text: str | None) -> datetime | None:
    """An ISO 8601 time (Amazon writes 2020-11-12T12:44:17Z; a bare date is midnight UTC), else None."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
