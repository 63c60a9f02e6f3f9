"""The store never takes over folders it did not make, never mistakes a lost table for a new
one, and an export after a killed command's writes still names (and pins) a commit."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow.parquet as pq
import pytest

from _synth_corpus import synth_corpus
from conftest import article_rows
from spanbank.corpus import Corpus
from spanbank.corpus.store import Writer
from spanbank.errors import CorpusError
from spanbank.export import export_dataset
from spanbank.status import corpus_status


def test_init_refuses_a_folder_of_a_tables_name_holding_other_files(tmp_path):
    """`init` made a table over a user's `articles/` folder, and a vacuum then deleted the
    user's Parquet files in it (hunt D, finding 5); now nothing is written."""
    data = tmp_path / "data"
    (data / "articles").mkdir(parents=True)
    pq.write_table(
        synth_corpus(tmp_path / "c", 3).read_arrow("articles"), data / "articles/raw.parquet"
    )
    with pytest.raises(CorpusError, match="articles holds files but is not a spanbank table"):
        Corpus.init(data)
    assert sorted(os.listdir(data)) == ["articles"]
    assert os.listdir(data / "articles") == ["raw.parquet"]


def test_a_table_whose_log_is_gone_is_one_line_and_its_files_are_kept(tmp_path):
    """With `articles/_delta_log` gone, status said 0 articles and the next writer made the
    table anew, deleting the old data files one write at a time (hunt D, finding 6)."""
    corpus = synth_corpus(tmp_path / "c", 10)
    with corpus.writer() as w:
        w.append("articles", article_rows({"late": "A later article."}))
    folder = corpus.table_path("articles")
    shutil.move(folder / "_delta_log", tmp_path / "log-backup")
    files = sorted(os.listdir(folder))
    message = "table articles is missing .* though commit 2 read its version 2; restore it"
    with pytest.raises(CorpusError, match=message):
        corpus_status(Corpus(corpus.path))
    with pytest.raises(CorpusError, match=message):
        with Corpus(corpus.path).writer() as w:
            w.append("articles", article_rows({"new": "Not written."}))
    assert sorted(os.listdir(folder)) == files
    shutil.move(tmp_path / "log-backup", folder / "_delta_log")  # restored: all there
    assert len(Corpus(corpus.path).read("articles")) == 11


def test_an_export_after_a_killed_commands_writes_names_and_pins_a_commit(tmp_path):
    """Writes no commit named (a command killed after them) made the export's `corpus_commit`
    null and left it unpinned, so a vacuum removed what it read (hunt D, finding 7)."""
    corpus = synth_corpus(tmp_path / "c", 10)
    with corpus.lock():  # what a killed command leaves: a table version, no commit row
        Writer(corpus).append("articles", article_rows({"late": "A later article."}))
    export_dataset(corpus, ["jsonl"], tmp_path / "out", split="train=1", workers=1)
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    log = corpus.commits()
    assert log["status"].tolist() == ["ok", "recovered"]
    assert manifest["corpus_commit"] == 2
    assert corpus.read("pins")["commit"].tolist() == [2]


@pytest.mark.parametrize("lost", ["commits", "commits/_delta_log"])
def test_a_lost_commit_log_is_one_line_not_a_new_history(tmp_path, lost):
    """With `commits` gone, status said nothing and the next write began the history again at
    commit 1 (numbers pins and manifests name); with only its log gone, the message called the
    corpus's own table foreign and said to move it away (hunt E, finding 4)."""
    corpus = synth_corpus(tmp_path / "c", 10)
    shutil.rmtree(corpus.path / lost)
    message = "table commits is missing .* though annotations is at version 1; restore it"
    with pytest.raises(CorpusError, match=message):
        corpus_status(Corpus(corpus.path))
    with pytest.raises(CorpusError, match=message):
        with Corpus(corpus.path).writer() as w:
            w.append("articles", article_rows({"new": "Not written."}))
    assert not (corpus.path / "commits" / "_delta_log").exists()
