"""The export's split pass reads the articles table a batch at a time: each article's split, and
its refusals, against the definitions computed apart (stored order shuffled, batches of 7)."""

from __future__ import annotations

import json
import random

import pytest

import spanbank.export as export_mod
from spanbank.errors import ExportError
from spanbank.export.split import assign_splits, parse_split
from test_export import build_corpus, given, run


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    monkeypatch.setattr(export_mod, "SPLIT_BATCH", 7)


def _corpus(tmp_path, n, column=None):
    ids = [f"a{i:03d}" for i in range(n)]
    random.Random(3).shuffle(ids)  # stored order is not id order
    arts = {a: (f"Report {a}. Officials said that {a} was ready.", [], []) for a in ids}
    corpus = build_corpus(tmp_path / "c", arts)
    if column:
        df = corpus.read("articles")
        df["compartment"] = df["article_id"].map(column)
        with corpus.writer() as w:
            w.replace("articles", df)
    return corpus, ids


def _doc_splits(out) -> dict[str, str]:
    got = {}
    for path in (out / "jsonl").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            got[json.loads(line)["article_id"]] = path.stem
    return got


@pytest.mark.parametrize("group_by", [None, "source"])
def test_hash_split_per_article_is_the_definition(tmp_path, group_by):
    corpus, ids = _corpus(tmp_path, 60)
    fractions = parse_split("train=0.5,dev=0.25,test=0.25")
    arts = corpus.read("articles")
    source = dict(zip(arts["article_id"], arts["source"], strict=True))
    keys = [f"g\x00{source[a]}" if group_by else a for a in ids]
    want = dict(zip(ids, assign_splits(keys, fractions, seed=9), strict=True))
    run(corpus, tmp_path / "o", formats=["jsonl"], seed=9, group_by=group_by, split=fractions)
    assert _doc_splits(tmp_path / "o") == want
    assert len(set(want.values())) >= 2


def test_split_by_strips_values_and_counts_fractions(tmp_path):
    values = [" train", "test ", "train", "dev", "train", "train"] * 5
    ids = [f"a{i:03d}" for i in range(len(values))]
    corpus, _ = _corpus(tmp_path, len(values), dict(zip(ids, values, strict=True)))
    summary = run(corpus, tmp_path / "o", formats=["jsonl"], split_by="compartment")
    assert _doc_splits(tmp_path / "o") == {a: v.strip() for a, v in zip(ids, values, strict=True)}
    assert summary["splits"] == {"train": 20, "dev": 5, "test": 5}
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["split_fractions"] == {"train": 0.6667, "dev": 0.1667, "test": 0.1667}


def test_split_by_names_the_first_article_without_a_value_in_table_order(tmp_path):
    corpus, ids = _corpus(tmp_path, 20)
    blank = {ids[13]: "  ", ids[6]: None}  # ids[6] is stored first
    corpus, ids = _corpus(tmp_path / "x", 20, {a: blank.get(a, "train") for a in ids})
    backwards = given(corpus).sort_values("article_id", ascending=False)  # not the table's order
    with pytest.raises(ExportError, match=rf"2 article\(s\) have no value \(e.g. {ids[6]}\)"):
        run(
            corpus, tmp_path / "o", formats=["jsonl"], split_by="compartment", annotations=backwards
        )


def test_split_by_a_column_of_texts_is_one_short_line(tmp_path, monkeypatch):
    """`--split-by text` printed a whole article in its error (split names are checked after
    every value was read); now it stops once the column holds more distinct values than splits
    can be, and a bad split name is cut short on one line."""
    monkeypatch.setattr(export_mod, "MAX_SPLITS", 5)
    corpus, ids = _corpus(tmp_path, 40)
    read = []
    real = export_mod._Found.batches

    def counted(self, *args):
        for batch in real(self, *args):
            read.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(export_mod._Found, "batches", counted)
    with pytest.raises(ExportError, match=r"^--split-by text: more than 5 distinct values; "):
        run(corpus, tmp_path / "o", formats=["jsonl"], split_by="text")
    assert sum(read) == 7  # the first batch already held 7 texts
    text = "Report. " * 20 + "\nsecond line"
    corpus, _ = _corpus(tmp_path / "x", 3, {a: text for a in ids})
    with pytest.raises(ExportError) as err:
        run(corpus, tmp_path / "o", formats=["jsonl"], split_by="compartment")
    message = str(err.value)
    assert message.startswith("split name 'Report. Report. ") and "\n" not in message
    assert len(message) < 150 and not (tmp_path / "o").exists()


def test_annotated_articles_missing_from_the_articles_table_are_named(tmp_path):
    corpus, ids = _corpus(tmp_path, 20)
    ghosts = corpus.read("annotations").iloc[:2]
    ghosts = ghosts.assign(annotation_id=["ann-zz2", "ann-zz1"], article_id=["zz2", "zz1"])
    with corpus.writer() as w:
        w.append("annotations", ghosts)
    with pytest.raises(
        ExportError, match="2 annotated article.s. are not in the articles table: zz1, zz2"
    ):
        run(corpus, tmp_path / "o", formats=["jsonl"], annotations=None, gold="alice")
    assert not (tmp_path / "o").exists()


def test_an_article_stored_twice_is_refused(tmp_path):
    corpus, ids = _corpus(tmp_path, 20)
    again = corpus.read("articles").iloc[[11]]
    with corpus.writer() as w:
        w.append("articles", again)
    with pytest.raises(ExportError, match="holds an article_id twice"):
        run(corpus, tmp_path / "o", formats=["jsonl"])


def test_the_selection_is_put_in_chunk_order_a_column_at_a_time():
    """The selection (here put together from parts, as from ranges of article ids) comes back
    in the order asked, equal to `iloc`, each column in one piece, so that slicing chunks off
    it copies no more than the chunk; its columns are dropped from the frame given."""
    import numpy as np
    import pandas as pd

    parts = [
        pd.DataFrame(
            {
                "annotation_id": pd.array([f"x{k}-{i}" for i in range(50)], dtype="str"),
                "project": pd.array([None if i % 7 else "p" for i in range(50)], dtype="str"),
                "version": np.arange(50) + k,
                "updated_at": pd.to_datetime([None] * 25 + ["2026-01-01"] * 25, utc=True),
            }
        )
        for k in range(3)
    ]
    frame = pd.concat(parts, ignore_index=True)
    assert frame["annotation_id"].array.__arrow_array__().num_chunks == 3
    order = np.random.default_rng(0).permutation(len(frame))
    want = frame.iloc[order].reset_index(drop=True)
    got = export_mod._reordered(frame, order)
    pd.testing.assert_frame_equal(got, want)
    assert frame.columns.empty
    for c in ("annotation_id", "project"):
        assert got[c].array.__arrow_array__().num_chunks == 1
