"""`spanbank preannotate --out`: the rule tagger's predictions for a selection, one row per span,
readable by `push --preannotate FILE`; articles without rules for their language are counted."""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner

from conftest import article_rows
from spanbank.cli import cli
from spanbank.corpus import Corpus
from spanbank.preannotate import preannotate

TEXTS = {
    "en1": "“Trains will run on Monday,” the minister said. Unions disagreed.",
    "en2": "The mayor said that the bridge would reopen in May.",
    "de1": "„Die Züge fahren am Montag“, sagte die Ministerin.",
    "none": "A headline without speech",
}


def _corpus(tmp_path) -> Corpus:
    corpus = Corpus.init(tmp_path / "c")
    rows = article_rows(TEXTS)
    for r in rows:
        r["language"] = "de" if r["article_id"] == "de1" else "en"
        r["source"] = "wire" if r["article_id"].startswith("en") else "local"
    with corpus.writer() as w:
        w.append("articles", rows)
    return corpus


def _run(corpus, *args):
    res = CliRunner().invoke(cli, ["--corpus", str(corpus.path), "preannotate", *map(str, args)])
    return res


def test_predictions_file_holds_every_span_with_its_links(tmp_path):
    corpus = _corpus(tmp_path)
    out = tmp_path / "p.jsonl"
    res = _run(corpus, "--out", out, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["articles"] == 4
    assert summary["without_predictions"] == {"no rules for language 'de'": 1, "nothing found": 1}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for aid in ("en1", "en2"):
        want = preannotate(TEXTS[aid])
        got = [r for r in rows if r["article_id"] == aid]
        assert [(r["label"], r["start"], r["end"]) for r in got] == [
            (s["label"], s["start"], s["end"]) for s in want["spans"]
        ]
        links = {(r["span_id"], x["label"], x["to"]) for r in got for x in json.loads(r["links"])}
        assert links == {
            (x["from_span_id"], x["label"], x["to_span_id"]) for x in want["relations"]
        }
    assert summary["spans"] == len(rows) > 0
    assert {r["label"] for r in rows} >= {"QUOTE", "CUE", "SPEAKER"}


def test_where_selects_and_parquet_reads_back(tmp_path):
    corpus = _corpus(tmp_path)
    out = tmp_path / "p.parquet"
    res = _run(corpus, "--out", out, "--where", "source == 'wire'", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["articles"] == 2
    got = pd.read_parquet(out)
    assert set(got["article_id"]) == {"en1", "en2"}
    assert (got["end"] > got["start"]).all()


def test_bad_requests_are_one_line_and_write_nothing(tmp_path):
    corpus = _corpus(tmp_path)
    for args, msg in (
        ([], "give one of --eval and --out"),
        (["--eval", "--out", tmp_path / "x.parquet"], "give one of --eval and --out"),
        (["--out", tmp_path / "x.parquet", "--model", "models/v3"], "is not a spanbank model"),
        (["--out", tmp_path / "x.csv"], "name a .parquet or .jsonl file"),
        (["--out", tmp_path / "x.parquet", "--where", "nope ==="], "--where"),
    ):
        res = _run(corpus, *args)
        assert res.exit_code != 0 and msg in res.output, (args, res.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
