"""Where SP-API's x-amz-access-token comes from: LWA access tokens and restricted data tokens (RDTs)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import requests

from chalicelib.integrations import http
from chalicelib.integrations.amazon.errors import GIVE_UP, SpApiAuthError, SpApiError, raise_if_retryable
from chalicelib.integrations.amazon.transport import USER_AGENT

# Refresh an access token this long before LWA says it expires, so no request carries a dying token.
TOKEN_MARGIN_SECONDS = 60.0


class LwaTokens:
    """One selling partner's LWA access token: exchanged from the refresh token, cached until shortly
    before it expires, dropped when SP-API refuses it (a `Credentials` for SpApiTransport)."""

    def __init__(
        self,
        transport: http.HttpTransport,
        *,
        endpoint: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        clock: Callable[[], float],
    ) -> None:
        self._http = transport
        self._endpoint = endpoint
        self._form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
            "client_secret": client_secret,
        }
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        # Never let a secret reach a log line through an accidental %r.
        return f"LwaTokens(endpoint={self._endpoint!r})"

    def token(self) -> str:
        """A valid LWA access token, exchanged from the refresh token, cached until shortly before expiry."""
        with self._lock:
            if self._token is not None and self._clock() < self._expires:
                return self._token
            token, expires_in = self._exchange_refresh_token()
            margin = min(TOKEN_MARGIN_SECONDS, expires_in / 2)
            self._token, self._expires = token, self._clock() + expires_in - margin
            return token

    def forget(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def _exchange_refresh_token(self) -> tuple[str, float]:
        def read(response: requests.Response) -> tuple[str, float]:
            body = http.json_object(response)
            if response.status_code == 200:
                token = body.get("access_token")
                if not isinstance(token, str) or not token:
                    raise SpApiError(
                        "LWA answered 200 without an access token", operation="lwaToken", status=200
                    )
                return token, lifetime_seconds(body.get("expires_in"), default=3600.0)
            error = str(body.get("error") or f"HTTP {response.status_code}")
            raise_if_retryable(response, f"LWA answered {error}")
            # invalid_client, invalid_grant, unauthorized_client...: retrying cannot help.
            raise SpApiAuthError(
                f"LWA refused the refresh-token exchange: {error}",
                operation="lwaToken",
                status=response.status_code,
                code=error,
            )

        return self._http.request(
            "lwaToken",
            "POST",
            self._endpoint,
            classify=read,
            give_up=GIVE_UP,
            data=self._form,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        )


class RestrictedCredentials:
    """A restricted data token for one resource, made on first use and remade once expired or refused.

    Lives for one operation only: nothing outlives the call, let alone the token's lifetime.
    `create` is createRestrictedDataToken: restricted resources → (RDT, lifetime in seconds).
    """

    def __init__(
        self,
        create: Callable[[list[dict[str, Any]]], tuple[str, float]],
        clock: Callable[[], float],
        method: str,
        path: str,
    ) -> None:
        self._create = create
        self._clock = clock
        self._resource = {"method": method, "path": path}
        self._token: str | None = None
        self._expires = 0.0

    def token(self) -> str:
        if self._token is None or self._clock() >= self._expires:
            token, expires_in = self._create([dict(self._resource)])
            margin = min(TOKEN_MARGIN_SECONDS, expires_in / 2)
            self._token, self._expires = token, self._clock() + expires_in - margin
        return self._token

    def forget(self, token: str) -> None:
        if self._token == token:
            self._token = None


def lifetime_seconds(value: object, *, default: float) -> float:
    """A token lifetime as LWA or SP-API states it (a number or a numeric string); `default` when unusable."""
    try:
        seconds = float(str(value))
    except ValueError:
        return default
    return seconds if seconds > 0 else default
