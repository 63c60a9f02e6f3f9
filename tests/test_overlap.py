"""Overlap by budget: the plan (pure), and how the real Label Studio queue honours it with two users."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import httpx
import pandas as pd
import pytest

from _helpers import Stopped, stop_after_first_import
from conftest import make_corpus
from spanbank.corpus.annotations import honeypot_tasks, task_plans
from spanbank.errors import SpanbankError
from spanbank.labelstudio import operations, server, workflow
from spanbank.labelstudio import push as ls_push
from spanbank.labelstudio.overlap import apply_overlap, plan_overlap


def _articles(n, sources=("a", "b", "c")):
    return pd.DataFrame(
        {
            "article_id": [f"x{i:03d}" for i in range(n)],
            "source": [sources[i % 3] for i in range(n)],
        }
    )


def test_plan_share_seed_and_strata():
    arts = _articles(100)
    plan = plan_overlap(arts, 0.2, seed=7)
    assert len(plan) == 20
    assert plan == plan_overlap(arts.sample(frac=1, random_state=3), 0.2, seed=7)  # order-free
    assert plan != plan_overlap(arts, 0.2, seed=8)
    strat = plan_overlap(arts, 0.2, seed=7, stratify="source")
    by_source = Counter(arts.set_index("article_id").loc[sorted(strat), "source"])
    assert sum(by_source.values()) == 20 and sorted(by_source.values()) == [6, 7, 7]  # 34/33/33
    assert plan_overlap(arts, 0.0) == set() and len(plan_overlap(arts, 1.0)) == 100
    # hunt L, 5: undated articles (NaT) fell out of every stratum: 18 of 20 picked, none undated
    days = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", None])
    dated = _articles(40).assign(published_at=[days[i // 10] for i in range(40)])
    picked = plan_overlap(dated, 0.5, seed=1, stratify="published_at")
    when = dated.set_index("article_id").loc[sorted(picked), "published_at"]
    per_day = Counter(str(d.date()) if pd.notna(d) else "undated" for d in when)
    assert len(picked) == 20 and per_day == {
        "2024-01-01": 5, "2024-01-02": 5, "2024-01-03": 5, "undated": 5
    }  # fmt: skip


def _login(url: str, email: str, password: str) -> httpx.Client:
    web = httpx.Client(timeout=60)
    page = f"{url}/user/login/"
    web.get(page)
    csrf = web.cookies.get("csrftoken", "")
    web.post(
        page,
        headers={"Referer": page},
        data={"csrfmiddlewaretoken": csrf, "email": email, "password": password},
    )
    return web


def _drain(url: str, web: httpx.Client, pid: int, drawn: list) -> None:
    """One annotator taking the next task from the queue and submitting it, until none is left."""
    headers = {"X-CSRFToken": web.cookies.get("csrftoken", ""), "Referer": url}
    while (r := web.get(f"{url}/api/projects/{pid}/next")).status_code == 200:
        tid = r.json()["id"]
        a = web.post(
            f"{url}/api/tasks/{tid}/annotations/?project={pid}",
            json={"result": [], "lead_time": 1.0},
            headers=headers,
        )
        assert a.status_code == 201, a.text[:200]
        drawn.append(tid)


@pytest.mark.labelstudio
def test_queue_honours_per_task_overlap_with_two_users(
    tmp_path, ls_server, ls_client, project_name, capsys
):
    texts = {f"x{i:03d}": f"Story {i}. “Prices rise,” she said." for i in range(100)}
    corpus = make_corpus(tmp_path / "corpus", texts)
    s = workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, overlap=2))
    pid = s["ls_project_id"]
    tasks = corpus.read("tasks")[["article_id", "ls_task_id"]]
    multi = plan_overlap(tasks, 0.2, seed=1)
    apply_overlap(ls_client, tasks, dict.fromkeys(multi, 2), 2)
    overlap = {
        t["id"]: t["overlap"]
        for p in ls_client.task_pages(pid, include=["id", "overlap"])
        for t in p
    }
    task_of = dict(zip(tasks["article_id"], tasks["ls_task_id"], strict=True))
    two = {int(task_of[a]) for a in multi}
    assert Counter(overlap.values()) == {2: 20, 1: 80}
    assert {t for t, n in overlap.items() if n == 2} == two

    webs, drawn = [], [[], []]
    for k in range(2):
        user = server.add_user(f"q{k}-{uuid.uuid4().hex[:6]}@people.example", ls_server.data_dir)
        webs.append(_login(ls_server.url, user.email, user.password))
    _both_drain(ls_server.url, webs, pid, drawn)
    first = _outcome(drawn, two, overlap)
    _both_drain(ls_server.url, webs, pid, drawn)  # both come back later: what was locked is free
    final = _outcome(drawn, two, overlap)
    for w in webs:
        w.close()
    with capsys.disabled():
        print(f"\nqueue, concurrent pass: {first}\nqueue, after both return: {final}")
    assert final["same_user_twice"] == 0
    assert final["planned2"] == {2: 20}  # every agreement task reached its second annotator
    assert final["planned1"].get(0, 0) == 0  # nothing left unannotated
    assert sum(v for k, v in final["planned1"].items() if k > 1) <= 5  # a race may double a few


def _both_drain(url, webs, pid, drawn) -> None:
    threads = [
        threading.Thread(target=_drain, args=(url, w, pid, d))
        for w, d in zip(webs, drawn, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)


def _outcome(drawn, two, overlap) -> dict:
    """Annotations per task, split by the plan, and tasks one user submitted twice."""
    per_task = Counter(drawn[0] + drawn[1])
    return {
        "draws": [len(d) for d in drawn],
        "planned2": dict(Counter(per_task[t] for t in two)),
        "planned1": dict(Counter(per_task[t] for t in overlap if t not in two)),
        "same_user_twice": sum(len(d) - len(set(d)) for d in drawn),
    }


def test_status_counts_multiply_annotated_done(tmp_path):
    import json

    from click.testing import CliRunner

    from spanbank.cli import cli

    now = pd.Timestamp("2024-01-01", tz="UTC")
    texts = {a: f"Text {a}." for a in ("a1", "a2", "a3", "a4")}
    c = make_corpus(tmp_path / "corpus", texts)
    plan = {"a1": 2, "a2": 2, "a3": 1, "a4": 1}
    tasks = [
        {
            "project": "p",
            "ls_url": "http://ls",
            "ls_project_id": 1,
            "article_id": a,
            "ls_task_id": i,
            "batch_id": "b",
            "pushed_at": now,
            "schema_version": "v",
        }
        for i, a in enumerate(plan)
    ]
    plans = [
        {
            "project": "p",
            "ls_url": "http://ls",
            "article_id": a,
            "ls_task_id": i,
            "batch_id": "b",
            "overlap": n,
            "honeypot": False,
            "honeypot_gold": None,
            "planned_at": now,
        }
        for i, (a, n) in enumerate(plan.items())
    ]
    done = [("a1", "u1"), ("a1", "u2"), ("a2", "u1"), ("a3", "u2")]
    anns = [
        {
            "annotation_id": f"{a}-{u}",
            "project": "p",
            "article_id": a,
            "ls_task_id": 1,
            "ls_annotation_id": 1,
            "annotator": u,
            "origin": "human",
            "created_at": now,
            "updated_at": now,
            "lead_time_s": 5.0,
            "cancelled": False,
            "version": 1,
            "superseded": False,
            "deleted_at": None,
            "pulled_at": now,
        }
        for a, u in done
    ]
    with c.writer() as w:
        w.append("tasks", pd.DataFrame(tasks))
        w.append("task_plans", pd.DataFrame(plans))
        w.append("annotations", pd.DataFrame(anns))
    res = CliRunner().invoke(cli, ["--corpus", str(c.path), "status", "--json"])
    (p,) = json.loads(res.output)["projects"]
    assert (p["multi_planned"], p["multi_done"]) == (2, 1)
    # each article short of its own plan (hunt L, 4: a3, planned for one, counted 1 short)
    assert (p["under_annotated"], p["needs_more"]) == (2, {"1": 2})
    res = CliRunner().invoke(cli, ["--corpus", str(c.path), "status"])
    assert "multiply annotated: 1 of 2 planned article(s) done" in res.output


@pytest.mark.labelstudio
def test_push_overlap_share_and_honeypots(tmp_path, ls_conn, ls_client, project_name):
    import json
    import os

    from click.testing import CliRunner

    from spanbank.cli import cli

    texts = {f"x{i:03d}": f"Story {i}. “Prices rise,” she said." for i in range(100)}
    texts |= {f"g{i}": f"Gold {i}. “Rates fall,” he said." for i in range(10)}
    corpus = make_corpus(tmp_path / "corpus", texts)
    now = pd.Timestamp("2024-01-01", tz="UTC")
    gold = [
        {"annotation_id": f"gold-{a}", "project": None, "article_id": a, "ls_task_id": None,
         "ls_annotation_id": None, "annotator": "gold:review", "origin": "gold",
         "created_at": now, "updated_at": now, "lead_time_s": None, "cancelled": False,
         "version": 1, "superseded": False, "deleted_at": None, "pulled_at": now}
        for a in texts if a.startswith("g")
    ]  # fmt: skip
    with corpus.writer() as w:
        w.append("annotations", pd.DataFrame(gold))
    env = {"LABEL_STUDIO_URL": ls_conn[0], "LABEL_STUDIO_API_KEY": ls_conn[1]}
    args = ["--corpus", str(corpus.path), "push", "--project", project_name, "--create"]
    args += ["--overlap", "2", "--overlap-share", "0.2", "--honeypots", "5%", "--seed", "3"]
    args += ["--where", "article_id.str.startswith('x')", "--json"]
    ids = tmp_path / "ids.txt"  # hunt N, F5: an id the corpus lacks went unsaid in a planned push
    ids.write_text("x001\nno-such-id\nx002\n")
    listed = json.loads(
        CliRunner()
        .invoke(cli, [*args, "--ids", str(ids), "--dry-run"], env=os.environ | env)
        .output
    )
    assert listed["skipped"]["not in corpus"] == 1
    more = [a if a != "5%" else "20%" for a in args] + ["--dry-run"]
    dry = json.loads(CliRunner().invoke(cli, more, env=os.environ | env).output)
    assert dry["honeypots"] == 10  # hunt L, 7: fewer than asked, and not a word
    assert (
        dry["honeypots_short"]
        == "20 asked; only 10 article(s) with stored gold are new to this project"
    )
    res = CliRunner().invoke(cli, args, env=os.environ | env)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["pushed"] == 105 and summary["honeypots"] == 5
    plans = task_plans(corpus)
    batch = plans[~plans["honeypot"]]
    assert (batch["overlap"] == 2).sum() == 20 and (batch["overlap"] == 1).sum() == 80
    hp = plans[plans["honeypot"]]
    assert set(hp["article_id"]) <= {a for a in texts if a.startswith("g")}
    # pinned: a copy of each gold made at the push (honeypot_spans), not the stored gold itself
    assert all(
        g.startswith(f"pinned:gold-{a}@")
        for g, a in zip(hp["honeypot_gold"], hp["article_id"], strict=True)
    )
    pid = summary["ls_project_id"]
    server = {
        t["id"]: t
        for p in ls_client.task_pages(pid, include=["id", "overlap", "data", "meta"])
        for t in p
    }
    for row in plans.itertuples():
        task = server[int(row.ls_task_id)]
        assert task["overlap"] == (2 if row.honeypot else row.overlap)
        assert "honeypot" not in json.dumps(task).lower()  # nothing tells annotators
    # hunt L, 8: honeypots went in corpus order, all together (here last; gold articles are
    # usually older than a batch, so first in the queue); now each at its own place
    queue = sorted(server)
    where = sorted(queue.index(int(t)) for t in plans.loc[plans["honeypot"], "ls_task_id"])
    assert where[-1] - where[0] > len(where), where


def _gold_corpus(path, n: int, golds: int):
    texts = {f"x{i:03d}": f"Story {i}. “Prices rise,” she said." for i in range(n)}
    texts |= {f"g{i}": f"Gold {i}. “Rates fall,” he said." for i in range(golds)}
    corpus = make_corpus(path, texts)
    now = pd.Timestamp("2024-01-01", tz="UTC")
    gold = [
        {"annotation_id": f"gold-g{i}", "project": None, "article_id": f"g{i}", "ls_task_id": None,
         "ls_annotation_id": None, "annotator": "gold:review", "origin": "gold",
         "created_at": now, "updated_at": now, "lead_time_s": None, "cancelled": False,
         "version": 1, "superseded": False, "deleted_at": None, "pulled_at": now}
        for i in range(golds)
    ]  # fmt: skip
    with corpus.writer() as w:
        w.append("annotations", pd.DataFrame(gold))
    return corpus


def test_a_planned_push_stopped_half_way_is_finished_by_the_next(
    tmp_path, ls_client, project_name, monkeypatch
):
    """Stopped during its import, then while setting overlaps: the next planned push finishes
    the first one's plan (not a new batch), and its honeypots are known as such from the start.
    Before, the re-run found every article pushed and did nothing: every task kept the
    project's overlap, no plan was recorded and the honeypots were ordinary tasks (their
    annotations could become gold)."""
    corpus = _gold_corpus(tmp_path / "corpus", 20, 4)
    args = dict(
        client=ls_client, overlap=2, overlap_share=0.25, honeypots="10%", seed=3,
        where="article_id.str.startswith('x')", create=True, chunk_size=5,
    )  # fmt: skip
    stop_after_first_import(ls_client, monkeypatch)
    with pytest.raises(Stopped):
        workflow.run(operations.push_planned(corpus, project_name, **args))
    assert len(corpus.read("tasks")) == 5
    hp = honeypot_tasks(corpus, project_name)
    assert len(hp) == 2 and set(hp["article_id"]) <= {"g0", "g1", "g2", "g3"}
    monkeypatch.undo()

    def stop(*a, **kw):
        raise Stopped

    monkeypatch.setattr(operations, "apply_overlap", stop)
    with pytest.raises(Stopped):
        workflow.run(operations.push_planned(corpus, project_name, **args))
    assert len(corpus.read("tasks")) == 22
    monkeypatch.undo()

    done = workflow.run(operations.push_planned(corpus, project_name, **args))
    assert done["resumed_plan"] == 22 and done["pushed"] == 0 and done["honeypots"] == 2
    plans = task_plans(corpus, project_name)
    assert len(plans) == 22 and plans["ls_task_id"].notna().all()
    assert set(plans.loc[plans["honeypot"], "article_id"]) == set(hp["article_id"])
    assert plans["overlap"].value_counts().to_dict() == {1: 15, 2: 7}  # 5 of 20, 2 honeypots
    server = {
        t["id"]: t["overlap"]
        for p in ls_client.task_pages(done["ls_project_id"], include=["id", "overlap"])
        for t in p
    }
    assert {server[int(t)] for t in plans.loc[plans["overlap"] == 1, "ls_task_id"]} == {1}
    assert {server[int(t)] for t in plans.loc[plans["overlap"] == 2, "ls_task_id"]} == {2}
    # and then a new batch: nothing left to push, nothing resumed
    again = workflow.run(operations.push_planned(corpus, project_name, **args))
    assert "resumed_plan" not in again and again["pushed"] == 0


def _server_overlaps(client, pid) -> dict[int, int]:
    return {
        t["id"]: t["overlap"] for p in client.task_pages(pid, include=["id", "overlap"]) for t in p
    }


@pytest.mark.labelstudio
def test_a_resumed_plan_keeps_its_overlaps_and_a_later_plan_leaves_earlier_tasks_alone(
    tmp_path, ls_client, project_name, monkeypatch
):
    """Hunt L, 1 and 11. A plan of --overlap 3 stopped half-way, finished by a planned push
    without --overlap: every task got the project's 3 (30 of 40 planned for one annotator). A
    later plan with --overlap 2 set the project's maximum to 2, and Label Studio lowered the
    first plan's overlap-3 tasks to 2, while task_plans still said 3."""
    texts = {f"x{i:03d}": f"Story {i}. “Prices rise,” she said." for i in range(24)}
    corpus = make_corpus(tmp_path / "corpus", texts)
    first = dict(
        client=ls_client, overlap=3, overlap_share=0.25, seed=3, create=True, chunk_size=4,
        where="article_id < 'x012'",
    )  # fmt: skip
    stop_after_first_import(ls_client, monkeypatch)
    with pytest.raises(Stopped):
        workflow.run(operations.push_planned(corpus, project_name, **first))
    monkeypatch.undo()
    with pytest.raises(SpanbankError, match="stopped half-way .12 articles, --overlap 3."):
        workflow.run(operations.push_planned(corpus, project_name, **(first | {"overlap": 2})))
    assert len(corpus.read("tasks")) == 4
    done = workflow.run(
        operations.push_planned(corpus, project_name, **(first | {"overlap": None}))
    )
    assert done["resumed_plan"] == 12 and done["overlap_planned"] == {"1": 9, "3": 3}
    pid = done["ls_project_id"]
    plans = task_plans(corpus, project_name)
    server = _server_overlaps(ls_client, pid)
    assert {int(t): server[int(t)] for t in plans["ls_task_id"]} == {
        int(t): n for t, n in zip(plans["ls_task_id"], plans["overlap"], strict=True)
    }
    later = workflow.run(
        operations.push_planned(
            corpus, project_name, client=ls_client, overlap=2, overlap_share=0.5, seed=3,
            where="article_id >= 'x012'",
        )
    )  # fmt: skip
    assert later["overlap_planned"] == {"1": 6, "2": 6}
    plans = task_plans(corpus, project_name)
    server = _server_overlaps(ls_client, pid)
    assert len(plans) == len(server) == 24
    assert Counter(server.values()) == {1: 15, 3: 3, 2: 6}
    assert all(
        server[int(t)] == n for t, n in zip(plans["ls_task_id"], plans["overlap"], strict=True)
    )
    assert ls_client.get_project(pid)["maximum_annotations"] == 3
    # hunt N, F2: a plain push with another --overlap made Label Studio rewrite the plan's tasks
    with pytest.raises(SpanbankError, match="planned one by one"):
        workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, overlap=1))
    assert _server_overlaps(ls_client, pid) == server
    assert ls_client.get_project(pid)["maximum_annotations"] == 3


