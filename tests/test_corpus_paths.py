"""A corpus works under any folder name delta-rs can use: a space, a non-ASCII letter, `#`, `?`,
`%`, brackets; one it would misread (`%41`, read as `A`) is refused in one line. Before, deltalake's
percent-encoded file URIs were used as paths, and every command after the first write failed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from spanbank.cli import cli
from spanbank.corpus import Corpus

# every character that broke the store before (`%` without two hex digits after it)
NAME = "a b ü#?%zz [x]; 100%"


def _run(corpus, *args) -> str:
    res = CliRunner().invoke(cli, ["--corpus", str(corpus), *map(str, args)])
    assert res.exit_code == 0, res.output
    return res.output


def _life(corpus, tmp_path) -> None:
    """init, three ingests, status, sql, log, export --as-of, compact --vacuum, and the pinned
    version still read after it."""
    _run(corpus, "init")
    for i in (1, 2, 3):
        src = tmp_path / f"brat{i}"
        src.mkdir()
        (src / f"a{i}.txt").write_text(f"Ana said {i}.")
        (src / f"a{i}.ann").write_text("T1\tSource 0 3\tAna\n")
        _run(corpus, "ingest", "--format", "brat", src, "--annotator", "alice")
    assert json.loads(_run(corpus, "status", "--json"))["articles"] == 3
    count = "select count(*) as n from articles"
    assert json.loads(_run(corpus, "sql", count, "--json")) == [{"n": 3}]
    spans = "select count(*) as n from spans"
    assert json.loads(_run(corpus, "sql", spans, "--json", "--as-of", 1)) == [{"n": 1}]
    assert [r["commit"] for r in json.loads(_run(corpus, "log", "--json"))] == [3, 2, 1]
    _run(corpus, "export", "--format", "jsonl", "--as-of", 2, "--out", tmp_path / "e2")
    assert json.loads((tmp_path / "e2" / "manifest.json").read_text())["corpus_commit"] == 2
    lines = [x for f in (tmp_path / "e2" / "jsonl").glob("*.jsonl") for x in f.open()]
    assert len(lines) == 2
    _run(corpus, "compact", "--vacuum", "--keep-days", 0)
    assert json.loads(_run(corpus, "sql", count, "--json", "--as-of", 2)) == [{"n": 2}]
    assert json.loads(_run(corpus, "status", "--json"))["articles"] == 3
    assert Corpus(corpus).read("articles")["article_id"].tolist() == ["a1", "a2", "a3"]


def test_the_whole_store_life_under_a_folder_name_with_special_characters(tmp_path):
    _life(tmp_path / NAME / "corpus", tmp_path)


def test_a_relative_corpus_under_such_a_folder(tmp_path, monkeypatch):
    (tmp_path / NAME).mkdir()
    monkeypatch.chdir(tmp_path / NAME)
    _life("corpus", tmp_path)


@pytest.mark.parametrize("name", ["x%41y", "back\\slash", "tab\there"])
def test_a_folder_delta_rs_would_misread_is_refused_in_one_line(tmp_path, name):
    """delta-rs 1.6 decodes a table's path twice (`x%41y` reads the table in `xAy`, so init
    failed, or read another folder's table when `xAy` held one)."""
    res = CliRunner().invoke(cli, ["--corpus", str(tmp_path / name), "init"])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "delta-rs cannot use a folder whose path holds" in lines[0]
    assert lines[0].endswith("rename the folder or move the corpus")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no `xAy` made
