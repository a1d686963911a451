"""The small tree of domain errors that adapters translate vendor errors into and views map to HTTP."""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


class InvalidInput(HubError):
    """The caller sent something the hub cannot accept (answered 400, never retried)."""


class NotFound(HubError):
    """The thing asked for does not exist."""


class ConcurrentUpdate(HubError):
    """Another writer changed the aggregate first; reload and retry."""


class DuplicateDelivery(HubError):
    """This delivery was already applied: an at-least-once duplicate, safe to drop."""


class MalformedDelivery(HubError):
    """A queued delivery that can never be processed: it belongs in the DLQ for an operator."""


class OrderNotYetKnown(HubError):
    """An event about an order the hub has not stored yet (it overtook the order): retry later."""


class InvalidOrder(InvalidInput, MalformedDelivery):
    """An order that breaks the canonical order's rules (`domain/validation.py`): at the edge a 4xx, on the
    queue a delivery that can never be processed. Either way it is never stored."""


class TooLarge(InvalidInput):
    """More than the hub can store or queue in one piece (answered 413)."""


class IdempotencyKeyReused(HubError):
    """An Idempotency-Key sent again with another body (answered 409): the first body is the one kept."""
