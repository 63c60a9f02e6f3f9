"""`spanbank preannotate --eval` against the hand-made seed gold stored as an imported annotation."""

import json
from datetime import datetime, timezone
from pathlib import Path

from click.testing import CliRunner

from spanbank.cli import cli
from spanbank.corpus.ingest import ingest_paths
from spanbank.corpus.store import Corpus
from spanbank.schema import attributes_json
from spanbank.tagger_eval import evaluate_tagger

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "seeds" / "000_2e13a8ea3bc18025.txt"
GOLD = ROOT / "tests" / "data" / "000_2e13a8ea3bc18025.gold.json"


def import_annotation(annotation_id: str, article_id: str) -> dict:
    """An `annotations` row of imported gold (origin import, annotator editor), made now."""
    now = datetime.now(timezone.utc)
    return {
        "annotation_id": annotation_id,
        "project": None,
        "article_id": article_id,
        "ls_task_id": None,
        "ls_annotation_id": None,
        "annotator": "editor",
        "origin": "import",
        "created_at": now,
        "updated_at": now,
        "lead_time_s": None,
        "cancelled": False,
        "version": 1,
        "superseded": False,
        "deleted_at": None,
        "pulled_at": now,
    }


def _seed_corpus(tmp_path) -> Corpus:
    corpus = Corpus.init(tmp_path / "corpus")
    ingest_paths(corpus, [SEED])
    article_id = corpus.read("articles")["article_id"].iloc[0]
    gold = json.loads(GOLD.read_text("utf-8"))
    ann = import_annotation("import-seed", article_id)
    spans = [
        {
            "annotation_id": "import-seed",
            "span_id": s["id"],
            "article_id": article_id,
            "label": s["label"],
            "start": s["start"],
            "end": s["end"],
            "text": s["text"],
            "attributes": attributes_json(s.get("attributes")),
            "offset_repair": None,
        }
        for s in gold["spans"]
    ]
    rels = [
        {
            "annotation_id": "import-seed",
            "from_span_id": r["from"],
            "to_span_id": r["to"],
            "label": r["label"],
        }
        for r in gold["relations"]
    ]
    with corpus.writer() as w:
        w.append("annotations", [ann])
        w.append("spans", spans)
        w.append("relations", rels)
    return corpus


def test_tagger_finds_seed_direct_quotes_and_speakers(tmp_path):
    res = evaluate_tagger(_seed_corpus(tmp_path))
    assert res["articles"] == 1
    assert res["exact"]["QUOTE:direct"]["f1"] == 1.0
    assert res["exact"]["said_by"]["f1"] >= 0.9
    # EVENT is not tagged by the rules: recall and F1 0, precision undefined (nan), never a made-up number.
    assert res["exact"]["EVENT"]["n_pred"] == 0 and res["exact"]["EVENT"]["recall"] == 0.0
    assert res["exact"]["EVENT"]["f1"] == 0.0
    assert res["exact"]["EVENT"]["precision"] != res["exact"]["EVENT"]["precision"]


def test_cli_eval_prints_table_and_json(tmp_path):
    corpus = _seed_corpus(tmp_path)
    r = CliRunner().invoke(cli, ["--corpus", str(corpus.path), "preannotate", "--eval"])
    assert r.exit_code == 0, r.output
    assert "QUOTE:direct" in r.output and "said_by" in r.output
    r = CliRunner().invoke(cli, ["--corpus", str(corpus.path), "preannotate", "--eval", "--json"])
    assert json.loads(r.output)["exact"]["QUOTE"]["n_gold"] == 10


