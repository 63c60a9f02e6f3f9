"""The local Label Studio stays private: nothing leaves the machine, no open signup, loopback Host
names only, annotator accounts only through `spanbank server add-user` (docs/SECURITY.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from click.testing import CliRunner

from _helpers import region
from _sink import NO_PROXY, Sink, canary, private_server, process_environ
from conftest import _test_data_dir, make_corpus
from spanbank.cli import cli
from spanbank.labelstudio import server
from spanbank.labelstudio.client import LabelStudioClient


@pytest.fixture
def private(request):
    """(ServerInfo, Sink): a Label Studio whose outbound traffic all goes to the sink."""
    return private_server(request.config, Path(f"{_test_data_dir()}-private"))


def _settings_source() -> str:
    found = sorted(
        server.venv_dir().glob("lib/python*/site-packages/label_studio/core/settings/*.py")
    )
    if not found:
        pytest.skip("Label Studio is not installed")
    return "\n".join(p.read_text("utf-8") for p in found)


def test_private_settings_are_label_studio_settings():
    """Each variable we set is one Label Studio 1.23 reads (a misspelt one would silently do nothing)."""
    source = _settings_source()
    for name in server.PRIVATE_SETTINGS:
        if name == "DJANGO_SETTINGS_MODULE":
            continue
        bare = name.removeprefix("LABEL_STUDIO_")
        assert re.search(rf"get_(bool_)?env(_list)?\('{bare}'", source), (
            f"{bare} is not read by Label Studio"
        )


def _form_post(web: httpx.Client, url: str, **fields) -> httpx.Response:
    """GET a Django form page for its CSRF cookie, then POST `fields` to it as a browser would."""
    web.get(url)
    return web.post(
        url,
        headers={"Referer": url},
        data={"csrfmiddlewaretoken": web.cookies.get("csrftoken", ""), **fields},
    )


@pytest.mark.labelstudio
def test_signup_without_invite_is_refused(ls_server, ls_client):
    email = f"walkin-{uuid.uuid4().hex[:6]}@people.example"
    with httpx.Client(timeout=30) as web:
        resp = _form_post(
            web, f"{ls_server.url}/user/signup/", email=email, password="Walk-in-pass-123"
        )
    assert resp.status_code == 403
    assert email not in {u.get("email") for u in ls_client.list_users()}


@pytest.mark.labelstudio
def test_foreign_host_header_is_refused(ls_server, ls_conn):
    auth = {"Authorization": f"Token {ls_conn[1]}"}
    port = ls_server.url.rsplit(":", 1)[1]
    for path in ("/user/login/", "/api/projects/", "/health"):
        resp = httpx.get(ls_server.url + path, headers={**auth, "Host": "evil.example"})
        assert resp.status_code == 400, path
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert (
            httpx.get(ls_server.url + "/api/projects/", headers={**auth, "Host": host}).status_code
            == 200
        )


def _login(url: str, email: str, password: str) -> httpx.Client:
    web = httpx.Client(timeout=30)
    _form_post(web, f"{url}/user/login/", email=email, password=password)
    return web


@pytest.mark.labelstudio
def test_add_user_creates_an_account_that_can_log_in(ls_server):
    email = f"ana-{uuid.uuid4().hex[:6]}@people.example"
    res = CliRunner().invoke(cli, ["server", "add-user", email, "--data-dir", ls_server.data_dir])
    assert res.exit_code == 0, res.output
    password = res.output.split("not stored): ", 1)[1].strip()
    with closing(_login(ls_server.url, email, password)) as web:
        me = web.get(f"{ls_server.url}/api/current-user/whoami")
        assert me.status_code == 200 and me.json()["email"] == email
    with closing(_login(ls_server.url, email, password + "x")) as web:
        assert web.get(f"{ls_server.url}/api/current-user/whoami").status_code in (401, 403)
    again = CliRunner().invoke(cli, ["server", "add-user", email, "--data-dir", ls_server.data_dir])
    assert again.exit_code == 1
    assert (
        again.output == "Error: a user with that e-mail already exists on the local Label Studio\n"
    )
    # addresses Label Studio's form refuses: it said only "refused the new account (200); see
    # server.log", and the log held no reason (hunt H, finding 5)
    for bad in ("foo@", "x@y", 'a"b@people.example', "a" * 320 + "@people.example"):
        res = CliRunner().invoke(cli, ["server", "add-user", bad, "--data-dir", ls_server.data_dir])
        assert res.exit_code == 1 and res.output.startswith(
            f"Error: {bad!r} is not an e-mail address Label Studio takes (name@domain.tld"
        ), res.output
    # addresses Label Studio takes stay accepted (the first check refused the last two: hunt I, 3)
    tag = uuid.uuid4().hex[:6]
    for odd in (f"o'brien-{tag}@people.example", f"ivan-{tag}@пример.рф", f"lit-{tag}@[127.0.0.1]"):
        res = CliRunner().invoke(cli, ["server", "add-user", odd, "--data-dir", ls_server.data_dir])
        assert res.exit_code == 0, (odd, res.output)


def _push_args() -> list[str]:
    """`--create` where push has it (push creates an unknown project only when asked)."""
    out = subprocess.run(
        [sys.executable, "-m", "spanbank", "push", "--help"], capture_output=True, text=True
    )
    return ["--create"] if "--create" in out.stdout else []


BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-domain-reliability",
]


def _browse(
    url: str, email: str, password: str, project_id: int, task_id: int, proxy: str
) -> list[str]:
    """Open the login, signup, projects and labeling pages in headless Chromium whose proxy is
    `proxy`; return the URLs it loaded (so the test knows the pages really ran)."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no /usr/bin/chromium")
    seen: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=BROWSER_ARGS,
            proxy={"server": proxy, "bypass": NO_PROXY},
        )
        page = browser.new_page()
        page.on("request", lambda r: seen.append(r.url))
        page.goto(f"{url}/user/signup/")
        page.goto(f"{url}/user/login/")
        page.wait_for_load_state("networkidle")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        page.goto(f"{url}/projects/")
        page.wait_for_load_state("networkidle")
        page.goto(f"{url}/projects/{project_id}/data?task={task_id}")
        page.wait_for_selector(".lsf-richtext__line", timeout=90000)
        page.locator(".lsf-label", has_text="SPEAKER").first.click()
        page.wait_for_load_state("networkidle")
        browser.close()
    return seen


