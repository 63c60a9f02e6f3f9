"""Stored gold is never read half-written, nor kept once its annotators' work has changed."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from spanbank.agreement.report import agreement_report
from spanbank.export import export_dataset
from spanbank.gold import gold_rows, run_adjudication, select_annotations
from spanbank.status import corpus_status
from test_adjudicate import NOW, SP, TEXT, _ann, _full, _span, build_corpus

SRC = Path(__file__).resolve().parents[1] / "src"
EVENT = (TEXT.index("vote"), TEXT.index("vote") + 4)  # cat's EVENT on a1, drawn by no one else


def _add(corpus, annotations, spans=(), relations=(), replace=None):
    """New annotation rows (and their contents); `replace`: ids whose rows become superseded."""
    with corpus.writer() as w:
        if replace:
            ann = corpus.read("annotations")
            ann.loc[ann["annotation_id"].isin(replace), "superseded"] = True
            w.replace("annotations", ann)
        w.append("annotations", pd.DataFrame(annotations))
        if spans:
            w.append("spans", pd.DataFrame(spans))
        if relations:
            w.append("relations", pd.DataFrame(relations))


def _gold_of(corpus, article, gold="auto"):
    """(selection, annotator, spans as (label, start, end), relations as (from, to, label))."""
    chosen = select_annotations(corpus, gold)
    chosen = chosen[chosen["article_id"] == article]
    rows = gold_rows(corpus, annotations=chosen)
    spans = rows.spans.to_pandas()
    rels = rows.relations.to_pandas()
    return (
        chosen["selection"].iloc[0],
        chosen["annotator"].iloc[0],
        sorted(zip(spans["label"], spans["start"], spans["end"], strict=True)),
        sorted(zip(rels["from_span_id"], rels["to_span_id"], rels["label"], strict=True)),
    )


def test_gold_made_before_an_edit_is_adjudicated_again_and_said(tmp_path):
    """a2: ann drew quote, speaker and cue, bob the speaker only; majority gold holds the
    speaker. bob then completes his work (a new version): the stored gold predates it, so the
    selection adjudicates a2 again (both now agree on all three) and the export says so; a1's
    gold, whose inputs did not change, is still read from the store."""
    corpus = build_corpus(tmp_path / "c")
    run_adjudication(corpus, "majority")
    assert _gold_of(corpus, "a2")[:3] == ("gold", "gold:majority", [("SPEAKER", *SP)])
    assert corpus_status(corpus)["stale_gold"] == 0
    spans, rels = _full("h5v2", "a2")
    _add(corpus, [_ann("h5v2", "a2", "bob", version=2)], spans, rels, replace=["h5"])

    selection, annotator, got, links = _gold_of(corpus, "a2")
    assert (selection, annotator) == ("stale", "gold:majority")
    assert [label for label, *_ in got] == ["CUE", "QUOTE", "SPEAKER"]
    assert sorted(label for *_, label in links) == ["cue", "said_by"]
    assert _gold_of(corpus, "a1")[0] == "gold"
    assert corpus_status(corpus)["stale_gold"] == 1
    summary = export_dataset(corpus, ["jsonl"], tmp_path / "out", split="train=1")
    assert summary["warnings"] == [
        "1 article(s)' stored gold predates their annotators' latest work: adjudicated again "
        "from it for this export; re-run `spanbank adjudicate` to store it"
    ]
    notes = agreement_report(corpus, bootstrap=0)["notes"]
    assert "1 article(s)' stored gold predates their annotators' latest work: not scored in " \
        "gold[]; re-run `spanbank adjudicate`" in notes  # fmt: skip
    run_adjudication(corpus, "majority")  # stored again: current, the same gold
    assert _gold_of(corpus, "a2") == ("gold", "gold:majority", got, links)
    assert not any("predates" in n for n in agreement_report(corpus, bootstrap=0)["notes"])
    assert corpus_status(corpus)["stale_gold"] == 0


def test_status_counts_a_project_s_stale_gold_apart_from_its_adjudicated_articles(tmp_path):
    def counts():
        st = corpus_status(corpus)
        (news,) = [p for p in st["projects"] if p["project"] == "news"]
        return st["stale_gold"], news["stale_gold"], news["adjudicated"]

    corpus = build_corpus(tmp_path / "c")
    run_adjudication(corpus, "majority", project="news")
    assert counts() == (0, 0, 3)
    spans, rels = _full("h5v2", "a2")
    _add(corpus, [_ann("h5v2", "a2", "bob", version=2)], spans, rels, replace=["h5"])
    assert counts() == (1, 1, 2)  # a2's gold predates bob's edit: not counted as adjudicated
    run_adjudication(corpus, "majority", project="news")
    assert counts() == (0, 0, 3)


def test_stale_gold_is_redone_by_its_own_strategy_or_falls_to_the_one_annotator_left(tmp_path):
    """Stale union gold is adjudicated again by union, not by the default majority; an article
    whose second annotator's work was deleted has one annotator left: that work is its gold."""
    corpus = build_corpus(tmp_path / "c")
    run_adjudication(corpus, "union")
    event = _span("h9", "a1", "e2", "EVENT", 0, 4)  # a new annotator on a1, one span
    _add(corpus, [_ann("h9", "a1", "dan")], [event])
    selection, annotator, got, _ = _gold_of(corpus, "a1")
    assert (selection, annotator) == ("stale", "gold:union")
    assert ("EVENT", 0, 4) in got  # union keeps a span only dan drew; majority would not

    ann = corpus.read("annotations")
    ann.loc[ann["annotation_id"] == "h8", "deleted_at"] = NOW  # a4: cat's work deleted
    with corpus.writer() as w:
        w.replace("annotations", ann)
    chosen = select_annotations(corpus).set_index("article_id")
    assert chosen.loc["a4", ["selection", "annotation_id"]].tolist() == ["stale_single", "h7"]


