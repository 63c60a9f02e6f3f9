"""Agreement report on small hand-built corpus tables, its renderers and the `agree` command."""

import json
import math

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from spanbank.agreement.coefficients import cohen_kappa, krippendorff_alpha, unitizing_alpha
from spanbank.agreement.render import render_table, to_csv, to_html, to_json
from spanbank.agreement.report import agreement_report, build_report, export_gold
from spanbank.cli.agree import agree
from spanbank.corpus.annotations import latest_per_annotator
from spanbank.errors import AgreementError, SpanbankError
from spanbank.tokens import tokenize

TEXT1 = 'Smith said: "We will win." The mayor disagreed.'
TEXT2 = "Rain fell. Jones told reporters it was fine."

ANN_COLS = [
    "annotation_id",
    "project",
    "article_id",
    "annotator",
    "origin",
    "cancelled",
    "superseded",
    "deleted_at",
]
SPAN_COLS = ["annotation_id", "span_id", "article_id", "label", "start", "end"]


def tables():
    articles = pd.DataFrame({"article_id": ["a1", "a2", "a3"], "text": [TEXT1, TEXT2, "solo"]})
    annotations = pd.DataFrame(
        [
            ("x1", "p", "a1", "ann", "human", False, False, None),
            ("x2", "p", "a1", "bob", "human", False, False, None),
            ("x3", "p", "a2", "ann", "human", False, False, None),
            ("x4", "p", "a2", "bob", "import", False, False, None),
            ("x5", "p", "a3", "ann", "human", False, False, None),  # single annotator: left out
            ("x6", "p", "a1", "cat", "prediction", False, False, None),  # not human
            ("x7", "p", "a2", "cat", "human", True, False, None),  # cancelled
            ("x8", "p", "a2", "dan", "human", False, True, None),  # superseded
            ("x9", "p", "a2", "eve", "human", False, False, pd.Timestamp("2024-01-01", tz="UTC")),
        ],
        columns=ANN_COLS,
    )
    spans = pd.DataFrame(
        [
            ("x1", "s1", "a1", "SPEAKER", 0, 5),
            ("x1", "s2", "a1", "QUOTE", 12, 26),
            ("x2", "s1", "a1", "SPEAKER", 0, 5),
            ("x2", "s2", "a1", "QUOTE", 13, 25),
            ("x3", "s1", "a2", "SPEAKER", 11, 16),
            ("x3", "s2", "a2", "QUOTE", 31, 43),
            ("x4", "s1", "a2", "SPEAKER", 11, 16),
            ("x6", "s1", "a1", "SPEAKER", 30, 35),
            ("x7", "s1", "a2", "EVENT", 0, 10),
        ],
        columns=SPAN_COLS,
    )
    relations = pd.DataFrame(
        [
            ("x1", "s2", "s1", "said_by"),
            ("x2", "s2", "s1", "said_by"),
            ("x3", "s2", "s1", "said_by"),
        ],
        columns=["annotation_id", "from_span_id", "to_span_id", "label"],
    )
    tasks = pd.DataFrame(
        {
            "project": ["p"],
            "ls_url": ["http://localhost:8080/"],
            "ls_project_id": [3],
            "article_id": ["a1"],
            "ls_task_id": [17],
        }
    )
    annotators = pd.DataFrame(
        {
            "annotator": ["ann", "bob"],
            "ls_url": "http://localhost:8080/",
            "ls_user_id": [1, 2],
            "email": ["ann@example.org", None],
        }
    )
    return {
        "annotators": annotators,
        "articles": articles,
        "annotations": annotations,
        "spans": spans,
        "relations": relations,
        "tasks": tasks,
        "task_plans": pd.DataFrame(),  # no honeypots planned
    }


def stored(path):
    """The tables above in a real corpus, the columns they leave out filled in."""
    from conftest import make_corpus
    from spanbank.corpus.tables import TABLES

    t = tables()
    texts = dict(zip(t["articles"]["article_id"], t["articles"]["text"], strict=True))
    corpus = make_corpus(path, texts)
    now = pd.Timestamp("2024-06-01", tz="UTC")
    sp = t["spans"]
    rows = {
        "annotations": t["annotations"].assign(created_at=now, updated_at=now, version=1),
        "spans": sp.assign(
            text=[
                texts[a][s:e]
                for a, s, e in zip(sp["article_id"], sp["start"], sp["end"], strict=True)
            ]
        ),
        "relations": t["relations"],
        "tasks": t["tasks"].assign(pushed_at=now, schema_version="news-v1"),
        "annotators": t["annotators"],
    }
    with corpus.writer() as w:
        for name, df in rows.items():
            w.append(name, df.reindex(columns=TABLES[name].names))
    return corpus


def report(**kw):
    t = tables()
    kw.setdefault("bootstrap", 50)
    return build_report(
        t["articles"], t["annotations"], t["spans"], t["relations"], t["tasks"], **kw
    )


