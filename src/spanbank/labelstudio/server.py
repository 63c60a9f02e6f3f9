"""The embedded local Label Studio: install into its own venv, start, stop, and find its credentials."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from spanbank.errors import LabelStudioError, ServerError
from spanbank.procs import pid_alive

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
LOCK_FILE = "server.lock"  # held by start and stop: two starts at once made two servers
INSTALLING = "ls-venv.installing"  # beside the venv while pip runs: a killed install is redone
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
# Label Studio 1.23 reads each setting NAME from LABEL_STUDIO_NAME, HEARTEX_NAME or NAME, in
# that order (core/utils/params.py get_env): the prefixed name wins over whatever the user's
# shell exports. Each LABEL_STUDIO_ name below is read in label_studio/core/settings/base.py.
PRIVATE_SETTINGS = {
    "LABEL_STUDIO_SENTRY_DSN": "",  # server error reports (they carried e-mails and article text)
    "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",  # browser error reports
    "LABEL_STUDIO_COLLECT_ANALYTICS": "false",  # a POST per API call; Google Analytics on login
    "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",  # PyPI request at start
    "LABEL_STUDIO_FEATURE_FLAGS_OFFLINE": "true",  # flags from the package, not a flag service
    "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",  # accounts only by invite
    "LABEL_STUDIO_ALLOWED_HOSTS": ",".join(LOOPBACK_HOSTS),  # refuse foreign Host: (DNS rebinding)
    # our settings module (shipped in spanbank/data/labelstudio) answers /heidi-tips/ locally
    "DJANGO_SETTINGS_MODULE": "spanbank_ls_settings",
}
LS_SETTINGS_DIR = Path(__file__).parent.parent / "data" / "labelstudio"
Progress = Callable[[str], None]


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
    port_changed: bool = False

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
        raise LabelStudioError(f"no API key for {url}: set LABEL_STUDIO_API_KEY or pass --api-key")
    return url.rstrip("/"), api_key


@contextlib.contextmanager
def _held(lock: Path, waiting: str, progress: Progress | None):
    """Hold an exclusive flock on the file `lock` (made if missing, never removed), saying
    `waiting` once if another process holds it."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(progress, waiting)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- install ----------------------------------------------------------------------------
def label_studio_exe(progress: Progress | None = None) -> Path:
    """The `label-studio` executable of our own venv, installing it from PyPI on first use
    (one install at a time; pip finishes one that was killed half-way)."""
    venv = venv_dir()
    exe = venv / "bin" / "label-studio"
    if _installed(venv, exe):
        return exe
    venv.parent.mkdir(parents=True, exist_ok=True)
    with _held(venv.parent / "ls-venv.lock", "waiting for another Label Studio install", progress):
        if not _installed(venv, exe):
            (venv.parent / INSTALLING).touch()
            _install(venv, exe, progress)
            (venv.parent / INSTALLING).unlink()
    return exe


def _installed(venv: Path, exe: Path) -> bool:
    """The venv holds a finished install: its executable, and no install under way or killed.
    A venv made otherwise (another Label Studio version put there by hand) is taken as it is."""
    return exe.exists() and not (venv.parent / INSTALLING).exists()


def _install(venv: Path, exe: Path, progress: Progress | None) -> None:
    # into the venv as it is, never removed: another data dir's server may be running from it
    log = venv.parent / "ls-install.log"
    _say(progress, f"installing {LS_REQUIREMENT} into {venv} (first start only, a minute or two)")
    for what, cmd in (
        ("creating its virtual environment", [sys.executable, "-m", "venv", str(venv)]),
        (
            "installing Label Studio",
            [str(venv / "bin" / "pip"), "install", "--quiet", LS_REQUIREMENT],
        ),
    ):
        if run_with_progress(cmd, log, what, progress) != 0:
            raise ServerError(f"installing Label Studio failed ({' '.join(cmd[:3])}...); see {log}")
    if not exe.exists():
        raise ServerError(f"Label Studio installed but {exe} is missing; see {log}")


def run_with_progress(
    cmd: list[str], log: Path, what: str, progress: Progress | None, every: float = 10.0
) -> int:
    """Run `cmd` with output to `log`, calling `progress(what)` at its start and every `every` s."""
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        while True:
            if progress:
                progress(what)
            try:
                return proc.wait(timeout=every)
            except subprocess.TimeoutExpired:
                continue


