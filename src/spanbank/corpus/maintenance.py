"""Keeping a corpus in shape: compaction, vacuum past what exports pin, format 1 -> 2 migration."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from spanbank.corpus import delta
from spanbank.corpus.commits import COMMITS, versions_of
from spanbank.corpus.store import CONFIG_FILE, FORMAT, Corpus, Writer, write_bytes_atomic
from spanbank.corpus.tables import EXTRA_TABLES, ON_DEMAND_TABLES, PRIVATE_TABLES, TABLES, to_arrow
from spanbank.errors import CorpusError

PINS = "pins"
LEGACY_DIR = ".format1"


def compact(corpus: Corpus, vacuum: bool = False, keep_days: float = 7, wait=False) -> dict:
    """Rewrite each table's files into few (rows in the same order) and checkpoint its log;
    with `vacuum`, delete files no version since the oldest pinned export (or `keep_days`) needs."""
    if not keep_days >= 0:  # NaN too: no version would count as recent
        raise CorpusError(f"--keep-days must be a number of days, 0 or more (not {keep_days})")
    out: dict = {"tables": {}}
    with corpus.writer(wait) as w:
        for name in _tables(corpus):
            files = corpus.table_files(name)
            if len(files) > 1:
                _rewrite_all(corpus, w, name, files)
            dt = delta.open_table(corpus.table_path(name))
            dt.create_checkpoint()
            out["tables"][name] = {"files_before": len(files), "files_after": min(len(files), 1)}
        if vacuum:  # under the lock: a writer queued behind us is not between its files and commit
            out["vacuum"] = _vacuum(corpus, keep_days)
    return out


def _tables(corpus: Corpus) -> list[str]:
    names = [*TABLES, *EXTRA_TABLES, *ON_DEMAND_TABLES, PINS]
    return [n for n in names if corpus.has(n)]


def _rewrite_all(corpus: Corpus, w: Writer, name: str, files: list[Path]) -> None:
    """One commit: the table's rows, in order, in new files; the old files removed (kept on
    disk for older versions until a vacuum)."""
    path = corpus.table_path(name)
    schema = corpus.stored_schema(name)
    dt = delta.open_table(path)
    out = delta.FileWriter(path, dt.version() + 1, schema, name in PRIVATE_TABLES)
    try:
        for f in files:
            with delta.readable(path):  # a damaged file: one line, as any reader says it
                pf = pq.ParquetFile(f)
            for i in range(pf.num_row_groups):
                with delta.readable(path):
                    group = pf.read_row_group(i, use_threads=False)
                out.write(delta.read_conform(group, schema, schema.names))
        delta.commit(path, out.finish(), [delta.rel(path, f) for f in files], schema, False)
    except BaseException:
        out.abort()
        raise
    w.touched.add(name)


def pin(corpus: Corpus, commit: int | None, reason: str, locked: bool = False) -> None:
    """Record that an export was made of `commit`, so vacuum keeps what reading it needs
    (`locked`: the caller holds the corpus lock already)."""
    if commit is None or not os.access(corpus.path, os.W_OK):
        return
    with contextlib.nullcontext() if locked else corpus.lock(True):
        row = {"commit": commit, "pinned_at": pd.Timestamp.now(tz="UTC"), "reason": reason}
        Writer(corpus).append(PINS, pd.DataFrame([row]))


def _vacuum(corpus: Corpus, keep_days: float) -> dict:
    """Delete our data files that no version since the oldest pinned commit, nor any version of
    the last `keep_days`, reads; versions older than that can no longer be read. Only files we
    wrote, for a commit the table has made (a file of a later one is a writer's in progress;
    the caller holds the lock, so none should be), are ever deleted; others' files are kept."""
    log = corpus.commits()
    pins = corpus.read(PINS) if corpus.has(PINS) else None
    oldest = None
    if pins is not None and len(pins):
        pinned = log[log["commit"].isin(set(pins["commit"]))]
        if len(pinned):
            oldest = versions_of(pinned.iloc[0])
    since = (time.time() - keep_days * 86400) * 1000
    removed = {}
    for name in _tables(corpus):
        path = corpus.table_path(name)
        dt = delta.open_table(path)
        latest = dt.version()
        recent = [h["version"] for h in dt.history() if h["timestamp"] >= since]
        first = min([latest, *recent, *([oldest[name]] if oldest and name in oldest else [])])
        needed: set[str] = set()
        for v in range(first, latest + 1):
            dt.load_as_version(v)
            needed.update(Path(f).name for f in delta.data_files(dt))
        gone = [f for f in path.glob("*.parquet") if f.name not in needed and _ours(f, latest)]
        for f in gone:
            f.unlink()
        removed[name] = len(gone)
    return {
        "oldest_pinned_commit": None if oldest is None else int(pinned.iloc[0]["commit"]),
        "files_removed": removed,
    }


