"""3PL warehouse simulator: fulfilment orders, partial shipments, cancel/recall, stock and signed webhooks.

There is no single 3PL standard; this is the hub's documented contract, modelled on ShipBob, ShipHero
and Shipwire. Every request needs `Authorization: Bearer <api_key>` (else 401). Errors answer
`{"error": {"code", "message"[, "field"]}}`.

- `POST /v1/fulfillment_orders` body `{"reference", "order_id", "warehouse", "shipping_method":
  "standard"|"express", "ship_to": {"name", "line1", "line2", "city", "region", "postal_code",
  "country"}, "lines": [{"line_id", "sku", "quantity"}], "promised_by": ISO date-time | null}` → 201
  FulfillmentOrder. An `Idempotency-Key` seen before answers its order with 200 and
  `Idempotent-Replayed: true` (another body under that key: 409 `idempotency_conflict`); without one,
  an existing `reference` does the same (references are unique per account). Invalid or missing
  fields, an unknown warehouse or SKU, a quantity below 1: 422 `invalid_request` with `field`
  (e.g. `lines[1].sku`). Failed requests are not remembered under their key.
- `GET /v1/fulfillment_orders/{id}` → the FulfillmentOrder; 404 `not_found`.
- `POST /v1/fulfillment_orders/{id}/cancel` → 200: everything not shipped yet is cancelled; status
  `cancelled` (nothing shipped) or `partially_cancelled` (shipped lines stay). 409 `already_shipped`
  when everything shipped. Idempotent.
- `POST /v1/fulfillment_orders/{id}/recall` → intercepts shipped parcels still at the warehouse (a
  parcel is handed to its carrier `handover_delay_s` after shipping): 200 `{"recalled": [tracking
  codes of every recalled parcel], "handed_to_carrier": [codes too late to recall],
  "fulfillment_order"}`; 409 `handed_to_carrier` when every shipped parcel has left (nothing shipped
  yet: 200 with empty lists). Recalled units count as cancelled and go back to stock. Idempotent;
  answered synchronously (no webhook).
- `GET /v1/inventory?sku=A&sku=B[&warehouse=W]` → `{"items": [{"sku", "warehouse", "available",
  "expected_at"}]}`, one per warehouse stocking the SKU; `expected_at` (ISO) only when `available` is 0.
  Unknown SKUs are left out. `available` is stock on hand: an order takes it when it ships.
- `POST /v1/returns`, `GET /v1/returns/{id}`: the returns desk (expected returns, receipt, inspection,
  `return.received` / `return.inspected` webhooks, control endpoints under `/_sim/returns/`): see
  `threepl_returns.py`; the desk is `sim.returns`.
- 429 (with `Retry-After`, seconds) and 5xx are injected with `fail_next`.

FulfillmentOrder: `{"id": "fo_...", "reference", "order_id", "warehouse", "shipping_method",
"promised_by", "status", "lines": [{"line_id", "sku", "quantity", "shipped_quantity",
"cancelled_quantity"}], "shipments": [Shipment], "created_at", "updated_at"}`; status is `accepted`,
`partially_shipped`, `shipped`, `cancelled` or `partially_cancelled`. Shipment: `{"id": "shp_...",
"shipped_at", "lines": [{"line_id", "sku", "quantity"}], "parcels": [{"carrier": USPS|UPS|FedEx|DHL,
"tracking_code", "status": awaiting_pickup|handed_to_carrier|recalled, "lines": [...]}]}`.
(`shipping_method`, `promised_by`, `updated_at`, `cancelled_quantity` and parcel `status` extend the
brief's shape.)

Webhooks: `POST webhook_url` with `{"id": "evt_...", "type", "created": unix, "data":
{"fulfillment_order": snapshot, "shipment": Shipment | null}}` for `fulfillment_order.accepted`,
`shipment.created` (one per shipment, possibly partial) and `fulfillment_order.cancelled`. Headers
`Content-Type: application/json`, `X-ThreePL-Event-Id`, `X-ThreePL-Signature: t=<unix>,v1=<hex
HMAC-SHA256(secret as UTF-8, "<t>." + raw body)>` (one `v1` per active secret while rotating), signed
afresh per attempt. Non-2xx or no answer is retried after `RETRY_DELAYS_S` × `time_scale` (about a day
in all). At least once and in no guaranteed order: `duplicate_rate` sends some twice, `reorder_rate`
holds some back until the next event has gone.

Tracking codes follow EasyPost's test convention so the carrier simulator can play a scenario:
`EZ4` + 9 digits (EZ4… = delivered), unique per parcel; `tracking_code_factory(carrier, n)` (n: the
simulator's 1-based parcel counter) picks others, e.g. `EZ1000000001` for a parcel stuck pre-transit.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack
from urllib.parse import parse_qs, unquote

from local.simulators.kit import (
    Delivery,
    FaultQueue,
    Outgoing,
    Post,
    Reply,
    Request,
    Timeline,
    WebhookKnobs,
    WebhookSender,
    WebhookSimulatorServer,
    event_sender,
)
from local.simulators.threepl_api import (
    IdempotencyKeys,
    Refusal,
    iso_now,
    json_body,
    new_id,
    text,
    validated_lines,
)
from local.simulators.threepl_returns import (
    RETURN_EVENT_TYPES,
    SECONDS_SUFFIX,
    ReturnsDesk,
    control,
)

log = logging.getLogger("local.threepl")

EVENT_TYPES = (
    "fulfillment_order.accepted",
    "shipment.created",
    "fulfillment_order.cancelled",
    *RETURN_EVENT_TYPES,
)
CARRIERS = ("USPS", "UPS", "FedEx", "DHL")
SHIPPING_METHODS = ("standard", "express")
# 10 s, 1 min, 5 min, 30 min, 1 h, 3 h, 6 h, 12 h: the last attempt is about 22.6 h after the first.
RETRY_DELAYS_S = (10.0, 60.0, 300.0, 1800.0, 3600.0, 3 * 3600.0, 6 * 3600.0, 12 * 3600.0)
REORDER_WINDOW_S = 30.0  # an event held back goes anyway after this (× time_scale) if nothing overtakes it
BACKORDER_LEAD_DAYS = 5
OPEN_CATALOGUE_STOCK = 1000
DEFAULT_WAREHOUSES = ("WH-EAST", "WH-WEST")


@dataclass
class _Order:
    id: str
    request: dict[str, Any]  # the validated create body (ship_to stays here, never in a snapshot)
    fingerprint: str
    lines: list[dict[str, Any]]
    created_at: str
    updated_at: str
    split: bool
    held: bool = False
    shipments: list[dict[str, Any]] = field(default_factory=list)

    def pending(self, line: dict[str, Any]) -> int:
        return int(line["quantity"] - line["shipped_quantity"] - line["cancelled_quantity"])

    @property
    def status(self) -> str:
        total = sum(line["quantity"] for line in self.lines)
        shipped = sum(line["shipped_quantity"] for line in self.lines)
        cancelled = sum(line["cancelled_quantity"] for line in self.lines)
        if cancelled == total:
            return "cancelled"
        if shipped + cancelled == total:
            return "partially_cancelled" if cancelled else "shipped"
        return "partially_shipped" if shipped else "accepted"


class ThreePLSimulator(WebhookSimulatorServer):
    """One 3PL account: its REST API on `url` (HUB_3PL_API_BASE) and its webhooks to `webhook_url`.

    Accepted orders ship by themselves `ship_after_s` × `time_scale` later (not with `auto_ship=False`
    or after `hold`), as far as stock allows: back-ordered units wait for `restock`. `split_rate` of
    the orders ship in two parts, each part after its own delay. Every shipment has
    `parcels_per_shipment` (min, max) parcels. `inventory` is {warehouse: {sku: units}}; without it
    the catalogue is open (warehouses `DEFAULT_WAREHOUSES`, any SKU stocked). Thread-safe.

    `clock` (seconds, time.monotonic by default) times automatic shipping; the handover to the carrier
    and webhook retries keep real time. A test with a fake clock moves it on, then `settle()` waits
    until the warehouse has handled every shipping task due.
    """

    # Over 60 lines: one line per knob and per collaborator it starts, nothing else.
    def __init__(
        self,
        provider: str,
        api_key: str,
        webhook_secret: str,
        *,
        ship_after_s: float = 2.0,
        handover_delay_s: float = 5.0,
        split_rate: float = 0.0,
        parcels_per_shipment: tuple[int, int] = (1, 1),
        reorder_rate: float = 0.0,
        inventory: Mapping[str, Mapping[str, int]] | None = None,
        auto_ship: bool = True,
        auto_inspect: bool = True,
        inspect_after_s: float = 2.0,
        carriers: Iterable[str] = CARRIERS,
        tracking_code_factory: Callable[[str, int], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        **knobs: Unpack[WebhookKnobs],
    ) -> None:
        if not 1 <= parcels_per_shipment[0] <= parcels_per_shipment[1]:
            raise ValueError("parcels_per_shipment must be (min, max) with 1 <= min <= max")
        super().__init__(name="3pl-sim", log=log, methods=("GET", "POST"), **knobs)
        self.provider = provider
        self.api_key = api_key
        self.ship_after_s = ship_after_s
        self.handover_delay_s = handover_delay_s
        self.split_rate = split_rate
        self.parcels_per_shipment = parcels_per_shipment
        self.reorder_rate = reorder_rate
        self.auto_ship = auto_ship
        self.carriers = tuple(carriers)
        self._tracking_code = tracking_code_factory or self._easypost_delivered_code
        self._tracking_base = self._rng.randrange(10**8)
        self._parcel_seq = itertools.count(1)
        self._secrets = [webhook_secret]
        self._open_catalogue = inventory is None
        source = inventory if inventory is not None else {w: {} for w in DEFAULT_WAREHOUSES}
        self._stock: dict[str, dict[str, int]] = {w: dict(skus) for w, skus in source.items()}
        self._lock = threading.RLock()
        self._orders: dict[str, _Order] = {}
        self._hold_for: set[str] = set()  # hub order ids whose fulfilment orders are held on arrival
        self._by_reference: dict[str, str] = {}
        self._keys = IdempotencyKeys()  # Idempotency-Key → the fulfilment order it created
        self._faults = FaultQueue()
        self.events: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, str | None, int]] = []  # method, path, Idempotency-Key, status
        self._webhooks: WebhookSender[dict[str, Any], Delivery] = self._run(
            event_sender(
                self._post,
                self,
                self._rng,
                RETRY_DELAYS_S,
                name="3pl-sim-webhooks",
                reorder_rate=lambda: self.reorder_rate,
                park_s=REORDER_WINDOW_S,
            )
        )
        self.deliveries: list[Delivery] = self._webhooks.deliveries
        # Automatic shipping, on `clock`: fulfilment order ids.
        self._warehouse: Timeline[str] = self._run(
            Timeline(self._auto_ship, clock=clock, name="3pl-sim-warehouse")
        )
        self.inspect_after_s = inspect_after_s
        # The returns desk (threepl_returns.py): `sim.returns.receive(...)`, `.inspect`, `.hold`, `.resend`.
        self.returns = self._returns_desk(auto_inspect)
        # Automatic inspection of received returns, on `clock`: hub return ids.
        self._inspection: Timeline[str] = self._run(
            Timeline(self.returns.inspect_due, clock=clock, name="3pl-sim-inspection")
        )

    def _returns_desk(self, auto_inspect: bool) -> ReturnsDesk:
        return ReturnsDesk(
            lock=self._lock,
            warehouses=lambda: list(self._stock),
            stocked=self._stocked,
            put_away=self._put_away,
            emit=self._emit_event,
            redeliver=self._redeliver,
            schedule=lambda return_id: self._inspection.after(
                self.inspect_after_s * self.time_scale, return_id
            ),
            auto_inspect=auto_inspect,
        )

    # --- knobs --------------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500, *, retry_after: int = 1) -> None:
        """The next `n` API requests answer `status` (429 and 503 with Retry-After) unexecuted; 0 drops
        the connection."""
        self._faults.add(n, status, retry_after=retry_after)

    def hold(self, fo_id: str) -> None:
        """Keep this order from shipping by itself (ship_now still ships it)."""
        with self._lock:
            self._order(fo_id).held = True

    def hold_order(self, order_id: str) -> None:
        """Hold every fulfilment order of the hub's `order_id` from the moment it arrives (call it before
        the hub asks): the order waits at the warehouse until `release` or `ship_now`, however slow the
        machine, instead of a test racing the automatic shipping to `hold` it."""
        with self._lock:
            self._hold_for.add(order_id)
            for order in self._orders.values():
                if order.request["order_id"] == order_id and not order.shipments:
                    order.held = True

    def release(self, fo_id: str) -> None:
        with self._lock:
            self._order(fo_id).held = False
        self._schedule(fo_id, self.ship_after_s)

    def ship_now(self, fo_id: str, lines: Mapping[str, int] | Iterable[str] | None = None) -> dict[str, Any]:
        """Ship now, held or not: `lines` maps line_id → units (or names lines to ship in full); None
        ships all that is pending and in stock. Returns the Shipment; ValueError if it cannot ship."""
        with self._lock:
            order = self._order(fo_id)
            by_id = {line["line_id"]: line for line in order.lines}
            if lines is None:
                plan = self._shippable(order)
            elif isinstance(lines, Mapping):
                plan = dict(lines)
            else:
                plan = {line_id: order.pending(by_id[line_id]) for line_id in lines if line_id in by_id}
            warehouse = order.request["warehouse"]
            for line_id, units in plan.items():
                line = by_id.get(line_id)
                if line is None or not 0 < units <= order.pending(line):
                    raise ValueError(f"{fo_id}: cannot ship {units} of line {line_id!r}")
                if units > self._available(warehouse, line["sku"]):
                    raise ValueError(f"{fo_id}: not enough {line['sku']} in {warehouse}")
            if not plan:
                raise ValueError(f"{fo_id}: nothing to ship")
            return copy.deepcopy(self._ship(order, plan))

    def restock(self, warehouse: str, sku: str, qty: int) -> None:
        """Goods arrive: back-ordered orders of that SKU in that warehouse ship after `ship_after_s`."""
        with self._lock:
            self._stock.setdefault(warehouse, {})[sku] = self._available(warehouse, sku) + qty
            waiting = [
                o.id
                for o in self._orders.values()
                if o.request["warehouse"] == warehouse
                and not o.held
                and any(line["sku"] == sku and o.pending(line) for line in o.lines)
            ]
        if self.auto_ship:
            for fo_id in waiting:
                self._schedule(fo_id, self.ship_after_s)

    def rotate_webhook_secret(self, new_secret: str, *, keep_previous: bool = True) -> None:
        """Sign with `new_secret` from now on, and also with the current one while `keep_previous`."""
        with self._lock:
            self._secrets = [new_secret, self._secrets[0]] if keep_previous else [new_secret]

    # --- inspection ---------------------------------------------------------------------------

    def fulfillment_order(self, fo_id: str) -> dict[str, Any]:
        with self._lock:
            return self._snapshot(self._order(fo_id))

    def by_reference(self, reference: str) -> dict[str, Any] | None:
        with self._lock:
            fo_id = self._by_reference.get(reference)
            return self._snapshot(self._orders[fo_id]) if fo_id else None

    def by_order(self, order_id: str) -> list[dict[str, Any]]:
        """The fulfilment orders of the hub's `order_id`, oldest first."""
        with self._lock:
            return [self._snapshot(o) for o in self._orders.values() if o.request["order_id"] == order_id]

    def stock(self, warehouse: str, sku: str) -> int:
        with self._lock:
            return self._available(warehouse, sku)

    def events_of(self, event_type: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(e) for e in self.events if e["type"] == event_type]

    def settle(self, timeout: float = 20.0) -> bool:
        """Wait until the warehouse handled every shipping task due by now on `clock` (shipped, or found
        held, back-ordered or done); False when `timeout` (real seconds) passes first. Its webhooks may
        still be on their way: see `flush`."""
        return self._warehouse.settle(timeout) and self._inspection.settle(timeout)

    def flush(self, timeout: float) -> bool:
        """Wait until no webhook is queued or being sent; False when `timeout` passes first. Orders
        still waiting to ship do not count."""
        return self._webhooks.flush(timeout)

    # --- HTTP entry ---------------------------------------------------------------------------

    def _reply(self, request: Request) -> Reply | None:
        answer = self.handle(request.method, request.path, request.query, request.body, request.headers)
        if answer is None:
            return None
        status, data, extra = answer
        return Reply(status, data, {"Content-Type": "application/json", **extra})

    def handle(
        self, method: str, path: str, query: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes, dict[str, str]] | None:
        """One API request → (status, JSON body, extra headers); None means drop the connection."""
        idem = headers.get("idempotency-key") or None
        extra: dict[str, str] = {"X-Request-Id": new_id("req")}
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["_sim", "returns"] and len(parts) == 4 and method == "POST":
            return self._control(parts[2], parts[3], body, extra)
        failure = self._faults.take()
        if failure is not None:
            status, retry_after = failure.status, failure.retry_after
            self._record(method, path, idem, status)
            if status == 0:
                return None
            if status in (429, 503):
                extra["Retry-After"] = str(retry_after)
            code = "rate_limited" if status == 429 else "unavailable"
            answer: dict[str, Any] = {"error": {"code": code, "message": f"injected HTTP {status}"}}
            return status, json.dumps(answer).encode(), extra
        try:
            self._authenticate(headers)
            status, answer = self._route(method, path, query, body, idem=idem, extra=extra)
        except Refusal as refusal:
            status, answer = refusal.status, refusal.body()
        self._record(method, path, idem, status)
        return status, json.dumps(answer).encode(), extra

    def _control(
        self, return_id: str, action: str, body: bytes, extra: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        """The simulator's own knobs over HTTP (local only): no auth, no injected faults."""
        try:
            status, answer = control(self.returns, action, return_id, json_body(body) if body else None)
        except Refusal as refusal:
            status, answer = refusal.status, refusal.body()
        return status, json.dumps(answer).encode(), extra

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        auth = headers.get("authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not key or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise Refusal(401, "unauthorized", "missing or invalid API key (Authorization: Bearer <key>)")

    def _record(self, method: str, path: str, idem: str | None, status: int) -> None:
        with self._lock:
            self.requests.append((method, path, idem, status))

    def _route(
        self, method: str, path: str, query: str, body: bytes, *, idem: str | None, extra: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["v1", "inventory"] and method == "GET":
            return 200, self._inventory(parse_qs(query))
        if parts == ["v1", "returns"] and method == "POST":
            return self.returns.create(json_body(body), idem, extra)
        if parts[:2] == ["v1", "returns"] and len(parts) == 3 and method == "GET":
            return self.returns.get(parts[2])
        if parts[:2] == ["v1", "fulfillment_orders"]:
            if len(parts) == 2 and method == "POST":
                return self._create(json_body(body), idem, extra)
            with self._lock:
                order = self._orders.get(parts[2]) if len(parts) > 2 else None
                if order is None:
                    raise Refusal(404, "not_found", f"no fulfillment order {'/'.join(parts[2:3])!r}")
                if len(parts) == 3 and method == "GET":
                    return 200, self._snapshot(order)
                if len(parts) == 4 and method == "POST" and parts[3] == "cancel":
                    return 200, self._cancel(order)
                if len(parts) == 4 and method == "POST" and parts[3] == "recall":
                    return 200, self._recall(order)
        raise Refusal(404, "not_found", f"no route for {method} {path}")

    # --- fulfilment orders --------------------------------------------------------------------

    def _create(self, body: Any, idem: str | None, extra: dict[str, str]) -> tuple[int, dict[str, Any]]:
        fingerprint = self._keys.fingerprint(body)
        with self._lock:
            replayed = self._keys.replayed(idem, fingerprint)
            if replayed is not None:
                extra["Idempotent-Replayed"] = "true"
                return 200, self._snapshot(self._orders[replayed])
            request = self._validated(body)
            existing = self._orders.get(self._by_reference.get(request["reference"], ""))
            if existing is not None:
                reference = request["reference"]
                self._keys.again(
                    idem,
                    fingerprint,
                    first=existing.fingerprint,
                    created=existing.id,
                    field="reference",
                    value=reference,
                )
                extra["Idempotent-Replayed"] = "true"
                return 200, self._snapshot(existing)
            now = iso_now()
            order = _Order(
                id=new_id("fo"),
                request=request,
                fingerprint=fingerprint,
                lines=[{**line, "shipped_quantity": 0, "cancelled_quantity": 0} for line in request["lines"]],
                created_at=now,
                updated_at=now,
                split=self._rng.random() < self.split_rate,
                held=request["order_id"] in self._hold_for,
            )
            self._orders[order.id] = order
            self._by_reference[request["reference"]] = order.id
            self._keys.remember(idem, fingerprint, order.id)
            if self._open_catalogue:
                for line in order.lines:
                    self._stock[request["warehouse"]].setdefault(line["sku"], OPEN_CATALOGUE_STOCK)
            self._emit("fulfillment_order.accepted", order, None)
            answer = self._snapshot(order)
        if self.auto_ship:
            self._schedule(order.id, self.ship_after_s)
        return 201, answer

    def _validated(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Refusal(422, "invalid_request", "the body must be a JSON object")
        request = {name: text(body, name) for name in ("reference", "order_id", "warehouse")}
        if request["warehouse"] not in self._stock:
            raise Refusal(422, "invalid_request", "unknown warehouse", "warehouse")
        method = body.get("shipping_method")
        if method not in SHIPPING_METHODS:
            raise Refusal(422, "invalid_request", f"must be one of {SHIPPING_METHODS}", "shipping_method")
        ship_to = body.get("ship_to")
        if not isinstance(ship_to, dict):
            raise Refusal(422, "invalid_request", "ship_to is required", "ship_to")
        address = {k: text(ship_to, k, f"ship_to.{k}") for k in ("name", "line1", "city", "postal_code")}
        address.update({k: text(ship_to, k, f"ship_to.{k}", optional=True) for k in ("line2", "region")})
        address["country"] = text(ship_to, "country", "ship_to.country")
        if len(address["country"]) != 2 or not address["country"].isalpha():
            raise Refusal(422, "invalid_request", "an ISO 3166-1 alpha-2 code", "ship_to.country")
        request.update(shipping_method=method, ship_to=address, promised_by=None)
        request["lines"] = validated_lines(
            body.get("lines"), lambda sku: self._stocked(request["warehouse"], sku)
        )
        promised_by = body.get("promised_by")
        if promised_by is not None:
            if not isinstance(promised_by, str) or _parse_instant(promised_by) is None:
                raise Refusal(422, "invalid_request", "an ISO 8601 date-time with offset", "promised_by")
            request["promised_by"] = promised_by
        return request

    def _cancel(self, order: _Order) -> dict[str, Any]:
        pending = {line["line_id"]: order.pending(line) for line in order.lines}
        if not any(pending.values()):
            if order.status == "shipped":
                raise Refusal(409, "already_shipped", "every line has shipped; try recall")
            return self._snapshot(order)  # already cancelled: the same answer again
        for line in order.lines:
            line["cancelled_quantity"] += pending[line["line_id"]]
        order.updated_at = iso_now()
        self._emit("fulfillment_order.cancelled", order, None)
        return self._snapshot(order)

    def _recall(self, order: _Order) -> dict[str, Any]:
        now = time.monotonic()
        by_id = {line["line_id"]: line for line in order.lines}
        recalled: list[str] = []
        handed: list[str] = []
        for shipment in order.shipments:
            for parcel in shipment["parcels"]:
                if not parcel["_recalled"] and now < parcel["_handover_at"]:
                    parcel["_recalled"] = True
                    for item in parcel["lines"]:
                        line = by_id[item["line_id"]]
                        line["shipped_quantity"] -= item["quantity"]
                        line["cancelled_quantity"] += item["quantity"]
                        stock = self._stock[order.request["warehouse"]]
                        stock[item["sku"]] = stock.get(item["sku"], 0) + item["quantity"]
                    order.updated_at = iso_now()
                (recalled if parcel["_recalled"] else handed).append(parcel["tracking_code"])
        if handed and not recalled:
            raise Refusal(409, "handed_to_carrier", "every parcel is already with its carrier")
        return {"recalled": recalled, "handed_to_carrier": handed, "fulfillment_order": self._snapshot(order)}

    def _inventory(self, params: dict[str, list[str]]) -> dict[str, Any]:
        skus = params.get("sku") or []
        if not skus:
            raise Refusal(422, "invalid_request", "name at least one sku", "sku")
        warehouses = params.get("warehouse") or []
        with self._lock:
            if any(w not in self._stock for w in warehouses):
                raise Refusal(422, "invalid_request", "unknown warehouse", "warehouse")
            items = []
            for sku in skus:
                for warehouse in warehouses or sorted(self._stock):
                    if sku not in self._stock[warehouse] and not self._open_catalogue:
                        continue
                    available = self._available(warehouse, sku)
                    expected = None
                    if available == 0:
                        day = datetime.now(UTC).date() + timedelta(days=BACKORDER_LEAD_DAYS)
                        expected = f"{day.isoformat()}T00:00:00Z"
                    items.append(
                        {"sku": sku, "warehouse": warehouse, "available": available, "expected_at": expected}
                    )
        return {"items": items}

    # --- the warehouse ------------------------------------------------------------------------

    def _order(self, fo_id: str) -> _Order:
        order = self._orders.get(fo_id)
        if order is None:
            raise KeyError(fo_id)
        return order

    def _stocked(self, warehouse: str, sku: str) -> bool:
        return self._open_catalogue or sku in self._stock.get(warehouse, {})

    def _available(self, warehouse: str, sku: str) -> int:
        skus = self._stock.get(warehouse, {})
        return skus.get(sku, OPEN_CATALOGUE_STOCK if self._open_catalogue else 0)

    def _shippable(self, order: _Order) -> dict[str, int]:
        plan = {}
        for line in order.lines:
            units = min(order.pending(line), self._available(order.request["warehouse"], line["sku"]))
            if units > 0:
                plan[line["line_id"]] = units
        return plan

    def _schedule(self, fo_id: str, delay_s: float) -> None:
        self._warehouse.after(delay_s * self.time_scale, fo_id)

    def _auto_ship(self, fo_id: str) -> None:
        with self._lock:
            order = self._orders[fo_id]
            plan = self._shippable(order)
            if order.held or not plan:
                return  # held, finished, or back-ordered: restock() or release() comes back here
            if order.split and not order.shipments:
                plan = _first_part(plan)
                if plan != self._shippable(order):
                    self._schedule(fo_id, self.ship_after_s)
            self._ship(order, plan)

    def _ship(self, order: _Order, plan: Mapping[str, int]) -> dict[str, Any]:
        warehouse = order.request["warehouse"]
        units: list[tuple[str, str]] = []
        for line in order.lines:
            quantity = plan.get(line["line_id"], 0)
            if quantity:
                line["shipped_quantity"] += quantity
                self._stock[warehouse][line["sku"]] = self._available(warehouse, line["sku"]) - quantity
                units.extend([(line["line_id"], line["sku"])] * quantity)
        count = min(len(units), self._rng.randint(*self.parcels_per_shipment))
        handover_at = time.monotonic() + self.handover_delay_s * self.time_scale
        parcels = []
        for i in range(count):
            carrier = self._rng.choice(self.carriers)
            parcels.append(
                {
                    "carrier": carrier,
                    "tracking_code": self._tracking_code(carrier, next(self._parcel_seq)),
                    "lines": _grouped(units[i * len(units) // count : (i + 1) * len(units) // count]),
                    "_handover_at": handover_at,
                    "_recalled": False,
                }
            )
        shipment: dict[str, Any] = {
            "id": new_id("shp"),
            "shipped_at": iso_now(),
            "lines": _grouped(units),
            "parcels": parcels,
        }
        order.shipments.append(shipment)
        order.updated_at = shipment["shipped_at"]
        self._emit("shipment.created", order, shipment)
        return _public_shipment(shipment)

    def _easypost_delivered_code(self, carrier: str, n: int) -> str:
        return f"EZ4{(self._tracking_base + n) % 10**9:09d}"

    def _snapshot(self, order: _Order) -> dict[str, Any]:
        request = order.request
        return {
            "id": order.id,
            "reference": request["reference"],
            "order_id": request["order_id"],
            "warehouse": request["warehouse"],
            "shipping_method": request["shipping_method"],
            "promised_by": request["promised_by"],
            "status": order.status,
            "lines": copy.deepcopy(order.lines),
            "shipments": [_public_shipment(s) for s in order.shipments],
            "created_at": order.created_at,
            "updated_at": order.updated_at,
        }

    # --- webhooks -----------------------------------------------------------------------------

    def _emit(self, event_type: str, order: _Order, shipment: dict[str, Any] | None) -> None:
        data = {
            "fulfillment_order": self._snapshot(order),
            "shipment": _public_shipment(shipment) if shipment is not None else None,
        }
        self._emit_event(event_type, data)

    def _emit_event(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        event = {"id": new_id("evt"), "type": event_type, "created": int(time.time()), "data": data}
        self.events.append(event)
        if self.webhook_url:
            self._webhooks.send(event)
        return copy.deepcopy(event)

    def _redeliver(self, event: dict[str, Any]) -> None:
        """The same event again (same id): a duplicate, or a late one once newer events went."""
        if self.webhook_url:
            self._webhooks.send(event)

    def _put_away(self, warehouse: str, sku: str, units: int) -> None:
        """Returned units back on the shelf; seconds (`<sku>-B`) start from none even in an open catalogue."""
        with self._lock:
            skus = self._stock.setdefault(warehouse, {})
            if sku.endswith(SECONDS_SUFFIX) and sku not in skus:
                skus[sku] = 0
        self.restock(warehouse, sku, units)

    def _post(self, outgoing: Outgoing[dict[str, Any]]) -> Post:
        assert self.webhook_url is not None
        body = json.dumps(outgoing.event).encode()
        timestamp = str(int(time.time()))  # each attempt is signed afresh, with its own t
        with self._lock:
            keys = list(self._secrets)
        signatures = ",".join(
            "v1=" + hmac.new(k.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            for k in keys
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"ThreePL-Webhooks/1.0 ({self.provider})",
            "X-ThreePL-Event-Id": outgoing.event["id"],
            "X-ThreePL-Delivery-Attempt": str(outgoing.attempt),
            "X-ThreePL-Signature": f"t={timestamp},{signatures}",
        }
        return Post(self.webhook_url, body, headers)


def _parse_instant(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _first_part(plan: Mapping[str, int]) -> dict[str, int]:
    """The first of two shipments: half the lines, or half the units of a single line."""
    items = list(plan.items())
    if len(items) > 1:
        return dict(items[: (len(items) + 1) // 2])
    line_id, units = items[0]
    return {line_id: max(1, units // 2)}


def _grouped(units: list[tuple[str, str]]) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str], int] = {}
    for unit in units:
        counts[unit] = counts.get(unit, 0) + 1
    return [{"line_id": line_id, "sku": sku, "quantity": n} for (line_id, sku), n in counts.items()]


def _public_shipment(shipment: dict[str, Any]) -> dict[str, Any]:
    now = time.monotonic()
    parcels = []
    for parcel in shipment["parcels"]:
        status = "recalled" if parcel["_recalled"] else "awaiting_pickup"
        if not parcel["_recalled"] and now >= parcel["_handover_at"]:
            status = "handed_to_carrier"
        public = {k: copy.deepcopy(v) for k, v in parcel.items() if not k.startswith("_")}
        parcels.append({**public, "status": status})
    return {**copy.deepcopy({k: v for k, v in shipment.items() if k != "parcels"}), "parcels": parcels}
