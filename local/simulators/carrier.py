"""EasyPost-like carrier simulator: the Trackers API, scripted signed tracker webhooks, and the Shipments
API for return labels (`carrier_shipments.py`: rates, buying, a tracker per bought parcel)."""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import itertools
import json
import logging
import random
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

from local.simulators.carrier_shipments import Bought, ShipmentBook
from local.simulators.kit import (
    FaultQueue,
    Outgoing,
    Post,
    Reply,
    Request,
    Router,
    Timeline,
    WebhookKnobs,
    WebhookSender,
    WebhookSimulatorServer,
    event_sender,
)

log = logging.getLogger("local.carrier")

# EasyPost retries a failed delivery with a progressive backoff over about a day and publishes no exact
# schedule; this one is ours (≈ 22 h in all), scaled by `time_scale`.
RETRY_DELAYS_S = (60.0, 300.0, 900.0, 3600.0, 3 * 3600.0, 6 * 3600.0, 12 * 3600.0)


@dataclass(frozen=True)
class Step:
    """One carrier scan. `est`: est_delivery_date as steps after creation; None keeps the last one."""

    status: str
    detail: str
    message: str
    est: float | None = None
    clears_est: bool = False


_PRE = Step("pre_transit", "label_created", "Shipping label created, awaiting item", est=5)
_PICKED = Step("in_transit", "arrived_at_facility", "Arrived at carrier facility")
_DEPARTED = Step("in_transit", "departed_facility", "Departed carrier facility")
_OFD = Step("out_for_delivery", "out_for_delivery", "Out for delivery")
_DELIVERED = Step("delivered", "arrived_at_destination", "Delivered, front door")
# EasyPost keeps an attempt the carrier will retry under in_transit, the detail saying what happened.
_ATTEMPT = Step("in_transit", "delivery_exception", "Delivery attempted, no access to delivery location")

SCENARIOS: dict[str, tuple[Step, ...]] = {
    # Delivered at step 4, a step before the estimate.
    "on_time": (_PRE, _PICKED, _DEPARTED, _OFD, _DELIVERED),
    # Estimated for step 3, pushed to step 4 by a delay; delivered at step 5.
    "late": (
        Step("pre_transit", "label_created", "Shipping label created, awaiting item", est=3),
        _PICKED,
        Step("in_transit", "weather_delay", "Delayed by weather conditions", est=4),
        _DEPARTED,
        _OFD,
        _DELIVERED,
    ),
    "failed_attempt": (
        _PRE,
        _PICKED,
        _OFD,
        Step(_ATTEMPT.status, _ATTEMPT.detail, _ATTEMPT.message, est=6),
        _OFD,
        _DELIVERED,
    ),
    "exception": (_PRE, _PICKED, Step("error", "unknown", "Carrier reported a tracking exception")),
    "return_to_sender": (
        _PRE,
        _PICKED,
        _OFD,
        _ATTEMPT,
        Step("return_to_sender", "return", "Returned to sender", clears_est=True),
    ),
    "silent": (_PRE,),
    # Where EasyPost's test-mode codes end up; here they get there through the usual scans.
    "in_transit": (_PRE, _PICKED),
    "out_for_delivery": (_PRE, _PICKED, _OFD),
    "failure": (_PRE, _PICKED, _OFD, Step("failure", "delivery_exception", "Delivery failed")),
    "unknown": (Step("unknown", "unknown", "No tracking information yet", clears_est=True),),
}
# EasyPost's test tracking codes (test mode, any carrier) and their end status.
TEST_CODES = {
    "EZ1000000001": "silent",  # pre_transit
    "EZ2000000002": "in_transit",
    "EZ3000000003": "out_for_delivery",
    "EZ4000000004": "on_time",  # delivered
    "EZ5000000005": "return_to_sender",
    "EZ6000000006": "failure",
    "EZ7000000007": "unknown",
}
_NAMED = ("failed_attempt", "return_to_sender", "exception", "on_time", "silent", "late")
# Codes that name no scenario get one of these, chosen from the code (and seed), so reruns agree.
_MIX = (("on_time", 70), ("late", 12), ("failed_attempt", 8), ("exception", 4), ("return_to_sender", 3),
        ("silent", 3))  # fmt: skip
