"""Throughput and cost from lead times: hand-computed figures, status --json, export manifest."""

from __future__ import annotations

import itertools
import json

import pandas as pd
from click.testing import CliRunner

from conftest import make_corpus
from spanbank.cli import cli
from spanbank.throughput import gold_cost, throughput

DAY1 = pd.Timestamp("2024-03-01 09:00", tz="UTC")
DAY2 = pd.Timestamp("2024-03-02 09:00", tz="UTC")
TEXTS = {a: f"Ana said {a} was fine." for a in ("a1", "a2", "a3")}


def _ann(aid, article, annotator, lead, created=DAY1, origin="human", **flags):
    return {
        "annotation_id": aid,
        "project": "p",
        "article_id": article,
        "ls_task_id": 1,
        "ls_annotation_id": 1,
        "annotator": annotator,
        "origin": origin,
        "created_at": created,
        "updated_at": created,
        "lead_time_s": lead,
        "cancelled": False,
        "version": 1,
        "superseded": False,
        "deleted_at": None,
        "pulled_at": created,
        **flags,
    }


def _span(aid, article, n, label):
    return {
        "annotation_id": aid,
        "span_id": f"{aid}-s{n}",
        "article_id": article,
        "label": label,
        "start": 0,
        "end": 3,
        "text": "Ana",
        "attributes": None,
        "offset_repair": None,
    }


ANNS = [
    _ann("u1-a1", "a1", "u1", 60.0),  # 2 spans: SPEAKER, QUOTE -> 30 s each
    _ann("u1-a2", "a2", "u1", 120.0, created=DAY2),  # 1 QUOTE -> 120 s
    _ann("u2-a1", "a1", "u2", 30.0),  # 3 spans: 10 s each
    _ann("u2-a2-old", "a2", "u2", 999.0, superseded=True),  # not live: ignored
    _ann("u2-a3", "a3", "u2", 500.0, deleted_at=DAY2),  # deleted: ignored
    _ann("imp-a3", "a3", "brat1", None, origin="import"),  # no lead time: ignored
]
SPANS = [
    _span("u1-a1", "a1", 0, "SPEAKER"),
    _span("u1-a1", "a1", 1, "QUOTE"),
    _span("u1-a2", "a2", 0, "QUOTE"),
    _span("u2-a1", "a1", 0, "SPEAKER"),
    _span("u2-a1", "a1", 1, "SPEAKER"),
    _span("u2-a1", "a1", 2, "CUE"),
    _span("u2-a2-old", "a2", 0, "CUE"),
]


def test_throughput_figures_by_hand():
    t = throughput(pd.DataFrame(ANNS), pd.DataFrame(SPANS))
    assert t["annotations"] == 3
    assert t["hours"] == round(210 / 3600, 4)
    # pooled, an article done by two annotators counts once (hunt L, 9: it counted twice)
    assert t["overall"]["articles_per_hour"] == round(2 * 3600 / 210, 3)
    assert t["overall"]["annotations_per_hour"] == round(3 * 3600 / 210, 3)
    u1 = t["per_annotator"]["u1"]
    assert u1["seconds"] == 180.0 and u1["spans"] == 3
    assert u1["articles_per_hour"] == 40.0  # 2 articles in 180 s
    assert u1["seconds_per_span"] == 60.0
    assert u1["seconds_per_annotation"]["p50"] == 90.0
    assert [(d["day"], d["annotations"]) for d in u1["per_day"]] == [
        ("2024-03-01", 1),
        ("2024-03-02", 1),
    ]
    assert u1["per_day"][0]["articles_per_hour"] == 60.0
    u2 = t["per_annotator"]["u2"]
    assert u2["annotations"] == 1 and u2["seconds_per_span"] == 10.0
    assert set(t["per_annotator"]) == {"u1", "u2"}  # the import has no lead time
    labels = t["per_label"]
    assert labels["QUOTE"] == {"spans": 2, "seconds": 150.0, "seconds_per_span": 75.0}
    assert labels["SPEAKER"] == {"spans": 3, "seconds": 50.0, "seconds_per_span": 16.667}
    assert labels["CUE"] == {"spans": 1, "seconds": 10.0, "seconds_per_span": 10.0}
    assert gold_cost(pd.DataFrame(ANNS), ["a1"])["seconds"] == 90.0


