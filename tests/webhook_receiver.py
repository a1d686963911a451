"""A local webhook endpoint for the simulators' tests: records every POST and answers as told."""

from __future__ import annotations

import threading
import time
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
