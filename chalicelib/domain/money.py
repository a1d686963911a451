"""Exact decimal money with each currency's minor units (ISO 4217)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

# ISO 4217 currencies whose minor unit is not 2 digits; every other code has 2.
_MINOR_UNITS: dict[str, int] = {
    # zero-decimal
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    # three-decimal
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    # four-decimal
    "CLF": 4,
    "UYW": 4,
}


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly."""


def minor_units(currency: str) -> int:
    code = currency.upper()
    if len(code) != 3 or not code.isalpha():
        raise MoneyError(f"not an ISO 4217 currency code: {currency!r}")
    return _MINOR_UNITS.get(code, 2)


def to_amount(value: object, currency: str) -> Decimal:
    """Parse a channel's amount (string, int or Decimal; never float) into the currency's minor units."""
    if isinstance(value, float):
        # A float has already lost the exact value the channel sent.
        raise MoneyError("amounts must be strings or integers, not floats")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise MoneyError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise MoneyError(f"not an amount: {value!r}")
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exponent, rounding=ROUND_HALF_EVEN)


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