def row(rep, label):
    return next(r for r in rep["labels"] if r["label"] == label)


def test_selection_keeps_latest_live_human_annotations():
    sel = latest_per_annotator(tables()["annotations"])
    assert sorted(sel["annotation_id"]) == ["x1", "x2", "x3", "x4", "x5"]
    rep = report()
    assert rep["coverage"]["articles_with_2plus"] == 2
    assert rep["coverage"]["annotators"] == ["ann", "bob"]
    assert rep["selection"]["labels"] == ["QUOTE", "SPEAKER"]  # EVENT only in a cancelled one


def test_span_f1_figures():
    rep = report()
    # SPEAKER: identical in both articles -> 1. QUOTE: a1 [12,26) vs [13,25) IoU 12/14 matches
    # at 0.5 but not exactly; a2 only ann has a quote -> 2*1/3.
    assert row(rep, "SPEAKER")["span_f1_exact"] == 1.0
    assert row(rep, "QUOTE")["span_f1_exact"] == 0.0
    assert row(rep, "QUOTE")["span_f1_overlap"] == pytest.approx(2 / 3)
    assert row(rep, "micro")["span_f1_overlap"] == pytest.approx(2 * 3 / 7)
    assert row(rep, "macro")["span_f1_overlap"] == pytest.approx((1 + 2 / 3) / 2)
    assert report(iou=0.9)["summary"]["span_f1_overlap"]["value"] == pytest.approx(2 * 2 / 7)


def token_layer(text, spans):
    """Independent slow path: each token 1 if it overlaps one of the spans, else 0."""
    import re

    return [
        int(any(s < m.end() and m.start() < e for s, e in spans))
        for m in re.finditer(r"\w+|[^\w\s]", text)
    ]


def test_token_measures_match_the_coefficients():
    rep = report()
    ann_q = token_layer(TEXT1, [(12, 26)]) + token_layer(TEXT2, [(31, 43)])
    bob_q = token_layer(TEXT1, [(13, 25)]) + token_layer(TEXT2, [])
    assert row(rep, "QUOTE")["alpha"] == pytest.approx(krippendorff_alpha([ann_q, bob_q]))
    pair = next(r for r in rep["pairs"] if r["label"] == "QUOTE")
    assert pair["cohen_kappa"] == pytest.approx(cohen_kappa(ann_q, bob_q))
    ann_s = token_layer(TEXT1, [(0, 5)]) + token_layer(TEXT2, [(11, 16)])
    bob_s = ann_s
    # "-O": tokens either annotator labelled with any label, where QUOTE vs not-QUOTE can agree
    some = [i for i in range(len(ann_q)) if ann_q[i] or bob_q[i] or ann_s[i] or bob_s[i]]
    assert pair["cohen_kappa_no_o"] == pytest.approx(
        cohen_kappa([ann_q[i] for i in some], [bob_q[i] for i in some], categories=[0, 1])
    )
    assert pair["cohen_kappa_no_o"] > 0
    # every article has two annotators, so Fleiss is defined
    assert not math.isnan(row(rep, "QUOTE")["fleiss_kappa"])
    assert row(rep, "SPEAKER")["alpha"] == pytest.approx(1.0)
    assert row(rep, "SPEAKER")["alpha_no_o"] == pytest.approx(
        krippendorff_alpha([[ann_s[i] for i in some], [bob_s[i] for i in some]])
    )


def test_unitizing_alpha_per_article_matches_function():
    rep = report()
    a1 = next(r for r in rep["articles"] if r["article_id"] == "a1")
    units = [
        ("ann", "SPEAKER", 0, 5),
        ("ann", "QUOTE", 12, 26),
        ("bob", "SPEAKER", 0, 5),
        ("bob", "QUOTE", 13, 25),
    ]
    assert a1["alpha_u"] == pytest.approx(unitizing_alpha(units, (0, len(TEXT1))))


def test_single_article_report_alpha_u_equals_function():
    t = tables()
    t["annotations"] = t["annotations"][t["annotations"]["article_id"] == "a1"]
    rep = build_report(t["articles"], t["annotations"], t["spans"], t["relations"], bootstrap=0)
    units = [
        ("ann", "SPEAKER", 0, 5),
        ("ann", "QUOTE", 12, 26),
        ("bob", "SPEAKER", 0, 5),
        ("bob", "QUOTE", 13, 25),
    ]
    assert row(rep, "micro")["alpha_u"] == pytest.approx(unitizing_alpha(units, (0, len(TEXT1))))
    assert row(rep, "QUOTE")["alpha_u"] == pytest.approx(
        unitizing_alpha(units, (0, len(TEXT1)), label="QUOTE")
    )
    assert math.isnan(rep["summary"]["alpha"]["ci_low"])  # bootstrap=0: no CI


