"""The local servers' common HTTP handler base: answers leave at once on kept-alive connections."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler


class NoDelayRequestHandler(BaseHTTPRequestHandler):
    def setup(self) -> None:
        super().setup()
        # http.server writes headers and body separately: with Nagle's algorithm on, the body waits
        # for the client's delayed ACK (~40 ms) on every kept-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
