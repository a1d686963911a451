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

    On the queue a delivery carries the sender's body as received (`raw`, text), so that the
    consumer can archive it byte for byte and the webhook's answer waits on one call only. When the
    body is too large for a queue message, it travels by claim check: `raw` and `payload` are None
    and the exact bytes are in the raw archive under `delivery_id`.
    """

    delivery_id: str
    channel: str
    store: str
    topic: str
    received_at: datetime
    payload: dict[str, Any] | None
    external_id: str = ""
    raw: str | None = None

    def to_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "delivery_id": self.delivery_id,
            "channel": self.channel,
            "store": self.store,
            "topic": self.topic,
            "received_at": self.received_at.isoformat(),
            "external_id": self.external_id,
        }
        if self.raw is not None:
            message["raw"] = self.raw
        else:
            message["payload"] = self.payload
        return message

    @classmethod
    def from_message(cls, body: str) -> Delivery:
        try:
            message = json.loads(body)
            raw = message.get("raw")
            payload = json.loads(raw) if isinstance(raw, str) else message.get("payload")
            return cls(
                delivery_id=str(message["delivery_id"]),
                channel=str(message["channel"]),
                store=str(message["store"]),
                topic=str(message["topic"]),
                received_at=datetime.fromisoformat(message["received_at"]),
                payload=None if payload is None else dict(payload),
                external_id=str(message.get("external_id", "")),
                raw=raw if isinstance(raw, str) else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedDelivery(f"not a delivery message: {exc}") from exc

    def with_payload(self, payload: dict[str, Any]) -> Delivery:
        return replace(self, payload=payload)

    def message_group(self, external_id: str | None = None) -> str:
        """FIFO message group: one per channel + store + order, so one order's events stay in order."""
        return f"{self.channel}:{self.store}:{external_id or self.external_id}"[:128]
