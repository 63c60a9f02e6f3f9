"""The corpus store: a Delta Lake table per corpus table (format 2), written under a lock; every
writing command a commit (`commits`), so any past state can be read again."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import glob
import itertools
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spanbank.corpus import commits, delta
from spanbank.corpus.annotations import HUMAN_ORIGINS, live_annotations
from spanbank.corpus.articles import IdSet
from spanbank.corpus.commits import COMMITS
from spanbank.corpus.tables import (
    ADDED_COLUMNS,
    EXTRA_TABLES,
    LOG_TABLES,
    ON_DEMAND_TABLES,
    OPTIONAL_COLUMNS,
    PRIVATE_TABLES,
    TABLES,
    column_array,
    to_arrow,
    with_optional_columns,
)
from spanbank.errors import CorpusError, LockError
from spanbank.procs import pid_alive
from spanbank.schema import Schema, default_schema_text, load_schema

FORMAT = 2
CONFIG_FILE = "spanbank.yaml"
SCHEMA_FILE = "schema.yaml"
LOCK_FILE = ".lock"
WRITING_FILE = ".writing"  # the command holding the writer: a kill leaves it, naming that command
ENV_CORPUS = "SPANBANK_CORPUS"
# mkstemp and mkdtemp make 0600 files and 0700 folders; what we rename into place gets the mode
# a plain open() or mkdir() would give it (read once: reading the umask sets it)
_UMASK = os.umask(0o022)
os.umask(_UMASK)
PLAIN_FILE = 0o666 & ~_UMASK
PLAIN_FOLDER = 0o777 & ~_UMASK
# a temp file of ours: `.<name>.<owner pid>.<mkstemp's 8 characters>.tmp`; older code left the pid out
_TEMP_NAME = re.compile(r"^\.(?P<name>.+?)(?:\.(?P<pid>\d+))?\.[a-z0-9_]{8}\.tmp$")


def temp_prefix(name: str) -> str:
    """mkstemp prefix of a temp file beside `name`; the owner's pid in it lets the next writer
    remove what a killed one left behind."""
    return f".{name}.{os.getpid()}."


def remove_dead_temps(folder: Path, name: str) -> None:
    """Delete the temp files beside `folder / name` (`temp_prefix(name)`...) whose owner process
    is dead: what a writer killed before it could clean up left behind."""
    for entry in folder.glob(f".{glob.escape(name)}.*.tmp"):
        m = _TEMP_NAME.match(entry.name)
        if m is None or m["name"] != name or m["pid"] is None or entry.is_dir():
            continue
        if not pid_alive(int(m["pid"])):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry)


def flock_wait(fd: int, wait: bool | float, busy: Callable[[], str]) -> None:
    """Take an exclusive flock on `fd`, trying again for `wait` seconds (True: for ever);
    LockError(busy()) if another process still holds it."""
    deadline = None if wait is True else time.monotonic() + float(wait or 0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if deadline is not None and time.monotonic() >= deadline:
                raise LockError(busy()) from None
            time.sleep(0.1)


def default_corpus_dir() -> Path:
    return Path(os.environ.get(ENV_CORPUS) or "corpus")


def fsync_path(path: Path) -> None:
    """Flush a file or folder entry to disk (a rename is durable only once its folder is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(path: Path) -> bool:
    """Flush all that was written to the file system holding `path`, in one call (Linux
    `syncfs`) instead of an fsync per file; False where there is no syncfs, or it failed."""
    syncfs = getattr(_libc(), "syncfs", None)
    if syncfs is None:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return syncfs(fd) == 0
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=1)
def _libc():
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # no C library to load by that name (e.g. Windows)
        return None


