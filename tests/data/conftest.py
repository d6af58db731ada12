"""A real HTTP server on 127.0.0.1 (ephemeral port) whose routes can misbehave on purpose, with a request log."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclasses.dataclass
class Route:
    """How one path is served: its bytes, and which faults to show."""

    data: bytes = b""
    ranges: bool = True  # honour "Range: bytes=N-" with 206; False: ignore the header and send everything
    drop_first: int = 0  # the first N requests send the headers and half the body, then close the connection
    fail_first: int = 0  # the first N requests (after drops) are answered 500
    status: int | None = None  # answer every request with this error status
    redirect: str | None = None  # answer every request with 302 to this location
    requests: int = 0


@dataclasses.dataclass(frozen=True)
class Hit:
    """One request as the server saw it, logged on receipt: ``bytes_sent`` is the body it answers with."""

    path: str
    range: str | None
    status: int
    bytes_sent: int


class LocalServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.log: list[Hit] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def serve(self, path: str, data: bytes = b"", **behaviour) -> str:
        """Register ``path`` (with :class:`Route` options) and return its URL."""
        self.routes[path] = Route(data=data, **behaviour)
        return self.base + path

    def hits(self, path: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.log if h.path == path]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _record(self, status: int, sent: int) -> None:
                with server._lock:
                    server.log.append(Hit(self.path, self.headers.get("Range"), status, sent))

            # Every request is logged on receipt, before its answer goes out: a client that has its answer (the
            # download returned) always finds the request in the log.
            def _error(self, status: int) -> None:
                self._record(status, 0)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                route = server.routes.get(self.path)
                if route is None:
                    return self._error(404)
                with server._lock:
                    route.requests += 1
                    n = route.requests
                if route.redirect is not None:
                    self._record(302, 0)
                    self.send_response(302)
                    self.send_header("Location", route.redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if route.status is not None:
                    return self._error(route.status)
                if route.drop_first < n <= route.drop_first + route.fail_first:
                    return self._error(500)
                data, start, status = route.data, 0, 200
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if route.ranges and match:
                    start = int(match.group(1))
                    if start >= len(data):
                        return self._error(416)
                    status = 206
                body = data[start:]
                if n <= route.drop_first:
                    body = body[: len(body) // 2]
                    self.close_connection = True
                self._record(status, len(body))
                self.send_response(status)
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

        return Handler


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    """A fresh local HTTP server for one test; ``serve(path, data, **faults)`` returns the URL of ``path``."""
    server = LocalServer()
    try:
        yield server
    finally:
        server.close()
