"""The local AWS endpoint: answers Lambda Invoke in-process, forwards every other AWS call to moto."""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from local.counters import RequestCounter, classify
from local.http_server import NoDelayRequestHandler
from local.lambda_runtime import FunctionNotFound, Functions, FunctionUnavailable

log = logging.getLogger("local.gateway")

_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations/?$")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}

# Local-only control routes (never part of AWS): path → handler(body) → (status, json)
ControlRoute = Callable[[str, bytes], tuple[int, Any]]


class Gateway:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        moto_port: int,
        runtime: Functions,
        control: dict[str, ControlRoute] | None = None,
        counter: RequestCounter | None = None,
    ) -> None:
        self.runtime = runtime
        self.moto_port = moto_port
        self.control = control or {}
        # Optional (HUB_LOCAL_COUNTERS=1): requests per service and operation, read at /_local/counters.
        self.counter = counter
        gateway = self

        class Handler(_GatewayHandler):
            owner = gateway

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _GatewayHandler(NoDelayRequestHandler):
    owner: Gateway
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._body()
        path = self.path.split("?", 1)[0]
        match = _INVOKE.match(path)
        if match and self.command == "POST":
            if self.owner.counter is not None:
                self.owner.counter.count("lambda", "Invoke")
            self._invoke(unquote(match.group(1)), body)
        elif path == "/_local/counters" or path.startswith("/_local/counters/"):
            self._counters(path.removeprefix("/_local/counters"))
        elif path.startswith("/_local/"):
            self._control(path, body)
        else:
            self._forward(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(
            status,
            json.dumps(value).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    def _invoke(self, function: str, body: bytes) -> None:
        runtime = self.owner.runtime
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        try:
            runtime.resolve(function)
            event = json.loads(body) if body else {}
            if invocation_type == "DryRun":
                self._send(204, b"", {})
            elif invocation_type == "Event":
                threading.Thread(target=runtime.invoke, args=(function, event), daemon=True).start()
                self._send(202, b"", {})
            else:
                result = runtime.invoke(function, event)
                headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
                if result.function_error:
                    headers["X-Amz-Function-Error"] = result.function_error
                self._send(200, json.dumps(result.payload).encode(), headers)
        except FunctionNotFound:
            self._send_json(
                404,
                {"Type": "User", "Message": f"Function not found: {function}"},
                {"x-amzn-ErrorType": "ResourceNotFoundException"},
            )
        except FunctionUnavailable as exc:
            self._send_json(
                500, {"Type": "Service", "Message": str(exc)}, {"x-amzn-ErrorType": "ServiceException"}
            )
        except ValueError:
            self._send_json(
                400,
                {"Type": "User", "message": "Could not parse request body into json"},
                {"x-amzn-ErrorType": "InvalidRequestContentException"},
            )

    def _counters(self, action: str) -> None:
        counter = self.owner.counter
        if counter is None:
            self._send_json(
                404, {"message": "request counters are off: start the stack with HUB_LOCAL_COUNTERS=1"}
            )
        elif action in ("", "/") and self.command == "GET":
            self._send_json(200, counter.snapshot())
        elif action == "/reset" and self.command == "POST":
            self._send_json(200, counter.reset())  # what was counted until now
        else:
            self._send_json(404, {"message": "GET /_local/counters or POST /_local/counters/reset"})

    def _control(self, path: str, body: bytes) -> None:
        for prefix, route in self.owner.control.items():
            if path.startswith(prefix):
                status, value = route(path.removeprefix(prefix), body)
                self._send_json(status, value)
                return
        self._send_json(404, {"message": f"no local control route {path}"})

    def _forward(self, body: bytes) -> None:
        # DynamoDB requests are serialised inside moto (local/moto_server.py): moto's is not thread-safe.
        self._forward_to_moto(body)

    def _forward_to_moto(self, body: bytes) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        conn = http.client.HTTPConnection("127.0.0.1", self.owner.moto_port, timeout=120)
        try:
            conn.connect()
            # Bodies over 2000 bytes leave in a second write: no Nagle wait on it (see setup()).
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.request(self.command, self.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            out = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            if self.owner.counter is not None:
                # Counted before the caller has its answer: whoever reads the counters after a call sees it.
                path, _, query = self.path.partition("?")
                service, operation = classify(self.command, self.headers, path, query, body)
                self.owner.counter.record(service, operation, body, response.status, data)
            self._send(response.status, data, out)
        except OSError as exc:
            log.error("moto unreachable: %s", exc)
            self._send_json(502, {"message": f"local AWS (moto) unreachable: {exc}"})
        finally:
            conn.close()
