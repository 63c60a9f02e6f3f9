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
from deltalake import write_deltalake

from spanbank.corpus.store import Corpus
from spanbank.corpus.tables import TABLES, isin, to_arrow
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


@pytest.mark.parametrize("name", sorted(set(TABLES) - {"commits"}))
def test_typed_round_trip(corpus, name):
    rows = _rows(name)
    with corpus.writer() as w:
        w.replace(name, rows)
    table = corpus.read_arrow(name).select(
        TABLES[name].names
    )  # + columns code adds (ADDED_COLUMNS)
    assert table.schema == TABLES[name]
    assert table.to_pylist() == rows
    # pandas in, pandas out: same values, and appending doubles the table
    df = corpus.read(name)
    with corpus.writer() as w:
        w.append(name, df)
    again = corpus.read_arrow(name).select(TABLES[name].names)
    assert again.schema == TABLES[name]
    assert again.to_pylist() == rows + rows
    # readable as is by plain pyarrow, from the listed files
    assert sum(pq.read_metadata(f).num_rows for f in corpus.table_files(name)) == 6


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
        assert table.num_rows == 0 and table.schema.names[: len(schema)] == schema.names
        assert table.select(schema.names).schema == schema
    assert corpus.read_arrow("spans", columns=["span_id", "label"]).column_names == [
        "span_id",
        "label",
    ]
    assert corpus.latest_annotations().empty


def _foreign_overwrite(corpus, name, table):
    """Another tool replaced the table's content and schema (a Delta writer, not ours)."""
    write_deltalake(str(corpus.table_path(name)), table, mode="overwrite", schema_mode="overwrite")


def test_missing_column_is_reported_with_table_and_column(corpus):
    table = to_arrow("spans", _rows("spans")).drop_columns(["label"])
    _foreign_overwrite(corpus, "spans", table)
    with pytest.raises(CorpusError) as info:
        corpus.read("spans")
    assert str(info.value) == f"{corpus.table_path('spans')}: missing column 'label'"


def test_mistyped_column_is_reported_with_table_and_column(corpus):
    table = to_arrow("spans", _rows("spans"))
    table = table.set_column(
        table.schema.get_field_index("start"), "start", table.column("start").cast(pa.string())
    )
    _foreign_overwrite(corpus, "spans", table)
    with pytest.raises(CorpusError) as info:
        corpus.read_arrow("spans")
    msg = str(info.value)
    assert msg.startswith(str(corpus.table_path("spans"))) and "column 'start'" in msg
    assert "string" in msg and "int64" in msg


def test_another_writers_files_are_read_as_ours_in_order(corpus):
    # another Delta writer appended plain strings after our rows: read back typed, ours first
    with corpus.writer() as w:
        w.append("articles", _rows("articles", 2))
    theirs = to_arrow("articles", _rows("articles", 3)).cast(
        pa.schema([f.with_type(pa.string()) if f.name == "text" else f for f in TABLES["articles"]])
    )
    write_deltalake(str(corpus.table_path("articles")), theirs, mode="append")
    got = corpus.read_arrow("articles")
    assert got.schema == TABLES["articles"]
    assert got.to_pylist() == _rows("articles", 2) + _rows("articles", 3)
    with corpus.writer() as w:  # and our next append goes after theirs
        w.append("articles", _rows("articles", 1))
    assert corpus.read_arrow("articles").num_rows == 6


def test_unreadable_data_file_is_one_line(corpus):
    with corpus.writer() as w:
        w.append("articles", _rows("articles", 2))
    corpus.table_files("articles")[0].write_bytes(b"not parquet at all")
    with pytest.raises(CorpusError, match="articles: a data file is not readable"):
        corpus.read("articles")
    # read a batch, a row or a text at a time (commands that do not read whole tables): the same
    from spanbank.corpus.articles import texts_of

    for read in (
        lambda: list(corpus.iter_batches("articles", ["article_id"])),
        lambda: corpus.read_in("articles", "article_id", ["x"]),
        lambda: corpus.take("articles", [0]),
        lambda: texts_of(corpus, ["x"]),
    ):
        with pytest.raises(CorpusError, match="articles: a data file is not readable"):
            read()


def test_rows_come_back_in_append_order_through_edits_and_compaction(corpus):
    """Delta lists files in no promised order; ours are read in the order they were appended."""
    from spanbank.corpus.maintenance import compact

    ids = [f"r{i:03d}" for i in range(60)]
    for i in range(0, 60, 3):
        with corpus.writer() as w:
            w.append(
                "relations",
                [dict(_rows("relations", 1)[0], from_span_id=x) for x in ids[i : i + 3]],
            )
    assert corpus.read("relations")["from_span_id"].tolist() == ids
    with corpus.writer() as w:  # an edit in the middle keeps every other row in place
        w.delete("relations", "from_span_id", ["r010", "r011"])
        w.upsert(
            "relations",
            [dict(_rows("relations", 1)[0], from_span_id="r030", label="x")],
            "from_span_id",
        )
    want = [x for x in ids if x not in ("r010", "r011", "r030")] + ["r030"]
    got = corpus.read("relations")
    assert got["from_span_id"].tolist() == want
    assert got.loc[got["from_span_id"] == "r030", "label"].tolist() == ["x"]
    compact(corpus)
    assert len(corpus.table_files("relations")) == 1
    assert corpus.read("relations")["from_span_id"].tolist() == want


