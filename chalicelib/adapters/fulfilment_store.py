"""FulfilmentStore on the single table: task tokens, tracking links, open shipments, carrier stats."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.adapters.models import FulfilmentModel
from chalicelib.domain.fulfilment import OpenShipment

# Shipments in flight, ordered by promise: the watchdog reads this partition, never the order table.
# One partition is fine for thousands of open shipments; shard by promise day beyond that.
_OPEN = "OPENSHIP"
_STATS = "STATS#CARRIER"
# Open shipments with flags (late, silent, exception, failed attempt, returned): the operators' list.
_FLAGGED = "FLAGGEDSHIP"


def _open_key(order_id: str, shipment_id: str, promised_at: datetime) -> str:
    return f"{promised_at.isoformat()}#{order_id}#{shipment_id}"


class DynamoFulfilmentStore:
    def set_token(self, order_id: str, shipment_id: str, kind: str, token: str | None) -> None:
        item = FulfilmentModel(f"ORDER#{order_id}", f"TOKEN#{kind}#{shipment_id}")
        if token is None:
            item.delete()
            return
        item.order_id, item.shipment_id, item.token = order_id, shipment_id, token
        item.save()

    def get_token(self, order_id: str, shipment_id: str, kind: str) -> str | None:
        try:
            item = FulfilmentModel.get(
                f"ORDER#{order_id}", f"TOKEN#{kind}#{shipment_id}", consistent_read=True
            )
        except FulfilmentModel.DoesNotExist:
            return None
        return item.token

    def link_tracking(self, tracking_number: str, order_id: str, shipment_id: str) -> None:
        FulfilmentModel(
            f"TRACK#{tracking_number}", "TRACK", order_id=order_id, shipment_id=shipment_id
        ).save()

    def shipment_for_tracking(self, tracking_number: str) -> tuple[str, str] | None:
        try:
            item = FulfilmentModel.get(f"TRACK#{tracking_number}", "TRACK", consistent_read=True)
        except FulfilmentModel.DoesNotExist:
            return None
        if item.order_id is None or item.shipment_id is None:
            return None
        return item.order_id, item.shipment_id

    def open_shipment(self, order_id: str, shipment_id: str, promised_at: datetime) -> None:
        FulfilmentModel(
            _OPEN,
            _open_key(order_id, shipment_id, promised_at),
            order_id=order_id,
            shipment_id=shipment_id,
            promised_at=promised_at,
        ).save()

    def close_shipment(self, order_id: str, shipment_id: str, promised_at: datetime) -> None:
        FulfilmentModel(_OPEN, _open_key(order_id, shipment_id, promised_at)).delete()
        FulfilmentModel(_FLAGGED, f"{order_id}#{shipment_id}").delete()

    def flag_shipment(self, order_id: str, shipment_id: str, flags: list[str], at: datetime) -> None:
        FulfilmentModel(
            _FLAGGED,
            f"{order_id}#{shipment_id}",
            order_id=order_id,
            shipment_id=shipment_id,
            flags=flags,
            promised_at=at,  # here: when it was (last) flagged
        ).save()

    def flagged_shipments(self, limit: int = 50) -> list[dict[str, Any]]:
        return [
            {
                "order_id": i.order_id,
                "shipment_id": i.shipment_id,
                "flags": list(i.flags or []),
                "flagged_at": i.promised_at,
            }
            for i in FulfilmentModel.query(_FLAGGED, limit=limit)
        ]

    def open_shipments(self, limit: int = 500) -> list[OpenShipment]:
        return [
            OpenShipment(str(i.order_id), str(i.shipment_id), i.promised_at)
            for i in FulfilmentModel.query(_OPEN, limit=limit)
            if i.order_id and i.shipment_id and i.promised_at
        ]

    def record_delivery(self, carrier: str, country: str, on_time: bool) -> None:
        FulfilmentModel(_STATS, f"{carrier}#{country}").update(
            actions=[FulfilmentModel.delivered.add(1), FulfilmentModel.on_time.add(1 if on_time else 0)]
        )

    def carrier_stats(self) -> list[dict[str, Any]]:
        stats = []
        for item in FulfilmentModel.query(_STATS):
            carrier, _, country = item.sk.partition("#")
            delivered, on_time = int(item.delivered or 0), int(item.on_time or 0)
            stats.append(
                {
                    "carrier": carrier,
                    "country": country,
                    "delivered": delivered,
                    "on_time": on_time,
                    "on_time_share": round(on_time / delivered, 4) if delivered else None,
                }
            )
        return stats
