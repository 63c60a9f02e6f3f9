"""A loopback proxy sink that records every request sent to it, and a Label Studio routed through one.

Outbound traffic of a process whose HTTPS_PROXY/HTTP_PROXY point at the sink arrives here
instead of the internet: a CONNECT line for HTTPS, the whole request for plain HTTP. The
sink answers 502 and forwards nothing, so nothing leaves the machine even when something leaks.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

from spanbank.labelstudio import server

PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy")
# loopback only: the server's calls to itself are not leaks; every other host goes to the sink
NO_PROXY = "127.0.0.1,localhost,::1"


class Sink:
    """A TCP server on 127.0.0.1 recording the bytes of each connection (up to 64 KiB)."""

    def __init__(self):
        self.requests: list[bytes] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._record, args=(conn,), daemon=True).start()

    def _record(self, conn: socket.socket) -> None:
        data = b""
        conn.settimeout(1.0)
        with conn, contextlib.suppress(OSError):
            while len(data) < 65536:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data.startswith(b"CONNECT") and b"\r\n\r\n" in data:
                    break
            conn.sendall(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        with self._lock:
            self.requests.append(data)

    def first_lines(self) -> list[str]:
        """The request line of everything received so far (`CONNECT host:443 HTTP/1.1`, ...)."""
        with self._lock:
            return [r.split(b"\r\n", 1)[0].decode("latin-1") for r in self.requests]

    def blob(self) -> bytes:
        with self._lock:
            return b"\n".join(self.requests)

    def close(self) -> None:
        self._sock.close()


@contextlib.contextmanager
def proxied_environ(proxy_url: str):
    """os.environ with every proxy variable pointing at `proxy_url` (restored afterwards)."""
    saved = {k: os.environ.get(k) for k in (*PROXY_VARS, "NO_PROXY", "no_proxy")}
    os.environ.update(
        {k: proxy_url for k in PROXY_VARS} | {"NO_PROXY": NO_PROXY, "no_proxy": NO_PROXY}
    )
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_PRIVATE: dict = {}


def private_server(config, data_dir: Path) -> tuple[server.ServerInfo, Sink]:
    """One Label Studio per pytest process whose outbound traffic goes to a fresh Sink.

    Started anew (the sink's port is new each session), stopped when pytest ends.
    """
    if not _PRIVATE:
        sink = Sink()
        server.stop(data_dir)
        with proxied_environ(sink.url):
            info = server.start(data_dir=data_dir)
        config.add_cleanup(lambda: (server.stop(data_dir), sink.close()))
        _PRIVATE.update(info=info, sink=sink)
    return _PRIVATE["info"], _PRIVATE["sink"]


def canary() -> str:
    """Send one HTTPS request from Label Studio's own Python with the proxy settings the
    private server gets, to a sink of its own; return the line that sink recorded: proof that
    a leak from such a process would be seen."""
    import subprocess

    sink = Sink()
    env = dict(os.environ)
    env.update({k: sink.url for k in PROXY_VARS} | {"NO_PROXY": NO_PROXY, "no_proxy": NO_PROXY})
    code = "import requests\ntry:\n requests.get('https://pypi.org/simple/', timeout=10)\nexcept Exception:\n pass"
    try:
        subprocess.run(
            [str(server.venv_dir() / "bin" / "python"), "-c", code], env=env, timeout=60, check=True
        )
        return (sink.first_lines() or [""])[0]
    finally:
        sink.close()


def process_environ(pid: int) -> dict[str, str]:
    """The environment process `pid` was started with (Linux /proc)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
