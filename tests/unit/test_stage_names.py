"""A deployed stage names its resources order-hub-<stage>-...: operators see and type those names."""

from __future__ import annotations

from typing import Any

import pytest
from chalice import NotFoundError

from chalicelib import resources
from chalicelib.adapters.status_board import DynamoStatusBoard
from chalicelib.entrypoints.operations_api import find_queue
from chalicelib.settings import from_environ

BASE = "https://sqs.eu-west-1.amazonaws.com/123456789012/"
INGEST = resources.INGEST_QUEUE


def prod_settings() -> Any:
    return from_environ(
        {
            "HUB_STAGE": "prod",
            INGEST.env_var: BASE + INGEST.physical_name("prod"),
            INGEST.dlq_env_var: BASE + INGEST.physical_dlq_name("prod"),
        }
    )


class DepthsOnly:
    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        return {"Attributes": dict.fromkeys(AttributeNames, "0")}


def test_status_board__names_each_queue_as_the_stage_named_it():
    settings = prod_settings()
    rows = DynamoStatusBoard().queues(DepthsOnly(), dict(settings.queue_urls), dict(settings.dlq_urls))
    ingest = next(row for row in rows if row["key"] == INGEST.key)
    assert ingest["name"] == "order-hub-prod-ingest.fifo"
    amazon = next(row for row in rows if row["key"] == resources.AMAZON_NOTIFICATIONS_QUEUE.key)
    assert amazon["name"] == resources.AMAZON_NOTIFICATIONS_QUEUE.name  # no URL: the spec's name


@pytest.mark.parametrize(
    "name",
    [
        "ingest",
        "order-hub-ingest.fifo",
        "order-hub-ingest",
        "order-hub-prod-ingest.fifo",
        "order-hub-prod-ingest-dlq.fifo",
    ],
)
def test_redrive__finds_the_queue_by_key_spec_name_or_the_stages_own_names(name):
    assert find_queue(name, prod_settings()) is INGEST


def test_redrive__another_stages_queue_is_not_found():
    with pytest.raises(NotFoundError):
        find_queue("order-hub-dev-ingest.fifo", prod_settings())
