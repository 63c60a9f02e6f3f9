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
from spanbank.corpus.ingest import ingest_paths
from spanbank.errors import ExportError
from spanbank.export import export_dataset, verify

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
    ingest_paths(
        corpus, [brat_folder(tmp_path / "b", {"d1": TEXT, "d2": "Ms Ruiz said no.\n"})], fmt="brat"
    )
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
    with pytest.raises(ExportError, match=r"current folder .*\(e\.g\. --out exports/NAME\)"):
        export_dataset(annotated, "jsonl", ".")
    assert verify(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "corpus", "e"]


def test_cli_export_into_the_corpus_parent_keeps_everything(annotated, tmp_path):
    p = tmp_path / "p"
    p.mkdir()
    (p / "manifest.json").write_text(
        json.dumps({"manifest_version": 1, "spanbank_version": "0", "files": {}})
    )
    (p / "NOTES.md").write_text("x")
    os.rename(annotated.path, p / "corpus")
    result = CliRunner().invoke(
        cli, ["--corpus", str(p / "corpus"), "export", "--format", "jsonl", "--out", str(p)]
    )
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

    from spanbank.corpus.brat import parse_ann
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


# -- 12.8: article ids: no control characters, safe file names, brat names round-trip --------------


def test_ids_with_control_characters_are_refused_with_a_reason(corpus, tmp_path):
    rows = [
        {"id": i, "text": f"Text of {i!r}."}
        for i in ("x\ny", "nul\x00id", "tab\tid", "ok-1", "sep\u2028x")
    ]
    src = tmp_path / "a.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    summary = ingest_paths(corpus, [src])
    assert summary.added == 1 and list(corpus.read("articles")["article_id"]) == ["ok-1"]
    assert len(summary.refused) == 4
    assert all("contains a control character" in r for r in summary.refused)
    assert "'x\\ny'" in summary.refused[0] and "\n" not in "".join(summary.refused)


ODD_IDS = [
    ".",
    "..",
    "a/b",
    "../up",
    "with space",
    "ünï cödé",
    "100%",
    "%41",
    "a.b",
    "-x",
    "_y",
    "x" * 300,
    "é" * 200,
]


def test_brat_export_names_stay_in_their_split_and_round_trip(tmp_path):
    corpus = Corpus.init(tmp_path / "c")
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(
            json.dumps({"id": a, "text": f"The mayor said {k}."}) + "\n"
            for k, a in enumerate(ODD_IDS)
        ),
        encoding="utf-8",
    )
    assert ingest_paths(corpus, [src]).added == len(ODD_IDS)
    ann = tmp_path / "ann"
    ann.mkdir()
    from spanbank.export.brat import file_stem

    for k, a in enumerate(ODD_IDS):  # a human annotation per article, through brat import
        (ann / f"{file_stem(a)}.txt").write_text(f"The mayor said {k}.", encoding="utf-8")
        (ann / f"{file_stem(a)}_alice.ann").write_text(ANN, encoding="utf-8")
    hashed = {file_stem(a): a for a in ODD_IDS if len(a.encode()) > 255}
    assert len(hashed) == 2
    (ann / "article_ids.json").write_text(json.dumps(hashed), encoding="utf-8")
    summary = ingest_paths(corpus, [ann], fmt="brat")
    assert (
        summary.added == 0
        and summary.unchanged == len(ODD_IDS)
        and summary.annotations == len(ODD_IDS)
    )
    out = tmp_path / "e"
    export_dataset(corpus, "brat", out, split="train=1")
    files = [p for p in (out / "brat").rglob("*") if p.is_file()]
    assert all(p.parent.name == "train" or p.parent == out / "brat" for p in files)
    assert all(len(p.name.encode()) <= 255 for p in files)
    assert len([p for p in files if p.suffix == ".txt"]) == len(ODD_IDS)
    again = ingest_paths(corpus, [out / "brat"], fmt="brat")  # the same ids: nothing new
    assert again.added == 0 and again.unchanged == len(ODD_IDS)
    assert sorted(corpus.read("articles")["article_id"]) == sorted(ODD_IDS)
    back = Corpus.init(tmp_path / "back")
    ingest_paths(back, [out / "brat"], fmt="brat")
    assert sorted(back.read("articles")["article_id"]) == sorted(ODD_IDS)


