"""One Delta Lake table on local disk: ordered data files we write, committed with delta-rs.

We write the Parquet files ourselves (row groups of bounded size, rows in the order given) and
commit them with delta-rs's transaction API, as dask-deltatable does: a file is visible only
once its commit lands, so a killed writer leaves an unreferenced file, never half a table.
A data file is named `<position>-<part>-<commit>-<uuid>.parquet`: position and part place its
rows in the table's append order (a rewritten file keeps the place of the one it replaces),
whatever order Delta lists files in; commit is the version it was written to become, so a file
of a write killed before its commit is recognisable (its commit is past the table's version).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction

from spanbank.errors import CorpusError

# bounded row groups: a reader streaming a table (export, push's text lookup) holds one group of
# texts at a time, not the whole column (one group of a million articles is a gigabyte)
ROW_GROUP_ROWS = 32_768
# a new data file after this many bytes of Arrow data, so readers elsewhere can split the work
FILE_BYTES = 512 * 1024 * 1024
# id columns whose min/max go into a file's Delta stats, so a targeted rewrite skips most files
KEY_COLUMNS = frozenset({"article_id", "annotation_id", "project"})
_OURS = re.compile(r"^(\d{12})-(\d{5})-(\d{12})-[0-9a-f]{32}\.parquet$")
_RETRIES = 5
# a checkpoint every 10 commits: opening a table replays at most 10 log entries after it
TABLE_CONFIG = {"delta.checkpointInterval": "10"}


def is_table(path: Path) -> bool:
    return (path / "_delta_log").is_dir()


# what delta-rs 1.6 cannot have in a table's path: `%` and two hex digits (its log reader decodes
# the path twice: `x%41y` would read the table in `xAy`), a backslash (read as `/`) and control
# characters (refused); every other character works through a `file://` URL
_UNSAFE_PATH = re.compile(r"%[0-9A-Fa-f]{2}|[\\\x00-\x1f\x7f]")


def table_uri(path: Path) -> str:
    """The `file://` URL delta-rs is given for the table at `path` (a bare path string would be
    read as a URL: `s3:x` as a bucket); a path it would misread is a one-line CorpusError."""
    path = path.absolute()
    bad = _UNSAFE_PATH.search(str(path))
    if bad:
        raise CorpusError(
            f"{path}: delta-rs cannot use a folder whose path holds {bad[0]!r}; "
            "rename the folder or move the corpus"
        )
    return path.as_uri()


def open_table(path: Path, version: int | None = None) -> DeltaTable | None:
    """The Delta table at `path` (at `version`, or the latest); None when there is none."""
    if not is_table(path):
        return None
    uri = table_uri(path)
    try:
        return DeltaTable(uri) if version is None else DeltaTable(uri, version=version)
    except TableNotFoundError:
        return None
    except (DeltaError, OSError, ValueError) as exc:
        raise CorpusError(f"{path}: not a readable Delta table ({_one_line(exc)})") from None


_LOG_ENTRY = re.compile(r"^(\d{20})\.(?:json|checkpoint\.parquet)$")


def latest_version(path: Path) -> int | None:
    """The table's latest version, from its log folder's names (no log replay); None if no table."""
    try:
        names = os.listdir(path / "_delta_log")
    except (FileNotFoundError, NotADirectoryError):
        return None
    versions = [int(m[1]) for m in map(_LOG_ENTRY.match, names) if m]
    return max(versions) if versions else None


def create_table(path: Path, schema: pa.Schema, private: bool = False) -> None:
    """An empty table with `schema` (a private one owner-only: folder 0700, files 0600)."""
    uri = table_uri(path)
    path.mkdir(parents=True, exist_ok=True)
    if private:
        os.chmod(path, 0o700)
    try:
        DeltaTable.create(uri, schema=schema, mode="ignore", configuration=TABLE_CONFIG)
    except (DeltaError, OSError) as exc:
        raise CorpusError(f"{path}: cannot create the table ({_one_line(exc)})") from None


def arrow_schema(dt: DeltaTable) -> pa.Schema:
    """The table's schema in Arrow, strings as plain `string` (Delta has one string type)."""
    return pa.schema([f.with_type(_plain(f.type)) for f in pa.schema(dt.schema().to_arrow())])


