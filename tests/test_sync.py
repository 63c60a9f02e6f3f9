"""push/pull against the real local Label Studio (started once per session in conftest.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from conftest import DATA, make_corpus
from spanbank.corpus import tables
from spanbank.errors import SpanbankError
from spanbank.labelstudio import identity, workflow
from spanbank.labelstudio import pull as ls_pull
from spanbank.labelstudio import push as ls_push
from spanbank.offsets import cp_to_utf16
from spanbank.schema import load_schema, normalise_config

pytestmark = pytest.mark.labelstudio

EMOJI = "Fans 😀🎉 cheered in ‘Rome’. “We won the cup,” said Ana López, beaming 🏆.\nThe end."
CRLF = "Headline here\r\n\r\nThe mayor said: “Roads will\r\nreopen soon.”\r\nMore later."


def _texts(n: int) -> dict[str, str]:
    texts = {
        f"a{i:04d}": f"Story {i}. “Prices will rise,” the minister said on Monday."
        for i in range(n)
    }
    texts["a0001"] = EMOJI
    texts["a0002"] = CRLF
    return texts


def _region(rid, text, sub, label, utf16=False, claimed=None, nth=0):
    start = -1
    for _ in range(nth + 1):
        start = text.index(sub, start + 1)
    end = start + len(sub)
    if utf16:
        start, end = cp_to_utf16(text, start), cp_to_utf16(text, end)
    value = {"start": start, "end": end, "text": claimed if claimed is not None else sub}
    return {
        "id": rid,
        "from_name": "label",
        "to_name": "text",
        "type": "labels",
        "value": {**value, "labels": [label]},
    }


def _choice(region, control, choice):
    return {
        "id": region["id"],
        "from_name": control,
        "to_name": "text",
        "type": "choices",
        "value": {**{k: region["value"][k] for k in ("start", "end", "text")}, "choices": [choice]},
    }


def _rel(a, b, label=None):
    return {
        "from_id": a,
        "to_id": b,
        "type": "relation",
        "direction": "right",
        "labels": [label] if label else [],
    }


def emoji_result(utf16: bool) -> list[dict]:
    q = _region("q1", EMOJI, "“We won the cup,”", "QUOTE", utf16)
    s = _region("s1", EMOJI, "Ana López", "SPEAKER", utf16)
    c = _region("c1", EMOJI, "said", "CUE", utf16)
    return [
        q,
        _choice(q, "QUOTE_type", "direct"),
        s,
        c,
        _rel("q1", "s1", "said_by"),
        _rel("q1", "c1"),
    ]


def crlf_result() -> list[dict]:
    # the frontend's text for a region across a line break can differ from the article's
    q = _region(
        "q1", CRLF, "“Roads will\r\nreopen soon.”", "QUOTE", claimed="“Roads will\nreopen soon.”"
    )
    s = _region("s1", CRLF, "The mayor", "SPEAKER")
    bad = _region("x1", CRLF, "Headline", "HEADLINE")  # not in the schema
    return [q, s, bad, _rel("q1", "s1", "said_by"), _rel("q1", "zz", "cue")]


def _users(client, n=2):
    tag = uuid.uuid4().hex[:6]
    return [client.create_user(f"annot{i}-{tag}@example.org", f"annot{i}{tag}") for i in range(n)]


def test_schema_config_accepted_by_server(ls_client, project_name):
    config = load_schema().label_config()
    proj = ls_client.create_project(project_name, config)
    got = ls_client.get_project(proj["id"])
    assert normalise_config(got["label_config"]) == normalise_config(config)
    assert set(got["parsed_label_config"]) >= {"label", "QUOTE_type", "EVENT_type"}


@pytest.fixture
def pushed(tmp_path, ls_client, project_name):
    corpus = make_corpus(tmp_path / "corpus", _texts(50))
    summary = workflow.run(
        ls_push.push_batch(
            corpus, project_name, client=ls_client, overlap=2, preannotate="rules", chunk_size=20
        )
    )
    return corpus, summary


def _server_articles(client, pid) -> pd.Series:
    rows = [
        (t["meta"] or {}).get("article_id")
        for p in client.task_pages(pid, include=["id", "meta"])
        for t in p
    ]
    return pd.Series(rows)


def test_push_pull_versions(pushed, ls_client, project_name):
    corpus, summary = pushed
    assert summary["pushed"] == 50 and summary["predictions"] > 0
    pid = summary["ls_project_id"]
    assert ls_client.get_project(pid)["maximum_annotations"] == 2
    tasks = corpus.read("tasks")
    assert (
        len(tasks) == 50
        and tasks["ls_task_id"].is_unique
        and set(tasks["schema_version"]) == {"news-v1"}
    )
    tid = dict(zip(tasks["article_id"], tasks["ls_task_id"], strict=True))
    u1, u2 = _users(ls_client)

    def simple(t):
        return [_region("q", t, "“Prices will rise,”", "QUOTE"), _region("c", t, "said", "CUE")]

    posted = {
        "e1": ls_client.create_annotation(
            tid["a0001"], emoji_result(False), completed_by=u1["id"], lead_time=3.5
        ),
        "e2": ls_client.create_annotation(tid["a0001"], emoji_result(True), completed_by=u2["id"]),
        "c1": ls_client.create_annotation(tid["a0002"], crlf_result(), completed_by=u1["id"]),
        "s1": ls_client.create_annotation(
            tid["a0003"], simple(_texts(4)["a0003"]), completed_by=u1["id"]
        ),
        "s2": ls_client.create_annotation(
            tid["a0003"], simple(_texts(4)["a0003"]), completed_by=u2["id"]
        ),
        "x2": ls_client.create_annotation(
            tid["a0004"], [], completed_by=u2["id"], was_cancelled=True
        ),
    }
    if os.environ.get("SPANBANK_RECORD_LS"):
        _record(ls_client, pid, [tid["a0001"], tid["a0002"]], "api_tasks.json")

    first = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert (first["new"], first["updated"], first["deleted"], first["cancelled"]) == (6, 0, 0, 1)
    assert first["repaired"] == {"utf16": 3}
    ann = corpus.read("annotations")
    assert len(ann) == 6 and set(ann["origin"]) == {"human"} and ann["version"].eq(1).all()
    tag = identity.server_records(corpus)["tag"].iloc[0]  # the server's, not its URL's
    assert ann["annotation_id"].str.fullmatch(rf"ls-{tag}-{pid}-\d+-v1").all()
    assert (
        ann["annotator"].str.fullmatch(r"ann-[0-9a-f]{8}").all() and ann["annotator"].nunique() == 2
    )
    spans = corpus.read("spans")
    texts = corpus.read("articles").set_index("article_id")["text"]
    for s in spans.itertuples():
        assert texts[s.article_id][s.start : s.end] == s.text
    emoji = spans[spans["article_id"] == "a0001"]
    assert len(emoji) == 6
    for _, grp in emoji.groupby("annotation_id"):
        q = grp[grp["label"] == "QUOTE"].iloc[0]
        assert (q["start"], q["end"], q["text"]) == (
            EMOJI.index("“We"),
            EMOJI.index("“We") + 17,
            "“We won the cup,”",
        )
        assert json.loads(q["attributes"]) == {"type": "direct"}
        assert grp.loc[grp["label"] == "SPEAKER", "text"].item() == "Ana López"
    assert sorted(emoji["offset_repair"].dropna()) == ["utf16"] * 3
    crlf = spans[spans["article_id"] == "a0002"]
    assert sorted(crlf["label"]) == ["QUOTE", "SPEAKER"]
    assert crlf.loc[crlf["label"] == "QUOTE", "text"].item() == "“Roads will\r\nreopen soon.”"
    rels = corpus.read("relations")
    e1 = ann.loc[ann["ls_annotation_id"] == posted["e1"]["id"], "annotation_id"].item()
    assert sorted(
        map(
            tuple, rels[rels["annotation_id"] == e1][["from_span_id", "to_span_id", "label"]].values
        )
    ) == [("q1", "c1", "cue"), ("q1", "s1", "said_by")]
    rejects = corpus.read("rejects")
    reasons = " | ".join(rejects["reason"])
    assert "HEADLINE" in reasons and "missing or rejected region 'zz'" in reasons
    # e-mails live in annotators only
    people = corpus.read("annotators")
    assert set(people["email"]) == {u1["email"], u2["email"]}
    for f in Path(corpus.path).glob("*.parquet"):
        if f.stem != "annotators":
            cells = corpus.read(f.stem).astype(str).to_numpy().ravel()
            assert not any("@example.org" in str(c) for c in cells), f.stem

    # edit one annotation, delete another; pull again
    edited = emoji_result(False)[:4]  # drop both relations
    ls_client.update_annotation(posted["e1"]["id"], result=edited)
    ls_client.delete_annotation(posted["s2"]["id"])
    second = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert (second["new"], second["updated"], second["deleted"]) == (0, 1, 1)
    ann2 = corpus.read("annotations")
    assert len(ann2) == 7  # nothing dropped: the edit is a new row
    old = ann2[ann2["annotation_id"] == e1].iloc[0]
    assert old["superseded"] and pd.isna(old["deleted_at"])
    new = ann2[(ann2["ls_annotation_id"] == posted["e1"]["id"]) & (ann2["version"] == 2)].iloc[0]
    assert not new["superseded"] and new["annotation_id"].endswith("-v2")
    gone = ann2[ann2["ls_annotation_id"] == posted["s2"]["id"]].iloc[0]
    assert pd.notna(gone["deleted_at"]) and not gone["superseded"]
    rels2 = corpus.read("relations")
    assert (
        len(rels2[rels2["annotation_id"] == e1]) == 2
        and not (rels2["annotation_id"] == new["annotation_id"]).any()
    )
    assert len(corpus.read("spans")) == len(spans) + 3
    latest = corpus.latest_annotations(project_name)
    assert len(latest) == 4  # 6 - cancelled - deleted (edited one counted once)
    if os.environ.get("SPANBANK_RECORD_LS"):
        _record(ls_client, pid, [tid["a0001"]], "api_tasks_edited.json")

    # the same state again changes nothing; the tasks updated in the second before the last
    # pull's listing began are fetched once more (an edit there could have been missed), then
    # none
    before = {n: corpus.read(n) for n in ("annotations", "spans", "relations", "rejects")}
    time.sleep(1.1)
    third = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert (third["new"], third["updated"], third["deleted"]) == (0, 0, 0)
    fourth = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert (fourth["new"], fourth["updated"], fourth["deleted"], fourth["tasks_fetched"]) == (
        0,
        0,
        0,
        0,
    )
    for n, df in before.items():
        pd.testing.assert_frame_equal(corpus.read(n), df)
    full = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client, full=True))
    assert (full["new"], full["updated"], full["deleted"]) == (0, 0, 0)

    # re-push: nothing new, one task per article on the server, the project record's birth kept
    created = corpus.read(tables.PROJECTS_TABLE).set_index("project").at[project_name, "created_at"]
    again = workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))
    assert again["pushed"] == 0 and again["skipped"] == {"already pushed": 50}
    assert (
        corpus.read(tables.PROJECTS_TABLE).set_index("project").at[project_name, "created_at"]
        == created
    )
    on_server = _server_articles(ls_client, pid)
    assert len(on_server) == 50 and on_server.is_unique


def _record(client, pid, task_ids, name):
    """Save tasks as this Label Studio returns them (e-mails scrubbed) for test_convert.py."""
    tasks = [t for p in client.task_pages(pid, ids=task_ids) for t in p]
    for t in tasks:
        for a in t.get("annotations", []):
            a["created_username"] = "annotator"
        t["annotators"] = []
    out = DATA / "ls" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(tasks, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def test_reconcile_records_lost_tasks(pushed, ls_client, project_name):
    """Tasks the server made but `tasks` lacks (killed before the write) are recorded, not re-pushed."""
    corpus, summary = pushed
    tasks = corpus.read("tasks")
    with corpus.writer() as w:
        w.replace("tasks", tasks.iloc[:30])
    again = workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))
    assert (again["reconciled"], again["pushed"]) == (20, 0)
    after = corpus.read("tasks")
    assert len(after) == 50 and after["article_id"].is_unique
    assert _server_articles(ls_client, summary["ls_project_id"]).is_unique


def test_pull_finds_tasks_its_table_lacks_by_their_meta(pushed, ls_client, project_name):
    """Pull reads the texts of the tasks it fetches, not every article's. A task `tasks` does not
    record (its row lost, or the task made in Label Studio) is looked up by its meta once the
    pages are in; one whose article is not in the corpus is skipped and counted."""
    corpus, summary = pushed
    pid, texts = summary["ls_project_id"], _texts(6)
    tasks = corpus.read("tasks")
    tid = dict(zip(tasks["article_id"], tasks["ls_task_id"], strict=True))
    with corpus.writer() as w:
        w.replace("tasks", tasks[tasks["article_id"] != "a0005"])
    (foreign,) = ls_client.import_tasks(
        pid, [{"data": {"text": "Not in the corpus."}, "meta": {"article_id": "zzz"}}]
    )
    (u1,) = _users(ls_client, 1)
    for aid in ("a0005", "a0003"):
        quote = [_region("q", texts[aid], "“Prices will rise,”", "QUOTE")]
        ls_client.create_annotation(tid[aid], quote, completed_by=u1["id"])
    ls_client.create_annotation(foreign, [], completed_by=u1["id"])
    got = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert (got["new"], got["spans"], got.get("skipped_unknown_tasks")) == (2, 2, 1)
    spans = corpus.read("spans")
    assert sorted(spans["article_id"]) == ["a0003", "a0005"]
    assert set(spans["text"]) == {"“Prices will rise,”"}


def test_push_selection_and_errors(tmp_path, ls_client, project_name):
    corpus = make_corpus(tmp_path / "c", _texts(12))
    ids = tmp_path / "ids.txt"
    ids.write_text("a0003\na0004\na0005\nnope\n")
    dry = workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, dry_run=True))
    assert dry["would_push"] == 12 and ls_client.find_project(project_name) is None
    from spanbank.errors import ProjectMissingError  # hunt O, F9: "would create" without --create

    with pytest.raises(ProjectMissingError, match="pass --create"):
        workflow.run(
            ls_push.push_batch(corpus, project_name, client=ls_client, dry_run=True, create=False)
        )
    s = workflow.run(
        ls_push.push_batch(
            corpus,
            project_name,
            client=ls_client,
            where="source == 'reuters'",
            ids=ids.read_text().split(),
        )
    )
    assert s["pushed"] == 2 and s["skipped"] == {"not in corpus": 1, "filtered out by --where": 1}
    s = workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, sample=3, seed=1))
    assert s["pushed"] == 3
    s = workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, batch_size=4))
    assert s["pushed"] == 4 and s["skipped"]["beyond --batch-size"] == 3
    with pytest.raises(SpanbankError, match="is not a valid filter"):
        workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, where="source =="))
    ls_client.update_project(
        ls_client.find_project(project_name)["id"],
        label_config=load_schema().label_config().replace('"EVENT"', '"EVT"'),
    )
    pulled = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert pulled["config_differs"] == "news-v1"  # hunt M: pull said nothing of the drift
    assert (
        f"project {project_name}'s labeling config differs from schema news-v1"
        in (ls_pull.pull_warnings(pulled)[0])
    )
    with pytest.raises(
        SpanbankError, match=r"labeling config differs from schema news-v1; pass --update-config"
    ):
        workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))
    s = workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, update_config=True))
    assert s["project_state"] == "config updated" and s["pushed"] == 3
    pulled = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert "config_differs" not in pulled and ls_pull.pull_warnings(pulled) == []


def test_ids_are_pushed_in_the_order_given():
    articles = pd.DataFrame({"article_id": [f"a{i}" for i in range(6)], "_row": range(6)})
    got, skipped = ls_push.select_articles(articles, ids=["a4", "nope", "a1", "a4", "a3"])
    assert got["article_id"].tolist() == ["a4", "a1", "a3"]
    assert skipped == {"not in corpus": 1}


def test_import_chunks_cut_by_count_and_by_characters():
    rows = [
        {"article_id": f"a{i}", "title": "t" * 2, "text": "x" * n}
        for i, n in enumerate([3, 3, 3, 20, 1, 1, 1, 1])
    ]
    rows[4]["title"] = float("nan")  # a missing title read by pandas
    cut = ls_push.import_chunks(rows, size=3, chars=12)
    assert [[r["article_id"] for r in c] for c in cut] == [
        ["a0", "a1"],  # 5 + 5, and a third would make 15 characters
        ["a2"],
        ["a3"],  # longer than the limit: alone
        ["a4", "a5", "a6"],  # 1 + 3 + 3: the count cuts here
        ["a7"],
    ]
    assert ls_push.import_chunks(rows, size=2500) == [rows]
    assert ls_push.import_chunks([], size=3) == []


def test_push_cuts_imports_by_text_size(tmp_path, ls_client, project_name, monkeypatch):
    """Label Studio documents a size limit per request, whatever its task count: push cuts its
    imports by characters too, and every article still lands once. A project past Label
    Studio's advised size is said so."""
    texts = {f"a{i:04d}": f"Story {i}. " + "Long text. " * (40 + i) for i in range(7)}
    corpus = make_corpus(tmp_path / "c", texts)
    sent = []
    real = ls_client.import_tasks

    def counting(pid, tasks, count=None):
        sent.append(count if count is not None else len(tasks))
        return real(pid, tasks, count)

    monkeypatch.setattr(ls_client, "import_tasks", counting)
    monkeypatch.setattr(ls_push, "CHUNK_CHARS", 1000)  # about two of these articles
    monkeypatch.setattr(ls_push, "PROJECT_TASKS", 6)
    s = workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client))
    assert s["pushed"] == 7
    assert s["project_size"].startswith("7 articles in this project")
    assert len(sent) >= 3 and sum(sent) == 7 and max(sent) <= 2
    remote = ls_push._server_tasks(ls_client, ls_client.find_project(project_name)["id"])
    assert sorted(remote["article_id"]) == sorted(texts)


