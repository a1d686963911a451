"""Manual orders as POST /api/orders takes them, for the tests that place one."""

from __future__ import annotations

from typing import Any

PLACED_AT = "2026-11-23T10:00:00Z"


def manual_body(store: str, external_id: str, *, currency: str = "EUR", **fields: Any) -> dict[str, Any]:
    """A manual order of `store` placed at PLACED_AT; `fields` (customer, lines, totals, payment, ...) follow
    in the order given, as the JSON body lists them."""
    return {
        "store": store,
        "external_id": external_id,
        "currency": currency,
        "placed_at": PLACED_AT,
        **fields,
    }
