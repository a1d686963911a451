"""The canonical order's rules, in one place: checked at the edge where it has the order, and at ingestion."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from chalicelib.domain import money
from chalicelib.domain.errors import InvalidOrder, TooLarge
from chalicelib.domain.order import Address, Order

MAX_QUANTITY = 100_000
MAX_ID = 255  # external ids, line ids, SKUs
MAX_EMAIL = 254  # RFC 5321's path limit
MAX_TITLE = 1_000
MAX_TEXT = 255  # names, address lines, cities, regions, references
MAX_SHORT = 64  # phones, postal codes, sources, statuses
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# How far ahead of the hub's clock a channel's clock may run.
CLOCK_SKEW = timedelta(days=1)
# The canonical order as JSON; its DynamoDB item (history, shipments and index keys added as it lives)
# stops at 400 KB, so an order starts well below that.
MAX_ORDER_BYTES = 256 * 1024

# C0/C1 controls, and the bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069)
# that make an id or a title display as something it is not.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def validate_order(order: Order, *, now: datetime) -> None:
    """Every way the order breaks the rules (README "What the hub accepts"), as one InvalidOrder; a
    TooLarge when it would not fit in storage."""
    problems = list(_problems(order, now))
    if problems:
        raise InvalidOrder(f"invalid order: {'; '.join(problems[:10])}")
    size = len(json.dumps(order.to_json(), separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_ORDER_BYTES:
        raise TooLarge(f"order too large: {size} bytes as JSON, at most {MAX_ORDER_BYTES}")


def id_problem(value: str, what: str) -> str | None:
    """Why `value` cannot be an id (printable, bounded, no path separators), or None."""
    if not value.strip():
        return f"{what} is blank"
    if len(value) > MAX_ID:
        return f"{what} is longer than {MAX_ID} characters"
    if _UNSAFE.search(value):
        return f"{what} holds control or bidirectional characters"
    if "/" in value or "\\" in value or ".." in value:
        return f"{what} holds a path separator ('/', '\\' or '..')"
    return None


def text_problem(value: str | None, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if len(value) > limit:
        return f"{what} is longer than {limit} characters"
    if _UNSAFE.search(value):
        return f"{what} holds control or bidirectional characters"
    return None


def _problems(order: Order, now: datetime) -> Iterator[str]:
    try:
        places = money.minor_units(order.currency)
    except money.MoneyError as exc:
        yield str(exc)
        places = 2
    yield from _found(id_problem(order.external_id, "external_id"))
    if order.channel == "manual":  # a channel's store is its connection's; the manual one is the caller's
        yield from _found(id_problem(order.store, "store"))
    yield from _found(text_problem(order.external_number, "external_number", MAX_ID))
    yield from _dates(order, now)
    yield from _people(order)
    if not order.lines:
        yield "an order needs at least one line"
    for line in order.lines:
        where = f"line {line.line_id[:40]!r}"
        yield from _found(id_problem(line.line_id, "line_id"))
        yield from _found(text_problem(line.sku, f"{where} sku", MAX_ID))
        yield from _found(text_problem(line.title, f"{where} title", MAX_TITLE))
        if not 0 <= line.quantity <= MAX_QUANTITY:
            yield f"{where} quantity must be 0..{MAX_QUANTITY}"
        yield from _money(where, places, line, "unit_price", "discount", "tax", "total")
        if line.discount > line.unit_price * line.quantity:
            yield f"{where} discount is more than the line's price"
    t = order.totals
    yield from _money("totals", places, t, "subtotal", "discount", "shipping", "tax", "total")
    p = order.payment
    yield from _money("payment", places, p, "amount_authorized", "amount_captured", "amount_refunded")
    # When the given total and its parts disagree the order is kept and flagged (`validated` history entry):
    # captured is then bounded by the larger of the two.
    parts = t.subtotal - t.discount + t.shipping + (Decimal(0) if t.taxes_included else t.tax)
    if p.amount_captured > max(t.total, parts):
        yield f"payment amount_captured {p.amount_captured:f} is more than the total {t.total:f}"
    yield from _found(text_problem(p.source, "payment source", MAX_SHORT))
    yield from _found(text_problem(p.status, "payment status", MAX_SHORT))
    yield from _found(text_problem(p.reference, "payment reference", MAX_TEXT))


def _dates(order: Order, now: datetime) -> Iterator[str]:
    latest = now + CLOCK_SKEW
    for name in ("placed_at", "updated_at"):
        at: datetime = getattr(order, name)
        if not EARLIEST <= at <= latest:
            yield f"{name} {at.isoformat()} is outside {EARLIEST.date()} .. now + {CLOCK_SKEW.days} day"


def _people(order: Order) -> Iterator[str]:
    c = order.customer
    yield from _found(text_problem(c.name, "customer name", MAX_TEXT))
    yield from _found(text_problem(c.phone, "customer phone", MAX_SHORT))
    yield from _found(text_problem(c.email, "customer email", MAX_EMAIL))
    if c.email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+", c.email):
        yield "customer email is not an e-mail address"
    for name, address in (
        ("shipping_address", order.shipping_address),
        ("billing_address", order.billing_address),
    ):
        if address is not None:
            yield from _address(name, address)


def _address(name: str, address: Address) -> Iterator[str]:
    for field in ("name", "line1", "line2", "city", "region"):
        yield from _found(text_problem(getattr(address, field), f"{name} {field}", MAX_TEXT))
    yield from _found(text_problem(address.postal_code, f"{name} postal_code", MAX_SHORT))
    if address.country is not None and address.country.upper() not in _countries():
        yield f"{name} country {address.country[:40]!r} is not an ISO 3166 alpha-2 code"


def _money(where: str, places: int, part: object, *names: str) -> Iterator[str]:
    """The problems of the named amounts of `part` (a line, the totals, the payment): negative, or with
    more decimals than the currency has."""
    for name in names:
        amount: Decimal = getattr(part, name)
        if amount < 0:
            yield f"{where} {name} is negative ({amount:f})"
        elif amount.as_tuple().exponent < -places:  # type: ignore[operator]
            yield f"{where} {name} {amount:f} has more than {places} decimals"


def _found(problem: str | None) -> Iterator[str]:
    if problem is not None:
        yield problem


@functools.cache
def _countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes (the `iso3166` package's table), loaded on first use."""
    import iso3166

    return frozenset(iso3166.countries_by_alpha2)