def test_relations_end_to_end_and_conditional():
    rel = report()["relations"]["overall"]
    # a1: both link quote->speaker with aligned endpoints (hit); a2: ann's quote has no match.
    assert rel["relation_f1"] == pytest.approx(2 * 1 / 3)
    assert rel["relation_f1_conditional"] == pytest.approx(1.0)


def test_bootstrap_is_seeded_and_brackets_value():
    a, b = report(seed=3), report(seed=3)
    assert a["summary"] == b["summary"]
    s = a["summary"]["span_f1_overlap"]
    assert s["ci_low"] <= s["value"] <= s["ci_high"]


def test_lowest_articles_with_links():
    rep = report()
    assert [r["article_id"] for r in rep["lowest_articles"]] == ["a2", "a1"]
    a1 = rep["lowest_articles"][1]
    assert a1["link"] == "http://localhost:8080/projects/3/data?task=17"
    assert rep["lowest_articles"][0]["link"] is None


def test_filters_and_errors():
    with pytest.raises(SpanbankError, match="no article has two or more annotators"):
        report(annotators=["ann"])
    with pytest.raises(
        AgreementError, match="no article has two or more annotators in project 'q'"
    ):
        report(project="q")
    rep = report(labels=["SPEAKER"])
    assert [r["label"] for r in rep["labels"]] == ["SPEAKER", "micro", "macro"]
    t = tables()
    t["spans"].loc[0, "start"] = 9
    with pytest.raises(AgreementError, match="start=9 end=5"):
        build_report(t["articles"], t["annotations"], t["spans"])


def test_three_annotators_varying_raters():
    t = tables()
    extra = pd.DataFrame([("y1", "p", "a1", "cy", "human", False, False, None)], columns=ANN_COLS)
    t["annotations"] = pd.concat([t["annotations"], extra], ignore_index=True)
    t["spans"] = pd.concat(
        [t["spans"], pd.DataFrame([("y1", "s1", "a1", "SPEAKER", 0, 5)], columns=SPAN_COLS)],
        ignore_index=True,
    )
    rep = build_report(t["articles"], t["annotations"], t["spans"], t["relations"], bootstrap=10)
    pairs = {(r["annotator_a"], r["annotator_b"]) for r in rep["pairs"]}
    assert pairs == {("ann", "bob"), ("ann", "cy"), ("bob", "cy")}
    # 3 raters on a1, 2 on a2: Fleiss' kappa generalised to a varying number of raters
    assert row(rep, "SPEAKER")["fleiss_kappa"] == pytest.approx(1.0)
    assert np.isfinite(rep["summary"]["token_fleiss_kappa"]["value"])
    assert not any("Fleiss" in n for n in rep["notes"])
    assert rep["coverage"]["raters_per_article"] == {"2": 1, "3": 1}


def test_renderers():
    rep = report()
    txt = render_table(rep)
    assert "span_f1_overlap" in txt and "ann / bob" in txt and "task=17" in txt
    data = json.loads(to_json(rep))
    assert data["labels"][1]["alpha_no_o"] is not None
    assert json.loads(to_json(report(labels=["SPEAKER"])))["labels"][0]["alpha_no_o"] is None
    lines = to_csv(rep).splitlines()
    assert lines[0] == "scope,label,annotator_a,annotator_b,measure,value,ci_low,ci_high"
    assert any(line.startswith("pair,micro,ann,bob,span_f1_overlap,") for line in lines)
    page = to_html(rep)
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page
    assert 'href="http://localhost:8080/projects/3/data?task=17"' in page


def test_tokenize_offsets():
    art, start, end, _ = tokenize(["Hé said: «ok»", "x_1 2"])
    got = [("Hé said: «ok»", "x_1 2")[a][s:e] for a, s, e in zip(art, start, end, strict=True)]
    assert got == ["Hé", "said", ":", "«", "ok", "»", "x_1", "2"]


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """`spanbank agree` over the tables above, stored in a corpus."""
    corpus = stored(tmp_path_factory.mktemp("agree") / "c")

    @click.group()
    @click.pass_context
    def group(ctx):
        ctx.obj = type("Obj", (), {"corpus": corpus})()

    group.add_command(agree)
    return group


def test_cli_table_json_csv_html(tmp_path, cli):
    runner = CliRunner()
    res = runner.invoke(cli, ["agree", "--bootstrap", "20"])
    assert res.exit_code == 0, res.output
    assert "Per label" in res.output
    res = runner.invoke(cli, ["agree", "--json", "--labels", "SPEAKER", "--bootstrap", "0"])
    assert res.exit_code == 0
    assert json.loads(res.output)["selection"]["labels"] == ["SPEAKER"]
    res = runner.invoke(cli, ["agree", "--csv", "--bootstrap", "0"])
    assert res.output.startswith("scope,label,")
    out = tmp_path / "r.html"
    res = runner.invoke(cli, ["agree", "--html", str(out), "--quiet", "--bootstrap", "0"])
    assert res.exit_code == 0 and res.output == ""
    assert "<h1>Agreement report</h1>" in out.read_text()


