"""The embedded local Label Studio: install into its own venv, start, stop, and find its credentials."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from spanbank.errors import LabelStudioError, ServerError

ENV_CACHE = "SPANBANK_CACHE"
ENV_URL = "LABEL_STUDIO_URL"
ENV_KEY = "LABEL_STUDIO_API_KEY"
ADMIN_EMAIL = "admin@localhost"
LS_REQUIREMENT = "label-studio>=1.23,<1.24"
HEALTH_TIMEOUT_S = 180.0
ENV_FILE = "spanbank.env"
PID_FILE = "server.pid"
STATE_FILE = "server.json"
LOG_FILE = "server.log"


@dataclass
class ServerInfo:
    """Where a local Label Studio runs and where its files are; `reused` when it was already up."""

    url: str
    pid: int
    data_dir: str
    env_file: str
    log_file: str
    admin_email: str = ADMIN_EMAIL
    reused: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def cache_dir() -> Path:
    """`$SPANBANK_CACHE` or ~/.cache/spanbank: the Label Studio venv and default server data."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "spanbank").expanduser()


def default_data_dir() -> Path:
    return cache_dir() / "server"


def venv_dir() -> Path:
    return cache_dir() / "ls-venv"


def env_file_path(data_dir: str | os.PathLike | None = None) -> Path:
    """The 0600 file holding LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY of the server using `data_dir`."""
    return Path(data_dir or default_data_dir()) / ENV_FILE


def read_env_file(path: str | os.PathLike | None = None) -> dict[str, str]:
    """KEY=VALUE lines of an env file (empty when it does not exist)."""
    p = Path(path) if path is not None else env_file_path()
    try:
        lines = p.read_text("utf-8").splitlines()
    except (FileNotFoundError, PermissionError):
        return {}
    out = {}
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def connection(
    url: str | None = None, api_key: str | None = None, env_file: str | os.PathLike | None = None
) -> tuple[str, str]:
    """(url, key): flags override LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY, which override the env file."""
    saved = None
    if not url:
        url = os.environ.get(ENV_URL)
    if not api_key:
        api_key = os.environ.get(ENV_KEY)
    if not url or not api_key:
        saved = read_env_file(env_file)
        url = url or saved.get(ENV_URL)
        api_key = api_key or saved.get(ENV_KEY)
    if not url:
        raise LabelStudioError(
            "no Label Studio configured: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, "
            "pass --url/--api-key, or run `spanbank server start`"
        )
    if not api_key:
        raise LabelStudioError(
            f"no API key for {url}: set LABEL_STUDIO_API_KEY or pass --api-key"
        )
    return url.rstrip("/"), api_key


# -- install ----------------------------------------------------------------------------
def label_studio_exe(install: bool = True) -> Path:
    """The `label-studio` executable of our own venv, installing it from PyPI on first use."""
    exe = venv_dir() / "bin" / "label-studio"
    if exe.exists():
        return exe
    if not install:
        raise ServerError(f"Label Studio is not installed in {venv_dir()}; run `spanbank server start`")
    venv = venv_dir()
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = venv.parent / "ls-install.log"
    with open(log, "ab") as fh:
        for cmd in (
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "pip"), "install", "--quiet", LS_REQUIREMENT],
        ):
            rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT)
            if rc != 0:
                raise ServerError(
                    f"installing Label Studio failed ({' '.join(cmd[:3])}...); see {log}"
                )
    if not exe.exists():
        raise ServerError(f"Label Studio installed but {exe} is missing; see {log}")
    return exe


