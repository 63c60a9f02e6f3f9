"""Honeypot scoring against known gold: hand-made cases with known F1 and α (α checked by `krippendorff`)."""

from __future__ import annotations

import math

import krippendorff
import pandas as pd
import pytest

from spanbank.honeypots import honeypot_scores

TEXT = "Ana said that prices will rise today ."
LABELS = ["SPEAKER", "QUOTE", "CUE", "EVENT"]
GOLD = [("SPEAKER", 0, 3), ("QUOTE", 14, 30)]  # "Ana", "prices will rise"


def _frame(rows, **cols):
    """Span rows (label, start, end[, fragments as (start, end) pairs])."""
    rows = [
        (*r[:3], [{"start": s, "end": e} for s, e in r[3]] if len(r) > 3 else None) for r in rows
    ]
    df = pd.DataFrame(rows, columns=["label", "start", "end", "fragments"])
    return df.assign(**cols)


def _score(human_spans: dict, done: list[tuple], texts=None, gold=None, **kw):
    texts = texts or {"h1": TEXT}
    gold = gold if gold is not None else {"h1": GOLD}
    human = pd.concat(
        [_frame(sp, annotator=w, article_id=a) for (w, a), sp in human_spans.items()]
        or [_frame([], annotator="", article_id="")]
    )
    ref = pd.concat([_frame(sp, article_id=a) for a, sp in gold.items()])
    done = pd.DataFrame(done, columns=["annotator", "article_id"])
    return {r["annotator"]: r for r in honeypot_scores(done, human, ref, texts, LABELS, **kw)}


def test_known_f1_and_alpha():
    s = _score(
        {
            ("u1", "h1"): GOLD,
            ("u2", "h1"): [("SPEAKER", 0, 3), ("QUOTE", 14, 36)],  # quote runs on over "today"
        },
        [("u1", "h1"), ("u2", "h1"), ("u3", "h1")],  # u3 submitted without a span
        bootstrap=0,
    )
    assert s["u1"]["span_f1"]["value"] == 1.0 and s["u1"]["token_alpha"]["value"] == 1.0
    assert s["u2"]["span_f1"]["value"] == 1.0  # IoU 16/22 >= 0.5
    assert s["u2"]["span_f1_exact"]["value"] == 0.5  # 2*1 / (2+2)
    assert s["u3"]["span_f1"]["value"] == 0.0
    # tokens: Ana said that prices will rise today . -> u2 differs on "today" only
    spk, quo = 1, 2
    gold_row = [spk, 0, 0, quo, quo, quo, 0, 0]
    u2_row = [spk, 0, 0, quo, quo, quo, quo, 0]
    want = krippendorff.alpha(reliability_data=[u2_row, gold_row], level_of_measurement="nominal")
    assert s["u2"]["token_alpha"]["value"] == pytest.approx(want, abs=1e-12)
    assert s["u2"]["token_alpha"]["value"] == pytest.approx(1 - 15 * 2 / 154, abs=1e-12)
    assert math.isnan(s["u2"]["token_alpha"]["ci_low"])  # no bootstrap asked


def test_bootstrap_ci_over_articles():
    texts = {f"h{i}": TEXT for i in range(6)}
    gold = {a: GOLD for a in texts}
    spans = {("good", a): GOLD for a in texts}
    # "half" gets three articles right and misses the quote in three
    spans |= {("half", a): GOLD if i < 3 else GOLD[:1] for i, a in enumerate(texts)}
    done = [(w, a) for (w, a) in spans]
    s = _score(spans, done, texts=texts, gold=gold, bootstrap=500, seed=1)
    assert s["good"]["span_f1"] == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    half = s["half"]["span_f1"]
    assert half["value"] == pytest.approx(2 * 9 / (9 + 12))  # 9 matches, 9 + 12 spans
    assert half["ci_low"] < half["value"] < half["ci_high"]
    assert s["half"]["articles"] == 6
    again = _score(spans, done, texts=texts, gold=gold, bootstrap=500, seed=1)
    assert again["half"]["span_f1"] == half  # reproducible with the seed


QUOTED = '"We will win," Smith said, "and we will govern well." Jones agreed.'


