"""Small pure helpers of the Shopify simulator: ids, money, timestamps, cursors, order statuses."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from local.simulators.shopify.records import RISK_LEVELS, RISK_RECOMMENDATIONS, CaptureRejected

SHOP_TZ = timezone(timedelta(hours=-4))  # the simulated shop's time zone (Shopify stamps in shop time)


ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "CLP", "ISK"})


STATUS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "open": lambda o: not o["cancelled_at"] and not o["closed_at"],
    "closed": lambda o: bool(o["closed_at"]),
    "cancelled": lambda o: bool(o["cancelled_at"]),
    "any": lambda o: True,
}


def version_at_least(version: str, since: str) -> bool:
    return version == "unstable" or version >= since


def legacy_id_of(value: object, type_name: str) -> int | None:
    """The numeric id in `gid://shopify/<type_name>/N` (or a bare number); None when it is neither."""
    text = str(value).strip() if value is not None else ""
    prefix = f"gid://shopify/{type_name}/"
    if text.startswith(prefix):
        text = text[len(prefix) :]
    return int(text) if text.isdigit() else None


def make_gid(type_name: str, legacy_id: int | None) -> str:
    return f"gid://shopify/{type_name}/{legacy_id}"


def capture_amount(amount: str | Decimal, currency: str) -> Decimal:
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise CaptureRejected("amount", "Amount is invalid") from None
    if not value.is_finite() or value <= 0:
        raise CaptureRejected("amount", "Amount must be greater than 0")
    if round_money(value, currency) != value:
        raise CaptureRejected("amount", f"Amount has more decimal places than {currency} allows")
    return value


def risk_summary(recommendation: str, levels: Sequence[str]) -> dict[str, Any]:
    """OrderRiskSummary: the recommendation and one OrderRiskAssessment (by Shopify) per risk level."""
    upper = recommendation.upper()
    if upper not in RISK_RECOMMENDATIONS:
        raise ValueError(f"recommendation {recommendation!r} is not one of {sorted(RISK_RECOMMENDATIONS)}")
    unknown = [lv for lv in levels if lv.upper() not in RISK_LEVELS]
    if unknown:
        raise ValueError(f"risk levels {unknown} are not among {sorted(RISK_LEVELS)}")
    assessments: list[dict[str, Any]] = [
        {"riskLevel": lv.upper(), "facts": [], "provider": None} for lv in levels
    ]
    return {"recommendation": upper, "assessments": assessments}


def encode_cursor(cursor: Mapping[str, Any]) -> str:
    raw = json.dumps(cursor, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> dict[str, Any]:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not a cursor")
    return value


def utc_text(stamp: str) -> str:
    """A Shopify timestamp as comparable UTC text (GraphQL's DateTime form)."""
    parsed = datetime.fromisoformat(stamp)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _q(currency: str) -> Decimal:
    return Decimal(1) if currency in ZERO_DECIMAL else Decimal("0.01")


def round_money(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(_q(currency), rounding=ROUND_HALF_EVEN)


def money_text(amount: Decimal, currency: str) -> str:
    return f"{round_money(amount, currency):f}"


def set_sum(objects: Sequence[Mapping[str, Any]], key: str) -> Decimal:
    return sum((Decimal(o[key]["shop_money"]["amount"]) for o in objects), Decimal(0))


def money_set(amount: str, currency: str) -> dict[str, Any]:
    money = {"amount": amount, "currency_code": currency}
    return {"shop_money": dict(money), "presentment_money": dict(money)}


def gql_connection(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    info = {"hasNextPage": False, "hasPreviousPage": False, "startCursor": None, "endCursor": None}
    return {"nodes": nodes, "pageInfo": info}
