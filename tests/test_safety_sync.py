"""Push/pull robustness against the real local Label Studio: missing values, edited task text,
a page Label Studio cannot serialise, bad URLs and keys, credentials in URLs, Ctrl-C, summaries.

`pytest -s` prints the figures quoted in docs/RELIABILITY.md (round 2).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from click.testing import CliRunner

from _helpers import region, server_articles
from conftest import article_rows, make_corpus
from faultproxy import FaultProxy
from spanbank.cli import cli
from spanbank.corpus import annotations
from spanbank.corpus.annotations import live_annotations
from spanbank.corpus.store import Corpus
from spanbank.errors import LabelStudioError
from spanbank.gold import run_adjudication, select_annotations
from spanbank.labelstudio import pull as ls_pull
from spanbank.labelstudio import push as ls_push
from spanbank.labelstudio import review, workflow
from spanbank.labelstudio.client import LabelStudioClient, encode_json

pytestmark = pytest.mark.labelstudio

FIGURES: Counter = Counter()
QUOTE = "“Prices will rise,”"


def _text(i: int) -> str:
    return f"Story {i}. “Prices will rise,” the minister said. Ana López 😀 agreed."


def _result(text: str) -> list[dict]:
    return [region("q", text, QUOTE, "QUOTE"), region("s", text, "the minister", "SPEAKER")]


def _env(url: str, key: str) -> dict:
    return {"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": key}


def _cli(corpus: Corpus, *args, env: dict):
    return CliRunner().invoke(cli, ["--corpus", str(corpus.path), *map(str, args)], env=env)


def _one_error(result, *fragments) -> str:
    """The single `Error: ...` line of a failed command (no traceback)."""
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def users(ls_client):
    tag = uuid.uuid4().hex[:6]
    return [ls_client.create_user(f"safe{i}-{tag}@example.org", f"safe{i}{tag}") for i in range(2)]


@pytest.fixture
def proxy(ls_server):
    with FaultProxy(ls_server.url) as p:
        yield p


def _task_ids(corpus: Corpus) -> dict[str, int]:
    tasks = corpus.read("tasks")
    return dict(zip(tasks["article_id"], tasks["ls_task_id"].astype(int), strict=True))


# ======================================================================== 12.5 missing values
def _untitled_corpus(path, texts: dict[str, str]) -> Corpus:
    """A corpus whose first article has no title, source or url (pandas reads them as NaN)."""
    rows = article_rows(texts)
    rows[0].update(title=None, source=None, url=None)
    corpus = Corpus.init(path)
    with corpus.writer() as w:
        w.append("articles", rows)
    assert isinstance(corpus.read("articles")["title"].iloc[0], float)  # NaN, as in the issue
    return corpus


def test_encode_json_never_sends_nan():
    body = encode_json({"data": {"title": float("nan")}, "score": [float("inf"), 1.5]})
    assert json.loads(body) == {"data": {"title": None}, "score": [None, 1.5]}
    assert b"NaN" not in body and b"Infinity" not in body


def test_push_article_without_title(tmp_path, ls_client, project_name):
    """No title (NaN) and a spans file with NaN columns: the batch is pushed, the title is empty."""
    texts = {f"n{i}": _text(i) for i in range(4)}
    corpus = _untitled_corpus(tmp_path / "c", texts)
    spans = pd.DataFrame(
        {
            "article_id": ["n0", "n1", "n2"],
            "label": ["QUOTE", "QUOTE", None],
            "start": [10, 10, 10],
            "end": [29, 29, 29],
            "span_id": [None, "x", "y"],
            "attributes": [None, '{"type": "direct"}', None],
            "score": [float("nan"), 0.5, 1.0],
        }
    )
    spans.to_parquet(tmp_path / "pred.parquet")
    summary = workflow.run(
        ls_push.push_batch(
            corpus, project_name, client=ls_client, preannotate=str(tmp_path / "pred.parquet")
        )
    )
    assert summary["pushed"] == 4 and summary["predictions"] == 2
    tasks = {
        t["data"]["article_id"]: t
        for p in ls_client.task_pages(summary["ls_project_id"])
        for t in p
    }
    assert tasks["n0"]["data"]["title"] == "" and tasks["n1"]["data"]["title"] == "Title n1"
    assert "source" not in tasks["n0"]["meta"] and "url" not in tasks["n0"]["meta"]
    [pred] = tasks["n0"]["predictions"]
    assert pred["result"][0]["value"]["labels"] == ["QUOTE"] and pred["result"][0]["id"] == "p0"
    # rule predictions over the same corpus, in a second project
    summary = workflow.run(
        ls_push.push_batch(corpus, project_name + "-r", client=ls_client, preannotate="rules")
    )
    assert summary["pushed"] == 4
    FIGURES["untitled_articles_pushed"] += 2


def test_review_push_of_article_without_title(tmp_path, ls_client, users, project_name):
    """The review project gets an untitled article's conflict too (review payloads have no NaN)."""
    texts = {"u0": _text(0), "u1": _text(1)}
    corpus = _untitled_corpus(tmp_path / "c", texts)
    workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, overlap=2))
    tid = _task_ids(corpus)
    for aid, text in texts.items():
        ls_client.create_annotation(tid[aid], _result(text), completed_by=users[0]["id"])
        ls_client.create_annotation(tid[aid], _result(text)[:1], completed_by=users[1]["id"])
    workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    run_adjudication(corpus, "majority", project_name)
    summary = workflow.run(review.push_review(corpus, project_name, client=ls_client))
    assert summary["pushed"] == 2
    tasks = {
        t["data"]["article_id"]: t
        for p in ls_client.task_pages(summary["ls_project_id"])
        for t in p
    }
    assert tasks["u0"]["data"]["title"] == ""
    assert len(tasks["u0"]["predictions"]) == 3  # two annotators and the gold