def test_stale_gold_with_one_or_no_annotator_left_is_said_as_status_counts_it(tmp_path):
    """Majority gold on a2 (ann, bob) and a4 (ann, cat); then a2's task is deleted (both its
    annotations) and cat's work on a4. `status` counts 2 stale; the export takes a4's one
    annotation left and leaves a2 out, as `adjudicate` would now, and says so (it said nothing,
    `gold_selection` {'single': ...}: hunt J, finding 1)."""
    corpus = build_corpus(tmp_path / "c")
    run_adjudication(corpus, "majority")
    ann = corpus.read("annotations")
    ann.loc[ann["annotation_id"].isin(["h4", "h5", "h8"]), "deleted_at"] = NOW
    with corpus.writer() as w:
        w.replace("annotations", ann)
    assert corpus_status(corpus)["stale_gold"] == 2

    def export(name):
        summary = export_dataset(corpus, ["jsonl"], tmp_path / name, split="train=1")
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        rows = (tmp_path / name / "jsonl" / "train.jsonl").read_text().splitlines()
        got = {r["article_id"]: r["meta"]["annotation_id"] for r in map(json.loads, rows)}
        return summary.get("warnings", []), manifest["gold_selection"], got

    warnings, chosen_by, got = export("out")
    assert chosen_by == {"gold": 1, "single": 1, "stale_dropped": 1, "stale_single": 1}
    assert got == {"a1": "gold-majority-a1", "a3": "h6", "a4": "h7"}
    assert warnings == [
        "2 article(s)' stored gold predates the deletion of their annotators' work: exported "
        "as the one annotation left (1) or left out (1); re-run `spanbank "
        "adjudicate` to settle it"
    ]
    notes = agreement_report(corpus, bootstrap=0)["notes"]
    assert any(n.startswith("2 article(s)' stored gold predates") for n in notes), notes
    run_adjudication(corpus, "majority")
    assert corpus_status(corpus)["stale_gold"] == 0
    assert export("again") == ([], {"gold": 1, "single": 2}, got)  # what adjudicate settles


