"""One SP-API call: paced to its usage plan, authorised by an access token, retried, its errors translated."""

from __future__ import annotations

from typing import Any, Protocol

import requests

from chalicelib.integrations import http
from chalicelib.integrations.amazon.errors import (
    GIVE_UP,
    SpApiError,
    error_for,
    first_error,
    raise_if_retryable,
)
from chalicelib.integrations.amazon.pacing import OperationPacer

USER_AGENT = "order-hub/1.0 (Language=Python)"
# Feed documents live at pre-signed S3 URLs: no SP-API token, no usage plan, S3's own errors.
DOCUMENT_TRANSFER = "feedDocumentTransfer"


class Credentials(Protocol):
    """Where a request's x-amz-access-token comes from, and how to drop one SP-API refused."""

    def token(self) -> str: ...

    def forget(self, token: str) -> None: ...


class SpApiTransport:
    """SP-API requests of one selling partner: each paced, sent with a token, retried, answered as JSON.

    A 429 or a 5xx is retried with the policy's jittered exponential backoff (Retry-After wins when
    sent); a 401/403 is retried once with a fresh token.
    """

    def __init__(
        self, endpoint: str, transport: http.HttpTransport, pacer: OperationPacer, credentials: Credentials
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._http = transport
        self._pacer = pacer
        self._credentials = credentials

    def payload(
        self, operation: str, path: str, params: dict[str, str], credentials: Credentials | None = None
    ) -> dict[str, Any]:
        """GET an Orders v0 resource and answer its `payload` object."""
        body = self.request("GET", operation, path, params=params, credentials=credentials)
        payload = body.get("payload")
        if not isinstance(payload, dict):
            raise SpApiError(f"{operation} answered without a payload", operation=operation)
        return payload

    def request(
        self,
        method: str,
        operation: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        credentials: Credentials | None = None,
        expect_body: bool = True,
    ) -> dict[str, Any]:
        """One SP-API call, paced and retried; `credentials` supplies x-amz-access-token (LWA by default).

        `expect_body=False` for operations that answer 204 without content ({} is returned then).
        """
        credentials = credentials or self._credentials
        bucket = self._pacer.bucket(operation)
        refreshed = False

        def attempt() -> dict[str, Any]:
            nonlocal refreshed
            while True:
                self._pacer.pace(operation, bucket)
                token = credentials.token()
                headers = {
                    "x-amz-access-token": token,
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                }
                response = self._http.exchange(
                    operation, method, self._endpoint + path, params=params, json=json, headers=headers
                )
                self._pacer.learn_rate(bucket, response)
                status = response.status_code
                if 200 <= status < 300:
                    body = http.json_object(response)
                    if not body and expect_body:
                        raise SpApiError(f"{operation} answered {status} without JSON", operation=operation)
                    return body
                code, message = first_error(response)
                if status in (401, 403) and not refreshed:
                    # The token may have been revoked or expired early: one fresh one, then believe it.
                    refreshed = True
                    credentials.forget(token)
                    continue
                if status == 429:
                    bucket.drain()
                raise_if_retryable(response, f"{code}: {message}")
                raise error_for(operation, status, code, message)

        return self._http.policy.call(attempt, give_up=GIVE_UP, operation=operation)

    def transfer(
        self, method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> bytes:
        """A feed document up- or download at a pre-signed URL: 429, 5xx and transport errors retried."""

        def read(response: requests.Response) -> bytes:
            status = response.status_code
            if 200 <= status < 300:
                return response.content
            raise_if_retryable(response, f"HTTP {status}")
            # S3 answers XML (<Error><Code>...): keep the code, never the URL (it is a bearer credential).
            code = _xml_tag_text(response.text, "Code") or str(status)
            raise SpApiError(
                f"feed document {method} answered {status} {code}",
                operation=DOCUMENT_TRANSFER,
                status=status,
                code=code,
            )

        return self._http.request(
            DOCUMENT_TRANSFER, method, url, classify=read, give_up=GIVE_UP, data=data, headers=headers or {}
        )


def _xml_tag_text(text: str, tag: str) -> str | None:
    start = text.find(f"<{tag}>")
    end = text.find(f"</{tag}>", start)
    if start < 0 or end < 0:
        return None
    return text[start + len(tag) + 2 : end].strip() or None