def _ours(f: Path, latest: int) -> bool:
    """A data file spanbank wrote for a commit at or before `latest`."""
    commit = delta.our_commit(f.name)
    return commit is not None and commit <= latest


def migrate(corpus: Corpus, wait=False) -> dict:
    """Convert a format-1 corpus (a Parquet file or folder per table) to Delta tables.

    Each table is written beside the old file and checked row for row; the old files then move
    to `.format1/` (nothing is deleted), and only then does the config say format 2. A killed
    migrate is re-run: it redoes the tables whose old files are still in place.
    """
    if corpus.format() == FORMAT and not any(_legacy(corpus)):
        raise CorpusError(f"corpus {corpus.path} is already in format {FORMAT}")
    corpus._format_ok = True  # the one command that opens a format-1 corpus
    counts = {}
    with corpus.lock(wait):
        for name, old in _legacy(corpus):
            table = _read_legacy(name, old)
            dest = corpus.table_path(name)
            if dest.exists():  # left by a killed migrate: format 1 has no such folders
                if not delta.is_table(dest):
                    raise CorpusError(f"{dest} exists and is not a table; move it away first")
                if (delta.latest_version(dest) or 0) > 1:  # more than the migration wrote
                    raise CorpusError(
                        f"{dest} holds work written after a migration, and {old} is still "
                        "here; move the one you do not want away, then re-run"
                    )
                shutil.rmtree(dest)
            tmp = corpus.path / f".migrate-{name}"
            shutil.rmtree(tmp, ignore_errors=True)
            delta.create_table(tmp, table.schema, name in PRIVATE_TABLES)
            out = delta.FileWriter(tmp, 1, table.schema, name in PRIVATE_TABLES)
            out.write(table)
            delta.commit(tmp, out.finish(), (), table.schema)
            os.rename(tmp, dest)
            got = delta.read_files(delta.data_files(delta.open_table(dest)), table.schema, None)
            if not got.equals(table):
                raise CorpusError(f"{name}: the migrated table differs from {old}; nothing changed")
            counts[name] = table.num_rows
        # the old files out of the way before the config says format 2: a migrate killed in
        # between leaves a format-1 corpus, which no other command writes to
        legacy = corpus.path / LEGACY_DIR
        legacy.mkdir(exist_ok=True)
        for _name, old in _legacy(corpus):
            os.rename(old, legacy / old.name)
        write_bytes_atomic(
            f"# spanbank corpus\nformat: {FORMAT}\n".encode(), corpus.path / CONFIG_FILE
        )
        corpus._create_missing_tables()
        corpus._record_commit("ok")  # the migration is commit 1 of the new format
    return {"tables": counts, "kept": str(corpus.path / LEGACY_DIR)}


def _legacy(corpus: Corpus) -> list[tuple[str, Path]]:
    names = [*TABLES, *EXTRA_TABLES, *ON_DEMAND_TABLES]
    return [
        (n, corpus.path / f"{n}.parquet")
        for n in names
        if (corpus.path / f"{n}.parquet").exists() and n != COMMITS
    ]


def _read_legacy(name: str, path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorpusError(f"{path}: not a readable Parquet file ({exc}); nothing changed") from None
    table = pa.Table.from_arrays(
        [c.cast(pa.string()) if pa.types.is_null(c.type) else c for c in table.columns],
        names=table.column_names,
    )  # Delta has no null type
    if name in TABLES:
        return to_arrow(name, table)
    declared = EXTRA_TABLES.get(name) or ON_DEMAND_TABLES[name]
    extra = [table.schema.field(c) for c in table.column_names if c not in declared.names]
    schema = pa.schema(list(declared) + extra)
    return delta.read_conform(table, schema, schema.names)
