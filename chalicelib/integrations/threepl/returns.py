"""A 3PL's signed return events (`return.received`, `return.inspected`) as the domain's ReturnEvent.

Body (the hub's 3PL contract, `local/simulators/threepl_returns.py`): `{"id", "type", "created": <unix>,
"data": {"return": {"id", "return_id", "order_id", "warehouse", "status", ...}, "units": [{"line_id",
"sku", "quantity", "outcome"?}]}}`. Strict on what the hub acts on (ids, type, units, quantities,
outcomes: a malformed event is refused with a message naming the field), lenient on the rest (a
missing optional field is None, never a crash). Signatures are checked once, at the webhook.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib.domain import webhooks
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.returns.events import ReturnedUnit, ReturnEvent
from chalicelib.domain.returns.model import Outcome

RETURN_EVENT_KINDS = {"return.received": "received", "return.inspected": "inspected"}


def return_event(payload: Any, provider: str = "unknown") -> ReturnEvent:
    """A verified 3PL return event (parsed once, at the webhook) in the domain's words; `provider` is the
    3PL connection it came through (the webhook path's provider)."""
    body = webhooks.json_object(payload, "3pl return event")
    event_id = _text(body, "id", "id")
    kind = RETURN_EVENT_KINDS.get(str(body.get("type")))
    if kind is None:
        raise InvalidInput(f"3pl return event: type must be one of {', '.join(sorted(RETURN_EVENT_KINDS))}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise InvalidInput("3pl return event: data is missing")
    ret = data.get("return")
    if not isinstance(ret, dict):
        raise InvalidInput("3pl return event: data.return is missing")
    units = data.get("units")
    if not isinstance(units, list) or not units:
        raise InvalidInput("3pl return event: data.units is missing or empty")
    return ReturnEvent(
        event_id=event_id,
        provider=provider,
        kind=kind,
        return_id=_text(ret, "return_id", "data.return.return_id"),
        at=_at(body.get("created")),
        units=tuple(
            _unit(unit, f"data.units[{i}]", inspected=kind == "inspected") for i, unit in enumerate(units)
        ),
    )


def order_of(payload: Any) -> str | None:
    """The hub order a return event is about (None when the body does not say): its FIFO group."""
    data = payload.get("data") if isinstance(payload, dict) else None
    ret = data.get("return") if isinstance(data, dict) else None
    order_id = ret.get("order_id") if isinstance(ret, dict) else None
    return order_id if isinstance(order_id, str) and order_id else None


def _unit(raw: Any, where: str, *, inspected: bool) -> ReturnedUnit:
    if not isinstance(raw, dict):
        raise InvalidInput(f"3pl return event: {where} is not an object")
    quantity = raw.get("quantity")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise InvalidInput(f"3pl return event: {where}.quantity must be a whole number of at least 1")
    sku, line_id = _optional_text(raw, "sku"), _optional_text(raw, "line_id")
    if sku is None and line_id is None:
        raise InvalidInput(f"3pl return event: {where} names neither a sku nor a line_id")
    outcome: Outcome | None = None
    if inspected:
        try:
            outcome = Outcome(str(raw.get("outcome")))
        except ValueError:
            known = ", ".join(o.value for o in Outcome)
            raise InvalidInput(f"3pl return event: {where}.outcome must be one of {known}") from None
    return ReturnedUnit(quantity=quantity, sku=sku, line_id=line_id, outcome=outcome)


def _at(created: Any) -> datetime:
    if not isinstance(created, int) or isinstance(created, bool):
        raise InvalidInput("3pl return event: created is not a unix timestamp")
    try:
        return datetime.fromtimestamp(created, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidInput("3pl return event: created is out of range") from None


def _text(raw: Mapping[str, Any], name: str, where: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"3pl return event: {where} is missing or not a string")
    return value


def _optional_text(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    return value if isinstance(value, str) and value.strip() else None
