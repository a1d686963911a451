"""EasyPost client: Trackers (create, deduplicated by EasyPost; retrieve) and Shipments (create, buy, list,
retrieve: return labels), with bounded retries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack
from urllib.parse import quote

import requests

from chalicelib.domain import upstream
from chalicelib.domain.errors import InvalidInput
from chalicelib.integrations import http

DEFAULT_API_BASE = "https://api.easypost.com"


class CarrierError(upstream.UpstreamError):
    """The carrier API answered something the hub cannot use (or refused the request).

    `code` is EasyPost's machine-readable error.code, e.g. "TRACKER.CREATE.ERROR".
    """


class CarrierRejected(CarrierError, upstream.UpstreamRejected):
    """A 4xx: the request (or the API key, for 401/403) is wrong; sending it again will not help."""

    def __init__(
        self, message: str, *, field_errors: tuple[str, ...] = (), **context: Unpack[upstream.Context]
    ) -> None:
        super().__init__(message, **context)
        self.field_errors = field_errors  # "field: message" (or EasyPost's bare strings)


class CarrierNotFound(CarrierRejected, upstream.UpstreamNotFound):
    """404: no such tracker for this API key (test and production keys see different objects)."""


class CarrierUnavailable(CarrierError, upstream.UpstreamUnavailable):
    """5xx, 429 or a transport failure after the bounded retries: transient, try again later.

    `retry_after`: seconds the carrier asked for, or our next backoff.
    """


class CarrierThrottled(CarrierUnavailable, upstream.UpstreamThrottled):
    """Still 429 after the bounded retries (or its Retry-After is longer than we may wait)."""


class EasyPostClient:
    """One EasyPost account's Trackers and Shipments APIs (HTTP Basic auth, the API key as user, no password).

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
        **options: Unpack[http.HttpOptions],
    ) -> None:
        if not api_key:
            raise InvalidInput("an EasyPost client needs its API key")
        self._auth = (api_key, "")
        self._base = (api_base or DEFAULT_API_BASE).rstrip("/")
        self._http = http.transport(
            CarrierError, options, log="easypost retry", secrets=(api_key,), max_wait=10.0
        )

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

    def create_shipment(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """POST /v2/shipments: a Shipment with its `rates` (nothing is bought yet). A repeated create
        makes another unbought shipment, which costs nothing."""
        return self._request("createShipment", "POST", "/v2/shipments", {"shipment": dict(fields)})

    def buy_shipment(self, shipment_id: str, rate_id: str) -> dict[str, Any]:
        """POST /v2/shipments/{id}/buy: the Shipment with its label, tracking code and tracker.
        EasyPost refuses a second purchase (422 SHIPMENT.POSTAGE.EXISTS): a retry never buys twice."""
        return self._request(
            "buyShipment", "POST", f"{_shipment_path(shipment_id)}/buy", {"rate": {"id": rate_id}}
        )

    def retrieve_shipment(self, shipment_id: str) -> dict[str, Any]:
        return self._request("retrieveShipment", "GET", _shipment_path(shipment_id), None)

    def list_shipments(self, **params: str) -> dict[str, Any]:
        """GET /v2/shipments: `{"shipments": [newest first], "has_more"}`; params as EasyPost's
        (page_size, before_id, start_datetime, purchased...)."""
        return self._request("listShipments", "GET", "/v2/shipments", None, params=params)

    # --- transport ----------------------------------------------------------------------------

    def _request(
        self,
        operation: str,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return self._http.request(
            operation,
            method,
            f"{self._base}{path}",
            classify=lambda response: _read(operation, response),
            give_up=_GIVE_UP,
            json=body,
            params=dict(params) if params else None,
            auth=self._auth,
            headers={"Accept": "application/json"},
        )


def _shipment_path(shipment_id: str) -> str:
    if not shipment_id or not shipment_id.strip():
        raise InvalidInput("a shipment id is needed")
    return f"/v2/shipments/{quote(shipment_id.strip(), safe='')}"


_GIVE_UP = http.give_up_as(CarrierUnavailable, CarrierThrottled)


def _read(operation: str, response: requests.Response) -> dict[str, Any]:
    status = response.status_code
    body = http.json_object(response)
    code, message, field_errors = _error_of(body)
    retry = http.retryable_status(response, f"HTTP {status}", code=code)
    if retry is not None:
        raise retry
    if 400 <= status < 500:
        kind = CarrierNotFound if status == 404 else CarrierRejected
        text = f"{operation} refused (HTTP {status}, {code or 'no code'}): {message or 'no message'}"
        raise kind(text[:500], operation=operation, status=status, code=code, field_errors=field_errors)
    if not 200 <= status < 300:
        raise CarrierError(f"{operation} answered HTTP {status}", operation=operation, status=status)
    if not body:
        raise CarrierError(f"{operation} answered without a JSON object", operation=operation)
    return body


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