def test_other_readers_see_the_same_rows(corpus):
    """deltalake, and DuckDB over the listed files, read what we wrote (never a glob)."""
    import duckdb
    from deltalake import DeltaTable

    for i in range(3):
        with corpus.writer() as w:
            w.append("spans", _rows("spans", 2 + i))
    with corpus.writer() as w:
        w.delete("spans", "annotation_id", ["annotation_id \u00e9\U0001f600 0"])
    ours = corpus.read_arrow("spans")
    theirs = DeltaTable(str(corpus.table_path("spans"))).to_pyarrow_table()
    assert theirs.num_rows == ours.num_rows == 6
    assert sorted(theirs.column("span_id").to_pylist(), key=str) == sorted(
        ours.column("span_id").to_pylist(), key=str
    )
    files = [str(f) for f in corpus.table_files("spans")]
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet({files})").fetchall()[0][0]
    assert n == 6
    # the folder holds the deleted file too: a glob would count it twice
    globbed = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{corpus.table_path('spans')}/*.parquet')"
    ).fetchall()[0][0]
    assert globbed > n


# -- atomicity --------------------------------------------------------------------------


def _store_two_articles(corpus):
    rows = _rows("articles", 2)
    with corpus.writer() as w:
        w.replace("articles", rows)
    return corpus.read_arrow("articles"), _state(corpus, "articles")


def _state(corpus, name):
    """A table's version and the names of every file in its folder."""
    path = corpus.table_path(name)
    return corpus.versions().get(name), sorted(p.name for p in path.rglob("*") if p.is_file())


@pytest.mark.parametrize("op", ["replace", "append", "upsert"])
def test_write_failing_half_way_leaves_old_table(corpus, monkeypatch, op):
    before, state = _store_two_articles(corpus)
    real = pq.ParquetWriter.write_table
    calls = []

    def second_part_fails(self, table, **kwargs):  # a part may be written, then the disk fills
        calls.append(table.num_rows)
        if len(calls) > (1 if op == "append" else 0):
            raise OSError(28, "No space left on device")
        return real(self, table, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", second_part_fails)
    rows = [dict(r, article_id=f"n{i}") for i, r in enumerate(_rows("articles", 5))]
    with corpus.writer() as w, pytest.raises(OSError, match="No space left"):
        if op == "upsert":
            w.upsert("articles", rows, "article_id")
        else:
            getattr(w, op)("articles", rows) if op == "replace" else w.append_batches(
                "articles", [rows[:2], rows[2:]]
            )
    monkeypatch.undo()
    assert _state(corpus, "articles") == state
    assert corpus.read_arrow("articles").equals(before)


def test_commit_failing_leaves_old_table_and_no_file(corpus, monkeypatch):
    from spanbank.corpus import delta

    before, state = _store_two_articles(corpus)

    def refused(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(delta, "commit", refused)
    with corpus.writer() as w, pytest.raises(PermissionError):
        w.replace("articles", _rows("articles", 1))
    monkeypatch.undo()
    assert _state(corpus, "articles") == state
    assert corpus.read_arrow("articles").equals(before)


def test_interrupt_during_write_leaves_old_table(corpus, monkeypatch):
    before, state = _store_two_articles(corpus)

    def interrupted(self, table, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pq.ParquetWriter, "write_table", interrupted)
    with pytest.raises(KeyboardInterrupt), corpus.writer() as w:
        w.replace("articles", _rows("articles", 1))
    monkeypatch.undo()
    assert corpus.read_arrow("articles").equals(before)
    assert _state(corpus, "articles")[1] == state[1]
    with corpus.writer():  # the lock was released
        pass


def test_written_files_follow_the_umask(corpus):
    _store_two_articles(corpus)
    old = os.umask(0o022)
    os.umask(old)
    for f in corpus.table_files("articles"):
        assert f.stat().st_mode & 0o777 == 0o666 & ~old


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


# -- appends never rewrite ----------------------------------------------------------------


def _no_whole_reads(monkeypatch):
    """An append that read the old table would fail here."""

    real = Corpus.read_arrow

    def whole(self, name, *a, **k):
        if name == "commits":  # the commit log, read to number the next commit
            return real(self, name, *a, **k)
        raise AssertionError("append read the old table")

    monkeypatch.setattr(Corpus, "read_arrow", whole)
    monkeypatch.setattr(pq, "read_table", whole)


def test_append_adds_files_and_leaves_old_ones_untouched(corpus, monkeypatch):
    from spanbank.corpus import delta

    monkeypatch.setattr(delta, "ROW_GROUP_ROWS", 2)
    rows = [dict(r, article_id=f"a{i}") for i, r in enumerate(_rows("articles", 3) * 3)]
    with corpus.writer() as w:
        w.replace("articles", rows[:5])
    (first,) = corpus.table_files("articles")
    raw = first.read_bytes()
    assert pq.ParquetFile(first).metadata.num_row_groups == 3
    _no_whole_reads(monkeypatch)
    with corpus.writer() as w:
        w.append(
            "articles", pd.DataFrame(rows[5:])
        )  # pandas in: ints, nulls and timestamps typed again
        assert w.append_batches("articles", [rows[7:8], [], pd.DataFrame(rows[8:])]) == 2
    monkeypatch.undo()
    files = corpus.table_files("articles")
    assert files[0] == first and first.read_bytes() == raw and len(files) == 3
    table = corpus.read_arrow("articles")
    assert table.schema == TABLES["articles"]
    assert table.to_pylist() == rows + rows[7:]


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
    assert got.to_pylist() == expected.to_pylist()


def test_append_to_a_table_missing_a_column_is_refused(corpus):
    table = to_arrow("spans", _rows("spans")).drop_columns(["label"])
    _foreign_overwrite(corpus, "spans", table)
    state = _state(corpus, "spans")
    with corpus.writer() as w, pytest.raises(CorpusError, match="missing column 'label'"):
        w.append("spans", _rows("spans", 1))
    assert _state(corpus, "spans") == state


def test_append_failing_in_a_later_part_leaves_old_table(corpus):
    before, state = _store_two_articles(corpus)

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
    assert _state(corpus, "articles") == state
    assert corpus.read_arrow("articles").equals(before)
    # no rows at all: nothing written, the empty table init made stays as it was
    empty = _state(corpus, "spans")
    with corpus.writer() as w:
        assert w.append_batches("spans", [[], pd.DataFrame(columns=TABLES["spans"].names)]) == 0
    assert _state(corpus, "spans") == empty


@pytest.mark.parametrize(
    "candidates",
    [
        {"a", "c"},
        ["b", "zz"],
        pd.Series(["c", None], dtype="str"),  # a missing id matches a missing id, as in pandas
        pd.Index(["a"]),
        set(),
        ["a", float("nan")],
    ],
)
def test_isin_by_arrow_agrees_with_pandas(candidates):
    values = pd.Series(["a", "b", None, "c", "a"], dtype="str")
    want = values.isin(list(candidates) if isinstance(candidates, set) else candidates)
    assert isin(values, candidates).tolist() == want.tolist()
    assert isin(pd.Index(values), candidates).tolist() == want.tolist()


@pytest.mark.parametrize("long_id", [False, True])
def test_holds_streams_the_column_and_agrees_with_pandas_isin(corpus, monkeypatch, long_id):
    """Looked up across two appended files without reading the table whole; missing, repeated
    and absent ids as pandas' `isin` of the whole column says. A very long id takes IdSet's
    other path (a pandas index). Values are looked up two at a time."""
    from spanbank.corpus import delta

    rows = [dict(r, article_id=f"a{i}") for i, r in enumerate(_rows("articles", 3) * 2)]
    with corpus.writer() as w:
        w.append("articles", rows[:4])
        w.append("articles", rows[4:])
    stored = corpus.read("articles")["article_id"]
    values = ["a5", "zz", None, "a0", "a5", "a3"] + (["x" * 500] if long_id else [])
    want = pd.Series(values, dtype=object).isin(stored).tolist()
    assert want[:6] == [True, False, False, True, True, True]
    _no_whole_reads(monkeypatch)
    monkeypatch.setattr(delta, "ROW_GROUP_ROWS", 2)
    assert corpus.holds("articles", "article_id", values).tolist() == want
    assert corpus.holds("articles", "article_id", pd.Series(values, dtype="str")).tolist() == want
    assert corpus.holds("spans", "annotation_id", values).tolist() == [False] * len(values)


def test_read_in_is_the_filtered_table_read_a_batch_at_a_time(corpus, monkeypatch):
    """The rows of some annotations, across two files (an extra column in the second only) and
    with an id given twice or missing, equal the whole table read then filtered, in order; a
    column subset without the key column too; the table is never read whole."""
    old = [dict(r, annotation_id=f"n{i}") for i, r in enumerate(_rows("relations", 3))]
    new = [
        dict(r, annotation_id=f"n{i}", reviewer="bob") for i, r in enumerate(_rows("relations", 4))
    ]
    with corpus.writer() as w:
        w.append("relations", old)
        w.append("relations", new)
    whole = corpus.read_arrow("relations").to_pandas()
    wanted = ["n1", "n3", "n1", None, "zz"]
    want = whole[whole["annotation_id"].isin(["n1", "n3"])].reset_index(drop=True)
    assert len(want) == 3 and want["reviewer"].isna().sum() == 1
    some = ["from_span_id", "label"]
    _no_whole_reads(monkeypatch)
    got = corpus.read_in("relations", "annotation_id", wanted)
    assert got.schema == corpus.stored_schema("relations")
    pd.testing.assert_frame_equal(got.to_pandas(), want)
    got = corpus.read_in("relations", "annotation_id", pa.array(wanted, pa.large_string()), some)
    pd.testing.assert_frame_equal(got.to_pandas(), want[some])
    assert corpus.read_in("relations", "annotation_id", []).num_rows == 0
