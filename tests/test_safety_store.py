"""Store safety: the lock survives a deleted `.lock`, dead writers' leftovers go, adjudicate reads
under the lock, every OS error is one line, a read-only corpus stays readable, every table exists
from `init`, annotators.parquet is private, and nothing is created outside a corpus."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from conftest import article_rows, make_corpus
from spanbank.corpus.store import Corpus
from spanbank.corpus.tables import EXTRA_TABLES, TABLES
from spanbank.errors import CorpusError, LockError
from spanbank.gold import run_adjudication
from test_adjudicate import _ann, _full, build_corpus

FIGURES: dict = {}
ROOT = os.geteuid() == 0


def _spanbank(*args, cwd=None, preexec_fn=None, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    env.pop("SPANBANK_CORPUS", None)
    return subprocess.run(
        [sys.executable, "-m", "spanbank", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


def _one_line_error(res: subprocess.CompletedProcess) -> str:
    """The command failed with exactly one `Error: ...` line and no traceback."""
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    return lines[0]


def _temp_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.endswith(".tmp"))


# -- 12.3: the lock cannot be deleted under its holder ---------------------------------------

HOLD = (
    "import sys\n"
    "from spanbank.corpus import Corpus\n"
    "from conftest import article_rows\n"
    "with Corpus(sys.argv[1]).writer() as w:\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.readline()\n"
    "    w.append('articles', article_rows({sys.argv[2]: 'written by the first writer'}))\n"
)


def _holder(corpus: Corpus, article_id: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[1] / "src"), str(Path(__file__).parent)]
        ),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(corpus.path), article_id],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_deleting_the_lock_file_does_not_let_a_second_writer_in(tmp_path, how):
    corpus = make_corpus(tmp_path / "corpus", {"a0": "first article"})
    trials, excluded = 10, 0
    for i in range(trials):
        proc = _holder(corpus, f"first{i}")
        try:
            (corpus.path / ".lock").unlink()
            if how == "replaced":
                (corpus.path / ".lock").write_text("")
            with pytest.raises(LockError), Corpus(corpus.path).writer():
                pass
            excluded += 1
            # a waiting writer goes in only after the holder's rows are stored, and keeps them
            done = threading.Event()

            def second(i=i, done=done):
                with Corpus(corpus.path).writer(wait=60) as w:
                    w.append(
                        "articles", article_rows({f"second{i}": "written by the second writer"})
                    )
                done.set()

            t = threading.Thread(target=second)
            t.start()
            proc.communicate("go\n", timeout=60)
            t.join(60)
            assert done.is_set() and proc.returncode == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    ids = set(corpus.read("articles")["article_id"])
    lost = sum(f"{w}{i}" not in ids for i in range(trials) for w in ("first", "second"))
    assert (excluded, lost) == (trials, 0)
    FIGURES[f"lock_file_{how}"] = {
        "trials": trials,
        "second_writer_excluded": excluded,
        "rows_lost": lost,
    }
    print("\nSTORE FIGURES " + json.dumps(FIGURES))


def test_lock_error_names_the_holder_even_without_a_lock_file(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", {"a0": "x"})
    proc = _holder(corpus, "h")
    try:
        with pytest.raises(LockError, match=f"pid {proc.pid}\\)"), Corpus(corpus.path).writer():
            pass
        (corpus.path / ".lock").unlink()
        with (
            pytest.raises(LockError, match="another spanbank process"),
            Corpus(corpus.path).writer(),
        ):
            pass
    finally:
        proc.communicate("go\n", timeout=60)


# -- 12.4: leftovers of killed writers -------------------------------------------------------


def _kill_when(
    proc: subprocess.Popen, folder: Path, pattern: str, timeout: float = 120, count: int = 1
) -> str:
    """SIGKILL `proc` as soon as `count` files matching `pattern` are in `folder`; the first name."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(p.name for p in folder.glob(pattern))
        if len(found) >= count:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return found[0]
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no {pattern} appeared (exit {proc.poll()})")