def test_html_report_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch, cli):
    """The disk fills while the new page is written: the old page stays whole, no temp file is
    left, and the error is one line. Before, the page was written in place (truncated first)."""
    import errno
    import os

    out = tmp_path / "r.html"
    out.write_text("the previous report")
    fsync = os.fsync

    def full_for_the_page(fd):
        if ".r.html." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return fsync(fd)

    monkeypatch.setattr(os, "fsync", full_for_the_page)
    res = CliRunner().invoke(cli, ["agree", "--html", str(out), "--quiet", "--bootstrap", "0"])
    assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
    assert "cannot write" in res.output and "No space left on device" in res.output
    assert out.read_text() == "the previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_cli_errors_are_one_line(cli):
    res = CliRunner().invoke(cli, ["agree", "--annotators", "ann"])
    assert res.exit_code == 1
    assert res.output.startswith("Error: no article has two or more annotators;")
    assert "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["agree", "--json", "--csv"])
    assert res.exit_code == 2


def test_cli_help_has_example(cli):
    res = CliRunner().invoke(cli, ["agree", "--help"])
    assert res.exit_code == 0 and "Example:" in res.output


def test_agreement_report_reads_only_through_corpus(tmp_path):
    rep = agreement_report(stored(tmp_path / "c"), project="p", bootstrap=0)
    assert rep["selection"]["project"] == "p"
    assert np.isfinite(rep["summary"]["span_f1_exact"]["value"])


def test_report_from_the_rows_it_needs_equals_the_report_from_whole_tables(tmp_path):
    """`agree` reads the spans, relations, tasks and texts of the articles it compares (and
    of timed work), not whole tables: the report must be the one the whole tables give. Here
    also an article whose two annotators drew nothing, one annotator's import, lead times on
    compared and uncompared work, and gold, which each annotator is scored against (on
    articles compared or not)."""
    from conftest import article_rows
    from spanbank.corpus.tables import TABLES
    from spanbank.throughput import throughput

    corpus = stored(tmp_path / "c")
    now = pd.Timestamp("2024-06-02", tz="UTC")
    extra = {"a5": "Nothing.", "a6": "Lee said: yes. Kim said: no.", "a7": "Pat said so."}
    ann = pd.DataFrame(
        [
            ("y1", "p", "a5", "ann", "human", 30.0),
            ("y2", "p", "a5", "bob", "human", 12.0),
            ("y3", "p", "a6", "imp", "import", None),
            ("y4", "q", "a6", "cat", "human", 8.0),
            ("y5", "q", "a6", "ann", "human", 5.0),
            ("y6", "p", "a7", "dan", "human", 20.0),  # timed, compared with nobody
            ("g1", "p", "a6", "gold:majority", "gold", None),  # gold of a compared article
            ("g2", "p", "a7", "gold:dan", "gold", None),  # and of dan's alone
        ],
        columns=["annotation_id", "project", "article_id", "annotator", "origin", "lead_time_s"],
    ).assign(created_at=now, updated_at=now, version=1, cancelled=False, superseded=False)
    spans = pd.DataFrame(
        [
            ("y3", "s1", "a6", "SPEAKER", 0, 3, "Lee"),
            ("y4", "s1", "a6", "SPEAKER", 15, 18, "Kim"),
            ("y5", "s1", "a6", "SPEAKER", 0, 3, "Lee"),
            ("y6", "s1", "a7", "SPEAKER", 0, 3, "Pat"),
            ("g1", "s1", "a6", "SPEAKER", 15, 18, "Kim"),
            ("g2", "s1", "a7", "SPEAKER", 0, 3, "Pat"),
        ],
        columns=[*SPAN_COLS, "text"],
    )
    with corpus.writer() as w:
        w.append("articles", article_rows(extra))
        w.append("annotations", ann.reindex(columns=TABLES["annotations"].names))
        w.append("spans", spans.reindex(columns=TABLES["spans"].names))
    whole = {n: corpus.read(n) for n in ("articles", "annotations", "spans", "relations", "tasks")}
    for project in (None, "p"):
        got = agreement_report(corpus, project=project, bootstrap=30, seed=4, views=True)
        gold = export_gold(corpus, project)
        want = build_report(
            *whole.values(), gold=gold, project=project, bootstrap=30, seed=4, views=True
        )
        want["throughput"] = throughput(whole["annotations"], whole["spans"], project)
        got.pop("honeypots")
        assert got["coverage"]["articles_with_2plus"] == (4 if project is None else 3)
        assert "dan" in {g["annotator"] for g in want["gold"]}
        assert to_json(got) == to_json(want)
        assert got["_views"] == want["_views"]