_ORIGIN: dict[str, str | None] = {"city": "ORLANDO", "state": "FL", "country": "US", "zip": "32809"}
_HUB: dict[str, str | None] = {"city": "ATLANTA", "state": "GA", "country": "US", "zip": "30354"}
_DESTINATION: dict[str, str | None] = {"city": "BROOKLYN", "state": "NY", "country": "US", "zip": "11201"}


@dataclass
class Delivery:
    event_id: str
    tracking_code: str
    attempt: int
    status: int | None
    error: str | None


@dataclass
class _Track:
    tracker: dict[str, Any]
    scenario: str
    steps: tuple[Step, ...]
    created: datetime
    index: int = 0
    held: bool = False  # timed steps skip it (`advance` still moves it)
    est: datetime | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


class CarrierSimulator(WebhookSimulatorServer):
    """Plays EasyPost's Trackers API (HUB_CARRIER_API_BASE = `url`) and its tracker webhooks.

    `POST /v2/trackers` and `GET /v2/trackers/{id}` with HTTP Basic auth (`api_key` as user). A tracker
    follows the scenario `scenario_for(tracking_code)` picks: `tracker.created` at once, then one
    `tracker.updated` per step every `step_s` × `time_scale` seconds (`step_s` <= 0: only `advance`
    moves trackers). Events go to `webhook_url` signed as EasyPost signs (`X-Hmac-Signature`), are
    retried on failure after `RETRY_DELAYS_S` × `time_scale`, and sent twice at `duplicate_rate`.
    Timestamps are carrier time: creation (`now()`) plus `carrier_step` per step, which defaults to the
    wall-clock step so a self-driven simulator stamps real times.

    `clock` (seconds, time.monotonic by default) times the steps and `pause`; webhook retries keep real
    time. A test with a fake clock moves it on, then `settle()` waits until the steps due are taken.
    """

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        *,
        step_s: float = 2.0,
        reorder_rate: float = 0.0,
        now: Callable[[], datetime] | None = None,
        carrier_step: timedelta | None = None,
        clock: Callable[[], float] = time.monotonic,
        **knobs: Unpack[WebhookKnobs],
    ) -> None:
        super().__init__(name="carrier-sim", log=log, methods=("GET", "POST"), **knobs)
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        # Share of tracker events held back until the next one has gone: out of order (adjustable).
        self.reorder_rate = reorder_rate
        self._interval = step_s * self.time_scale if step_s > 0 else None
        # Whole seconds at least: EasyPost stamps trackers to the second, and steps must stay apart.
        self._carrier_step = carrier_step or timedelta(seconds=max(self._interval or 3600.0, 1.0))
        self._now = now or (lambda: datetime.now(UTC))
        self._cond = threading.Condition(threading.RLock())
        self._tracks: dict[str, _Track] = {}  # by tracker id
        self._by_key: dict[tuple[str, str], str] = {}  # (code, carrier lower) → tracker id
        self._overrides: dict[str, str] = {}
        self._faults = FaultQueue()
        self.requests: list[tuple[str, str, int]] = []  # method, path, status
        # Tracker steps, on `clock`: (tracker id, the index of the step due).
        self._steps: Timeline[tuple[str, int]] = self._run(
            Timeline(self._timed_step, clock=clock, name="carrier-sim-steps")
        )
        self._webhooks: WebhookSender[dict[str, Any], Delivery] = self._run(
            event_sender(
                self._post,
                self,
                self._rng,
                RETRY_DELAYS_S,
                name="carrier-sim-webhooks",
                record=_delivery,
                reorder_rate=lambda: self.reorder_rate,
                cond=self._cond,
            )
        )
        self.deliveries: list[Delivery] = self._webhooks.deliveries
        self._return_scenarios: dict[str, str] = {}  # shipment reference → scenario of its parcel
        self._held_references: set[str] = set()
        self._label_seq = itertools.count(1)
        self._label_base = self._rng.randrange(10**8)
        self._shipments = ShipmentBook(
            mode=self._mode,
            base_url=lambda: self.url,
            now=self._now,
            tracking_code=self._label_code,
            track=self._track_bought,
        )
        self._router: Router[tuple[int, dict[str, Any]]] = Router()
        self._router.add("POST", "/v2/trackers", self._create).add("GET", "/v2/trackers/{id}", self._get)
        self._router.add("POST", "/v2/shipments", self._locked(self._shipments.create))
        self._router.add("GET", "/v2/shipments", self._locked(self._shipments.list))
        self._router.add("GET", "/v2/shipments/{id}", self._locked(self._shipments.get))
        self._router.add("POST", "/v2/shipments/{id}/buy", self._locked(self._shipments.buy))

    # --- knobs and inspection ----------------------------------------------------------------

    def scenario_for(self, tracking_code: str) -> str:
        """`set_scenario`, then EasyPost's EZ test codes, then a scenario named in the code
        (`DEMO-LATE-0001`, `x_failed_attempt_1`), else a weighted pick fixed by the code and seed."""
        code = tracking_code.strip().upper()
        if code in self._overrides:
            return self._overrides[code]
        if code in TEST_CODES:
            return TEST_CODES[code]
        padded = f"-{code.replace('_', '-')}-"
        for name in _NAMED:
            if f"-{name.upper().replace('_', '-')}-" in padded:
                return name
        pick = random.Random(f"{self._seed}:{code}").uniform(0, sum(w for _, w in _MIX))
        for name, weight in _MIX:
            pick -= weight
            if pick <= 0:
                return name
        return "on_time"

    def set_scenario(self, tracking_code: str, name: str) -> None:
        """Trackers created from now on for this code follow `name` (one of SCENARIOS)."""
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        with self._cond:
            self._overrides[tracking_code.strip().upper()] = name

    def set_return_scenario(self, reference: str, name: str) -> None:
        """The parcel of the label bought for this shipment `reference` follows `name` (default on_time)."""
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        with self._cond:
            self._return_scenarios[reference] = name

    def hold_reference(self, reference: str) -> None:
        """The parcel of the label bought for this shipment `reference` stays where it is (pre_transit
        once bought) until `release` or `advance`: register it before the hub buys the label."""
        with self._cond:
            self._held_references.add(reference)
            for track in self._tracks.values():
                if track.tracker.get("_reference") == reference:
                    track.held = True

    def release(self, tracking_code: str) -> None:
        """A held parcel moves on by itself again (every `step_s`)."""
        with self._cond:
            track = self._newest(tracking_code)
            if track is None:
                raise KeyError(f"no tracker for {tracking_code!r}")
            track.held = False
            self._schedule(track)

    def shipments(self) -> list[dict[str, Any]]:
        """Every shipment created, oldest first (bought or not)."""
        with self._cond:
            return self._shipments.all()

    def by_reference(self, reference: str) -> list[dict[str, Any]]:
        """The shipments created with this `reference`, oldest first."""
        return [s for s in self.shipments() if s["reference"] == reference]

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next `n` API requests answer `status` (500, 503, 429 with Retry-After: 1) unexecuted."""
        self._faults.add(n, status)

    def pause(self) -> None:
        """Stop the trackers' clocks (deliveries and retries go on); `advance` still works."""
        self._steps.pause()

    def resume(self) -> None:
        self._steps.resume()

    def advance(self, tracking_code: str) -> dict[str, Any] | None:
        """Move the newest tracker of this code one step now; its event, or None at the scenario's end."""
        with self._cond:
            track = self._newest(tracking_code)
            if track is None:
                raise KeyError(f"no tracker for {tracking_code!r}")
            return self._step(track)

    def trackers(self) -> list[dict[str, Any]]:
        with self._cond:
            return [_public(t.tracker) for t in self._tracks.values()]

    def scenario_of(self, tracking_code: str) -> str | None:
        with self._cond:
            track = self._newest(tracking_code)
            return track.scenario if track else None

    def events_of(self, tracking_code: str) -> list[dict[str, Any]]:
        code = tracking_code.strip().upper()
        with self._cond:
            return [copy.deepcopy(e) for t in self._tracks.values() if t.tracker["tracking_code"] == code
                    for e in t.events]  # fmt: skip

    def settle(self, timeout: float = 20.0) -> bool:
        """Wait until the trackers took every step due by now on `clock` (none while paused); False when
        `timeout` (real seconds) passes first. Their webhooks may still be on their way: see `flush`."""
        return self._steps.settle(timeout)

    def flush(self, timeout: float) -> bool:
        """Wait until no webhook is queued or being sent; False when `timeout` passes first."""
        return self._webhooks.flush(timeout)

    # --- API -----------------------------------------------------------------------------------

    def _reply(self, request: Request) -> Reply:
        if request.method == "GET" and request.path.startswith("/files/postage_label/"):
            return self._label_file(request)  # public, like EasyPost's label URLs
        failure = self._faults.take()
        if failure is not None:
            status, answer = failure.status, _error("INTERNAL_SERVER_ERROR", "Something went wrong.")
            if failure.status == 429:
                answer = _error("RATE_LIMITED", "You have exceeded the rate limit.")
        else:
            status, answer = self._authorised(request)
        with self._cond:
            self.requests.append((request.method, request.path, status))
        headers = {"Retry-After": "1"} if status == 429 else {}
        return Reply.json(status, answer, headers, content_type="application/json; charset=utf-8")

    def _authorised(self, request: Request) -> tuple[int, dict[str, Any]]:
        auth = request.headers.get("authorization", "")
        key = ""
        if auth[:6].lower() == "basic ":
            try:
                key = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = ""
        if not key:
            return 401, _error("APIKEY.REQUIRED", "An API key is required; send it as the Basic auth user.")
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return 401, _error("APIKEY.INACTIVE", "The API key provided is not valid.")
        return self._router.dispatch(request, _not_found)

    def _get(self, request: Request) -> tuple[int, dict[str, Any]]:
        with self._cond:
            track = self._tracks.get(request.params["id"])
            if track is not None:
                return 200, _public(track.tracker)
        return _not_found(request)

    def _locked(
        self, handler: Callable[[Request], tuple[int, dict[str, Any]]]
    ) -> Callable[[Request], tuple[int, dict[str, Any]]]:
        def run(request: Request) -> tuple[int, dict[str, Any]]:
            with self._cond:
                return handler(request)

        return run

    def _label_file(self, request: Request) -> Reply:
        name = request.path.rsplit("/", 1)[-1].removesuffix(".png")
        with self._cond:
            image = self._shipments.label(Request(request.method, request.target, {}, b"", {"name": name}))
        if image is None:
            return Reply.json(404, _error("NOT_FOUND", "The requested resource could not be found."))
        return Reply(200, image, {"Content-Type": "image/png"})

    def _create(self, request: Request) -> tuple[int, dict[str, Any]]:
        try:
            params = request.json(empty={})
        except ValueError:
            return 400, _error("BAD_REQUEST", "The request body could not be parsed as JSON.")
        fields = params.get("tracker") if isinstance(params, dict) else None
        code = fields.get("tracking_code") if isinstance(fields, dict) else None
        if not isinstance(code, str) or not code.strip():
            blank = [{"field": "tracker.tracking_code", "message": "cannot be blank"}]
            return 422, _error("PARAMETER.REQUIRED", "Missing required parameter.", blank)
        assert isinstance(fields, dict)
        code = code.strip().upper()
        carrier = str(fields.get("carrier") or "").strip() or _detect_carrier(code)
        with self._cond:
            existing = self._by_key.get((code, carrier.lower()))
            if existing is not None:
                # EasyPost returns the original Tracker for a repeated code and carrier.
                return 200, _public(self._tracks[existing].tracker)
            track = self._new_track(code, carrier)
            return 201, _public(track.tracker)

    # --- trackers ------------------------------------------------------------------------------

    @property
    def _mode(self) -> str:
        return "production" if self.api_key.startswith("EZAK") else "test"

    def _label_code(self, bought: Bought) -> str:
        """A bought label's tracking code, in EasyPost's test convention (EZ4…: delivered), unique."""
        code = f"EZ4{(self._label_base + next(self._label_seq)) % 10**9:09d}"
        # A return parcel arrives on time unless a test set a scenario for its reference.
        self._overrides[code] = self._return_scenarios.get(bought.reference or "", "on_time")
        return code

    def _track_bought(self, bought: Bought) -> dict[str, Any]:
        track = self._new_track(
            bought.tracking_code,
            bought.carrier,
            shipment=bought,
            held=(bought.reference or "") in self._held_references,
        )
        return _public(track.tracker)

    def _new_track(
        self, code: str, carrier: str, *, shipment: Bought | None = None, held: bool = False
    ) -> _Track:
        scenario = self.scenario_for(code)
        created = self._now()
        tracker_id = f"trk_{secrets.token_hex(16)}"
        tracker: dict[str, Any] = {
            "id": tracker_id, "object": "Tracker", "mode": self._mode, "tracking_code": code,
            "status": None, "status_detail": None,
            "created_at": _stamp(created), "updated_at": _stamp(created), "signed_by": None,
            "weight": round(self._rng.uniform(4.0, 900.0), 1),  # ounces, a float as EasyPost sends it
            "est_delivery_date": None, "shipment_id": shipment.shipment_id if shipment else None,
            "carrier": carrier, "tracking_details": [],
            "carrier_detail": {
                "object": "CarrierDetail", "service": "GROUND", "container_type": None,
                "est_delivery_date_local": None, "est_delivery_time_local": None,
                "origin_location": "ORLANDO FL US", "origin_tracking_location": _location(_ORIGIN),
                "destination_location": "BROOKLYN NY US", "destination_tracking_location": None,
                "guaranteed_delivery_date": None, "alternate_identifier": None,
                "initial_delivery_attempt": None,
            },
            "finalized": False, "is_return": bool(shipment and shipment.is_return), "fees": [],
            "public_url": f"https://track.easypost.com/{tracker_id}",
            "_reference": shipment.reference if shipment else None,  # kept here, never sent
        }  # fmt: skip
        track = _Track(tracker, scenario, SCENARIOS[scenario], created, held=held)
        self._tracks[tracker_id] = track
        self._by_key[(code, carrier.lower())] = tracker_id
        self._apply(track, 0)
        self._emit(track, "tracker.created", {})
        self._schedule(track)
        return track

    def _newest(self, tracking_code: str) -> _Track | None:
        code = tracking_code.strip().upper()
        found = [t for t in self._tracks.values() if t.tracker["tracking_code"] == code]
        return found[-1] if found else None

    def _step(self, track: _Track) -> dict[str, Any] | None:
        if track.index + 1 >= len(track.steps):
            return None
        previous = track.tracker["status"]
        self._apply(track, track.index + 1)
        if track.tracker["shipment_id"]:
            self._shipments.note_tracker(track.tracker["shipment_id"], _public(track.tracker))
        event = self._emit(track, "tracker.updated", {"status": previous})
        self._schedule(track)
        return copy.deepcopy(event)

    def _apply(self, track: _Track, index: int) -> None:
        step, tracker = track.steps[index], track.tracker
        track.index = index
        at = track.created + self._carrier_step * index
        if step.clears_est:
            track.est = None
        elif step.est is not None:
            track.est = track.created + self._carrier_step * step.est
        tracker["tracking_details"].append({
            "object": "TrackingDetail", "message": step.message, "description": step.message,
            "status": step.status, "status_detail": step.detail, "datetime": _stamp(at),
            "source": tracker["carrier"], "carrier_code": None,
            "tracking_location": _location(_place_of(step)),
        })  # fmt: skip
        tracker.update(status=step.status, status_detail=step.detail, updated_at=_stamp(at),
                       est_delivery_date=_stamp(track.est) if track.est else None,
                       finalized=step.status in ("delivered", "return_to_sender"))  # fmt: skip
        tracker["carrier_detail"]["est_delivery_date_local"] = (
            track.est.date().isoformat() if track.est else None
        )
        if step.status == "delivered":
            tracker["signed_by"] = "R. RECIPIENT"

    def _schedule(self, track: _Track) -> None:
        if self._interval is None or track.index + 1 >= len(track.steps):
            return
        self._steps.after(self._interval, (track.tracker["id"], track.index + 1))

    def _timed_step(self, due: tuple[str, int]) -> None:
        tracker_id, index = due
        with self._cond:
            track = self._tracks[tracker_id]
            if track.index + 1 == index and not track.held:  # else `advance` got there first, or held
                self._step(track)

    # --- webhooks ------------------------------------------------------------------------------

    def _emit(self, track: _Track, description: str, previous: dict[str, Any]) -> dict[str, Any]:
        at = track.tracker["updated_at"]
        event = {
            "description": description, "mode": track.tracker["mode"], "previous_attributes": previous,
            "created_at": at, "pending_urls": [self.webhook_url] if self.webhook_url else [],
            "completed_urls": [], "updated_at": at, "id": f"evt_{secrets.token_hex(16)}",
            "user_id": "user_simulator", "status": "pending", "object": "Event",
            "result": _public(track.tracker),
        }  # fmt: skip
        track.events.append(event)
        if self.webhook_url:
            self._webhooks.send(event)
        return event

    def _post(self, outgoing: Outgoing[dict[str, Any]]) -> Post:
        assert self.webhook_url is not None
        body = json.dumps(outgoing.event, separators=(",", ":")).encode()  # EasyPost sends compact JSON
        headers = {"Content-Type": "application/json", "User-Agent": "EasyPost WebHook Agent (simulator)"}
        if self.webhook_secret:  # EasyPost signs only when the webhook has a secret
            headers["X-Hmac-Signature"] = sign(self.webhook_secret, body)
        return Post(self.webhook_url, body, headers)


