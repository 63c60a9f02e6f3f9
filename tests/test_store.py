"""The corpus store: typed tables, atomic writes, the write lock, read validation."""

import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spanbank.corpus.store import Corpus
from spanbank.corpus.tables import TABLES, to_arrow
from spanbank.errors import CorpusError, LockError

T0 = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)


def _value(field: pa.Field, i: int):
    t = field.type
    if pa.types.is_timestamp(t):
        return T0.replace(minute=i)
    if pa.types.is_integer(t):
        return 10_000_000_000 + i  # beyond int32
    if pa.types.is_floating(t):
        return 1.5 + i
    if pa.types.is_boolean(t):
        return i % 2 == 0
    if pa.types.is_list(t):  # spans.fragments
        return [{"start": i, "end": i + 2}, {"start": i + 5, "end": i + 9}]
    return f"{field.name} \u00e9\U0001f600 {i}"


def _rows(name: str, n: int = 3) -> list[dict]:
    rows = [{f.name: _value(f, i) for f in TABLES[name]} for i in range(n)]
    for f in TABLES[name]:  # one null per column (except the first row's)
        rows[-1][f.name] = None
    return rows


@pytest.fixture
def corpus(tmp_path):
    return Corpus.init(tmp_path / "corpus")


def _temp_files(corpus):
    return sorted(p.name for p in corpus.path.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("name", sorted(TABLES))
def test_typed_round_trip(corpus, name):
    rows = _rows(name)
    with corpus.writer() as w:
        w.replace(name, rows)
    table = corpus.read_arrow(name)
    assert table.schema == TABLES[name]
    assert table.to_pylist() == rows
    # pandas in, pandas out: same values, and appending doubles the table
    df = corpus.read(name)
    with corpus.writer() as w:
        w.append(name, df)
    again = corpus.read_arrow(name)
    assert again.schema == TABLES[name]
    assert again.to_pylist() == rows + rows
    # readable as is by plain pyarrow
    assert pq.read_table(corpus.table_path(name)).num_rows == 6


def test_extra_columns_are_kept(corpus):
    rows = [dict(r, note="kept") for r in _rows("relations", 2)]
    with corpus.writer() as w:
        w.replace("relations", rows)
    table = corpus.read_arrow("relations")
    assert table.column_names == TABLES["relations"].names + ["note"]
    assert table.column("note").to_pylist() == ["kept", "kept"]


def test_rows_missing_a_column_or_mistyped_are_refused(corpus):
    rows = _rows("spans", 1)
    del rows[0]["label"]
    with corpus.writer() as w, pytest.raises(CorpusError, match="spans: rows lack column.*label"):
        w.append("spans", rows)
    bad = _rows("spans", 1)
    bad[0]["start"] = "seven"
    with (
        corpus.writer() as w,
        pytest.raises(CorpusError, match="column start cannot be stored as int64"),
    ):
        w.append("spans", bad)
    assert corpus.read_arrow("spans").num_rows == 0


def test_int_columns_with_nulls_survive_pandas(corpus):
    # pandas turns int columns with nulls into floats; storing them must give ints back
    df = pd.DataFrame(_rows("tasks", 3))
    assert df["ls_task_id"].dtype == float
    with corpus.writer() as w:
        w.replace("tasks", df)
    assert corpus.read_arrow("tasks").column("ls_task_id").to_pylist() == [
        10_000_000_000,
        10_000_000_001,
        None,
    ]


def test_absent_table_is_empty_and_typed(corpus):
    for name, schema in TABLES.items():
        table = corpus.read_arrow(name)
        assert table.num_rows == 0 and table.schema == schema
        assert list(corpus.read(name).columns) == schema.names
    assert corpus.read_arrow("spans", columns=["span_id", "label"]).column_names == [
        "span_id",
        "label",
    ]
    assert corpus.latest_annotations().empty


def test_missing_column_is_reported_with_file_and_column(corpus):
    table = to_arrow("spans", _rows("spans")).drop_columns(["label"])
    pq.write_table(table, corpus.table_path("spans"))
    with pytest.raises(CorpusError) as info:
        corpus.read("spans")
    assert str(info.value) == f"{corpus.table_path('spans')}: missing column 'label'"
    # columns not asked for are not checked
    assert corpus.read("spans", columns=["span_id"]).shape == (3, 1)


def test_mistyped_column_is_reported_with_file_and_column(corpus):
    table = to_arrow("spans", _rows("spans"))
    table = table.set_column(
        table.schema.get_field_index("start"), "start", table.column("start").cast(pa.string())
    )
    pq.write_table(table, corpus.table_path("spans"))
    with pytest.raises(CorpusError) as info:
        corpus.read_arrow("spans")
    msg = str(info.value)
    assert msg.startswith(str(corpus.table_path("spans"))) and "column 'start'" in msg
    assert "string" in msg and "int64" in msg


def test_compatible_types_are_read_as_ours(corpus):
    # another tool wrote plain strings and millisecond timestamps: fine, and read back typed
    table = to_arrow("articles", _rows("articles"))
    schema = pa.schema(
        [
            f.with_type(pa.string())
            if f.name == "text"
            else f.with_type(pa.timestamp("ms", tz="UTC"))
            if pa.types.is_timestamp(f.type)
            else f
            for f in TABLES["articles"]
        ]
    )
    pq.write_table(table.cast(schema), corpus.table_path("articles"))
    assert corpus.read_arrow("articles").schema == TABLES["articles"]


def test_not_parquet_is_reported(corpus):
    corpus.table_path("articles").write_bytes(b"not parquet at all")
    with pytest.raises(CorpusError, match="articles.parquet: not a readable Parquet file"):
        corpus.read("articles")


def test_table_as_directory_of_files(corpus):
    d = corpus.table_path("relations")
    d.unlink()  # init wrote it empty; another tool's writer may keep a folder of parts instead
    d.mkdir()
    rows = _rows("relations", 4)
    pq.write_table(to_arrow("relations", rows[:2]), d / "part-0.parquet")
    pq.write_table(to_arrow("relations", rows[2:]), d / "part-1.parquet")
    got = corpus.read_arrow("relations")
    assert sorted(got.column("from_span_id").to_pylist(), key=str) == sorted(
        [r["from_span_id"] for r in rows], key=str
    )


# -- atomicity --------------------------------------------------------------------------


def _store_two_articles(corpus):
    rows = _rows("articles", 2)
    with corpus.writer() as w:
        w.replace("articles", rows)
    return corpus.read_arrow("articles"), corpus.table_path("articles").read_bytes()


@pytest.mark.parametrize("op", ["replace", "append"])
def test_write_failing_half_way_leaves_old_table(corpus, monkeypatch, op):
    before, raw = _store_two_articles(corpus)

    def half_write(table, where, **kwargs):
        where.write(b"PAR1" + b"\0" * 1000)  # some bytes, then the disk fills up
        raise OSError(28, "No space left on device")

    real = pq.ParquetWriter.write_table
    calls = []

    def second_group_fails(
        self, table, **kwargs
    ):  # the old rows are copied, then the disk fills up
        calls.append(table.num_rows)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real(self, table, **kwargs)

    monkeypatch.setattr(pq, "write_table", half_write)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", second_group_fails)
    with corpus.writer() as w, pytest.raises(OSError, match="No space left"):
        getattr(w, op)("articles", _rows("articles", 5))
    if op == "append":
        assert calls == [2, 5]
    monkeypatch.undo()
    assert corpus.table_path("articles").read_bytes() == raw
    assert corpus.read_arrow("articles").equals(before)
    assert _temp_files(corpus) == []


def test_rename_failing_leaves_old_table(corpus, monkeypatch):
    before, raw = _store_two_articles(corpus)

    def no_replace(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", no_replace)
    with corpus.writer() as w, pytest.raises(PermissionError):
        w.replace("articles", _rows("articles", 1))
    monkeypatch.undo()
    assert corpus.table_path("articles").read_bytes() == raw
    assert corpus.read_arrow("articles").equals(before)
    assert _temp_files(corpus) == []


def test_interrupt_during_write_leaves_old_table(corpus, monkeypatch):
    before, _ = _store_two_articles(corpus)

    def interrupted(table, where, **kwargs):
        where.write(b"PAR1")
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", interrupted)
    with pytest.raises(KeyboardInterrupt), corpus.writer() as w:
        w.replace("articles", _rows("articles", 1))
    monkeypatch.undo()
    assert corpus.read_arrow("articles").equals(before)
    assert _temp_files(corpus) == []
    with corpus.writer():  # the lock was released
        pass


def test_written_files_follow_the_umask(corpus):
    _store_two_articles(corpus)
    old = os.umask(0o022)
    os.umask(old)
    assert corpus.table_path("articles").stat().st_mode & 0o777 == 0o666 & ~old


# -- the lock -----------------------------------------------------------------------------


def _hold_in_thread(corpus, seconds: float):
    held = threading.Event()

    def hold():
        with corpus.writer():
            held.set()
            time.sleep(seconds)

    t = threading.Thread(target=hold)
    t.start()
    assert held.wait(5)
    return t


def test_second_writer_gets_lock_error(corpus):
    t = _hold_in_thread(corpus, 1.0)
    try:
        with pytest.raises(LockError) as info, Corpus(corpus.path).writer():
            pass
        msg = str(info.value)
        assert (
            f"corpus {corpus.path} is being written by another spanbank process (pid {os.getpid()})"
            in msg
        )
        assert "--wait" in msg
    finally:
        t.join()


def test_wait_waits_then_succeeds(corpus):
    t = _hold_in_thread(corpus, 0.5)
    start = time.monotonic()
    with Corpus(corpus.path).writer(wait=10) as w:
        waited = time.monotonic() - start
        w.replace("relations", _rows("relations", 1))
    t.join()
    assert waited >= 0.3
    assert corpus.read_arrow("relations").num_rows == 1


def test_wait_with_timeout_gives_up(corpus):
    t = _hold_in_thread(corpus, 1.5)
    try:
        start = time.monotonic()
        with pytest.raises(LockError), corpus.writer(wait=0.3):
            pass
        assert 0.25 <= time.monotonic() - start < 1.5
    finally:
        t.join()


def test_lock_held_by_another_process(corpus):
    code = (
        "import sys, time\n"
        "from spanbank.corpus import Corpus\n"
        "with Corpus(sys.argv[1]).writer():\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(corpus.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        for _ in range(2):  # a failed attempt must not erase who holds the lock
            with pytest.raises(LockError, match=f"pid {proc.pid}\\)"), corpus.writer():
                pass
    finally:
        proc.communicate("done\n", timeout=30)
    assert proc.returncode == 0
    with corpus.writer(wait=5) as w:
        w.replace("relations", _rows("relations", 1))
    assert corpus.read_arrow("relations").num_rows == 1


def test_lock_released_after_an_error_inside(corpus):
    with pytest.raises(CorpusError), corpus.writer() as w:
        w.append("spans", [{"span_id": "x"}])
    with corpus.writer():
        pass


# -- streamed append ------------------------------------------------------------------------


def _no_whole_reads(monkeypatch):
    """An append that read the old table whole would fail here."""

    def whole(*a, **k):
        raise AssertionError("append read the whole old table")

    monkeypatch.setattr(Corpus, "read_arrow", whole)
    monkeypatch.setattr(pq, "read_table", whole)


def test_append_streams_the_old_file_group_by_group(corpus, monkeypatch):
    import spanbank.corpus.store as store

    monkeypatch.setattr(store, "ROW_GROUP_ROWS", 2)
    rows = [dict(r, article_id=f"a{i}") for i, r in enumerate(_rows("articles", 3) * 3)]
    with corpus.writer() as w:
        w.replace("articles", rows[:5])
    assert pq.ParquetFile(corpus.table_path("articles")).metadata.num_row_groups == 3
    _no_whole_reads(monkeypatch)
    with corpus.writer() as w:
        w.append(
            "articles", pd.DataFrame(rows[5:])
        )  # pandas in: ints, nulls and timestamps typed again
        assert w.append_batches("articles", [rows[7:8], [], pd.DataFrame(rows[8:])]) == 2
    monkeypatch.undo()
    table = corpus.read_arrow("articles")
    assert table.schema == TABLES["articles"]
    assert table.to_pylist() == rows + rows[7:]
    meta = pq.ParquetFile(corpus.table_path("articles")).metadata
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == 2


@pytest.mark.parametrize("where", ["old", "new", "both"])
def test_append_keeps_extra_columns_like_a_concat(corpus, monkeypatch, where):
    old = [
        dict(r, reviewer="ann") if where in ("old", "both") else r for r in _rows("relations", 3)
    ]
    new = [
        dict(r, reviewer="bob") if where in ("new", "both") else r for r in _rows("relations", 2)
    ]
    with corpus.writer() as w:
        w.replace("relations", old)
    expected = pa.concat_tables(
        [to_arrow("relations", old), to_arrow("relations", new)], promote_options="permissive"
    )
    _no_whole_reads(monkeypatch)
    with corpus.writer() as w:
        w.append("relations", new)
    monkeypatch.undo()
    got = corpus.read_arrow("relations")
    assert got.column_names == TABLES["relations"].names + ["reviewer"]
    assert got.equals(expected)


def test_append_to_a_file_of_another_writer_gives_our_types(corpus):
    # another tool wrote plain strings, millisecond timestamps and its own column order
    table = to_arrow("articles", _rows("articles"))
    schema = pa.schema(
        [
            f.with_type(pa.string())
            if f.name == "text"
            else f.with_type(pa.timestamp("ms", tz="UTC"))
            if pa.types.is_timestamp(f.type)
            else f
            for f in reversed(list(TABLES["articles"]))
        ]
    )
    pq.write_table(table.select(schema.names).cast(schema), corpus.table_path("articles"))
    with corpus.writer() as w:
        w.append("articles", _rows("articles", 2))
    got = corpus.read_arrow("articles")
    assert got.schema == TABLES["articles"]
    assert got.to_pylist() == _rows("articles") + _rows("articles", 2)


def test_append_of_mistyped_or_missing_old_columns_is_refused(corpus):
    table = to_arrow("spans", _rows("spans")).drop_columns(["label"])
    pq.write_table(table, corpus.table_path("spans"))
    raw = corpus.table_path("spans").read_bytes()
    with corpus.writer() as w, pytest.raises(CorpusError, match="missing column 'label'"):
        w.append("spans", _rows("spans", 1))
    assert corpus.table_path("spans").read_bytes() == raw


def test_append_failing_in_a_later_part_leaves_old_table(corpus):
    before, raw = _store_two_articles(corpus)

    def parts():
        yield _rows("articles", 2)
        bad = _rows("articles", 1)
        bad[0]["published_at"] = "not a date"
        yield bad

    with corpus.writer() as w, pytest.raises(CorpusError, match="published_at"):
        w.append_batches("articles", parts())
    with corpus.writer() as w, pytest.raises(CorpusError, match="earlier rows lack"):
        w.append_batches(
            "articles", [_rows("articles", 1), [dict(r, late="x") for r in _rows("articles", 1)]]
        )
    assert corpus.table_path("articles").read_bytes() == raw
    assert corpus.read_arrow("articles").equals(before)
    assert _temp_files(corpus) == []
    # no rows at all: nothing written, the empty table init made stays as it was
    empty = corpus.table_path("spans").read_bytes()
    with corpus.writer() as w:
        assert w.append_batches("spans", [[], pd.DataFrame(columns=TABLES["spans"].names)]) == 0
    assert corpus.table_path("spans").read_bytes() == empty
    assert corpus.table_path("articles").read_bytes() == raw