# ======================================================================== 12.6 edited task text
def test_pull_flags_annotation_on_edited_task_text(
    tmp_path, ls_conn, ls_client, users, project_name
):
    """A task whose text was changed in Label Studio: its annotation is stored flagged, not live."""
    texts = {"e0": _text(0), "e1": _text(1)}
    corpus = make_corpus(tmp_path / "c", texts)
    workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))
    tid = _task_ids(corpus)
    for aid, text in texts.items():
        ls_client.create_annotation(tid[aid], _result(text), completed_by=users[0]["id"])
    edited = "EDITED. " + texts["e0"]
    ls_client.request(
        "PATCH", f"api/tasks/{tid['e0']}/", json_body={"data": {"text": edited, "article_id": "e0"}}
    )

    out = _cli(corpus, "pull", "--project", project_name, env=_env(*ls_conn))
    assert out.exit_code == 0, out.output
    warnings = [ln for ln in out.output.splitlines() if ln.startswith("Warning:")]
    assert len(warnings) == 1 and f"task(s) {tid['e0']} was edited" in warnings[0], out.output
    ann = corpus.read("annotations")
    assert len(ann) == 2
    flagged = ann[ann["article_id"] == "e0"].iloc[0]
    assert flagged["invalid_reason"] == annotations.TEXT_EDITED
    assert set(live_annotations(ann)["article_id"]) == {"e1"}
    assert set(corpus.latest_annotations(project=project_name)["article_id"]) == {"e1"}
    assert set(select_annotations(corpus, "auto", project_name)["article_id"]) == {
        "e1"
    }  # export's gold
    rejects = corpus.read("rejects")
    assert (
        rejects["annotation_id"] == flagged["annotation_id"]
    ).sum() == 1  # the raw result is kept

    again = workflow.run(
        ls_pull.pull(corpus, project_name, client=ls_client)
    )  # nothing changed: no new rows
    assert again["new"] == again["updated"] == 0 and "invalid" not in again
    # the text restored in Label Studio: the annotation becomes a new, live version
    ls_client.request(
        "PATCH",
        f"api/tasks/{tid['e0']}/",
        json_body={"data": {"text": texts["e0"], "article_id": "e0"}},
    )
    fixed = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client, full=True))
    assert fixed["updated"] == 1 and "invalid" not in fixed
    live = corpus.latest_annotations(project=project_name)
    assert set(live["article_id"]) == {"e0", "e1"}
    spans = corpus.read("spans")
    assert set(spans.loc[spans["annotation_id"].isin(live["annotation_id"]), "article_id"]) == {
        "e0",
        "e1",
    }
    FIGURES["edited_text_annotations_flagged"] += 1


