"""Moves messages from a dead-letter queue back to its source queue (SQS redrive, done by hand).

SQS's own StartMessageMoveTask is not available on every target (the local emulator lacks it), and
moving by hand keeps FIFO message groups intact: each message goes back with its own group id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.parking import PARKING_ATTRIBUTES


@dataclass(frozen=True)
class RedriveResult:
    moved: int
    remaining: int


def redrive(sqs: Any, *, dlq_url: str, source_url: str, fifo: bool, limit: int = 500) -> RedriveResult:
    moved = 0
    while moved < limit:
        batch = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, limit - moved),
            WaitTimeSeconds=0,
            VisibilityTimeout=60,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            break
        entries = []
        for i, message in enumerate(batch):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": message["Body"]}
            # Back without why it was parked: a message that fails again is parked again, with the new reason.
            kept = {
                name: value
                for name, value in (message.get("MessageAttributes") or {}).items()
                if name not in PARKING_ATTRIBUTES
            }
            if kept:
                entry["MessageAttributes"] = kept
            if fifo:
                entry["MessageGroupId"] = message["Attributes"].get("MessageGroupId", "redrive")
                # A fresh id: the original may still sit in SQS's 5-minute deduplication window.
                entry["MessageDeduplicationId"] = uuid.uuid4().hex
            entries.append(entry)
        sent = sqs.send_message_batch(QueueUrl=source_url, Entries=entries)
        ok = {item["Id"] for item in sent.get("Successful", [])}
        done = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch) if str(i) in ok
        ]
        if done:
            sqs.delete_message_batch(QueueUrl=dlq_url, Entries=done)
        moved += len(done)
        if len(done) < len(batch):
            break  # the rest reappear in the DLQ after the visibility timeout; nothing is lost
    attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
    return RedriveResult(moved=moved, remaining=int(attributes["Attributes"]["ApproximateNumberOfMessages"]))
