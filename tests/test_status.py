"""`spanbank status` tells the truth; `spanbank annotators` and --annotators name people safely."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import make_corpus
from spanbank.annotators import list_annotators, resolve_annotators
from spanbank.cli import cli
from spanbank.errors import AnnotatorError
from spanbank.status import corpus_status

NOW = pd.Timestamp("2024-01-01", tz="UTC")
TEXTS = {a: f"Text of article {a}. Ana said so." for a in ("a1", "a2", "a3", "a4")}


def _task(project, article, tid):
    return {
        "project": project,
        "ls_url": "http://ls",
        "ls_project_id": 1,
        "article_id": article,
        "ls_task_id": tid,
        "batch_id": "b1",
        "pushed_at": NOW,
        "schema_version": "news-v1",
    }


def _ann(aid, project, article, annotator, origin="human", **flags):
    return {
        "annotation_id": aid,
        "project": project,
        "article_id": article,
        "ls_task_id": 1,
        "ls_annotation_id": 1,
        "annotator": annotator,
        "origin": origin,
        "created_at": NOW,
        "updated_at": NOW,
        "lead_time_s": 1.0,
        "cancelled": False,
        "version": 1,
        "superseded": False,
        "deleted_at": None,
        "pulled_at": NOW,
        **flags,
    }


def _span(aid, article, n, start=0, end=4):
    return {
        "annotation_id": aid,
        "span_id": f"{aid}-s{n}",
        "article_id": article,
        "label": "SPEAKER",
        "start": start,
        "end": end,
        "text": TEXTS[article][start:end],
        "attributes": None,
        "offset_repair": None,
    }


@pytest.fixture
def corpus(tmp_path):
    """Project p (overlap 2) on a1-a4 and project q on a1-a2, annotated, adjudicated and reviewed."""
    c = make_corpus(tmp_path / "corpus", TEXTS)
    tasks = [_task("p", a, i) for i, a in enumerate(TEXTS)] + [
        _task("q", a, 10 + i) for i, a in enumerate(["a1", "a2"])
    ]
    anns = [
        _ann("h1", "p", "a1", "ann-u1"),
        _ann("h2", "p", "a1", "ann-u2"),
        _ann("h3", "p", "a2", "ann-u1"),
        _ann("h4-v1", "p", "a3", "ann-u2", superseded=True),
        _ann("h4-v2", "p", "a3", "ann-u2"),
        _ann("h5", "p", "a2", "ann-u2", deleted_at=NOW),
        _ann("h6", "p", "a4", "ann-u2", cancelled=True),  # skipped
        _ann("q1", "q", "a1", "ann-u3"),
        _ann("g1", "q", "a1", "gold:majority", origin="gold"),  # gold of q only
        _ann(
            "r1", "q-review", "a1", "gold:review", origin="gold", reviewer="ann-u4", review_of="q"
        ),
    ]
    spans = [
        _span("h1", "a1", 0),
        _span("h2", "a1", 0),
        _span("h3", "a2", 0),
        _span("h4-v1", "a3", 0),
        _span("h4-v1", "a3", 1, 5, 9),
        _span("h4-v2", "a3", 0),
        _span("h5", "a2", 0),
        _span("h6", "a4", 0),
        _span("q1", "a1", 0),
        _span("g1", "a1", 0),
        _span("r1", "a1", 0),
    ]
    records = pd.DataFrame(
        [
            {
                "project": "p",
                "ls_url": "http://ls",
                "ls_project_id": 1,
                "maximum_annotations": 2,
                "last_pull_at": NOW,
                "kind": None,
                "review_of": None,
            },
            {
                "project": "q-review",
                "ls_url": "http://ls",
                "ls_project_id": 3,
                "maximum_annotations": 1,
                "last_pull_at": NOW,
                "kind": "review",
                "review_of": "q",
            },
        ]
    )
    conflicts = pd.DataFrame(
        [
            {
                "article_id": "a1",
                "project": "q",
                "strategy": "majority",
                "group_id": "g",
                "kind": "label",
                "detail": "x",
            },
            {
                "article_id": "a1",
                "project": "q",
                "strategy": "majority",
                "group_id": "h",
                "kind": "span",
                "detail": "y",
            },
        ]
    )
    with c.writer() as w:
        w.replace("tasks", tasks)
        w.replace("annotations", pd.DataFrame(anns))
        w.replace("spans", spans)
        w.replace("projects", records)
        w.replace("conflicts", conflicts)
        w.append(
            "annotators",
            [
                {
                    "annotator": "ann-u1",
                    "ls_url": "http://ls",
                    "ls_user_id": 1,
                    "email": "ana.lopez@example.org",
                },
                {
                    "annotator": "ann-u2",
                    "ls_url": "http://ls",
                    "ls_user_id": 2,
                    "email": "Bo@example.org",
                },
                {
                    "annotator": "ann-u5",
                    "ls_url": "http://ls2",
                    "ls_user_id": 9,
                    "email": "bo@example.org",
                },
                {
                    "annotator": "ann-u4",
                    "ls_url": "http://ls",
                    "ls_user_id": 4,
                    "email": "rev@example.org",
                },
            ],
        )
    return c


def _project(st, name):
    return next(p for p in st["projects"] if p["project"] == name)


def test_spans_and_annotations_count_live_ones_only(corpus):
    st = corpus_status(corpus)
    # live: h1 h2 h3 h4-v2 q1 (human), g1 r1 (gold); not the superseded, deleted or skipped
    assert st["annotations"] == {"gold": 2, "human": 5}
    assert st["skipped"] == 1
    assert st["spans"] == 7
    assert _project(st, "p")["spans"] == 4


def test_spans_are_counted_across_the_files_of_the_table(corpus):
    """Spans are counted a batch at a time: one annotation's spans written by two commits (two
    files) are counted once each, and their annotation's timed work keeps its span count."""
    before = corpus_status(corpus)
    with corpus.writer() as w:
        w.append("annotations", pd.DataFrame([_ann("z1", "p", "a1", "zed")]))
        w.append("spans", pd.DataFrame([_span("z1", "a1", 0)]))
    with corpus.writer() as w:
        w.append("spans", pd.DataFrame([_span("z1", "a1", 1), _span("z1", "a1", 2)]))
    assert len(corpus.table_files("spans")) >= 3
    st = corpus_status(corpus)
    assert st["spans"] == before["spans"] + 3
    assert _project(st, "p")["spans"] == _project(before, "p")["spans"] + 3
    zed = st["throughput"]["per_annotator"]["zed"]
    assert zed["annotations"] == 1 and zed["spans"] == 3