def test_a_killed_ingest_leaves_a_spool_the_next_writer_removes(tmp_path):
    corpus = Corpus.init(tmp_path / "corpus")
    big = tmp_path / "big.jsonl"
    with big.open("w") as fh:  # more rows than one batch: the ingest spills to its spool file
        for i in range(120_000):
            fh.write(f'{{"id": "x{i}", "text": "article number {i}"}}\n')
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    trials = int(os.environ.get("SPANBANK_CRASH_TRIALS", 3))
    left = removed = 0
    for k in range(trials):
        proc = subprocess.Popen(
            [sys.executable, "-m", "spanbank", "--corpus", str(corpus.path), "ingest", str(big)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        spool = _kill_when(proc, corpus.path, ".ingest.*.tmp")
        assert str(proc.pid) in spool  # the owner is named
        assert _temp_files(corpus.path) == [spool]
        left += 1
        res = _spanbank("--corpus", corpus.path, "ingest", _small_file(tmp_path, f"s{k}"))
        assert res.returncode == 0, res.stderr
        assert _temp_files(corpus.path) == []
        removed += 1
    assert corpus.read("articles")["article_id"].tolist() == [f"s{k}" for k in range(trials)]
    FIGURES["killed_ingest"] = {
        "trials": trials,
        "spools_left_by_kill": left,
        "removed_by_next_writer": removed,
    }
    print("\nSTORE FIGURES " + json.dumps(FIGURES))


def _small_file(tmp_path: Path, article_id: str = "s1") -> Path:
    f = tmp_path / f"{article_id}.jsonl"
    f.write_text(f'{{"id": "{article_id}", "text": "small"}}\n')
    return f


KILLED_TABLE_WRITE = (
    "import sys, time\n"
    "import pyarrow.parquet as pq\n"
    "from spanbank.corpus import Corpus\n"
    "real = pq.ParquetWriter.write_table\n"
    "def stuck(self, table, **kw):\n"
    "    real(self, table, **kw)\n"
    "    time.sleep(600)\n"
    "pq.ParquetWriter.write_table = stuck\n"
    "rows = [dict(annotation_id='a', from_span_id='b', to_span_id='c', label='said_by')]\n"
    "with Corpus(sys.argv[1]).writer() as w:\n"
    "    w.append('relations', rows)\n"
)


def test_a_killed_table_write_leaves_a_file_the_next_writer_removes(tmp_path):
    corpus = Corpus.init(tmp_path / "corpus")
    with corpus.writer() as w:
        w.append(
            "relations", [dict(annotation_id="x", from_span_id="y", to_span_id="z", label="cue")]
        )
    kept = corpus.table_files("relations")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_TABLE_WRITE, str(corpus.path)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )
    _kill_when(proc, corpus.table_path("relations"), "*.parquet", count=len(kept) + 1)
    assert corpus.read_arrow("relations").num_rows == 1  # never committed: not part of the table
    # files an older spanbank left (no pid in the name) go too; a live process's spool stays
    old_style = corpus.path / ".ingest.k3j_9zq1.tmp"
    old_style.write_bytes(b"x")
    live = corpus.path / f".ingest.{os.getpid()}.abcd1234.tmp"
    live.write_bytes(b"x")
    with corpus.writer():
        pass
    assert _temp_files(corpus.path) == [live.name]
    assert sorted(corpus.table_path("relations").glob("*.parquet")) == kept
    assert corpus.read("relations")["annotation_id"].tolist() == ["x"]  # the old table is intact


# -- 12.7: adjudicate reads under the lock ---------------------------------------------------


def test_adjudicate_waiting_for_the_lock_uses_what_the_holder_wrote(tmp_path, monkeypatch):
    corpus = build_corpus(tmp_path / "corpus")
    # a2: ann drew the quote, bob did not; with cat's annotation the quote wins 2 of 3
    waiting = threading.Event()
    real_sleep = time.sleep

    def sleep(s):  # the lock's retry loop: adjudicate is now waiting for the lock
        waiting.set()
        real_sleep(s)

    def holder():
        with Corpus(corpus.path).writer() as w:
            held.set()
            assert waiting.wait(30)
            spans, rels = _full("h9", "a2")
            w.append("annotations", pd.DataFrame([_ann("h9", "a2", "cat")]))
            w.append("spans", pd.DataFrame(spans))
            w.append("relations", pd.DataFrame(rels))

    held = threading.Event()
    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(30)
    monkeypatch.setattr("spanbank.corpus.store.time.sleep", sleep)
    try:
        run_adjudication(corpus, "majority", project="news", wait=60)
    finally:
        waiting.set()
        t.join(60)
    gold = corpus.read("spans")
    gold = gold[gold["annotation_id"] == "gold-majority-news-a2"]
    assert "QUOTE" in set(gold["label"])


# -- 12.11: OS errors are one line; a read-only corpus stays readable --------------------------


@contextlib.contextmanager
def _read_only_view(src: Path, dest: Path):
    """`dest`: a read-only bind mount of `src` (root ignores file modes, so chmod would not do)."""
    dest.mkdir()
    subprocess.run(["mount", "--bind", str(src), str(dest)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(dest)], check=True)
        yield dest
    finally:
        subprocess.run(["umount", str(dest)], check=True)


def _can_mount() -> bool:
    return ROOT and subprocess.run(["which", "mount"], capture_output=True).returncode == 0


needs_mount = pytest.mark.skipif(
    not _can_mount(), reason="needs root to mount a read-only or tiny file system"
)


@needs_mount
def test_read_only_corpus_is_readable_and_writes_say_what_to_do(tmp_path):
    corpus = build_corpus(tmp_path / "corpus")
    (corpus.path / ".lock").unlink(missing_ok=True)  # a copy without it must be readable too
    before = _files(corpus.path)
    with _read_only_view(corpus.path, tmp_path / "ro") as ro:
        for args in (
            ["status"],
            ["agree", "--bootstrap", "0"],
            ["export", "--format", "jsonl", "--out", tmp_path / "out"],
        ):
            res = _spanbank("--corpus", ro, *args)
            assert res.returncode == 0, (args, res.stderr)
        assert (tmp_path / "out" / "manifest.json").is_file()
        url = ["--url", "http://127.0.0.1:9", "--api-key", "k"]
        for args in (
            ["ingest", _small_file(tmp_path)],
            ["adjudicate"],
            ["push", "--project", "news", *url],
            ["pull", "--project", "news", *url],
        ):
            line = _one_line_error(_spanbank("--corpus", ro, *args))
            assert "read-only" in line and (
                "make it writable" in line or "copy it elsewhere" in line
            ), (args, line)
    assert _files(corpus.path) == before


def _files(root: Path) -> dict[str, bytes]:
    """Every file under a corpus (tables are folders), by path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@needs_mount
def test_disk_full_is_one_line_and_leaves_the_corpus_as_it_was(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        corpus = make_corpus(small / "corpus", {"a0": "first"})
        before = _files(corpus.path)
        big = tmp_path / "big.txt"
        big.write_text("title\n" + os.urandom(1_500_000).hex())  # incompressible, past the 1 MB
        line = _one_line_error(_spanbank("--corpus", corpus.path, "ingest", big))
        assert "no space left" in line and "free some space" in line, line
        assert _files(corpus.path).keys() - {".lock"} == before.keys() - {".lock"}
        assert corpus.read("articles")["article_id"].tolist() == ["a0"]
        assert _temp_files(corpus.path) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_file_too_large_is_one_line(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", {"a0": "first"})
    before = _files(corpus.path)
    big = tmp_path / "big.txt"
    big.write_text("title\n" + os.urandom(1_500_000).hex())

    def limit():  # what `ulimit -f 1000` does
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    line = _one_line_error(_spanbank("--corpus", corpus.path, "ingest", big, preexec_fn=limit))
    assert "largest file allowed" in line and "ulimit -f" in line, line
    assert _files(corpus.path).keys() - {".lock"} == before.keys() - {".lock"}
    assert corpus.read("articles")["article_id"].tolist() == ["a0"]
    assert _temp_files(corpus.path) == []


def test_name_too_long_is_one_line(tmp_path):
    line = _one_line_error(_spanbank("--corpus", tmp_path / ("c" * 300), "init"))
    assert "file name too long" in line and "shorter" in line, line


# -- 12.14: every table exists from init ------------------------------------------------------


def test_every_table_exists_empty_and_typed_from_init(tmp_path):
    res = _spanbank("init", tmp_path / "corpus")
    assert res.returncode == 0, res.stderr
    corpus = Corpus(tmp_path / "corpus")
    for name, schema in {**TABLES, **EXTRA_TABLES}.items():
        stored = DeltaTable(str(corpus.table_path(name))).schema().to_arrow()
        assert pa.schema(stored).names[: len(schema)] == schema.names, name
        res = _spanbank("--corpus", corpus.path, "sql", f"SELECT * FROM {name}", "--json")
        assert res.returncode == 0 and json.loads(res.stdout) == [], (name, res.stderr)


def test_a_corpus_from_older_code_gets_its_missing_tables_on_the_next_write(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", {"a0": "first"})
    for name in ("relations", "rejects", "annotators", "conflicts"):
        shutil.rmtree(corpus.table_path(name))  # as a corpus made before tables existed from init
    assert corpus.read_arrow("relations").schema == TABLES["relations"]  # read as empty meanwhile
    assert corpus.read_arrow("conflicts").schema == EXTRA_TABLES["conflicts"]
    res = _spanbank("--corpus", corpus.path, "ingest", _small_file(tmp_path))
    assert res.returncode == 0, res.stderr
    assert corpus.missing_tables() == []


# -- 13.6: annotators.parquet is private --------------------------------------------------------


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _modes(path: Path) -> set[int]:
    """Modes of a table's data files."""
    return {_mode(f) for f in path.glob("*.parquet")}


def test_annotators_table_is_owner_only_through_rewrites(tmp_path):
    corpus = Corpus.init(tmp_path / "corpus")
    path = corpus.table_path("annotators")
    assert _mode(path) == 0o700
    row = {"annotator": "p1", "ls_url": "http://x", "ls_user_id": 1, "email": "a@example.org"}
    with corpus.writer() as w:
        w.append("annotators", [row])
    assert _mode(path) == 0o700 and _modes(path) == {0o600}
    with corpus.writer() as w:
        w.replace("annotators", [row, dict(row, annotator="p2", ls_user_id=2)])
        w.append("annotators", [dict(row, annotator="p3", ls_user_id=3)])
        w.upsert("annotators", [dict(row, annotator="p3", ls_user_id=4)], "annotator")
    assert _modes(path) == {0o600} and len(corpus.read("annotators")) == 3
    os.chmod(path, 0o755)  # as a copy might leave it
    with corpus.writer():
        pass
    assert _mode(path) == 0o700
    make_corpus(tmp_path / "other", {"a0": "first"})
    assert _modes(tmp_path / "other" / "articles") == {0o666 & ~_umask()}


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


# -- 14.5: outside a corpus ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "a.txt"],
        ["status"],
        ["agree"],
        ["adjudicate"],
        ["export", "--format", "jsonl"],
        ["preannotate", "--eval"],
        ["push", "--project", "news", "--url", "http://127.0.0.1:9", "--api-key", "k"],
        ["pull", "--project", "news", "--url", "http://127.0.0.1:9", "--api-key", "k"],
    ],
)
def test_commands_outside_a_corpus_say_so_and_create_nothing(tmp_path, args):
    (tmp_path / "a.txt").write_text("title\ntext\n")
    line = _one_line_error(_spanbank(*args, cwd=tmp_path))
    assert line.startswith("Error: no corpus at corpus;"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_library_readers_and_writers_refuse_a_missing_corpus(tmp_path):
    corpus = Corpus(tmp_path / "nowhere")
    for call in (
        lambda: corpus.read("annotations"),
        lambda: corpus.writer().__enter__(),
        lambda: corpus.lock().__enter__(),
    ):
        with pytest.raises(CorpusError, match="no corpus at"):
            call()
    assert not corpus.path.exists()
    # hunt O, F2: an existing folder that is no corpus was taken for one, and written into
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "readme.txt").write_text("mine")
    for call in (
        lambda: Corpus(folder).read("articles"),
        lambda: Corpus(folder).writer().__enter__(),
    ):
        with pytest.raises(CorpusError, match="no corpus at"):
            call()
    assert [p.name for p in folder.iterdir()] == ["readme.txt"]