# -- process state ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:`port` (a closed socket in TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _proc_start(pid: int) -> str | None:
    """When process `pid` started (kernel ticks from /proc, else `ps`): with the pid, its identity."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        pass
    try:
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _settings_stamp() -> str:
    """A digest of the settings a server is started with, so an older one is told apart."""
    module = (LS_SETTINGS_DIR / "spanbank_ls_settings.py").read_bytes()
    return hashlib.sha256(
        json.dumps(PRIVATE_SETTINGS, sort_keys=True).encode() + module
    ).hexdigest()[:16]


def _is_ours(pid: int | None, state: dict | None, data: Path) -> bool:
    """True when `pid` is alive and is the Label Studio `state` recorded at start (same pid,
    same start time, a label-studio command on the recorded port, running in `data`): never
    someone else's process, nor the server of the folder `data` was copied from."""
    if pid is None or not state or state.get("pid") != pid or not pid_alive(pid):
        return False
    # state written before start times were recorded: the command line check below decides
    if "proc_start" in state and _proc_start(pid) != state["proc_start"]:
        return False
    try:  # the server runs in its data dir; a copy's files name the original's process
        if not os.path.samefile(f"/proc/{pid}/cwd", data):
            return False
    except OSError:  # no /proc (macOS)
        if state.get("data_dir", str(data)) != str(data):
            return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): pid and start time matched
    port = str(state.get("port")).encode()
    return any(b"label-studio" in a for a in argv) and any(
        a == b"--port" and b == port for a, b in zip(argv, argv[1:], strict=False)
    )


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
    data = _resolve(data_dir)
    state = _read_state(data)
    pid = _read_pid(data)
    if not _is_ours(pid, state, data) or not healthy(state["url"]):
        return None
    return _info(data, state, reused=True)


def _resolve(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir or default_data_dir()).expanduser().resolve()


def _info(data: Path, state: dict, **extra) -> ServerInfo:
    return ServerInfo(
        url=state["url"],
        pid=state["pid"],
        data_dir=str(data),
        env_file=str(env_file_path(data)),
        log_file=str(data / LOG_FILE),
        **extra,
    )