# -- 12.13: a YAML alias bomb in a schema is refused before it is expanded -------------------------


def _bomb(levels: int) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]" for k in range(1, levels)]
    return (
        "\n".join(lines)
        + f"""
name: bomb
version: 1
labels:
  QUOTE:
    attributes:
      type:
        values: *l{levels - 1}
"""
    )


def test_schema_alias_bomb_is_refused(tmp_path):
    from spanbank.errors import SchemaError
    from spanbank.schema import load_schema

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb(7))  # 9**7 = 4.8 million strings once expanded
    with pytest.raises(SchemaError, match="alias bomb"):
        load_schema(bomb)
    result = CliRunner().invoke(cli, ["schema", "show", str(bomb)])
    assert (
        result.exit_code == 1 and result.output.count("\n") == 1 and "alias bomb" in result.output
    )
    (tmp_path / "self.yaml").write_text("name: &n [*n]\nversion: 1\nlabels: {A: {}}\n")
    with pytest.raises(SchemaError):
        load_schema(tmp_path / "self.yaml")
    (tmp_path / "big.yaml").write_text("# " + "x" * (2 << 20))
    with pytest.raises(SchemaError, match="too large"):
        load_schema(tmp_path / "big.yaml")


def test_schema_with_a_few_aliases_still_loads(tmp_path):
    from spanbank.schema import load_schema

    (tmp_path / "s.yaml").write_text(
        "name: s\nversion: 1\nlabels:\n  QUOTE:\n    attributes:\n      type: &t {values: [a, b]}\n"
        "  EVENT:\n    attributes:\n      type: *t\n"
    )
    assert load_schema(tmp_path / "s.yaml").labels["EVENT"].attributes["type"].values == ("a", "b")


# -- 12.12: binary and gzip inputs, --skip-bad, --strict --------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


@pytest.mark.parametrize(
    "name, data, what",
    [
        ("pic.txt", PNG, "a PNG image"),
        ("doc.txt", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document"),
        ("rows.jsonl", b"PK\x03\x04\x14\x00\x00\x00", "a zip archive"),
        ("rows.csv", b"text\nabc\x00def\n", "a NUL byte at byte 8"),
    ],
)
def test_binary_files_are_named_not_sent_to_encoding(corpus, tmp_path, name, data, what):
    from spanbank.errors import IngestError

    (tmp_path / name).write_bytes(data)
    with pytest.raises(IngestError, match=what) as exc:
        ingest_paths(corpus, [tmp_path / name])
    assert "--encoding" not in str(exc.value)
    with pytest.raises(IngestError, match=what):  # following the old advice changes nothing
        ingest_paths(corpus, [tmp_path / name], encoding="latin-1")
    assert not corpus.has("articles") or len(corpus.read("articles")) == 0


def test_utf16_text_with_nul_bytes_is_still_text(corpus, tmp_path):
    (tmp_path / "a.txt").write_bytes("Title\nBody text.".encode("utf-16"))
    assert ingest_paths(corpus, [tmp_path / "a.txt"], encoding="utf-16").added == 1


def test_gzip_jsonl_csv_and_txt_are_read_directly(corpus, tmp_path):
    import gzip

    (tmp_path / "a.jsonl.gz").write_bytes(
        gzip.compress(b'{"id": "j1", "text": "From JSON Lines."}\n')
    )
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(b"id,text\nc1,From CSV.\n"))
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress("Title\nFrom text ü.".encode()))
    summary = ingest_paths(corpus, [tmp_path])
    assert summary.added == 3 and summary.refused == []
    arts = corpus.read("articles").set_index("article_id")["text"]
    assert arts["j1"] == "From JSON Lines." and arts["c1"] == "From CSV."
    assert "Title\nFrom text ü." in set(arts)
    (tmp_path / "bad.jsonl.gz").write_bytes(gzip.compress(b'{"id": "x", "text": "t"}\n')[:-12])
    from spanbank.errors import IngestError

    with pytest.raises(IngestError, match="bad.jsonl.gz: not a readable gzip file"):
        ingest_paths(corpus, [tmp_path / "bad.jsonl.gz"])