def test_push_survives_sigkill(tmp_path, ls_conn, ls_client, project_name):
    """Kill a push after its first chunk is recorded; the re-run leaves one task per article."""
    n = 2000
    corpus = make_corpus(
        tmp_path / "big", {f"b{i:05d}": f"Item {i}: “Yes,” she said." for i in range(n)}
    )
    env = {**os.environ, "LABEL_STUDIO_URL": ls_conn[0], "LABEL_STUDIO_API_KEY": ls_conn[1]}
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
        "--chunk-size",
        "100",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while (
        not corpus.read_arrow("tasks").num_rows
        and time.monotonic() < deadline
        and proc.poll() is None
    ):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recorded = len(corpus.read("tasks"))
    assert 0 < recorded < n, "the kill should land part-way"
    out = subprocess.run(
        cmd[:-1] + ["--json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["reconciled"] + summary["pushed"] + recorded == n
    assert ls_conn[1] not in out.stdout + out.stderr
    pid = summary["ls_project_id"]
    on_server = _server_articles(ls_client, pid)
    assert len(on_server) == n and on_server.is_unique
    tasks = corpus.read("tasks")
    assert len(tasks) == n and tasks["article_id"].is_unique and tasks["ls_task_id"].is_unique


def test_pull_unknown_project(tmp_path, ls_client):
    corpus = make_corpus(tmp_path / "c", _texts(3))
    with pytest.raises(SpanbankError, match=re.escape("push to it first")):
        workflow.run(ls_pull.pull(corpus, f"nope-{uuid.uuid4().hex[:6]}", client=ls_client))


@pytest.mark.parametrize("name", [" pad-X ", "pad-X ", "   "])
def test_a_project_name_with_spaces_at_its_ends_is_refused_before_anything(tmp_path, name):
    """Hunt O, F12: Label Studio strips the spaces, so `push --project " pad-X " --create` made a
    second project `pad-X` (and "   " an untitled one) that spanbank could then never find."""
    from spanbank.labelstudio import operations

    corpus = make_corpus(tmp_path / "c", _texts(2))
    for make in (ls_push.push_batch, operations.push_planned):
        kw = {"overlap_share": 0.5, "overlap": 2} if make is operations.push_planned else {}
        with pytest.raises(SpanbankError, match="begins or ends with a space"):
            workflow.run(make(corpus, name, url="http://127.0.0.1:9", api_key="x", **kw))
