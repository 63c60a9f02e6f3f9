"""The local Label Studio (spanbank.server), connection resolution, and connection errors."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner

from spanbank import server
from spanbank.cli import cli
from spanbank.errors import AuthError, LabelStudioError
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
    assert server.connection("http://flag:3", "flagkey", env_file=env_file) == ("http://flag:3", "flagkey")
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
    assert msg == (f"cannot reach Label Studio at http://127.0.0.1:{port}; is it running? "
                   "(`spanbank server start`)")
    assert "k" * 40 not in msg


def test_cli_push_unreachable_is_one_line(tmp_path):
    from conftest import make_corpus

    make_corpus(tmp_path / "c", {"a1": "He said “yes”."})
    port = server._free_port()
    env = {**os.environ, "LABEL_STUDIO_URL": f"http://127.0.0.1:{port}", "LABEL_STUDIO_API_KEY": "s3cr3t" * 5}
    out = subprocess.run([sys.executable, "-m", "spanbank", "--corpus", str(tmp_path / "c"), "push",
                          "--project", "abc"], env=env, capture_output=True, text=True, timeout=60)
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
    assert again.reused and again.pid == ls_server.pid
    # the key never shows in the process list or the log
    key = ls_conn[1]
    assert key not in open(f"/proc/{ls_server.pid}/cmdline", "rb").read().decode(errors="replace")
    assert key not in open(ls_server.log_file, encoding="utf-8", errors="replace").read()


@pytest.mark.labelstudio
def test_server_cli_status_and_env(ls_server, ls_conn):
    runner = CliRunner()
    res = runner.invoke(cli, ["server", "status", "--data-dir", ls_server.data_dir])
    assert res.exit_code == 0 and ls_server.url in res.output and ls_conn[1] not in res.output
    res = runner.invoke(cli, ["server", "env", "--data-dir", ls_server.data_dir])
    assert res.output.splitlines() == [f"export LABEL_STUDIO_URL={ls_server.url}",
                                       f"export LABEL_STUDIO_API_KEY={ls_conn[1]}"]


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
    res = CliRunner().invoke(cli, ["--corpus", str(tmp_path / "c"), "pull", "--project", "abc",
                                   "--url", ls_server.url, "--api-key", "wrongwrongwrong"])
    assert res.exit_code == 1
    assert res.output.strip() == "Error: Label Studio refused the API key (check LABEL_STUDIO_API_KEY)"


def test_status_without_server(tmp_path):
    assert server.status(tmp_path / "none") is None
    assert server.stop(tmp_path / "none") is False
    res = CliRunner().invoke(cli, ["server", "status", "--data-dir", str(tmp_path / "none")])
    assert res.exit_code == 3 and "not running" in res.output