def test_discontinuous_spans_are_scored_by_their_fragments():
    """A gold quote broken by its speaker and cue (fragments [0, 14) and [27, 53)): one
    contiguous quote over its outer bounds is not an exact match, and covers the `,` at 25,
    which gold leaves out. Hand counts; alpha checked by `krippendorff`."""
    gold = [("QUOTE", 0, 53, [(0, 14), (27, 53)]), ("SPEAKER", 15, 20), ("CUE", 21, 25)]
    outer = [("QUOTE", 0, 53), ("SPEAKER", 15, 20), ("CUE", 21, 25)]
    # "said" drawn as SPEAKER and as CUE, equal lengths: the report's order (sorted) makes it CUE
    both = [*gold, ("SPEAKER", 21, 25)]
    s = _score(
        {("u1", "h1"): gold, ("u2", "h1"): outer, ("u3", "h1"): both},
        [("u1", "h1"), ("u2", "h1"), ("u3", "h1")],
        texts={"h1": QUOTED},
        gold={"h1": gold},
        bootstrap=0,
    )
    assert s["u1"]["span_f1_exact"]["value"] == 1.0
    assert s["u2"]["span_f1_exact"]["value"] == pytest.approx(2 * 2 / 6)  # speaker and cue
    assert s["u2"]["span_f1"]["value"] == 1.0  # quote IoU 40 / 53 >= 0.5
    # tokens: " We will win , " | Smith | said | , | " and we will govern well . " | Jones agreed .
    q, spk, cue = 3, 4, 1
    gold_row = [q] * 6 + [spk, cue, 0] + [q] * 8 + [0, 0, 0]
    u2_row = [q] * 6 + [spk, cue, q] + [q] * 8 + [0, 0, 0]
    want = krippendorff.alpha(reliability_data=[u2_row, gold_row], level_of_measurement="nominal")
    assert s["u2"]["token_alpha"]["value"] == pytest.approx(want, abs=1e-12)
    # 40 values (none 7, SPEAKER 2, CUE 2, QUOTE 29), one token differs: o_0q = o_q0 = 1
    by_hand = 1 - 39 * 2 / (40**2 - (7**2 + 2**2 + 2**2 + 29**2))
    assert s["u2"]["token_alpha"]["value"] == pytest.approx(by_hand, abs=1e-12)
    assert s["u3"]["token_alpha"]["value"] == 1.0
    assert s["u3"]["span_f1_exact"]["value"] == pytest.approx(2 * 3 / 7)


NOW = pd.Timestamp("2024-05-01", tz="UTC")


def _ann(aid, article, annotator, origin="human", project="p"):
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
        "lead_time_s": 10.0,
        "cancelled": False,
        "version": 1,
        "superseded": False,
        "deleted_at": None,
        "pulled_at": NOW,
    }


def _span_row(aid, article, n, label, start, end):
    return {
        "annotation_id": aid,
        "span_id": f"{aid}-{n}",
        "article_id": article,
        "label": label,
        "start": start,
        "end": end,
        "text": TEXT[start:end],
        "attributes": None,
        "offset_repair": None,
    }


def _task(article, tid):
    return {
        "project": "p",
        "ls_url": "http://ls",
        "ls_project_id": 1,
        "article_id": article,
        "ls_task_id": tid,
        "batch_id": "b1",
        "pushed_at": NOW,
        "schema_version": "news-v1",
    }


def _plan(article, tid, honeypot, gold=None):
    return {
        "project": "p",
        "ls_url": "http://ls",
        "article_id": article,
        "ls_task_id": tid,
        "batch_id": "b1",
        "overlap": 1,
        "honeypot": honeypot,
        "honeypot_gold": gold,
        "planned_at": NOW,
    }


