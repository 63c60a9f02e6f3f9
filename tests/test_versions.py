"""Corpus format 2: every writing command a commit, `--as-of` reads the past, exports reproduce
byte for byte, compaction keeps order and history, vacuum keeps what exports pin, format 1
migrates without loss, and `spanbank sql` queries the tables."""

from __future__ import annotations

import filecmp
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from _synth_corpus import synth_corpus
from conftest import article_rows
from spanbank.corpus import Corpus
from spanbank.corpus.commits import command_line
from spanbank.corpus.maintenance import compact
from spanbank.corpus.tables import EXTRA_TABLES, TABLES, to_arrow
from spanbank.errors import CorpusError

SRC = Path(__file__).parents[1] / "src"
FORMAT1 = Path(__file__).parent / "data" / "format1-corpus"


def _spanbank(*args, env=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    env.pop("SPANBANK_CORPUS", None)
    return subprocess.run(
        [sys.executable, "-m", "spanbank", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _ok(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, res.stderr
    return res.stdout


def _one_line(res: subprocess.CompletedProcess) -> str:
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    return lines[0]


def _same_tree(a: Path, b: Path) -> list[str]:
    """Files that differ (or exist on one side only) between two folders."""
    cmp = filecmp.dircmp(a, b)
    out = [*cmp.left_only, *cmp.right_only, *cmp.diff_files, *cmp.funny_files]
    for sub in cmp.common_dirs:
        out += [f"{sub}/{x}" for x in _same_tree(a / sub, b / sub)]
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return sorted(set(out) | set(mismatch) | set(errors))


# -- commits ------------------------------------------------------------------------------------


def test_each_writing_command_is_one_commit_and_readers_make_none(tmp_path):
    c = tmp_path / "c"
    _ok(_spanbank("--corpus", c, "init"))
    (tmp_path / "a.txt").write_text("Title\nBody one.")
    _ok(_spanbank("--corpus", c, "ingest", tmp_path / "a.txt"))
    _ok(_spanbank("--corpus", c, "status"))
    _ok(_spanbank("--corpus", c, "sql", "SELECT count(*) FROM articles"))
    _ok(_spanbank("--corpus", c, "ingest", tmp_path / "a.txt"))  # nothing new: no commit
    log = json.loads(_ok(_spanbank("--corpus", c, "log", "--json")))
    assert [r["commit"] for r in log] == [1]
    assert log[0]["command"].endswith(f"--corpus {c} ingest {tmp_path / 'a.txt'}")
    assert log[0]["status"] == "ok"
    versions = json.loads(log[0]["versions"])
    assert versions["articles"] == 1 and set(versions) >= set(TABLES) - {"commits"}
    assert "ingest" in _ok(_spanbank("--corpus", c, "log"))


def test_the_command_line_keeps_no_secret(monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "tok-12345678")
    argv = [
        "/usr/bin/spanbank",
        "push",
        "--api-key",
        "s3cret-value",
        "--password=hunter2",
        "--url",
        "http://x/?key=tok-12345678",
        "--project",
        "news",
    ]
    line = command_line(argv)
    for secret in ("s3cret-value", "hunter2", "tok-12345678"):
        assert secret not in line
    assert line.startswith("spanbank push --api-key *** --password=*** --url http://x/?key=***")
    assert line.endswith("--project news")


def test_the_command_line_keeps_no_email(tmp_path, monkeypatch):
    """docs/SECURITY.md: an annotator's e-mail is kept only in `annotators`. `commits.command`
    kept `ingest --annotator bob@corp.example` as typed (shown by `log`, and by `sql` without
    --private); it now holds the pseudonym the annotator was stored under."""
    from spanbank.corpus.ingest import ingest_paths

    email = "bob.private@corp.example"
    assert command_line(["spanbank", "ingest", "--annotator", email, f"--x={email}"]) == (
        "spanbank ingest --annotator *** --x=***"
    )
    line = command_line(["spanbank", "--annotator", "bob@host"], pseudonym=str.upper)
    assert line == "spanbank --annotator BOB@HOST"
    d = tmp_path / "brat"
    d.mkdir()
    (d / "a1.txt").write_text("Bob said hello there.")
    (d / "a1.ann").write_text("T1\tSPEAKER 0 3\tBob\n")
    corpus = Corpus.init(tmp_path / "c")
    argv = ["/x/spanbank", "--corpus", "c", "ingest", "--format", "brat", "brat"]
    monkeypatch.setattr(sys, "argv", [*argv, "--annotator", email])
    ingest_paths(corpus, [d], fmt="brat", annotator=email)
    (who,) = corpus.read("annotators")["annotator"]
    commands = corpus.read("commits")["command"].tolist()
    assert commands[-1] == f"spanbank --corpus c ingest --format brat brat --annotator {who}"
    assert who.startswith("ann-") and not any("@" in c for c in commands)
    # hunt O, F10: a Label Studio user's e-mail (`adjudicate --strategy prefer:EMAIL`) was logged
    # as its brat-basis pseudonym, which no annotator has; now as the user's own
    users = pd.DataFrame({"annotator": ["ann-0f1e2d3c"], "email": ["Dan.X@people.example"]})
    with corpus.writer() as w:
        w.append("annotators", users.reindex(columns=TABLES["annotators"].names))
    assert corpus._command_pseudonym("dan.x@people.example") == "ann-0f1e2d3c"
    assert corpus._command_pseudonym("nobody@people.example").startswith("ann-")


def test_a_killed_command_s_writes_get_an_interrupted_commit_naming_it(tmp_path):
    """A writer killed after its writes leaves `.writing` (its command line): the next writer
    records them as that command, `interrupted` (they were `recovered`, no command named)."""
    corpus = Corpus.init(tmp_path / "c")
    with corpus.writer() as w:
        w.append("articles", article_rows({"a1": "One."}))
    code = (
        "import os, sys\n"
        "from spanbank.corpus import Corpus\n"
        "from conftest import article_rows\n"
        "with Corpus(sys.argv[1]).writer() as w:\n"
        "    w.append('articles', article_rows({'a2': 'Two.'}))\n"
        "    os._exit(9)  # killed before its commit row\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{Path(__file__).parent}"}
    res = subprocess.run([sys.executable, "-c", code, str(corpus.path)], env=env)
    assert res.returncode == 9
    with corpus.writer():
        pass
    log = corpus.commits()
    assert log["status"].tolist() == ["ok", "interrupted"]
    assert log["command"].iloc[1].endswith(f"-c {corpus.path}"), log["command"].iloc[1]
    assert not (corpus.path / ".writing").exists()
    assert Corpus(corpus.path, as_of=1).read("articles")["article_id"].tolist() == ["a1"]
    assert Corpus(corpus.path, as_of=2).read("articles")["article_id"].tolist() == ["a1", "a2"]


# -- as of ----------------------------------------------------------------------------------------


def test_as_of_reads_each_table_as_it_was(tmp_path):
    corpus = Corpus.init(tmp_path / "c")
    with corpus.writer() as w:
        w.append("articles", article_rows({"a1": "One.", "a2": "Two."}))
    with corpus.writer() as w:
        w.append("articles", article_rows({"a3": "Three."}))
        w.delete("articles", "article_id", ["a1"])
    first = Corpus(corpus.path, as_of=1)
    assert first.read("articles")["article_id"].tolist() == ["a1", "a2"]
    assert corpus.read("articles")["article_id"].tolist() == ["a2", "a3"]
    stamp = corpus.commits()["committed_at"].iloc[0]
    when = (stamp + pd.Timedelta(microseconds=1)).isoformat()
    assert Corpus(corpus.path, as_of=when).read("articles")["article_id"].tolist() == ["a1", "a2"]
    with pytest.raises(CorpusError, match="read-only"), first.writer():
        pass
    with pytest.raises(CorpusError, match=r"no commit 9; `spanbank log` lists them \(1 to 2\)"):
        Corpus(corpus.path, as_of=9)
    with pytest.raises(CorpusError, match="no commit at or before 2001"):
        Corpus(corpus.path, as_of="2001-01-01")
    with pytest.raises(CorpusError, match="neither a commit number nor a time"):
        Corpus(corpus.path, as_of="yesterday-ish")
    # before, "-1" was read as the year -1 and "" as no time ("no commit at or before NaT")
    with pytest.raises(CorpusError, match=r"no commit -1; `spanbank log` lists them"):
        Corpus(corpus.path, as_of="-1")
    for nothing in ("", " ", "NaT"):
        with pytest.raises(CorpusError, match="neither a commit number nor a time"):
            Corpus(corpus.path, as_of=nothing)
    line = _one_line(_spanbank("--corpus", corpus.path, "status", "--as-of", "7"))
    assert "no commit 7" in line


def test_export_as_of_its_commit_is_byte_identical_after_edits_and_compaction(tmp_path):
    corpus = synth_corpus(tmp_path / "c", 60)
    fmt = "jsonl,conll,spacy,hf,brat,quotes"
    _ok(_spanbank("--corpus", corpus.path, "export", "--format", fmt, "--out", tmp_path / "e1"))
    manifest = json.loads((tmp_path / "e1" / "manifest.json").read_text())
    assert manifest["corpus_commit"] == 1
    # the corpus moves on: more articles, an edit, a deletion, a compaction
    more = synth_corpus(tmp_path / "more", 70, seed=5)
    gone = corpus.read("annotations")["annotation_id"].iloc[0]
    with corpus.writer() as w:
        for name in ("articles", "spans", "relations", "annotations"):
            w.append(name, more.read(name))
        for name in ("spans", "relations", "annotations"):
            w.delete(name, "annotation_id", [gone])
    compact(corpus)
    _ok(_spanbank("--corpus", corpus.path, "export", "--format", fmt, "--out", tmp_path / "now"))
    assert _same_tree(tmp_path / "e1", tmp_path / "now") != []  # the corpus did change
    _ok(
        _spanbank(
            "--corpus",
            corpus.path,
            "export",
            "--format",
            fmt,
            "--as-of",
            1,
            "--out",
            tmp_path / "e2",
        )
    )
    assert _same_tree(tmp_path / "e1", tmp_path / "e2") == []
    # agree and status read the past too
    past = json.loads(_ok(_spanbank("--corpus", corpus.path, "status", "--json", "--as-of", 1)))
    assert past["articles"] == 60


def test_vacuum_keeps_what_a_pinned_export_needs(tmp_path):
    corpus = synth_corpus(tmp_path / "c", 30)  # commit 1: spans in file A
    first = corpus.read("annotations")["annotation_id"].iloc[0]
    with (
        corpus.writer() as w
    ):  # commit 2: A rewritten without one annotation's spans (A is history)
        for name in ("spans", "relations"):
            w.delete(name, "annotation_id", [first])
    _ok(_spanbank("--corpus", corpus.path, "export", "--format", "jsonl", "--out", tmp_path / "e1"))
    assert json.loads((tmp_path / "e1" / "manifest.json").read_text())["corpus_commit"] == 2
    with corpus.writer() as w:  # commit 3, then a compaction that retires every file
        w.append("articles", article_rows({"extra-2": "Newer."}))
    before = set(corpus.table_path("spans").glob("*.parquet"))
    out = json.loads(
        _ok(_spanbank("--corpus", corpus.path, "compact", "--vacuum", "--keep-days", 0, "--json"))
    )
    assert out["vacuum"]["oldest_pinned_commit"] == 2
    after = set(corpus.table_path("spans").glob("*.parquet"))
    # commit 1's file A (only read by commit 1) went; commits 2 and 3's files stay
    assert out["vacuum"]["files_removed"]["spans"] == len(before - after) == 1
    assert all(len(corpus.table_files(n)) <= 1 for n in TABLES if n != "commits")
    _ok(
        _spanbank(
            "--corpus",
            corpus.path,
            "export",
            "--format",
            "jsonl",
            "--as-of",
            2,
            "--out",
            tmp_path / "e2",
        )
    )
    assert _same_tree(tmp_path / "e1", tmp_path / "e2") == []
    line = _one_line(_spanbank("--corpus", corpus.path, "status", "--as-of", 1))
    assert "not readable" in line  # its files were vacuumed: said in one line


def test_an_export_killed_right_after_its_swap_is_pinned(tmp_path):
    """The pin was written after the swap and the lock's release: a kill in between left a
    whole export whose commit vacuum then deleted, and `export --as-of` it failed."""
    corpus = synth_corpus(tmp_path / "c", 20)  # commit 1
    with corpus.writer() as w:  # commit 2
        w.append("articles", article_rows({"extra-1": "Newer."}))
    code = (
        "import os, sys\n"
        "from spanbank import outdir\n"
        "from spanbank.corpus import Corpus\n"
        "from spanbank.export import export_dataset\n"
        "swap = outdir.swap_into_place\n"
        "def killed(tmp, out):\n"
        "    swap(tmp, out)\n"
        "    os._exit(9)  # SIGKILLed the moment the export is in place\n"
        "outdir.swap_into_place = killed\n"
        "export_dataset(Corpus(sys.argv[1]), 'jsonl', sys.argv[2])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    e1 = tmp_path / "e1"
    res = subprocess.run([sys.executable, "-c", code, str(corpus.path), str(e1)], env=env)
    assert res.returncode == 9
    from spanbank.export import verify

    assert verify(e1) == []
    commit = json.loads((e1 / "manifest.json").read_text())["corpus_commit"]
    assert commit == 2 and corpus.read("pins")["commit"].tolist() == [2]
    with corpus.writer() as w:  # commit 3, then a vacuum of all that no pin keeps
        w.append("articles", article_rows({"extra-2": "Newest."}))
    _ok(_spanbank("--corpus", corpus.path, "compact", "--vacuum", "--keep-days", 0))
    again = ("export", "--format", "jsonl", "--as-of", commit, "--out", tmp_path / "e2")
    _ok(_spanbank("--corpus", corpus.path, *again))
    assert _same_tree(e1, tmp_path / "e2") == []


# -- compaction and concurrency ----------------------------------------------------------------


def _append_many(path: str, tag: str, n: int) -> None:
    corpus = Corpus(path)
    for i in range(n):
        with corpus.writer(wait=True) as w:
            w.append("articles", article_rows({f"{tag}-{i:03d}": f"Text {tag} {i}."}))


def _compact_many(path: str, n: int) -> None:
    corpus = Corpus(path)
    while len(corpus.read("articles")) < 10:  # start once the appenders are at work
        time.sleep(0.05)
    for _ in range(n):
        compact(corpus, wait=True)
        time.sleep(0.1)


def test_appenders_and_a_compaction_race_without_loss_or_duplicates(tmp_path):
    corpus = Corpus.init(tmp_path / "c")
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_append_many, args=(str(corpus.path), "x", 40)),
        ctx.Process(target=_append_many, args=(str(corpus.path), "y", 40)),
        ctx.Process(target=_compact_many, args=(str(corpus.path), 8)),
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    ids = corpus.read("articles")["article_id"].tolist()
    assert len(ids) == len(set(ids)) == 80
    for tag in ("x", "y"):  # each writer's rows in the order it appended them
        mine = [i for i in ids if i.startswith(tag)]
        assert mine == sorted(mine)
    log = corpus.commits()
    assert log["commit"].tolist() == list(range(1, len(log) + 1))
    assert len(log) > 80  # the appends and at least one compaction that had files to merge


# -- migration -----------------------------------------------------------------------------------


def _legacy_tables(folder: Path) -> dict[str, list[dict]]:
    out = {}
    for f in sorted(folder.glob("*.parquet")):
        table = pq.read_table(f)
        if f.stem in TABLES:
            table = to_arrow(f.stem, table)
        out[f.stem] = table.to_pylist()
    return out


def test_migrate_a_format1_corpus_made_by_the_previous_code(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(FORMAT1, old)
    want = _legacy_tables(FORMAT1)
    assert set(want) == set(TABLES) - {"commits"} | set(EXTRA_TABLES)
    line = _one_line(_spanbank("--corpus", old, "status"))
    assert "format 1" in line and "migrate" in line
    _ok(_spanbank("--corpus", old, "migrate"))
    corpus = Corpus(old)
    for name, rows in want.items():
        got = corpus.read_arrow(name)
        cols = pq.read_schema(FORMAT1 / f"{name}.parquet").names
        assert got.select(cols).to_pylist() == rows, name
    assert sorted(p.name for p in (old / ".format1").iterdir()) == sorted(
        f"{n}.parquet" for n in want
    )
    assert corpus.commits()["command"].iloc[0].endswith("migrate")
    assert {f.stat().st_mode & 0o777 for f in corpus.table_files("annotators")} == {0o600}
    n = json.loads(
        _ok(_spanbank("--corpus", old, "sql", "SELECT count(*) AS n FROM spans", "--json"))
    )
    assert n == [{"n": len(want["spans"])}]
    assert "already in format 2" in _one_line(_spanbank("--corpus", old, "migrate"))


def test_a_killed_migrate_is_rerun_to_the_same_result(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(FORMAT1, old)
    code = (
        "import os, sys\n"
        "from spanbank.corpus import Corpus, delta\n"
        "from spanbank.corpus.maintenance import migrate\n"
        "real, n = delta.commit, [0]\n"
        "def dying(*a, **k):\n"
        "    n[0] += 1\n"
        "    if n[0] == 4:\n"
        "        os._exit(9)\n"
        "    return real(*a, **k)\n"
        "delta.commit = dying\n"
        "migrate(Corpus(sys.argv[1]))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(old)], env={**os.environ, "PYTHONPATH": str(SRC)}
    )
    assert res.returncode == 9
    assert "format 1" in _one_line(_spanbank("--corpus", old, "status"))
    _ok(_spanbank("--corpus", old, "migrate"))
    corpus = Corpus(old)
    for name, rows in _legacy_tables(old / ".format1").items():
        cols = pq.read_schema(old / ".format1" / f"{name}.parquet").names
        assert corpus.read_arrow(name).select(cols).to_pylist() == rows, name


# -- sql -------------------------------------------------------------------------------------------


def test_sql_queries_tables_and_hides_emails(tmp_path):
    corpus = synth_corpus(tmp_path / "c", 20)
    with corpus.writer() as w:
        w.append(
            "annotators",
            [{"annotator": "ann-1", "ls_url": "http://x", "ls_user_id": 1, "email": "a@b.org"}],
        )
    q = "SELECT label, count(*) AS n FROM spans GROUP BY label ORDER BY label"
    rows = json.loads(_ok(_spanbank("--corpus", corpus.path, "sql", q, "--json")))
    want = corpus.read("spans").groupby("label").size().sort_index()
    assert {r["label"]: r["n"] for r in rows} == want.to_dict()
    csv = _ok(_spanbank("--corpus", corpus.path, "sql", "SELECT * FROM annotators", "--csv"))
    assert "a@b.org" not in csv and csv.splitlines()[0] == "annotator,ls_url,ls_user_id"
    private = _ok(
        _spanbank("--corpus", corpus.path, "sql", "SELECT email FROM annotators", "--private")
    )
    assert "a@b.org" in private
    assert "sql: " in _one_line(_spanbank("--corpus", corpus.path, "sql", "SELECT nope FROM spans"))


def test_sql_json_is_valid_and_dates_out_of_python_range_are_text(tmp_path):
    """`sql --json` printed `Infinity` (not JSON); a date before year 1 (a DuckDB expression,
    or one stored by older ingest) was an OverflowError traceback."""
    corpus = Corpus.init(tmp_path / "c")
    art = pd.DataFrame(article_rows({"old": "Old text."}))
    art["published_at"] = pd.to_datetime(pd.Series(["0000-06-01"]), utc=True, format="mixed")
    with corpus.writer() as w:
        w.append("articles", art)

    def sql(*args):
        return _ok(_spanbank("--corpus", corpus.path, "sql", *args))

    out = sql("--json", "select 1/0 as x, -1/0 as y, 'nan'::double as n, [1/0] as l")
    assert json.loads(out, parse_constant=lambda c: pytest.fail(f"not JSON: {c}")) == [
        {"x": None, "y": None, "n": None, "l": [None]}
    ]
    got = json.loads(sql("--json", "select date '0001-01-01' - interval 1 day as d"))
    assert got == [{"d": "0000-12-31 00:00:00.000000"}]
    got = json.loads(sql("--json", "select article_id, published_at from articles"))
    assert got == [{"article_id": "old", "published_at": "0000-06-01 00:00:00.000000+0000"}]
    assert "0000-06-01" in sql("select published_at from articles")


def test_sql_sees_every_table_before_it_is_made(tmp_path):
    """README lists `pins`; before the first export `select * from pins` said `Catalog Error:
    Table with name pins does not exist!`."""
    corpus = Corpus.init(tmp_path / "c")
    assert not corpus.has("pins")
    res = _spanbank("--corpus", corpus.path, "sql", "--json", "select * from pins")
    assert json.loads(_ok(res)) == []
    cols = "select column_name from (describe select * from pins)"
    got = json.loads(_ok(_spanbank("--corpus", corpus.path, "sql", "--json", cols)))
    assert [r["column_name"] for r in got] == ["commit", "pinned_at", "reason"]


def test_sql_reads_the_views_and_nothing_else(tmp_path):
    """Before, a statement could read the tables' files (the e-mails --private guards among
    them), write files and install DuckDB extensions from the network."""
    corpus = synth_corpus(tmp_path / "c", 5)
    with corpus.writer() as w:
        w.append(
            "annotators",
            [{"annotator": "ann-1", "ls_url": "http://x", "ls_user_id": 1, "email": "a@b.org"}],
        )
    files = ", ".join(f"'{f}'" for f in corpus.table_files("annotators"))
    leak = tmp_path / "leak.csv"
    for statement in (
        f"SELECT * FROM read_parquet([{files}])",
        f"COPY (SELECT 1 AS x) TO '{leak}'",
        f"ATTACH '{tmp_path / 'x.db'}' AS x",
        "INSTALL httpfs",
        "SET enable_external_access = true",
    ):
        res = _spanbank("--corpus", corpus.path, "sql", statement)
        assert res.returncode == 1 and "a@b.org" not in res.stdout + res.stderr, statement
        assert _one_line(res).startswith("Error: sql: "), statement
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    rows = json.loads(
        _ok(_spanbank("--corpus", corpus.path, "sql", "SELECT * FROM annotators", "--json"))
    )
    assert rows == [{"annotator": "ann-1", "ls_url": "http://x", "ls_user_id": 1}]


def test_no_code_outside_the_store_opens_table_files():
    """DESIGN.md: `corpus/store` (with delta) is the only code that opens table files."""
    offenders = []
    for f in (SRC / "spanbank").rglob("*.py"):
        rel = f.relative_to(SRC / "spanbank").as_posix()
        if rel.startswith("corpus/"):
            continue
        text = f.read_text()
        if "table_path(" in text or "_delta_log" in text:
            offenders.append(rel)
    assert offenders == []
