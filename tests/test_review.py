"""The review loop against the real local Label Studio: conflicts pushed to NAME-review with
each annotator's version and the gold as predictions, a reviewer's annotation pulled back as
`gold:review`, which agreement and adjudication ignore and exports prefer."""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import make_corpus
from spanbank.agreement.report import agreement_report
from spanbank.cli import cli
from spanbank.corpus import tables
from spanbank.corpus.annotations import REVIEW_ANNOTATOR
from spanbank.errors import SpanbankError
from spanbank.export import export_dataset
from spanbank.export.jsonl import read_jsonl
from spanbank.gold import run_adjudication, select_annotations
from spanbank.labelstudio import convert, review, workflow
from spanbank.labelstudio import pull as ls_pull
from spanbank.labelstudio import push as ls_push
from spanbank.schema import load_schema
from spanbank.status import corpus_status

T1 = "“Taxes will fall,” the minister said on Monday. Critics disagreed."
T2 = "Fans 😀 cheered. “We won,” said Ana López after the final."
T3 = "Markets rose. “Growth is back,” the governor said."
T4 = "A quiet day. “Nothing to report,” a spokesman said."
TEXTS = {"r1": T1, "r2": T2, "r3": T3, "r4": T4}


def _region(rid, text, sub, label, choice=None):
    start = text.index(sub)
    value = {"start": start, "end": start + len(sub), "text": sub}
    out = [
        {
            "id": rid,
            "from_name": "label",
            "to_name": "text",
            "type": "labels",
            "value": {**value, "labels": [label]},
        }
    ]
    if choice is not None:
        out.append(
            {
                "id": rid,
                "from_name": f"{label}_type",
                "to_name": "text",
                "type": "choices",
                "value": {**value, "choices": [choice]},
            }
        )
    return out


def _rel(a, b, label):
    return {"from_id": a, "to_id": b, "type": "relation", "direction": "right", "labels": [label]}


def full(text, quote, speaker, cue=None, qtype="direct"):
    """A quote (with its type), its speaker and optionally its cue, linked."""
    res = _region("q", text, quote, "QUOTE", qtype) + _region("s", text, speaker, "SPEAKER")
    res.append(_rel("q", "s", "said_by"))
    if cue is not None:
        res += _region("c", text, cue, "CUE") + [_rel("q", "c", "cue")]
    return res


def _spans(text, result):
    """(label, start, end, attributes) of a Label Studio result, as the corpus would store it."""
    conv = convert.convert_annotation(result, text, load_schema(), "x", "x")
    assert not conv.rejects, conv.rejects
    return sorted((s["label"], s["start"], s["end"], s["attributes"]) for s in conv.spans)


def _stored(corpus, annotation_id):
    sp = corpus.read("spans")
    sp = sp[sp["annotation_id"] == annotation_id]
    attrs = sp["attributes"].astype(object).where(sp["attributes"].notna(), None)
    return sorted(zip(sp["label"], sp["start"], sp["end"], attrs, strict=True))


def _prediction(task, model_version):
    [result] = [p["result"] for p in task["predictions"] if p["model_version"] == model_version]
    return result


def _review_tasks(client, pid):
    return {t["meta"]["article_id"]: t for page in client.task_pages(pid) for t in page}


@pytest.fixture
def annotated(tmp_path, ls_client, project_name):
    """Four articles pushed to a project, annotated by three users (r4 by one), pulled."""
    corpus = make_corpus(tmp_path / "corpus", TEXTS)
    workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, overlap=3))
    tasks = corpus.read("tasks")
    tid = dict(zip(tasks["article_id"], tasks["ls_task_id"].astype(int), strict=True))
    tag = uuid.uuid4().hex[:6]
    users = [
        ls_client.create_user(f"{n}-{tag}@example.org", f"{n}{tag}") for n in ("ann", "bob", "cat")
    ]
    a, b, c = (u["id"] for u in users)
    # r1: cat's quote leaves out the quotation marks, is indirect and has no cue
    r1 = full(T1, "“Taxes will fall,”", "the minister", "said")
    for user in (a, b):
        ls_client.create_annotation(tid["r1"], r1, completed_by=user)
    ls_client.create_annotation(
        tid["r1"], full(T1, "Taxes will fall", "the minister", qtype="indirect"), completed_by=c
    )
    # r2: cat drew no speaker
    r2 = full(T2, "“We won,”", "Ana López")
    for user in (a, b):
        ls_client.create_annotation(tid["r2"], r2, completed_by=user)
    ls_client.create_annotation(
        tid["r2"], _region("q", T2, "“We won,”", "QUOTE", "direct"), completed_by=c
    )
    # r3: everyone agrees; r4: one annotator only
    for user in (a, b, c):
        ls_client.create_annotation(
            tid["r3"], full(T3, "“Growth is back,”", "the governor", "said"), completed_by=user
        )
    ls_client.create_annotation(
        tid["r4"], full(T4, "“Nothing to report,”", "a spokesman"), completed_by=a
    )
    pulled = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert pulled["new"] == 10 and pulled["rejected"] == 0
    people = corpus.read("annotators").set_index("ls_user_id")["annotator"]
    return corpus, [people[a], people[b], people[c]]