def test_project_coverage_against_its_overlap(corpus):
    p = _project(corpus_status(corpus), "p")
    assert (p["tasks"], p["pushed"], p["annotated"], p["pending"], p["annotators"]) == (
        4,
        4,
        3,
        1,
        2,
    )
    assert p["overlap"] == 2
    # a1 has two annotators; a2 and a3 one (the deleted one does not count); a4 none (skipped)
    assert p["needs_more"] == {"1": 2, "2": 1} and p["under_annotated"] == 3
    assert p["progress"] == [
        {"annotator": "ann-u1", "done": 2, "skipped": 0, "assigned": 4},
        {"annotator": "ann-u2", "done": 2, "skipped": 1, "assigned": 4},
    ]


def test_gold_reviews_and_conflicts_count_for_their_project_only(corpus):
    st = corpus_status(corpus)
    p, q, rv = _project(st, "p"), _project(st, "q"), _project(st, "q-review")
    # p shares a1 with q, yet q's gold, review and conflicts are not p's
    assert (p["adjudicated"], p["reviewed"], p["conflicts"], p["with_conflicts"]) == (0, 0, 0, 0)
    assert (q["adjudicated"], q["reviewed"], q["conflicts"], q["with_conflicts"]) == (1, 1, 2, 1)
    assert q["overlap"] is None and q["needs_more"] == {"1": 1}  # a2: no annotator yet
    assert (rv["kind"], rv["review_of"], rv["annotators"]) == ("review", "q", 1)
    assert rv["progress"] == [{"annotator": "ann-u4", "done": 1, "skipped": 0, "assigned": 0}]