def _honeypot_corpus(tmp_path):
    """h1: gold from project `old`, pushed to p as a honeypot and annotated by u1 and u2; n1 not."""
    from conftest import make_corpus

    c = make_corpus(tmp_path / "corpus", {"h1": TEXT, "n1": TEXT})
    anns = [
        _ann("g-h1", "h1", "gold:review", origin="gold", project="old"),
        _ann("u1-h1", "h1", "u1"),
        _ann("u2-h1", "h1", "u2"),
        _ann("u1-n1", "n1", "u1"),
    ]
    spans = [_span_row("g-h1", "h1", i, *g) for i, g in enumerate(GOLD)]
    spans += [_span_row("u1-h1", "h1", i, *g) for i, g in enumerate(GOLD)]
    spans += [_span_row("u2-h1", "h1", 0, "SPEAKER", 0, 3)]  # misses the quote
    spans += [_span_row("u1-n1", "n1", 0, "SPEAKER", 0, 3)]
    with c.writer() as w:
        w.append("tasks", pd.DataFrame([_task("h1", 1), _task("n1", 2)]))
        w.append("task_plans", pd.DataFrame([_plan("h1", 1, True, "g-h1"), _plan("n1", 2, False)]))
        w.append("spans", pd.DataFrame(spans))
        w.append("annotations", pd.DataFrame(anns))
    return c


def test_status_and_agree_show_honeypot_scores(tmp_path):
    import json

    from click.testing import CliRunner

    from spanbank.cli import cli

    c = _honeypot_corpus(tmp_path)
    res = CliRunner().invoke(cli, ["--corpus", str(c.path), "status", "--json"])
    assert res.exit_code == 0, res.output
    (p,) = [p for p in json.loads(res.output)["projects"] if p["project"] == "p"]
    scores = {h["annotator"]: h for h in p["honeypots"]}
    assert scores["u1"]["span_f1"]["value"] == 1.0 and scores["u1"]["articles"] == 1
    assert scores["u2"]["span_f1"]["value"] == pytest.approx(2 / 3)
    res = CliRunner().invoke(cli, ["--corpus", str(c.path), "status"])
    assert "honeypots u2: 1 checked, span F1 0.667" in res.output
    res = CliRunner().invoke(cli, ["--corpus", str(c.path), "agree", "--project", "p"])
    assert res.exit_code == 0, res.output
    assert "Against honeypot gold" in res.output


