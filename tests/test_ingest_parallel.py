"""Plain ingest (jsonl/csv/parquet/txt) on the engine: pieces parsed on 2 local Dask workers give the
same rows, order, ids, refusals and skips as one process reading each file whole."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spanbank.corpus import Corpus
from spanbank.corpus import ingest as ingest_mod
from spanbank.corpus.ingest import ingest_paths

pytest.importorskip("distributed")

SMALL = 8 << 10  # bytes per part in these tests: the big files are cut into several pieces


def _big_jsonl(path: Path, bad_utf8_at: int | None = None) -> Path:
    lines = []
    for i in range(400):
        if i % 97 == 5:
            lines.append("{not json")
        elif i % 89 == 7:
            lines.append("[1, 2]")
        elif i % 83 == 11:
            lines.append("")  # blank: skipped, still counted as a line
        elif i % 61 == 3:
            lines.append(json.dumps({"id": f"d{i}", "text": "  "}))  # blank text: refused
        elif i % 50 == 9:
            lines.append(json.dumps({"id": "dup", "text": f"other text {i}"}))  # a clash
        elif i % 40 == 1:
            lines.append(json.dumps({"id": "same", "text": "the same text"}))  # no-op repeat
        else:
            lines.append(
                json.dumps(
                    {
                        "id": f"j{i}",
                        "text": f"Article {i}: » quoted « text é " + "w" * (i % 70),
                        "title": f"T{i}",
                        "published_at": "2024-01-02" if i % 7 else "not a date",
                    },
                    ensure_ascii=False,
                )
            )
    data = "\n".join(lines).encode()
    if bad_utf8_at is not None:
        cut = data.index(b"\n", bad_utf8_at) + 3
        data = data[:cut] + b"\xff" + data[cut:]
    path.write_bytes(data + b"\n")
    return path


def _inputs(root: Path) -> list[Path]:
    root.mkdir()
    _big_jsonl(root / "a_big.jsonl")
    (root / "b.jsonl").write_text(
        json.dumps({"id": "j12", "text": "another text for j12"})  # duplicate of a_big's j12
        + "\n"
        + json.dumps({"id": "b1", "text": "small file"})
        + "\n",
        "utf-8",
    )
    (root / "c.csv").write_text('id,text\nc1,"a csv text, with a comma"\nc2,\nj14,dup\n', "utf-8")
    for i in range(3):
        (root / f"d{i}.txt").write_text(f"Title {i}\nbody {i}\n", "utf-8")
    rows = [{"article_id": f"p{i}", "text": f"parquet text {i} " + "z" * 300} for i in range(120)]
    rows[30]["text"] = ""  # refused, named by its row
    pq.write_table(pa.Table.from_pylist(rows), root / "e.parquet", row_group_size=20)
    with gzip.open(root / "f.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"text": "gzipped, no id"}) + "\n{bad\n")
    return [root]


def _run(tmp: Path, name: str, inputs, workers: int, **kw):
    corpus = Corpus.init(tmp / name)
    ingest_paths(corpus, [_stored_first(tmp)])  # a stored article the input clashes with
    events = []
    summary = ingest_paths(corpus, inputs, workers=workers, progress=events.append, **kw)
    rows = corpus.read("articles").drop(columns="ingested_at")
    return summary.as_dict(), rows, events


def _stored_first(tmp: Path) -> Path:
    f = tmp / "stored.jsonl"
    if not f.exists():
        f.write_text(json.dumps({"id": "j20", "text": "stored before with another text"}) + "\n")
    return f


def _pieces(inputs) -> tuple[int, int]:
    pieces = ingest_mod._plan(ingest_mod._expand(inputs, None), "utf-8")
    return len(pieces), len(list(ingest_mod._parts(pieces)))


def test_two_workers_store_what_one_process_stores(tmp_path, monkeypatch):
    inputs = _inputs(tmp_path / "in")
    whole = _run(tmp_path, "whole", inputs, 1)  # files read whole, in this process (as before)
    monkeypatch.setattr(ingest_mod, "PART_BYTES", SMALL)
    monkeypatch.setattr(ingest_mod, "PART_FILES", 2)
    n_pieces, n_parts = _pieces(inputs)
    assert n_pieces >= 12 and n_parts >= 8  # the big JSONL and the Parquet file are cut
    here = _run(tmp_path, "here", inputs, 1)
    there = _run(tmp_path, "there", inputs, 2)
    for got in (here, there):
        assert got[0] == whole[0]
        pd.testing.assert_frame_equal(got[1], whole[1])
    summary, rows, events = there
    assert summary["added"] > 400 and summary["refused"] >= 10 and summary["unchanged"] >= 5
    reasons = "\n".join(summary["reasons"])
    for bit in (
        "not valid JSON",
        "a line must be a JSON object",
        "e.parquet:row 30",
        "duplicate id dup",
        "id j20 is stored with another text",
        "f.jsonl.gz:2",
    ):
        assert bit in reasons
    # "parsing": one event per part, counted as the workers finish them; "reading": one per
    # piece as this process takes them in, in order
    reading = [e for e in events if e[0] == "reading"]
    parsing = [e for e in events if e[0] == "parsing"]
    assert reading == [("reading", i, n_pieces) for i in range(1, n_pieces + 1)]
    assert parsing == [("parsing", i, n_parts) for i in range(1, n_parts + 1)]
    assert len(events) == n_pieces + n_parts
    assert events.index(parsing[0]) < events.index(reading[-1])  # the bar moved before the end
    assert [e[0] for e in here[2]] == ["reading"] * n_pieces  # in this process: one bar


def test_a_bad_piece_skips_its_whole_file_as_one_process_does(tmp_path, monkeypatch):
    root = tmp_path / "in"
    root.mkdir()
    _big_jsonl(root / "a.jsonl", bad_utf8_at=20_000)  # in a middle piece
    (root / "b.jsonl").write_text(json.dumps({"id": "b", "text": "fine"}) + "\n")
    whole = _run(tmp_path, "whole", [root], 1, skip_bad=True)
    monkeypatch.setattr(ingest_mod, "PART_BYTES", SMALL)
    assert _pieces([root])[0] >= 4
    there = _run(tmp_path, "there", [root], 2, skip_bad=True)
    assert there[0] == whole[0]
    pd.testing.assert_frame_equal(there[1], whole[1])
    skipped = there[0]["reasons"][0]
    assert "a.jsonl: not valid utf-8 (byte 2" in skipped and "(file skipped)" in skipped
    assert there[0]["added"] == 1  # b only: nothing of a.jsonl, not even its good pieces
    with pytest.raises(ingest_mod.IngestError, match=r"a.jsonl: not valid utf-8 \(byte 2"):
        _run(tmp_path, "strict", [root], 2)