def _plain(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_plain(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct(
            [t.field(i).with_type(_plain(t.field(i).type)) for i in range(t.num_fields)]
        )
    return t


def _sort_key(name: str) -> tuple:
    """Ours by (position, part, commit); another writer's files after them, by name."""
    m = _OURS.match(name)
    return (0, int(m[1]), int(m[2]), int(m[3]), name) if m else (1, 0, 0, 0, name)


def data_files(dt: DeltaTable) -> list[Path]:
    """The table's data files in append order: its folder joined with each add action's path,
    both decoded (delta-rs gives them percent-encoded; `file_uris()` decodes only the name)."""
    paths = pa.table(dt.get_add_actions(flatten=False)).column("path").to_pylist()
    return [folder(dt) / n for n in sorted(map(unquote, paths), key=_sort_key)]


def folder(dt: DeltaTable) -> Path:
    """The local folder of the table, from its percent-encoded `file://` URL."""
    return Path(url2pathname(urlparse(dt.table_uri).path))


def read_files(
    files: list[Path], schema: pa.Schema, columns: list[str] | None, where=None
) -> pa.Table:
    """Rows of `files` in order, as `schema` (columns a file lacks read as null); with `where`
    (a dataset expression), only the rows it keeps, skipping row groups whose statistics rule
    them out."""
    if not files:
        table = schema.empty_table()
        return table.select(columns) if columns else table
    with readable(files[0].parent):
        return ds.dataset([str(f) for f in files], format="parquet", schema=schema).to_table(
            columns=columns, filter=where
        )


@contextlib.contextmanager
def readable(folder: Path):
    """A data file of the table in `folder` that cannot be read (vacuumed for an old version,
    truncated, not Parquet) as one CorpusError line, whichever way it is read."""
    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
        raise CorpusError(f"{folder}: a data file is not readable ({_one_line(exc)})") from None


_LOG_ENTRY = re.compile(r"(\d{20})\.json$")


class FileWriter:
    """Writes the data files of one commit: rows in order, a new file every FILE_BYTES.

    `place` (position, part): the name of its first file (see the module's docstring); each
    further file takes the next part number. `files`: how many part numbers it may take (the
    rest belong to another writer of the same commit); past them its last file just grows."""

    def __init__(
        self,
        path: Path,
        commit: int,
        schema: pa.Schema,
        private: bool = False,
        place: tuple[int, int] | None = None,
        files: int | None = None,
    ):
        self.path, self.commit, self.schema, self.private = path, commit, schema, private
        self.seq, self.part = place or (commit, 0)
        self.files = files
        self.added: list[AddAction] = []
        self.names: list[str] = []
        self.rows = 0
        self._out: pq.ParquetWriter | None = None
        self._name = ""
        self._bytes = 0
        self._file_rows = 0
        self._keys = [f.name for f in schema if f.name in KEY_COLUMNS]
        self._min: dict[str, str] = {}
        self._max: dict[str, str] = {}

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self._out is None:
            self._name = (
                f"{self.seq:012d}-{self.part + len(self.added):05d}-{self.commit:012d}-"
                f"{uuid.uuid4().hex}.parquet"
            )
            self.names.append(self._name)
            self._out = pq.ParquetWriter(self.path / self._name, self.schema, compression="zstd")
        self._out.write_table(table, row_group_size=ROW_GROUP_ROWS)
        for k in self._keys:
            lo, hi = pc.min_max(table.column(k)).values()
            if lo.is_valid:
                lo, hi = lo.as_py(), hi.as_py()
                self._min[k] = min(self._min.get(k, lo), lo)
                self._max[k] = max(self._max.get(k, hi), hi)
        self._bytes += table.nbytes
        self._file_rows += table.num_rows
        self.rows += table.num_rows
        if self._bytes >= FILE_BYTES and (self.files is None or len(self.added) + 1 < self.files):
            self._close_file()

    def _close_file(self) -> None:
        self._out.close()
        dest = self.path / self._name
        with open(dest, "rb") as fh:
            os.fsync(fh.fileno())
        if self.private:
            os.chmod(dest, 0o600)
        st = dest.stat()
        self.added.append(
            AddAction(
                self._name,
                st.st_size,
                {},
                int(st.st_mtime * 1000),
                True,
                json.dumps(
                    {"numRecords": self._file_rows, "minValues": self._min, "maxValues": self._max}
                ),
            )
        )
        self._out, self._bytes, self._file_rows = None, 0, 0
        self._min, self._max = {}, {}

    def finish(self) -> list[AddAction]:
        if self._out is not None:
            self._close_file()
        return self.added

    def abort(self) -> None:
        """Remove the files of a write that was not committed. A commit that went through is
        left alone: Ctrl-C or SIGTERM raises in Python right after the commit call returns, and
        removing its files then left a table whose log names missing files."""
        if self._out is not None:
            with contextlib.suppress(Exception):
                self._out.close()
        if self._committed():
            return
        for name in self.names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path / name)

    def _committed(self) -> bool:
        """Whether a log entry of this commit's version or later names one of our files."""
        names = set(self.names)
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.path / "_delta_log"):
                m = _LOG_ENTRY.match(entry.name)
                if names and m and int(m[1]) >= self.commit:
                    with contextlib.suppress(OSError):
                        text = Path(entry.path).read_text()
                        if any(n in text for n in names):
                            return True
        return False


