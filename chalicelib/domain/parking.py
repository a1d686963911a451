"""Queued deliveries that can never be processed: told from transient failures, parked with their reason.

A failure is permanent when trying the same message again cannot help: it is malformed (MalformedDelivery),
invalid (InvalidInput), or an outside system refused it (UpstreamRejected, its credentials included: an
operator fixes them, then redrives). Such a message is parked at once, in its queue's dead-letter queue with
its reason, and its FIFO message group moves on. Everything else is transient and retried by the queue:
another writer won (ConcurrentUpdate), an upstream is unavailable or throttling, the order is not stored yet
(OrderNotYetKnown), an upstream does not show the thing yet (NotFound), AWS failed, or an unexpected error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from chalicelib.domain.errors import InvalidInput, MalformedDelivery, NotFound
from chalicelib.domain.upstream import UpstreamRejected

PERMANENT_FAILURES: tuple[type[Exception], ...] = (MalformedDelivery, InvalidInput, UpstreamRejected)
# What a parked message says about its failure, at most (SQS attributes count against the 256 KiB message).
ERROR_CHARS = 1000


def is_permanent(error: BaseException) -> bool:
    """True when retrying the same message cannot help (NotFound may be an upstream not caught up yet)."""
    return isinstance(error, PERMANENT_FAILURES) and not isinstance(error, NotFound)


@dataclass(frozen=True)
class ParkedMessage:
    """One queued message set aside for an operator, as received, with why it was parked.

    `reason`: the failure's kind (its class name); `error`: its message, bounded; `receive_count`: how many
    times the source queue had handed it out (1: parked at the first receive).
    """

    body: str
    message_id: str
    group_id: str | None
    reason: str
    error: str
    parked_at: datetime
    receive_count: int
    attributes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        error: BaseException,
        *,
        body: str,
        message_id: str,
        group_id: str | None,
        parked_at: datetime,
        receive_count: int,
        attributes: Mapping[str, str] | None = None,
    ) -> ParkedMessage:
        text = " ".join(str(error).split())[:ERROR_CHARS] or type(error).__name__
        return cls(
            body=body,
            message_id=message_id,
            group_id=group_id,
            reason=type(error).__name__,
            error=text,
            parked_at=parked_at,
            receive_count=receive_count,
            attributes=dict(attributes or {}),
        )


class ParkingLot(Protocol):
    def park(self, queue: str, message: ParkedMessage) -> None:
        """Set the message aside (the dead-letter queue of queue key `queue`); raises when it could not,
        and then the caller leaves the message to the queue's own retries."""
        ...
