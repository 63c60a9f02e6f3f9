"""Plain ingest (jsonl/csv/parquet/txt) on the engine: pieces parsed on 2 local Dask workers give the
same rows, order, ids, refusals and skips as one process reading each file whole."""

from __future__ import annotations

import functools
import gzip
import json
import os
import pickle
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spanbank.corpus import Corpus
from spanbank.corpus import ingest as ingest_mod
from spanbank.corpus.ingest import ingest_paths
from spanbank.corpus.tables import to_arrow

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


# -- workers write, the driver commits (issue 18, "Where it runs") --------------------------

# the fixture `cluster`: `dask scheduler` + 2 `dask worker` processes on loopback
from test_parallel import cluster  # noqa: E402, F401


def _mixed_inputs(root: Path) -> list[Path]:
    """`_inputs` (duplicates in and across files, a clash with the stored j20, refused rows) and
    a file that is not valid UTF-8, which --skip-bad leaves out."""
    inputs = _inputs(root)
    (root / "g_bad.jsonl").write_bytes(b'{"id": "g1", "text": "caf\xe9"}\n')
    return inputs


def _stored_and_ingested(path: Path, tmp: Path, inputs, **kw):
    """A corpus holding the stored j20, then `inputs` ingested with --skip-bad: (summary, rows,
    committed data files of articles)."""
    corpus = Corpus.init(path)
    ingest_paths(corpus, [_stored_first(tmp)])
    summary = ingest_paths(corpus, inputs, skip_bad=True, **kw)
    return summary.as_dict(), _rows(corpus), corpus.table_files("articles")


def _rows(corpus) -> pd.DataFrame:
    rows = corpus.read("articles")
    assert rows["ingested_at"].notna().all()
    return rows.drop(columns="ingested_at")


def _worker_pids(address: str) -> set[int]:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        return set(client.run(os.getpid).values())


def _record_writer(log: str, job, adds) -> None:
    """Installed in the workers: note which process wrote which data files."""
    with open(log, "a") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "files": [a.path for a in adds]}) + "\n")


def _install(hook_name: str, fn) -> None:
    setattr(ingest_mod, hook_name, fn)


def test_in_process_local_cluster_and_scheduler_store_the_same(tmp_path, monkeypatch, request):
    """Many parts (small PART_BYTES): the rows (read back, in order), ids, refusals, the clash
    message with its texts, the duplicate messages and the skipped file are the same in this
    process, on a LocalCluster of 2 and through a `dask scheduler`; there the data files are
    written by the `dask worker` processes and committed once by this one."""
    from distributed import Client

    address, _ = request.getfixturevalue("cluster")
    root = tmp_path / "in"
    inputs = _mixed_inputs(root)
    monkeypatch.setattr(ingest_mod, "PART_BYTES", SMALL)
    monkeypatch.setattr(ingest_mod, "PART_FILES", 2)
    assert _pieces(inputs)[1] >= 8
    writers = tmp_path / "writers.jsonl"
    with Client(address, timeout="30s") as client:  # the hook, in each worker process
        client.run(_install, "_after_part_written", functools.partial(_record_writer, str(writers)))
    here = _stored_and_ingested(tmp_path / "here", tmp_path, inputs, workers=1)
    local = _stored_and_ingested(tmp_path / "local", tmp_path, inputs, workers=2)
    there = _stored_and_ingested(tmp_path / "there", tmp_path, inputs, scheduler=address)
    for got in (local, there):
        assert got[0] == here[0]
        pd.testing.assert_frame_equal(got[1], here[1])
    summary, rows, files = there
    assert summary["added"] > 400 and summary["unchanged"] >= 5 and summary["skipped_files"] == 1
    assert rows["article_id"].is_unique and "g1" not in set(rows["article_id"])
    reasons = "\n".join(summary["reasons"])
    assert "g_bad.jsonl: not valid utf-8" in reasons and "(file skipped)" in reasons
    assert "id j20 is stored with another text" in reasons and "; the texts " in reasons
    assert "b.jsonl:1: duplicate id j12" in reasons
    # the cluster's workers wrote the data files (several parts, one commit); none left over
    log = [json.loads(line) for line in writers.read_text().splitlines()]
    written = {f for entry in log for f in entry["files"]}
    new = [f for f in files if f.name in written]
    assert len(new) >= 4 and len({f.name.split("-")[2] for f in new}) == 1  # one commit
    assert {e["pid"] for e in log} <= _worker_pids(address) and os.getpid() not in {
        e["pid"] for e in log
    }
    for name in ("here", "local", "there"):
        assert not list((tmp_path / name).glob(".ingest.*")), name  # spool folders removed


