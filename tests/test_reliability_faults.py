"""Server faults between spanbank and the real local Label Studio, injected by tests/faultproxy.py.

Push and pull must either finish correctly (after the client's retries) or stop with a
one-line SpanbankError, leaving a state from which a re-run finishes. The end state is
compared with a clean pull of the same project into a copy of the corpus taken before.
`SPANBANK_FAULT_TRIALS` raises the number of seeded trials (figures in docs/RELIABILITY.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import pandas as pd
import pytest

from _helpers import region, server_articles
from conftest import make_corpus
from faultproxy import FaultProxy, random_plan
from spanbank.corpus import Corpus
from spanbank.errors import SpanbankError
from spanbank.labelstudio import pull as ls_pull
from spanbank.labelstudio import push as ls_push
from spanbank.labelstudio import workflow
from spanbank.labelstudio.client import LabelStudioClient

pytestmark = pytest.mark.labelstudio

TRIALS = int(os.environ.get("SPANBANK_FAULT_TRIALS", "2"))
RATE = float(os.environ.get("SPANBANK_FAULT_RATE", "0.3"))
MAX_ATTEMPTS = 25  # faulty re-runs before the final clean one
FIGURES: Counter = Counter()


def _text(i: int) -> str:
    return f"Story {i}. “Prices will rise,” the minister said. Ana López 😀 agreed."


def _result(text, variant=0):
    out = [region("q", text, "“Prices will rise,”", "QUOTE"), region("c", text, "said", "CUE")]
    if variant:
        out.append(region("s", text, "the minister", "SPEAKER"))
        out.append(
            {
                "from_id": "q",
                "to_id": "s",
                "type": "relation",
                "direction": "right",
                "labels": ["said_by"],
            }
        )
    return out


def until_done(make, label: str) -> tuple[dict, list[str]]:
    """Run a workflow until it finishes; every failure must be a one-line SpanbankError."""
    errors = []
    for _ in range(MAX_ATTEMPTS):
        try:
            return workflow.run(make()), errors
        except SpanbankError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg, msg
            errors.append(msg)
            FIGURES[f"{label}_stopped_with_error"] += 1
    raise AssertionError(f"{label} never finished under faults: {errors[-3:]}")


def pulled_state(corpus: Corpus) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """What a pull stored, without the columns that depend on when it ran."""
    ann = corpus.read("annotations")
    ann = (
        ann.assign(deleted=ann["deleted_at"].notna())[
            [
                "annotation_id",
                "ls_annotation_id",
                "article_id",
                "annotator",
                "version",
                "superseded",
                "cancelled",
                "deleted",
            ]
        ]
        .sort_values("annotation_id")
        .reset_index(drop=True)
    )
    spans = corpus.read("spans").sort_values(["annotation_id", "span_id"]).reset_index(drop=True)
    rels = (
        corpus.read("relations")
        .sort_values(["annotation_id", "from_span_id", "to_span_id"])
        .reset_index(drop=True)
    )
    rej = corpus.read("rejects")[["annotation_id", "span_id", "reason"]]
    rej = rej.sort_values(["annotation_id", "reason"]).reset_index(drop=True)
    return ann, spans, rels, rej


def assert_same_pull(got: Corpus, want: Corpus) -> None:
    for a, b in zip(pulled_state(got), pulled_state(want), strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert got.read("annotations")["annotation_id"].is_unique


@pytest.fixture(scope="module")
def users(ls_client):
    tag = uuid.uuid4().hex[:6]
    return [
        ls_client.create_user(f"fault{i}-{tag}@example.org", f"fault{i}{tag}") for i in range(2)
    ]


@pytest.fixture
def proxy(ls_server):
    with FaultProxy(ls_server.url) as p:
        yield p


@pytest.mark.parametrize("trial", range(TRIALS))
def test_push_pull_under_random_faults(
    trial, tmp_path, ls_conn, ls_client, proxy, users, project_name
):
    """Seeded random faults on every request: the re-runs converge on exactly the clean result."""
    n = 40
    corpus = make_corpus(tmp_path / "c", {f"f{i:03d}": _text(i) for i in range(n)})
    proxy.plan = random_plan(seed=1000 + trial, rate=RATE)
    faulty = LabelStudioClient(proxy.url, ls_conn[1], backoff=0.01)

    push, errors = until_done(
        lambda: ls_push.push_batch(
            corpus, project_name, client=faulty, overlap=2, chunk_size=7, preannotate="rules"
        ),
        "push",
    )
    pid = push["ls_project_id"]
    on_server = server_articles(ls_client, pid)
    assert len(on_server) == n and on_server.is_unique, "one task per article on the server"
    tasks = corpus.read("tasks")
    assert len(tasks) == n and tasks["article_id"].is_unique and tasks["ls_task_id"].is_unique
    FIGURES["push_runs"] += 1 + len(errors)

    # annotations posted straight to the server (not through the proxy)
    tid = dict(zip(tasks["article_id"], tasks["ls_task_id"], strict=True))
    posted = {}
    for i in range(0, 16):
        aid = f"f{i:03d}"
        for k, u in enumerate(users):
            a = ls_client.create_annotation(tid[aid], _result(_text(i), k), completed_by=u["id"])
            posted[(aid, k)] = a["id"]
    ls_pull.pseudonym_key(corpus)  # made once; the reference copies share it
    clean = LabelStudioClient(proxy.url, ls_conn[1])  # same URL, so the same pseudonyms
    for round_ in range(2):
        reference = Corpus(tmp_path / f"ref{round_}")
        shutil.copytree(corpus.path, reference.path)
        plan, proxy.plan = proxy.plan, None
        workflow.run(ls_pull.pull(reference, project_name, client=clean))
        proxy.plan = plan
        summary, errors = until_done(
            lambda: ls_pull.pull(corpus, project_name, client=faulty), "pull"
        )
        FIGURES["pull_runs"] += 1 + len(errors)
        assert_same_pull(corpus, reference)
        if round_ == 0:  # edits, deletions and new work for the incremental pull
            ls_client.update_annotation(posted[("f000", 0)], result=_result(_text(0), 1))
            ls_client.delete_annotation(posted[("f001", 1)])
            ls_client.create_annotation(
                tid["f020"], _result(_text(20)), completed_by=users[0]["id"]
            )
    final = corpus.read("annotations")
    assert len(final) == 2 * 16 + 2 and final["deleted_at"].notna().sum() == 1
    FIGURES["faults_injected"] += sum(proxy.injected.values())
    FIGURES["requests_proxied"] += proxy.requests
    for k, v in proxy.injected.items():
        FIGURES[f"fault:{k}"] += v
    _report()


def test_pull_survives_server_down_and_back(
    tmp_path, ls_conn, ls_client, proxy, users, project_name
):
    """The server goes away mid-pull (the proxy stops listening) and comes back.

    Restarting the session's real server would disrupt other tests sharing it, so the proxy
    closes its listening socket instead: the client sees connection refused, exactly as
    with a stopped server. The pull either rides it out (retries) or stops with one line;
    the re-run after the 'restart' gives the same state as a clean pull.
    """
    corpus = make_corpus(tmp_path / "c", {f"d{i:03d}": _text(i) for i in range(30)})
    clean = LabelStudioClient(proxy.url, ls_conn[1])
    push = workflow.run(ls_push.push_batch(corpus, project_name, client=clean))
    ls_pull.pseudonym_key(corpus)
    tasks = corpus.read("tasks")
    for i, (aid, t) in enumerate(zip(tasks["article_id"], tasks["ls_task_id"], strict=True)):
        ls_client.create_annotation(
            int(t), _result(_text(int(aid[1:])), i % 2), completed_by=users[i % 2]["id"]
        )
    reference = Corpus(tmp_path / "ref")
    shutil.copytree(corpus.path, reference.path)
    workflow.run(ls_pull.pull(reference, project_name, client=clean))

    outcomes = Counter()
    # outage starting at request k: short (retries absorb it) and long (one-line stop)
    for start_at, outage, backoff in ((2, 0.05, 0.2), (2, 3.0, 0.01), (3, 3.0, 0.01)):
        trial = Corpus(tmp_path / f"t{start_at}-{outage}")
        shutil.copytree(corpus.path, trial.path)
        client = LabelStudioClient(proxy.url, ls_conn[1], backoff=backoff, tries=4)
        went_down = threading.Event()

        def plan(method, path, n, start_at=start_at, went_down=went_down):
            if n == start_at and not went_down.is_set():
                went_down.set()
                return "drop"  # this request dies with the server
            return None

        def outage_after(went_down=went_down, outage=outage):
            went_down.wait(30)
            proxy.refuse()
            time.sleep(outage)
            proxy.resume()

        proxy.plan, proxy.requests = plan, 0
        t = threading.Thread(target=outage_after, daemon=True)
        t.start()
        try:
            workflow.run(ls_pull.pull(trial, project_name, client=client))
            outcomes["finished"] += 1
        except SpanbankError as exc:
            assert "\n" not in str(exc)
            outcomes["stopped"] += 1
            assert all(len(trial.read(n)) >= 0 for n in ("annotations", "spans", "tasks"))
        t.join(30)
        proxy.resume()
        proxy.plan = None
        workflow.run(
            ls_pull.pull(trial, project_name, client=client)
        )  # the re-run after the restart
        assert_same_pull(trial, reference)
    assert outcomes["stopped"] >= 1  # the long outages outlast the retries
    FIGURES["outage_trials"] += sum(outcomes.values())
    FIGURES["outage_stopped_then_rerun_ok"] += outcomes["stopped"]
    _report()
    assert push["pushed"] == 30


def test_cli_persistent_503_is_one_line_and_rerun_finishes(
    tmp_path, ls_conn, ls_client, proxy, project_name
):
    """Every request answered 503: the command retries, then prints one line; a re-run finishes."""
    corpus = make_corpus(tmp_path / "c", {f"e{i}": _text(i) for i in range(5)})
    env = {**os.environ, "LABEL_STUDIO_URL": proxy.url, "LABEL_STUDIO_API_KEY": ls_conn[1]}
    cmd = [
        sys.executable,
        "-m",
        "spanbank",
        "--corpus",
        str(corpus.path),
        "push",
        "--project",
        project_name,
        "--create",
        "--json",
    ]
    proxy.plan = lambda m, p, n: "status:503"
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("Error: ") and "503" in out.stderr
    assert ls_conn[1] not in out.stdout + out.stderr
    proxy.plan = None
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["pushed"] == 5
    assert server_articles(ls_client, json.loads(out.stdout)["ls_project_id"]).is_unique


def test_slow_import_past_the_timeout_makes_no_duplicates(
    tmp_path, ls_conn, ls_client, proxy, project_name
):
    """An import the client gave up on (timeout) still lands on the server: no duplicate tasks."""
    corpus = make_corpus(tmp_path / "c", {f"s{i:02d}": _text(i) for i in range(12)})
    imports = Counter()

    def plan(method, path, n):
        if method == "POST" and "/import" in path:
            imports["n"] += 1
            if imports["n"] == 2:
                return "delay:2.5"  # the server sees it after the client timed out
        return None

    proxy.plan = plan
    client = LabelStudioClient(proxy.url, ls_conn[1], backoff=0.01, timeout=1.0)
    import spanbank.labelstudio.client as client_mod

    old = client_mod.LONG_TIMEOUT_S
    client_mod.LONG_TIMEOUT_S = 1.0
    try:
        summary, errors = until_done(
            lambda: ls_push.push_batch(corpus, project_name, client=client, chunk_size=4),
            "slow-push",
        )
    finally:
        client_mod.LONG_TIMEOUT_S = old
    assert imports["n"] > 12 // 4, "the delayed import was given up on and sent again"
    time.sleep(3)  # let the late import land, then re-run to reconcile
    proxy.plan = None
    again = workflow.run(
        ls_push.push_batch(corpus, project_name, client=LabelStudioClient(proxy.url, ls_conn[1]))
    )
    pid = again["ls_project_id"]
    on_server = server_articles(ls_client, pid)
    assert on_server.is_unique and len(on_server) == 12, on_server.value_counts().head()
    assert len(corpus.read("tasks")) == 12 and again.get("duplicate_tasks_on_server") is None
    FIGURES["late_duplicates_removed"] += again.get("duplicate_tasks_removed", 0)


def _report() -> None:
    """Figures for docs/RELIABILITY.md, printed with `pytest -s`."""
    print("\nFAULT FIGURES " + json.dumps(dict(sorted(FIGURES.items()))))
