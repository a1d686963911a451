"""The hub's own AWS plumbing as operators and the health check see it: queues and state machines answer,
queue depths, and a dead-letter queue moved back to its source."""

from __future__ import annotations

from typing import Any

from chalicelib import resources
from chalicelib.adapters import aws
from chalicelib.adapters.redrive import RedriveResult, redrive
from chalicelib.settings import Settings


class AwsPlumbing:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def check_queues(self) -> None:
        """Raises unless every queue answers."""
        for q in resources.QUEUES:
            aws.client("sqs").get_queue_attributes(
                QueueUrl=self._settings.queue_url(q.key), AttributeNames=["QueueArn"]
            )

    def check_workflows(self) -> None:
        """Raises unless every state machine answers."""
        for m in resources.STATE_MACHINES:
            aws.client("stepfunctions").describe_state_machine(
                stateMachineArn=self._settings.state_machine_arn(m.key)
            )

    def queue_depths(self) -> list[dict[str, Any]]:
        from chalicelib.adapters.status_board import DynamoStatusBoard

        settings = self._settings
        return DynamoStatusBoard().queues(
            aws.client("sqs"), dict(settings.queue_urls), dict(settings.dlq_urls)
        )

    def redrive(self, spec: resources.QueueSpec, dlq_url: str) -> RedriveResult:
        """Move the queue's dead letters back to it."""
        return redrive(
            aws.client("sqs"), dlq_url=dlq_url, source_url=self._settings.queue_url(spec.key), fifo=spec.fifo
        )
