"""The fulfilment policy: which warehouses ship what where, with what promise, and when silence is late."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.order import Address


@dataclass(frozen=True)
class Warehouse:
    id: str
    provider: str
    countries: tuple[str, ...] = ("*",)
    skus: tuple[str, ...] = ("*",)
    priority: int = 1
    promise_days: int = 5
    # Where returns to this warehouse go (the carrier's return labels); None: the carrier account's default.
    address: Address | None = None

    def serves(self, sku: str | None, country: str | None) -> bool:
        country_ok = "*" in self.countries or (country or "").upper() in self.countries
        return country_ok and any(fnmatch.fnmatchcase(sku or "", pattern) for pattern in self.skus)


@dataclass(frozen=True)
class FulfilmentPolicy:
    """The fulfilment_policy setting: `{"warehouses": [{"id", "provider", "countries", "skus", "priority",
    "promise_days", "address"?}], "silent_after_hours": 48}`; `address` (optional) is the canonical
    Address `{"name", "line1", "line2", "city", "region", "postal_code", "country"}` return labels are
    addressed to."""

    warehouses: tuple[Warehouse, ...] = (Warehouse("main", "default"),)
    silent_after: timedelta = timedelta(hours=48)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> FulfilmentPolicy:
        try:
            warehouses = tuple(
                Warehouse(
                    id=str(w["id"]),
                    provider=str(w["provider"]),
                    countries=tuple(str(c).upper() if c != "*" else "*" for c in w.get("countries", ["*"])),
                    skus=tuple(str(s) for s in w.get("skus", ["*"])),
                    priority=int(w.get("priority", 1)),
                    promise_days=int(w.get("promise_days", 5)),
                    address=Address.model_validate(w["address"]) if w.get("address") else None,
                )
                for w in config.get("warehouses", [])
            )
            silent = timedelta(hours=float(config.get("silent_after_hours", 48)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"fulfilment policy: {exc}") from exc
        return cls(warehouses=warehouses or cls.warehouses, silent_after=silent)
