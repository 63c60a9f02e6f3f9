"""`spanbank preannotate --out`: the rule tagger's predictions for a selection, one row per span,
readable by `push --preannotate FILE`; articles that get none are counted by reason (no rules
for their language, a model for another language, nothing found)."""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner

from _helpers import dead_pid
from conftest import article_rows
from spanbank.cli import cli
from spanbank.corpus import Corpus
from spanbank.preannotate import preannotate
from spanbank.predict import model_language, skip_reason

TEXTS = {
    "en1": "“Trains will run on Monday,” the minister said. Unions disagreed.",
    "en2": "The mayor said that the bridge would reopen in May.",
    "de1": "„Die Züge fahren am Montag“, sagte die Ministerin.",
    "fr1": "« Les trains rouleront lundi », a déclaré la ministre.",
    "xx1": "“Trains will run on Monday,” the minister said.",
    "none": "A headline without speech",
}
LANGUAGE = {"de1": "de-DE", "fr1": "fr", "xx1": "xx"}


def _corpus(tmp_path) -> Corpus:
    corpus = Corpus.init(tmp_path / "c")
    rows = article_rows(TEXTS)
    for r in rows:
        r["language"] = LANGUAGE.get(r["article_id"], "en")
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
    assert summary["articles"] == 6
    assert summary["without_predictions"] == {"no rules for language 'xx'": 1, "nothing found": 1}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["article_id"] for r in rows} == {"en1", "en2", "de1", "fr1"}
    for aid in ("en1", "en2", "de1", "fr1"):
        want = preannotate(TEXTS[aid], LANGUAGE.get(aid, "en"))
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


def test_skip_reasons():
    assert skip_reason("de-DE") is None and skip_reason(None) is None
    assert skip_reason("pt_BR") == "no rules for language 'pt'"
    assert skip_reason("en", "en") is None
    assert skip_reason("de", "en") == "model is for 'en', article is 'de'"
    assert skip_reason("xx", "en") == "model is for 'en', article is 'xx'"


def test_a_model_tags_only_articles_in_its_language(tmp_path):
    from spanbank import model
    from spanbank.tagger_eval import gold_items
    from test_tagger_eval import _seed_corpus

    items = gold_items(_seed_corpus(tmp_path / "seed"))
    card = model.train(items, tmp_path / "m", ["QUOTE", "CUE"], lang="en", holdout=0, epochs=2)
    assert card["lang"] == "en"
    assert model_language(str(tmp_path / "m")) == "en" and model_language(None) is None
    corpus = _corpus(tmp_path)
    out = tmp_path / "p.jsonl"
    res = _run(corpus, "--out", out, "--model", tmp_path / "m", "--json")
    assert res.exit_code == 0, res.output
    why = json.loads(res.output)["without_predictions"]
    assert why.pop("model is for 'en', article is 'de'") == 1
    assert why.pop("model is for 'en', article is 'fr'") == 1
    assert why.pop("model is for 'en', article is 'xx'") == 1
    assert set(why) <= {"nothing found"}
    got = {json.loads(line)["article_id"] for line in out.read_text().splitlines()}
    assert got <= {"en1", "en2", "none"}


def test_temp_files_of_a_killed_run_are_removed_by_the_next(tmp_path):
    """A run killed before its clean-up (SIGKILL) leaves `.p.parquet.<pid>.<8 chars>.tmp`; the
    next run to the same --out removes it once its owner is dead, and keeps a live owner's."""
    import os

    corpus = _corpus(tmp_path)
    out = tmp_path / "p.parquet"
    dead = dead_pid()
    left = tmp_path / f".p.parquet.{dead}.abcd1234.tmp"
    live = tmp_path / f".p.parquet.{os.getpid()}.efgh5678.tmp"
    other = tmp_path / f".q.parquet.{dead}.abcd1234.tmp"  # another --out's
    for f in (left, live, other):
        f.write_bytes(b"half a file")
    res = _run(corpus, "--out", out)
    assert res.exit_code == 0, res.output
    assert out.exists() and not left.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["c", out.name, live.name, other.name]
    )


def test_a_predictions_file_named_with_up_to_255_bytes_is_written(tmp_path):
    """Its temp file `.NAME.<pid>.XXXXXXXX.tmp` did not fit beside a long legal name: the
    error named the temp file. A long name's temp files are shortened, and a killed run's are
    still found and removed."""
    from spanbank.predict import temp_stem

    corpus = _corpus(tmp_path)
    dead = 9_999_999  # above any pid_max (2**22): no process's, and of more digits than ours
    # (the stem was cut to fit the writer's own pid: a leftover of a longer pid was missed)
    out = tmp_path / ("p" * 249 + ".jsonl")
    left = tmp_path / f".{temp_stem(out.name)}.{dead}.abcd1234.tmp"
    left.write_bytes(b"half a file")
    res = _run(corpus, "--out", out)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", out.name]
    res = _run(corpus, "--out", tmp_path / ("p" * 250 + ".jsonl"))
    assert res.exit_code == 1 and "its name has 256 bytes; a file name holds at most 255" in (
        res.output
    )


