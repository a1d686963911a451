"""The 3PL's REST API (fulfilment orders, cancel, recall, inventory, returns) over requests; errors
translated."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Unpack
from urllib.parse import quote

import requests
from aws_lambda_powertools import Logger

from chalicelib.domain import upstream
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.fulfilment import AlreadyShippedError, RecallRefused
from chalicelib.integrations import http

logger = Logger(service="order-hub", child=True)


class ThreePLError(upstream.UpstreamError):
    """The 3PL call failed in a way retrying the same request now cannot fix (or an unreadable answer)."""


class ThreePLRejected(ThreePLError, upstream.UpstreamRejected):
    """The 3PL refused the request (4xx): `code` and `field` say why; nothing changed on its side."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        detail: str | None = None,
        **context: Unpack[upstream.Context],
    ) -> None:
        super().__init__(message, **context)
        self.field = field
        # The 3PL's own words: may echo request values (addresses), so kept off str() and log lines.
        self.detail = detail


class ThreePLNotFound(ThreePLRejected, upstream.UpstreamNotFound):
    """No such fulfilment order at the 3PL."""


class AlreadyShipped(ThreePLRejected, AlreadyShippedError):
    """Cancel came too late: every line has shipped (try `recall`)."""


class HandedToCarrier(ThreePLRejected, RecallRefused):
    """Recall came too late: every shipped parcel is already with its carrier."""


class ThreePLUnavailable(ThreePLError, upstream.UpstreamUnavailable):
    """5xx, 429 or unreachable after the bounded retries: transient, try again later."""


class ThreePLThrottled(ThreePLUnavailable, upstream.UpstreamThrottled):
    """Still 429 after the bounded retries (or its Retry-After is longer than we may wait)."""


_GIVE_UP = http.give_up_as(ThreePLUnavailable, ThreePLThrottled)


class ThreePLClient:
    """One 3PL account's API (`base_url`: its connection's api_base). Build once and reuse (pooled session).

    Every call is safe to repeat (creates carry their Idempotency-Key; cancel and recall are
    idempotent), so 429, 5xx and transport errors are retried: the 429/503 Retry-After when sent,
    else jittered exponential backoff; at most `max_attempts` tries and no single wait over
    `max_wait` seconds, then ThreePLUnavailable.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        **options: Unpack[http.HttpOptions],
    ) -> None:
        if not base_url or not api_key:
            raise InvalidInput("a 3PL connection needs its API base URL and API key")
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._http = http.transport(ThreePLError, options, log="3pl retry", secrets=(api_key,))

    def __repr__(self) -> str:
        # Never let the API key reach a log line through an accidental %r.
        return f"ThreePLClient(max_attempts={self._http.policy.max_attempts})"

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

    def expect_return(self, request: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """Announce a return (an RMA) so the warehouse can receive it: `{"return_id", "order_id",
        "warehouse", "tracking_number"?, "lines": [{"sku", "quantity", "line_id"}]}`. The same key (or
        return_id) answers the return announced before. The ReturnsDesk port."""
        if not idempotency_key:
            raise InvalidInput("announcing a return to the 3PL needs an idempotency key")
        body = {k: v for k, v in request.items() if not (k == "tracking_number" and v is None)}
        return self._call(
            "expect_return", "POST", "/v1/returns", json=body, headers={"Idempotency-Key": idempotency_key}
        )

    def get_return(self, return_id: str) -> dict[str, Any]:
        """The return as the 3PL sees it (its id or the hub's return_id); ThreePLNotFound when unknown."""
        return self._call("get_return", "GET", f"/v1/returns/{_segment(return_id)}")

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
        return self._http.request(
            operation,
            method,
            self._base + path,
            classify=lambda response: _read(operation, response),
            give_up=_GIVE_UP,
            json=json,
            params=params,
            headers={**self._headers, **(headers or {})},
        )


def _read(operation: str, response: requests.Response) -> dict[str, Any]:
    status = response.status_code
    body = http.json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    details: Mapping[str, Any] = error if isinstance(error, dict) else {}
    code = details.get("code") if isinstance(details.get("code"), str) else None
    retry = http.retryable_status(response, f"HTTP {status}", code=code)
    if retry is not None:
        raise retry
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
        raise InvalidInput("a 3PL fulfilment order or return id is required")
    return quote(value, safe="")
