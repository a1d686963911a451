"""What the status page reads, each part one indexed query or a few small items: never a scan.

- orders per status: the sharded counters (stats.py), kept in each order's own write;
- stuck orders: per status, the index by status sorted by last update, read below a cut-off (oldest first);
- review queue, failed orders: the same index, newest first, a page at most;
- open returns: the same index (RETURN_REQUESTED), newest and oldest pages;
- per store traffic: ten-minute buckets of the last day (stats.py);
- queues: SQS attributes of each queue and its DLQ;
- reconciliation: the newest run reports;
- carriers: the delivery counters and the flagged open shipments.
Everything read here is bounded by a limit or by the number of stores, queues and statuses, so the page
costs the same with a thousand orders stored as with millions.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from chalicelib import resources
from chalicelib.adapters.models import OrderModel
from chalicelib.adapters.stats import DynamoTrafficStats, status_counts
from chalicelib.domain.order import Order, OrderStatus
from chalicelib.domain.status_views import OrderRow, Traffic


def _row(model: OrderModel, with_document: bool) -> OrderRow:
    return OrderRow(
        order_id=model.pk.removeprefix("ORDER#"),
        channel=model.channel,
        store=model.store,
        external_id=model.external_id,
        status=model.status,
        updated_at=model.gsi2sk.rpartition("#")[0],
        order=Order.model_validate(model.document) if with_document else None,
    )


_ROW_ATTRIBUTES = ["pk", "status", "channel", "store", "external_id", "gsi2sk"]


class DynamoStatusBoard:
    def __init__(self, traffic: DynamoTrafficStats | None = None) -> None:
        self._traffic = traffic or DynamoTrafficStats()

    def status_counts(self) -> dict[str, int]:
        return status_counts()

    def in_status(self, status: OrderStatus, limit: int, *, oldest_first: bool = False) -> list[OrderRow]:
        """Orders in one status with their documents (the review queue, the failed list)."""
        return [
            _row(m, with_document=True)
            for m in OrderModel.by_status.query(
                f"STATUS#{status.value}", scan_index_forward=oldest_first, limit=limit
            )
        ]

    def with_open_returns(self, limit: int) -> list[Order]:
        """Orders with an open return (an order stays RETURN_REQUESTED while one is): the newest `limit`
        and, when there are more, the oldest `limit` too (where the overdue ones are). At most two
        queries of `limit` items each, documents included."""
        status = OrderStatus.RETURN_REQUESTED
        rows = self.in_status(status, limit)
        if len(rows) == limit:
            known = {r.order_id for r in rows}
            rows += [r for r in self.in_status(status, limit, oldest_first=True) if r.order_id not in known]
        return [r.order for r in rows if r.order is not None]

    def stuck(
        self, now: datetime, thresholds: dict[OrderStatus, timedelta], per_status: int = 10
    ) -> list[OrderRow]:
        rows: list[OrderRow] = []
        for status, after in thresholds.items():
            cutoff = (now - after).isoformat()
            rows += [
                _row(m, with_document=False)
                for m in OrderModel.by_status.query(
                    f"STATUS#{status.value}",
                    OrderModel.gsi2sk < cutoff,
                    scan_index_forward=True,
                    limit=per_status,
                    attributes_to_get=_ROW_ATTRIBUTES,
                )
            ]
        return sorted(rows, key=lambda r: r.updated_at)

    def traffic(self, stores: list[tuple[str, str]], now: datetime) -> list[Traffic]:
        return [self._traffic.traffic(channel, store, now) for channel, store in stores]

    def queues(self, sqs: Any, queue_urls: dict[str, str], dlq_urls: dict[str, str]) -> list[dict[str, Any]]:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        rows = []
        for spec in resources.QUEUES:
            # The name the queue has here (order-hub-<stage>-... when deployed): the last part of its URL.
            name = queue_urls[spec.key].rsplit("/", 1)[-1] if spec.key in queue_urls else spec.name
            row: dict[str, Any] = {"key": spec.key, "name": name, "depth": None, "in_flight": None}
            row["dlq_depth"] = None
            try:
                if spec.key in queue_urls:
                    a = sqs.get_queue_attributes(QueueUrl=queue_urls[spec.key], AttributeNames=names)
                    row["depth"] = int(a["Attributes"]["ApproximateNumberOfMessages"])
                    row["in_flight"] = int(a["Attributes"]["ApproximateNumberOfMessagesNotVisible"])
                if spec.key in dlq_urls:
                    a = sqs.get_queue_attributes(QueueUrl=dlq_urls[spec.key], AttributeNames=names[:1])
                    row["dlq_depth"] = int(a["Attributes"]["ApproximateNumberOfMessages"])
                    if row["dlq_depth"]:
                        row["parked"] = parked_reasons(sqs, dlq_urls[spec.key])
            except Exception as exc:  # the page shows an unreachable queue rather than failing
                row["error"] = type(exc).__name__
            rows.append(row)
        return rows


def parked_reasons(sqs: Any, dlq_url: str) -> dict[str, int]:
    """Why the first dead letters are there (their `reason` attribute; "retries exhausted" for a message
    the queue's redrive policy moved), read without taking them: visibility 0 leaves each one in place."""
    reasons: dict[str, int] = {}
    messages = sqs.receive_message(
        QueueUrl=dlq_url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=0,
        WaitTimeSeconds=0,
        MessageAttributeNames=["reason"],
    ).get("Messages", [])
    for message in messages:
        attribute = (message.get("MessageAttributes") or {}).get("reason") or {}
        reason = str(attribute.get("StringValue") or "retries exhausted")[:64]
        reasons[reason] = reasons.get(reason, 0) + 1
    return reasons