def test_the_driver_gets_no_texts(tmp_path):
    """What a worker sends back from pass 1 holds ids, hashes, row numbers and metadata
    digests, never a text: the texts are in the spool file it wrote; pass 2 sends back add
    actions only."""
    root = tmp_path / "in"
    root.mkdir()
    texts = [f"Article {i} " + "long distinctive body text ".join("xyz") * 40 for i in range(300)]
    src = root / "a.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(texts))
    )
    folder = tmp_path / "spools"
    folder.mkdir()
    (part,) = ingest_mod._parts(ingest_mod._plan([(src, "jsonl")], "utf-8"))
    got = ingest_mod._read_part(part, "utf-8", ingest_mod.Columns(), str(folder))
    sent = pickle.dumps(got)
    assert b"distinctive" not in sent and b"Article" not in sent
    assert len(sent) < sum(map(len, texts)) / 10
    (piece,) = got.pieces
    assert piece.keys.column_names == ["article_id", "text_sha256", "_where", "_meta"]
    assert piece.keys.column("article_id").to_pylist() == [f"t{i}" for i in range(300)]
    assert pq.read_table(got.spool).column("text").to_pylist() == texts  # the texts stay there
    # pass 2: the worker writes the rows the driver keeps and sends back their add actions
    corpus = Corpus.init(tmp_path / "corpus")
    keep = np.zeros(300, dtype=bool)
    keep[::2] = True
    with corpus.writer() as w:
        plan = w.plan("articles", to_arrow("articles", []))
        job = ingest_mod._WriteJob(0, got.spool, keep, plan, 0, 1, [], datetime.now(timezone.utc))
        index, adds, shown = ingest_mod._write_part(job)
        sent = pickle.dumps((index, adds, shown))
        assert b"distinctive" not in sent and shown == {}
        assert w.commit_planned(plan, adds) == 150
    assert corpus.read("articles")["article_id"].tolist() == [f"t{i}" for i in range(0, 300, 2)]


KILL_BEFORE_COMMIT = """
import json, os, signal, sys
from pathlib import Path
import spanbank.corpus.ingest as ingest
from spanbank.corpus import Corpus

corpus, address, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
ingest.PART_BYTES, ingest.PART_FILES = 8 << 10, 2

def die(plan, adds):  # the data files are written and closed; the commit is next
    out.write_text(json.dumps({"commit": plan.commit, "files": [a.path for a in adds]}))
    os.kill(os.getpid(), signal.SIGKILL)

ingest._before_commit = die
ingest.ingest_paths(Corpus(corpus), sys.argv[4:], scheduler=address, skip_bad=True)
print("not killed")
"""


