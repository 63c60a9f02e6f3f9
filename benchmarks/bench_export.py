"""Benchmark `export_dataset` on a synthetic corpus (default 100,000 articles): jsonl, spacy, hf.

Each format is exported in its own process so its peak RSS is its own. The spaCy export is
compared with spaCy's own work on the same data in the same run: `make_doc` + `char_span`
(expand) for every span of every article (baseline; data already in memory). Not a test.

    .venv/bin/python benchmarks/bench_export.py --n 10000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from spanbank.corpus import TABLES, Corpus, to_arrow, write_parquet_atomic
from spanbank.synth import synth_chunks

FORMATS = ("jsonl", "spacy", "hf")


def build(path: Path, n: int, chunk: int = 5000) -> dict:
    """A corpus whose tables are directories of Parquet parts (written chunk by chunk)."""
    corpus = Corpus.init(path)
    counts = {"articles": 0, "spans": 0, "relations": 0}
    for k, (arts, spans, rels) in enumerate(synth_chunks(n, seed=0, chunk=chunk)):
        now = pd.Timestamp("2025-06-01", tz="UTC")
        ann = pd.DataFrame({
            "annotation_id": arts["article_id"] + "-truth", "project": "bench", "article_id": arts["article_id"],
            "annotator": "truth", "origin": "human", "created_at": now, "updated_at": now, "version": 1,
            "cancelled": False, "superseded": False,
        })
        tables = {
            "articles": arts.assign(language="en", origin="synth"),
            "annotations": ann,
            "spans": spans.drop(columns="annotator"),
            "relations": rels,
        }
        for name, df in tables.items():
            for col in TABLES[name].names:
                if col not in df:
                    df[col] = None
            write_parquet_atomic(to_arrow(name, df), corpus.table_path(name) / f"part-{k:05d}.parquet")
        counts["articles"] += len(arts)
        counts["spans"] += len(spans)
        counts["relations"] += len(rels)
    return counts


def child_export(corpus_dir: str, fmt: str, out: str) -> dict:
    from spanbank.export import export_dataset

    t = time.perf_counter()
    summary = export_dataset(Corpus(corpus_dir), [fmt], out)
    dt = time.perf_counter() - t
    return {"seconds": dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "articles": summary["articles"], "notes": summary["notes"]}


def child_baseline(corpus_dir: str) -> dict:
    """spaCy alone: make_doc + char_span(expand) over the same articles and spans."""
    import spacy

    corpus = Corpus(corpus_dir)
    texts = corpus.read("articles", columns=["article_id", "text"])
    spans = corpus.read("spans", columns=["article_id", "label", "start", "end"])
    by_article = {a: list(zip(g["start"].tolist(), g["end"].tolist(), g["label"].tolist(), strict=False))
                  for a, g in spans.groupby("article_id", sort=False)}
    nlp = spacy.blank("en")
    t = time.perf_counter()
    n = 0
    for aid, text in zip(texts["article_id"], texts["text"], strict=False):
        doc = nlp.make_doc(text)
        for s, e, lab in by_article.get(aid, ()):
            doc.char_span(s, e, label=lab, alignment_mode="expand")
            n += 1
    dt = time.perf_counter() - t
    return {"seconds": dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "spans": n}


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="synthetic articles (default 100,000)")
    ap.add_argument("--formats", default=",".join(FORMATS), help="comma-separated (default jsonl,spacy,hf)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        res = child_baseline(*rest) if kind == "baseline" else child_export(*rest)
        print(json.dumps(res))
        return
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        counts = build(root / "corpus", args.n)
        print(f"corpus: {counts['articles']:,} articles, {counts['spans']:,} spans, "
              f"{counts['relations']:,} relations (built in {time.perf_counter() - t:.1f} s)")
        results = {}
        for fmt in args.formats.split(","):
            results[fmt] = r = run_child(fmt, str(root / "corpus"), fmt, str(root / f"out-{fmt}"))
            size = sum(p.stat().st_size for p in (root / f"out-{fmt}").rglob("*") if p.is_file())
            print(f"{fmt:>6}: {r['seconds']:7.2f} s  {args.n / r['seconds']:8.0f} articles/s  "
                  f"peak RSS {r['peak_rss_mb']:7.0f} MB  output {size / 1e6:7.1f} MB  notes {r['notes']}")
        if "spacy" not in results:
            return
        base = run_child("baseline", str(root / "corpus"))
        print(f"spaCy make_doc+char_span baseline: {base['seconds']:.2f} s for {base['spans']:,} spans "
              f"(peak RSS {base['peak_rss_mb']:.0f} MB, all data in memory)")
        print(f"ratio spacy export / baseline: {results['spacy']['seconds'] / base['seconds']:.2f}x")


if __name__ == "__main__":
    main()