def _write_atomic(dest: Path, write, mode: int | None, durable: bool = True) -> None:
    """Call `write(fh)` on a temp file beside `dest`, fsync, rename over `dest`, fsync the folder
    (without the fsyncs when not `durable`: whole or absent after a kill, not after a power cut)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(dest.name), suffix=".tmp", dir=dest.parent)
    try:
        os.fchmod(fd, PLAIN_FILE if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, dest)
        if durable:
            fsync_path(dest.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if (
            isinstance(exc, OSError) and exc.filename is None
        ):  # a write through a file object names no file
            exc.filename = str(dest)
        raise


def write_bytes_atomic(
    data: bytes, dest: Path, mode: int | None = None, durable: bool = True
) -> None:
    """Replace `dest` with `data` atomically (`mode` e.g. 0o600 for secrets)."""
    _write_atomic(dest, lambda fh: fh.write(data), mode, durable)


class Corpus:
    """A corpus directory: a Delta table `<dir>/<table>/` per table, its schema and config.

    `as_of` (a commit number or a time) gives a read-only view of the corpus as it was then.
    """

    def __init__(self, path: str | os.PathLike | None = None, as_of=None):
        self.path = Path(path) if path is not None else default_corpus_dir()
        self._schema: Schema | None = None
        self._format_ok = False
        self._tables_ok = False
        self.pinned: dict[str, int] | None = None
        self.commit: int | None = None
        self._snapshots: dict[tuple[str, int], object] = {}
        self._held: tuple[int, Writer] | None = None  # (thread, writer) while writer() holds
        if as_of is not None:
            row = commits.resolve(self.read(COMMITS), as_of)
            self.pinned, self.commit = commits.versions_of(row), int(row["commit"])

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r})"

    def at(self, as_of) -> Corpus:
        """This corpus as it was at a commit (number) or time; None: this corpus, latest."""
        return self if as_of is None else Corpus(self.path, as_of=as_of)

    # -- layout -------------------------------------------------------------------
    @classmethod
    def init(cls, path: str | os.PathLike, schema_path: str | os.PathLike | None = None) -> Corpus:
        """Create a corpus directory with its config and schema (existing files are kept)."""
        corpus = cls(path)
        fresh = not corpus.path.exists() or not any(corpus.path.iterdir())
        if schema_path and not fresh and (corpus.path / SCHEMA_FILE).exists():
            given = load_schema(schema_path)
            if given != corpus.schema:
                raise CorpusError(
                    f"{corpus.path} already has schema {corpus.schema.ident}; {schema_path} "
                    f"({given.ident}) is not applied, since a corpus keeps the schema its spans "
                    f"were made under: start a new corpus for it (spanbank init NEW --schema "
                    f"{schema_path})"
                )
        corpus.path.mkdir(parents=True, exist_ok=True)
        if not fresh:
            corpus.check_format()
            for name in corpus.missing_tables():  # before anything is written here
                corpus._check_not_foreign(name)
        schema_file = corpus.path / SCHEMA_FILE
        if not schema_file.exists():
            text = Path(schema_path).read_text("utf-8") if schema_path else default_schema_text()
            if schema_path:
                load_schema(schema_path)  # validate before copying
            write_bytes_atomic(text.encode(), schema_file)
        config = corpus.path / CONFIG_FILE
        if not config.exists():
            write_bytes_atomic(f"# spanbank corpus\nformat: {FORMAT}\n".encode(), config)
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
        """The folder of a table (a Delta table); read it through this class, never by globbing."""
        return self.path / name

    def has(self, name: str) -> bool:
        return delta.is_table(self.table_path(name))

    def missing_tables(self) -> list[str]:
        """Tables (documented and extra) not created yet, e.g. in a corpus made by older code."""
        return [n for n in (*TABLES, *EXTRA_TABLES) if not self.has(n)]

    def require(self) -> None:
        marks = (CONFIG_FILE, SCHEMA_FILE, "articles", "articles.parquet")  # init's, or tables
        if not self.path.is_dir() or not any((self.path / m).exists() for m in marks):
            # a folder that is no corpus (a mistyped --corpus) is not made one by a write
            raise CorpusError(
                f"no corpus at {self.path}; create one with `spanbank init {self.path}`"
            )
        self.check_format()
        if self.pinned is None and not self._tables_ok:  # once per view: readers say it too
            self._tables_ok = True  # (first: reading the commit log requires the corpus too)
            self.check_tables()

    def format(self) -> int:
        """The corpus format: 2 (Delta tables), 1 (a Parquet file per table, before migrate)."""
        try:
            text = (self.path / CONFIG_FILE).read_text("utf-8", errors="replace")
        except OSError:
            text = ""
        m = re.search(r"^format:\s*(\d+)", text, re.M)
        if m:
            return int(m[1])
        legacy = any((self.path / f"{n}.parquet").exists() for n in (*TABLES, *EXTRA_TABLES))
        return 1 if legacy else FORMAT

    def check_format(self) -> None:
        if self._format_ok:
            return
        got = self.format()
        if got == 1:
            raise CorpusError(
                f"corpus {self.path} is in format 1 (one Parquet file per table); convert it "
                f"with `spanbank --corpus {self.path} migrate` (nothing is lost)"
            )
        if got != FORMAT:
            raise CorpusError(
                f"corpus {self.path} is in format {got}; this spanbank reads format {FORMAT}"
            )
        self._format_ok = True

    # -- reading ------------------------------------------------------------------
    def snapshot(self, name: str):
        """The table's Delta snapshot (at the pinned version, or the latest); None if absent."""
        self.require()
        path = self.table_path(name)
        if self.pinned is not None and name != COMMITS:  # the log itself is read whole
            version = self.pinned.get(name)
            if version is None:  # the table did not exist at that commit
                return None
        else:
            version = delta.latest_version(path)
            if version is None:
                return None
        key = (name, version)
        if key not in self._snapshots:  # opening replays the log: once per version seen
            self._snapshots = {k: v for k, v in self._snapshots.items() if k[0] != name}
            self._snapshots[key] = delta.open_table(path, version)
        return self._snapshots[key]

    def frozen(self) -> Corpus:
        """This corpus pinned to its current versions, so a long read sees one state; `commit`
        is the latest commit's number when these are its versions."""
        if self.pinned is not None:
            return self
        view = Corpus(self.path)
        view._schema, view._format_ok = self._schema, True
        view.pinned = self.versions()
        number, versions = self._last_commit()
        view.commit = number if number and versions == view.pinned else None
        return view

    def table_files(self, name: str) -> list[Path]:
        """The table's data files in append order (none when it does not exist)."""
        dt = self.snapshot(name)
        return [] if dt is None else delta.data_files(dt)

    def stored_schema(self, name: str) -> pa.Schema:
        """The columns a table holds: ours with our types, then any other column it has."""
        dt = self.snapshot(name)
        declared = _declared(name)
        if dt is None:
            return declared
        stored = delta.arrow_schema(dt)
        _check_columns(self.table_path(name), name, stored)
        return pa.schema(list(declared) + [f for f in stored if f.name not in declared.names])

    def versions(self) -> dict[str, int]:
        """Each table's version (pinned, or the latest)."""
        if self.pinned is not None:
            return dict(self.pinned)
        out = {}
        for name in (*TABLES, *EXTRA_TABLES, *ON_DEMAND_TABLES):
            v = None if name in LOG_TABLES else delta.latest_version(self.table_path(name))
            if v is not None:
                out[name] = v
        return out

    def read_arrow(self, name: str, columns: list[str] | None = None, where=None) -> pa.Table:
        """Read a table (an empty typed table when it does not exist), checking its columns;
        `where` (a `pyarrow.dataset` expression over stored columns) keeps only some rows."""
        schema = self.stored_schema(name)
        _check_columns(self.table_path(name), name, schema, columns)
        stored = [c for c in columns if c in schema.names] if columns else None
        table = delta.read_files(self.table_files(name), schema, stored, where)
        return with_optional_columns(name, table, columns)

    def read(self, name: str, columns: list[str] | None = None, where=None) -> pd.DataFrame:
        return self.read_arrow(name, columns, where).to_pandas()

    def read_in(self, name: str, column: str, values, columns: list[str] | None = None) -> pa.Table:
        """`read_arrow(name, columns)`'s rows whose `column` is one of `values` (string ids),
        read a batch at a time: memory is the rows kept and one batch, not the table
        (adjudicating a few articles read every span of the corpus). A batch holds at least four
        times as many rows as there are values, so hashing them again for each batch costs a
        fraction of reading it."""
        schema = self.stored_schema(name)
        _check_columns(self.table_path(name), name, schema, columns)
        cols = [c for c in columns if c in schema.names] if columns else schema.names
        read = cols if column in cols else [*cols, column]
        wanted = _strings(values).cast(pa.string())
        parts = [schema.empty_table().select(cols)]
        rows = max(delta.ROW_GROUP_ROWS, 4 * len(wanted))
        for batch in self.iter_batches(name, read, rows):
            table = delta.read_conform(pa.Table.from_batches([batch]), schema, read)
            keep = pc.is_in(table.column(column), value_set=wanted, skip_nulls=True)
            parts.append(table.filter(keep).select(cols))
        return with_optional_columns(name, pa.concat_tables(parts), columns)

    def take(self, name: str, rows, columns: list[str] | None = None) -> pa.Table:
        """The rows at positions `rows` (in table order, ascending), reading only the row groups
        that hold them."""
        return delta.take(self.table_files(name), self.stored_schema(name), rows, columns)

    def iter_batches(
        self, name: str, columns: list[str], batch_size: int = delta.ROW_GROUP_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """A table's rows in append order, a batch at a time (memory: one batch), each with the
        table's types for `columns` (a file older than a column has it null)."""
        schema = self.stored_schema(name)
        cols = [c for c in columns if c in schema.names]
        for batch in delta.iter_file_batches(self.table_files(name), cols, batch_size):
            yield delta.read_conform(batch, schema, cols)

    def holds(self, name: str, column: str, values, ids: IdSet | None = None) -> np.ndarray:
        """For each of `values` (string ids), whether table `name`'s `column` holds it. The column
        is read a batch at a time and the values looked up a slice at a time: memory is the
        values' set (`ids`, if already built), not the column (4M stored annotation ids in
        pandas were an export's peak)."""
        values = _strings(values)
        ids = ids if ids is not None else IdSet(values)
        found = np.zeros(ids.size + 1, dtype=bool)  # the last: where a value is missing (-1)
        for batch in self.iter_batches(name, [column]):
            at = ids.positions(batch.column(0))
            found[at[at >= 0]] = True
        out = np.empty(len(values), dtype=bool)
        for lo in range(0, len(values), delta.ROW_GROUP_ROWS):
            out[lo : lo + delta.ROW_GROUP_ROWS] = found[
                ids.positions(values.slice(lo, delta.ROW_GROUP_ROWS))
            ]
        return out

    def latest_annotations(self, project: str | None = None, origins=HUMAN_ORIGINS) -> pd.DataFrame:
        """Current annotations: not superseded, not deleted, not skipped, of the given origins."""
        ann = live_annotations(self.read("annotations"), origins)
        if project is not None:
            ann = ann[ann["project"] == project]
        return ann.reset_index(drop=True)

    def commits(self) -> pd.DataFrame:
        """The commit log, oldest first (up to the pinned commit for an as-of view)."""
        log = self.read(COMMITS)
        if self.commit is not None:
            log = log[log["commit"] <= self.commit]
        return log.sort_values("commit", kind="stable").reset_index(drop=True)

    # -- writing ------------------------------------------------------------------
    @contextlib.contextmanager
    def writer(self, wait: bool | float = False) -> Iterator[Writer]:
        """Hold the corpus write lock; `wait` True waits forever, a number waits that many seconds.

        Taking it removes what killed writers left and creates any missing table (empty, typed).
        Leaving it records a commit naming every table's version, when anything was written.
        Taken again by the thread holding it (a command's steps, each written to be run alone),
        it is the same writer: the command keeps the lock throughout and records one commit.
        """
        if self._held is not None and self._held[0] == threading.get_ident():
            yield self._held[1]
            return
        self.check_writable()
        with self.lock(wait):
            self.check_tables()
            self.remove_leftovers()
            self._create_missing_tables()
            self._commit_strays()
            w = Writer(self)
            # a note for the next writer, not data: a power cut may lose it (then `recovered`)
            write_bytes_atomic(self._command().encode(), self.path / WRITING_FILE, durable=False)
            self._held = (threading.get_ident(), w)
            try:
                yield w
            except BaseException as exc:
                if w.touched:  # best effort: the next writer records what this one left anyway
                    with contextlib.suppress(Exception):
                        self._record_commit(f"failed ({type(exc).__name__})")
                raise
            else:
                if w.touched:
                    self._record_commit("ok")
            finally:
                self._held = None
                with contextlib.suppress(OSError):
                    os.unlink(self.path / WRITING_FILE)

    def check_writable(self) -> None:
        """Raise CorpusError (saying what to do) unless this corpus can be written."""
        self.require()
        if self.pinned is not None:
            raise CorpusError(f"corpus {self.path} is opened as of commit {self.commit}: read-only")
        if not os.access(self.path, os.W_OK):
            raise CorpusError(
                f"corpus {self.path} is read-only; commands that only read it (status, agree, export) "
                "work, to change it make it writable or copy it elsewhere"
            )

    def _last_commit(self) -> tuple[int, dict[str, int]]:
        files = self.table_files(COMMITS)  # one row per file, oldest first (or fewer, compacted)
        log = delta.read_files(files[-1:], self.stored_schema(COMMITS), None).to_pandas()
        if log.empty:
            return 0, {}
        row = log.loc[log["commit"].idxmax()]
        return int(row["commit"]), commits.versions_of(row)

    def _command(self) -> str:
        """This process's command line as the commit log stores it (secrets masked)."""
        return commits.command_line(pseudonym=self._command_pseudonym)

    def _record_commit(self, status: str, command: str | None = None) -> int:
        number = self._last_commit()[0] + 1
        command = command or self._command()
        row = commits.commit_row(number, self.versions(), status, command)
        Writer(self).append(COMMITS, [row])
        return number

    def _command_pseudonym(self, email: str) -> str:
        """What an e-mail on a command line is stored as in `commits`: the pseudonym of the
        Label Studio user with that e-mail when the `annotators` table knows one (the annotator
        the command acted on), else the one brat ingest gives it (`ingest --annotator EMAIL`),
        when the corpus has its pseudonym key (read here, never made), else `***`."""
        from spanbank.pseudonyms import pseudonym, stored_key

        with contextlib.suppress(Exception):  # the log must be written whatever this finds
            users = self.read("annotators", ["annotator", "email"])
            known = users.loc[users["email"].str.casefold() == email.casefold(), "annotator"]
            if known.nunique() == 1:
                return str(known.iloc[0])
        key = stored_key(self.path)
        return "***" if key is None else pseudonym(key, "brat", email)

    def check_tables(self) -> None:
        """Every table the last commit names written to is still a table. One whose folder or
        Delta log is gone (a partial copy, a stray `rm`) is one line: taken for a table not made
        yet, it was made anew, empty, and the next writes deleted its old data files. (A table
        never written to, version 0, holds nothing: it is made again, as for older corpora.)"""
        if self.format() != FORMAT:  # migrate's own (a killed one's tables, no commit yet)
            return
        number, versions = self._last_commit()
        if delta.latest_version(self.table_path(COMMITS)) is None:
            held = {n: v for n, v in self.versions().items() if v > 0}
            if held:
                name, version = next(iter(sorted(held.items())))
                raise CorpusError(
                    f"corpus {self.path}: table {COMMITS} is missing (its folder or its "
                    f"_delta_log), though {name} is at version {version}; restore it from a "
                    "backup (nothing was written)"
                )
        for name, version in sorted(versions.items()):
            if version > 0 and delta.latest_version(self.table_path(name)) is None:
                raise CorpusError(
                    f"corpus {self.path}: table {name} is missing (its folder or its _delta_log), "
                    f"though commit {number} read its version {version}; restore it from a "
                    "backup (nothing was written)"
                )

    def record_strays(self) -> None:
        """Under the lock: writes that no commit names yet (a killed command's) get a
        `recovered` commit, when the corpus is writable (an export then names a commit)."""
        if self.pinned is None and os.access(self.path, os.W_OK):
            self.check_tables()
            self._commit_strays()

    def killed_command(self) -> str:
        """The command line a writer killed while it held this corpus left in `.writing` ("" when
        none; read under the lock, so no live writer's)."""
        try:
            return (self.path / WRITING_FILE).read_text("utf-8", errors="replace").strip()
        except OSError:
            return ""

    def _commit_strays(self) -> None:
        """Versions written since the last commit get a commit row: `interrupted`, naming the
        command, when a killed writer left `.writing`; else `recovered` (another tool)."""
        number, versions = self._last_commit()
        now = self.versions()
        killed = self.killed_command()
        if number and now != versions or not number and any(v > 0 for v in now.values()):
            if killed:
                self._record_commit("interrupted", killed)
            elif number:
                self._record_commit(
                    "recovered", "(writes after the last commit: a killed command or another tool)"
                )
            else:
                self._record_commit("recovered", "(writes before the first commit)")
        if killed:
            with contextlib.suppress(OSError):
                os.unlink(self.path / WRITING_FILE)

    @contextlib.contextmanager
    def lock(self, wait: bool | float = False) -> Iterator[None]:
        """Hold the corpus lock without needing to write (an export of a read-only corpus).

        The lock is a flock on the corpus folder itself: unlike a lock file, it cannot be deleted
        or swapped under its holder. `.lock` only names the holder's pid, for the error message.
        """
        self.require()
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            flock_wait(
                fd,
                wait,
                lambda: (
                    f"corpus {self.path} is being written by another spanbank process "
                    f"(pid {self._holder()}); wait for it to finish or pass --wait"
                ),
            )
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
        """Delete temp files and folders (ingest spools, half-written files) whose owner process
        is dead.

        Called with the lock held, so no live writer owns one; a live pid's file is kept anyway
        (an ingest reads its input into a spool before it takes the lock). Returns the names removed.
        """
        removed = []
        for entry in os.scandir(self.path):
            m = _TEMP_NAME.match(entry.name)
            if m is None or entry.is_symlink():
                continue
            if m["pid"] is not None and pid_alive(int(m["pid"])):
                continue
            if entry.is_dir(follow_symlinks=False):  # a spool folder that workers wrote into
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.name)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(entry.name)
        for name in (*TABLES, *EXTRA_TABLES, *ON_DEMAND_TABLES):
            removed += delta.remove_uncommitted(self.table_path(name))
        return removed

    def _check_not_foreign(self, name: str) -> None:
        path = self.table_path(name)
        if not path.is_dir():
            return
        names = [e.name for e in os.scandir(path) if e.name != "_delta_log"]
        if any(delta.our_commit(n) is not None for n in names):
            raise CorpusError(
                f"{path} holds spanbank data files but no table log (its _delta_log is gone); "
                "restore it from a backup (nothing was written)"
            )
        if names:
            raise CorpusError(
                f"{path} holds files but is not a spanbank table; move it away (the corpus "
                f"keeps its {name} table in that folder)"
            )

    def _create_missing_tables(self) -> None:
        """Create every missing table empty and typed; keep personal tables owner-only. A folder
        of a table's name holding other files is not taken over (a vacuum would delete them)."""
        for name in self.missing_tables():
            self._check_not_foreign(name)
            delta.create_table(self.table_path(name), _declared(name), name in PRIVATE_TABLES)
        for name in PRIVATE_TABLES:  # a folder made before tables were private
            path = self.table_path(name)
            if path.is_dir() and path.stat().st_mode & 0o777 != 0o700:
                os.chmod(path, 0o700)