def test_a_driver_killed_between_the_files_and_the_commit(tmp_path, request):
    """The driver is SIGKILLed (a real kill of the process; the point is chosen by a hook) after
    the workers wrote every data file and before its one commit: the table shows nothing new;
    the next ingest removes the files and the spool folder and adds each article once."""
    address, _ = request.getfixturevalue("cluster")
    inputs = _mixed_inputs(tmp_path / "in")
    corpus = Corpus.init(tmp_path / "corpus")
    ingest_paths(corpus, [_stored_first(tmp_path)])
    before, version = _rows(corpus), corpus.versions()["articles"]
    note = tmp_path / "killed.json"
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_BEFORE_COMMIT, str(corpus.path), address, str(note)]
        + [str(p) for p in inputs],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    killed = json.loads(note.read_text())
    table = corpus.table_path("articles")
    assert len(killed["files"]) >= 4 and killed["commit"] == version + 1
    assert all((table / f).exists() for f in killed["files"])  # written, never committed
    assert len([p for p in corpus.path.glob(".ingest.*.tmp") if p.is_dir()]) == 1  # its spools
    fresh = Corpus(corpus.path)
    assert fresh.versions()["articles"] == version
    pd.testing.assert_frame_equal(_rows(fresh), before)
    # the re-run (in this process, whole files): each article once, as a clean run stores them
    summary = ingest_paths(fresh, inputs, skip_bad=True).as_dict()
    ref = _stored_and_ingested(tmp_path / "ref", tmp_path, inputs)
    assert summary == ref[0]
    rows = _rows(fresh)
    pd.testing.assert_frame_equal(rows, ref[1])
    assert rows["article_id"].is_unique
    assert not any((table / f).exists() for f in killed["files"])
    assert not list(corpus.path.glob(".ingest.*"))


def _die_once(marker: str, job, adds) -> None:
    """Installed in the workers: the first worker to finish writing a part dies (SIGKILL)
    before it can return the part's add actions; the part is then written again elsewhere."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, json.dumps([a.path for a in adds]).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_after_writing_its_files(tmp_path, monkeypatch, request):
    """A `dask worker` process is SIGKILLed after it wrote a part's data files, before it
    returned them: Dask runs the part again on the other worker, the driver commits once, the
    killed worker's files are removed, and the table equals an in-process ingest's."""
    from distributed import Client

    address, workers = request.getfixturevalue("cluster")
    inputs = _mixed_inputs(tmp_path / "in")
    monkeypatch.setattr(ingest_mod, "PART_BYTES", SMALL)
    monkeypatch.setattr(ingest_mod, "PART_FILES", 2)
    marker = tmp_path / "died.json"
    with Client(address, timeout="30s") as client:
        client.run(_install, "_after_part_written", functools.partial(_die_once, str(marker)))
    ref = _stored_and_ingested(tmp_path / "ref", tmp_path, inputs, workers=1)
    got = _stored_and_ingested(tmp_path / "got", tmp_path, inputs, scheduler=address)
    orphans = json.loads(marker.read_text())
    assert orphans and sum(w.poll() is not None for w in workers) == 1  # one worker died
    assert got[0] == ref[0]
    pd.testing.assert_frame_equal(got[1], ref[1])
    assert got[1]["article_id"].is_unique
    table = tmp_path / "got" / "articles"
    assert not any((table / f).exists() for f in orphans)  # written, never committed: removed
    assert sorted(p.name for p in table.glob("*.parquet")) == sorted(f.name for f in got[2])


def test_an_error_while_writing_leaves_the_table_as_it_was(tmp_path, monkeypatch):
    """A part's write fails after earlier parts wrote their data files (in this process): nothing
    is committed, every file written for the commit is removed, and so is the spool folder."""
    inputs = _mixed_inputs(tmp_path / "in")
    monkeypatch.setattr(ingest_mod, "PART_BYTES", SMALL)
    monkeypatch.setattr(ingest_mod, "PART_FILES", 2)
    corpus = Corpus.init(tmp_path / "corpus")
    ingest_paths(corpus, [_stored_first(tmp_path)])
    before, files = _rows(corpus), sorted(corpus.table_path("articles").glob("*.parquet"))
    written = []

    def fail_third(job, adds):
        written.extend(a.path for a in adds)
        if len(written) >= 3:
            raise OSError("disk full")

    monkeypatch.setattr(ingest_mod, "_after_part_written", fail_third)
    with pytest.raises(OSError, match="disk full"):
        ingest_paths(corpus, inputs, skip_bad=True, workers=1)
    assert len(written) == 3
    assert sorted(corpus.table_path("articles").glob("*.parquet")) == files
    pd.testing.assert_frame_equal(_rows(Corpus(corpus.path)), before)
    assert not list(corpus.path.glob(".ingest.*"))