def commit(
    path: Path,
    adds: list[AddAction],
    removes: Iterable[str] = (),
    schema: pa.Schema | None = None,
    data_change: bool = True,
    dt: DeltaTable | None = None,
) -> int:
    """Commit added files and removed ones as one transaction; returns the new version.

    `dt`, a snapshot at the latest version, saves replaying the log again (it is not updated)."""
    now = int(time.time() * 1000)
    actions = [*adds, *(RemoveAction(r, data_change, now) for r in removes)]
    if not actions:
        return latest_version(path)
    for attempt in range(_RETRIES):
        dt = dt if dt is not None and attempt == 0 else open_table(path)
        try:
            dt.create_write_transaction(actions, "append", schema or arrow_schema(dt))
            return latest_version(path)
        except CommitFailedError:  # another writer committed first: the files stay valid
            if attempt == _RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def add_columns(path: Path, fields: list[pa.Field]) -> None:
    """Widen the table's schema by new nullable columns (older files read them as null)."""
    from deltalake.schema import Field

    dt = open_table(path)
    dt.alter.add_columns([Field.from_arrow(f) for f in fields])


def rel(path: Path, file: Path) -> str:
    return os.path.relpath(file, path)


def iter_file_batches(
    files: list[Path], columns: list[str], batch_size: int = ROW_GROUP_ROWS
) -> Iterator[pa.RecordBatch]:
    """Batches of `files` in order, reading only the `columns` a file has."""
    for f in files:
        with readable(f.parent):
            pf = pq.ParquetFile(f)
            cols = [c for c in columns if c in pf.schema_arrow.names]
            batches = pf.iter_batches(batch_size=batch_size, columns=cols, use_threads=False)
        while True:
            with readable(f.parent):
                batch = next(batches, None)
            if batch is None:
                break
            yield batch


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def our_commit(name: str) -> int | None:
    """The commit a data file named `name` was written for, when spanbank wrote it; else None."""
    m = _OURS.match(name)
    return int(m[3]) if m else None


def position(name: str, default_seq: int) -> tuple[int, int]:
    """(position, part) of one of our data files, to write its replacement at the same place."""
    m = _OURS.match(name)
    return (int(m[1]), int(m[2])) if m else (default_seq, 0)


def remove_uncommitted(path: Path) -> list[str]:
    """Delete our data files written for a commit past the table's version: a killed writer's.

    Called under the corpus lock, so no writer of ours is between its files and its commit.
    """
    version, removed = latest_version(path), []
    if version is None:
        return []
    for entry in os.scandir(path):
        m = _OURS.match(entry.name)
        if m and int(m[3]) > version:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def remove_unreferenced(path: Path, commit: int, kept: Iterable[str]) -> list[str]:
    """After commit `commit`: delete our files written for it that it does not reference (a
    worker killed after writing a file, whose part was then written again elsewhere).

    Called under the corpus lock, so no other writer writes files for that commit."""
    kept, removed = set(kept), []
    for entry in os.scandir(path):
        m = _OURS.match(entry.name)
        if m and int(m[3]) == commit and entry.name not in kept:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def files_maybe_holding(dt: DeltaTable, column: str, values: list[str]) -> list[Path]:
    """Data files (in order) whose stats do not rule out holding one of `values` (sorted)."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    lo_col, hi_col = f"min.{column}", f"max.{column}"
    if lo_col not in actions.column_names:
        return data_files(dt)
    root, keep = folder(dt), set()
    for path, lo, hi in zip(
        actions.column("path").to_pylist(),
        actions.column(lo_col).to_pylist(),
        actions.column(hi_col).to_pylist(),
        strict=True,
    ):
        if lo is None or hi is None or _any_within(values, lo, hi):
            keep.add(root / unquote(path))
    return [f for f in data_files(dt) if f in keep]


def _any_within(values: list[str], lo: str, hi: str) -> bool:
    """Whether one of `values` (sorted) lies in [lo, hi]."""
    i = bisect.bisect_left(values, lo)
    return i < len(values) and values[i] <= hi


def take(files: list[Path], schema: pa.Schema, rows, columns: list[str] | None) -> pa.Table:
    """Rows at ascending positions of the files' concatenation, reading only their row groups."""
    import numpy as np

    want = np.asarray(rows, dtype=np.int64)
    cols = columns or schema.names
    parts, base = [], 0
    for f in files:
        with readable(f.parent):
            pf = pq.ParquetFile(f)
            for g in range(pf.num_row_groups):
                n = pf.metadata.row_group(g).num_rows
                lo, hi = np.searchsorted(want, [base, base + n])
                if hi > lo:
                    stored = [c for c in cols if c in pf.schema_arrow.names]
                    group = pf.read_row_group(g, columns=stored, use_threads=False)
                    picked = group.take(pa.array(want[lo:hi] - base))
                    parts.append(read_conform(picked, schema, cols))
                base += n
    if not parts:
        return schema.empty_table().select(cols)
    return pa.concat_tables(parts)


def read_conform(table, schema: pa.Schema, cols: list[str]):
    """`table`'s (or record batch's) columns as `schema` types (absent ones null), in the order
    of `cols`: files written before a column was added, or with other string types, read alike."""
    arrays = [
        table.column(c).cast(schema.field(c).type)
        if c in table.schema.names
        else pa.nulls(table.num_rows, schema.field(c).type)
        for c in cols
    ]
    kind = pa.RecordBatch if isinstance(table, pa.RecordBatch) else pa.Table
    return kind.from_arrays(arrays, schema=pa.schema([schema.field(c) for c in cols]))
