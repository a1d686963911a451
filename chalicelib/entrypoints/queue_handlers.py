"""SQS-triggered handlers: each batch is handed record by record to queue_records, imported on the first
batch (this module is what Lambda imports: it loads only Chalice, the record work loads with its batch)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import SQSEvent

from chalicelib import resources

bp = Blueprint(__name__)

INGEST_BATCH_SIZE = 10
# Each notification costs two SP-API calls paced at 0.5/s: small batches keep within the timeout.
AMAZON_BATCH_SIZE = 5


@bp.on_sqs_message(queue=resources.INGEST_QUEUE.name, batch_size=INGEST_BATCH_SIZE)
def ingest_deliveries(event: SQSEvent) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response

    from chalicelib.entrypoints.queue_records import ingest_record, parking

    # FIFO: once a record fails, the rest of its message group is failed too, keeping order. A parked
    # record has not failed: the group goes on without it.
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    response = process_partial_response(
        event=event.to_dict(),
        record_handler=parking(resources.INGEST_QUEUE, ingest_record),
        processor=processor,
    )
    return dict(response)


@bp.on_sqs_message(queue=resources.AMAZON_NOTIFICATIONS_QUEUE.name, batch_size=AMAZON_BATCH_SIZE)
def amazon_notifications(event: SQSEvent) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    from chalicelib.entrypoints.queue_records import amazon_notification_record, parking

    # A standard queue: records are independent, each fails alone.
    response = process_partial_response(
        event=event.to_dict(),
        record_handler=parking(resources.AMAZON_NOTIFICATIONS_QUEUE, amazon_notification_record),
        processor=BatchProcessor(event_type=EventType.SQS),
    )
    return dict(response)