@pytest.mark.labelstudio
def test_nothing_leaves_the_machine(private, tmp_path):
    """Push, annotate, pull and the labeling UI against a server whose only way out is the sink."""
    info, sink = private
    # the sink would see a leak: the server runs with the proxy, and its Python honours it
    environ = process_environ(info.pid)
    assert environ["HTTPS_PROXY"] == sink.url and environ["NO_PROXY"] == NO_PROXY
    assert canary().startswith("CONNECT pypi.org:443")
    url, key = server.connection(env_file=info.env_file)
    client = LabelStudioClient(url, key)
    texts = {
        "p1": "The mayor said “roads will reopen” on Monday.",
        "p2": "Ana López warned of delays.",
    }
    corpus = tmp_path / "c"
    make_corpus(corpus, texts)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO_")}
    env |= {server.ENV_URL: url, server.ENV_KEY: key}
    project = f"priv-{uuid.uuid4().hex[:6]}"

    def sb(*args):
        out = subprocess.run(
            [sys.executable, "-m", "spanbank", "--corpus", str(corpus), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, (args, out.stderr)

    sb("push", "--project", project, *_push_args())
    proj = client.find_project(project)
    tasks = [t for page in client.task_pages(proj["id"], include=["id", "data"]) for t in page]
    annotator = client.create_user(f"priv-{uuid.uuid4().hex[:6]}@people.example")
    for t in tasks:
        text = t["data"]["text"]
        client.create_annotation(
            t["id"], [region("r1", text, text.split()[1], "SPEAKER")], completed_by=annotator["id"]
        )
    sb("pull", "--project", project)
    password = server.read_env_file(info.env_file)["LABEL_STUDIO_PASSWORD"]
    browser_sink = Sink()
    try:
        seen = _browse(
            url, server.ADMIN_EMAIL, password, proj["id"], tasks[0]["id"], browser_sink.url
        )
        time.sleep(3)  # analytics and error reports are sent from background threads
        browser_lines = [line for line in browser_sink.first_lines() if not _chromium_own(line)]
    finally:
        browser_sink.close()
    assert any(f"/projects/{proj['id']}/data" in u for u in seen) and len(seen) > 20
    assert [u for u in seen if urlsplit(u).hostname not in ("127.0.0.1", "localhost")] == []
    assert browser_lines == [], "the browser reached outside the machine"
    assert sink.first_lines() == [], "Label Studio reached outside the machine"


def _chromium_own(line: str) -> bool:
    """A CONNECT Chromium itself makes (updates, accounts, autofill; gvt1.com is the download
    host of its component updater, seen once in CI despite --disable-component-update), not one
    a page asked for: the pages' own requests are checked one by one."""
    target = line.split()[1]
    host = urlsplit(target if "://" in target else f"//{target}").hostname or ""
    return host.endswith((".google.com", ".googleapis.com", ".gvt1.com"))
