"""Opening returns: an operator's or back office's request (API, status page) and a channel's own return
(Shopify returns, Amazon's returns report), checked against the order and the store's policy, recorded in
the order and handed to the return workflow (one execution per return, named after it)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain import money
from chalicelib.domain.errors import IdempotencyKeyReused, InvalidInput, NotFound, OrderNotYetKnown
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.ports import OrderRepository, WorkflowStarter
from chalicelib.domain.returns.amounts import within_withdrawal
from chalicelib.domain.returns.errors import ReturnNotAllowed, ReturnRefused
from chalicelib.domain.returns.events import ChannelReturn
from chalicelib.domain.returns.kit_lines import with_components
from chalicelib.domain.returns.kits import parse_components
from chalicelib.domain.returns.model import (
    OrderReturn,
    Resolution,
    ReturnLine,
    ReturnStatus,
    delivered_at,
    delivered_units,
    find_return,
    put_return,
    return_id,
    returned_units,
    returns_of,
)
from chalicelib.domain.returns.policy import REASONS, ReturnPolicies, ReturnPolicy
from chalicelib.domain.returns.steps import settle_order_status

# Orders whose goods have reached the customer (and are not already all given back).
RETURNABLE = frozenset(
    {
        OrderStatus.DELIVERED,
        OrderStatus.COMPLETED,
        OrderStatus.RETURN_REQUESTED,
        OrderStatus.PARTIALLY_REFUNDED,
        OrderStatus.RETURNED,
    }
)
MAX_LINES = 250
_DECIMAL = re.compile(r"\d{1,15}(\.\d{1,4})?")
_KEYS = {"lines", "resolution", "exchange", "override", "label"}


@dataclass(frozen=True)
class ReturnRequest:
    lines: tuple[ReturnLine, ...]
    resolution: Resolution
    exchange_lines: tuple[dict[str, Any], ...] = ()
    # An operator's override of a policy rule: {"rule": <the rule to set aside>, "note": ...}.
    override: Mapping[str, Any] | None = None
    label: bool = True
    raw: Mapping[str, Any] = field(default_factory=dict)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{where} must be a whole number")
    return value


def parse_return_request(body: Any) -> ReturnRequest:
    """The API's body (DESIGN.md §7); InvalidInput (400) when malformed."""
    if not isinstance(body, dict):
        raise InvalidInput('body must be {"lines": [{"line_id", "quantity", "reason"}], "resolution": ...}')
    unknown = set(body) - _KEYS
    if unknown:
        raise InvalidInput(f"unknown fields: {sorted(unknown)}")
    raw_lines = body.get("lines")
    if not isinstance(raw_lines, list) or not raw_lines or len(raw_lines) > MAX_LINES:
        raise InvalidInput(f"lines must be a list of 1 to {MAX_LINES} lines")
    lines = []
    for i, raw in enumerate(raw_lines):
        where = f"lines[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("line_id"), str) or not raw["line_id"]:
            raise InvalidInput(f"{where}.line_id must be a non-empty string")
        quantity = _int(raw.get("quantity"), f"{where}.quantity")
        if quantity < 1:
            raise InvalidInput(f"{where}.quantity must be at least 1")
        reason = raw.get("reason", "other")
        if reason not in REASONS:
            raise InvalidInput(f"{where}.reason must be one of {sorted(REASONS)}")
        components = parse_components(raw.get("components"), where)
        lines.append(
            ReturnLine(line_id=raw["line_id"], quantity=quantity, reason=reason, components=components)
        )
    if len({ln.line_id for ln in lines}) != len(lines):
        raise InvalidInput("lines name the same line_id twice: give one entry per line")
    resolution = body.get("resolution", "refund")
    if resolution not in Resolution.__members__.values():
        raise InvalidInput(f"resolution must be one of {[r.value for r in Resolution]}")
    exchange = _exchange_lines(body.get("exchange"), Resolution(resolution))
    override = body.get("override")
    if override is not None and (not isinstance(override, dict) or not isinstance(override.get("rule"), str)):
        raise InvalidInput('override must be {"rule": "<rule to set aside>", "note": "..."}')
    label = body.get("label", True)
    if not isinstance(label, bool):
        raise InvalidInput("label must be true or false")
    return ReturnRequest(tuple(lines), Resolution(resolution), exchange, override, label, body)