# ======================================================================== 12.10 a page LS cannot serialise
def _fails_page_of(bad: int):
    """A plan answering 500 for every full task page that holds task `bad` (an unpaged page may)."""
    hits = Counter()

    def plan(method, path, n):
        parts = urlsplit(path)
        q = parse_qs(parts.query)
        if method != "GET" or parts.path.rstrip("/") != "/api/tasks" or "include" in q:
            return None
        query = q.get("query", [""])[0]
        if not query or bad in json.loads(query)["selectedItems"]["included"]:
            hits["500"] += 1
            return "status:500"
        return None

    return plan, hits


def test_pull_stores_everything_but_a_task_ls_cannot_serialise(
    tmp_path, ls_conn, ls_client, proxy, users, project_name
):
    n = 24
    texts = {f"s{i:02d}": _text(i) for i in range(n)}
    corpus = make_corpus(tmp_path / "c", texts)
    workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))
    tid = _task_ids(corpus)
    for aid, text in texts.items():
        for u in users:
            ls_client.create_annotation(tid[aid], _result(text), completed_by=u["id"])
    bad = tid["s07"]
    reference = Corpus(tmp_path / "ref")
    shutil.copytree(corpus.path, reference.path)
    workflow.run(
        ls_pull.pull(reference, project_name, client=LabelStudioClient(proxy.url, ls_conn[1]))
    )  # same URL

    proxy.plan, hits = _fails_page_of(bad)
    started = time.monotonic()
    out = _cli(corpus, "pull", "--project", project_name, "--json", env=_env(proxy.url, ls_conn[1]))
    FIGURES["unreadable_cli_pull_s"] = round(time.monotonic() - started, 1)
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert summary["unreadable_tasks"] == [bad] and summary["new"] == 2 * (n - 1)
    warnings = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(warnings) == 1 and f"task(s) {bad} " in warnings[0], out.stderr
    ann = corpus.read("annotations")
    assert len(ann) == 2 * (n - 1) and "s07" not in set(ann["article_id"])
    FIGURES["unreadable_page_requests_500"] += hits["500"]
    FIGURES["unreadable_pull_annotations_stored"] += len(ann)

    # incremental pulls: the unreadable task is fetched again until it can be read
    again = workflow.run(
        ls_pull.pull(
            corpus, project_name, client=LabelStudioClient(proxy.url, ls_conn[1], backoff=0.01)
        )
    )
    assert again["unreadable_tasks"] == [bad] and again["new"] == 0
    proxy.plan = None
    healed = workflow.run(
        ls_pull.pull(corpus, project_name, client=LabelStudioClient(proxy.url, ls_conn[1]))
    )
    assert healed["new"] == 2 and "unreadable_tasks" not in healed
    got = corpus.read("annotations").sort_values("annotation_id")
    want = reference.read("annotations").sort_values("annotation_id")
    assert got["annotation_id"].tolist() == want["annotation_id"].tolist()
    assert len(corpus.read("spans")) == len(reference.read("spans"))


def test_pull_by_ids_splits_a_failing_chunk(
    tmp_path, ls_conn, ls_client, proxy, users, project_name
):
    """An incremental pull (tasks fetched by id) narrows a failing chunk down to the one task."""
    texts = {f"i{i:02d}": _text(i) for i in range(10)}
    corpus = make_corpus(tmp_path / "c", texts)
    workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))
    tid = _task_ids(corpus)
    for aid in ("i00", "i01", "i02", "i03", "i04", "i05", "i06", "i07"):
        ls_client.create_annotation(tid[aid], _result(texts[aid]), completed_by=users[0]["id"])
    client = LabelStudioClient(proxy.url, ls_conn[1], backoff=0.01)
    workflow.run(ls_pull.pull(corpus, project_name, client=client))
    for aid in ("i02", "i05", "i06"):  # 3 of 10 tasks changed: fetched by id
        ls_client.create_annotation(tid[aid], _result(texts[aid]), completed_by=users[1]["id"])
    proxy.plan, hits = _fails_page_of(tid["i05"])
    summary = workflow.run(ls_pull.pull(corpus, project_name, client=client, page_size=2))
    assert summary["unreadable_tasks"] == [tid["i05"]] and summary["new"] == 2
    assert hits["500"] >= 2


