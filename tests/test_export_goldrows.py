"""The export's gold rows parked on disk by range of chunks (spanbank.export.goldrows): the same
rows in the same order as filtering the whole tables, with one range held at a time."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest

from spanbank import gold as gold_mod
from spanbank.corpus.articles import IdSet
from spanbank.export import export_dataset, goldrows
from test_export import ARTICLES, _second_annotator, all_docs, build_corpus


@pytest.fixture
def mixed(tmp_path):
    """Single-annotator articles, gold computed on the fly (two annotators), rows of one
    annotation spread over two commits, and a stray span stored under a computed gold id (a
    crash between an adjudication's contents and its annotation row)."""
    corpus = build_corpus(tmp_path / "c")
    _second_annotator(corpus, ["a03", "a04", "a05"])
    sp = corpus.read("spans")
    first = sp[sp["annotation_id"] == "ann-a10"].iloc[0]
    extra = pd.DataFrame(
        [
            first.to_dict() | {"span_id": "a10-late"},
            first.to_dict() | {"annotation_id": "gold-majority-a04", "span_id": "stray"},
        ]
    )
    with corpus.writer() as w:
        w.append("spans", extra)
    return corpus


def _data_files(out) -> dict:
    files = json.loads((out / "manifest.json").read_text())["files"]
    return {k: v for k, v in files.items() if k.split("/")[0] in ("jsonl", "spacy")}


def test_rows_per_chunk_equal_the_whole_table_filtered(mixed, tmp_path, monkeypatch):
    """Every article's exported spans are its gold annotation's rows, computed gold included and
    the stray row left out; the files are byte for byte the same whether a bucket holds one
    chunk or all of them."""
    monkeypatch.setattr(goldrows, "BUCKET_ARTICLES", 2)
    monkeypatch.setattr(goldrows, "HELD_BYTES", 1)  # a file per bucket touched by each batch
    export_dataset(mixed, ["jsonl", "spacy"], tmp_path / "small", chunk_size=2)
    monkeypatch.setattr(goldrows, "BUCKET_ARTICLES", 10_000)
    monkeypatch.setattr(goldrows, "HELD_BYTES", 1 << 30)
    export_dataset(mixed, ["jsonl", "spacy"], tmp_path / "one", chunk_size=2)
    assert _data_files(tmp_path / "small") == _data_files(tmp_path / "one")

    rows = gold_mod.gold_rows(mixed)  # the whole tables, filtered: what the spool replaced
    spans = rows.spans.to_pandas()
    docs = all_docs(tmp_path / "small")
    assert set(docs) == set(ARTICLES)
    for a in rows.annotations.itertuples():
        want = spans[spans["annotation_id"] == a.annotation_id]
        got = docs[a.article_id]["spans"]
        assert sorted((s["label"], s["start"], s["end"]) for s in got) == sorted(
            zip(want["label"], want["start"], want["end"], strict=True)
        )
    assert len(docs["a10"]["spans"]) == len(ARTICLES["a10"][1]) + 1  # the later commit's row
    assert "stray" not in spans["span_id"].tolist()


def test_a_chunks_rows_are_its_annotations_rows_of_the_whole_tables(mixed, tmp_path, monkeypatch):
    """Asked chunk by chunk (articles in a shuffled order, buckets of 4 articles, a parked file
    per batch), the spool gives each chunk the rows of its annotations that the whole tables
    filtered give, grouped by annotation in the chunk's order, each annotation's rows in table
    order (a10's late row last), stray rows left out; an empty chunk gives empty tables."""
    monkeypatch.setattr(goldrows, "BUCKET_ARTICLES", 4)
    monkeypatch.setattr(goldrows, "HELD_BYTES", 1)
    rows = gold_mod.gold_rows(mixed)
    ann = rows.annotations.sample(frac=1, random_state=2)
    ann = ann.reset_index(drop=True)
    ids = IdSet(pa.array(ann["annotation_id"]))
    in_store, todo = gold_mod.split_stored(mixed, ann, ids)
    assert in_store.any() and len(todo)  # stored rows and rows adjudicated again
    spool = goldrows.GoldSpool(tmp_path / "spool", mixed, ids, in_store, todo, chunk_size=2)
    whole = {"spans": rows.spans, "relations": rows.relations}
    for start in range(0, len(ann), 2):
        chunk = ann.iloc[start : start + 2].reset_index(drop=True)
        got = spool(chunk, start)
        for name, table in zip(goldrows.NAMES, got, strict=True):
            ids = table.column("annotation_id").to_pylist()
            want = whole[name].to_pandas()
            want = pd.concat([want[want["annotation_id"] == a] for a in chunk["annotation_id"]])
            assert ids == want["annotation_id"].tolist()
            assert (
                table.to_pandas()
                .drop(columns="annotation_id")
                .equals(want.drop(columns="annotation_id").reset_index(drop=True))
            )
    assert [t.num_rows for t in spool(ann.iloc[:0], len(ann))] == [0, 0]
    spool.close()
    assert not (tmp_path / "spool").exists()


def test_the_driver_holds_one_bucket_at_a_time(mixed, tmp_path, monkeypatch):
    """With buckets of 2 articles, no load holds the rows of more than 2 articles, each bucket
    is read once, rows parked from several commits make one file per table and bucket, and the
    spool folder is gone afterwards."""
    monkeypatch.setattr(goldrows, "BUCKET_ARTICLES", 2)
    files = []
    real_flush = goldrows.GoldSpool._flush

    def flush(self):
        real_flush(self)
        files.append(sum(len(v) for per in self._files.values() for v in per.values()))

    monkeypatch.setattr(goldrows.GoldSpool, "_flush", flush)
    loads = []
    real = goldrows.GoldSpool._load

    def spy(self, k):
        fresh = self._loaded is None or self._loaded[0] != k
        got = real(self, k)
        if fresh:
            loads.extend(set(t.column("annotation_id").to_pylist()) for t, _ in got)
        return got

    monkeypatch.setattr(goldrows.GoldSpool, "_load", spy)
    export_dataset(mixed, ["jsonl"], tmp_path / "o", chunk_size=1)
    span_loads = loads[0::2]  # spans, relations, spans, ...
    assert len(span_loads) == -(-len(ARTICLES) // 2)
    assert all(len(ids) <= 2 for ids in loads)
    assert files == [len(span_loads) * 2]  # one flush at the end: spans and relations per bucket
    assert not list(tmp_path.glob("**/.gold-rows*"))


def test_a_failed_export_leaves_no_spool(mixed, tmp_path, monkeypatch):
    from spanbank.export import docs as docs_mod

    def boom(*a, **k):
        raise RuntimeError("killed mid-export")

    monkeypatch.setattr("spanbank.export.build_documents", boom)
    with pytest.raises(RuntimeError, match="killed"):
        export_dataset(mixed, ["jsonl"], tmp_path / "o", chunk_size=2)
    assert docs_mod.build_documents is not boom
    assert not (tmp_path / "o").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_fingerprint_kept_as_bytes_digests_as_sorted_tuples():
    """The compact fingerprint rows give the digest of the definition (sorted field tuples,
    each joined by \\x1f and ended by \\x1e), computed here independently: prefixes, non-ASCII
    and astral characters, and control characters that would sort differently as bytes. The
    same rows taken chunk by chunk into another Fingerprint (as the export's driver holds them,
    in Arrow arrays sorted by Arrow) give the same digest."""
    import hashlib
    import random

    from spanbank.export.manifest import Fingerprint

    def reference(rows_ann, rows_txt):
        def digest(rows):
            h = hashlib.sha256()
            for r in sorted(rows):
                h.update("\x1f".join(r).encode() + b"\x1e")
            return h.hexdigest()

        a, t = digest(rows_ann), digest(rows_txt)
        return hashlib.sha256((a + t).encode()).hexdigest()

    rng = random.Random(5)
    alphabet = ["a", "b", "ab", "é", "😀", "\x01", "\x1f", " ", "Z"]
    for with_control in (False, True):
        fp, ann, txt = Fingerprint(), [], []
        pool = alphabet if with_control else [c for c in alphabet if c >= " "]
        aids = {"x", "x\x01y", "xa"} if with_control else {"x", "x y", "xa"}  # prefixes
        while len(aids) < 300:
            aids.add("".join(rng.choice(pool) for _ in range(rng.randrange(1, 6))))
        for i, aid in enumerate(sorted(aids, key=lambda _: rng.random())):
            text = "".join(rng.choice(pool) for _ in range(5))
            fp.add(aid, text, "ann-" + aid, i % 3 + 1, None)
            txt.append((aid, hashlib.sha256(text.encode()).hexdigest()))
            ann.append(("ann-" + aid, str(i % 3 + 1), ""))
        assert fp.digests()["sha256"] == reference(ann, txt)
        assert any(isinstance(r, tuple) for r in fp.texts) is with_control
        driver = Fingerprint()
        for lo in range(0, len(fp.texts), 70):
            driver.extend(fp.texts[lo : lo + 70], fp.annotations[lo : lo + 70])
        assert not driver.texts if not with_control else driver.texts
        assert driver.digests() == fp.digests()


def test_fingerprint_spilled_in_sorted_runs_digests_the_same(tmp_path, monkeypatch):
    """With a spill folder the driver holds at most RUN_BYTES of rows: the rest wait on disk in
    sorted runs, which the digest merges. Rows arriving in random order, duplicates and shared
    prefixes across runs give the digest of the definition computed apart, and the runs are
    deleted; so with a tuple row (control character) among them."""
    import hashlib
    import random

    from spanbank.export import manifest
    from spanbank.export.manifest import Fingerprint

    def digest(rows):
        h = hashlib.sha256()
        for r in sorted(rows):
            h.update("\x1f".join(r).encode() + b"\x1e")
        return h.hexdigest()

    monkeypatch.setattr(manifest, "RUN_BYTES", 2000)
    monkeypatch.setattr(manifest, "SLICE", 7)  # merged output crosses slice edges
    rng = random.Random(11)
    for control in (False, True):
        ann, txt, held = [], [], []
        spill = tmp_path / f"runs-{control}"
        driver = Fingerprint(spill)
        for chunk in range(40):
            part = Fingerprint()
            for _ in range(rng.randrange(0, 25)):
                aid = "".join(rng.choice("ab\u00e9\U0001f600") for _ in range(rng.randrange(1, 5)))
                if control and chunk == 17:
                    aid += "\x01"
                part.add(aid, aid * 3, "ann-" + aid, 1, None)
                txt.append((aid, hashlib.sha256((aid * 3).encode()).hexdigest()))
                ann.append(("ann-" + aid, "1", ""))
            driver.extend(part.texts, part.annotations)
            held.append(driver._held_bytes)
        runs = sorted(p.name for p in spill.iterdir())
        assert len(runs) >= 6 and {r.split("-")[0] for r in runs} == {"annotations", "texts"}
        assert max(held) < 2000 + 1000  # one chunk's rows beyond the bound at most
        want = hashlib.sha256((digest(ann) + digest(txt)).encode()).hexdigest()
        assert driver.digests()["sha256"] == want
        assert not spill.exists()


def test_chunk_frames_give_each_chunk_back_as_it_was(tmp_path):
    """Parked frames come back equal, dtypes and missing values included (also when held as
    categories and cast back); a start that is not a chunk's, or a length other than the
    chunk's, is refused; close deletes the file."""
    frame = pd.DataFrame(
        {
            "annotation_id": pd.array(["a", "b", None, "é😀", "e"], dtype="str"),
            "version": [1, 2, 3, 4, 5],
            "updated_at": pd.to_datetime(["2026-01-01", None, "2026-01-03", None, None], utc=True),
            "origin": ["x", None, "y", "z", None],
        },
        index=[9, 7, 5, 3, 1],
    )
    frames = goldrows.ChunkFrames(tmp_path / "sel", frame, 2)
    for start, n in ((0, 2), (2, 2), (4, 1)):
        got = frames(start, n)
        want = frame.iloc[start : start + n].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want)
    for start, n in ((1, 2), (6, 1), (0, 1)):
        with pytest.raises(IndexError):
            frames(start, n)
    frames.close()
    assert not (tmp_path / "sel").exists()
    # held as categories, parked so, given back in the dtypes named: the same values
    few = frame.astype({"annotation_id": "category", "origin": "category"})
    dtypes = {c: frame[c].dtype for c in ("annotation_id", "origin")}
    frames = goldrows.ChunkFrames(tmp_path / "sel", few, 2, dtypes)
    for start, n in ((0, 2), (2, 2), (4, 1)):
        want = frame.iloc[start : start + n].reset_index(drop=True)
        pd.testing.assert_frame_equal(frames(start, n), want)
    frames.close()


def test_the_driver_reads_the_selection_back_chunk_by_chunk(mixed, tmp_path, monkeypatch):
    """The export's driver takes each chunk's selected annotations from the parked file, one
    chunk at a time, and leaves no file behind."""
    calls = []
    real = goldrows.ChunkFrames.__call__

    def spy(self, start, n):
        got = real(self, start, n)
        calls.append((start, list(got["article_id"])))
        return got

    monkeypatch.setattr(goldrows.ChunkFrames, "__call__", spy)
    export_dataset(mixed, ["jsonl"], tmp_path / "o", chunk_size=3)
    assert [s for s, _ in calls] == list(range(0, len(ARTICLES), 3))
    assert sorted(a for _, ids in calls for a in ids) == sorted(ARTICLES)
    assert not list(tmp_path.glob("**/.selection"))