def test_status_text_names_the_corpus_by_its_path(corpus, monkeypatch):
    monkeypatch.chdir(corpus.path.parent)
    out = CliRunner().invoke(cli, ["--corpus", "corpus", "status"], catch_exceptions=False).output
    lines = out.splitlines()
    n = len(corpus.commits())
    assert lines[0] == f"corpus at {corpus.path.resolve()} (schema news-v1, commit {n})"
    assert "corpus corpus" not in out
    assert lines[2] == "annotations: gold 2, human 5 (skipped 1)"
    assert (
        "project p: tasks 4, pushed 4, annotated 3, pending 1, annotators 2, spans 4, "
        "last pull 2024-01-01T00:00:00+00:00"
    ) in lines
    assert "  overlap 2: 3 article(s) short (2 need 1 more, 1 need 2 more)" in lines
    assert "  ann-u2: done 2 / assigned 4, skipped 1" in lines
    assert "  adjudicated 1, reviewed 1, conflicts 2 in 1 article(s)" in lines
    assert (
        "project q-review (review of q): tasks 0, pushed 0, annotated 1, pending 0, annotators 1, spans 1, "
        "last pull 2024-01-01T00:00:00+00:00" in lines
    )
    st = json.loads(CliRunner().invoke(cli, ["--corpus", "corpus", "status", "--json"]).output)
    assert st["corpus"] == str(corpus.path.resolve())
    assert _project(st, "p")["needs_more"] == {"1": 2, "2": 1}
    assert "example.org" not in out + json.dumps(st)


def test_annotators_lists_pseudonyms_and_hides_emails(corpus):
    runner = CliRunner()
    out = runner.invoke(
        cli, ["--corpus", str(corpus.path), "annotators"], catch_exceptions=False
    ).output
    assert "ann-u1: user 1 at http://ls; 2 annotation(s) in p" in out
    assert "ann-u4: user 4 at http://ls; 0 annotation(s), 1 review(s)" in out
    assert "ann-u3: no Label Studio user; 1 annotation(s) in q" in out
    assert "@" not in out
    shown = runner.invoke(cli, ["--corpus", str(corpus.path), "annotators", "--show-emails"]).output
    assert (
        "ann-u1: user 1 at http://ls (ana.lopez@example.org, user name ana.lopez); 2 annotation(s) in p"
        in shown
    )
    rows = json.loads(
        runner.invoke(cli, ["--corpus", str(corpus.path), "annotators", "--json"]).output
    )
    assert [r["annotator"] for r in rows] == ["ann-u1", "ann-u2", "ann-u3", "ann-u4", "ann-u5"]
    assert all("email" not in r for r in rows)
    assert list_annotators(corpus, show_emails=True)[1]["email"] == "Bo@example.org"


def test_resolve_annotators_by_pseudonym_user_name_or_email(corpus):
    assert resolve_annotators(corpus, ["ann-u1"]) == ["ann-u1"]
    assert resolve_annotators(corpus, ["ana.lopez@example.org"]) == ["ann-u1"]
    assert resolve_annotators(corpus, ["ANA.LOPEZ", "ann-u1"]) == ["ann-u1"]  # no repeats
    # one person seen on two servers: both pseudonyms
    assert resolve_annotators(corpus, ["bo@example.org"]) == ["ann-u2", "ann-u5"]
    assert resolve_annotators(corpus, ["ann-u3"]) == ["ann-u3"]  # imported, no Label Studio user
    with pytest.raises(AnnotatorError, match="no annotator 'carol'") as err:
        resolve_annotators(corpus, ["carol"])
    assert "@" not in str(err.value)


def test_resolve_refuses_a_user_name_two_people_share(corpus):
    with corpus.writer() as w:
        w.append(
            "annotators",
            [
                {
                    "annotator": "ann-u6",
                    "ls_url": "http://ls",
                    "ls_user_id": 6,
                    "email": "ana.lopez@elsewhere.org",
                }
            ],
        )
    with pytest.raises(AnnotatorError, match="belongs to 2 Label Studio users"):
        resolve_annotators(corpus, ["ana.lopez"])
    assert resolve_annotators(corpus, ["ana.lopez@elsewhere.org"]) == ["ann-u6"]


def test_agree_takes_annotators_by_email(corpus):
    runner = CliRunner()
    base = ["--corpus", str(corpus.path), "agree", "--project", "p", "--bootstrap", "0", "--json"]
    res = runner.invoke(
        cli, base + ["--annotators", "ana.lopez@example.org,bo"], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    assert sorted(json.loads(res.output)["coverage"]["annotators"]) == ["ann-u1", "ann-u2"]
    res = runner.invoke(cli, base + ["--annotators", "carol@example.org"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        "Error: no annotator 'carol@example.org' in this corpus (not a pseudonym, Label Studio "
        "user name or e-mail); `spanbank annotators` lists them"
    ]
