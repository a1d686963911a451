"""Reading Shopify's payload fields defensively: required values, text, amounts in a currency, timestamps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib.domain import money
from chalicelib.domain.errors import InvalidInput


def required(obj: Mapping[str, Any], key: str, where: str) -> Any:
    value = obj.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(f"{where}: missing required field {key!r}")
    return value


def text_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping | list):
        # An object where text belongs is refused, not stored as its Python repr.
        raise InvalidInput(f"shopify: text expected, got {type(value).__name__}")
    text = str(value).strip()
    return text or None


def first_text(values: Iterable[Any]) -> str | None:
    return next((t for v in values if (t := text_of(v))), None)


def objects_of(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def allocations_of(obj: Mapping[str, Any]) -> list[Any]:
    return [set_amount(a, "amount") for a in objects_of(obj.get("discount_allocations"))]


def currency_code(value: Any, where: str) -> str:
    code = str(value).strip().upper()
    try:
        money.minor_units(code)
    except money.MoneyError as exc:
        raise InvalidInput(f"{where}: {exc}") from exc
    return code


def timestamp_of(value: Any, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(f"{where}: not an ISO 8601 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        raise InvalidInput(f"{where}: timestamp without a time zone: {value!r}")
    return parsed


def amount_of(value: Any, currency: str | None, where: str) -> Decimal:
    if isinstance(value, float):
        # A few Shopify fields are JSON numbers (refund line subtotals); repr gives back the literal sent.
        value = repr(value)
    if isinstance(value, bool):
        raise InvalidInput(f"{where}: not an amount: {value!r}")
    try:
        if currency is not None:
            return money.to_amount(value, currency)
        # No currency to round to: keep the exact figure rather than guess minor units.
        exact = Decimal(str(value).strip())
    except (money.MoneyError, InvalidOperation) as exc:
        raise InvalidInput(f"{where}: not an amount: {value!r}") from exc
    if not exact.is_finite() or abs(exact) >= money.MAX_AMOUNT:
        raise InvalidInput(f"{where}: not an amount: {str(value)[:40]!r}")
    return exact


def sum_amounts(values: Iterable[Any], currency: str | None, where: str) -> Decimal:
    total = sum((amount_of(v, currency, where) for v in values if v is not None), Decimal(0))
    return money.to_amount(total, currency) if currency is not None else total


def set_amount(obj: Mapping[str, Any], key: str) -> Any:
    """Prefer the exact string in `<key>_set.shop_money` over the plain field (a JSON number there)."""
    money_set = shop_money(obj, key)
    return money_set.get("amount") if money_set else obj.get(key)


def set_currency(obj: Mapping[str, Any], key: str) -> str | None:
    return text_of(shop_money(obj, key).get("currency_code"))


def shop_money(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    money_set = obj.get(f"{key}_set")
    shop_money = money_set.get("shop_money") if isinstance(money_set, Mapping) else None
    return shop_money if isinstance(shop_money, Mapping) else {}
