"""The command line: init, ingest, status, schema; one-line errors; help with examples."""

import json
import xml.etree.ElementTree as ET

import click
import pytest
from click.testing import CliRunner

from spanbank.cli import cli
from spanbank.corpus import Corpus


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def corpus_dir(tmp_path, runner):
    d = tmp_path / "corpus"
    result = runner.invoke(cli, ["--corpus", str(d), "init"])
    assert result.exit_code == 0, result.output
    return d


def _run(runner, corpus_dir, *args, **kw):
    return runner.invoke(
        cli, ["--corpus", str(corpus_dir), *map(str, args)], catch_exceptions=False, **kw
    )


def _error_lines(result):
    return [line for line in result.output.splitlines() if line.strip()]


def _assert_one_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = _error_lines(result)
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    for f in fragments:
        assert f in lines[0]
    assert "Traceback" not in result.output


def test_init(tmp_path, runner):
    d = tmp_path / "c"
    result = runner.invoke(cli, ["init", str(d)])
    assert result.exit_code == 0
    assert result.output == f"Corpus ready at {d} (schema news-v1).\n"
    assert (d / "schema.yaml").exists() and (d / "spanbank.yaml").exists()
    # again: keeps what is there
    (d / "schema.yaml").write_text(
        (d / "schema.yaml").read_text().replace("version: 1", "version: 7")
    )
    result = runner.invoke(cli, ["init", str(d)])
    assert result.exit_code == 0 and "news-v7" in result.output


def test_init_uses_corpus_option_and_env(tmp_path, runner, monkeypatch):
    result = runner.invoke(cli, ["--corpus", str(tmp_path / "a"), "init"])
    assert result.exit_code == 0 and (tmp_path / "a" / "schema.yaml").exists()
    monkeypatch.setenv("SPANBANK_CORPUS", str(tmp_path / "b"))
    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 0 and (tmp_path / "b" / "schema.yaml").exists()


def test_init_with_a_bad_schema(tmp_path, runner):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: 1\n")
    result = runner.invoke(cli, ["init", str(tmp_path / "c"), "--schema", str(bad)])
    _assert_one_error(result, "missing key 'labels'")
    assert not (tmp_path / "c" / "schema.yaml").exists()


def test_init_with_another_schema_on_a_corpus_is_refused(tmp_path, runner):
    """Hunt M, F6: `init --schema v2.yaml` on an existing corpus said "Corpus ready (schema
    news-v1)", exit 0, and kept v1."""
    d = tmp_path / "c"
    assert runner.invoke(cli, ["init", str(d)]).exit_code == 0
    before = (d / "schema.yaml").read_bytes()
    same = tmp_path / "same.yaml"
    same.write_bytes(before + b"\n# a comment changes nothing\n")
    assert runner.invoke(cli, ["init", str(d), "--schema", str(same)]).exit_code == 0
    v2 = tmp_path / "v2.yaml"
    v2.write_text(before.decode().replace("version: 1", "version: 2"))
    result = runner.invoke(cli, ["init", str(d), "--schema", str(v2)])
    _assert_one_error(result, "already has schema news-v1", f"{v2} (news-v2) is not applied")
    assert (d / "schema.yaml").read_bytes() == before