def _exchange_lines(raw: Any, resolution: Resolution) -> tuple[dict[str, Any], ...]:
    if resolution is not Resolution.EXCHANGE:
        if raw is not None:
            raise InvalidInput("exchange is only for the exchange resolution")
        return ()
    if raw is None:
        return ()  # the same items again
    items = raw.get("lines") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not items or len(items) > MAX_LINES:
        raise InvalidInput('exchange must be {"lines": [{"sku", "quantity"}]}')
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("sku"), str) or not item["sku"]:
            raise InvalidInput(f"exchange.lines[{i}].sku must be a non-empty string")
        quantity = _int(item.get("quantity"), f"exchange.lines[{i}].quantity")
        if quantity < 1:
            raise InvalidInput(f"exchange.lines[{i}].quantity must be at least 1")
        wanted: dict[str, Any] = {"sku": item["sku"], "quantity": quantity}
        price = item.get("unit_price")
        if price is not None:
            if not isinstance(price, str) or not _DECIMAL.fullmatch(price):
                raise InvalidInput(f'exchange.lines[{i}].unit_price must be a decimal string, e.g. "49.90"')
            wanted["unit_price"] = price
        title = item.get("title")
        if title is not None:
            if not isinstance(title, str) or not title.strip() or len(title) > 255:
                raise InvalidInput(f"exchange.lines[{i}].title must be a non-empty string of at most 255")
            wanted["title"] = title
        unknown = set(item) - {"sku", "quantity", "unit_price", "title"}
        if unknown:
            raise InvalidInput(f"exchange.lines[{i}]: unknown fields {sorted(unknown)}")
        out.append(wanted)
    return tuple(out)


def check_return(
    order: Order, lines: tuple[ReturnLine, ...], policy: ReturnPolicy, at: datetime, *, overridden: str | None
) -> tuple[ReturnLine, ...]:
    """The lines, completed with their SKUs, when the order and the policy allow them; else ReturnRefused
    naming the rule (an operator's override sets aside one policy rule, never the order's facts)."""
    if order.status not in RETURNABLE:
        raise ReturnNotAllowed(
            f"order {order.order_id} is {order.status.value}: only delivered orders return"
        )
    delivered = delivered_units(order)
    if not any(delivered.values()):
        raise ReturnNotAllowed(f"order {order.order_id} has nothing delivered to return")
    already = returned_units(order)
    by_id = {line.line_id: line for line in order.lines}
    checked = []
    for rl in lines:
        line = by_id.get(rl.line_id)
        if line is None:
            raise ReturnRefused("unknown_line", f"the order has no line {rl.line_id!r}")
        left = delivered.get(rl.line_id, 0) - already.get(rl.line_id, 0)
        if rl.quantity > left:
            raise ReturnRefused(
                "too_many_units",
                f"line {rl.line_id}: {rl.quantity} asked, {max(left, 0)} delivered and not returned",
            )
        sku_known = rl.model_copy(update={"sku": line.sku})
        checked.append(with_components(order, sku_known, policy.kits, delivered=delivered.get(rl.line_id, 0)))
    if within_withdrawal(order, at):
        return tuple(checked)  # the withdrawal right: no policy rule refuses it
    rules = []
    received = delivered_at(order)
    if received is not None and at - received > timedelta(days=policy.window_days):
        rules.append(
            ("outside_window", f"delivered {received.date()}, the window is {policy.window_days} days")
        )
    for rl in checked:
        if not policy.returnable(rl.sku):
            rules.append(("non_returnable_sku", f"{rl.sku} cannot be returned"))
    for rule, detail in rules:
        if rule != overridden:
            raise ReturnRefused(rule, detail)
    return tuple(checked)


def _check_exchange(order: Order, wanted: tuple[dict[str, Any], ...]) -> None:
    """A replacement SKU the order does not carry needs its price, exact in the order's currency."""
    skus = {line.sku for line in order.lines}
    for i, item in enumerate(wanted):
        price = item.get("unit_price")
        if price is None and item["sku"] not in skus:
            raise ReturnRefused(
                "exchange_price_unknown", f"exchange.lines[{i}]: {item['sku']} needs a unit_price"
            )
        if price is not None:
            try:
                money.exact_amount(price, order.currency)
            except money.MoneyError as exc:
                raise InvalidInput(f"exchange.lines[{i}].unit_price: {exc}") from exc


