"""A quote broken by its cue is one span in every export format, loaded by each format's consumer."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from spanbank.corpus.ingest import ingest_paths
from spanbank.corpus.store import Corpus
from spanbank.export.conll import read_conll
from spanbank.export.quotes import context_window
from spanbank.schema import attributes_json
from test_export import build_corpus, run

TEXT = '"We will win," the mayor said on Monday, "and they will lose." Officials disagreed.'
A, B = TEXT.index("We"), TEXT.index(",")  # "We will win"
C, D = TEXT.index("and"), TEXT.index('."')  # "and they will lose"
ARTICLES = {
    "f1": (
        TEXT,
        [
            ("s1", "SPEAKER", "the mayor", 0, None),
            ("c1", "CUE", "said", 0, None),
            ("e1", "EVENT", "disagreed", 0, {"type": "statement"}),
        ],
        [("q1", "s1", "said_by"), ("q1", "c1", "cue")],
    )
}
QUOTE = {
    "annotation_id": "ann-f1",
    "span_id": "f1-q1",
    "article_id": "f1",
    "label": "QUOTE",
    "start": A,
    "end": D,
    "text": f"{TEXT[A:B]} … {TEXT[C:D]}",
    "attributes": attributes_json({"type": "direct"}),
    "fragments": [{"start": A, "end": B}, {"start": C, "end": D}],
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("frag")
    corpus = build_corpus(root / "corpus", ARTICLES, extra_spans=[QUOTE])
    run(corpus, root / "out", split="train=1")
    return corpus, root / "out"


def test_jsonl_carries_fragments(exported):
    _, out = exported
    doc = json.loads((out / "jsonl" / "train.jsonl").read_text().splitlines()[0])
    q = next(s for s in doc["spans"] if s["label"] == "QUOTE")
    assert q["fragments"] == [[A, B], [C, D]]
    assert q["text"] == "We will win … and they will lose"
    assert (q["start"], q["end"]) == (A, D)


def test_spacy_one_span_per_fragment_with_a_shared_group(exported):
    import spacy
    from spacy.tokens import DocBin

    _, out = exported
    doc = next(DocBin().from_disk(out / "spacy" / "train.spacy").get_docs(spacy.blank("en").vocab))
    quotes = [s for s in doc.spans["sc"] if s.label_ == "QUOTE"]
    assert [s.text for s in quotes] == ["We will win", "and they will lose"]
    assert {s.id_ for s in quotes} == {"f1-q1"}
    group = doc.user_data["groups"]["f1-q1"]
    assert [doc.spans["sc"][i].text for i in group] == ["We will win", "and they will lose"]


def test_hf_bio_per_fragment_and_lossless_spans(exported):
    import datasets

    _, out = exported
    row = datasets.load_from_disk(str(out / "hf"))["train"][0]
    q = next(s for s in row["spans"] if s["label"] == "QUOTE")
    assert q["fragments"] == [{"start": A, "end": B}, {"start": C, "end": D}]
    tags = row["ner_tags_QUOTE"]
    begins = [row["token_starts"][i] for i, t in enumerate(tags) if t == 1]
    assert begins == [A, C]
    inside = {row["tokens"][i] for i, t in enumerate(tags) if t}
    assert "said" not in inside and "mayor" not in inside


def test_conll_bio_per_fragment(exported):
    _, out = exported
    doc = read_conll(out / "conll" / "train.conll", ["SPEAKER", "QUOTE", "CUE", "EVENT"])[0]
    tags = doc["tags"]["QUOTE"]
    assert [doc["tokens"][i] for i, t in enumerate(tags) if t == "B-QUOTE"] == ["We", "and"]
    assert tags[doc["tokens"].index("said")] == "O"


def test_quotes_one_row_with_speaker_cue_and_integer_offsets(exported):
    _, out = exported
    q = pd.read_parquet(out / "quotes" / "quotes.parquet")
    assert len(q) == 1
    row = q.iloc[0]
    assert row["quote_text"] == "We will win … and they will lose"
    assert (row["speaker_text"], row["cue_text"]) == ("the mayor", "said")
    assert [dict(f) for f in row["quote_fragments"]] == [
        {"start": A, "end": B},
        {"start": C, "end": D},
    ]
    assert str(q["speaker_start"].dtype) == "Int64" and str(q["quote_start"].dtype) == "Int64"


def test_quote_without_speaker_has_null_not_nan_offsets(tmp_path):
    arts = {
        "g1": ("He left. They said it was over.", [("q1", "QUOTE", "it was over", 0, None)], [])
    }
    corpus = build_corpus(tmp_path / "c", arts)
    run(corpus, tmp_path / "out", formats=["quotes"], split="train=1")
    q = pd.read_parquet(tmp_path / "out" / "quotes" / "quotes.parquet")
    assert str(q["speaker_start"].dtype) == "Int64" and q["speaker_start"].isna().all()


def test_context_window_ends_at_word_boundaries():
    text = "alpha bravo charlie delta echo foxtrot golf"
    s = text.index("delta")
    lo, hi = context_window(text, s, s + 5, context=9)
    assert text[lo:hi] == "charlie delta echo"
    assert context_window(text, 0, len(text), context=9) == (0, len(text))


def test_brat_writes_one_t_line_and_reimports_identically(exported, tmp_path):
    corpus, out = exported
    ann = (out / "brat" / "train" / "f1.ann").read_text()
    assert f"\tQUOTE {A} {B};{C} {D}\tWe will win and they will lose\n" in ann
    assert "_fragment_of" not in ann
    conf = (out / "brat" / "annotation.conf").read_text()
    assert "type_QUOTE\tArg:QUOTE, Value:direct|indirect|mixed" in conf
    assert "type_EVENT\tArg:EVENT, Value:contact|" in conf
    back = Corpus.init(tmp_path / "back")
    summary = ingest_paths(back, [out / "brat"], fmt="brat")
    assert summary.rejected == []

    def key(c):
        sp = c.read_arrow("spans").to_pylist()
        return sorted(
            (s["label"], s["start"], s["end"], s["text"], str(s["fragments"]), s["attributes"])
            for s in sp
        )

    assert key(back) == key(corpus)
    by_id = {s["span_id"]: s["label"] for s in back.read_arrow("spans").to_pylist()}
    rels = sorted(
        (by_id[r["from_span_id"]], by_id[r["to_span_id"]], r["label"])
        for r in back.read_arrow("relations").to_pylist()
    )
    assert rels == [("QUOTE", "CUE", "cue"), ("QUOTE", "SPEAKER", "said_by")]


def _official(tmp_path, values):
    arts = {
        f"o{i}": (f"Report {i}. Officials said that item {i} was ready.", [], [])
        for i in range(len(values))
    }
    corpus = build_corpus(tmp_path / "c", arts)
    arts_df = corpus.read("articles")
    arts_df["compartment"] = arts_df["article_id"].map({f"o{i}": v for i, v in enumerate(values)})
    with corpus.writer() as w:
        w.replace("articles", arts_df)
    return corpus


def test_split_by_keeps_the_corpus_own_split(tmp_path):
    corpus = _official(tmp_path, ["test", "train", "train", "dev"])
    summary = run(corpus, tmp_path / "out", formats=["jsonl"], split_by="compartment")
    assert summary["splits"] == {"train": 2, "dev": 1, "test": 1}
    run(corpus, tmp_path / "hf", formats=["hf"], split_by="compartment")
    import datasets

    row = datasets.load_from_disk(str(tmp_path / "hf" / "hf"))["test"][0]
    assert row["metadata"] == [{"key": "compartment", "value": "test"}]
    docs = [json.loads(x) for x in (tmp_path / "out/jsonl/test.jsonl").open()]
    assert [d["article_id"] for d in docs] == ["o0"]
    assert docs[0]["meta"]["extra"] == {"compartment": "test"}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "the corpus's own, from column `compartment` (train=0.5, dev=0.25, test=0.25)" in card
    assert "- languages: en (4)" in card


def test_split_by_refuses_empty_values_and_mixed_options(tmp_path):
    from spanbank.errors import ExportError

    corpus = _official(tmp_path, ["train", None])
    with pytest.raises(ExportError, match="compartment: 1 article"):
        run(corpus, tmp_path / "out", formats=["jsonl"], split_by="compartment")
    with pytest.raises(ExportError, match="drop --split"):
        run(corpus, tmp_path / "o2", formats=["jsonl"], split_by="compartment", split="train=1")


def test_group_by_warns_when_the_column_is_empty(tmp_path):
    corpus = _official(tmp_path, [None, None, "x"])
    summary = run(corpus, tmp_path / "out", formats=["jsonl"], group_by="compartment")
    assert summary["warnings"] == [
        "--group-by compartment: 2 of 3 article(s) have no value; each was split on its own",
        "--group-by compartment: split(s) dev, test got none of the 3 group(s); try another "
        "--seed or --split",
    ]


def test_hf_rows_carry_language_metadata_and_typed_attributes(exported):
    import datasets

    _, out = exported
    ds = datasets.load_from_disk(str(out / "hf"))["train"]
    assert ds.features["spans"].feature["attributes"]["type"] == datasets.Value("string")
    row = ds[0]
    assert (row["language"], row["source"], row["annotator"]) == ("en", "outlet0", "alice")
    assert row["published_at"].startswith("2024-05-01T12:00:00")
    q = next(s for s in row["spans"] if s["label"] == "QUOTE")
    assert q["attributes"] == {"type": "direct"}
    assert next(s for s in row["spans"] if s["label"] == "SPEAKER")["attributes"] == {"type": None}