@pytest.mark.labelstudio
def test_a_planned_push_queued_behind_another_plans_after_it(
    tmp_path, ls_conn, project_name, monkeypatch
):
    """Hunt L, 14: two planned pushes at once (--wait) each picked and planned the same batch
    outside the lock; the second then found it pushed, and Label Studio's overlaps and
    task_plans disagreed. Now a planned push holds the corpus from its plan to its record."""
    import threading

    from spanbank.corpus.store import Corpus
    from spanbank.labelstudio.client import LabelStudioClient

    texts = {f"x{i:03d}": f"Story {i}. “Prices rise,” she said." for i in range(16)}
    make_corpus(tmp_path / "corpus", texts)
    inside, go, planned = threading.Event(), threading.Event(), []
    real_apply, real_select = operations.apply_overlap, operations.select_batch

    def slow_apply(*a, **kw):
        if not inside.is_set():  # the first push waits here, holding what it holds
            inside.set()
            go.wait(60)
        return real_apply(*a, **kw)

    def spy_select(*a, **kw):
        planned.append((threading.current_thread().name, inside.is_set(), go.is_set()))
        return real_select(*a, **kw)

    monkeypatch.setattr(operations, "apply_overlap", slow_apply)
    monkeypatch.setattr(operations, "select_batch", spy_select)
    out = {}

    def push(name, seed, create):
        corpus = Corpus(tmp_path / "corpus")  # each its own, as two processes
        out[name] = workflow.run(
            operations.push_planned(
                corpus, project_name, client=LabelStudioClient(*ls_conn), overlap=2,
                overlap_share=0.5, seed=seed, batch_size=8, create=create, wait=30,
            )
        )  # fmt: skip

    a = threading.Thread(target=push, args=("a", 1, True), name="a")
    a.start()
    assert inside.wait(60)
    b = threading.Thread(target=push, args=("b", 2, False), name="b")
    b.start()
    b.join(3)  # b queues behind a: it must not plan meanwhile
    go.set()
    a.join(120)
    b.join(120)
    assert [p for p in planned if p[0] == "b"] == [("b", True, True)]
    assert out["a"]["pushed"] == 8 and out["b"]["pushed"] == 8
    corpus = Corpus(tmp_path / "corpus")
    plans = task_plans(corpus, project_name)
    server = _server_overlaps(LabelStudioClient(*ls_conn), out["a"]["ls_project_id"])
    assert len(plans) == len(server) == 16
    assert all(
        server[int(t)] == n for t, n in zip(plans["ls_task_id"], plans["overlap"], strict=True)
    )


