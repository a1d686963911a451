"""EasyPost Trackers API client: create (deduplicated by EasyPost) and retrieve, with bounded retries."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests
from aws_lambda_powertools import Logger

from chalicelib.domain.errors import HubError, InvalidInput, NotFound

logger = Logger(service="order-hub", child=True)

DEFAULT_API_BASE = "https://api.easypost.com"
_TRANSIENT = frozenset({500, 502, 503, 504})


class CarrierError(HubError):
    """The carrier API answered something the hub cannot use (or refused the request)."""

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
        self.code = code  # EasyPost's machine-readable error.code, e.g. "TRACKER.CREATE.ERROR"


class CarrierRejected(CarrierError):
    """A 4xx: the request (or the API key, for 401/403) is wrong; sending it again will not help."""

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        status: int | None = None,
        code: str | None = None,
        field_errors: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, operation=operation, status=status, code=code)
        self.field_errors = field_errors  # "field: message" (or EasyPost's bare strings)


class CarrierNotFound(CarrierRejected, NotFound):
    """404: no such tracker for this API key (test and production keys see different objects)."""


class CarrierUnavailable(CarrierError):
    """5xx, 429 or a transport failure after the bounded retries: transient, try again later."""

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, operation=operation, status=status, code=code)
        self.retry_after = retry_after  # seconds the carrier asked for, or our next backoff


@dataclass(frozen=True)
class _Failure:
    why: str
    status: int | None
    delay: float | None  # what the server asked us to wait; None: back off
    code: str | None = None


class EasyPostClient:
    """One EasyPost account's Trackers API (HTTP Basic auth, the API key as user, no password).

    Transient failures (5xx, 429, connection errors and timeouts) are retried: at most `max_attempts`
    tries, a 429's Retry-After honoured, otherwise jittered exponential backoff; no single wait longer
    than `max_wait` seconds; then CarrierUnavailable. Retrying a create is safe even when the first
    attempt may have run: EasyPost answers a repeated (tracking_code, carrier) with the original Tracker.
    """

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        max_attempts: int = 3,
        max_wait: float = 10.0,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not api_key:
            raise InvalidInput("an EasyPost client needs its API key")
        self._auth = (api_key, "")
        self._base = (api_base or DEFAULT_API_BASE).rstrip("/")
        self._session = session or requests.Session()
        self._timeout = timeout
        self._max_attempts = max(1, max_attempts)
        self._max_wait = max_wait
        self._backoff = backoff
        self._sleep = sleep
        self._jitter = jitter

    def __repr__(self) -> str:
        # Never let the API key reach a log line through an accidental %r.
        return f"EasyPostClient(api_base={self._base!r})"

    def create_tracker(self, tracking_code: str, carrier: str | None = None) -> dict[str, Any]:
        """POST /v2/trackers: the Tracker for this code, the existing one when it was created before.

        Without `carrier` EasyPost guesses it from the code (slower, and ambiguous for some codes).
        """
        code = (tracking_code or "").strip()
        if not code:
            raise InvalidInput("a tracker needs a tracking code")
        fields = {"tracking_code": code}
        if carrier:
            fields["carrier"] = carrier
        return self._request("createTracker", "POST", "/v2/trackers", {"tracker": fields})

    def retrieve_tracker(self, tracker_id: str) -> dict[str, Any]:
        """GET /v2/trackers/{id}; CarrierNotFound when this account has no such tracker."""
        if not tracker_id or not tracker_id.strip():
            raise InvalidInput("a tracker id is needed")
        path = f"/v2/trackers/{quote(tracker_id.strip(), safe='')}"
        return self._request("retrieveTracker", "GET", path, None)

    # --- transport ----------------------------------------------------------------------------

    def _request(
        self, operation: str, method: str, path: str, body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        attempt = 1
        while True:
            try:
                response = self._session.request(
                    method,
                    f"{self._base}{path}",
                    json=body,
                    auth=self._auth,
                    headers={"Accept": "application/json"},
                    timeout=self._timeout,
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                failure = _Failure(f"unreachable: {type(exc).__name__}", None, None)
            except requests.RequestException as exc:
                raise CarrierError(f"{operation}: {type(exc).__name__}", operation=operation) from exc
            else:
                outcome = self._read(operation, response)
                if not isinstance(outcome, _Failure):
                    return outcome
                failure = outcome
            delay = failure.delay if failure.delay is not None else self._backoff_delay(attempt)
            if attempt >= self._max_attempts or delay > self._max_wait:
                raise CarrierUnavailable(
                    f"{operation} gave up after {attempt} attempt(s): {failure.why}",
                    operation=operation,
                    status=failure.status,
                    code=failure.code,
                    retry_after=delay,
                )
            logger.info(
                "easypost retry",
                extra={
                    "operation": operation,
                    "status": failure.status,
                    "attempt": attempt,
                    "delay_seconds": round(delay, 3),
                },
            )
            self._sleep(delay)
            attempt += 1

    def _read(self, operation: str, response: requests.Response) -> _Failure | dict[str, Any]:
        status = response.status_code
        body = _json_or_empty(response)
        code, message, field_errors = _error_of(body)
        if status == 429:
            return _Failure("HTTP 429", 429, _retry_after(response), code)
        if status in _TRANSIENT:
            return _Failure(f"HTTP {status}", status, _retry_after(response), code)
        if 400 <= status < 500:
            kind = CarrierNotFound if status == 404 else CarrierRejected
            text = f"{operation} refused (HTTP {status}, {code or 'no code'}): {message or 'no message'}"
            raise kind(text[:500], operation=operation, status=status, code=code, field_errors=field_errors)
        if not 200 <= status < 300:
            raise CarrierError(f"{operation} answered HTTP {status}", operation=operation, status=status)
        if not body:
            raise CarrierError(f"{operation} answered without a JSON object", operation=operation)
        return body

    def _backoff_delay(self, attempt: int) -> float:
        # Equal jitter: at least half the backoff, so a crowd of clients spreads out but still waits.
        return self._backoff * 2.0 ** (attempt - 1) * (0.5 + 0.5 * self._jitter())


def _error_of(body: Mapping[str, Any]) -> tuple[str | None, str | None, tuple[str, ...]]:
    """EasyPost's {"error": {"code", "message", "errors": [FieldError | str]}}, whatever is present."""
    error = body.get("error")
    if not isinstance(error, Mapping):
        return None, None, ()
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    fields: list[str] = []
    for item in error.get("errors") or ():
        if isinstance(item, Mapping):
            fields.append(f"{item.get('field')}: {item.get('message')}")
        elif isinstance(item, str):
            fields.append(item)
    return code, message, tuple(fields)


def _json_or_empty(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None