# -- process state ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as gone
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _is_label_studio(pid: int) -> bool:
    """Guard against a recycled pid: the process must be a label-studio command."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return _pid_alive(pid)  # no /proc (macOS): trust the pid file
    return b"label-studio" in cmdline or b"label_studio" in cmdline


def healthy(url: str, timeout: float = 3.0) -> bool:
    """True when GET {url}/health answers 200."""
    import httpx

    try:
        return httpx.get(f"{url.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _read_state(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / STATE_FILE).read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def status(data_dir: str | os.PathLike | None = None) -> ServerInfo | None:
    """The running server using `data_dir` (alive and healthy), or None."""
    data = Path(data_dir or default_data_dir()).expanduser().resolve()
    state = _read_state(data)
    pid = _read_pid(data)
    if not state or pid is None or not _pid_alive(pid) or not _is_label_studio(pid):
        return None
    if not healthy(state["url"]):
        return None
    return ServerInfo(
        url=state["url"], pid=pid, data_dir=str(data), env_file=str(env_file_path(data)),
        log_file=str(data / LOG_FILE), reused=True,
    )


def _read_pid(data: Path) -> int | None:
    try:
        return int((data / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _write_private(path: Path, text: str) -> None:
    from spanbank.corpus import write_bytes_atomic

    write_bytes_atomic(text.encode("utf-8"), path, mode=0o600)


# -- start / stop -----------------------------------------------------------------------
def start(
    port: int | None = None,
    data_dir: str | os.PathLike | None = None,
    timeout: float = HEALTH_TIMEOUT_S,
) -> ServerInfo:
    """Start (or reuse) a local Label Studio on 127.0.0.1 with SQLite data in `data_dir`.

    Writes the env file (mode 0600) with LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY and the admin
    login; the admin's password and 40-hex token are generated once per data dir and kept.
    """
    data = Path(data_dir or default_data_dir()).expanduser().resolve()
    running = status(data)
    if running is not None:
        return running
    stale = _read_pid(data)
    if stale is not None and _pid_alive(stale) and _is_label_studio(stale):
        raise ServerError(
            f"a Label Studio (pid {stale}) for {data} is running but not healthy; "
            f"run `spanbank server stop` first (log: {data / LOG_FILE})"
        )
    exe = label_studio_exe()
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    saved = read_env_file(env_file_path(data))
    # credentials stay fixed per data dir: Label Studio keeps the first user's token
    key = saved.get(ENV_KEY) or secrets.token_hex(20)
    password = saved.get("LABEL_STUDIO_PASSWORD") or secrets.token_urlsafe(18)
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", ENV_URL, ENV_KEY)}
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        # credentials through the environment, not argv, so `ps` does not show them
        "LABEL_STUDIO_USERNAME": ADMIN_EMAIL,
        "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_USER_TOKEN": key,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
    })
    cmd = [
        str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
        "--enable-legacy-api-token", "--username", ADMIN_EMAIL,
    ]
    log_path = data / LOG_FILE
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=data,
        )
    (data / PID_FILE).write_text(str(proc.pid))
    _write_private(data / STATE_FILE, json.dumps({"url": url, "port": port, "pid": proc.pid}))
    _write_private(
        env_file_path(data),
        f"# written by `spanbank server start`; keep private\n"
        f"{ENV_URL}={url}\n{ENV_KEY}={key}\n"
        f"LABEL_STUDIO_USERNAME={ADMIN_EMAIL}\nLABEL_STUDIO_PASSWORD={password}\n",
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(
                f"Label Studio exited with code {proc.returncode} while starting; see {log_path}"
            )
        if healthy(url, timeout=2.0):
            return ServerInfo(
                url=url, pid=proc.pid, data_dir=str(data), env_file=str(env_file_path(data)),
                log_file=str(log_path),
            )
        time.sleep(0.5)
    _terminate(proc.pid)
    raise ServerError(f"Label Studio did not become healthy within {timeout:.0f} s; see {log_path}")


def stop(data_dir: str | os.PathLike | None = None, timeout: float = 20.0) -> bool:
    """Stop the server started for `data_dir` (its whole process group); False if none ran."""
    data = Path(data_dir or default_data_dir()).expanduser().resolve()
    pid = _read_pid(data)
    if pid is None:
        return False
    stopped = False
    if _pid_alive(pid) and _is_label_studio(pid):
        _terminate(pid, timeout)
        stopped = True
    with contextlib.suppress(FileNotFoundError):
        (data / PID_FILE).unlink()
    return stopped


def _terminate(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM the process group `pid` leads (start_new_session made pid == pgid), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not _pid_alive(pid):
                break
            time.sleep(0.2)
        else:
            continue
        break
    # workers the leader left behind in its group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