def _mixed_folder(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.jsonl").write_text('{"id": "a1", "text": "Good one."}\n{"id": "a2", "text": ""}\n')
    (d / "b.txt").write_bytes(PNG)
    (d / "c.csv").write_text("id,text\nc1,Also good.\n")
    (d / "d.jsonl").write_bytes(
        b'{"id": "d1", "text": "partly read"}\n' + "\xff".encode("latin-1") + b"\n"
    )
    return d


def test_skip_bad_leaves_out_each_bad_file_with_its_reason(corpus, tmp_path, monkeypatch):
    from spanbank.corpus import ingest
    from spanbank.errors import IngestError

    # small blocks and batches: d.jsonl's good first row is read and parked before its bad byte
    monkeypatch.setattr(ingest, "READ_BLOCK", 16)
    monkeypatch.setattr(ingest, "BATCH_ROWS", 1)
    d = _mixed_folder(tmp_path)
    with pytest.raises(IngestError, match="b.txt: a PNG image"):
        ingest_paths(corpus, [d])
    summary = ingest_paths(corpus, [d], skip_bad=True)
    assert sorted(corpus.read("articles")["article_id"]) == [
        "a1",
        "c1",
    ]  # nothing of d.jsonl either
    assert summary.added == 2 and len(summary.skipped) == 2
    assert (
        "b.txt: a PNG image" in summary.skipped[0]
        and "d.jsonl: not valid utf-8" in summary.skipped[1]
    )
    assert summary.refused == [f"{d / 'a.jsonl'}:2: text is empty or whitespace only"]


def test_cli_skip_bad_and_strict(tmp_path):
    d = _mixed_folder(tmp_path)
    runner = CliRunner()
    c = str(tmp_path / "c")
    assert runner.invoke(cli, ["--corpus", c, "init"]).exit_code == 0
    plain = runner.invoke(cli, ["--corpus", c, "ingest", str(d)])
    assert (
        plain.exit_code == 1
        and plain.output.startswith("Error: ")
        and plain.output.count("\n") == 1
    )
    ok = runner.invoke(cli, ["--corpus", c, "ingest", str(d), "--skip-bad", "--json"])
    assert ok.exit_code == 0, ok.output
    out = json.loads(ok.output)
    assert out["added"] == 2 and out["skipped_files"] == 2 and len(out["reasons"]) == 3
    strict = runner.invoke(cli, ["--corpus", c, "ingest", str(d), "--skip-bad", "--strict"])
    assert strict.exit_code == 1 and "Error: --strict: 3 " in strict.output
    (tmp_path / "fine.jsonl").write_text('{"id": "f1", "text": "Fine."}\n')
    assert (
        runner.invoke(
            cli, ["--corpus", c, "ingest", str(tmp_path / "fine.jsonl"), "--strict"]
        ).exit_code
        == 0
    )


def test_brat_skip_bad(corpus, tmp_path):
    d = brat_folder(tmp_path / "b", {"d1": TEXT, "d2": TEXT})
    (d / "d2_alice.ann").write_bytes(b"\x1f\x8b\x08\x00garbage")
    summary = ingest_paths(corpus, [d], fmt="brat", skip_bad=True)
    assert summary.added == 2 and summary.annotations == 1
    assert (
        len(summary.skipped) == 1 and "d2_alice.ann: not a readable gzip file" in summary.skipped[0]
    )


def test_export_onto_a_mount_point_is_refused_before_any_work(annotated, tmp_path):
    """A mount point (a container's volume) cannot be renamed: the export was built whole, then
    its swap failed with EBUSY. `/proc` is one on every Linux."""
    with pytest.raises(ExportError, match=r"^--out /proc is a mount point, .*--out /proc/exports"):
        export_dataset(annotated, "jsonl", Path("/proc"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "corpus"]