def test_ingest_summary_and_json(tmp_path, runner, corpus_dir):
    f = tmp_path / "a.jsonl"
    f.write_text(
        '{"id": "a", "text": "One."}\n{"id": "b", "text": "  "}\nnot json\n', encoding="utf-8"
    )
    result = _run(runner, corpus_dir, "ingest", f)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[:3] == ["added: 1", "unchanged: 0", "refused: 2"]
    assert lines[3] == "reasons:"
    # in row order within a file
    assert lines[4] == f"  - {f}:2: text is empty or whitespace only"
    assert lines[5] == f"  - {f}:3: not valid JSON (Expecting value)"
    result = _run(runner, corpus_dir, "ingest", f, "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert (data["added"], data["unchanged"], data["refused"]) == (0, 1, 2)
    assert len(data["reasons"]) == 2
    result = _run(runner, corpus_dir, "ingest", f, "--quiet")
    assert result.exit_code == 0 and result.output == ""


def test_ingest_column_flags(tmp_path, runner, corpus_dir):
    f = tmp_path / "a.csv"
    f.write_text(
        "uid,body,hl,outlet,day\nx1,Hello there.,Greeting,Daily,2024-02-03\n", encoding="utf-8"
    )
    result = _run(
        runner,
        corpus_dir,
        "ingest",
        f,
        "--id-col",
        "uid",
        "--text-col",
        "body",
        "--title-col",
        "hl",
        "--source-col",
        "outlet",
        "--date-col",
        "day",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["added"] == 1
    a = Corpus(corpus_dir).read("articles").iloc[0]
    assert (a["article_id"], a["text"], a["title"], a["source"]) == (
        "x1",
        "Hello there.",
        "Greeting",
        "Daily",
    )


def test_ingest_brat(tmp_path, runner, corpus_dir):
    d = tmp_path / "brat"
    d.mkdir()
    (d / "n1.txt").write_text("Ana said yes.", encoding="utf-8")
    (d / "n1.ann").write_text(
        "T1\tSource 0 3\tAna\nT2\tCue 4 8\tsaid\nT3\tSource 0 4\tAna.\n", encoding="utf-8"
    )
    result = _run(
        runner, corpus_dir, "ingest", "--format", "brat", d, "--annotator", "alice", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["added"], data["annotations"], data["spans"], data["rejected"]) == (1, 1, 2, 1)
    assert "offsets cover 'Ana '" in data["reasons"][0]
    result = _run(runner, corpus_dir, "status", "--json")
    st = json.loads(result.output)
    assert (st["articles"], st["annotations"], st["spans"], st["rejects"]) == (
        1,
        {"import": 1},
        2,
        1,
    )


def test_ingest_missing_path(runner, corpus_dir, tmp_path):
    result = _run(runner, corpus_dir, "ingest", tmp_path / "nope.txt")
    _assert_one_error(result, "nope.txt: no such file or directory")


def test_ingest_non_utf8(runner, corpus_dir, tmp_path):
    f = tmp_path / "latin.txt"
    f.write_bytes("Caf\xe9".encode("latin-1"))
    result = _run(runner, corpus_dir, "ingest", f)
    _assert_one_error(result, str(f), "--encoding")
    result = _run(runner, corpus_dir, "ingest", f, "--encoding", "latin-1")
    assert result.exit_code == 0 and result.output.startswith("added: 1\n")


def test_ingest_into_locked_corpus(runner, corpus_dir, tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("x")
    with Corpus(corpus_dir).writer():
        result = _run(runner, corpus_dir, "ingest", f)
    _assert_one_error(result, "is being written by another spanbank process", "--wait")
    result = _run(runner, corpus_dir, "ingest", f, "--wait")
    assert result.exit_code == 0


def test_ingest_without_corpus(runner, tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("x")
    result = runner.invoke(cli, ["--corpus", str(tmp_path / "none"), "ingest", str(f)])
    _assert_one_error(result, "no corpus at", "spanbank init")


def test_ingest_unknown_column_and_format(runner, corpus_dir, tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"body": "x"}\n')
    _assert_one_error(_run(runner, corpus_dir, "ingest", f), "no column 'text'", "--text-col")
    g = tmp_path / "a.docx"
    g.write_text("x")
    _assert_one_error(_run(runner, corpus_dir, "ingest", g), "unknown file type", "--format")


def test_ingest_needs_a_path(runner, corpus_dir):
    result = runner.invoke(cli, ["--corpus", str(corpus_dir), "ingest"])
    assert result.exit_code == 2 and "Missing argument" in result.output


def test_status(runner, corpus_dir, tmp_path):
    result = _run(runner, corpus_dir, "status")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        f"corpus at {corpus_dir.resolve()} (schema news-v1)",
        "articles: 0  spans: 0  rejects: 0",
        "annotations: none",
    ]
    (tmp_path / "a.txt").write_text("x")
    _run(runner, corpus_dir, "ingest", tmp_path / "a.txt")
    st = json.loads(_run(runner, corpus_dir, "status", "--json").output)
    assert st["articles"] == 1 and st["projects"] == [] and st["schema"] == "news-v1"
    assert st["commit"] == 1  # the ingest; `status --as-of 1` would read the corpus as it left it


def test_status_per_project(runner, corpus_dir):
    import pandas as pd

    now = pd.Timestamp("2024-01-01", tz="UTC")
    corpus = Corpus(corpus_dir)
    tasks = [
        {
            "project": "p",
            "ls_url": "http://x",
            "ls_project_id": 1,
            "article_id": a,
            "ls_task_id": i,
            "batch_id": "b1",
            "pushed_at": now,
            "schema_version": "news-v1",
        }
        for i, a in enumerate("abc")
    ]
    base = {
        "project": "p",
        "ls_task_id": 1,
        "ls_annotation_id": 1,
        "created_at": now,
        "updated_at": now,
        "lead_time_s": 3.0,
        "cancelled": False,
        "version": 1,
        "superseded": False,
        "deleted_at": None,
        "pulled_at": now,
    }
    anns = [
        {**base, "annotation_id": "1", "article_id": "a", "annotator": "u1", "origin": "human"},
        {**base, "annotation_id": "2", "article_id": "a", "annotator": "u2", "origin": "human"},
        {
            **base,
            "annotation_id": "3",
            "article_id": "b",
            "annotator": "u1",
            "origin": "human",
            "superseded": True,
        },
        {
            **base,
            "annotation_id": "4",
            "article_id": "c",
            "annotator": "u2",
            "origin": "prediction",
        },
    ]
    with corpus.writer() as w:
        w.replace("tasks", tasks)
        w.replace("annotations", anns)
    st = json.loads(_run(runner, corpus_dir, "status", "--json").output)
    assert st["annotations"] == {"human": 2, "prediction": 1}
    [p] = st["projects"]
    assert (p["project"], p["pushed"], p["annotated"], p["pending"], p["annotators"]) == (
        "p",
        3,
        1,
        2,
        2,
    )
    assert p["last_pull"].startswith("2024-01-01")
    out = _run(runner, corpus_dir, "status").output
    assert (
        "project p: tasks 3, pushed 3, annotated 1, pending 2, annotators 2, spans 0, last pull 2024-01-01"
        in out
    )


def test_status_without_corpus(runner, tmp_path):
    _assert_one_error(
        runner.invoke(cli, ["--corpus", str(tmp_path / "none"), "status"]), "no corpus at"
    )


def test_status_with_a_broken_table(runner, corpus_dir):
    for log in (corpus_dir / "annotations" / "_delta_log").glob("*.json"):
        log.write_bytes(b"garbage")
    _assert_one_error(_run(runner, corpus_dir, "status"), "annotations: not a readable Delta table")


def test_schema_show_config_validate(runner, corpus_dir, tmp_path):
    result = _run(runner, corpus_dir, "schema", "show")
    assert result.exit_code == 0
    assert "schema: news-v1" in result.output and "said_by: QUOTE -> SPEAKER" in result.output
    assert "- direct" in result.output
    result = _run(runner, corpus_dir, "schema", "config")
    assert result.exit_code == 0
    root = ET.fromstring(result.output)
    assert [lab.get("value") for lab in root.iter("Label")] == ["SPEAKER", "QUOTE", "CUE", "EVENT"]
    result = _run(runner, corpus_dir, "schema", "validate")
    assert result.output == "ok: news-v1, 4 labels, 2 relations\n"
    good = tmp_path / "tiny.yaml"
    good.write_text("name: tiny\nversion: 3\nlabels:\n  PER: {}\n")
    assert (
        _run(runner, corpus_dir, "schema", "validate", good).output
        == "ok: tiny-v3, 1 labels, 0 relations\n"
    )
    assert "tiny-v3" in _run(runner, corpus_dir, "schema", "show", good).output


def test_schema_validate_bad_files(runner, corpus_dir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: 1\nlabels:\n  A: {}\nrelations:\n  r: {from: A, to: B}\n")
    _assert_one_error(
        _run(runner, corpus_dir, "schema", "validate", bad),
        "relation 'r' refers to unknown label 'B'",
    )
    bad.write_text("name: [\n")
    _assert_one_error(_run(runner, corpus_dir, "schema", "validate", bad), "not valid YAML")
    _assert_one_error(
        _run(runner, corpus_dir, "schema", "config", tmp_path / "missing.yaml"),
        "schema file not found",
    )


def test_corpus_schema_is_used(runner, corpus_dir):
    p = corpus_dir / "schema.yaml"
    p.write_text(p.read_text().replace("name: news", "name: mine"))
    assert _run(runner, corpus_dir, "schema", "validate").output.startswith("ok: mine-v1")


def _walk(group: click.Group, ctx: click.Context, path: tuple[str, ...] = ()):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        yield path + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, click.Context(cmd, parent=ctx), path + (name,))


def test_every_command_has_help_with_an_example(runner):
    ctx = click.Context(cli)
    names = list(cli.list_commands(ctx))
    assert {"init", "ingest", "status", "schema"} <= set(names)
    seen = []
    for path, _cmd in _walk(cli, ctx):
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example" in result.output, f"`spanbank {' '.join(path)} --help` has no example"
        seen.append(path)
    assert ("schema", "validate") in seen
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0 and "Example" in result.output
    for name in names:
        assert name in result.output


def test_main_turns_errors_into_one_line(tmp_path, monkeypatch, capsys):
    from spanbank.cli import main

    monkeypatch.setattr("sys.argv", ["spanbank", "--corpus", str(tmp_path / "none"), "status"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: no corpus at") and err.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["watch", "--project", "p", "--poll", "nan"],
        ["agree", "--iou", "nan"],
        ["push", "--project", "p", "--overlap", "2", "--overlap-share", "nan"],
        ["train", "--holdout", "nan"],
    ],
)
def test_nan_and_inf_are_refused_where_a_number_is_asked(runner, corpus_dir, args):
    """Hunt O, F6: `watch --poll nan` passed click's range check (nan compares false with its
    bounds) and pulled back to back, 155 pulls in 120 s."""
    res = runner.invoke(cli, ["--corpus", str(corpus_dir), *args])
    assert res.exit_code == 2 and "is not a finite number" in res.output, res.output


def test_sql_with_json_and_csv_is_a_usage_error(runner, corpus_dir):
    """Hunt O, F14: `sql --json --csv` printed JSON without a word; `agree` refuses the pair."""
    res = runner.invoke(cli, ["--corpus", str(corpus_dir), "sql", "SELECT 1", "--json", "--csv"])
    assert res.exit_code == 2 and "give one of --json and --csv" in res.output
