"""SQS-triggered handlers: each record is one unit of work; a failing record fails alone."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from chalice import Blueprint
from chalice.app import SQSEvent

from chalicelib import resources
from chalicelib.composition import services
from chalicelib.domain import ingest as ingest_use_case
from chalicelib.domain.delivery import Delivery
from chalicelib.observability import logger

bp = Blueprint(__name__)

INGEST_BATCH_SIZE = 10


def ingest_record(record: SQSRecord) -> None:
    delivery = Delivery.from_message(record.body)
    svc = services()
    result = ingest_use_case.ingest(delivery, orders=svc.orders, workflow=svc.workflow, now=svc.now)
    logger.info(
        "delivery applied",
        extra={
            "delivery_id": delivery.delivery_id,
            "channel": delivery.channel,
            "outcome": result.outcome.value,
            "order_id": result.order_id,
        },
    )


@bp.on_sqs_message(queue=resources.INGEST_QUEUE.name, batch_size=INGEST_BATCH_SIZE)
def ingest_deliveries(event: SQSEvent) -> dict[str, Any]:
    # FIFO: once a record fails, the rest of its message group is failed too, keeping order.
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    response = process_partial_response(
        event=event.to_dict(), record_handler=ingest_record, processor=processor
    )
    return dict(response)
