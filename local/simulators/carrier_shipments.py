"""The carrier simulator's Shipments API (EasyPost-like): create with rates, buy a rate, list and retrieve.

- `POST /v2/shipments` `{"shipment": {"to_address", "from_address", "parcel", "reference"?, "is_return"?}}`
  → 201 Shipment with `rates`. With `"is_return": true` EasyPost swaps the two addresses (send them as
  for the outbound parcel: to = the customer, from = the warehouse): the return goes from the customer
  to the warehouse. A missing address, street1, city, zip or country, or a parcel without a positive
  weight: 422 `PARAMETER.REQUIRED` / `PARAMETER.INVALID` with field errors; a US zip that is not
  5 (or 5+4) digits: 422 `ADDRESS.VERIFY.FAILURE` ("Address not found").
- `POST /v2/shipments/{id}/buy` `{"rate": {"id"}}` → 200 Shipment with `selected_rate`,
  `postage_label.label_url`, `tracking_code` and `tracker` (a tracker is created for the parcel, so
  its events reach the carrier webhook like any other); an unknown rate: 422 `SHIPMENT.RATE.INVALID`;
  a shipment already bought: 422 `SHIPMENT.POSTAGE.EXISTS` (buying twice never buys a second label).
- `GET /v2/shipments/{id}` → the Shipment (404 `NOT_FOUND`).
- `GET /v2/shipments?page_size&before_id&after_id&start_datetime&end_datetime&purchased` →
  `{"shipments": [newest first], "has_more"}` (page_size at most 100, 20 by default).
- `GET /files/postage_label/{name}.png` → the label image (a placeholder PNG).
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from local.simulators.kit import Request

# carrier, service, rate (USD), delivery days: the cheapest comes first only by chance of the dict order.
RATES = (
    ("USPS", "GroundAdvantage", Decimal("7.58"), 5),
    ("USPS", "Priority", Decimal("9.35"), 2),
    ("UPS", "Ground", Decimal("11.20"), 4),
    ("FedEx", "FEDEX_GROUND", Decimal("12.05"), 4),
)
_REQUIRED_ADDRESS = ("street1", "city", "zip", "country")
_US_ZIP = re.compile(r"\d{5}(-\d{4})?")
# A 1×1 transparent PNG: what `label_url` serves (a real label is a 4×6 image).
LABEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)

Answer = tuple[int, dict[str, Any]]


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.errors = status, code, errors or []

    def answer(self) -> Answer:
        return self.status, {"error": {"code": self.code, "message": str(self), "errors": self.errors}}


@dataclass
class Bought:
    """What buying hands the simulator's trackers: the parcel to track."""

    shipment_id: str
    reference: str | None
    carrier: str
    tracking_code: str
    is_return: bool


