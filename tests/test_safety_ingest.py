"""Ingest and export safety (issue 12 items 1, 2, 8, 9, 12, 13; issue 13 item 7): nothing of the
user's is deleted, misfiled or leaked, and bad input is refused with a reason."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from spanbank.cli import cli
from spanbank.corpus import Corpus
from spanbank.errors import ExportError
from spanbank.export import export_dataset, verify
from spanbank.ingest import ingest_paths

TEXT = "The mayor said hello.\n"
ANN = "T1\tSource 0 9\tThe mayor\nT2\tCue 10 14\tsaid\n"


def brat_folder(path: Path, docs: dict[str, str], who: str = "alice", ann: str = ANN) -> Path:
    """A brat folder: `<id>.txt` + `<id>_<who>.ann` for each {id: text}."""
    path.mkdir(parents=True, exist_ok=True)
    for aid, text in docs.items():
        (path / f"{aid}.txt").write_text(text, encoding="utf-8")
        (path / f"{aid}_{who}.ann").write_text(ann, encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path) -> Corpus:
    return Corpus.init(tmp_path / "corpus")


@pytest.fixture
def annotated(corpus, tmp_path) -> Corpus:
    ingest_paths(corpus, [brat_folder(tmp_path / "b", {"d1": TEXT, "d2": "Ms Ruiz said no.\n"})], fmt="brat")
    return corpus


def tree(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


# -- 12.1: export --out never deletes what is not a previous export ---------------------------------


def test_export_refuses_a_folder_with_a_fake_manifest_a_corpus_and_notes(annotated, tmp_path):
    p = tmp_path / "p"
    p.mkdir()
    (p / "manifest.json").write_text("{}")
    (p / "NOTES.md").write_text("x")
    before = tree(p)
    with pytest.raises(ExportError, match="not a spanbank export"):
        export_dataset(annotated, "jsonl", p)
    assert tree(p) == before


def test_export_refuses_a_real_export_holding_unlisted_files_or_a_corpus(annotated, tmp_path):
    out = tmp_path / "e"
    export_dataset(annotated, "jsonl", out)
    (out / "jsonl" / "mine.txt").write_text("my notes")
    with pytest.raises(ExportError, match="mine.txt is not in its manifest"):
        export_dataset(annotated, "jsonl", out)
    assert (out / "jsonl" / "mine.txt").read_text() == "my notes"
    (out / "jsonl" / "mine.txt").unlink()
    Corpus.init(out / "sub")
    with pytest.raises(ExportError, match="sub/ holds a corpus"):
        export_dataset(annotated, "jsonl", out)
    assert (out / "sub" / "spanbank.yaml").exists()


def test_export_replaces_a_previous_export(annotated, tmp_path):
    out = tmp_path / "e"
    export_dataset(annotated, "jsonl", out)
    export_dataset(annotated, "jsonl,conll", out)
    assert verify(out) == [] and (out / "conll").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "corpus", "e"]


def test_export_out_dot_is_refused_and_leaves_nothing(annotated, tmp_path, monkeypatch):
    out = tmp_path / "e"
    export_dataset(annotated, "jsonl", out)
    monkeypatch.chdir(out)
    with pytest.raises(ExportError, match="current folder"):
        export_dataset(annotated, "jsonl", ".")
    assert verify(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "corpus", "e"]


def test_cli_export_into_the_corpus_parent_keeps_everything(annotated, tmp_path):
    p = tmp_path / "p"
    p.mkdir()
    (p / "manifest.json").write_text(json.dumps({"manifest_version": 1, "spanbank_version": "0", "files": {}}))
    (p / "NOTES.md").write_text("x")
    os.rename(annotated.path, p / "corpus")
    result = CliRunner().invoke(cli, ["--corpus", str(p / "corpus"), "export", "--format", "jsonl", "--out", str(p)])
    assert result.exit_code == 1 and "corpus/ holds a corpus" in result.output
    assert (p / "NOTES.md").exists() and (p / "corpus" / "spanbank.yaml").exists()


# -- 13.7: brat annotation ids carry the pseudonym, never an e-mail ---------------------------------


def test_brat_email_annotator_becomes_a_pseudonym_in_ids_and_rows(corpus, tmp_path):
    email = "alice.secret@corp.example"
    ingest_paths(corpus, [brat_folder(tmp_path / "b", {"d1": TEXT}, who=email)], fmt="brat")
    for name in ("annotations", "spans", "rejects", "relations"):
        df = corpus.read(name)
        assert not df.astype(str).apply(lambda c: c.str.contains("secret")).any().any(), name
    ann = corpus.read("annotations")
    who = ann["annotator"].iloc[0]
    assert who.startswith("ann-") and ann["annotation_id"].iloc[0].startswith(f"import-d1-{who}-")
    people = corpus.read("annotators")
    assert people[["annotator", "email"]].values.tolist() == [[who, email]]
    # the same file again is unchanged, and the pseudonym is stable
    summary = ingest_paths(corpus, [tmp_path / "b"], fmt="brat")
    assert summary.annotations == 0 and len(corpus.read("annotators")) == 1


# -- 12.9: brat A lines are found by id, so parsing stays linear ----------------------------------


def _ann_with_attributes(n: int) -> tuple[str, str]:
    """(text, ann) of n words, each a QUOTE span (every tenth discontinuous) with a Type line."""
    words = [f"w{i}" for i in range(n + 1)]
    text = " ".join(words)
    lines, pos = [], 0
    for i in range(n):
        end = pos + len(words[i])
        if i % 10 == 9:
            nxt = end + 1 + len(words[i + 1])
            lines.append(f"T{i}\tContent {pos} {end};{end + 1} {nxt}\t{words[i]} {words[i + 1]}")
        else:
            lines.append(f"T{i}\tContent {pos} {end}\t{words[i]}")
        lines.append(f"A{i}\tType T{i} direct")
        pos = end + 1
    return text, "\n".join(lines) + "\n"


def _parse_steps(n: int) -> int:
    """Lines of `parse_ann` executed for an .ann of n T + n A lines (deterministic, unlike time)."""
    import sys

    from spanbank.brat import parse_ann
    from spanbank.schema import load_schema

    text, ann = _ann_with_attributes(n)
    schema = load_schema()
    steps = 0

    def tracer(frame, event, arg):
        nonlocal steps
        if frame.f_code is parse_ann.__code__:
            if event == "line":
                steps += 1
            return tracer
        return None

    sys.settrace(tracer)
    try:
        result = parse_ann(ann, text, schema)
    finally:
        sys.settrace(None)
    assert not result.rejects and all(s["attributes"].get("type") == "direct" for s in result.spans)
    return steps


def test_brat_attribute_lines_take_linear_work():
    small, large = _parse_steps(400), _parse_steps(1600)
    assert large < 5 * small, f"{small} -> {large} steps for 4x the lines: not linear"