def test_out_is_guarded_like_export_and_train(tmp_path):
    """--out replaced a symlink with a plain file, overwrote any .parquet/.jsonl, and wrote
    inside a corpus's table folder; a predictions file of ours is still replaced."""
    corpus = _corpus(tmp_path)
    target = tmp_path / "target.jsonl"
    target.write_text("mine\n")
    (tmp_path / "link.jsonl").symlink_to(target)
    (tmp_path / "notes.jsonl").write_text('{"note": "keep me"}\n')
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "table.parquet")
    for out, msg in (
        (tmp_path / "link.jsonl", "is a symlink, which would be replaced by a plain file"),
        (tmp_path / "notes.jsonl", "is not a spanbank predictions file (its first line is not a"),
        (tmp_path / "table.parquet", "is not a spanbank predictions file (other columns)"),
        (corpus.table_path("articles") / "x.parquet", "is inside the spanbank corpus"),
        (corpus.path / "p.jsonl", "is inside the spanbank corpus"),
    ):
        before = sorted(p.name for p in out.parent.iterdir())
        res = _run(corpus, "--out", out)
        assert res.exit_code == 1 and msg in res.output, (out, res.output)
        assert len(res.output.strip().splitlines()) == 1
        assert sorted(p.name for p in out.parent.iterdir()) == before
    assert target.read_text() == "mine\n" and (tmp_path / "link.jsonl").is_symlink()
    assert "keep me" in (tmp_path / "notes.jsonl").read_text()
    for name in ("p.jsonl", "p.parquet", "empty.jsonl"):  # ours (or empty): replaced
        out = tmp_path / name
        if name == "empty.jsonl":
            out.touch()
        for _ in range(2):
            res = _run(corpus, "--out", out)
            assert res.exit_code == 0, res.output
        assert out.stat().st_size > 0


def test_predictions_file_gets_a_plain_files_mode(tmp_path):
    """The file is made as a temp file (mode 0600) and renamed: it now gets the mode a plain
    open() gives, like any file a user writes; before, nobody else could read it."""
    import stat

    corpus = _corpus(tmp_path)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    for name in ("p.parquet", "p.jsonl"):
        res = _run(corpus, "--out", tmp_path / name)
        assert res.exit_code == 0, res.output
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == stat.S_IMODE(plain.stat().st_mode), oct(mode)


def test_push_reads_a_predictions_file_as_it_tags(tmp_path):
    """`push --preannotate FILE` made from `preannotate --out FILE` sends Label Studio what
    `--preannotate rules` sends: the same regions, the said_by/cue relations and the score. The
    file's links and scores were dropped (hunt G, finding 4): pulled, 0 relations instead of 12."""
    from spanbank.corpus.articles import attach_rows, selection_frame
    from spanbank.labelstudio.push import _predictions

    corpus = _corpus(tmp_path)
    candidates = attach_rows(corpus, selection_frame(corpus, None))
    rules, _ = _predictions("rules", candidates, corpus.schema)
    assert any(r["type"] == "relation" for p in rules.values() for r in p[0]["result"])
    for name in ("p.parquet", "p.jsonl"):
        assert _run(corpus, "--out", tmp_path / name, "-q").exit_code == 0
        got, _ = _predictions(str(tmp_path / name), candidates, corpus.schema)
        assert got.keys() == rules.keys(), name
        for aid, (pred,) in got.items():
            (want,) = rules[aid]
            assert pred["result"] == want["result"], (name, aid)
            assert pred["score"] == want["score"] and pred["model_version"] == f"file:{name}"


def test_a_hand_made_predictions_file_is_read_or_refused_in_one_line(tmp_path):
    """Hunt I, finding 6: a score that is no number was a traceback; integer span ids in a column
    where one row has none read as 1.0, so every link was dropped; a link label the schema lacks
    went to Label Studio as it was."""
    import pytest

    from spanbank.corpus.articles import attach_rows, selection_frame
    from spanbank.errors import SpanbankError
    from spanbank.labelstudio.push import _predictions

    corpus = _corpus(tmp_path)
    candidates = attach_rows(corpus, selection_frame(corpus, None))
    text = TEXTS["en1"]
    quote, speaker = (0, text.index(",”") + 2), (text.index("the minister"), text.index(" said"))

    def run(rows):
        path = tmp_path / "p.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return _predictions(str(path), candidates, corpus.schema)[0]

    rows = [
        {
            "article_id": "en1",
            "span_id": 1,
            "label": "QUOTE",
            "start": quote[0],
            "end": quote[1],
            "links": json.dumps([{"label": "said_by", "to": 2}]),
        },
        {
            "article_id": "en1",
            "span_id": 2,
            "label": "SPEAKER",
            "start": speaker[0],
            "end": speaker[1],
            "links": "[]",
        },
        {"article_id": "en2", "label": "SPEAKER", "start": 0, "end": 9},  # no span_id
    ]
    (pred,) = run(rows)["en1"]
    rel = [
        (r["from_id"], r["to_id"], r["labels"]) for r in pred["result"] if r["type"] == "relation"
    ]
    assert rel == [("1", "2", ["said_by"])]
    with pytest.raises(SpanbankError, match=r"score 'high' of article en1 is not a number"):
        run([{**rows[0], "score": "high"}, rows[1]])
    bad = {**rows[0], "links": json.dumps([{"label": "nonsense", "to": 2}])}
    with pytest.raises(SpanbankError, match=r"link label\(s\) nonsense not in schema news-v1"):
        run([bad, rows[1]])
    # hunt M, F8: spans the schema or the text cannot hold were dropped without a word
    with pytest.raises(SpanbankError, match=r"span label\(s\) PERSON, quote not in schema"):
        run([*rows, {**rows[2], "label": "PERSON"}, {**rows[2], "label": "quote"}])
    with pytest.raises(SpanbankError, match=rf"span 40..{len(TEXTS['en2']) + 9} of article 'en2'"):
        run([*rows, {**rows[2], "start": 40, "end": len(TEXTS["en2"]) + 9}])
    sarcastic = {**rows[0], "attributes": json.dumps({"type": "sarcastic"})}
    with pytest.raises(SpanbankError, match=r"'en1': value 'sarcastic' of QUOTE.type is not"):
        run([sarcastic, rows[1]])
    assert run([*rows, {**rows[2], "article_id": "not-in-the-batch"}]).keys() == {"en1", "en2"}