class ShipmentBook:
    """The account's shipments. `track(bought)` creates the parcel's tracker and answers it."""

    def __init__(
        self,
        *,
        mode: str,
        base_url: Callable[[], str],
        now: Callable[[], datetime],
        tracking_code: Callable[[Bought], str],
        track: Callable[[Bought], dict[str, Any]],
    ) -> None:
        self._mode = mode
        self._base_url = base_url
        self._now = now
        self._tracking_code = tracking_code
        self._track = track
        self._shipments: dict[str, dict[str, Any]] = {}  # insertion order = creation order

    def all(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(s) for s in self._shipments.values()]

    def create(self, request: Request) -> Answer:
        try:
            params = request.json(empty={})
        except ValueError:
            return Refused(400, "BAD_REQUEST", "The request body could not be parsed as JSON.").answer()
        fields = params.get("shipment") if isinstance(params, dict) else None
        try:
            shipment = self._new(fields)
        except Refused as refused:
            return refused.answer()
        self._shipments[shipment["id"]] = shipment
        return 201, copy.deepcopy(shipment)

    def get(self, request: Request) -> Answer:
        shipment = self._shipments.get(request.params["id"])
        if shipment is None:
            return Refused(404, "NOT_FOUND", "The requested resource could not be found.").answer()
        return 200, copy.deepcopy(shipment)

    def buy(self, request: Request) -> Answer:
        shipment = self._shipments.get(request.params["id"])
        if shipment is None:
            return Refused(404, "NOT_FOUND", "The requested resource could not be found.").answer()
        try:
            params = request.json(empty={})
        except ValueError:
            return Refused(400, "BAD_REQUEST", "The request body could not be parsed as JSON.").answer()
        rate = params.get("rate") if isinstance(params, dict) else None
        rate_id = rate.get("id") if isinstance(rate, dict) else None
        if shipment["postage_label"] is not None:
            message = "Shipment already has postage; a shipment is bought once."
            return Refused(422, "SHIPMENT.POSTAGE.EXISTS", message).answer()
        chosen = next((r for r in shipment["rates"] if r["id"] == rate_id), None)
        if chosen is None:
            errors = [{"field": "rate.id", "message": "must be one of this shipment's rates"}]
            return Refused(422, "SHIPMENT.RATE.INVALID", "Invalid rate for this shipment.", errors).answer()
        bought = Bought(shipment["id"], shipment["reference"], chosen["carrier"], "", shipment["is_return"])
        bought.tracking_code = self._tracking_code(bought)
        label_id = f"pl_{secrets.token_hex(16)}"
        at = _stamp(self._now())
        shipment.update(
            selected_rate=copy.deepcopy(chosen),
            tracking_code=bought.tracking_code,
            updated_at=at,
            postage_label={
                "object": "PostageLabel", "id": label_id, "created_at": at, "updated_at": at,
                "label_date": at, "label_resolution": 300, "label_size": "4x6", "label_type": "default",
                "label_file_type": "image/png",
                "label_url": f"{self._base_url()}/files/postage_label/{label_id}.png",
                "label_pdf_url": None, "label_zpl_url": None, "label_epl2_url": None,
            },
        )  # fmt: skip
        tracker = self._track(bought)
        shipment["tracker"] = tracker
        shipment["status"] = tracker.get("status") or "unknown"
        return 200, copy.deepcopy(shipment)

    def list(self, request: Request) -> Answer:
        query = request.query_first()
        try:
            size = int(query.get("page_size") or 20)
        except ValueError:
            size = 0
        if not 1 <= size <= 100:
            errors = [{"field": "page_size", "message": "must be between 1 and 100"}]
            return Refused(422, "PARAMETER.INVALID", "Invalid parameter.", errors).answer()
        found = list(reversed(self._shipments.values()))  # newest first
        ids = [s["id"] for s in found]
        if query.get("before_id") in ids:
            found = found[ids.index(query["before_id"]) + 1 :]
        if query.get("after_id") in ids:
            found = found[: ids.index(query["after_id"])]
        try:
            start, end = (_stamp(_instant(query[k])) if query.get(k) else None
                          for k in ("start_datetime", "end_datetime"))  # fmt: skip
        except Refused as refused:
            return refused.answer()
        found = [s for s in found if (not start or s["created_at"] >= start)
                 and (not end or s["created_at"] <= end)]  # fmt: skip
        purchased = query.get("purchased")
        if purchased in ("true", "false"):
            found = [s for s in found if (s["postage_label"] is not None) == (purchased == "true")]
        page = [copy.deepcopy(s) for s in found[:size]]
        return 200, {"shipments": page, "has_more": len(found) > size}

    def label(self, request: Request) -> bytes | None:
        name = request.params["name"]
        known = any((s["postage_label"] or {}).get("id") == name for s in self._shipments.values())
        return LABEL_PNG if known else None

    def note_tracker(self, shipment_id: str, tracker: dict[str, Any]) -> None:
        """A tracker of a bought shipment moved on: the shipment shows its status (as EasyPost does)."""
        shipment = self._shipments.get(shipment_id)
        if shipment is not None:
            shipment["tracker"] = copy.deepcopy(tracker)
            shipment["status"] = tracker.get("status") or shipment["status"]

    # --- creation ------------------------------------------------------------------------------

    def _new(self, fields: Any) -> dict[str, Any]:
        if not isinstance(fields, dict):
            errors = [{"field": "shipment", "message": "cannot be blank"}]
            raise Refused(422, "PARAMETER.REQUIRED", "Missing required parameter.", errors)
        to_address = _address(fields.get("to_address"), "to_address")
        from_address = _address(fields.get("from_address"), "from_address")
        parcel = _parcel(fields.get("parcel"))
        is_return = fields.get("is_return") is True
        if is_return:  # EasyPost swaps them: the parcel goes back to the original sender
            to_address, from_address = from_address, to_address
        reference = fields.get("reference")
        shipment_id = f"shp_{secrets.token_hex(16)}"
        at = _stamp(self._now())
        rates = [
            {
                "id": f"rate_{secrets.token_hex(16)}", "object": "Rate", "mode": self._mode,
                "created_at": at, "updated_at": at, "carrier": carrier, "service": service,
                "rate": str(rate), "currency": "USD", "retail_rate": str(rate * Decimal("1.25")),
                "retail_currency": "USD", "list_rate": str(rate * Decimal("1.1")), "list_currency": "USD",
                "delivery_days": days, "delivery_date": None, "delivery_date_guaranteed": False,
                "est_delivery_days": days, "shipment_id": shipment_id,
                "carrier_account_id": f"ca_{carrier.lower()}_simulator",
            }
            for carrier, service, rate, days in RATES
        ]  # fmt: skip
        return {
            "id": shipment_id, "object": "Shipment", "mode": self._mode, "created_at": at, "updated_at": at,
            "reference": reference if isinstance(reference, str) and reference else None,
            "is_return": is_return, "status": "unknown", "to_address": to_address,
            "from_address": from_address, "return_address": copy.deepcopy(from_address),
            "buyer_address": copy.deepcopy(to_address), "parcel": parcel, "rates": rates,
            "selected_rate": None, "postage_label": None, "tracking_code": None, "tracker": None,
            "fees": [], "messages": [], "options": {}, "refund_status": None, "insurance": None,
        }  # fmt: skip


