"""The local Label Studio (spanbank.labelstudio.server), connection resolution, and connection errors."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from spanbank.cli import cli
from spanbank.errors import AuthError, LabelStudioError, ServerError
from spanbank.labelstudio import server
from spanbank.labelstudio.client import LabelStudioClient


def test_connection_precedence(tmp_path, monkeypatch):
    env_file = tmp_path / "spanbank.env"
    env_file.write_text("LABEL_STUDIO_URL=http://file:1/\nLABEL_STUDIO_API_KEY=filekey\n")
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    assert server.connection(env_file=env_file) == ("http://file:1", "filekey")
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://env:2")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "envkey")
    assert server.connection(env_file=env_file) == ("http://env:2", "envkey")
    assert server.connection("http://flag:3", "flagkey", env_file=env_file) == (
        "http://flag:3",
        "flagkey",
    )
    monkeypatch.delenv("LABEL_STUDIO_URL")
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    with pytest.raises(LabelStudioError, match="spanbank server start"):
        server.connection(env_file=tmp_path / "missing.env")


def test_unreachable_server_one_line_error():
    port = server._free_port()
    client = LabelStudioClient(f"http://127.0.0.1:{port}", "k" * 40, backoff=0.01)
    with pytest.raises(LabelStudioError) as err:
        client.whoami()
    msg = str(err.value)
    assert msg == (
        f"cannot reach Label Studio at http://127.0.0.1:{port}; is it running? "
        "(`spanbank server start`)"
    )
    assert "k" * 40 not in msg


def test_cli_push_unreachable_is_one_line(tmp_path):
    from conftest import make_corpus

    make_corpus(tmp_path / "c", {"a1": "He said “yes”."})
    port = server._free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_URL": f"http://127.0.0.1:{port}",
        "LABEL_STUDIO_API_KEY": "s3cr3t" * 5,
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "spanbank",
            "--corpus",
            str(tmp_path / "c"),
            "push",
            "--project",
            "abc",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "cannot reach Label Studio" in out.stderr
    assert "s3cr3t" not in out.stderr + out.stdout


@pytest.mark.labelstudio
def test_server_running_and_env_file(ls_server, ls_conn):
    assert server.healthy(ls_server.url)
    mode = stat.S_IMODE(os.stat(ls_server.env_file).st_mode)
    assert mode == 0o600
    values = server.read_env_file(ls_server.env_file)
    assert values["LABEL_STUDIO_URL"] == ls_server.url and len(values["LABEL_STUDIO_API_KEY"]) == 40
    assert ls_server.url.startswith("http://127.0.0.1:")
    again = server.start(data_dir=ls_server.data_dir)  # a running server is reused
    assert again.reused and again.pid == server.status(ls_server.data_dir).pid
    # the key never shows in the process list or the log
    key = ls_conn[1]
    assert key not in open(f"/proc/{again.pid}/cmdline", "rb").read().decode(errors="replace")
    assert key not in open(ls_server.log_file, encoding="utf-8", errors="replace").read()


@pytest.mark.labelstudio
def test_server_cli_status_and_env(ls_server, ls_conn):
    runner = CliRunner()
    res = runner.invoke(cli, ["server", "status", "--data-dir", ls_server.data_dir])
    assert res.exit_code == 0 and ls_server.url in res.output and ls_conn[1] not in res.output
    res = runner.invoke(cli, ["server", "env", "--data-dir", ls_server.data_dir])
    assert res.output.splitlines() == [
        f"export LABEL_STUDIO_URL={ls_server.url}",
        f"export LABEL_STUDIO_API_KEY={ls_conn[1]}",
    ]


@pytest.mark.labelstudio
def test_wrong_key_is_auth_error_without_key(ls_server):
    bad = "0123456789abcdef" * 2 + "deadbeef"
    with pytest.raises(AuthError) as err:
        LabelStudioClient(ls_server.url, bad).whoami()
    assert str(err.value) == "Label Studio refused the API key (check LABEL_STUDIO_API_KEY)"
    assert bad not in repr(err.value)
    assert bad not in repr(LabelStudioClient(ls_server.url, bad))


@pytest.mark.labelstudio
def test_cli_wrong_key(tmp_path, ls_server):
    from conftest import make_corpus

    make_corpus(tmp_path / "c", {"a1": "He said “yes”."})
    res = CliRunner().invoke(
        cli,
        [
            "--corpus",
            str(tmp_path / "c"),
            "pull",
            "--project",
            "abc",
            "--url",
            ls_server.url,
            "--api-key",
            "wrongwrongwrong",
        ],
    )
    assert res.exit_code == 1
    assert (
        res.output.strip() == "Error: Label Studio refused the API key (check LABEL_STUDIO_API_KEY)"
    )


def test_status_without_server(tmp_path):
    assert server.status(tmp_path / "none") is None
    assert server.stop(tmp_path / "none") is False
    res = CliRunner().invoke(cli, ["server", "status", "--data-dir", str(tmp_path / "none")])
    assert res.exit_code == 3 and "not running" in res.output


def _dummy(*argv: str, cwd=None) -> subprocess.Popen:
    """A sleeping Python process whose command line mentions label-studio (someone else's)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", *argv],
        start_new_session=True,
        cwd=cwd,
    )
    deadline = time.monotonic() + 30
    while b"label-studio" not in _cmdline(proc.pid) and time.monotonic() < deadline:
        assert proc.poll() is None, f"dummy exited with {proc.returncode}"
        time.sleep(0.05)
    return proc


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_stop_signals_only_its_own_process(tmp_path):
    data = tmp_path / "srv"
    data.mkdir()
    others = []
    try:
        # a pid file naming another user's label-studio, with no state of ours
        other = _dummy("label-studio")
        others.append(other)
        (data / server.PID_FILE).write_text(str(other.pid))
        assert server.stop(data) is False and other.poll() is None
        assert server.status(data) is None
        # state naming that pid and port, but recorded for a process that started at another time
        other = _dummy("label-studio", "start", "--port", "18999", cwd=data)
        others.append(other)
        (data / server.PID_FILE).write_text(str(other.pid))
        state = {
            "url": "http://127.0.0.1:18999",
            "port": 18999,
            "pid": other.pid,
            "proc_start": "1",
        }
        (data / server.STATE_FILE).write_text(json.dumps(state))
        assert server.stop(data) is False and other.poll() is None
        # the same state with its true start time is ours: stop signals it
        (data / server.PID_FILE).write_text(str(other.pid))
        state["proc_start"] = server._proc_start(other.pid)
        (data / server.STATE_FILE).write_text(json.dumps(state))
        # a copy of the data dir (`cp -a` of a running server's) names that process too: its
        # stop killed the original's server, its status and start took it for its own (hunt H, 1)
        copy = tmp_path / "copy"
        shutil.copytree(data, copy)
        assert server.stop(copy) is False and other.poll() is None
        assert server.status(copy) is None
        seen = (other.poll(), _cmdline(other.pid), server._proc_start(other.pid), state)
        assert server.stop(data) is True, seen
        assert other.wait(timeout=30) is not None
    finally:
        for proc in others:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def test_port_is_remembered_unless_taken():
    free = server._free_port()
    assert server._choose_port(None, free, None) == (free, False)
    notes = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        port, changed = server._choose_port(None, busy, notes.append)
        assert (
            port != busy
            and changed
            and notes == [f"port {busy} is in use by another program; using {port}"]
        )
        with pytest.raises(ServerError, match=f"port {busy} on 127.0.0.1 is in use"):
            server._choose_port(busy, None, None)


