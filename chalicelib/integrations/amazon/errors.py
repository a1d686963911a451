"""SP-API's and LWA's errors as the hub's upstream error tree, and the reading of an error answer."""

from __future__ import annotations

import requests

from chalicelib.domain import upstream
from chalicelib.integrations import http


class SpApiError(upstream.UpstreamError):
    """SP-API or LWA answered with an error the caller cannot fix by retrying right now."""


class SpApiRejected(SpApiError, upstream.UpstreamRejected):
    """SP-API refused the request (a 4xx): Amazon's code and message say why."""


class SpApiUnavailable(SpApiError, upstream.UpstreamUnavailable):
    """5xx or unreachable after the allowed retries: transient, try again later."""


class SpApiThrottled(SpApiUnavailable, upstream.UpstreamThrottled):
    """Still throttled (429) after the allowed retries, or the next slot is further away than we may wait.

    `retry_after`: seconds the caller should wait before trying again, when known.
    """


class SpApiAuthError(SpApiRejected, upstream.UpstreamAuthError):
    """LWA refused the credentials, or SP-API kept refusing a freshly exchanged access token."""


class SpApiNotFound(SpApiRejected, upstream.UpstreamNotFound):
    """The order (or other resource) does not exist for this selling partner."""


GIVE_UP = http.give_up_as(SpApiUnavailable, SpApiThrottled)


def first_error(response: requests.Response) -> tuple[str, str]:
    """(code, message) of the first entry of an SP-API `errors` list, else the HTTP status and reason."""
    errors = http.json_object(response).get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code") or response.status_code), str(errors[0].get("message") or "")
    return str(response.status_code), response.reason or ""


def raise_if_retryable(response: requests.Response, why: str) -> None:
    """Raise `http.Retryable` for a 429 (code QuotaExceeded) or a transient 5xx; do nothing otherwise."""
    retry = http.retryable_status(response, why)
    if retry is not None:
        if retry.throttled:
            retry.code = "QuotaExceeded"
        raise retry


def error_for(operation: str, status: int, code: str, message: str) -> SpApiError:
    """The error an SP-API operation's final (non-retryable) answer stands for."""
    text = f"{operation} answered {status} {code}: {message}"
    if status in (401, 403):
        return SpApiAuthError(text, operation=operation, status=status, code=code)
    if status == 404:
        return SpApiNotFound(text, operation=operation, status=status, code=code)
    if 400 <= status < 500:
        return SpApiRejected(text, operation=operation, status=status, code=code)
    return SpApiError(text, operation=operation, status=status, code=code)
