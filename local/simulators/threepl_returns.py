"""The 3PL simulator's returns desk: expected returns (RMAs), receiving, inspection and their webhooks.

API (Bearer auth like the rest of the 3PL):
- `POST /v1/returns` body `{"return_id", "order_id", "warehouse", "tracking_number"?, "lines":
  [{"line_id", "sku", "quantity"}]}` → 201 Return. An `Idempotency-Key` seen before (or a `return_id`
  announced before) answers the existing Return with 200 and `Idempotent-Replayed: true`; another body
  under it: 409 `idempotency_conflict`. Malformed fields, an unknown warehouse or SKU, a quantity below
  1: 422 `invalid_request` with `field`. Failed requests are not remembered.
- `GET /v1/returns/{id}` (the 3PL's `rma_...` id or the hub's return_id) → the Return; 404 `not_found`.

Return: `{"id": "rma_...", "return_id", "order_id", "warehouse", "tracking_number", "status":
expected|partially_received|received|partially_inspected|inspected, "lines": [{"line_id", "sku",
"quantity", "received_quantity", "inspected": {outcome: units}}], "created_at", "updated_at"}`.

Webhooks (signed like shipment confirmations): `{"id", "type": "return.received" | "return.inspected",
"created", "data": {"return": Return, "units": [{"line_id", "sku", "quantity", "outcome"?}]}}`: `units`
are what this event is about (a partial receipt names only the units received now). Outcomes:
`restock` (back to sellable stock: the SKU's `available` in that warehouse grows), `second_quality`
(sellable as seconds: stocked under the SKU `<sku>-B`, visible in `GET /v1/inventory?sku=<sku>-B`),
`repair` and `scrap` (leave the stock as it is).

Received units are inspected by themselves `inspect_after_s` × `time_scale` later (every unit
`restock`, or the outcomes `set_outcomes` gave), unless the return is held (`hold_return`) or the
simulator has `auto_inspect=False`. Control endpoints (no auth, local only), under `/_sim/returns/{id}`:
`POST .../receive` `{"lines": {line_id: units}}`?, `POST .../inspect` `{"lines": {line_id: outcome |
{outcome: units}}}`?, `POST .../hold`, `POST .../release`, `POST .../resend` `{"type"}`.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.simulators.threepl_api import IdempotencyKeys, Refusal, iso_now, new_id, text, validated_lines

OUTCOMES = ("restock", "second_quality", "repair", "scrap")
RETURN_EVENT_TYPES = ("return.received", "return.inspected")
SECONDS_SUFFIX = "-B"

Answer = tuple[int, dict[str, Any]]


@dataclass
class _Return:
    id: str
    request: dict[str, Any]
    fingerprint: str
    lines: list[dict[str, Any]]
    created_at: str
    updated_at: str
    held: bool = False
    outcomes: dict[str, str] = field(default_factory=dict)  # line_id → outcome of its automatic inspection
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # event type → the last event sent

    @property
    def status(self) -> str:
        total = sum(line["quantity"] for line in self.lines)
        received = sum(line["received_quantity"] for line in self.lines)
        inspected = sum(sum(line["inspected"].values()) for line in self.lines)
        if received == 0:
            return "expected"
        if inspected == total:
            return "inspected"
        if inspected:
            return "partially_inspected"
        return "received" if received == total else "partially_received"


class ReturnsDesk:
    """The account's returns. `stocked(warehouse, sku)`: whether the warehouse knows the SKU;
    `put_away(warehouse, sku, units)`: units back on the shelf; `emit(type, data)`: send a new webhook
    event (answers it); `redeliver(event)`: send one again; `schedule(return_id)`: run
    `inspect_due(return_id)` after the inspection delay."""

    def __init__(
        self,
        *,
        lock: threading.RLock,
        warehouses: Callable[[], Iterable[str]],
        stocked: Callable[[str, str], bool],
        put_away: Callable[[str, str, int], None],
        emit: Callable[[str, dict[str, Any]], dict[str, Any]],
        redeliver: Callable[[dict[str, Any]], None],
        schedule: Callable[[str], None],
        auto_inspect: bool = True,
    ) -> None:
        self._lock = lock
        self._warehouses = warehouses
        self._stocked = stocked
        self._put_away = put_away
        self._emit = emit
        self._redeliver = redeliver
        self._schedule = schedule
        self.auto_inspect = auto_inspect
        self._returns: dict[str, _Return] = {}  # by return_id (the hub's)
        self._by_rma: dict[str, str] = {}
        self._keys = IdempotencyKeys()  # Idempotency-Key → the return_id it announced
        self._held_ids: set[str] = set()

    # --- API ------------------------------------------------------------------------------------

    def create(self, body: Any, idem: str | None, extra: dict[str, str]) -> Answer:
        fingerprint = self._keys.fingerprint(body)
        with self._lock:
            replayed = self._keys.replayed(idem, fingerprint)
            if replayed is not None:
                extra["Idempotent-Replayed"] = "true"
                return 200, self._snapshot(self._returns[replayed])
            request = self._validated(body)
            return_id = request["return_id"]
            existing = self._returns.get(return_id)
            if existing is not None:
                self._keys.again(
                    idem,
                    fingerprint,
                    first=existing.fingerprint,
                    created=return_id,
                    field="return_id",
                    value=return_id,
                )
                extra["Idempotent-Replayed"] = "true"
                return 200, self._snapshot(existing)
            now = iso_now()
            ret = _Return(
                id=new_id("rma"),
                request=request,
                fingerprint=fingerprint,
                lines=[{**line, "received_quantity": 0, "inspected": {}} for line in request["lines"]],
                created_at=now,
                updated_at=now,
                held=request["return_id"] in self._held_ids,
            )
            self._returns[request["return_id"]] = ret
            self._by_rma[ret.id] = request["return_id"]
            self._keys.remember(idem, fingerprint, return_id)
            return 201, self._snapshot(ret)

    def get(self, some_id: str) -> Answer:
        with self._lock:
            return 200, self._snapshot(self._find(some_id))

    # --- the warehouse ----------------------------------------------------------------------------

    def snapshot(self, some_id: str) -> dict[str, Any]:
        with self._lock:
            return self._snapshot(self._find(some_id))

    def hold(self, return_id: str) -> None:
        """Stop this return at `received`: no automatic inspection (works before it is announced too)."""
        with self._lock:
            self._held_ids.add(return_id)
            if return_id in self._returns:
                self._returns[return_id].held = True

    def release(self, return_id: str) -> None:
        with self._lock:
            self._held_ids.discard(return_id)
            self._find(return_id).held = False
        self._schedule(return_id)

    def set_outcomes(self, return_id: str, outcomes: Mapping[str, str]) -> None:
        """The automatic inspection's outcome per line_id (lines not named: restock)."""
        for outcome in outcomes.values():
            _check_outcome(outcome)
        with self._lock:
            self._find(return_id).outcomes.update(outcomes)

    def receive(self, return_id: str, lines: Mapping[str, int] | None = None) -> dict[str, Any]:
        """The parcel is opened: `lines` maps line_id → units received now (None: everything still
        expected). Sends `return.received`; answers the event. ValueError for more than expected."""
        with self._lock:
            ret = self._find(return_id)
            by_id = {line["line_id"]: line for line in ret.lines}
            plan = dict(lines) if lines is not None else {
                line_id: line["quantity"] - line["received_quantity"] for line_id, line in by_id.items()
            }  # fmt: skip
            plan = {line_id: units for line_id, units in plan.items() if units}
            for line_id, units in plan.items():
                line = by_id.get(line_id)
                if line is None or not 0 < units <= line["quantity"] - line["received_quantity"]:
                    raise ValueError(f"{return_id}: cannot receive {units} of line {line_id!r}")
            if not plan:
                raise ValueError(f"{return_id}: nothing left to receive")
            for line_id, units in plan.items():
                by_id[line_id]["received_quantity"] += units
            ret.updated_at = iso_now()
            units_sent = [{"line_id": i, "sku": by_id[i]["sku"], "quantity": n} for i, n in plan.items()]
            event = self._send(ret, "return.received", units_sent)
        if self.auto_inspect:
            self._schedule(return_id)
        return event

    def inspect(
        self, return_id: str, lines: Mapping[str, str | Mapping[str, int]] | None = None
    ) -> dict[str, Any]:
        """Grade received, not yet inspected units: `lines` maps line_id → an outcome for all its units
        waiting, or {outcome: units}; None grades every waiting unit by `set_outcomes` (else restock).
        Restocked and second-quality units go back on the shelf. Sends `return.inspected`."""
        with self._lock:
            ret = self._find(return_id)
            by_id = {line["line_id"]: line for line in ret.lines}
            graded: list[dict[str, Any]] = []
            chosen = lines if lines is not None else {
                line_id: ret.outcomes.get(line_id, "restock") for line_id in by_id if _waiting(by_id[line_id])
            }  # fmt: skip
            for line_id, verdict in chosen.items():
                line = by_id.get(line_id)
                if line is None:
                    raise ValueError(f"{return_id}: no line {line_id!r}")
                split = {verdict: _waiting(line)} if isinstance(verdict, str) else dict(verdict)
                if sum(split.values()) > _waiting(line) or any(n < 0 for n in split.values()):
                    raise ValueError(f"{return_id}: line {line_id!r} has {_waiting(line)} units to inspect")
                for outcome, units in split.items():
                    _check_outcome(outcome)
                    if units:
                        graded.append(
                            {"line_id": line_id, "sku": line["sku"], "quantity": units, "outcome": outcome}
                        )
            if not graded:
                raise ValueError(f"{return_id}: nothing received is waiting for inspection")
            warehouse = ret.request["warehouse"]
            for unit in graded:
                line = by_id[unit["line_id"]]
                line["inspected"][unit["outcome"]] = (
                    line["inspected"].get(unit["outcome"], 0) + unit["quantity"]
                )
                if unit["outcome"] == "restock":
                    self._put_away(warehouse, unit["sku"], unit["quantity"])
                elif unit["outcome"] == "second_quality":
                    self._put_away(warehouse, unit["sku"] + SECONDS_SUFFIX, unit["quantity"])
            ret.updated_at = iso_now()
            return self._send(ret, "return.inspected", graded)

    def inspect_due(self, return_id: str) -> None:
        """The automatic inspection: every received unit waiting, unless held."""
        with self._lock:
            ret = self._returns.get(return_id)
            if ret is None or ret.held or not any(_waiting(line) for line in ret.lines):
                return
            self.inspect(return_id)

    def resend(self, return_id: str, event_type: str) -> dict[str, Any]:
        """Send the last `event_type` event of this return again, as it was (a duplicate, possibly late)."""
        with self._lock:
            event = self._find(return_id).sent.get(event_type)
            if event is None:
                raise ValueError(f"{return_id}: no {event_type} event sent yet")
        self._redeliver(copy.deepcopy(event))
        return copy.deepcopy(event)

    # --- internals -------------------------------------------------------------------------------

    def _find(self, some_id: str) -> _Return:
        ret = self._returns.get(some_id) or self._returns.get(self._by_rma.get(some_id, ""))
        if ret is None:
            raise Refusal(404, "not_found", f"no return {some_id!r}")
        return ret

    def _send(self, ret: _Return, event_type: str, units: list[dict[str, Any]]) -> dict[str, Any]:
        event = self._emit(event_type, {"return": self._snapshot(ret), "units": units})
        ret.sent[event_type] = copy.deepcopy(event)
        return event

    def _validated(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Refusal(422, "invalid_request", "the body must be a JSON object")
        request = {name: text(body, name) for name in ("return_id", "order_id", "warehouse")}
        if request["warehouse"] not in set(self._warehouses()):
            raise Refusal(422, "invalid_request", "unknown warehouse", "warehouse")
        tracking = body.get("tracking_number")
        if tracking is not None and (not isinstance(tracking, str) or not tracking.strip()):
            message = "tracking_number must be a non-empty string"
            raise Refusal(422, "invalid_request", message, "tracking_number")
        request["tracking_number"] = tracking
        request["lines"] = validated_lines(
            body.get("lines"), lambda sku: self._stocked(request["warehouse"], sku)
        )
        return request

    def _snapshot(self, ret: _Return) -> dict[str, Any]:
        request = ret.request
        return {
            "id": ret.id,
            "return_id": request["return_id"],
            "order_id": request["order_id"],
            "warehouse": request["warehouse"],
            "tracking_number": request["tracking_number"],
            "status": ret.status,
            "lines": copy.deepcopy(ret.lines),
            "created_at": ret.created_at,
            "updated_at": ret.updated_at,
        }


def control(desk: ReturnsDesk, action: str, return_id: str, body: Any) -> Answer:
    """`POST /_sim/returns/{id}/{action}`: the desk's knobs over HTTP (local only, no auth)."""
    params = body if isinstance(body, dict) else {}
    try:
        if action == "receive":
            return 200, desk.receive(return_id, params.get("lines"))
        if action == "inspect":
            return 200, desk.inspect(return_id, params.get("lines"))
        if action == "resend":
            return 200, desk.resend(return_id, str(params.get("type") or "return.received"))
        if action in ("hold", "release"):
            getattr(desk, action)(return_id)
            return 200, desk.snapshot(return_id)
    except ValueError as exc:
        raise Refusal(409, "invalid_state", str(exc)) from None
    raise Refusal(404, "not_found", f"no control action {action!r}")


def _waiting(line: Mapping[str, Any]) -> int:
    return int(line["received_quantity"] - sum(line["inspected"].values()))


def _check_outcome(outcome: Any) -> None:
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; known: {', '.join(OUTCOMES)}")
