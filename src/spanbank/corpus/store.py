"""The corpus store: typed Parquet tables under one directory, written atomically under a lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from spanbank.corpus.annotations import HUMAN_ORIGINS, live_annotations
from spanbank.corpus.tables import (
    EXTRA_TABLES,
    OPTIONAL_COLUMNS,
    PRIVATE_MODE,
    PRIVATE_TABLES,
    TABLES,
    column_array,
    empty_table,
    to_arrow,
    with_optional_columns,
)
from spanbank.errors import CorpusError, LockError
from spanbank.procs import pid_alive
from spanbank.schema import Schema, default_schema_text, load_schema

# bounded row groups: a reader streaming a table (export, push's text lookup) holds one group of
# texts at a time, not the whole column (one group of a million articles is a gigabyte)
ROW_GROUP_ROWS = 32_768
CONFIG_FILE = "spanbank.yaml"
SCHEMA_FILE = "schema.yaml"
LOCK_FILE = ".lock"
ENV_CORPUS = "SPANBANK_CORPUS"
# mkstemp creates files 0600; tables get the mode a plain open() would give them
_UMASK = os.umask(0o022)
os.umask(_UMASK)
# a temp file of ours: `.<name>.<owner pid>.<mkstemp's 8 characters>.tmp`; older code left the pid out
_TEMP_NAME = re.compile(r"^\.(?P<name>.+?)(?:\.(?P<pid>\d+))?\.[a-z0-9_]{8}\.tmp$")


def temp_prefix(name: str) -> str:
    """mkstemp prefix of a temp file beside `name`; the owner's pid in it lets the next writer
    remove what a killed one left behind."""
    return f".{name}.{os.getpid()}."


def default_corpus_dir() -> Path:
    return Path(os.environ.get(ENV_CORPUS) or "corpus")


def fsync_path(path: Path) -> None:
    """Flush a file or folder entry to disk (a rename is durable only once its folder is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(dest: Path, write, mode: int | None) -> None:
    """Call `write(fh)` on a temp file beside `dest`, fsync, rename over `dest`, fsync the folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(dest.name), suffix=".tmp", dir=dest.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        fsync_path(dest.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if (
            isinstance(exc, OSError) and exc.filename is None
        ):  # a write through a file object names no file
            exc.filename = str(dest)
        raise


def write_parquet_atomic(table: pa.Table, dest: Path, mode: int | None = None) -> None:
    """Replace `dest` with `table` atomically: readers see the old file or the new, never half."""
    _write_atomic(
        dest,
        lambda fh: pq.write_table(table, fh, compression="zstd", row_group_size=ROW_GROUP_ROWS),
        mode,
    )


def table_mode(name: str) -> int | None:
    """The file mode a table is written with (None: what the umask gives)."""
    return PRIVATE_MODE if name in PRIVATE_TABLES else None


def write_bytes_atomic(data: bytes, dest: Path, mode: int | None = None) -> None:
    """Replace `dest` with `data` atomically (`mode` e.g. 0o600 for secrets)."""
    _write_atomic(dest, lambda fh: fh.write(data), mode)


class Corpus:
    """A corpus directory: `<dir>/<table>.parquet` files plus its schema and config."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_corpus_dir()
        self._schema: Schema | None = None

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r})"

    # -- layout -------------------------------------------------------------------
    @classmethod
    def init(cls, path: str | os.PathLike, schema_path: str | os.PathLike | None = None) -> Corpus:
        """Create a corpus directory with its config and schema (existing files are kept)."""
        corpus = cls(path)
        corpus.path.mkdir(parents=True, exist_ok=True)
        schema_file = corpus.path / SCHEMA_FILE
        if not schema_file.exists():
            text = Path(schema_path).read_text("utf-8") if schema_path else default_schema_text()
            if schema_path:
                load_schema(schema_path)  # validate before copying
            write_bytes_atomic(text.encode(), schema_file)
        config = corpus.path / CONFIG_FILE
        if not config.exists():
            write_bytes_atomic(b"# spanbank corpus\nformat: 1\n", config)
        if corpus.missing_tables():
            with corpus.writer():  # creates every table, empty and typed
                pass
        return corpus

    @property
    def schema(self) -> Schema:
        if self._schema is None:
            f = self.path / SCHEMA_FILE
            self._schema = load_schema(f if f.exists() else None)
        return self._schema

    def table_path(self, name: str) -> Path:
        return self.path / f"{name}.parquet"

    def has(self, name: str) -> bool:
        return self.table_path(name).exists()

    def missing_tables(self) -> list[str]:
        """Tables (documented and extra) with no file yet, e.g. in a corpus made by older code."""
        return [n for n in (*TABLES, *EXTRA_TABLES) if not self.has(n)]

    def require(self) -> None:
        if not self.path.is_dir():
            raise CorpusError(
                f"no corpus at {self.path}; create one with `spanbank init {self.path}`"
            )

    # -- reading ------------------------------------------------------------------
    def read_arrow(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """Read a table (an empty typed table when it does not exist yet), checking its columns."""
        path = self.table_path(name)
        if not path.exists():
            self.require()  # reading a corpus that is not there is a mistake, not an empty table
            table = (
                empty_table(name)
                if name in TABLES
                else EXTRA_TABLES.get(name, pa.schema([])).empty_table()
            )
            return table.select(columns) if columns else table
        try:
            schema = pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
        except (pa.ArrowInvalid, OSError) as exc:
            raise CorpusError(f"{path}: not a readable Parquet file ({exc})") from None
        _check_columns(path, name, schema, columns)
        stored = columns and [c for c in columns if c in schema.names]
        try:
            if path.is_file():  # one open file: a writer's rename in between cannot tear the read
                with open(path, "rb") as fh:
                    table = pq.read_table(fh, columns=stored)
            else:
                table = pq.read_table(path, columns=stored)
        except (pa.ArrowInvalid, OSError) as exc:
            raise CorpusError(f"{path}: not a readable Parquet file ({exc})") from None
        table = with_optional_columns(name, table, columns)
        if name in TABLES:  # compatible types (another tool's writer) are read as ours
            want = {f.name: f.type for f in TABLES[name]}
            schema = pa.schema([f.with_type(want.get(f.name, f.type)) for f in table.schema])
            if schema != table.schema:
                try:
                    table = table.cast(schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise CorpusError(
                        f"{path}: columns do not fit the table's types ({exc})"
                    ) from None
        return table

    def read(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        return self.read_arrow(name, columns).to_pandas()

    def latest_annotations(self, project: str | None = None, origins=HUMAN_ORIGINS) -> pd.DataFrame:
        """Current annotations: not superseded, not deleted, not skipped, of the given origins."""
        ann = live_annotations(self.read("annotations"), origins)
        if project is not None:
            ann = ann[ann["project"] == project]
        return ann.reset_index(drop=True)

    # -- writing ------------------------------------------------------------------
    @contextlib.contextmanager
    def writer(self, wait: bool | float = False) -> Iterator[Writer]:
        """Hold the corpus write lock; `wait` True waits forever, a number waits that many seconds.

        Taking it removes what killed writers left and creates any missing table (empty, typed).
        """
        self.require()
        if not os.access(self.path, os.W_OK):
            raise CorpusError(
                f"corpus {self.path} is read-only; commands that only read it (status, agree, export) "
                "work, to change it make it writable or copy it elsewhere"
            )
        with self.lock(wait):
            self.remove_leftovers()
            self._create_missing_tables()
            yield Writer(self)

    @contextlib.contextmanager
    def lock(self, wait: bool | float = False) -> Iterator[None]:
        """Hold the corpus lock without needing to write (an export of a read-only corpus).

        The lock is a flock on the corpus folder itself: unlike a lock file, it cannot be deleted
        or swapped under its holder. `.lock` only names the holder's pid, for the error message.
        """
        self.require()
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            deadline = None if wait is True else time.monotonic() + float(wait or 0)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if deadline is not None and time.monotonic() >= deadline:
                        raise LockError(
                            f"corpus {self.path} is being written by another spanbank process "
                            f"(pid {self._holder()}); wait for it to finish or pass --wait"
                        ) from None
                    time.sleep(0.1)
            self._note_holder(str(os.getpid()))
            try:
                yield
            finally:
                self._note_holder("")
        finally:
            os.close(fd)  # closing releases the flock

    def _holder(self) -> str:
        try:
            return (self.path / LOCK_FILE).read_text(errors="replace").strip() or "?"
        except OSError:
            return "?"

    def _note_holder(self, pid: str) -> None:
        """Write the lock holder's pid to `.lock` (best effort: a read-only corpus has none)."""
        with contextlib.suppress(OSError):
            fd = os.open(self.path / LOCK_FILE, os.O_WRONLY | os.O_CREAT, 0o644)
            try:  # write, then cut: a reader never sees it empty while a pid is being written
                os.pwrite(fd, pid.encode(), 0)
                os.ftruncate(fd, len(pid.encode()))
            finally:
                os.close(fd)

    def remove_leftovers(self) -> list[str]:
        """Delete temp files (ingest spools, half-written tables) whose owner process is dead.

        Called with the lock held, so no live writer owns one; a live pid's file is kept anyway
        (an ingest reads its input into a spool before it takes the lock). Returns the names removed.
        """
        removed = []
        for entry in os.scandir(self.path):
            m = _TEMP_NAME.match(entry.name)
            if m is None or not entry.is_file(follow_symlinks=False):
                continue
            if m["pid"] is not None and pid_alive(int(m["pid"])):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(entry.name)
        return removed

    def _create_missing_tables(self) -> None:
        """Write every missing table empty and typed; keep personal tables owner-only."""
        for name in self.missing_tables():
            schema = TABLES.get(name) or EXTRA_TABLES[name]
            write_parquet_atomic(schema.empty_table(), self.table_path(name), table_mode(name))
        for name in PRIVATE_TABLES:  # a file written before tables were private
            path = self.table_path(name)
            if path.is_file() and path.stat().st_mode & 0o777 != PRIVATE_MODE:
                os.chmod(path, PRIVATE_MODE)


def _check_columns(
    path: Path, name: str, schema: pa.Schema, columns: list[str] | None = None
) -> None:
    """A stored file's columns against the table's: each declared one present, of a compatible type."""
    if name not in TABLES:
        return
    for f in TABLES[name]:
        if columns and f.name not in columns:
            continue
        if f.name not in schema.names:
            if f.name in OPTIONAL_COLUMNS.get(name, ()):
                continue
            raise CorpusError(f"{path}: missing column {f.name!r}")
        got = schema.field(f.name).type
        if got != f.type and not _compatible(got, f.type):
            raise CorpusError(f"{path}: column {f.name!r} has type {got}, expected {f.type}")


def _compatible(got: pa.DataType, want: pa.DataType) -> bool:
    """Types a reader can take for ours (string vs large_string, timestamp units, null columns)."""
    if pa.types.is_null(got):
        return True
    if pa.types.is_string(want) or pa.types.is_large_string(want):
        return pa.types.is_string(got) or pa.types.is_large_string(got)
    if pa.types.is_timestamp(want):
        return pa.types.is_timestamp(got)
    if pa.types.is_integer(want):
        return pa.types.is_integer(got)
    return False


class Writer:
    """Table writes while the corpus lock is held; each write replaces one file atomically."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus

    def replace(self, name: str, rows) -> pa.Table:
        table = to_arrow(name, rows) if name in TABLES else _as_table(rows)
        write_parquet_atomic(table, self.corpus.table_path(name), table_mode(name))
        return table

    def append(self, name: str, rows) -> pa.Table:
        """Add rows to a table; the old file is copied a row group at a time, not read whole."""
        new = to_arrow(name, rows) if name in TABLES else _as_table(rows)
        if new.num_rows == 0:
            if not self.corpus.has(name):
                write_parquet_atomic(new, self.corpus.table_path(name), table_mode(name))
            return new
        self._append_stream(name, new, iter(()))
        return new

    def append_batches(self, name: str, parts: Iterable) -> int:
        """Append rows that arrive in parts (tables, DataFrames or lists of dicts); returns the count.

        Memory is one part plus one row group of the old table. Every part must have the first
        non-empty part's columns. Nothing is written when no rows arrive; an error from a part
        (or from producing one) leaves the table as it was.
        """
        tables = (to_arrow(name, p) if name in TABLES else _as_table(p) for p in parts)
        first = next((t for t in tables if t.num_rows), None)
        return 0 if first is None else self._append_stream(name, first, tables)

    def _append_stream(self, name: str, first: pa.Table, rest: Iterator[pa.Table]) -> int:
        """Write old rows (group by group) then `first` and `rest` to a temp file, and rename it over the table."""
        dest = self.corpus.table_path(name)
        if dest.exists() and not dest.is_file():  # a folder of parts: the whole-table path
            return self._append_concat(
                name, pa.concat_tables([first, *rest], promote_options="permissive")
            )
        with contextlib.ExitStack() as stack:
            old, old_schema = None, None
            if dest.exists():
                try:
                    old = stack.enter_context(pq.ParquetFile(dest))
                    raw = old.schema_arrow
                except (pa.ArrowInvalid, OSError) as exc:
                    raise CorpusError(f"{dest}: not a readable Parquet file ({exc})") from None
                _check_columns(dest, name, raw)
                old_schema = raw
                if name in TABLES:  # ours first (compatible types read as ours), then extra columns
                    old_schema = pa.schema(
                        list(TABLES[name]) + [f for f in raw if f.name not in TABLES[name].names],
                        metadata=raw.metadata,
                    )
            try:
                target = (
                    first.schema
                    if old_schema is None
                    else pa.unify_schemas([old_schema, first.schema], promote_options="permissive")
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # columns that cannot be merged: as before
                stack.close()
                return self._append_concat(
                    name, pa.concat_tables([first, *rest], promote_options="permissive")
                )
            count = 0

            def write(fh) -> None:
                nonlocal count
                with pq.ParquetWriter(fh, target, compression="zstd") as out:
                    for part in _row_groups(old) if old is not None else ():
                        out.write_table(
                            _conform(
                                name, to_arrow(name, part) if name in TABLES else part, target
                            ),
                            row_group_size=ROW_GROUP_ROWS,
                        )
                    for part in itertools.chain([first], rest):
                        if part.num_rows:
                            out.write_table(
                                _conform(name, part, target), row_group_size=ROW_GROUP_ROWS
                            )
                            count += part.num_rows

            _write_atomic(dest, write, table_mode(name))
        return count

    def _append_concat(self, name: str, new: pa.Table) -> int:
        """Append by reading the whole old table (a folder of parts, or columns that do not unify)."""
        old = self.corpus.read_arrow(name)
        if name in TABLES:
            old = to_arrow(name, old)
        combined = (
            pa.concat_tables([old, new], promote_options="permissive") if old.num_rows else new
        )
        write_parquet_atomic(combined, self.corpus.table_path(name), table_mode(name))
        return new.num_rows


def _row_groups(pf: pq.ParquetFile) -> Iterator[pa.Table]:
    """A file's rows a row group at a time (one thread: no read-ahead); big groups of other writers in slices."""
    for i in range(pf.num_row_groups):
        if pf.metadata.row_group(i).num_rows <= 2 * ROW_GROUP_ROWS:
            yield pf.read_row_group(i, use_threads=False)
        else:
            for batch in pf.iter_batches(
                batch_size=ROW_GROUP_ROWS, row_groups=[i], use_threads=False
            ):
                yield pa.Table.from_batches([batch])


def _conform(name: str, table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with `schema`'s columns in its order: missing ones null, types promoted."""
    if table.schema.equals(schema, check_metadata=False):
        return table
    unknown = [c for c in table.column_names if c not in schema.names]
    if unknown:
        raise CorpusError(
            f"{name}: rows have column(s) {', '.join(unknown)} that earlier rows lack"
        )
    try:
        arrays = [
            table.column(f.name).cast(f.type)
            if f.name in table.column_names
            else pa.nulls(table.num_rows, f.type)
            for f in schema
        ]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise CorpusError(f"{name}: rows do not fit the table's types: {exc}") from None
    return pa.Table.from_arrays(arrays, schema=schema)


def _as_table(rows) -> pa.Table:
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, list):
        rows = pd.DataFrame(rows)
    rows = rows.reset_index(drop=True)
    return pa.Table.from_arrays(
        [column_array(rows[c]) for c in rows.columns], names=[str(c) for c in rows.columns]
    )