def _read_pid(data: Path) -> int | None:
    try:
        return int((data / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _write_private(path: Path, text: str) -> None:
    from spanbank.corpus.store import write_bytes_atomic

    write_bytes_atomic(text.encode("utf-8"), path, mode=0o600)


# -- start / stop -----------------------------------------------------------------------
def start(
    port: int | None = None,
    data_dir: str | os.PathLike | None = None,
    timeout: float = HEALTH_TIMEOUT_S,
    progress: Progress | None = None,
) -> ServerInfo:
    """Start (or reuse) a local Label Studio on 127.0.0.1 with SQLite data in `data_dir`.

    Private by default (PRIVATE_SETTINGS: no telemetry, error reports, version check or open
    signup; loopback Host names only). The port is kept across restarts (remembered beside the
    data; a new one only when another process holds it). Writes the env file (mode 0600) with
    LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY and the admin login; the admin's password and
    40-hex token are generated once per data dir and kept. `progress(message)` is called
    while it installs and starts, never when a running server is reused.
    """
    data = _resolve(data_dir)
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    waiting = f"waiting for another `spanbank server start` or `stop` of {data}"
    with _held(data / LOCK_FILE, waiting, progress):
        return _start(data, port, timeout, progress)


def _start(data: Path, port, timeout: float, progress: Progress | None) -> ServerInfo:
    state = _read_state(data) or {}
    pid = _read_pid(data)
    if _is_ours(pid, state, data):
        if state.get("settings") == _settings_stamp() and healthy(state["url"]):
            if port and port != state.get("port"):
                mine = Path(data).resolve() == default_data_dir().resolve()
                stop = "spanbank server stop" + (
                    "" if mine else f" --data-dir {shlex.quote(str(data))}"
                )
                raise ServerError(
                    f"Label Studio for {data} already runs on port {state['port']}; "
                    f"run `{stop}` first to change it"
                )
            return _info(data, state, reused=True)
        if state.get("settings") == _settings_stamp():
            raise ServerError(
                f"a Label Studio (pid {pid}) for {data} is running but not healthy; "
                f"run `spanbank server stop` first (log: {data / LOG_FILE})"
            )
        _say(
            progress, "restarting Label Studio started by an older spanbank, with current settings"
        )
        _terminate(pid)
        _wait_port_released(state.get("port"))
    port, changed = _choose_port(port, state.get("port"), progress)  # before a long install
    exe = label_studio_exe(progress=progress)
    saved = read_env_file(env_file_path(data))
    # credentials stay fixed per data dir: Label Studio keeps the first user's token
    key = saved.get(ENV_KEY) or secrets.token_hex(20)
    password = saved.get("LABEL_STUDIO_PASSWORD") or secrets.token_urlsafe(18)
    url = f"http://127.0.0.1:{port}"
    log_path = data / LOG_FILE
    os.chmod(data, 0o700)  # its database holds every account: made private once a start goes ahead
    _say(progress, f"starting Label Studio at {url}")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            _command(exe, port),
            env=_server_env(data, password, key),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=data,
        )
    state = {
        "url": url,
        "port": port,
        "pid": proc.pid,
        "data_dir": str(data),
        "proc_start": _proc_start(proc.pid),
        "started_at": time.time(),
        "settings": _settings_stamp(),
    }
    (data / PID_FILE).write_text(str(proc.pid))
    _write_private(data / STATE_FILE, json.dumps(state))
    _write_private(
        env_file_path(data),
        f"# written by `spanbank server start`; keep private\n"
        f"{ENV_URL}={url}\n{ENV_KEY}={key}\n"
        f"LABEL_STUDIO_USERNAME={ADMIN_EMAIL}\nLABEL_STUDIO_PASSWORD={password}\n",
    )
    try:
        _wait_healthy(proc, url, log_path, timeout, progress)
    except KeyboardInterrupt:  # Ctrl-C (or SIGTERM) while it boots: stop what this start began
        _terminate(proc.pid)
        with contextlib.suppress(FileNotFoundError):
            (data / PID_FILE).unlink()
        raise
    return _info(data, state, port_changed=changed)


def _say(progress: Progress | None, message: str) -> None:
    if progress:
        progress(message)


def _choose_port(
    asked: int | None, remembered: int | None, progress: Progress | None
) -> tuple[int, bool]:
    """(port, changed): the asked port, else the remembered one while free, else a free one."""
    if asked:
        if not _port_free(asked):
            raise ServerError(f"port {asked} on 127.0.0.1 is in use; pick another with --port")
        return asked, bool(remembered) and asked != remembered
    if remembered and _port_free(remembered):
        return remembered, False
    port = _free_port()
    if remembered:
        _say(progress, f"port {remembered} is in use by another program; using {port}")
    return port, bool(remembered)


def _command(exe: Path, port: int) -> list[str]:
    return [
        str(exe),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enable-legacy-api-token",
        "--username",
        ADMIN_EMAIL,
    ]


def _server_env(data: Path, password: str, key: str) -> dict[str, str]:
    """The server's environment: ours minus HOST and the client variables, plus PRIVATE_SETTINGS."""
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", ENV_URL, ENV_KEY)}
    env.update(PRIVATE_SETTINGS)
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data),
            # credentials through the environment, not argv, so `ps` does not show them
            "LABEL_STUDIO_USERNAME": ADMIN_EMAIL,
            "LABEL_STUDIO_PASSWORD": password,
            "LABEL_STUDIO_USER_TOKEN": key,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(LS_SETTINGS_DIR), env.get("PYTHONPATH")])
            ),
        }
    )
    return env


def _wait_healthy(
    proc: subprocess.Popen, url: str, log_path: Path, timeout: float, progress: Progress | None
) -> None:
    """Wait until `url` answers /health; stop the process and raise if it exits or times out."""
    deadline = time.monotonic() + timeout
    next_note = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(
                f"Label Studio exited with code {proc.returncode} while starting; see {log_path}"
            )
        if healthy(url, timeout=2.0):
            return
        if time.monotonic() >= next_note:
            _say(progress, "waiting for Label Studio to answer")
            next_note = time.monotonic() + 10.0
        time.sleep(0.5)
    _terminate(proc.pid)
    raise ServerError(f"Label Studio did not become healthy within {timeout:.0f} s; see {log_path}")