# ======================================================================== 12.11 / 13.5 URLs and keys
def test_malformed_url_and_non_ascii_key_are_one_line(tmp_path, ls_conn, project_name):
    corpus = make_corpus(tmp_path / "c", {"k0": _text(0)})
    for cmd in ("push", "pull"):
        _one_error(
            _cli(
                corpus,
                cmd,
                "--project",
                project_name,
                "--url",
                "http://[::1",
                "--api-key",
                "x",
                env={},
            ),
            "http://[::1",
            "malformed",
        )
        _one_error(
            _cli(
                corpus,
                cmd,
                "--project",
                project_name,
                "--url",
                "localhost:8080",
                "--api-key",
                "x",
                env={},
            ),
            "http(s)",
        )
        line = _one_error(
            _cli(corpus, cmd, "--project", project_name, env=_env(ls_conn[0], "clé-secrète")),
            "API key",
            "non-ASCII",
        )
        assert "clé" not in line
    with pytest.raises(LabelStudioError, match="malformed"):
        LabelStudioClient("http://[::1", "x")


def test_url_credentials_are_redacted_everywhere(tmp_path, ls_conn, ls_client, users, project_name):
    url, key = ls_conn
    secret_url = url.replace("http://", "http://alice:hunter2pw@")
    texts = {"c0": _text(0), "c1": _text(1)}
    corpus = make_corpus(tmp_path / "c", texts)
    out = _cli(
        corpus, "push", "--project", project_name, "--create", "--json", env=_env(secret_url, key)
    )
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    tid = _task_ids(corpus)
    ls_client.create_annotation(tid["c0"], _result(texts["c0"]), completed_by=users[0]["id"])
    out2 = _cli(corpus, "pull", "--project", project_name, "--json", env=_env(secret_url, key))
    assert out2.exit_code == 0, out2.output
    assert summary["ls_url"] == url and summary["project_url"].startswith(url + "/")
    # errors: an unreachable server, a missing key, a refused key
    dead = "http://bob:hunter2pw@127.0.0.1:9"
    errors = [
        _one_error(
            _cli(corpus, "pull", "--project", project_name, env=_env(dead, key)), "127.0.0.1:9"
        ),
        _one_error(
            _cli(corpus, "pull", "--project", project_name, env=_env(secret_url, "wrong-key"))
        ),
    ]
    assert not any("hunter2pw" in e or "alice" in e or "bob" in e for e in errors), errors
    # stored tables and report links
    found = []
    for f in sorted(corpus.path.rglob("*.parquet")):
        cells = [str(c) for c in pd.read_parquet(f).to_numpy().ravel()]
        found += [f.name for c in cells if "hunter2pw" in c or "alice:" in c]
    assert not found, found
    assert set(corpus.read("tasks")["ls_url"]) == {url}
    from spanbank.agreement.report import _task_links

    links = _task_links(corpus.read("tasks"), list(texts), project_name)
    assert links and all(v.startswith(url + "/projects/") for v in links.values())
    assert "hunter2pw" not in out.output + out2.output


