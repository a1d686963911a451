"""The simulators' HTTP side: a loopback server base class, requests and replies, and a small router."""

from __future__ import annotations

import json
import logging
import random
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any, Generic, Protocol, TypedDict, TypeVar, Unpack
from urllib.parse import parse_qs, unquote, urlsplit

from local.http_server import NoDelayRequestHandler


@dataclass(frozen=True)
class Request:
    """One HTTP request as a simulator sees it: header names lower-cased, the body read in full."""

    method: str
    target: str  # the request line's target: path and query as sent
    headers: Mapping[str, str]
    body: bytes = b""
    params: Mapping[str, str] = field(default_factory=dict)  # what the matched route pattern captured

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    def query_lists(self, *, keep_blank_values: bool = False) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=keep_blank_values)

    def query_first(self) -> dict[str, str]:
        """Each query parameter's first value."""
        return {k: v[0] for k, v in self.query_lists().items()}

    def json(self, empty: Any = None) -> Any:
        """The body as JSON (`empty` for no body); ValueError (UnicodeDecodeError included) when it is not."""
        return json.loads(self.body) if self.body else empty

    def text(self) -> str:
        return self.body.decode()


@dataclass(frozen=True)
class Reply:
    """What the server sends: status, headers (Content-Type among them) and body; Content-Length is added."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls,
        status: int,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        *,
        content_type: str = "application/json",
        dumps: Callable[[Any], str | bytes] = json.dumps,
    ) -> Reply:
        data = dumps(payload)
        body = data.encode() if isinstance(data, str) else data
        return cls(status, body, {"Content-Type": content_type, **(headers or {})})


T = TypeVar("T")


@dataclass(frozen=True)
class Match(Generic[T]):
    handler: Callable[[Request], T] | None  # None: the path is known, not the method (see `allowed`)
    params: dict[str, str]
    allowed: tuple[str, ...] = ()


class Router(Generic[T]):
    """Method + path pattern → handler (answering a Reply, or whatever the simulator's handlers answer).

    Patterns name segments as `{name}` (or `{name:regex}`); captured values are URL-decoded and reach
    the handler as `request.params`. Unless `strict_slashes`, surrounding slashes do not count.
    """

    def __init__(self, *, strict_slashes: bool = False) -> None:
        self._routes: list[tuple[frozenset[str], re.Pattern[str], Callable[[Request], T]]] = []
        self._strict = strict_slashes

    def add(self, methods: str | Iterable[str], pattern: str, handler: Callable[[Request], T]) -> Router[T]:
        names = frozenset([methods] if isinstance(methods, str) else methods)
        regex = re.sub(r"\{(\w+)(?::([^}]+))?\}", lambda m: f"(?P<{m[1]}>{m[2] or '[^/]+'})", pattern)
        self._routes.append((names, re.compile(regex), handler))
        return self

    def match(self, method: str, path: str) -> Match[T] | None:
        if not self._strict:
            path = "/" + path.strip("/")
        allowed: list[str] = []
        for methods, regex, handler in self._routes:
            found = regex.fullmatch(path)
            if found is None:
                continue
            if method in methods:
                return Match(handler, {k: unquote(v) for k, v in found.groupdict().items()})
            allowed += sorted(methods)
        return Match(None, {}, tuple(allowed)) if allowed else None

    def dispatch(
        self,
        request: Request,
        not_found: Callable[[Request], T],
        not_allowed: Callable[[Request], T] | None = None,
    ) -> T:
        """The matching handler's answer; `not_found`'s when nothing matches (or only the path does and
        there is no `not_allowed`, e.g. a 405)."""
        match = self.match(request.method, request.path)
        if match is None or match.handler is None:
            return (not_allowed if match is not None and not_allowed else not_found)(request)
        return match.handler(
            Request(request.method, request.target, request.headers, request.body, match.params)
        )


class Service(Protocol):
    """A simulator's background work (webhook senders, timed tasks): started and stopped with it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class Knobs(TypedDict, total=False):
    """What every simulator takes (keyword-only) beside its own knobs; `SimulatorServer` applies them."""

    host: str  # the address it listens on: 127.0.0.1 by default
    port: int  # 0 (the default): any free port
    seed: int | None  # seeds its random choices (`_rng`): the same seed, the same run
    duplicate_rate: float  # the share of its webhooks (notifications) sent twice: 0 by default


class WebhookKnobs(Knobs, total=False):
    """The knobs of a simulator that signs and sends webhooks itself (`WebhookSimulatorServer`)."""

    webhook_url: str | None  # where its webhooks go: nowhere by default
    time_scale: float  # multiplies its delays (webhook retries, scheduled work): 1 by default


class SimulatorServer(ABC):
    """Base of every simulator: a ThreadingHTTPServer on loopback (port 0: any free one) answering through
    `_reply`, serving from a daemon thread, plus the simulator's background `Service`s.

    Only `methods` are answered (others get http.server's 501); request lines are logged at DEBUG on `log`.
    The common `Knobs` become `duplicate_rate` (adjustable on a running simulator) and `_rng`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        duplicate_rate: float = 0.0,
        name: str,
        log: logging.Logger,
        methods: Iterable[str] = ALL_METHODS,
        server_version: str | None = None,
    ) -> None:
        self.duplicate_rate = duplicate_rate
        self._seed = seed
        self._rng = random.Random(seed)
        self.server = ThreadingHTTPServer(
            (host, port), _handler_class(self._reply, log, methods, server_version)
        )
        self.server.daemon_threads = True
        # poll_interval: stop() answers within 50 ms instead of 500
        self._serving = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._services: list[Service] = []

    @abstractmethod
    def _reply(self, request: Request) -> Reply | None:
        """The simulator's answer to one request (None drops the connection)."""

    def _run(self, service: Service) -> Any:
        """Start and stop `service` with the simulator; answers it (for `self._x = self._run(X(...))`)."""
        self._services.append(service)
        return service

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Any:  # Any: each simulator's own type, for `Simulator(...).start()`
        self._serving.start()
        for service in self._services:
            service.start()
        return self

    def stop(self) -> Any:
        """Stop the background work (pending webhooks are discarded), then serving."""
        for service in self._services:
            service.stop()
        if self._serving.is_alive():  # shutdown() would wait forever for a server never started
            self.server.shutdown()
        self.server.server_close()
        return self

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WebhookSimulatorServer(SimulatorServer):
    """A simulator that sends its own webhooks: `webhook_url` and `time_scale` (both adjustable on a running
    simulator) beside the common knobs."""

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        time_scale: float = 1.0,
        name: str,
        log: logging.Logger,
        methods: Iterable[str] = ALL_METHODS,
        **knobs: Unpack[Knobs],
    ) -> None:
        super().__init__(name=name, log=log, methods=methods, **knobs)
        self.webhook_url = webhook_url
        self.time_scale = time_scale


def _handler_class(
    reply: Callable[[Request], Reply | None],
    log: logging.Logger,
    methods: Iterable[str],
    server_version: str | None,
) -> type[NoDelayRequestHandler]:
    class _Handler(NoDelayRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = reply(Request(self.command, self.path, headers, body))
            if answer is None:
                self.close_connection = True
                return
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

    if server_version is not None:
        _Handler.server_version = server_version
    for method in methods:
        setattr(_Handler, f"do_{method}", _Handler._serve)
    return _Handler
