"""compact --vacuum and migrate never destroy work: the vacuum runs under the lock and deletes
only our files, a killed migrate lets no work in before it is re-run, bad input is one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from _synth_corpus import synth_corpus
from conftest import article_rows
from spanbank.corpus import Corpus, maintenance
from spanbank.corpus.maintenance import compact
from spanbank.errors import CorpusError
from test_versions import FORMAT1, SRC, _legacy_tables, _ok, _one_line, _spanbank


def test_vacuum_runs_under_the_corpus_lock(tmp_path, monkeypatch):
    """It ran after the lock was released: a writer queued behind the compaction then wrote
    its files while the vacuum listed what to keep, and lost them (hunt D, finding 1)."""
    corpus = synth_corpus(tmp_path / "c", 20)
    with corpus.writer() as w:
        w.append("articles", article_rows({"late": "A later article."}))
    real, seen = maintenance._vacuum, []

    def vacuum(c, keep_days):
        with pytest.raises(CorpusError, match="being written by another spanbank process"):
            with Corpus(c.path).lock():
                pass
        seen.append(True)
        return real(c, keep_days)

    monkeypatch.setattr(maintenance, "_vacuum", vacuum)
    out = compact(corpus, vacuum=True, keep_days=0)
    assert seen == [True] and out["vacuum"]["files_removed"]["articles"] == 2
    assert len(corpus.read("articles")) == 21


def test_vacuum_keeps_files_it_did_not_write(tmp_path):
    """A user's own Parquet file inside a table's folder was deleted as unreferenced."""
    corpus = synth_corpus(tmp_path / "c", 10)
    mine = corpus.table_path("articles") / "raw_2024.parquet"
    pq.write_table(corpus.read_arrow("articles"), mine)
    compact(corpus, vacuum=True, keep_days=0)
    assert mine.exists()


def test_keep_days_nan_and_a_damaged_file_are_one_line(tmp_path):
    """`--keep-days nan` kept 0 days (every older version's files deleted); compact over a
    truncated data file was a traceback."""
    corpus = synth_corpus(tmp_path / "c", 10)
    with corpus.writer() as w:
        w.append("articles", article_rows({"late": "A later article."}))
    line = _one_line(
        _spanbank("--corpus", corpus.path, "compact", "--vacuum", "--keep-days", "nan")
    )
    assert line == "Error: --keep-days must be a number of days, 0 or more (not nan)"
    assert len(corpus.table_files("articles")) == 2
    last = corpus.table_files("articles")[-1]
    last.write_bytes(last.read_bytes()[:100])
    line = _one_line(_spanbank("--corpus", corpus.path, "compact"))
    assert line.startswith(f"Error: {corpus.table_path('articles')}: a data file is not readable")


KILLED_MIGRATE = """
import os, sys
from spanbank.corpus import Corpus, maintenance

real = os.rename

def rename(src, dst):
    real(src, dst)
    if os.path.basename(os.path.dirname(dst)) == ".format1":
        os._exit(9)  # as a SIGKILL, after the first old file moved away

maintenance.os.rename = rename
maintenance.migrate(Corpus(sys.argv[1]))
"""


def test_a_migrate_killed_while_moving_old_files_lets_no_work_in(tmp_path):
    """Killed after the config said format 2 but before every old file had moved, the corpus
    took new work, which the re-run then rebuilt away from the old files (hunt D, finding 3).
    The config now changes last: until the re-run the corpus is format 1, read by no command."""
    old = tmp_path / "old"
    shutil.copytree(FORMAT1, old)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MIGRATE, str(old)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert killed.returncode == 9
    assert "format 1" in _one_line(_spanbank("--corpus", old, "status"))
    (tmp_path / "in.jsonl").write_text('{"id": "new", "text": "Work after the kill."}\n')
    assert "format 1" in _one_line(_spanbank("--corpus", old, "ingest", tmp_path / "in.jsonl"))
    _ok(_spanbank("--corpus", old, "migrate"))
    corpus = Corpus(old)
    for name, rows in _legacy_tables(old / ".format1").items():
        cols = pq.read_schema(old / ".format1" / f"{name}.parquet").names
        assert corpus.read_arrow(name).select(cols).to_pylist() == rows, name


def test_migrate_never_rebuilds_a_table_holding_later_work(tmp_path):
    """An old file still beside a table that has moved on: one line, nothing rebuilt."""
    old = tmp_path / "old"
    shutil.copytree(FORMAT1, old)
    _ok(_spanbank("--corpus", old, "migrate"))
    corpus = Corpus(old)
    with corpus.writer() as w:
        w.append("articles", article_rows({"new": "Work after the migration."}))
    shutil.copy(old / ".format1" / "articles.parquet", old / "articles.parquet")
    line = _one_line(_spanbank("--corpus", old, "migrate"))
    assert "holds work written after a migration" in line
    assert "new" in set(corpus.read("articles")["article_id"])