def test_honeypot_work_never_becomes_gold_again(tmp_path):
    import json

    from click.testing import CliRunner

    from spanbank.cli import cli
    from spanbank.gold import select_annotations

    c = _honeypot_corpus(tmp_path)
    # without the exclusion, u1 and u2 on h1 made project p's gold for h1 a second time
    assert "h1" not in set(select_annotations(c, project="p")["article_id"])
    chosen = select_annotations(c).set_index("article_id")
    assert chosen.loc["h1", "annotation_id"] == "g-h1"  # its one gold, from before
    out = tmp_path / "exp"
    res = CliRunner().invoke(
        cli, ["--corpus", str(c.path), "export", "--format", "jsonl", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["honeypots"] == ["h1"]


def test_pick_honeypots(tmp_path):
    from spanbank.corpus.annotations import HONEYPOT_GOLD
    from spanbank.honeypots import parse_share
    from spanbank.labelstudio.operations import pick_honeypots

    assert parse_share("5%") == 0.05 and parse_share("0.05") == 0.05 and parse_share("5") == 0.05
    c = _honeypot_corpus(tmp_path)
    batch = pd.DataFrame({"article_id": [f"b{i}" for i in range(20)]})
    hp = pick_honeypots(c, batch, 0.05, seed=0, pushed=set())
    assert hp["article_id"].tolist() == ["h1"] and hp[HONEYPOT_GOLD].tolist() == ["g-h1"]
    with pytest.raises(Exception, match="stored gold"):
        pick_honeypots(c, batch, 0.05, seed=0, pushed={"h1"})


def test_a_honeypot_done_again_in_another_project_keeps_its_first_score(tmp_path):
    """Hunt L, 2: u1 did honeypot h1 in p, then again in q; p's score lost h1 (the latest
    annotation per article and annotator was taken over all projects, then kept only if p's)."""
    from spanbank.honeypots import corpus_honeypot_scores

    c = _honeypot_corpus(tmp_path)
    later = _ann("u1-h1-q", "h1", "u1", project="q") | {"updated_at": NOW + pd.Timedelta(days=1)}
    with c.writer() as w:
        w.append("task_plans", pd.DataFrame([_plan("h1", 3, True, "g-h1") | {"project": "q"}]))
        w.append("spans", pd.DataFrame([_span_row("u1-h1-q", "h1", 0, "SPEAKER", 0, 3)]))
        w.append("annotations", pd.DataFrame([later]))
    p = {h["annotator"]: h for h in corpus_honeypot_scores(c, "p", bootstrap=0)}
    assert p["u1"]["articles"] == 1 and p["u1"]["span_f1"]["value"] == 1.0
    assert p["u2"]["articles"] == 1
    q = {h["annotator"]: h for h in corpus_honeypot_scores(c, "q", bootstrap=0)}
    assert list(q) == ["u1"] and q["u1"]["span_f1"]["value"] == pytest.approx(2 / 3)
    both = {h["annotator"]: h for h in corpus_honeypot_scores(c, bootstrap=0)}
    assert both["u1"]["articles"] == 2  # each project's check counts


def test_checks_against_gold_re_made_after_the_push_are_counted(tmp_path):
    """Hunt L, 3: re-running adjudicate re-makes automatic gold under the same id, so a
    honeypot's answer can move after its push; each annotator's `gold_remade` says how often."""
    from click.testing import CliRunner

    from spanbank.cli import cli
    from spanbank.honeypots import corpus_honeypot_scores

    c = _honeypot_corpus(tmp_path)
    assert {h["gold_remade"] for h in corpus_honeypot_scores(c, "p", bootstrap=0)} == {0}
    ann = c.read("annotations")
    ann.loc[ann["annotation_id"] == "g-h1", "updated_at"] = NOW + pd.Timedelta(hours=1)
    with c.writer() as w:
        w.replace("annotations", ann)
    scores = corpus_honeypot_scores(c, "p", bootstrap=0)
    assert {h["annotator"]: h["gold_remade"] for h in scores} == {"u1": 1, "u2": 1}
    res = CliRunner().invoke(cli, ["--corpus", str(c.path), "status"])
    assert "(1 against gold re-made since the push)" in res.output


def test_a_later_honeypot_elsewhere_does_not_take_an_annotator_s_real_work(tmp_path):
    """Hunt L, 12: u1 and u2 annotated n1 in p; n1 then went to q as a honeypot, which u1 did.
    The latest annotation per annotator was picked over all projects before honeypot work was
    dropped, so u1's p work vanished from adjudication (n1 left with one annotator)."""
    from spanbank.gold import run_adjudication

    c = _honeypot_corpus(tmp_path)
    later = _ann("u1-n1-q", "n1", "u1", project="q") | {"updated_at": NOW + pd.Timedelta(days=1)}
    with c.writer() as w:
        w.append("task_plans", pd.DataFrame([_plan("n1", 4, True, "g-h1") | {"project": "q"}]))
        w.append("spans", pd.DataFrame([_span_row("u2-n1", "n1", 0, "SPEAKER", 0, 3)]))
        w.append("spans", pd.DataFrame([_span_row("u1-n1-q", "n1", 0, "QUOTE", 4, 9)]))
        w.append("annotations", pd.DataFrame([_ann("u2-n1", "n1", "u2"), later]))
    run_adjudication(c, "majority")
    spans = c.read("spans")
    gold = spans[spans["annotation_id"] == "gold-majority-n1"]
    assert gold[["label", "start", "end"]].values.tolist() == [["SPEAKER", 0, 3]]


def test_a_check_whose_gold_is_gone_is_not_scored_against_nothing(tmp_path):
    """Hunt L, 3: after the honeypot's gold was deleted (adjudicate dropped it), annotators were
    scored against empty gold (F1 0.762 -> 0.493 on PolNeAR)."""
    from click.testing import CliRunner

    from spanbank.cli import cli
    from spanbank.honeypots import corpus_honeypot_scores

    c = _honeypot_corpus(tmp_path)
    ann = c.read("annotations")
    ann.loc[ann["annotation_id"] == "g-h1", "deleted_at"] = NOW
    with c.writer() as w:
        w.replace("annotations", ann)
    scores = {h["annotator"]: h for h in corpus_honeypot_scores(c, "p", bootstrap=0)}
    assert {a: (h["articles"], h["gold_gone"]) for a, h in scores.items()} == {
        "u1": (0, 1),
        "u2": (0, 1),
    }
    assert all(h["span_f1"]["value"] != h["span_f1"]["value"] for h in scores.values())  # NaN
    res = CliRunner().invoke(cli, ["--corpus", str(c.path), "status"])
    assert "honeypots u1: 0 checked, span F1 n/a" in res.output
    assert "(1 not scored: their gold is gone)" in res.output
    from spanbank.agreement.render import _honeypot_rows  # agree's table says it too (N, F10)

    header, rows = _honeypot_rows(list(scores.values()))
    assert rows[0][header.index("not scored: gold gone")] == "1"


def test_agree_s_labels_and_annotators_hold_for_honeypots_and_throughput(tmp_path):
    """Hunt L, 10: `agree --labels CUE` showed the all-label honeypot F1s (ana matching QUOTE
    exactly read as a CUE score), and `--annotators` still listed the others there."""
    from spanbank.agreement.report import agreement_report

    c = _honeypot_corpus(tmp_path)  # u2 drew the speaker only: F1 2/3 over both labels
    full = {h["annotator"]: h for h in agreement_report(c, "p", bootstrap=0)["honeypots"]}
    assert full["u2"]["span_f1"]["value"] == pytest.approx(2 / 3)
    speaker = agreement_report(c, "p", labels=["SPEAKER"], bootstrap=0)
    assert {h["annotator"]: h["span_f1"]["value"] for h in speaker["honeypots"]} == {
        "u1": 1.0,
        "u2": 1.0,
    }
    quote = agreement_report(c, "p", labels=["QUOTE"], bootstrap=0)
    assert {h["annotator"]: h["span_f1"]["value"] for h in quote["honeypots"]} == {
        "u1": 1.0,
        "u2": 0.0,
    }
    assert set(quote["throughput"]["per_label"]) <= {"QUOTE"}
    with c.writer() as w:  # a third annotator, left out below
        w.append("spans", pd.DataFrame([_span_row("u3-h1", "h1", 0, *GOLD[0])]))
        w.append("annotations", pd.DataFrame([_ann("u3-h1", "h1", "u3")]))
    two = agreement_report(c, "p", annotators=["u1", "u2"], bootstrap=0)
    assert [h["annotator"] for h in two["honeypots"]] == ["u1", "u2"]
    assert set(two["throughput"]["per_annotator"]) == {"u1", "u2"}


def test_a_pinned_honeypot_keeps_the_answer_it_was_pushed_with(tmp_path):
    """Hunt L, 3: `adjudicate` re-makes automatic gold under the same id, so a honeypot's answer
    moved after its push (18 -> 6 spans, an unchanged annotator's F1 1.0 -> 0.96). A planned
    push now copies each honeypot's gold spans (honeypot_spans) and names that copy."""
    from spanbank.corpus.annotations import task_plans
    from spanbank.honeypots import corpus_honeypot_scores
    from spanbank.labelstudio.operations import pin_honeypot_gold

    c = _honeypot_corpus(tmp_path)
    plans = pin_honeypot_gold(c, task_plans(c))
    (ref,) = plans.loc[plans["honeypot"], "honeypot_gold"]
    assert ref.startswith("pinned:g-h1@") and plans["honeypot_gold"].isna().sum() == 1
    with c.writer() as w:
        w.replace("task_plans", plans)
    before = {h["annotator"]: h for h in corpus_honeypot_scores(c, "p", bootstrap=0)}
    ann, spans = c.read("annotations"), c.read("spans")  # the gold re-made: its quote gone
    ann.loc[ann["annotation_id"] == "g-h1", "updated_at"] = NOW + pd.Timedelta(hours=1)
    spans = spans[~((spans["annotation_id"] == "g-h1") & (spans["label"] == "QUOTE"))]
    with c.writer() as w:
        w.replace("annotations", ann)
        w.replace("spans", spans)
    after = {h["annotator"]: h for h in corpus_honeypot_scores(c, "p", bootstrap=0)}
    for who in ("u1", "u2"):
        assert after[who]["span_f1"]["value"] == before[who]["span_f1"]["value"]
        assert after[who]["token_alpha"]["value"] == before[who]["token_alpha"]["value"]
        assert (before[who]["gold_remade"], after[who]["gold_remade"]) == (0, 1)
    assert before["u1"]["span_f1"]["value"] == 1.0
    # --labels holds for the pinned copy too: u2 drew the speaker only
    speaker = {h["annotator"]: h for h in corpus_honeypot_scores(c, "p", labels=["SPEAKER"])}
    assert speaker["u2"]["span_f1"]["value"] == 1.0