def stop(data_dir: str | os.PathLike | None = None, timeout: float = 20.0) -> bool:
    """Stop the server started for `data_dir` (its whole process group); False if none ran.

    Signals only the process recorded at start (pid, start time, port): a pid file naming
    another process, e.g. someone else's Label Studio after a pid was reused, is left alone.
    """
    data = _resolve(data_dir)
    if not data.is_dir():
        return False
    with _held(data / LOCK_FILE, f"waiting for another `spanbank server start` of {data}", None):
        return _stop(data, timeout)


def _stop(data: Path, timeout: float) -> bool:
    pid = _read_pid(data)
    if pid is None:
        return False
    stopped = False
    state = _read_state(data)
    if _is_ours(pid, state, data):
        _terminate(pid, timeout)
        _wait_port_released(state.get("port"))
        stopped = True
    with contextlib.suppress(FileNotFoundError):
        (data / PID_FILE).unlink()
    return stopped


def _wait_port_released(port: int | None, timeout: float = 10.0) -> None:
    """Wait (bounded) until the stopped server's port is free, so a restart can keep it."""
    deadline = time.monotonic() + timeout
    while port and not _port_free(port) and time.monotonic() < deadline:
        time.sleep(0.2)


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
            if not pid_alive(pid):
                break
            time.sleep(0.2)
        else:
            continue
        break
    # workers the leader left behind in its group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# -- accounts ---------------------------------------------------------------------------
@dataclass
class NewUser:
    """An annotator account just created on the local server, with its one-time password."""

    email: str
    password: str
    login_url: str


# what Django's EmailValidator accepts, quoted names left out: an unquoted dot-atom, then a
# domain with a dot, localhost or an [address]; Label Studio's signup form answers others with
# its page again, giving no reason
_EMAIL = re.compile(
    r"(?!\.)(?!.*\.\.)[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+(?<!\.)@(?:localhost|\[[0-9A-Fa-f:.]+\]"
    r"|(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}(?<!-))"
)
MAX_EMAIL = 320  # Django's limit


def _idna(email: str) -> str:
    """`email` with its domain in ASCII (`münchen.de` -> `xn--mnchen-3ya.de`), as Django checks it."""
    name, at, domain = email.rpartition("@")
    try:
        return f"{name}{at}{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return email


def add_user(email: str, data_dir: str | os.PathLike | None = None) -> NewUser:
    """Create an account on the local server with a random password, through its invite link.

    Open signup is off (PRIVATE_SETTINGS), so this signs up with the organisation's invite
    token as an invited person would; the password is returned once and stored nowhere.
    """
    import httpx

    from spanbank.labelstudio.client import LabelStudioClient

    info = status(data_dir)
    if info is None:
        raise ServerError("no local Label Studio is running; run `spanbank server start` first")
    email = email.strip()
    if len(email) > MAX_EMAIL or not _EMAIL.fullmatch(
        _idna(email)
    ):  # Label Studio's form refuses these, giving no reason
        raise ServerError(
            f"{email!r} is not an e-mail address Label Studio takes (name@domain.tld: letters, "
            "digits and !#$%&'*+-/=?^_`{|}~. before the @)"
        )
    client = LabelStudioClient(*connection(env_file=info.env_file))
    if any((u.get("email") or "").lower() == email.lower() for u in client.list_users()):
        raise ServerError("a user with that e-mail already exists on the local Label Studio")
    token = client.request("GET", "api/invite")["token"]
    password = secrets.token_urlsafe(12)
    signup = f"{info.url}/user/signup/?token={token}"
    with httpx.Client(timeout=30.0) as web:
        web.get(signup)
        resp = web.post(
            signup,
            headers={"Referer": signup},
            data={
                "csrfmiddlewaretoken": web.cookies.get("csrftoken", ""),
                "email": email,
                "password": password,
            },
        )
    if resp.status_code != 302:
        raise ServerError(
            f"Label Studio refused the new account ({resp.status_code}); see {info.log_file}"
        )
    return NewUser(email=email, password=password, login_url=f"{info.url}/user/login/")
