"""Personal Access Tokens, path prefixes and auth errors against the real local Label Studio."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import jwt
import pytest
from click.testing import CliRunner

from conftest import make_corpus
from spanbank.cli import cli
from spanbank.errors import AuthError, LabelStudioError
from spanbank.gold import run_adjudication
from spanbank.labelstudio import review
from spanbank.labelstudio.client import LabelStudioClient
from spanbank.labelstudio.pull import pull
from spanbank.labelstudio.push import push_batch
from spanbank.labelstudio.workflow import run

pytestmark = pytest.mark.labelstudio

PREFIX = "/ls/"
TEXTS = {f"p{i}": f"Story {i}. “Prices will rise,” the minister said on Monday." for i in range(6)}


class _PrefixHandler(BaseHTTPRequestHandler):
    """Forwards `/ls/...` to the upstream without the prefix (as nginx would); 404 elsewhere."""

    upstream: tuple[str, int]
    seen: list[str]
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: requests carry the token in a header
        pass

    def _answer(self, status: int, headers, data: bytes) -> None:
        self.send_response_only(status)
        for k, v in headers:
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(f"{self.command} {self.path.split('?')[0]}")
        if not self.path.startswith(PREFIX):
            return self._answer(
                404, [("Content-Type", "text/html")], b"<html><h1>Not Found</h1></html>"
            )
        host, port = self.upstream
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn = http.client.HTTPConnection(host, port, timeout=120)
        try:
            conn.request(
                self.command,
                self.path[len(PREFIX) - 1 :],
                body=body or None,
                headers={**headers, "Host": f"{host}:{port}", "Connection": "close"},
            )
            resp = conn.getresponse()
            self._answer(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle


@contextmanager
def prefix_proxy(upstream: str):
    """A loopback reverse proxy serving `upstream` only under /ls/; yields (root URL, paths seen)."""
    parts = urlsplit(upstream)
    seen: list[str] = []
    handler = type(
        "Handler", (_PrefixHandler,), {"upstream": (parts.hostname, parts.port), "seen": seen}
    )
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


def new_pat(url: str, key: str) -> str:
    """A fresh Personal Access Token of the admin (Label Studio allows one: older ones are revoked)."""
    admin = LabelStudioClient(url, key)
    for old in admin.request("GET", "api/token/"):
        admin.request("POST", "api/token/blacklist/", json_body={"refresh": old["token"]})
    return admin.request("POST", "api/token/")["token"]


def revoke(url: str, key: str, pat: str) -> None:
    LabelStudioClient(url, key).request("POST", "api/token/blacklist/", json_body={"refresh": pat})


def forged_access_token() -> str:
    """A JWT access token that looks current to the SDK but that the server refuses (wrong key)."""
    claims = {"token_type": "access", "exp": int(time.time()) + 3600, "jti": "x", "user_id": "1"}
    return jwt.encode(claims, "not-the-server-secret-not-the-server-secret", algorithm="HS256")


@pytest.fixture
def pat(ls_conn):
    return new_pat(*ls_conn)


def _region(text: str, sub: str, label: str, rid: str, extra: dict | None = None) -> dict:
    start = text.index(sub)
    return {
        "id": rid,
        "from_name": "label",
        "to_name": "text",
        "type": "labels",
        "value": {
            "start": start,
            "end": start + len(sub),
            "text": sub,
            "labels": [label],
            **(extra or {}),
        },
    }


def smoke_workflow(client: LabelStudioClient, corpus_dir, project: str) -> None:
    """The whole round trip on one server: push with predictions, pull, an edit, review push."""
    corpus = make_corpus(corpus_dir, TEXTS)
    pushed = run(push_batch(corpus, project, client=client, preannotate="rules"))
    assert pushed["pushed"] == len(TEXTS) and pushed["predictions"] > 0
    task = int(corpus.read("tasks").set_index("article_id").at["p0", "ls_task_id"])
    text = TEXTS["p0"]
    quote = _region(text, "“Prices will rise,”", "QUOTE", "q")
    cue = _region(text, "said", "CUE", "c")
    tag = uuid.uuid4().hex[:6]
    users = [
        client.create_user(f"{n}-{tag}@example.org", f"{n}{tag}")["id"] for n in ("ann", "bob")
    ]
    client.create_annotation(task, [quote, cue], completed_by=users[0])
    second = client.create_annotation(task, [quote, cue], completed_by=users[1])
    assert run(pull(corpus, project, client=client))["new"] == 2
    client.update_annotation(second["id"], result=[quote])  # bob drops the cue: a conflict
    assert run(pull(corpus, project, client=client))["updated"] == 1
    adj = run_adjudication(corpus, "majority", project=project)
    assert adj["articles_with_conflicts"] == 1
    review_push = run(review.push_review(corpus, project, "majority", client=client))
    assert review_push["pushed"] == 1


def test_pat_workflow_under_path_prefix(tmp_path, ls_conn, pat, project_name):
    with prefix_proxy(ls_conn[0]) as (root, seen):
        client = LabelStudioClient(f"{root}/ls/", pat)
        assert client.uses_pat and client.url == f"{root}/ls"
        assert client.project_url(7) == f"{root}/ls/projects/7/data"
        smoke_workflow(client, tmp_path / "c", project_name)
    assert "POST /ls/api/token/refresh/" in seen
    assert [s for s in seen if not s.split(" ", 1)[1].startswith(PREFIX)] == []


def test_pat_without_its_path_prefix_says_check_the_url(ls_conn, pat):
    with prefix_proxy(ls_conn[0]) as (root, _):
        with pytest.raises(LabelStudioError) as err:
            LabelStudioClient(root, pat).whoami()
    assert "with something other than JSON; check the URL and its path prefix" in str(err.value)
    assert pat not in str(err.value)


def test_revoked_pat_is_one_line_with_reason(ls_conn, pat):
    revoke(*ls_conn, pat)
    with pytest.raises(AuthError) as err:
        LabelStudioClient(ls_conn[0], pat).whoami()
    assert str(err.value).startswith(
        "Label Studio refused the Personal Access Token: Token is blacklisted; create a new"
    )
    assert pat not in str(err.value) and "\n" not in str(err.value)


def test_tampered_pat_is_one_line_with_reason(ls_conn, pat):
    head, payload, sig = pat.split(".")
    tampered = f"{head}.{payload}.{sig[:5]}{'A' if sig[5] != 'A' else 'B'}{sig[6:]}"
    with pytest.raises(AuthError) as err:
        LabelStudioClient(ls_conn[0], tampered).whoami()
    assert str(err.value).startswith(
        "Label Studio refused the Personal Access Token: Token is invalid;"
    )


def test_expired_pat_refused_when_client_is_built(ls_conn):
    expired = jwt.encode(
        {"token_type": "refresh", "exp": int(time.time()) - 60, "jti": "y", "user_id": "1"},
        "some-secret-some-secret-some-secret-xx",
        algorithm="HS256",
    )
    with pytest.raises(AuthError) as err:
        LabelStudioClient(ls_conn[0], expired)
    assert str(err.value).startswith(
        "the Personal Access Token cannot be used: API key has expired."
    )
    assert expired not in str(err.value)


def test_cli_revoked_pat_is_one_line(tmp_path, ls_conn, pat):
    make_corpus(tmp_path / "c", {"a1": "He said “yes”."})
    revoke(*ls_conn, pat)
    res = CliRunner().invoke(
        cli,
        [
            "--corpus",
            str(tmp_path / "c"),
            "pull",
            "--project",
            "abc",
            "--url",
            ls_conn[0],
            "--api-key",
            pat,
        ],
    )
    assert res.exit_code == 1 and pat not in res.output
    assert res.output.startswith(
        "Error: Label Studio refused the Personal Access Token: Token is blacklisted;"
    )
    assert len(res.output.strip().splitlines()) == 1


def test_401_mid_run_refreshes_once_and_retries(ls_conn, pat):
    client = LabelStudioClient(ls_conn[0], pat)
    me = client.whoami()
    client._tokens._access_token = forged_access_token()  # as if expired on the server's clock
    assert client.whoami()["id"] == me["id"]
    assert client._tokens._access_token != forged_access_token()


def test_401_mid_run_with_a_revoked_pat_fails_after_one_refresh(ls_conn, pat):
    client = LabelStudioClient(ls_conn[0], pat)
    client.whoami()
    revoke(*ls_conn, pat)
    client._tokens._access_token = forged_access_token()
    with pytest.raises(AuthError, match="Token is blacklisted"):
        client.whoami()


def test_legacy_token_on_pat_only_organisation(ls_conn, pat):
    url, key = ls_conn
    admin = LabelStudioClient(url, pat)  # the legacy key cannot turn legacy tokens back on
    before = admin.request("GET", "api/jwt/settings")
    try:
        admin.request(
            "POST", "api/jwt/settings", json_body={**before, "legacy_api_tokens_enabled": False}
        )
        with pytest.raises(AuthError) as err:
            LabelStudioClient(url, key).whoami()
    finally:
        admin.request("POST", "api/jwt/settings", json_body=before)
    assert str(err.value) == (
        "Label Studio refused the API key: Authentication token no longer valid: legacy token "
        "authentication has been disabled for this organization; use a Personal Access Token "
        "(Label Studio: Account & Settings) as LABEL_STUDIO_API_KEY, or enable legacy tokens in "
        "the organisation's API token settings"
    )
    assert key not in str(err.value)
    assert LabelStudioClient(url, key).whoami()  # restored


OLD_LS = "1.20"  # the oldest Label Studio the README promises; CI sets SPANBANK_LS_MATRIX=1


@pytest.fixture(scope="module")
def old_ls(tmp_path_factory):
    """(url, key) of a local Label Studio 1.20.x in its own cached venv (installed on first use)."""
    from spanbank.labelstudio import server

    cache = server.cache_dir() / f"ls-{OLD_LS}"
    exe = cache / "ls-venv" / "bin" / "label-studio"
    if not exe.exists():
        venv = cache / "ls-venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", f"label-studio=={OLD_LS}.*"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    data = tmp_path_factory.mktemp("ls-old")
    saved = os.environ.get(server.ENV_CACHE)
    os.environ[server.ENV_CACHE] = str(cache)  # server.start takes the venv from the cache dir
    try:
        info = server.start(data_dir=data)
    finally:
        if saved is None:
            os.environ.pop(server.ENV_CACHE)
        else:
            os.environ[server.ENV_CACHE] = saved
    try:
        yield info.url, server.read_env_file(info.env_file)[server.ENV_KEY]
    finally:
        server.stop(data)


@pytest.mark.skipif(
    not os.environ.get("SPANBANK_LS_MATRIX"), reason="set SPANBANK_LS_MATRIX=1 (CI does)"
)
def test_workflow_on_label_studio_1_20(tmp_path, old_ls, project_name):
    client = LabelStudioClient(*old_ls)
    assert client.request("GET", "api/version")["release"].startswith(OLD_LS + ".")
    smoke_workflow(client, tmp_path / "c", project_name)