def test_attribution_agreement_quote_and_full():
    rep = report()
    att = rep["attributions"]["overall"]
    # a1: quotes [12,26) / [13,25) match at IoU, not exactly, both said_by the same speaker;
    # a2: only ann has a quote. 3 attributions, 1 matched.
    assert att["attributions"] == 3
    assert att["attribution_f1"] == pytest.approx(2 / 3)
    assert att["attribution_f1_full"] == pytest.approx(2 / 3)
    assert att["attribution_f1_exact"] == 0.0
    assert rep["summary"]["attribution_f1"]["value"] == pytest.approx(2 / 3)
    assert [(p["annotator_a"], p["annotator_b"]) for p in rep["attributions"]["pairs"]] == [
        ("ann", "bob")
    ]
    # bob links his quote to no speaker: the quote still matches, the attribution does not
    t = tables()
    t["relations"] = t["relations"][t["relations"]["annotation_id"] != "x2"]
    rep = build_report(t["articles"], t["annotations"], t["spans"], t["relations"], bootstrap=20)
    att = rep["attributions"]["overall"]
    assert att["attribution_f1"] == pytest.approx(2 / 3)
    assert att["attribution_f1_full"] == 0.0
    s = rep["summary"]["attribution_f1"]
    assert s["ci_low"] <= s["value"] <= s["ci_high"]


def _with_fragments(t, parts: dict) -> pd.DataFrame:
    """The spans table with `fragments` set for {(annotation, span id): [(start, end), ...]}
    (outer bounds updated), null for every other span."""
    sp = t["spans"].copy()
    sp["fragments"] = None
    for (aid, sid), frags in parts.items():
        k = sp.index[(sp["annotation_id"] == aid) & (sp["span_id"] == sid)][0]
        sp.at[k, "fragments"] = [{"start": a, "end": b} for a, b in frags]
        sp.loc[k, ["start", "end"]] = frags[0][0], frags[-1][1]
    return sp


def test_attribution_quote_fragments_match_as_one_unit():
    """A quote broken by its cue is one attribution, matched over its fragments' characters."""
    t = tables()
    t["spans"] = _with_fragments(t, {("x1", "s2"): [(12, 26), (27, 30)]})
    rep = build_report(
        t["articles"], t["annotations"], t["spans"], t["relations"], bootstrap=0, iou=0.7
    )
    # ann's quote covers 14 + 3 characters, 12 of them bob's [13,25): IoU 12/17 >= 0.7 (the
    # outer bounds [12,30) would give 12/18 < 0.7)
    att = rep["attributions"]["overall"]
    assert att["attribution_f1"] == pytest.approx(2 / 3) and att["attributions"] == 3
    assert row(rep, "QUOTE")["span_f1_overlap"] == pytest.approx(2 / 3)
    rep = build_report(
        t["articles"], t["annotations"], t["spans"], t["relations"], bootstrap=0, iou=0.8
    )
    assert rep["attributions"]["overall"]["attribution_f1"] == 0.0


def test_identical_fragment_sets_agree_exactly():
    t = tables()
    frags = [(13, 17), (18, 25)]
    t["spans"] = _with_fragments(t, {("x1", "s2"): frags, ("x2", "s2"): frags})
    rep = build_report(t["articles"], t["annotations"], t["spans"], t["relations"], bootstrap=0)
    assert row(rep, "QUOTE")["span_f1_exact"] == pytest.approx(2 / 3)  # a2: ann's quote alone
    # same outer bounds, other fragments: not the same span
    t["spans"] = _with_fragments(t, {("x1", "s2"): frags, ("x2", "s2"): [(13, 15), (18, 25)]})
    rep = build_report(t["articles"], t["annotations"], t["spans"], t["relations"], bootstrap=0)
    assert row(rep, "QUOTE")["span_f1_exact"] == 0.0


def test_token_and_unitizing_measures_count_fragments_only():
    """The gap between a quote's fragments is not quote: tokens and alpha_U see the parts."""
    t = tables()
    t["annotations"] = t["annotations"][t["annotations"]["article_id"] == "a1"]
    parts = [(12, 15), (21, 26)]  # '"We' ... 'win."'; the gap " will " is no quote
    t["spans"] = _with_fragments(t, {("x1", "s2"): parts})
    rep = build_report(t["articles"], t["annotations"], t["spans"], t["relations"], bootstrap=0)
    ann_q = token_layer(TEXT1, parts)
    bob_q = token_layer(TEXT1, [(13, 25)])
    assert ann_q != token_layer(TEXT1, [(12, 26)])
    assert row(rep, "QUOTE")["alpha"] == pytest.approx(krippendorff_alpha([ann_q, bob_q]))
    units = [
        ("ann", "SPEAKER", 0, 5),
        ("ann", "QUOTE", 12, 15),
        ("ann", "QUOTE", 21, 26),
        ("bob", "SPEAKER", 0, 5),
        ("bob", "QUOTE", 13, 25),
    ]
    assert row(rep, "QUOTE")["alpha_u"] == pytest.approx(
        unitizing_alpha(units, (0, len(TEXT1)), label="QUOTE")
    )