@pytest.mark.parametrize("nth", [1, 2])
def test_an_interrupt_raised_right_after_a_commit_keeps_the_commit_s_files(
    tmp_path, monkeypatch, nth
):
    """Hunt O, F5: SIGTERM (or Ctrl-C) during a Delta commit is raised in Python as the call
    returns; the writer then took the commit for failed and deleted the files its log entry
    names, and every later command said `a data file is not readable`. Here the nth commit
    raises KeyboardInterrupt once it went through, as the signal would."""
    from spanbank.corpus.ingest import ingest_paths

    corpus = make_corpus(tmp_path / "c", {"a1": "First text."})
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"b{i}", "text": f"Text {i}."}) + "\n" for i in range(5))
    )
    real, calls = DeltaTable.create_write_transaction, []

    def then_interrupt(self, *a, **kw):
        out = real(self, *a, **kw)
        calls.append(1)
        if len(calls) == nth:
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(DeltaTable, "create_write_transaction", then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        ingest_paths(corpus, [src])
    monkeypatch.undo()
    again = Corpus(tmp_path / "c")
    for name in ("articles", "commits"):
        again.read(name)  # every file the log names is there
    summary = ingest_paths(again, [src])
    assert sorted(again.read("articles")["article_id"]) == ["a1", "b0", "b1", "b2", "b3", "b4"]
    assert summary.added + summary.unchanged == 5


def test_output_cut_short_by_its_reader_is_no_error(tmp_path):
    """Hunt O, F15: `spanbank sql ... --csv | head -1` ended with `Error: Broken pipe`."""
    corpus = make_corpus(tmp_path / "c", {f"a{i}": f"Text {i}. " * 50 for i in range(3000)})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    cmd = [sys.executable, "-m", "spanbank", "--corpus", str(corpus.path), "sql"]
    proc = subprocess.Popen(
        [*cmd, "select article_id, text from articles", "--csv"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline() == b"article_id,text\r\n"  # csv.writer ends rows so
    proc.stdout.close()  # as `head -1` does
    assert proc.wait(120) == 1 and proc.stderr.read() == b""
