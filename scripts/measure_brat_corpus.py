"""Measure a real brat corpus end to end: file counts vs what ingest stored, rejects, quotes, brat round trip.

Usage: python scripts/measure_brat_corpus.py [FOLDER] [--json]
FOLDER defaults to ../shared/data/polnear-train (PolNeAR: `text/`, `attributions/`, `metadata.tsv`).
The corpus and exports go to a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd

from spanbank.corpus.ingest import ingest_paths
from spanbank.corpus.store import Corpus
from spanbank.corpus.tables import TABLES
from spanbank.export import export_dataset

# ../shared/data/polnear-train beside the repository (or beside a worktree's parent folder)
_ROOT = Path(__file__).resolve().parents[1]
DEFAULT = (
    next(
        (
            p
            for p in (_ROOT.parent, _ROOT.parent.parent)
            if (p / "shared/data/polnear-train").is_dir()
        ),
        _ROOT.parent,
    )
    / "shared/data/polnear-train"
)
SPEAKER_ROLES = ("Source",)


def linked_quotes(folder: Path) -> set[tuple[str, str]]:
    """(file stem, T id) of every Content an E line links to a Source (after the import's
    `_<annotator>` suffix is cut from the stem)."""
    out = set()
    for ann in folder.rglob("*.ann"):
        stem = ann.stem.rsplit("_", 1)[0]
        for line in ann.read_text("utf-8").split("\n"):
            parts = line.split("\t")
            if not line.startswith("E") or len(parts) < 2:
                continue
            roles = [a.split(":") for a in parts[1].split()]
            if any(r.rstrip("0123456789") in SPEAKER_ROLES for r, _ in roles):
                out |= {(stem, t) for r, t in roles if r.rstrip("0123456789") == "Content"}
    return out


def file_counts(folder: Path) -> dict:
    """What the `.ann` files hold: T lines by label, E lines, fragments, quotes linked to a source."""
    labels, frags, e_lines, linked = Counter(), Counter(), 0, 0
    for ann in sorted(folder.rglob("*.ann")):
        for line in ann.read_text("utf-8").split("\n"):
            parts = line.split("\t")
            if line.startswith("T") and len(parts) >= 3:
                label, _, offs = parts[1].partition(" ")
                labels[label] += 1
                frags[label] += offs.count(";") + 1
            elif line.startswith("E") and len(parts) >= 2:
                e_lines += 1
                roles = [a.split(":")[0].rstrip("0123456789") for a in parts[1].split()[1:]]
                linked += "Content" in roles and any(r in SPEAKER_ROLES for r in roles)
    return {
        "ann_files": len(list(folder.rglob("*.ann"))),
        "t_lines": dict(labels),
        "t_lines_total": sum(labels.values()),
        "fragments_by_label": dict(frags),
        "discontinuous_t_lines": sum(1 for _ in _discontinuous(folder)),
        "e_lines": e_lines,
        "e_lines_content_with_source": linked,
    }


def _discontinuous(folder: Path):
    for ann in folder.rglob("*.ann"):
        for line in ann.read_text("utf-8").split("\n"):
            parts = line.split("\t")
            if line.startswith("T") and len(parts) >= 3 and ";" in parts[1]:
                yield line


def stored_counts(corpus: Corpus, summary) -> dict:
    """What the corpus holds after the ingest."""
    spans = corpus.read_arrow("spans").to_pandas()
    frag = spans["fragments"].map(lambda f: len(f) if f is not None else 1)
    rejects = corpus.read("rejects")
    reasons = Counter(_reason_kind(r) for r in rejects["reason"])
    arts = corpus.read("articles")
    return {
        "articles": len(arts),
        "articles_with_source_date_title": int(
            (arts["source"].notna() & arts["published_at"].notna() & arts["title"].notna()).sum()
        ),
        "article_columns_added": sorted(set(arts.columns) - set(TABLES["articles"].names)),
        "span_texts_recovered": summary.recovered,
        "spans": len(spans),
        "spans_by_label": spans["label"].value_counts().to_dict(),
        "fragments_stored": int(frag.sum()),
        "discontinuous_spans": int((frag > 1).sum()),
        "relations": corpus.read("relations")["label"].value_counts().to_dict(),
        "ignored_t_lines": summary.ignored,
        "ignored_by_label": summary.ignored_labels,
        "rejects": len(rejects),
        "rejects_of_t_lines": int(rejects["span_id"].notna().sum()),
        "reject_reasons": dict(reasons),
        "reject_examples": rejects["reason"].head(10).tolist(),
    }


def _reason_kind(reason: str) -> str:
    if "roles swapped" in reason:
        return "E line roles swapped"
    if "which was not stored" in reason:
        return "relation to a span that was not stored"
    if "cover" in reason:
        return "offsets do not match the span text"
    return reason.split(": ", 1)[-1][:60]


def quotes_check(out: Path, folder: Path) -> dict:
    q = pd.read_parquet(out / "quotes" / "quotes.parquet")
    want = linked_quotes(folder)
    have = set(
        zip(
            q.loc[q["speaker_text"].notna(), "article_id"],
            q.loc[q["speaker_text"].notna(), "quote_span_id"],
            strict=True,
        )
    )
    missing = sorted(want - have)
    return {
        "quotes_linked_to_a_source_in_files": len(want),
        "of_those_rows_without_speaker": len(missing),
        "rows_without_speaker_examples": missing[:5],
        "quote_rows": len(q),
        "rows_with_speaker": int(q["speaker_text"].notna().sum()),
        "rows_with_cue": int(q["cue_text"].notna().sum()),
        "rows_with_fragments": int(q["quote_fragments"].notna().sum()),
        "speaker_offsets_dtype": str(q["speaker_start"].dtype),
    }


def _span_key(corpus: Corpus) -> tuple[Counter, Counter]:
    """Spans and relations as comparable multisets (ids differ between two imports)."""
    sp = corpus.read_arrow("spans").to_pylist()
    by_id = {(s["annotation_id"], s["span_id"]): s for s in sp}

    def one(s):
        frags = tuple((f["start"], f["end"]) for f in s["fragments"] or ())
        return (
            s["article_id"],
            s["label"],
            s["start"],
            s["end"],
            s["text"],
            frags,
            s["attributes"],
        )

    rels = Counter(
        (
            one(by_id[r["annotation_id"], r["from_span_id"]]),
            one(by_id[r["annotation_id"], r["to_span_id"]]),
            r["label"],
        )
        for r in corpus.read_arrow("relations").to_pylist()
    )
    return Counter(one(s) for s in sp), rels


def round_trip(corpus: Corpus, out: Path, tmp: Path) -> dict:
    back = Corpus.init(tmp / "back")
    summary = ingest_paths(back, [out / "brat"], fmt="brat")
    a_sp, a_rel = _span_key(corpus)
    b_sp, b_rel = _span_key(back)
    texts = corpus.read("articles").set_index("article_id")["text"].sort_index()
    back_texts = back.read("articles").set_index("article_id")["text"].sort_index()
    return {
        "reimport_rejects": len(summary.rejected),
        "texts_identical": bool(texts.equals(back_texts)),
        "spans_identical": a_sp == b_sp,
        "relations_identical": a_rel == b_rel,
        "spans_only_in_original": sum((a_sp - b_sp).values()),
        "spans_only_in_reimport": sum((b_sp - a_sp).values()),
    }


def measure(folder: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = Corpus.init(tmp / "corpus")
        meta = folder / "metadata.tsv"
        summary = ingest_paths(
            corpus, [folder], fmt="brat", metadata=meta if meta.exists() else None
        )
        files = file_counts(folder)
        stored = stored_counts(corpus, summary)
        out = tmp / "out"
        split_by = "compartment" if meta.exists() else None
        export_dataset(
            corpus,
            ["quotes", "brat"],
            out,
            split_by=split_by,
            split=None if split_by else "train=1",
        )
        result = {
            "files": files,
            "stored": stored,
            "reject_rate_of_t_lines": round(stored["rejects"] / files["t_lines_total"], 6),
            "quotes": quotes_check(out, folder),
            "brat_round_trip": round_trip(corpus, out, tmp),
        }
    return result


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    folder = Path(args[0]) if args else DEFAULT
    if not folder.is_dir():
        print(f"{folder}: not found; nothing measured", file=sys.stderr)
        return
    print(json.dumps(measure(folder.resolve()), indent=1, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
