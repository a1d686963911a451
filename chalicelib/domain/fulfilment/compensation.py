"""Undoing fulfilment for a cancelled order: cancel at the 3PL, recall, or expect a return."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.domain.fulfilment.ports import AlreadyShippedError, RecallRefused, ThreePL
from chalicelib.domain.fulfilment.shipments import (
    SHIPMENT_DONE,
    find_shipment,
    fully_shipped,
    replace_shipment,
)
from chalicelib.domain.mutation import mutate
from chalicelib.domain.order import Order
from chalicelib.domain.ports import OrderRepository


class FulfilmentCompensator:
    """Undoes fulfilment for a cancelled order: cancel at the 3PL what has not shipped, recall what the 3PL
    still holds, and expect a return for what the carrier has. Idempotent (it acts on current statuses)."""

    name = "fulfilment"

    def __init__(
        self,
        orders: OrderRepository,
        threepl: Callable[[str], ThreePL],
        now: Callable[[], datetime],
        *,
        already_shipped: tuple[type[Exception], ...] = (AlreadyShippedError,),
        recall_refused: tuple[type[Exception], ...] = (RecallRefused,),
    ) -> None:
        self._orders = orders
        self._threepl = threepl
        self._now = now
        self._already_shipped = already_shipped
        self._recall_refused = recall_refused

    def compensate(self, order: Order, reason: str) -> dict[str, Any] | None:
        actions: list[dict[str, Any]] = []
        updates: dict[str, dict[str, Any]] = {}
        returns: list[dict[str, Any]] = []
        for shipment in order.shipments:
            if shipment.status in SHIPMENT_DONE or shipment.fulfilment_order_id is None:
                if shipment.status in ("allocated", "backordered"):
                    updates[shipment.shipment_id] = {"status": "cancelled"}
                continue
            client = self._threepl(shipment.provider or "default")
            if not fully_shipped(shipment):
                try:
                    client.cancel(shipment.fulfilment_order_id)
                    actions.append({"shipment_id": shipment.shipment_id, "action": "cancelled_at_3pl"})
                    if not shipment.shipped_lines:
                        updates[shipment.shipment_id] = {"status": "cancelled"}
                        continue
                except self._already_shipped:
                    pass
            if shipment.parcels and not any("return" in r.get("status", "") for r in order.returns
                                            if r.get("shipment_id") == shipment.shipment_id):  # fmt: skip
                try:
                    recalled = client.recall(shipment.fulfilment_order_id)
                    actions.append(
                        {"shipment_id": shipment.shipment_id, "action": "recalled", "parcels": recalled}
                    )
                    updates[shipment.shipment_id] = {"status": "cancelled"}
                except self._recall_refused:
                    actions.append({"shipment_id": shipment.shipment_id, "action": "return_expected"})
                    returns.append(
                        {
                            "shipment_id": shipment.shipment_id,
                            "status": "return_expected",
                            "reason": reason[:200],
                            "parcels": [p.tracking_number for p in shipment.parcels],
                        }
                    )
        if not actions and not updates:
            return None
        if updates or returns:

            def change(current: Order) -> None:
                for sid, update in updates.items():
                    replace_shipment(current, find_shipment(current, sid).model_copy(update=update))
                known = {r.get("shipment_id") for r in current.returns}
                current.returns = [*current.returns, *(r for r in returns if r["shipment_id"] not in known)]

            mutate(self._orders, order.order_id, change)
        return {"action": "fulfilment_undone", "shipments": actions} if actions else None
