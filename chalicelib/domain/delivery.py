"""An accepted channel delivery as it travels through the ingest queue."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import MalformedDelivery


@dataclass(frozen=True)
class Delivery:
    """One accepted delivery: what the sender said, who sent it, and the sender's own event id.

    `payload` is None when the body was too large for a queue message: the exact bytes are then in
    the raw archive under `delivery_id` (a claim check).
    """

    delivery_id: str
    channel: str
    store: str
    topic: str
    received_at: datetime
    payload: dict[str, Any] | None
    external_id: str = ""

    def to_message(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "channel": self.channel,
            "store": self.store,
            "topic": self.topic,
            "received_at": self.received_at.isoformat(),
            "external_id": self.external_id,
            "payload": self.payload,
        }

    @classmethod
    def from_message(cls, body: str) -> Delivery:
        try:
            raw = json.loads(body)
            payload = raw["payload"]
            return cls(
                delivery_id=str(raw["delivery_id"]),
                channel=str(raw["channel"]),
                store=str(raw["store"]),
                topic=str(raw["topic"]),
                received_at=datetime.fromisoformat(raw["received_at"]),
                payload=None if payload is None else dict(payload),
                external_id=str(raw.get("external_id", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedDelivery(f"not a delivery message: {exc}") from exc

    def with_payload(self, payload: dict[str, Any]) -> Delivery:
        return replace(self, payload=payload)

    def message_group(self, external_id: str | None = None) -> str:
        """FIFO message group: one per channel + store + order, so one order's events stay in order."""
        return f"{self.channel}:{self.store}:{external_id or self.external_id}"[:128]