def test_csv_neutralises_formulas_in_names():
    t = tables()
    evil = "=cmd|' -C calc'!A0"
    t["annotations"]["annotator"] = t["annotations"]["annotator"].replace({"bob": evil})
    rep = build_report(t["articles"], t["annotations"], t["spans"], t["relations"], bootstrap=0)
    text = to_csv(rep)
    cells = [c for line in text.splitlines() for c in line.split(",")]
    assert not any(c.startswith(("=", "+", "@", "\t", "\r")) for c in cells)
    assert any(c.startswith("'=cmd") for c in cells)
    # numbers stay numbers: a negative figure is not a formula
    from spanbank.csvsafe import safe_cell

    assert safe_cell(-0.25) == -0.25 and safe_cell("-x") == "'-x" and safe_cell("@a") == "'@a"
    assert (
        safe_cell("\tx") == "'\tx" and safe_cell("\rx") == "'\rx" and safe_cell(float("nan")) == ""
    )


def test_heatmap_names_are_literal_text():
    from spanbank.agreement.render import heatmap_png

    names = [r"$\nocommand$", "a$b", "$x^2$"]
    png = heatmap_png(names, {(names[0], names[1]): 0.5, (names[1], names[2]): -0.2}, "t $1 $")
    assert len(png) > 100


