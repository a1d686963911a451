"""Plays Lambda's SQS event-source mapping: long-poll, invoke with a batch, delete what succeeded."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from local.lambda_runtime import LambdaRuntime

log = logging.getLogger("local.sqs")

# Lambda long-polls for up to 20 s; a shorter wait only makes stopping quicker, not the semantics.
POLL_WAIT_SECONDS = 2
# Lambda backs off a failing mapping too; a pause keeps a broken handler from spinning.
ERROR_PAUSE_SECONDS = 1.0


@dataclass
class MappingStats:
    batches: int = 0
    records: int = 0
    succeeded: int = 0
    failed: int = 0
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "batches": self.batches,
                "records": self.records,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "last_error": self.last_error,
            }


def to_lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message as Lambda hands it to a function (camelCase keys, attribute values flattened)."""
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value.get("DataType"),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody")
        or hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_ids(response: Any, message_ids: set[str]) -> set[str] | None:
    """The records to retry per `batchItemFailures`; None means the whole batch failed.

    As in Lambda: no response or no failures → all succeeded; an identifier that is empty or not
    in the batch fails the whole batch.
    """
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return set()
    ids: set[str] = set()
    for item in response["batchItemFailures"]:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in message_ids:
            return None
        ids.add(identifier)
    return ids


@dataclass(kw_only=True, eq=False)
class SqsPoller:
    """One event-source mapping: `queue_url`'s messages to `function` on `runtime`, `batch_size` at a time,
    until `stop` is set. `concurrency` pollers at once, as Lambda scales a mapping out (a FIFO queue keeps
    each message group to one batch in flight, so a group's order holds)."""

    sqs: Any
    runtime: LambdaRuntime
    function: str
    queue_url: str
    batch_size: int
    region: str
    stop: threading.Event
    concurrency: int = 1
    stats: MappingStats = field(default_factory=MappingStats, init=False)
    # Like disabling an event-source mapping: messages wait in the queue (tests, benchmarks).
    paused: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        self._busy = 0  # pollers with a receive or a batch in progress
        self._busy_changed = threading.Condition()
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self._queue_arn = attributes["Attributes"]["QueueArn"]
        self._threads = [
            threading.Thread(target=self._run, name=f"sqs:{self.function}:{n}", daemon=True)
            for n in range(max(1, self.concurrency))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _set_busy(self, delta: int) -> None:
        with self._busy_changed:
            self._busy += delta
            self._busy_changed.notify_all()

    def _run(self) -> None:
        while not self.stop.is_set():
            if self.paused.is_set():
                self.stop.wait(0.1)
                continue
            self._set_busy(1)
            try:
                if not self.paused.is_set():
                    self.poll_once()
            except Exception as exc:  # the mapping keeps running, as Lambda's does
                with self.stats.lock:
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if not self.stop.is_set():
                    log.warning("poller %s: %s", self.function, exc)
                    time.sleep(ERROR_PAUSE_SECONDS)
            finally:
                self._set_busy(-1)

    def pause(self, timeout: float = 30.0) -> bool:
        """Stop polling; returns once the receive or batch in progress (if any) has finished."""
        self.paused.set()
        with self._busy_changed:
            return self._busy_changed.wait_for(lambda: self._busy == 0, timeout)

    def resume(self) -> None:
        self.paused.clear()

    def poll_once(self) -> int:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=POLL_WAIT_SECONDS,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        records = [to_lambda_record(m, self._queue_arn, self.region) for m in messages]
        result = self.runtime.invoke(self.function, {"Records": records})
        ids = {m["MessageId"] for m in messages}
        failed = None if result.function_error else failed_ids(result.payload, ids)
        if failed is None:
            failed = ids
            error = result.payload if result.function_error else "invalid batchItemFailures"
            with self.stats.lock:
                self.stats.last_error = str(error)[:500]
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        if succeeded:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(succeeded)
                ],
            )
        # Failed records are left alone: they reappear after the visibility timeout, and the
        # queue's redrive policy moves them to the DLQ after maxReceiveCount receives.
        with self.stats.lock:
            self.stats.batches += 1
            self.stats.records += len(messages)
            self.stats.succeeded += len(succeeded)
            self.stats.failed += len(failed)
        return len(messages)