def request_hash(raw: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def request_return(
    order_id: str,
    request: ReturnRequest,
    *,
    orders: OrderRepository,
    workflow: WorkflowStarter,
    policies: ReturnPolicies,
    now: Callable[[], datetime],
    source: str = "api",
    operator: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[OrderReturn, bool]:
    """Open a return (and start its workflow); (the return, created). The same Idempotency-Key with the same
    body answers the first return; with another body it is IdempotencyKeyReused (409)."""
    digest = request_hash(request.raw)

    def change(order: Order) -> tuple[OrderReturn, bool]:
        if idempotency_key is not None:
            for known in returns_of(order):
                if known.idempotency_key == idempotency_key:
                    if known.request_hash != digest:
                        raise IdempotencyKeyReused(
                            f"Idempotency-Key {idempotency_key!r} was already used with another request"
                        )
                    return known, False
        at = now()
        policy = policies.for_store(order.channel, order.store)
        overridden = str(request.override["rule"]) if request.override else None
        lines = check_return(order, request.lines, policy, at, overridden=overridden)
        _check_exchange(order, request.exchange_lines)
        if request.resolution is Resolution.STORE_CREDIT and not order.customer.email:
            raise ReturnRefused(
                "no_customer_for_credit", "store credit needs the customer's e-mail on the order"
            )
        number = 1 + len(returns_of(order))
        ret = OrderReturn(
            return_id=return_id(order_id, number),
            number=number,
            order_id=order_id,
            source=source,
            resolution=request.resolution,
            lines=list(lines),
            requested_at=at,
            updated_at=at,
            idempotency_key=idempotency_key,
            request_hash=digest,
            label_needed=request.label,
            exchange_lines=list(request.exchange_lines),
            override={**request.override, "by": operator or source} if request.override else None,
        )
        _open(order, ret, at)
        return ret, True

    ret, created = mutate(orders, order_id, change)
    start_return_workflow(ret, workflow=workflow)
    return ret, created


def _open(order: Order, ret: OrderReturn, at: datetime) -> None:
    put_return(order, ret)
    if order.status != OrderStatus.RETURN_REQUESTED:
        order.status = OrderStatus.RETURN_REQUESTED
    order.updated_at = max(order.updated_at, at)
    order.record(
        "return_requested",
        at,
        return_id=ret.return_id,
        source=ret.source,
        resolution=ret.resolution.value,
        lines=[{"line_id": ln.line_id, "quantity": ln.quantity, "reason": ln.reason} for ln in ret.lines],
        **({"override": ret.override} if ret.override else {}),
    )


def start_return_workflow(ret: OrderReturn, *, workflow: WorkflowStarter) -> str:
    """Start (or find: the execution is named after the return) the return's workflow."""
    return workflow.start(
        ret.order_id, {"order_id": ret.order_id, "return_id": ret.return_id}, name=ret.return_id
    )


# --- returns opened at the channel --------------------------------------------------------------------


def record_channel_return(
    event: ChannelReturn,
    *,
    orders: OrderRepository,
    workflow: WorkflowStarter,
    policies: ReturnPolicies,
    now: Callable[[], datetime],
    resume: Callable[[OrderReturn], None] | None = None,
) -> dict[str, Any]:
    """A channel's return (Shopify returns/*, Amazon's report): one hub return per channel return id,
    however often it is heard of. A return the channel declines or cancels before the parcel arrives is
    rejected; the channel's own checks (window, units) are the channel's, but units the hub knows were
    never delivered are refused and recorded. `resume` wakes the return workflow's wait of a return the
    channel rejected, so it ends now rather than at its deadline."""
    stored = orders.get_by_channel(event.channel, event.store, event.external_order_id)
    if stored is None:
        raise OrderNotYetKnown(f"{event.channel} order {event.external_order_id} is not known yet")
    order_id = stored.order.order_id
    # A later word that names only the return (Shopify's decline) finds its order through this link.
    orders.link_return(f"{event.channel}:{event.store}:{event.external_return_id}", order_id)

    def change(order: Order) -> dict[str, Any]:
        known = next((r for r in returns_of(order) if r.external_id == event.external_return_id), None)
        at = now()
        if known is not None:
            return _channel_update(order, known, event, at)
        if event.status in ("declined", "cancelled"):
            return {
                "order_id": order_id,
                "outcome": "ignored",
                "reason": f"{event.status} before the hub knew it",
            }
        lines = _channel_lines(order, event)
        number = 1 + len(returns_of(order))
        refusal: dict[str, Any] | None = None
        try:
            checked = check_return(
                order, lines, policies.for_store(order.channel, order.store), at, overridden=None
            )
        except (ReturnRefused, ReturnNotAllowed) as exc:
            # The channel accepted it: the hub records it with the refusal for an operator, and never
            # starts its workflow.
            checked, refusal = lines, {"rule": getattr(exc, "rule", "not_returnable"), "detail": str(exc)}
        ret = OrderReturn(
            return_id=return_id(order_id, number),
            number=number,
            order_id=order_id,
            source=event.channel,
            external_id=event.external_return_id,
            resolution=Resolution(event.resolution)
            if event.resolution in Resolution.__members__.values()
            else Resolution.REFUND,
            lines=list(checked),
            requested_at=event.at,
            updated_at=at,
            label_needed=not event.label_provided,
            status=ReturnStatus.REJECTED if refusal else ReturnStatus.REQUESTED,
            refusal=refusal,
        )
        if refusal:
            put_return(order, ret)
            order.record("return_refused", at, return_id=ret.return_id, **refusal)
            return {"order_id": order_id, "return_id": ret.return_id, "outcome": "refused", **refusal}
        _open(order, ret, at)
        return {"order_id": order_id, "return_id": ret.return_id, "outcome": "opened", "start": True}

    result: dict[str, Any] = mutate(orders, order_id, change)
    if result.get("outcome") == "rejected" and resume is not None:
        after = orders.get(order_id)
        rejected = find_return(after.order, str(result["return_id"])) if after else None
        if rejected is not None:
            resume(rejected)
    if result.get("start"):
        stored_after = orders.get(order_id)
        ret = (
            next(r for r in returns_of(stored_after.order) if r.return_id == result["return_id"])
            if stored_after
            else None
        )
        if ret is not None:
            start_return_workflow(ret, workflow=workflow)
    result.pop("start", None)
    return result


def _channel_lines(order: Order, event: ChannelReturn) -> tuple[ReturnLine, ...]:
    """The channel's lines as the order's: by line id, or by SKU (Amazon's report names SKUs only)."""
    out: dict[str, ReturnLine] = {}
    for cl in event.lines:
        line = next((ln for ln in order.lines if ln.line_id == cl.line_id), None) if cl.line_id else None
        if line is None and cl.sku:
            line = next((ln for ln in order.lines if ln.sku == cl.sku), None)
        if line is None:
            raise ReturnRefused("unknown_line", f"the order has no line {cl.line_id or cl.sku!r}")
        previous = out.get(line.line_id)
        quantity = cl.quantity + (previous.quantity if previous else 0)
        out[line.line_id] = ReturnLine(
            line_id=line.line_id, sku=line.sku, quantity=quantity, reason=cl.reason
        )
    if not out:
        raise InvalidInput("a channel return without lines")
    return tuple(out.values())


def _channel_update(order: Order, known: OrderReturn, event: ChannelReturn, at: datetime) -> dict[str, Any]:
    """A later word from the channel on a return the hub has: declined/cancelled before receipt rejects it."""
    if event.status in ("declined", "cancelled") and known.status in (
        ReturnStatus.REQUESTED,
        ReturnStatus.APPROVED,
        ReturnStatus.LABEL_SENT,
    ):
        rejected = known.model_copy(
            update={
                "status": ReturnStatus.REJECTED,
                "updated_at": at,
                "refusal": {
                    "rule": f"channel_{event.status}",
                    "detail": f"{event.channel} {event.status} it",
                },
            }
        )
        put_return(order, rejected)
        settle_order_status(order)
        order.record("return_rejected", at, return_id=known.return_id, source=event.channel)
        return {"order_id": order.order_id, "return_id": known.return_id, "outcome": "rejected"}
    return {"order_id": order.order_id, "return_id": known.return_id, "outcome": "duplicate"}


def get_return(order_id: str, rid: str, *, orders: OrderRepository) -> OrderReturn:
    stored = orders.get(order_id)
    if stored is None:
        raise NotFound(f"order {order_id} does not exist")
    ret = next((r for r in returns_of(stored.order) if r.return_id == rid), None)
    if ret is None:
        raise NotFound(f"order {order_id} has no return {rid}")
    return ret