def test_install_steps_report_progress(tmp_path):
    """A long install step calls progress again while it runs (the CLI prints elapsed time)."""
    flag = tmp_path / "go"
    notes = []

    def progress(message):
        notes.append(message)
        if len(notes) == 2:
            flag.touch()  # let the step finish only after a second report

    code = f"import pathlib, time\nwhile not pathlib.Path({str(flag)!r}).exists(): time.sleep(0.05)"
    rc = server.run_with_progress(
        [sys.executable, "-c", code], tmp_path / "log", "installing", progress, every=0.1
    )
    assert rc == 0 and notes == ["installing", "installing"]


@pytest.mark.labelstudio
def test_restart_keeps_the_port(ls_server):
    server.stop(ls_server.data_dir)
    assert server.status(ls_server.data_dir) is None
    notes = []
    again = server.start(data_dir=ls_server.data_dir, progress=notes.append)
    assert again.url == ls_server.url and not again.port_changed and not again.reused
    assert notes[0] == f"starting Label Studio at {ls_server.url}"
    # a server started with other settings (an older spanbank) is restarted with the current ones
    state_file = os.path.join(ls_server.data_dir, server.STATE_FILE)
    state = json.load(open(state_file))
    with open(state_file, "w") as fh:
        json.dump({**state, "settings": "older"}, fh)
    notes.clear()
    third = server.start(data_dir=ls_server.data_dir, progress=notes.append)
    assert notes[0].startswith("restarting Label Studio") and third.pid != again.pid
    assert third.url == ls_server.url and server.status(ls_server.data_dir).pid == third.pid