def sign(secret: str, body: bytes) -> str:
    """The X-Hmac-Signature EasyPost sends: HMAC-SHA256 of the body under the NFKD-normalised secret."""
    key = unicodedata.normalize("NFKD", secret).encode("utf-8")
    return "hmac-sha256-hex=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def _public(tracker: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in tracker.items() if not k.startswith("_")})


def _error(code: str, message: str, errors: list[Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "errors": errors or []}}


def _delivery(outgoing: Outgoing[dict[str, Any]], status: int | None, error: str | None) -> Delivery:
    event = outgoing.event
    return Delivery(event["id"], event["result"]["tracking_code"], outgoing.attempt, status, error)


def _not_found(request: Request) -> tuple[int, dict[str, Any]]:
    return 404, _error("NOT_FOUND", "The requested resource could not be found.")


def _detect_carrier(code: str) -> str:
    # A rough version of EasyPost's carrier detection, for requests that leave `carrier` out.
    if code.startswith("1Z"):
        return "UPS"
    if code.isdigit() and len(code) in (12, 15):
        return "FedEx"
    return "USPS"


def _place_of(step: Step) -> dict[str, str | None]:
    if step.status in ("pre_transit", "return_to_sender"):
        return _ORIGIN
    if step.status == "in_transit" and step.detail != "delivery_exception":
        return _HUB
    if step.status in ("unknown", "error"):
        return {"city": None, "state": None, "country": None, "zip": None}
    return _DESTINATION


def _location(place: dict[str, str | None]) -> dict[str, Any]:
    return {"object": "TrackingLocation", **place}


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
