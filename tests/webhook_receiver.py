"""A local webhook endpoint for the simulators' tests: records every POST and answers as told."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    """Subclasses say what to keep of a request (`record`) and what to answer to it (`status_for`)."""

    path = "/webhooks"

    def __init__(self) -> None:
        self.received: list[Any] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    item = receiver.record(self.headers, body)
                    status = receiver.status_for(item, len(receiver.received))
                    receiver.received.append(item)
                    receiver._cond.notify_all()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def record(self, headers: Message, body: bytes) -> Any:
        return (headers, body)

    def status_for(self, item: Any, index: int) -> int:
        """The answer to the `index`-th request (0-based), `item` being what `record` kept of it."""
        return 200

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Any]:
        """Every request received so far, once there are at least `count`: the wait ends as soon as they
        are in, so the deadline is generous (a busy machine may be slow to send them)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"received {len(self.received)} of {count} webhooks")
                self._cond.wait(remaining)
            return list(self.received)

    def clear(self) -> None:
        with self._cond:
            self.received.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FailingReceiver(WebhookReceiver):
    """Answers `fail_status` to the first `fail_first` deliveries that `may_fail`, then 200."""

    def __init__(self) -> None:
        self.fail_first = 0
        self.fail_status = 500
        self.failed = 0
        super().__init__()

    def may_fail(self, item: Any) -> bool:
        return True

    def status_for(self, item: Any, index: int) -> int:
        failing = self.failed < self.fail_first and self.may_fail(item)
        self.failed += failing
        return self.fail_status if failing else 200


@dataclass(frozen=True)
class Signed:
    """A delivery as a `SignedReceiver` keeps it: signature header (None when absent), body, headers."""

    signature: str | None
    body: bytes
    headers: Message = field(compare=False, repr=False)

    @property
    def event(self) -> Any:
        return json.loads(self.body)


class SignedReceiver(FailingReceiver):
    """The hub's webhook at `path`: keeps each delivery as a `kept_as` with its `signature_header`."""

    def __init__(self, path: str, signature_header: str, kept_as: type[Signed] = Signed) -> None:
        self.path, self.signature_header, self.kept_as = path, signature_header, kept_as
        super().__init__()

    def record(self, headers: Message, body: bytes) -> Signed:
        return self.kept_as(headers[self.signature_header], body, headers)

    def redelivered(self, sim: Any) -> list[Any]:
        """The three deliveries of one event refused twice (`fail_first = 2`) once `sim` has sent them all:
        the same body each time, answered 500, 500, then 200."""
        first, second, third = self.wait_for(3)
        assert sim.flush(20)
        assert first.body == second.body == third.body
        assert [(d.attempt, d.status) for d in sim.deliveries] == [(1, 500), (2, 500), (3, 200)]
        return [first, second, third]


class ShopifyReceiver(WebhookReceiver):
    """The hub's `/webhooks/shopify`: keeps each delivery as its topic and JSON body."""

    path = "/webhooks/shopify"

    def record(self, headers: Message, body: bytes) -> tuple[str, dict[str, Any]]:
        return headers["X-Shopify-Topic"], json.loads(body)

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.received]

    def last(self, topic: str, order_id: int) -> dict[str, Any]:
        """The body of the last `topic` delivery about the order."""
        bodies = [body for t, body in list(self.received) if t == topic and body["id"] == order_id]
        assert bodies, f"no {topic} webhook for order {order_id}"
        return bodies[-1]
