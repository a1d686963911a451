"""The upstream error tree: how any outside system's failure reaches the domain, whichever vendor it was.

Each integration's own error classes (ShopifyUnavailable, ThreePLRejected, SpApiThrottled, ...) subclass
these, so the domain and the entrypoints decide on the kind of failure and never name a vendor.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

from chalicelib.domain.errors import HubError, NotFound


class Context(TypedDict, total=False):
    """What every upstream error may say about the call: subclasses pass it on as **context."""

    operation: str | None
    status: int | None
    code: str | None


class UpstreamError(HubError):
    """An outside system (channel, 3PL, carrier, payment provider) failed a call or answered something
    the hub cannot use. `operation` names the call, `status` the HTTP status, `code` the vendor's code."""

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.status = status
        self.code = code


class UpstreamRejected(UpstreamError):
    """It refused the request (a 4xx, userErrors): sending the same request again cannot help."""


class UpstreamAuthError(UpstreamRejected):
    """It refused the credentials (401/403): the connection needs new ones."""


class UpstreamNotFound(UpstreamRejected, NotFound):
    """It has no such thing (404), or does not show it to these credentials."""


class UpstreamUnavailable(UpstreamError):
    """5xx, unreachable or timed out, after the transport's bounded retries: transient, try again later.

    `retry_after`: seconds to wait before trying again (what the upstream asked for, else the next backoff).
    `maybe_executed`: the request may have run there (a timeout, a 5xx): read before writing again.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        maybe_executed: bool = False,
        **context: Unpack[Context],
    ) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after
        self.maybe_executed = maybe_executed


class UpstreamThrottled(UpstreamUnavailable):
    """It asked us to slow down (429, THROTTLED, quota) and did not run the request: wait `retry_after`."""
