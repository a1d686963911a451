"""DeliveryQueue on SQS FIFO: accepted deliveries wait here for the ingest handler."""

from __future__ import annotations

import json
from typing import Any


class SqsDeliveryQueue:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

    def send(self, body: dict[str, Any], *, group_id: str, deduplication_id: str) -> str:
        response = self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=json.dumps(body, separators=(",", ":")),
            MessageGroupId=group_id,
            # SQS drops a repeat of this id within 5 minutes: the sender's retry never queues twice.
            MessageDeduplicationId=deduplication_id[:128],
        )
        return str(response["MessageId"])
