"""A small fault-injecting HTTP proxy on 127.0.0.1 for reliability tests (delays, drops, 5xx, 429, truncation).

`FaultProxy(upstream)` listens on a free loopback port and forwards each request to the
upstream Label Studio. A `plan` callable decides, per request, which fault (if any) to
inject; `refuse()`/`resume()` close and reopen the listening socket on the same port, so
clients see "connection refused", as when the server is stopped and started again.

Faults (strings a plan returns):

- ``delay:S``        wait S seconds, then forward normally
- ``drop``           close the connection without forwarding (the server never sees it)
- ``drop-after``     forward, then close without answering (the server did the work)
- ``status:N``       answer N (500/502/503/429...) without forwarding
- ``status-after:N`` forward, then answer N instead of the real response
- ``truncate``       forward, then send the headers and half the body and close
- ``garble``         forward, then answer 200 with the first half of the body (not JSON)
- ``echo:N``         answer N with a body quoting the request's Authorization header and
                     body, as some proxies and servers do (without forwarding)
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULTS = (
    "delay",
    "drop",
    "drop-after",
    "status:500",
    "status:502",
    "status:503",
    "status:429",
    "status-after:502",
    "truncate",
    "garble",
)

Plan = Callable[[str, str, int], "str | None"]  # (method, path, request number) -> fault


def random_plan(seed: int, rate: float, faults=FAULTS, max_delay: float = 0.3) -> Plan:
    """Seeded plan: each request gets a fault with probability `rate`, drawn from `faults`."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def plan(method: str, path: str, n: int) -> str | None:
        with lock:
            if rng.random() >= rate:
                return None
            fault = rng.choice(faults)
            if fault == "delay":
                return f"delay:{rng.uniform(0.01, max_delay):.3f}"
            return fault

    return plan


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # a client that gave up is expected here
        pass


class FaultProxy:
    """Forward HTTP from 127.0.0.1:<port> to `upstream`, injecting the faults `plan` picks."""

    def __init__(self, upstream: str, plan: Plan | None = None):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.plan = plan
        self.injected: Counter = Counter()  # fault kind -> times injected
        self.requests = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------
    def _listen(self) -> None:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        deadline = time.monotonic() + 10
        while True:
            try:
                self._server = _Server(("127.0.0.1", self.port), Handler)
                break
            except OSError:  # the old socket may linger for a moment after refuse()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def refuse(self) -> None:
        """Stop listening: new connections are refused (the server is 'down')."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            with self._lock:
                self.injected["refused-window"] += 1

    def resume(self) -> None:
        """Listen again on the same port (the server is 'back')."""
        if self._server is None:
            self._listen()

    def close(self) -> None:
        self.refuse()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _pick(self, method: str, path: str) -> str | None:
        with self._lock:
            self.requests += 1
            n = self.requests
        fault = self.plan(method, path, n) if self.plan else None
        if fault:
            with self._lock:
                self.injected[fault.split(":")[0] if fault.startswith("delay") else fault] += 1
        return fault


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: requests carry the API key in a header
        pass

    def _forward(self, body: bytes):
        p = self.owner
        conn = http.client.HTTPConnection(p.upstream_host, p.upstream_port, timeout=300)
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in ("host", "connection", "keep-alive", "proxy-connection")
        }
        headers["Host"] = f"{p.upstream_host}:{p.upstream_port}"
        headers["Connection"] = "close"
        try:
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()

    def _abort(self) -> None:
        """Close the client connection at once (RST), answering nothing."""
        self.close_connection = True
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        except OSError:
            pass

    def _send(
        self, status: int, reason: str, headers, data: bytes, length: int | None = None
    ) -> None:
        self.send_response_only(status, reason)
        for k, v in headers:
            if k.lower() in (
                "content-length",
                "transfer-encoding",
                "connection",
                "content-encoding",
            ):
                continue
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = self.owner._pick(self.command, self.path)
        if fault and fault.startswith("delay:"):
            time.sleep(float(fault.split(":", 1)[1]))
            fault = None
        if fault == "drop":
            return self._abort()
        if fault and fault.startswith("echo:"):
            said = (
                f"rejected {self.headers.get('Authorization')} for {body.decode(errors='replace')}"
            )
            return self._send(
                int(fault.split(":", 1)[1]),
                "Injected",
                [("Content-Type", "application/json")],
                json.dumps({"detail": said}).encode(),
            )
        if fault and fault.startswith("status:"):
            code = int(fault.split(":", 1)[1])
            extra = [("Retry-After", "0")] if code == 429 else []
            return self._send(
                code, "Injected", [("Content-Type", "text/plain"), *extra], b"injected fault"
            )
        try:
            status, reason, headers, data = self._forward(body)
        except OSError:
            return self._send(
                502, "Bad Gateway", [("Content-Type", "text/plain")], b"upstream unreachable"
            )
        if fault == "drop-after":
            return self._abort()
        if fault and fault.startswith("status-after:"):
            code = int(fault.split(":", 1)[1])
            return self._send(code, "Injected", [("Content-Type", "text/plain")], b"injected fault")
        if fault == "truncate" and len(data) > 1:
            self._send(status, reason, headers, data[: len(data) // 2], length=len(data))
            return self._abort()
        if fault == "garble" and len(data) > 1:
            return self._send(status, reason, headers, data[: len(data) // 2])
        return self._send(status, reason, headers, data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _handle