# ======================================================================== 14.5 Ctrl-C, summaries
def _interrupt_when(
    cmd: list[str], env: dict, ready: threading.Event, sent: threading.Event, timeout: float = 120
):
    """Run `cmd`, send SIGINT once `ready` is set, then set `sent` (the proxy holds the request
    that set `ready` until then, so the command cannot finish first); returns the finished
    process's (rc, stdout, stderr)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert ready.wait(timeout), "the command never reached the point to interrupt"
        assert proc.poll() is None, f"the command ended (rc {proc.returncode}) before Ctrl-C"
        proc.send_signal(signal.SIGINT)
    finally:
        sent.set()
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _assert_resume_line(rc: int, err: str, command: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 130, err
    assert len(lines) == 1 and f"spanbank {command}" in lines[0] and "resume" in lines[0], err
    assert "Traceback" not in err


def test_ctrl_c_during_push_and_pull(tmp_path, ls_conn, ls_client, proxy, users, project_name):
    n = 40
    texts = {f"k{i:02d}": _text(i) for i in range(n)}
    corpus = make_corpus(tmp_path / "c", texts)
    env = {**os.environ, **_env(proxy.url, ls_conn[1])}
    base = [sys.executable, "-m", "spanbank", "--corpus", str(corpus.path)]
    push = base + ["push", "--project", project_name, "--create", "--chunk-size", "5"]
    ready, sent = threading.Event(), threading.Event()
    imports = Counter()

    def slow_imports(method, path, n_):
        if method == "POST" and "/import" in path:
            imports["n"] += 1
            if imports["n"] >= 3:
                ready.set()
                sent.wait(60)  # this import waits for the Ctrl-C
            return "delay:0.6"
        return None

    proxy.plan = slow_imports
    rc, _, err = _interrupt_when(push, env, ready, sent)
    _assert_resume_line(rc, err, "push")
    pushed_before = len(corpus.read("tasks"))
    assert 0 < pushed_before < n
    proxy.plan = None
    done = subprocess.run(push + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    pid = json.loads(done.stdout)["ls_project_id"]
    on_server = server_articles(ls_client, pid)
    assert len(on_server) == n and on_server.is_unique
    assert len(corpus.read("tasks")) == n and corpus.read("tasks")["article_id"].is_unique
    FIGURES["ctrl_c_push_tasks_recorded_before_rerun"] += pushed_before

    tid = _task_ids(corpus)
    for aid, text in list(texts.items())[:20]:
        ls_client.create_annotation(tid[aid], _result(text), completed_by=users[0]["id"])
    reference = Corpus(tmp_path / "ref")
    shutil.copytree(corpus.path, reference.path)
    workflow.run(
        ls_pull.pull(reference, project_name, client=LabelStudioClient(proxy.url, ls_conn[1]))
    )
    ready.clear()
    sent.clear()

    def slow_pages(method, path, n_):
        if (
            method == "GET"
            and urlsplit(path).path.rstrip("/") == "/api/tasks"
            and "include=" not in path
        ):
            ready.set()
            sent.wait(60)
            return "delay:3"
        return None

    proxy.plan = slow_pages
    pull = base + ["pull", "--project", project_name]
    rc, _, err = _interrupt_when(pull, env, ready, sent)
    _assert_resume_line(rc, err, "pull")
    assert corpus.read("annotations").empty  # interrupted before storing: nothing half-written
    proxy.plan = None
    done = subprocess.run(pull + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["new"] == 20
    got = corpus.read("annotations").sort_values("annotation_id")
    assert (
        got["annotation_id"].tolist()
        == reference.read("annotations").sort_values("annotation_id")["annotation_id"].tolist()
    )
    FIGURES["ctrl_c_runs"] += 2


def test_summaries_print_json_style_values(tmp_path, ls_conn, project_name):
    corpus = make_corpus(tmp_path / "c", {"j0": _text(0)})
    out = _cli(
        corpus, "push", "--project", project_name, "--create", "--dry-run", env=_env(*ls_conn)
    )
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert "dry_run: true" in lines and "project_url: null" in lines, out.output
    assert not any(ln.endswith((": True", ": False", ": None")) for ln in lines), out.output
    out = _cli(corpus, "push", "--project", project_name, "--create", env=_env(*ls_conn))
    assert "dry_run: false" in out.output.splitlines(), out.output


def test_zz_figures():
    """Figures for docs/RELIABILITY.md (`pytest -s`)."""
    print("\nSAFETY SYNC FIGURES " + json.dumps(dict(sorted(FIGURES.items()))))
