"""Shopify's Admin API errors as the hub's upstream error tree."""

from __future__ import annotations

from chalicelib.domain import upstream
from chalicelib.integrations.http import give_up_as


class ShopifyError(upstream.UpstreamError):
    """Shopify answered with an error the caller cannot fix by retrying the same request now."""


class ShopifyRejected(ShopifyError, upstream.UpstreamRejected):
    """Shopify refused the mutation (its `userErrors`, or a failed capture): nothing was captured."""

    def __init__(
        self, message: str, *, operation: str | None = None, user_errors: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message, operation=operation, code="USER_ERROR")
        self.user_errors = user_errors  # (field path joined by ".", message)


class ShopifyUnavailable(ShopifyError, upstream.UpstreamUnavailable):
    """Unreachable, 5xx, 429 or THROTTLED after the bounded retries: transient, try again later.

    `maybe_executed` is True when the request may have reached Shopify (timeout, 5xx): a mutation may
    have happened.
    """


class ShopifyThrottled(ShopifyUnavailable, upstream.UpstreamThrottled):
    """429 or THROTTLED after the bounded retries, or a wait for the cost bucket longer than allowed."""


class ShopifyAuthError(ShopifyError, upstream.UpstreamAuthError):
    """The access token was refused (401/403, ACCESS_DENIED): the connection needs new credentials."""


class ShopifyNotFound(ShopifyError, upstream.UpstreamNotFound):
    """No such order in the shop (or not visible to this app)."""


GIVE_UP = give_up_as(ShopifyUnavailable, ShopifyThrottled)
