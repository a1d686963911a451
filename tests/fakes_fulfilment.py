"""In-memory fulfilment ports: a 3PL with stock, a tracker registry and the stage's store."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from chalicelib.domain.fulfilment import AlreadyShippedError, OpenShipment, RecallRefused


class FakeThreePL:
    def __init__(self, stock: dict[tuple[str, str], int] | None = None) -> None:
        self.stock = stock or {}
        self.expected: dict[tuple[str, str], str] = {}
        self.orders: dict[str, dict[str, Any]] = {}  # idempotency key → fulfilment order
        self.cancelled: list[str] = []
        self.recalled: list[str] = []
        self.shipped: set[str] = set()
        self.handed_over: set[str] = set()

    def create_fulfillment_order(self, request: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        if idempotency_key not in self.orders:
            self.orders[idempotency_key] = {
                "id": f"fo_{len(self.orders) + 1}",
                **request,
                "status": "accepted",
            }
        return self.orders[idempotency_key]

    def cancel(self, fulfillment_order_id: str) -> dict[str, Any]:
        if fulfillment_order_id in self.shipped:
            raise AlreadyShippedError(fulfillment_order_id)
        self.cancelled.append(fulfillment_order_id)
        return {"id": fulfillment_order_id, "status": "cancelled"}

    def recall(self, fulfillment_order_id: str) -> list[str]:
        if fulfillment_order_id in self.handed_over:
            raise RecallRefused(fulfillment_order_id)
        self.recalled.append(fulfillment_order_id)
        return ["EZ1"]

    def inventory(self, skus: Sequence[str], warehouse: str | None = None) -> list[dict[str, Any]]:
        return [
            {
                "sku": sku,
                "warehouse": warehouse,
                "available": self.stock.get((warehouse or "", sku), 0),
                "expected_at": self.expected.get((warehouse or "", sku)),
            }
            for sku in skus
        ]


class FakeTrackers:
    def __init__(self) -> None:
        self.registered: list[tuple[str, str]] = []

    def register(self, tracking_number: str, carrier: str) -> None:
        self.registered.append((tracking_number, carrier))


class InMemoryFulfilmentStore:
    def __init__(self) -> None:
        self.tokens: dict[tuple[str, str, str], str] = {}
        self.links: dict[str, tuple[str, str]] = {}
        self.open: dict[tuple[str, str], datetime] = {}
        self.stats: dict[tuple[str, str], list[int]] = {}
        self.flagged: dict[tuple[str, str], tuple[list[str], datetime]] = {}
        self._lock = threading.Lock()

    def set_token(self, order_id: str, shipment_id: str, kind: str, token: str | None) -> None:
        with self._lock:
            if token is None:
                self.tokens.pop((order_id, shipment_id, kind), None)
            else:
                self.tokens[(order_id, shipment_id, kind)] = token

    def get_token(self, order_id: str, shipment_id: str, kind: str) -> str | None:
        return self.tokens.get((order_id, shipment_id, kind))

    def link_tracking(self, tracking_number: str, order_id: str, shipment_id: str) -> None:
        self.links[tracking_number] = (order_id, shipment_id)

    def shipment_for_tracking(self, tracking_number: str) -> tuple[str, str] | None:
        return self.links.get(tracking_number)

    def open_shipment(self, order_id: str, shipment_id: str, promised_at: datetime) -> None:
        self.open[(order_id, shipment_id)] = promised_at

    def close_shipment(self, order_id: str, shipment_id: str, promised_at: datetime) -> None:
        self.open.pop((order_id, shipment_id), None)
        self.flagged.pop((order_id, shipment_id), None)

    def flag_shipment(self, order_id: str, shipment_id: str, flags: list[str], at: datetime) -> None:
        self.flagged[(order_id, shipment_id)] = (list(flags), at)

    def flagged_shipments(self, limit: int = 50) -> list[dict[str, Any]]:
        return [
            {"order_id": o, "shipment_id": s, "flags": f, "flagged_at": at}
            for (o, s), (f, at) in sorted(self.flagged.items())
        ][:limit]

    def open_shipments(self, limit: int = 500) -> list[OpenShipment]:
        items = sorted(self.open.items(), key=lambda kv: kv[1])
        return [OpenShipment(o, s, at) for (o, s), at in items][:limit]

    def record_delivery(self, carrier: str, country: str, on_time: bool) -> None:
        counts = self.stats.setdefault((carrier, country), [0, 0])
        counts[0] += 1
        counts[1] += 1 if on_time else 0

    def carrier_stats(self) -> list[dict[str, Any]]:
        return [
            {"carrier": c, "country": k, "delivered": d, "on_time": o, "on_time_share": round(o / d, 4)}
            for (c, k), (d, o) in sorted(self.stats.items())
        ]