def _cli_env(ls_conn):
    return {"LABEL_STUDIO_URL": ls_conn[0], "LABEL_STUDIO_API_KEY": ls_conn[1]}


@pytest.mark.labelstudio
def test_review_round_trip(annotated, ls_client, ls_conn, project_name, tmp_path):
    corpus, who = annotated
    name = project_name + "-review"
    adj = run_adjudication(corpus, "majority", project=project_name)
    assert adj["articles"] == 3 and adj["articles_with_conflicts"] == 2
    assert review.conflict_articles(corpus, project_name, "majority") == ["r1", "r2"]

    # 1. push the conflicts (library call)
    summary = workflow.run(review.push_review(corpus, project_name, "majority", client=ls_client))
    assert (summary["project"], summary["pushed"], summary["articles_with_conflicts"]) == (
        name,
        2,
        2,
    )
    assert summary["prefill"] == "gold:majority"
    pid = summary["ls_project_id"]
    proj = ls_client.get_project(pid)
    assert proj["model_version"] == "gold:majority" and proj["show_collab_predictions"] is True
    assert proj["label_config"] == ls_client.find_project(project_name)["label_config"]
    records = corpus.read(tables.PROJECTS_TABLE).set_index("project")
    assert records.at[name, "kind"] == "review" and records.at[name, "review_of"] == project_name
    assert pd.isna(records.at[project_name, "kind"])
    with pytest.raises(SpanbankError, match="is a review project"):
        workflow.run(ls_push.push_batch(corpus, name, client=ls_client))

    tasks = _review_tasks(ls_client, pid)
    assert sorted(tasks) == ["r1", "r2"]
    humans = corpus.latest_annotations(project_name).set_index(["article_id", "annotator"])
    for aid, task in tasks.items():
        assert task["data"]["text"] == TEXTS[aid]
        preds = {p["model_version"]: p["result"] for p in task["predictions"]}
        assert sorted(preds) == sorted(who) + ["gold:majority"]  # one per annotator, plus the gold
        for pseudonym in who:
            assert _spans(TEXTS[aid], preds[pseudonym]) == _stored(
                corpus, humans.at[(aid, pseudonym), "annotation_id"]
            )
        assert _spans(TEXTS[aid], preds["gold:majority"]) == _stored(
            corpus, f"gold-majority-{project_name}-{aid}"
        )
    gold_r1 = _spans(T1, _prediction(tasks["r1"], "gold:majority"))
    assert [s[0] for s in gold_r1] == ["CUE", "QUOTE", "SPEAKER"]  # the majority kept the cue
    gold_rels = [r for r in _prediction(tasks["r1"], "gold:majority") if r["type"] == "relation"]
    assert sorted(r["labels"][0] for r in gold_rels) == ["cue", "said_by"]
    # what the labeling stream pre-fills for a reviewer: the gold only
    nxt = ls_client.request("GET", f"api/projects/{pid}/next")
    assert [p["model_version"] for p in nxt["predictions"]] == ["gold:majority"]

    # 2. re-run through the CLI: nothing new on the server
    runner = CliRunner()
    args = [
        "--corpus",
        str(corpus.path),
        "adjudicate",
        "--strategy",
        "majority",
        "--project",
        project_name,
        "--review",
    ]
    res = runner.invoke(cli, args, env=_cli_env(ls_conn))
    assert res.exit_code == 0, res.output
    assert f"review: 0 article(s) pushed to {name}, 2 already there" in res.output
    assert f"after reviewing: spanbank pull --project {name}" in res.output
    assert ls_conn[1] not in res.output
    # a corpus that lost its record of the review tasks finds them on the server by article_id
    all_tasks = corpus.read("tasks")
    with corpus.writer() as w:
        w.replace("tasks", all_tasks[all_tasks["project"] != name])
    before = len(corpus.read("commits"))
    res = runner.invoke(cli, args + ["--json"], env=_cli_env(ls_conn))
    assert res.exit_code == 0, res.output
    # the gold, the review project's record and its tasks: one command, one commit (it made
    # three, giving up the lock between them: hunt J, finding 3)
    assert len(corpus.read("commits")) == before + 1
    again = json.loads(res.output)["review"]
    assert (again["pushed"], again["already_in_review"], again["reconciled"]) == (0, 2, 2)
    assert len(_review_tasks(ls_client, pid)) == 2
    assert len(corpus.read("tasks").query("project == @name")) == 2

    # 3. a reviewer disagrees with the gold on r1 and accepts it on r2
    reviewer = ls_client.create_user(f"rev-{uuid.uuid4().hex[:6]}@example.org")
    mine = full(T1, "Taxes will fall", "the minister", qtype="indirect")
    posted = ls_client.create_annotation(tasks["r1"]["id"], mine, completed_by=reviewer["id"])
    ls_client.create_annotation(
        tasks["r2"]["id"], _prediction(tasks["r2"], "gold:majority"), completed_by=reviewer["id"]
    )
    res = runner.invoke(
        cli,
        ["--corpus", str(corpus.path), "pull", "--project", name, "--json"],
        env=_cli_env(ls_conn),
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["new"] == 2

    ann = corpus.read("annotations")
    rv = ann[ann["project"] == name].set_index("article_id")
    assert sorted(rv.index) == ["r1", "r2"]
    assert (rv["annotator"] == REVIEW_ANNOTATOR).all() and (rv["origin"] == "gold").all()
    assert (rv["review_of"] == project_name).all()
    people = corpus.read("annotators").set_index("ls_user_id")["annotator"]
    assert (rv["reviewer"] == people[reviewer["id"]]).all()  # kept, as a pseudonym
    assert not ann["annotator"].eq(people[reviewer["id"]]).any()  # never as an annotator
    assert _stored(corpus, rv.at["r1", "annotation_id"]) == _spans(T1, mine) != gold_r1
    assert [s[3] for s in _stored(corpus, rv.at["r1", "annotation_id"]) if s[0] == "QUOTE"] == [
        '{"type": "indirect"}'
    ]
    assert _stored(corpus, rv.at["r2", "annotation_id"]) == _stored(
        corpus, f"gold-majority-{project_name}-r2"
    )

    # 4. the reviewer counts in neither agreement nor adjudication
    for scope in (project_name, None):
        report = agreement_report(corpus, project=scope, bootstrap=0)
        assert sorted(report["coverage"]["annotators"]) == sorted(who)
        assert report["coverage"]["annotations"] == 9  # three annotators on r1-r3 (r4 has one)
    redo = run_adjudication(corpus, "majority", project=project_name)
    assert (redo["articles"], redo["replaced"], redo["articles_with_conflicts"]) == (3, 3, 2)
    assert _stored(corpus, f"gold-majority-{project_name}-r1") == gold_r1  # still three voters
    assert len(corpus.read("annotations").query("annotator == @REVIEW_ANNOTATOR")) == 2
    row = next(p for p in corpus_status(corpus)["projects"] if p["project"] == project_name)
    assert (row["adjudicated"], row["reviewed"], row["with_conflicts"], row["annotators"]) == (
        3,
        2,
        2,
        3,
    )
    rv = next(
        p for p in corpus_status(corpus)["projects"] if p["project"] == f"{project_name}-review"
    )
    assert (rv["pushed"], rv["annotated"], rv["pending"], rv["annotators"]) == (2, 2, 0, 1)

    # 5. exports use the reviewed gold
    for project in (None, project_name):
        sel = select_annotations(corpus, gold="auto", project=project).set_index("article_id")
        assert sel.loc[["r1", "r2", "r3", "r4"], "selection"].tolist() == [
            "review",
            "review",
            "gold",
            "single",
        ]
    out = tmp_path / "export"
    export_dataset(corpus, ["jsonl"], out, gold="auto")
    docs = {
        d["article_id"]: d for f in sorted((out / "jsonl").glob("*.jsonl")) for d in read_jsonl(f)
    }
    assert sorted(docs) == ["r1", "r2", "r3", "r4"]
    got = sorted((s["label"], s["text"]) for s in docs["r1"]["spans"])
    assert got == [("QUOTE", "Taxes will fall"), ("SPEAKER", "the minister")]
    assert [s["attributes"] for s in docs["r1"]["spans"] if s["label"] == "QUOTE"] == [
        {"type": "indirect"}
    ]
    assert len(docs["r1"]["relations"]) == 1
    assert sorted(s["text"] for s in docs["r2"]["spans"]) == ["Ana López", "“We won,”"]

    # 6. the reviewer's edit is a new version, which exports take
    ls_client.update_annotation(posted["id"], result=mine + _region("c", T1, "said", "CUE"))
    workflow.run(ls_pull.pull(corpus, name, client=ls_client))
    ann = corpus.read("annotations")
    r1 = ann[(ann["project"] == name) & (ann["article_id"] == "r1")].sort_values("version")
    assert r1["version"].tolist() == [1, 2] and r1["superseded"].tolist() == [True, False]
    assert (r1["annotator"] == REVIEW_ANNOTATOR).all()
    sel = select_annotations(corpus).set_index("article_id")
    assert sel.at["r1", "annotation_id"] == r1["annotation_id"].iloc[-1]


@pytest.mark.labelstudio
def test_no_conflicts_pushes_nothing(tmp_path, ls_client, project_name):
    corpus = make_corpus(tmp_path / "c", {"r3": T3})
    workflow.run(ls_push.push_batch(corpus, project_name, client=ls_client, overlap=2))
    tid = int(corpus.read("tasks")["ls_task_id"].iloc[0])
    tag = uuid.uuid4().hex[:6]
    for n in ("x", "y"):
        user = ls_client.create_user(f"{n}-{tag}@example.org")
        ls_client.create_annotation(
            tid, full(T3, "“Growth is back,”", "the governor"), completed_by=user["id"]
        )
    workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    run_adjudication(corpus, "majority", project=project_name)
    summary = workflow.run(review.push_review(corpus, project_name, "majority", client=ls_client))
    assert (summary["pushed"], summary["articles_with_conflicts"]) == (0, 0)
    assert ls_client.find_project(project_name + "-review") is None


def test_review_needs_stored_gold(tmp_path):
    corpus = make_corpus(tmp_path / "c", {"r1": T1})
    with pytest.raises(
        SpanbankError,
        match=r"no majority gold for project 'news'; run `spanbank adjudicate "
        r"--strategy majority --project news` first",
    ):
        workflow.run(review.push_review(corpus, "news", "majority"))


def test_cli_review_needs_project(tmp_path):
    corpus = make_corpus(tmp_path / "c", {"r1": T1})
    res = CliRunner().invoke(cli, ["--corpus", str(corpus.path), "adjudicate", "--review"])
    assert res.exit_code == 2
    assert "Error: --review needs --project NAME (the review project is NAME-review)" in res.output


def test_review_refuses_gold_made_before_its_annotators_last_edit(tmp_path):
    """Stale gold's conflicts and pre-fill are out of date: one line, nothing pushed (the
    refusal comes before any connection: no server here)."""
    from test_adjudicate import _ann, _full, build_corpus
    from test_gold_stale import _add

    corpus = build_corpus(tmp_path / "c")
    run_adjudication(corpus, "majority", project="news")
    spans, rels = _full("h5v2", "a2")
    _add(corpus, [_ann("h5v2", "a2", "bob", version=2)], spans, rels, replace=["h5"])
    with pytest.raises(SpanbankError, match=r"^1 article\(s\)' majority gold of project 'news' "):
        workflow.run(review.push_review(corpus, "news", "majority", url="http://127.0.0.1:9"))
    assert corpus.read("tasks").empty and corpus.read("projects").empty
    run_adjudication(corpus, "majority", project="news")
    assert review._refuse_stale(corpus, "news", "majority") is None