def _address(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        errors: list[Any] = [{"field": where, "message": "cannot be blank"}]
        raise Refused(422, "PARAMETER.REQUIRED", "Missing required parameter.", errors)
    blank = [
        name for name in _REQUIRED_ADDRESS if not isinstance(raw.get(name), str) or not raw[name].strip()
    ]
    if blank:
        errors = [{"field": f"{where}.{name}", "message": "cannot be blank"} for name in blank]
        raise Refused(422, "PARAMETER.REQUIRED", "Missing required parameter.", errors)
    country = raw["country"].strip().upper()
    if country == "US" and not _US_ZIP.fullmatch(raw["zip"].strip()):
        errors = [
            {"field": "address", "message": "Address not found", "suggestion": None},
            {"field": "zip", "message": "Invalid ZIP code", "suggestion": None},
        ]
        raise Refused(422, "ADDRESS.VERIFY.FAILURE", "Address not found", errors)
    kept = {k: raw.get(k) for k in ("name", "company", "street1", "street2", "city", "state", "zip",
                                    "phone", "email")}  # fmt: skip
    return {"id": f"adr_{secrets.token_hex(16)}", "object": "Address", **kept, "country": country}


def _parcel(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        errors = [{"field": "parcel", "message": "cannot be blank"}]
        raise Refused(422, "PARAMETER.REQUIRED", "Missing required parameter.", errors)
    weight = raw.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        errors = [{"field": "parcel.weight", "message": "must be a positive number of ounces"}]
        raise Refused(422, "PARAMETER.INVALID", "Invalid parameter.", errors)
    dims = {k: raw.get(k) for k in ("length", "width", "height", "predefined_package")}
    return {"id": f"prcl_{secrets.token_hex(16)}", "object": "Parcel", "weight": float(weight), **dims}


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        errors = [{"field": "datetime", "message": f"not an ISO 8601 date-time: {text[:40]!r}"}]
        raise Refused(422, "PARAMETER.INVALID", "Invalid parameter.", errors) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