@pytest.mark.labelstudio
def test_a_stopped_plan_is_finished_by_a_push_that_finds_the_server_on_a_new_url(
    tmp_path, ls_conn, ls_client, project_name, monkeypatch
):
    """Hunt N, F3: the first planned push after the server moved (the same server under
    another host name) read the plan under the new URL before the records followed it, planned
    a new batch and left the old plan's rows without tasks."""
    from spanbank.labelstudio.client import LabelStudioClient

    texts = {f"x{i:03d}": f"Story {i}. “Prices rise,” she said." for i in range(12)}
    corpus = make_corpus(tmp_path / "corpus", texts)
    args = dict(overlap=2, overlap_share=0.5, seed=3, create=True, chunk_size=4, batch_size=8)
    stop_after_first_import(ls_client, monkeypatch)
    with pytest.raises(Stopped):
        workflow.run(operations.push_planned(corpus, project_name, client=ls_client, **args))
    monkeypatch.undo()
    moved = LabelStudioClient(ls_conn[0].replace("127.0.0.1", "localhost"), ls_conn[1])
    done = workflow.run(
        operations.push_planned(corpus, project_name, client=moved, **(args | {"seed": 4}))
    )
    assert done["resumed_plan"] == 8 and done["moved_from"] == ls_client.url
    plans = task_plans(corpus, project_name)
    assert len(plans) == 8 and plans["ls_task_id"].notna().all()
    assert set(plans["ls_url"]) == {moved.url}
    server = _server_overlaps(moved, done["ls_project_id"])
    assert all(
        server[int(t)] == n for t, n in zip(plans["ls_task_id"], plans["overlap"], strict=True)
    )