def test_cli_show_names_html(tmp_path, cli):
    out = tmp_path / "r.html"
    res = CliRunner().invoke(cli, ["agree", "--html", str(out), "--show-names", "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "ann@example.org (ann)" in page and "Where they disagree" in page
    assert "_views" not in to_json(report(views=True))
    res = CliRunner().invoke(cli, ["agree", "--html", str(tmp_path / "s.html"), "--bootstrap", "0"])
    assert "ann@example.org" not in (tmp_path / "s.html").read_text()
    # the page with e-mails is as private as the annotators table (it was 0644: hunt F, 6)
    assert (out.stat().st_mode & 0o777, (tmp_path / "s.html").stat().st_mode & 0o777) == (
        0o600,
        0o644,
    )


def _tables4(t: dict) -> tuple:
    return t["articles"], t["annotations"], t["spans"], t["relations"]


def test_scores_against_gold_match_fragment_sets_exactly():
    t = tables()
    gold = pd.DataFrame([("g1", "p", "a1", "lead", "gold", False, False, None)], columns=ANN_COLS)
    t["annotations"] = pd.concat([t["annotations"], gold], ignore_index=True)
    frags = [(13, 17), (18, 25)]
    t["spans"] = pd.concat(
        [
            t["spans"],
            pd.DataFrame(
                [("g1", "s", "a1", "SPEAKER", 0, 5), ("g1", "q", "a1", "QUOTE", 13, 25)],
                columns=SPAN_COLS,
            ),
        ],
        ignore_index=True,
    )
    t["spans"] = _with_fragments(t, {("x2", "s2"): frags, ("g1", "q"): frags})
    rep = build_report(*_tables4(t), gold=gold, bootstrap=0)
    scores = {r["annotator"]: r for r in rep["gold"]}
    assert scores["bob"]["precision_exact"] == 1.0  # the same two fragments
    assert scores["ann"]["precision_exact"] == 0.5  # the speaker; [12, 26) is not that quote
    # same outer bounds, other fragments: overlapping, not exact
    t["spans"] = _with_fragments(t, {("x2", "s2"): [(13, 15), (18, 25)], ("g1", "q"): frags})
    rep = build_report(*_tables4(t), gold=gold, bootstrap=0)
    bob = next(r for r in rep["gold"] if r["annotator"] == "bob")
    assert (bob["precision_exact"], bob["precision"]) == (0.5, 1.0)


def test_a_span_without_label_is_left_out_not_matched_as_another_label():
    """A null label has no category: it must not count as some label of some article."""
    t = tables()
    plain = build_report(t["articles"], t["annotations"], t["spans"], t["relations"], bootstrap=0)
    extra = pd.DataFrame([("x4", "s9", "a2", None, 31, 43)], columns=SPAN_COLS)
    spans = pd.concat([t["spans"], extra], ignore_index=True)
    rep = build_report(t["articles"], t["annotations"], spans, t["relations"], bootstrap=0)
    assert rep["labels"] == plain["labels"]
    assert rep["summary"] == plain["summary"]
    assert any("without a label" in n for n in rep["notes"])


def _add_gold(corpus, rows: list[tuple], spans: list[tuple]) -> None:
    """Stored gold: rows (id, project, article, annotator, updated_at, review_of), spans
    (id, label, start, end)."""
    from spanbank.corpus.tables import TABLES

    ann = pd.DataFrame(
        rows,
        columns=["annotation_id", "project", "article_id", "annotator", "updated_at", "review_of"],
    )
    ann = ann.assign(
        origin="gold", created_at=ann["updated_at"], version=1, cancelled=False, superseded=False
    )
    art = dict(zip(ann["annotation_id"], ann["article_id"], strict=True))
    texts = {"a1": TEXT1, "a2": TEXT2}
    sp = pd.DataFrame(
        [
            (a, f"s{i}", art[a], lab, s, e, texts[art[a]][s:e])
            for i, (a, lab, s, e) in enumerate(spans)
        ],
        columns=[*SPAN_COLS, "text"],
    )
    with corpus.writer() as w:
        w.append("annotations", ann.reindex(columns=[*TABLES["annotations"].names, "review_of"]))
        w.append("spans", sp.reindex(columns=TABLES["spans"].names))


def test_gold_scores_are_against_the_gold_an_export_uses(tmp_path):
    """gold[] scores each annotator against select_annotations' choice, not the gold written
    last: gold:majority before a later gold:union, reviewed gold (stored under the review
    project, naming `review_of`) before both, and gold stored without a project counts for the
    project. Figures are hand counts over the spans of `tables()`."""
    corpus = stored(tmp_path / "c")
    t0, t1, t2 = (pd.Timestamp(f"2024-07-0{d}", tz="UTC") for d in (1, 2, 3))
    _add_gold(
        corpus,
        [
            ("gm", "p", "a1", "gold:majority", t1, None),
            ("gu", "p", "a1", "gold:union", t2, None),  # written last
            ("g2", None, "a2", "gold:majority", t1, None),  # stored without a project
        ],
        [
            ("gm", "SPEAKER", 0, 5),
            ("gm", "QUOTE", 12, 26),
            ("gu", "SPEAKER", 0, 5),
            ("gu", "QUOTE", 12, 26),
            ("gu", "SPEAKER", 31, 36),  # "mayor": only union has it
            ("g2", "SPEAKER", 11, 16),
        ],
    )

    def scores():
        rep = agreement_report(corpus, project="p", bootstrap=0)
        return {r["annotator"]: r for r in rep["gold"]}

    # ann: a1 SPEAKER 0-5, QUOTE 12-26; a2 SPEAKER 11-16, QUOTE 31-43 -> 3 of 4 in gold (3 spans)
    # bob: a1 SPEAKER 0-5, QUOTE 13-25 (IoU 12/14 with 12-26); a2 SPEAKER 11-16
    got = scores()
    assert got["ann"]["articles"] == 2
    assert (got["ann"]["precision_exact"], got["ann"]["recall_exact"]) == (3 / 4, 1.0)
    assert (got["bob"]["precision_exact"], got["bob"]["recall_exact"]) == (2 / 3, 2 / 3)
    assert (got["bob"]["precision"], got["bob"]["recall"]) == (1.0, 1.0)
    # reviewed gold of a1, older than both: SPEAKER 0-5 only
    _add_gold(corpus, [("gr", "p-review", "a1", "gold:review", t0, "p")], [("gr", "SPEAKER", 0, 5)])
    got = scores()
    assert (got["ann"]["precision_exact"], got["ann"]["recall_exact"]) == (2 / 4, 1.0)
    assert (got["bob"]["precision"], got["bob"]["recall"]) == (2 / 3, 1.0)


def test_labels_not_in_the_schema_are_a_one_line_error(cli):
    """A typo or the wrong case in --labels compared nothing and exited 0 with AC1 1.000."""
    res = CliRunner().invoke(cli, ["agree", "--labels", "speaker", "--bootstrap", "0"])
    assert (res.exit_code, res.output) == (
        1,
        "Error: label 'speaker' (did you mean 'SPEAKER'?) not in the schema; "
        "choose from its labels: SPEAKER, QUOTE, CUE, EVENT\n",
    )
    res = CliRunner().invoke(cli, ["agree", "--labels", "QUOTE,SPEKAER", "--bootstrap", "0"])
    assert res.exit_code == 1
    assert res.output.startswith("Error: label 'SPEKAER' not in the schema;")
    once, twice = (
        CliRunner().invoke(cli, ["agree", "--labels", labels, "--bootstrap", "0", "--json"])
        for labels in ("QUOTE", "QUOTE,QUOTE")
    )  # a label named twice was a traceback (hunt E, finding 6)
    assert twice.exit_code == 0 and twice.output == once.output


def test_a_label_without_spans_has_no_figures_and_does_not_pool():
    """EVENT is in the schema but no compared annotation has one: agreeing everywhere that no
    token is EVENT is not agreement on EVENT, so its figures are undefined (they read AC1 and
    observed 1.0), and it must not pool into micro (checked by `krippendorff` on the QUOTE
    layer alone); with no label used at all, the category figures are undefined too."""
    import krippendorff

    rep = report(labels=["QUOTE", "EVENT"], bootstrap=0)
    event = row(rep, "EVENT")
    for k in ("alpha", "fleiss_kappa", "ac1", "observed", "alpha_no_o", "ac1_no_o", "alpha_u"):
        assert math.isnan(event[k]), k
    assert event["units"] == 0
    assert all(math.isnan(p["ac1"]) for p in rep["pairs"] if p["label"] == "EVENT")
    ann_q = token_layer(TEXT1, [(12, 26)]) + token_layer(TEXT2, [(31, 43)])
    bob_q = token_layer(TEXT1, [(13, 25)]) + token_layer(TEXT2, [])
    want = krippendorff.alpha(reliability_data=[ann_q, bob_q], level_of_measurement="nominal")
    assert row(rep, "micro")["alpha"] == pytest.approx(want, abs=1e-12)
    assert rep["summary"]["alpha"]["value"] == pytest.approx(want, abs=1e-12)
    assert any("no span of EVENT" in n for n in rep["notes"])
    only = report(labels=["EVENT"], bootstrap=20)
    for k in ("token_alpha", "token_fleiss_kappa", "token_ac1", "alpha", "span_f1_exact"):
        assert math.isnan(only["summary"][k]["value"]), k
    assert math.isnan(only["token_categories"]["token_observed"])


def test_alpha_u_is_the_ratio_of_means_and_has_no_interval():
    """Krippendorff (2004), Quality & Quantity 38, the sample study (continuum 150..450 moved
    to 0..300; c as QUOTE, k as SPEAKER): published alpha_c 0.7285, alpha_k 1.0 and joint
    alpha 0.8587, 1 - mean Do / mean De, not the mean over labels (0.864). It has no bootstrap
    interval, and the report says so."""
    text = "word " * 60
    units = {
        "A": [("QUOTE", 75, 145), ("QUOTE", 220, 250), ("SPEAKER", 30, 90), ("SPEAKER", 150, 200)],
        "B": [
            ("QUOTE", 70, 150),
            ("QUOTE", 205, 225),
            ("QUOTE", 250, 270),
            ("SPEAKER", 30, 90),
            ("SPEAKER", 150, 200),
        ],
    }
    ann = pd.DataFrame(
        [(f"x{w}", "p", "a1", w, "human", False, False, None) for w in units], columns=ANN_COLS
    )
    spans = pd.DataFrame(
        [(f"x{w}", f"s{i}", "a1", *u) for w, us in units.items() for i, u in enumerate(us)],
        columns=SPAN_COLS,
    )
    articles = pd.DataFrame({"article_id": ["a1"], "text": [text]})
    rep = build_report(articles, ann, spans, bootstrap=50)
    assert row(rep, "QUOTE")["alpha_u"] == pytest.approx(0.7285, abs=1e-4)
    assert row(rep, "SPEAKER")["alpha_u"] == pytest.approx(1.0)
    assert rep["summary"]["alpha_u"]["value"] == pytest.approx(0.8587, abs=1e-4)
    assert row(rep, "macro")["alpha_u"] == pytest.approx((0.7285 + 1) / 2, abs=1e-4)
    assert math.isnan(rep["summary"]["alpha_u"]["ci_low"])
    assert math.isnan(rep["summary"]["alpha_u"]["ci_high"])
    assert any(n.startswith("alpha_u has no confidence interval") for n in rep["notes"])
    assert not any("alpha_u" in n for n in build_report(articles, ann, spans, bootstrap=0)["notes"])


def test_units_count_a_discontinuous_span_once_as_the_span_f1s_do(tmp_path):
    """Two annotators draw one quote in two fragments (broken by its cue): `units` counts it
    once per annotator, as the span F1s and `units_per_label_annotator` do (it counted each
    fragment: hunt J, finding 2); alpha_U still runs over the fragments."""
    from spanbank.corpus import Corpus
    from spanbank.corpus.ingest import ingest_paths

    brat = tmp_path / "brat"
    brat.mkdir()
    (brat / "a1.txt").write_text('Alice said: "We will win, she added, this year."\n')
    ann = (
        "T1\tSource 0 5\tAlice\nT2\tCue 6 10\tsaid\n"
        'T3\tContent 12 24;37 48\t"We will win this year."\nR1\tSource Arg1:T3 Arg2:T1\n'
    )
    for who in ("x1", "x2"):
        (brat / f"a1_{who}.ann").write_text(ann)
    corpus = Corpus.init(tmp_path / "c")
    ingest_paths(corpus, [brat], fmt="brat")
    report = agreement_report(corpus, bootstrap=0)
    cov = report["coverage"]
    assert cov["units_per_label"]["QUOTE"] == 2
    assert sum(cov["units_per_label_annotator"]["QUOTE"].values()) == 2
    quote = next(r for r in report["labels"] if r["label"] == "QUOTE")
    assert quote["units"] == 2 and quote["span_f1_exact"] == 1.0 and quote["alpha_u"] == 1.0
    assert cov["units_per_label"] == {
        lab: sum(by.values()) for lab, by in cov["units_per_label_annotator"].items()
    }