def test_eval_without_gold_is_a_clear_error(tmp_path):
    corpus = Corpus.init(tmp_path / "c")
    ingest_paths(corpus, [SEED])
    r = CliRunner().invoke(cli, ["--corpus", str(corpus.path), "preannotate", "--eval"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        "Error: no annotated article to evaluate against; pull or import annotations first"
    ]


def _frag_gold_corpus(tmp_path) -> tuple[Corpus, str]:
    """A brat-imported gold where the quote is one span of two fragments, linked once."""
    text = "Fans waited. “We win,” the coach said, “and they lose.” Then she left.\n"
    a, b = text.index("“We"), text.index("“and")
    sp, cue = text.index("the coach"), text.index("said")
    ann = "\n".join(
        [
            f"T1\tContent {a} {a + 9};{b} {b + 16}\t{text[a : a + 9]} {text[b : b + 16]}",
            f"T2\tSource {sp} {sp + 9}\tthe coach",
            f"T3\tCue {cue} {cue + 4}\tsaid",
            "E1\tContent:T1 Source:T2 Cue:T3",
        ]
    )
    d = tmp_path / "brat"
    d.mkdir()
    (d / "f1.txt").write_text(text, "utf-8")
    (d / "f1.ann").write_text(ann + "\n", "utf-8")
    corpus = Corpus.init(tmp_path / "corpus")
    ingest_paths(corpus, [d], fmt="brat")
    return corpus, text


def test_interrupted_quote_scores_once_with_its_links(tmp_path):
    """The tagger's two-fragment quote matches the gold's exactly, and its said_by and cue
    count once each (not as a wrong link on a second fragment)."""
    corpus, _ = _frag_gold_corpus(tmp_path)
    assert corpus.read("spans")["fragments"].notna().sum() == 1
    res = evaluate_tagger(corpus, gold="import")
    for key in ("QUOTE", "said_by", "cue"):
        got = res["exact"][key]
        assert (got["tp"], got["n_pred"], got["n_gold"]) == (1, 1, 1), key


def test_fragment_sets_match_as_units():
    from spanbank.preannotate import evaluate

    frags = [{"start": 0, "end": 4}, {"start": 14, "end": 18}]
    gold = [{"span_id": "g", "label": "QUOTE", "start": 0, "end": 18, "fragments": frags}]
    outer = [{"span_id": "p", "label": "QUOTE", "start": 0, "end": 18}]
    first = [{"span_id": "p", "label": "QUOTE", "start": 0, "end": 4}]
    # the outer bounds alone are not the span; one fragment is half of it (IoU 0.5)
    assert evaluate(outer, gold)["exact"]["QUOTE"]["tp"] == 0
    assert evaluate(outer, gold)["overlap"]["QUOTE"]["tp"] == 0  # IoU 8 / 18
    assert evaluate(first, gold)["overlap"]["QUOTE"]["tp"] == 1
    same = [{**gold[0], "span_id": "p"}]
    assert evaluate(same, gold)["exact"]["QUOTE"]["tp"] == 1


def test_any_overlap_mode_and_quote_types_inferred_for_untyped_gold():
    from spanbank.preannotate import evaluate
    from spanbank.tagger_eval import typed_quotes

    text = "He said \u201cthe plan works well\u201d and that costs would fall next year."
    direct = (text.index("\u201c"), text.index("\u201d") + 1)
    indirect = (text.index("costs"), len(text) - 1)
    gold = typed_quotes(
        text,
        [
            {"span_id": "g1", "label": "QUOTE", "start": direct[0], "end": direct[1]},
            {"span_id": "g2", "label": "QUOTE", "start": indirect[0], "end": indirect[1]},
        ],
    )
    assert [g["attributes"]["type"] for g in gold] == ["direct", "indirect"]
    # a prediction covering a fifth of the indirect quote: any overlap, not IoU >= 0.5
    pred = [{"span_id": "p1", "label": "QUOTE", "start": indirect[0], "end": indirect[0] + 5}]
    res = evaluate(typed_quotes(text, pred), gold)
    assert res["overlap"]["QUOTE"]["tp"] == 0 and res["any"]["QUOTE"]["tp"] == 1
    assert res["any"]["QUOTE:indirect"]["tp"] == 1 and res["any"]["QUOTE:direct"]["n_gold"] == 1
    assert res["exact"]["QUOTE"]["tp"] == 0