KILLED = """
import os, sys
from spanbank.corpus import delta
from spanbank.corpus.store import Corpus
from spanbank.gold import run_adjudication

stop, done, real = int(sys.argv[2]), [0], delta.commit

def commit(*args, **kw):
    out = real(*args, **kw)
    done[0] += 1
    if done[0] == stop:
        os._exit(9)  # as a SIGKILL: nothing cleaned up
    return out

delta.commit = commit
run_adjudication(Corpus(sys.argv[1]), "majority")
print(done[0])
"""


def test_adjudicate_killed_after_any_write_never_shows_gold_over_half_its_contents(tmp_path):
    """Re-adjudicating with other options over the same work (the inputs unchanged): killed
    after each of its table writes, the gold read next is the new gold whole, never the old
    rows over new spans without their relations (seen after the third write before)."""
    base = build_corpus(tmp_path / "c")
    run_adjudication(base, "majority", min_votes=1)  # a1: cat's EVENT too
    old = _gold_of(base, "a1")
    clean = tmp_path / "clean"
    shutil.copytree(base.path, clean)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    run = subprocess.run(
        [sys.executable, "-c", KILLED, str(clean), "0"], env=env, capture_output=True, text=True
    )
    writes = int(run.stdout)
    new = _gold_of(type(base)(clean), "a1")
    assert ("EVENT", *EVENT) not in new[2] and old[2] == sorted([*new[2], ("EVENT", *EVENT)])
    assert len(new[3]) == 2
    for stop in range(1, writes):
        path = tmp_path / f"k{stop}"
        shutil.copytree(base.path, path)
        killed = subprocess.run([sys.executable, "-c", KILLED, str(path), str(stop)], env=env)
        assert killed.returncode == 9
        assert _gold_of(type(base)(path), "a1")[2:] == new[2:], stop


def test_stale_majority_is_redone_not_passed_over_for_a_current_union(tmp_path):
    """Majority gold gone stale, then union stored: the export took the union (spans one
    annotator drew) for majority's place, with no warning (hunt E, finding 1)."""
    corpus = build_corpus(tmp_path / "c")
    run_adjudication(corpus, "majority")
    spans, rels = _full("h5v2", "a2")
    _add(corpus, [_ann("h5v2", "a2", "bob", version=2)], spans, rels, replace=["h5"])
    run_adjudication(corpus, "union")
    assert _gold_of(corpus, "a2")[:2] == ("stale", "gold:majority")
    assert _gold_of(corpus, "a2", "union")[:2] == ("gold", "gold:union")


def test_stale_gold_is_redone_with_its_min_votes(tmp_path):
    """Gold stored with --min-votes 3 was redone with the default when stale: a span two of
    three drew came back (hunt E, finding 2)."""
    corpus = build_corpus(tmp_path / "c")
    run_adjudication(corpus, "majority", min_votes=3)
    stored = _gold_of(corpus, "a1")[2]
    assert ("EVENT", *EVENT) not in stored
    event = _span("h1v2", "a1", "e", "EVENT", *EVENT)  # ann draws cat's event too: 2 votes of 3
    spans, rels = _full("h1v2", "a1")
    _add(corpus, [_ann("h1v2", "a1", "ann", version=2)], [*spans, event], rels, replace=["h1"])
    selection, _, redone, _ = _gold_of(corpus, "a1")
    assert selection == "stale" and redone == stored
    run_adjudication(corpus, "majority")
    assert ("EVENT", *EVENT) in _gold_of(corpus, "a1")[2]  # the default keeps 2 of 3