@pytest.mark.labelstudio
def test_cli_start_when_running_says_so_at_once(ls_server):
    out = subprocess.run(
        [sys.executable, "-m", "spanbank", "server", "start", "--data-dir", ls_server.data_dir],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stderr == ""
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"Label Studio already running at {ls_server.url} (pid ")
    assert lines[1] == (
        "log in as admin@localhost; password: "
        f"`spanbank server password --data-dir {ls_server.data_dir}`"
    )
    pw = subprocess.run(
        [sys.executable, "-m", "spanbank", "server", "password", "--data-dir", ls_server.data_dir],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pw.stdout.strip() == server.read_env_file(ls_server.env_file)["LABEL_STUDIO_PASSWORD"]


def test_cli_status_exits_nonzero_when_not_running(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "spanbank", "server", "status", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and out.stdout.startswith("not running")


@pytest.mark.labelstudio
def test_two_starts_at_once_make_one_server_whose_key_works(tmp_path, ls_server):
    """Two `server start` of one fresh data dir at once (two terminals, `make demo` beside a
    test run): the second waits for the first and reuses its server. Before the lock, the second
    said the first's server was "running but not healthy" and exited 1, or both started one."""
    from spanbank.labelstudio.client import LabelStudioClient

    data = tmp_path / "srv"
    cmd = [sys.executable, "-m", "spanbank", "server", "start", "--data-dir", str(data)]
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    time.sleep(0.5)
    runs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outs = [p.communicate(timeout=300)[0] for p in runs]
        assert [p.returncode for p in runs] == [0, 0], outs
        info = server.status(data)
        assert info is not None
        assert f"Label Studio running at {info.url} (pid {info.pid})" in outs[0]
        assert "waiting for another `spanbank server start`" in outs[1]
        assert f"Label Studio already running at {info.url} (pid {info.pid})" in outs[1]
        ours = [p for p in _label_studios() if str(data) in _cwd(p)]
        assert ours == [info.pid], ours
        key = server.read_env_file(data / server.ENV_FILE)[server.ENV_KEY]
        assert LabelStudioClient(info.url, key).whoami()["email"] == server.ADMIN_EMAIL
    finally:
        for p in runs:
            if p.poll() is None:
                p.kill()
        server.stop(data)


def _label_studios() -> list[int]:
    """Pids of the running processes whose command line is a Label Studio server's."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and b"label-studio\0start" in _cmdline(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def test_a_venv_put_there_otherwise_is_used_as_it_is(tmp_path, monkeypatch):
    """The install check must not touch a venv it did not make: CI's Label Studio 1.20 venv
    (tests/test_auth.py) was upgraded to 1.23 by a check that wanted its own marker. A killed
    install (its marker left beside the venv) is the one case that runs pip again."""
    monkeypatch.setenv(server.ENV_CACHE, str(tmp_path))
    exe = tmp_path / "ls-venv" / "bin" / "label-studio"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert server.label_studio_exe() == exe
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no pip run, no log


def test_a_start_that_fails_leaves_an_existing_data_dir_s_mode(tmp_path):
    """`start --data-dir DIR` made DIR 0700 before anything was checked, even when the start
    then failed on a port in use (hunt H, finding 7)."""
    import socket

    data = tmp_path / "shared"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ServerError, match="is in use; pick another with --port"):
            server.start(port=busy.getsockname()[1], data_dir=data)
    assert data.stat().st_mode & 0o777 == 0o755


def test_an_interrupted_start_stops_the_server_it_began(tmp_path, monkeypatch):
    """Ctrl-C while Label Studio booted left it booting: a second start said "running but not
    healthy", then it came up on its own (hunt H, finding 4)."""
    exe = tmp_path / "label-studio"
    exe.write_text("#!/bin/sh\nexec sleep 120\n")
    exe.chmod(0o755)
    monkeypatch.setattr(server, "label_studio_exe", lambda progress=None: exe)
    calls = []

    def interrupted(url, timeout=3.0):
        calls.append(url)
        raise KeyboardInterrupt

    monkeypatch.setattr(server, "healthy", interrupted)
    data = tmp_path / "srv"
    with pytest.raises(KeyboardInterrupt):
        server.start(port=server._free_port(), data_dir=data)
    state = json.loads((data / server.STATE_FILE).read_text())
    assert calls and not (data / server.PID_FILE).exists()
    deadline = time.monotonic() + 30
    while server.pid_alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not server.pid_alive(state["pid"])
