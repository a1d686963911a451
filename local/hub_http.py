"""The hub's local HTTP server: chalice.local's handler, made to behave as API Gateway does at its edge.

Two differences from `chalice.local` matter to what the hub accepts:
- API Gateway refuses a body over its payload limit (10 MB) without passing it on; chalice.local reads
  whatever Content-Length announces into memory first. Here the length is checked before a byte of the
  body is read: 413 and the connection is closed.
- API Gateway matches the route on the raw path and then percent-decodes each path parameter once (so
  `a%2Fb%2Fc` in `{external_id}` is `a/b/c`); chalice.local passes the raw text (`a%2Fb%2Fc`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from typing import Any
from urllib.parse import unquote

from chalice.local import ChaliceRequestHandler, LambdaEventConverter, MatchResult, RouteMatcher

from local.http_server import NoDelayRequestHandler

# API Gateway's REST API payload limit.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
# After refusing a body, what may still arrive is read and dropped for this long (bounded), so the client
# sees the 413 instead of a connection reset.
_DRAIN_SECONDS = 1.0
_DRAIN_BYTES = 1024 * 1024


class ApiGatewayRouteMatcher(RouteMatcher):
    """Routes matched on the raw path; each captured parameter then percent-decoded once (UTF-8)."""

    def match_route(self, url: str) -> MatchResult:
        found = super().match_route(url)
        decoded = {name: unquote(value, errors="replace") for name, value in found.captured.items()}
        return MatchResult(found.route, decoded, found.query_params)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HubRequestHandler(NoDelayRequestHandler, ChaliceRequestHandler):
    """chalice.local's handler with API Gateway's body limit and path-parameter decoding."""

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any, config: Any) -> None:
        self._app = app_object
        self._decoding = False
        # chalice.local serves the connection from inside __init__.
        ChaliceRequestHandler.__init__(self, request, client_address, server, app_object, config)

    def _parse_payload(self) -> tuple[dict[str, Any], bytes | None]:
        announced = self.headers.get("content-length") or "0"
        if not announced.isascii() or not announced.isdigit() or len(announced) > 18:
            raise _Refused(400, "Content-Length is not a number")
        if int(announced) > MAX_REQUEST_BYTES:
            raise _Refused(413, f"request body over {MAX_REQUEST_BYTES // (1024 * 1024)} MB")
        return super()._parse_payload()

    def _generic_handle(self) -> None:
        if not self._decoding:  # once per connection: chalice.local builds its gateway in __init__
            self.local_gateway.event_converter = LambdaEventConverter(
                ApiGatewayRouteMatcher(list(self._app.routes)), self._app.api.binary_types
            )
            self._decoding = True
        try:
            super()._generic_handle()
        except _Refused as refused:
            self._refuse(refused.status, str(refused))

    # chalice.local binds its own _generic_handle to each method name: rebind them to this one.
    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def _refuse(self, status: int, message: str) -> None:
        body = json.dumps({"message": message}).encode()
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self._drain()

    def _drain(self) -> None:
        """Half-close, then read and drop what the client is still sending (bounded in time and size):
        closing with unread bytes would reset the connection and lose the answer on the way."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(_DRAIN_SECONDS)
            dropped = 0
            while dropped < _DRAIN_BYTES:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                dropped += len(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        # Access lines go to the debug log instead of stderr, so the console shows what matters.
        logging.getLogger("local.http").debug(format, *args)
