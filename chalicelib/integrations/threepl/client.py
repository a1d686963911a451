"""The 3PL's REST API (fulfilment orders, cancel, recall, inventory) over requests; errors translated."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests
from aws_lambda_powertools import Logger

from chalicelib.domain.errors import HubError, InvalidInput, NotFound

logger = Logger(service="order-hub", child=True)

_TRANSIENT = frozenset({429, 500, 502, 503, 504})


class ThreePLError(HubError):
    """The 3PL call failed in a way retrying the same request now cannot fix (or an unreadable answer)."""

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


class ThreePLRejected(ThreePLError):
    """The 3PL refused the request (4xx): `code` and `field` say why; nothing changed on its side."""

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, operation=operation, status=status, code=code)
        self.field = field
        # The 3PL's own words: may echo request values (addresses), so kept off str() and log lines.
        self.detail = detail


class ThreePLNotFound(ThreePLRejected, NotFound):
    """No such fulfilment order at the 3PL."""


class AlreadyShipped(ThreePLRejected):
    """Cancel came too late: every line has shipped (try `recall`)."""


class HandedToCarrier(ThreePLRejected):
    """Recall came too late: every shipped parcel is already with its carrier."""


class ThreePLUnavailable(ThreePLError):
    """5xx, 429 or unreachable after the bounded retries: transient, try again later."""

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
        self.retry_after = retry_after  # seconds the 3PL asked to wait, when it said


@dataclass(frozen=True)
class _Failure:
    why: str
    status: int | None
    code: str | None
    delay: float | None  # Retry-After, when sent


class ThreePLClient:
    """One 3PL account's API (`base_url`, e.g. HUB_3PL_API_BASE). Build once and reuse (pooled session).

    Every call is safe to repeat (creates carry their Idempotency-Key; cancel and recall are
    idempotent), so 429, 5xx and transport errors are retried: the 429/503 Retry-After when sent,
    else jittered exponential backoff; at most `max_attempts` tries and no single wait over
    `max_wait` seconds, then ThreePLUnavailable.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not base_url or not api_key:
            raise InvalidInput("a 3PL connection needs its API base URL and API key")
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._session = session or requests.Session()
        self._timeout = timeout
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff
        self._max_wait = max_wait
        self._sleep = sleep
        self._jitter = jitter

    def __repr__(self) -> str:
        # Never let the API key reach a log line through an accidental %r.
        return f"ThreePLClient(max_attempts={self._max_attempts})"

    def create_fulfillment_order(self, request: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """Send one shipment to the warehouse; the same key (or reference) answers the existing order."""
        if not idempotency_key:
            raise InvalidInput("creating a 3PL fulfilment order needs an idempotency key")
        return self._call(
            "create_fulfillment_order",
            "POST",
            "/v1/fulfillment_orders",
            json=dict(request),
            headers={"Idempotency-Key": idempotency_key},
        )

    def get(self, fulfillment_order_id: str) -> dict[str, Any]:
        return self._call("get", "GET", f"/v1/fulfillment_orders/{_segment(fulfillment_order_id)}")

    def cancel(self, fulfillment_order_id: str) -> dict[str, Any]:
        """Cancel what has not shipped (status `cancelled` or `partially_cancelled`); AlreadyShipped if
        everything has."""
        return self._call("cancel", "POST", f"/v1/fulfillment_orders/{_segment(fulfillment_order_id)}/cancel")

    def recall(self, fulfillment_order_id: str) -> list[str]:
        """Intercept shipped parcels still at the warehouse: the tracking codes of every recalled parcel
        (empty when nothing shipped); HandedToCarrier when all have left."""
        answer = self._call(
            "recall", "POST", f"/v1/fulfillment_orders/{_segment(fulfillment_order_id)}/recall"
        )
        recalled = answer.get("recalled")
        if not isinstance(recalled, list) or not all(isinstance(code, str) for code in recalled):
            raise ThreePLError(
                "recall: the answer has no list of recalled tracking codes", operation="recall"
            )
        return list(recalled)

    def inventory(self, skus: Iterable[str], warehouse: str | None = None) -> list[dict[str, Any]]:
        """Stock per SKU and warehouse: `{"sku", "warehouse", "available", "expected_at"}` each."""
        params = [("sku", sku) for sku in skus]
        if not params:
            raise InvalidInput("an inventory query needs at least one SKU")
        if warehouse is not None:
            params.append(("warehouse", warehouse))
        answer = self._call("inventory", "GET", "/v1/inventory", params=params)
        items = answer.get("items")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ThreePLError("inventory: the answer has no list of items", operation="inventory")
        return items

    # --- transport ----------------------------------------------------------------------------

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: list[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        attempt = 1
        while True:
            try:
                response = self._session.request(
                    method,
                    self._base + path,
                    json=json,
                    params=params,
                    headers={**self._headers, **(headers or {})},
                    timeout=self._timeout,
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                failure = _Failure(f"unreachable: {type(exc).__name__}", None, None, None)
            except requests.RequestException as exc:
                raise ThreePLError(f"{operation}: {type(exc).__name__}", operation=operation) from exc
            else:
                outcome = _read(operation, response)
                if not isinstance(outcome, _Failure):
                    return outcome
                failure = outcome
            delay = failure.delay if failure.delay is not None else self._backoff_delay(attempt)
            if attempt >= self._max_attempts or delay > self._max_wait:
                raise ThreePLUnavailable(
                    f"{operation} gave up after {attempt} attempt(s): {failure.why}",
                    operation=operation,
                    status=failure.status,
                    code=failure.code,
                    retry_after=failure.delay,
                )
            logger.info(
                "3pl retry",
                extra={
                    "operation": operation,
                    "status": failure.status,
                    "attempt": attempt,
                    "delay_seconds": round(delay, 3),
                },
            )
            self._sleep(delay)
            attempt += 1

    def _backoff_delay(self, attempt: int) -> float:
        # Equal jitter: at least half the backoff, so a crowd of clients spreads out but still waits.
        return self._backoff * 2.0 ** (attempt - 1) * (0.5 + 0.5 * self._jitter())


def _read(operation: str, response: requests.Response) -> _Failure | dict[str, Any]:
    status = response.status_code
    body = _json_or_none(response)
    error = body.get("error") if isinstance(body, dict) else None
    details: Mapping[str, Any] = error if isinstance(error, dict) else {}
    code = details.get("code") if isinstance(details.get("code"), str) else None
    if status in _TRANSIENT:
        return _Failure(f"HTTP {status}", status, code, _retry_after(response))
    if 200 <= status < 300:
        if not isinstance(body, dict):
            raise ThreePLError(
                f"{operation}: the answer is not a JSON object", operation=operation, status=status
            )
        return body
    field = details.get("field") if isinstance(details.get("field"), str) else None
    detail = details.get("message") if isinstance(details.get("message"), str) else None
    kind: type[ThreePLRejected] = ThreePLRejected
    if status == 404:
        kind = ThreePLNotFound
    elif status == 409 and code == "already_shipped":
        kind = AlreadyShipped
    elif status == 409 and code == "handed_to_carrier":
        kind = HandedToCarrier
    elif not 400 <= status < 500:
        raise ThreePLError(
            f"{operation} answered HTTP {status}", operation=operation, status=status, code=code
        )
    # Only the 3PL's classification goes to the log: never the key, the address or its message.
    logger.warning(
        "3pl refused the request",
        extra={"operation": operation, "status": status, "code": code, "field": field},
    )
    where = f", field {field}" if field else ""
    raise kind(
        f"{operation}: the 3PL refused the request (HTTP {status} {code or 'no code'}{where})",
        operation=operation,
        status=status,
        code=code,
        field=field,
        detail=detail,
    )


def _segment(value: str) -> str:
    if not value:
        raise InvalidInput("a 3PL fulfilment order id is required")
    return quote(value, safe="")


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


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
