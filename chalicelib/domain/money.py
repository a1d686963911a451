"""Exact decimal money with each currency's minor units (ISO 4217)."""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

# Bigger amounts are no order's (10^15 of any currency's major unit) and overflow decimal arithmetic.
MAX_AMOUNT = Decimal(10) ** 15


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly."""


@functools.cache
def _iso_minor_units() -> dict[str, int]:
    """ISO 4217's active currencies and their minor units (the `iso4217` package's copy of the official
    list); codes without minor units (XXX, XTS, metals, SDR) are no order's currency. Loaded on first use."""
    import iso4217

    return {c.code: c.exponent for c in iso4217.Currency if c.exponent is not None}


def minor_units(currency: str) -> int:
    code = currency.upper() if isinstance(currency, str) else ""
    units = _iso_minor_units().get(code)
    if units is None:
        raise MoneyError(f"not an ISO 4217 currency code: {currency!r}")
    return units


def exact_amount(value: object, currency: str) -> Decimal:
    """An amount as the caller wrote it, refused (never rounded) when it has more decimals than the
    currency's minor units (JPY 0, EUR 2, KWD 3)."""
    amount = _parse(value)
    places = minor_units(currency)
    if amount != amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN):
        raise MoneyError(f"{value!r} has more decimals than {currency.upper()} allows ({places})")
    return to_amount(amount, currency)


def to_amount(value: object, currency: str) -> Decimal:
    """Parse a channel's amount (string, int or Decimal; never float) into the currency's minor units."""
    amount = _parse(value)
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exponent, rounding=ROUND_HALF_EVEN)


def _parse(value: object) -> Decimal:
    if isinstance(value, float):
        # A float has already lost the exact value the channel sent.
        raise MoneyError("amounts must be strings or integers, not floats")
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise MoneyError(f"not an amount: {value!r}")
    text = str(value).strip()
    if len(text) > 40:
        raise MoneyError(f"not an amount: {text[:40]!r}... ({len(text)} characters)")
    try:
        amount = Decimal(text)
    except (InvalidOperation, ValueError) as exc:
        raise MoneyError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise MoneyError(f"not an amount: {value!r}")
    if abs(amount) >= MAX_AMOUNT:
        raise MoneyError(f"amount out of range: {text}")
    return amount


def to_minor(amount: Decimal, currency: str) -> int:
    """An amount in the currency's smallest unit, as payment APIs such as Stripe expect."""
    return int(to_amount(amount, currency).scaleb(minor_units(currency)))


def format_amount(amount: Decimal, currency: str) -> str:
    return f"{to_amount(amount, currency):f}"


def from_minor(minor: int, currency: str) -> Decimal:
    """The amount a payment API's smallest-unit integer stands for (Stripe's 1999 USD → 19.99)."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise MoneyError(f"minor units must be an integer, not {minor!r}")
    return to_amount(Decimal(minor).scaleb(-minor_units(currency)), currency)