def test_gold_cost_of_batches_is_the_whole_tables():
    """The export sums lead times a batch of the table at a time: the same figures as the whole
    table at once (random times, dead rows, other articles and projects); a batch from before
    the lead time column counts nothing."""
    import random

    rng = random.Random(3)
    rows = [
        _ann(f"x{i}", f"a{rng.randrange(9)}", "u1", rng.choice([None, -1.0, rng.random() * 1e4]))
        | {"superseded": rng.random() < 0.2, "project": rng.choice(["p", "q"])}
        for i in range(400)
    ]
    whole = pd.DataFrame(rows)
    wanted = pd.Series([f"a{i}" for i in range(0, 9, 2)], dtype="str")
    for project in (None, "p"):
        want = gold_cost(whole, wanted, project)
        assert 0 < want["annotations"] < 300 and want["seconds"] > 0
        cuts = [0, 1, 57, 58, 200, 333, 400]
        pieces = (whole.iloc[lo:hi] for lo, hi in itertools.pairwise(cuts))
        assert gold_cost(pieces, wanted, project) == want
        old = whole.drop(columns=["lead_time_s"])
        assert gold_cost(iter([old]), wanted, project)["annotations"] == 0


def test_throughput_of_nothing():
    t = throughput(pd.DataFrame(), pd.DataFrame())
    assert t["annotations"] == 0 and t["overall"]["articles_per_hour"] is None
    assert t["per_annotator"] == {} and t["per_label"] == {} and t["per_day"] == []


def _corpus(tmp_path):
    c = make_corpus(tmp_path / "corpus", TEXTS)
    with c.writer() as w:
        w.append("spans", pd.DataFrame(SPANS))
        w.append("annotations", pd.DataFrame(ANNS))
    return c


def test_status_json_has_throughput(tmp_path):
    c = _corpus(tmp_path)
    res = CliRunner().invoke(cli, ["--corpus", str(c.path), "status", "--json"])
    assert res.exit_code == 0, res.output
    st = json.loads(res.output)
    assert st["throughput"]["per_annotator"]["u1"]["articles_per_hour"] == 40.0
    assert st["projects"][0]["throughput"]["seconds"] == 210.0


def test_export_manifest_records_human_time(tmp_path):
    c = _corpus(tmp_path)
    out = tmp_path / "exp"
    res = CliRunner().invoke(
        cli, ["--corpus", str(c.path), "export", "--format", "jsonl", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    # every live human annotation of the exported articles: a1 (60 + 30) and a2 (120)
    assert manifest["human_time"]["seconds"] == 210.0
    assert manifest["human_time"]["annotations"] == 3
    assert "human time" in (out / "README.md").read_text()


def test_export_human_time_skips_skipped_and_invalid_work(tmp_path):
    """The export reads only the columns gold_cost needs: a skipped (cancelled) annotation and
    one made on an edited task (invalid_reason) still cost nothing; the rest is the 210 s above."""
    c = _corpus(tmp_path)
    extra = [
        _ann("u3-a1", "a1", "u3", 700.0, cancelled=True),
        _ann("u4-a2", "a2", "u4", 800.0, invalid_reason="task text in Label Studio differs"),
    ]
    with c.writer() as w:
        w.append("annotations", pd.DataFrame(extra))
    out = tmp_path / "exp"
    res = CliRunner().invoke(
        cli, ["--corpus", str(c.path), "export", "--format", "jsonl", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["human_time"] == {"annotations": 3, "seconds": 210.0, "hours": 0.0583}


def test_agreement_html_shows_throughput(tmp_path):
    c = _corpus(tmp_path)
    out = tmp_path / "report.html"
    res = CliRunner().invoke(
        cli, ["--corpus", str(c.path), "agree", "--html", str(out), "--bootstrap", "0"]
    )
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "<h2>Throughput</h2>" in page
    assert "<td>40.0</td>" in page  # u1's articles/hour
