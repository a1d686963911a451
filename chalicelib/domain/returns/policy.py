"""The returns policy per store: window, what cannot come back, who pays the label, fees and credit bonus.

The returns_policy setting (JSON, domain/runtime_settings.py): the default policy, optionally with
per-store overrides keyed "<channel>:<store>":

    {"window_days": 30, "non_returnable_skus": ["GIFT-*"],
     "return_shipping_paid_by": {"damaged": "merchant", "defective": "merchant", "wrong_item": "merchant",
                                 "*": "customer"},
     "refund_shipping_for": ["damaged", "defective", "wrong_item"],
     "restocking_fee_percent": "10", "restocking_fee_exempt": ["damaged", "defective", "wrong_item"],
     "store_credit_bonus_percent": "5",
     "parcel_days": 30, "inspection_days": 10, "credit_expires_days": 365,
     "kits": {"KIT-BREW": [{"sku": "POT-1", "quantity": 1, "share": "0.7"},
                           {"sku": "CUP-1", "quantity": 2, "share": "0.3"}]},
     "stores": {"shopify:acme.myshopify.com": {"window_days": 60}}}

The withdrawal right (Brazil's consumer code, art. 49: seven days from receipt) is a floor no setting
lowers: a window below 7 days is refused, and within 7 days of delivery no fee, SKU rule or window refuses
a return.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.returns.kits import KitComponent, parse_kits

WITHDRAWAL_DAYS = 7
# Reasons that are the merchant's fault: free label, shipping refunded, no restocking fee (by default).
MERCHANT_FAULT = ("damaged", "defective", "wrong_item", "not_as_described")
REASONS = frozenset(
    {*MERCHANT_FAULT, "changed_mind", "size", "colour", "unwanted", "late", "withdrawal", "other"}
)


@dataclass(frozen=True)
class ReturnPolicy:
    window_days: int = 30
    non_returnable_skus: tuple[str, ...] = ()
    # reason → merchant | customer ("*" for the rest)
    return_shipping_paid_by: Mapping[str, str] = field(
        default_factory=lambda: {**{r: "merchant" for r in MERCHANT_FAULT}, "*": "customer"}
    )
    refund_shipping_for: tuple[str, ...] = MERCHANT_FAULT
    restocking_fee_percent: Decimal = Decimal(0)
    restocking_fee_exempt: tuple[str, ...] = MERCHANT_FAULT
    store_credit_bonus_percent: Decimal = Decimal(0)
    # How long the return workflow waits for the parcel, then for the inspection.
    parcel_days: int = 30
    inspection_days: int = 10
    # Store credit and vouchers issued for returns lapse after this many days (None: never).
    credit_expires_days: int | None = 365
    # Kit SKU → its components (kits.py): a return of a kit brings back, refunds and restocks components.
    kits: Mapping[str, tuple[KitComponent, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.window_days < WITHDRAWAL_DAYS:
            raise InvalidInput(
                f"returns policy: window_days {self.window_days} is below the "
                f"{WITHDRAWAL_DAYS}-day withdrawal right"
            )
        if not (Decimal(0) <= self.restocking_fee_percent <= Decimal(100)):
            raise InvalidInput("returns policy: restocking_fee_percent must be between 0 and 100")
        if not (Decimal(0) <= self.store_credit_bonus_percent <= Decimal(100)):
            raise InvalidInput("returns policy: store_credit_bonus_percent must be between 0 and 100")
        if self.parcel_days < 1 or self.inspection_days < 1:
            raise InvalidInput("returns policy: parcel_days and inspection_days must be at least 1")
        for reason, payer in self.return_shipping_paid_by.items():
            if payer not in ("merchant", "customer"):
                raise InvalidInput(
                    f"returns policy: return_shipping_paid_by[{reason!r}] must be merchant or customer"
                )

    def label_paid_by(self, reason: str) -> str:
        by = self.return_shipping_paid_by
        return by.get(reason) or by.get("*") or "merchant"

    def returnable(self, sku: str | None) -> bool:
        return not any(fnmatch.fnmatchcase(sku or "", pattern) for pattern in self.non_returnable_skus)

    def fee_applies(self, reason: str) -> bool:
        return self.restocking_fee_percent > 0 and reason not in self.restocking_fee_exempt


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, float | bool):
        raise InvalidInput(f"returns policy: {name} must be a decimal string or an integer")
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidInput(f"returns policy: {name} is not a number") from exc


def _days(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"returns policy: {name} must be an integer")
    return value


def _expiry(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidInput("returns policy: credit_expires_days must be a whole number ≥ 1 or null")
    return value


def _policy(config: Mapping[str, Any], base: ReturnPolicy) -> ReturnPolicy:
    known = {f for f in ReturnPolicy.__dataclass_fields__} | {"stores"}
    unknown = set(config) - known
    if unknown:
        raise InvalidInput(f"returns policy: unknown settings {sorted(unknown)}")
    try:
        changes: dict[str, Any] = {}
        parsers: dict[str, Callable[[Any], Any]] = {
            "credit_expires_days": _expiry,
            "kits": parse_kits,
            "restocking_fee_percent": lambda v: _decimal(v, "restocking_fee_percent"),
            "store_credit_bonus_percent": lambda v: _decimal(v, "store_credit_bonus_percent"),
        }
        for name, parse in parsers.items():
            if name in config:
                changes[name] = parse(config[name])
        for name in ("window_days", "parcel_days", "inspection_days"):
            if name in config:
                changes[name] = _days(config[name], name)
        for name in ("non_returnable_skus", "refund_shipping_for", "restocking_fee_exempt"):
            if name in config:
                values = config[name]
                if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                    raise InvalidInput(f"returns policy: {name} must be a list of strings")
                changes[name] = tuple(values)
        if "return_shipping_paid_by" in config:
            by = config["return_shipping_paid_by"]
            if not isinstance(by, Mapping):
                raise InvalidInput("returns policy: return_shipping_paid_by must be an object")
            changes["return_shipping_paid_by"] = {str(k): str(v) for k, v in by.items()}
        return replace(base, **changes)
    except TypeError as exc:
        raise InvalidInput(f"returns policy: {exc}") from exc


@dataclass(frozen=True)
class ReturnPolicies:
    """The default policy and per-store overrides ("<channel>:<store>")."""

    default: ReturnPolicy = field(default_factory=ReturnPolicy)
    stores: Mapping[str, ReturnPolicy] = field(default_factory=dict)

    def for_store(self, channel: str, store: str) -> ReturnPolicy:
        return self.stores.get(f"{channel}:{store}", self.default)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> ReturnPolicies:
        if not isinstance(config, Mapping):
            raise InvalidInput("returns policy: must be a JSON object")
        default = _policy(config, ReturnPolicy())
        stores_config = config.get("stores", {})
        if not isinstance(stores_config, Mapping):
            raise InvalidInput("returns policy: stores must be an object")
        stores = {}
        for key, override in stores_config.items():
            if not isinstance(override, Mapping) or "stores" in override:
                raise InvalidInput(f"returns policy: stores[{key!r}] must be an object of settings")
            stores[str(key)] = _policy(override, default)
        return cls(default=default, stores=stores)
