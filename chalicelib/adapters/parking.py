"""ParkingLot on SQS: a message that can never be processed goes to its queue's dead-letter queue at once,
with its reason as message attributes, where the status page shows it and redrive moves it back."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from chalicelib import resources
from chalicelib.domain.parking import ParkedMessage

# The attributes a parked message carries (redrive takes them off again: a redriven message starts afresh).
PARKING_ATTRIBUTES = ("reason", "error", "parked_at", "receive_count", "source_message_id")
# SQS allows ten message attributes: the original's own keep what parking leaves.
_MAX_ATTRIBUTES = 10


class SqsParkingLot:
    def __init__(self, sqs: Any, dlq_urls: Mapping[str, str]) -> None:
        self._sqs = sqs
        self._dlq_urls = dict(dlq_urls)

    def park(self, queue: str, message: ParkedMessage) -> None:
        spec = resources.queue(queue)
        url = self._dlq_urls.get(queue)
        if url is None:
            raise LookupError(f"{spec.dlq_env_var} is not set: nowhere to park")
        attributes = {
            "reason": message.reason,
            "error": message.error,
            "parked_at": message.parked_at.isoformat(),
            "receive_count": str(message.receive_count),
            "source_message_id": message.message_id,
        }
        for name, value in message.attributes.items():
            if len(attributes) >= _MAX_ATTRIBUTES:
                break
            attributes.setdefault(name, value)
        request: dict[str, Any] = {
            "QueueUrl": url,
            "MessageBody": message.body,
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": value}
                for name, value in attributes.items()
                if value
            },
        }
        if spec.fifo:
            request["MessageGroupId"] = message.group_id or "parked"
            # Parking again after a crash within SQS's 5-minute window adds no second copy.
            request["MessageDeduplicationId"] = hashlib.sha256(message.message_id.encode()).hexdigest()
        self._sqs.send_message(**request)
