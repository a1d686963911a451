"""What a shipped milestone confirms to Amazon: a package per parcel, its reference id, carrier and items."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from chalicelib.domain.order import Order
from chalicelib.domain.publishing import Milestone

# Amazon's CarrierCode values for the carriers the hub meets, keyed by name without case or punctuation.
# Anything else goes as carrierCode "Other" with the hub's carrier name as carrierName.
CARRIER_CODES: dict[str, str] = {
    "usps": "USPS",
    "ups": "UPS",
    "upsmailinnovations": "UPS Mail Innovations",
    "fedex": "FedEx",
    "fedexsmartpost": "FedEx SmartPost",
    "dhl": "DHL",
    "dhlexpress": "DHL",
    "dhlecommerce": "DHL eCommerce",
    "ontrac": "OnTrac",
    "lasership": "Lasership",
    "amazonshipping": "Amazon Shipping",
    "canadapost": "Canada Post",
    "royalmail": "Royal Mail",
    "parcelforce": "Parcelforce",
    "dpd": "DPD",
    "gls": "GLS",
    "hermes": "Hermes",
    "evri": "Evri",
    "deutschepost": "Deutsche Post",
    "australiapost": "Australia Post",
    "japanpost": "Japan Post",
    "yamato": "Yamato Transport",
    "yamatotransport": "Yamato Transport",
    "sagawa": "Sagawa Express",
    "sagawaexpress": "Sagawa Express",
}


def package_reference_id(publication_id: str, parcel_index: int) -> str:
    """A positive number, stable for (publication, parcel): 12 digits of the publication's hash + index."""
    digest = int.from_bytes(hashlib.sha256(publication_id.encode()).digest()[:8], "big")
    return str((10**12 + digest % 10**12) * 100 + parcel_index + 1)


def carrier_code(carrier: str) -> str:
    return CARRIER_CODES.get(re.sub(r"[^a-z0-9]", "", carrier.lower()), "Other")


def packages_for(order: Order, milestone: Milestone) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(parcel, orderItems) per parcel: the parcel's own lines, else the order's record of that parcel;
    a lone parcel carries the whole shipment; several parcels without lines share its units out."""
    known = {
        p.tracking_number: p.lines
        for s in order.shipments
        if s.shipment_id == milestone.shipment_id
        for p in s.parcels
    }
    parcels = [p for p in milestone.parcels if p.get("tracking_number")]
    if len(parcels) == 1 and not parcels[0].get("lines"):
        return [(parcels[0], _items(milestone.lines))]
    packages: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    unassigned: list[dict[str, Any]] = []
    for parcel in parcels:
        lines = parcel.get("lines") or known.get(str(parcel["tracking_number"]))
        if lines:
            packages.append((parcel, _items(lines)))
        else:
            unassigned.append(parcel)
    if unassigned:
        packages.extend(_share_out(unassigned, milestone.lines, packages))
    return packages


def _share_out(
    parcels: list[dict[str, Any]],
    lines: list[dict[str, Any]],
    packages: list[tuple[dict[str, Any], list[dict[str, Any]]]],
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    # Units not yet in a package, dealt round-robin; a parcel left without a unit is not confirmed
    # (Amazon wants at least one item per package) — its tracking still reaches the buyer through the rest.
    taken: dict[str, int] = {}
    for _, items in packages:
        for item in items:
            taken[item["orderItemId"]] = taken.get(item["orderItemId"], 0) + item["quantity"]
    units = [
        item["orderItemId"]
        for item in _items(lines)
        for _ in range(max(0, item["quantity"] - taken.pop(item["orderItemId"], 0)))
    ]
    shares: list[dict[str, int]] = [{} for _ in parcels]
    for position, item_id in enumerate(units):
        share = shares[position % len(parcels)]
        share[item_id] = share.get(item_id, 0) + 1
    return [
        (parcel, [{"orderItemId": k, "quantity": v} for k, v in share.items()])
        for parcel, share in zip(parcels, shares, strict=True)
        if share
    ]


def _items(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[str, int] = {}
    for line in lines:
        quantity = int(line.get("quantity") or 0)
        if quantity > 0:
            merged[str(line["line_id"])] = merged.get(str(line["line_id"]), 0) + quantity
    return [{"orderItemId": item_id, "quantity": quantity} for item_id, quantity in merged.items()]