def test_gold_of_each_project_is_stale_by_its_own_projects_work(tmp_path):
    """Gold stored per project is checked against that project's annotations only (one pass
    for all projects): an edit in project p2 makes p2's gold stale, not news's."""
    corpus = build_corpus(tmp_path / "c")  # its annotations are in project news
    extra = [_ann(f"x{w}", "a1", w, project="p2") for w in ("ann", "bob")]
    _add(corpus, extra, [s for w in ("ann", "bob") for s in _full(f"x{w}", "a1")[0]])
    run_adjudication(corpus, "majority", project="news")
    run_adjudication(corpus, "majority", project="p2")
    edit = _ann("xbob2", "a1", "bob", version=2, project="p2")
    _add(corpus, [edit], _full("xbob2", "a1")[0], replace=["xbob"])
    by = {p: select_annotations(corpus, project=p).set_index("article_id") for p in ("news", "p2")}
    assert by["news"].loc["a1", "selection"] == "gold"
    assert by["p2"].loc["a1", "selection"] == "stale"


def test_an_export_after_a_killed_adjudicate_says_so(tmp_path):
    """`adjudicate` deletes the old gold rows, then writes the new ones: killed in between, the
    articles had no stored gold and the export computed default gold without a word. Now the
    next writer records that command as `interrupted`, and the export warns."""
    corpus = build_corpus(tmp_path / "c")
    run_adjudication(corpus, "majority")
    code = (
        "import os, sys\n"
        "from spanbank.corpus import Corpus\n"
        "from spanbank.corpus.store import Writer\n"
        "from spanbank.gold import run_adjudication\n"
        "Writer.upsert = lambda *a, **k: os._exit(9)  # killed before the new gold rows\n"
        "run_adjudication(Corpus(sys.argv[1]), 'majority', min_votes=2)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    killed = subprocess.run([sys.executable, "-c", code, str(corpus.path)], env=env)
    assert killed.returncode == 9
    summary = export_dataset(corpus, ["jsonl"], tmp_path / "out", split="train=1")
    log = corpus.commits()
    assert log["status"].iloc[-1] == "interrupted"
    assert any(
        w.startswith(f"commit {log['commit'].iloc[-1]} (") and "is interrupted" in w
        for w in summary["warnings"]
    ), summary["warnings"]
    run_adjudication(corpus, "majority")  # re-run: the next export has nothing to say
    again = export_dataset(corpus, ["jsonl"], tmp_path / "out", split="train=1")
    assert not again.get("warnings")


def test_a_read_only_corpus_s_unrecorded_kill_is_said_by_the_export(tmp_path):
    """A read-only corpus cannot record a killed command's writes as a commit: its export held
    them and warned of nothing, though `.writing` named the command (hunt I, finding 5)."""
    from conftest import article_rows
    from spanbank.corpus.store import WRITING_FILE, Writer
    from spanbank.export import _unfinished

    corpus = build_corpus(tmp_path / "c")
    with corpus.lock():  # what the killed command left: a version no commit names, and its note
        Writer(corpus).append("articles", article_rows({"late": "A later article."}))
    (corpus.path / WRITING_FILE).write_text("spanbank --corpus c ingest late.jsonl")
    view = corpus.frozen()  # as an export of a corpus it cannot write sees it: no commit row
    assert view.commit is None
    assert _unfinished(view) == [
        "spanbank --corpus c ingest late.jsonl stopped before it finished (the corpus, read-only, "
        "could not record it), and this export holds what it had written; re-run it"
    ]
    corpus.record_strays()  # writable: recorded, named, and said as such
    assert _unfinished(corpus.frozen())[0].endswith(
        "is interrupted: that command stopped before "
        "it finished, and this export holds what it "
        "had written; re-run it"
    )


def test_a_failed_command_s_commit_is_not_warned_of_again(tmp_path):
    """A command that failed said so when it failed (a push whose ml-backend was down): every
    later export repeated "re-run it" though it changed no gold (hunt I, finding 9)."""
    import pytest

    from conftest import article_rows
    from spanbank.export import _unfinished

    corpus = build_corpus(tmp_path / "c")
    with pytest.raises(ValueError), corpus.writer() as w:
        w.append("articles", article_rows({"late": "A later article."}))
        raise ValueError("the backend is down")
    assert corpus.commits()["status"].iloc[-1] == "failed (ValueError)"
    assert _unfinished(corpus.frozen()) == []