def _declared(name: str) -> pa.Schema:
    """A table's declared columns and types, with the columns code adds to it."""
    base = TABLES.get(name) or EXTRA_TABLES.get(name) or ON_DEMAND_TABLES.get(name)
    if base is None:
        return pa.schema([])
    added = [f for f in ADDED_COLUMNS.get(name, []) if f.name not in base.names]
    return pa.schema(list(base) + added)


def _check_columns(
    path: Path, name: str, schema: pa.Schema, columns: list[str] | None = None
) -> None:
    """A stored table's columns against ours: each declared one present, of a compatible type."""
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
    """Table writes while the corpus lock is held; each write is one Delta commit."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus
        self.touched: set[str] = set()

    def _rows(self, name: str, rows) -> pa.Table:
        return to_arrow(name, rows) if name in TABLES else _as_table(rows)

    def append(self, name: str, rows) -> pa.Table:
        """Add rows to a table: new files, one commit; nothing already stored is rewritten."""
        new = self._rows(name, rows)
        if new.num_rows:
            self._write(name, iter([new]))
        return new

    def append_batches(self, name: str, parts: Iterable) -> int:
        """Append rows that arrive in parts (tables, DataFrames or lists of dicts); returns the count.

        Memory is one part. Every part must have the first non-empty part's columns. Nothing is
        committed when no rows arrive; an error from a part (or from producing one) leaves the
        table as it was.
        """
        tables = (self._rows(name, p) for p in parts)
        first = next((t for t in tables if t.num_rows), None)
        return 0 if first is None else self._write(name, itertools.chain([first], tables))

    def replace(self, name: str, rows) -> pa.Table:
        """Make `rows` the table's content (one commit: new files in, all old ones out).

        For the small bookkeeping tables; the big ones change by `append`, `delete` and `upsert`.
        """
        new = self._rows(name, rows)
        old = [delta.rel(self._path(name), f) for f in self.corpus.table_files(name)]
        self._write(name, iter([new]), removes=old)
        return new

    def delete(self, name: str, column: str, values) -> int:
        """Remove the rows whose `column` is in `values`: only the files holding one are rewritten."""
        value_set = pa.array(sorted(set(values)), pa.string())
        if not len(value_set):
            return 0
        return self._rewrite(name, column, value_set, None)

    def upsert(self, name: str, rows, key: str) -> None:
        """Replace the stored rows whose `key` matches one of `rows`, append the others: one commit."""
        new = self._rows(name, rows)
        if not new.num_rows:
            return
        self._rewrite(name, key, new.column(key).combine_chunks(), new)

    def plan(self, name: str, sample: pa.Table) -> Planned:
        """The next commit of table `name`, for data files written elsewhere (other processes,
        other machines sharing the corpus folder): `Planned.file_writer` writes them there, this
        writer commits what they return (`commit_planned`) or drops them (`abort_planned`).
        `sample`'s columns widen the table as `append` would. Nothing else may write `name`
        between this and the commit."""
        target = self._target(name, sample)
        path = self._path(name).resolve()
        return Planned(name, path, delta.latest_version(path) + 1, target, name in PRIVATE_TABLES)

    def commit_planned(self, plan: Planned, adds: list) -> int:
        """Commit the data files of `plan` (all at once: the table shows all of them or none);
        files written for it but not in `adds` (a killed worker's) are removed. Returns the rows
        added."""
        path = plan.path
        if delta.latest_version(path) + 1 != plan.commit:
            raise CorpusError(f"{path}: written since its commit was planned; nothing committed")
        if not adds:
            return 0
        delta.commit(path, adds, (), plan.schema, dt=self.corpus.snapshot(plan.name))
        delta.remove_unreferenced(path, plan.commit, [a.path for a in adds])
        self.touched.add(plan.name)
        return sum(json.loads(a.stats)["numRecords"] for a in adds)

    def abort_planned(self, plan: Planned) -> None:
        """Remove the files written for `plan` (no commit came): the table is as it was. A worker
        still writing leaves a file the next writer removes (`remove_uncommitted`)."""
        delta.remove_uncommitted(plan.path)

    # -- plumbing -----------------------------------------------------------------
    def _path(self, name: str) -> Path:
        return self.corpus.table_path(name)

    def _target(self, name: str, first: pa.Table) -> pa.Schema:
        """The table's columns, widened (in the table too) by columns `first` brings."""
        path = self._path(name)
        if not delta.is_table(path):
            delta.create_table(path, _declared(name), name in PRIVATE_TABLES)
        schema = self.corpus.stored_schema(name)
        new = [
            pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
            for f in first.schema
            if f.name not in schema.names
        ]
        if new:
            delta.add_columns(path, new)
            schema = pa.schema(list(schema) + new)
        return schema

    def _write(self, name: str, parts: Iterator[pa.Table], removes=(), first=None) -> int:
        first = first if first is not None else next(parts)
        target = self._target(name, first)
        path = self._path(name)
        out = delta.FileWriter(path, delta.latest_version(path) + 1, target, name in PRIVATE_TABLES)
        try:
            for part in itertools.chain([first], parts):
                out.write(_conform(name, part, target))
            adds = out.finish()
            delta.commit(path, adds, removes, target, dt=self.corpus.snapshot(name))
        except BaseException as exc:
            out.abort()
            if isinstance(exc, OSError) and exc.filename is None:
                exc.filename = str(path)
            raise
        self.touched.add(name)
        return out.rows

    def update(self, name: str, rows, key: str) -> None:
        """Replace the stored rows whose `key` matches one of `rows` where they stand (the table's
        order kept: an article whose metadata changed stays in its place); one commit. Rows of
        keys not stored are not added."""
        new = self._rows(name, rows)
        if new.num_rows:
            self._rewrite(name, key, new.column(key).combine_chunks(), new, in_place=True)

    def _rewrite(
        self, name: str, key: str, values: pa.Array, new: pa.Table | None, in_place: bool = False
    ) -> int:
        """Drop rows whose `key` is in `values` from the files holding them (each rewritten, a row
        group at a time, in place of the old one), append `new`; one commit. With `in_place`,
        each dropped row is replaced by `new`'s row of its key, where it stood, and nothing is
        appended. Returns the rows dropped."""
        path = self._path(name)
        schema = self.corpus.stored_schema(name)
        dt = self.corpus.snapshot(name)
        wanted = sorted(set(values.to_pylist()) - {None})
        candidates = delta.files_maybe_holding(dt, key, wanted) if dt is not None else []
        hits = []
        for f in candidates:  # the key column only, to find the files to rewrite
            n = pc.sum(pc.is_in(pq.read_table(f, columns=[key]).column(0), value_set=values))
            if n.as_py():
                hits.append((f, n.as_py()))
        if not hits and new is None:
            return 0
        target = self._target(name, new if new is not None else schema.empty_table())
        if in_place:
            new = _conform(name, new, target)
        nxt = delta.latest_version(path) + 1
        private = name in PRIVATE_TABLES
        adds, writers = [], []
        try:
            for f, _ in hits:  # a rewritten file keeps its place in the table's order
                w = delta.FileWriter(path, nxt, target, private, delta.position(f.name, nxt))
                writers.append(w)
                pf = pq.ParquetFile(f)
                for g in range(pf.num_row_groups):
                    group = delta.read_conform(pf.read_row_group(g), schema, schema.names)
                    if in_place:
                        w.write(_replaced(_conform(name, group, target), new, key))
                        continue
                    keep = pc.invert(pc.fill_null(pc.is_in(group[key], value_set=values), False))
                    w.write(_conform(name, group.filter(keep), target))
                adds += w.finish()
            if new is not None and not in_place:
                w = delta.FileWriter(path, nxt, target, private)
                writers.append(w)
                w.write(_conform(name, new, target))
                adds += w.finish()
            removes = [delta.rel(path, f) for f, _ in hits]
            delta.commit(path, adds, removes, target, dt=self.corpus.snapshot(name))
        except BaseException:
            for w in writers:
                w.abort()
            raise
        self.touched.add(name)
        return sum(n for _, n in hits)


@dataclass(frozen=True)
class Planned:
    """One planned commit of a table (`Writer.plan`): small and picklable, so Dask workers can
    write its data files. `path` is absolute; on a cluster it must be the same folder on every
    machine (a shared file system), since workers write there and the driver commits."""

    name: str
    path: Path
    commit: int
    schema: pa.Schema
    private: bool

    def file_writer(self, part: int, files: int) -> delta.FileWriter:
        """A writer of files `part` .. `part + files - 1` of the commit (read in that order)."""
        return delta.FileWriter(
            self.path, self.commit, self.schema, self.private, (self.commit, part), files
        )

    def conform(self, table: pa.Table) -> pa.Table:
        """`table` as the table's columns and types (what `Writer.append` writes)."""
        return _conform(self.name, table, self.schema)


def _replaced(group: pa.Table, new: pa.Table, key: str) -> pa.Table:
    """`group` with each row whose `key` `new` holds replaced by `new`'s row, in its place."""
    idx = pc.index_in(group[key], value_set=new[key])
    found = idx.is_valid().to_numpy(zero_copy_only=False)
    if not found.any():
        return group
    rows = np.arange(group.num_rows)
    rows[found] = group.num_rows + idx.fill_null(0).to_numpy()[found]
    return pa.concat_tables([group, new]).take(pa.array(rows))


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


def _strings(values) -> pa.Array:
    """`values` (ids: a list, pandas or Arrow) as an Arrow string array, not copied if it is one."""
    arr = pa.array(values, from_pandas=True)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    return arr.cast(pa.string())


def _as_table(rows) -> pa.Table:
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, list):
        rows = pd.DataFrame(rows)
    rows = rows.reset_index(drop=True)
    return pa.Table.from_arrays(
        [column_array(rows[c]) for c in rows.columns], names=[str(c) for c in rows.columns]
    )
