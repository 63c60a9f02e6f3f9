"""Export benchmark: `export_dataset` to spaCy vs spaCy's own `make_doc` + `char_span` over the same data.

The corpus is the synthetic one (`spanbank.synth`, truth annotations), stored as a spanbank
corpus whose tables are directories of Parquet parts. Ours: the whole spaCy export (gold
selection, split, span re-check, DocBin per split written to disk), in a child process so its
peak RSS is its own. Baseline: `make_doc` + `char_span(alignment_mode="expand")` for every span
of every article, data already in memory. `--formats jsonl,hf` times those formats too (ours only).
Usage: python benchmarks/bench_export.py --n 100000
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from _common import CACHE, bench_main, corpus_from_synth, in_child

WORKLOAD = "export"


def prepare(n: int, work: Path, fmt: str = "spacy") -> dict:
    root = work / f"export-{n}"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        corpus_from_synth(root / "corpus", n)
        (root / "done").write_text("ok\n")
    return {"corpus": str(root / "corpus"), "work": str(work), "format": fmt}


def ours(p: dict, rep: int) -> dict:
    from spanbank.corpus import Corpus
    from spanbank.export import export_dataset

    with tempfile.TemporaryDirectory(dir=p["work"]) as tmp:
        t0 = time.perf_counter()
        summary = export_dataset(
            Corpus(p["corpus"]), [p.get("format", "spacy")], Path(tmp) / "out", agreement=False
        )
        dt = time.perf_counter() - t0
    return {"s": dt, "articles_per_s": summary["articles"] / dt}


def baseline(p: dict, rep: int) -> dict:
    import spacy

    from spanbank.corpus import Corpus

    corpus = Corpus(p["corpus"])
    texts = corpus.read("articles", columns=["article_id", "text"])
    spans = corpus.read("spans", columns=["article_id", "label", "start", "end"])
    by_article = {
        a: list(zip(g["start"].tolist(), g["end"].tolist(), g["label"].tolist(), strict=True))
        for a, g in spans.groupby("article_id", sort=False)
    }
    nlp = spacy.blank("en")
    t0 = time.perf_counter()
    for aid, text in zip(texts["article_id"], texts["text"], strict=True):
        doc = nlp.make_doc(text)
        for s, e, lab in by_article.get(aid, ()):
            doc.char_span(s, e, label=lab, alignment_mode="expand")
    dt = time.perf_counter() - t0
    return {"s": dt, "articles_per_s": len(texts) / dt}


def main() -> None:
    args, _ = bench_main(
        "bench_export",
        WORKLOAD,
        __doc__,
        [100_000],
        add_arguments=lambda ap: ap.add_argument(
            "--formats", default="", help="also time these formats (ours only), e.g. jsonl,hf"
        ),
    )
    for fmt in filter(None, args.formats.split(",")):
        for n in args.n:
            r = in_child(
                "bench_export", "ours", prepare(n, CACHE / "work", fmt), args.repeat
            )  # where measure() put it
            print(f"export {fmt:>6} n={n:>9,}  {r['s']:8.3f} s  peak RSS {r['rss']:7.0f} MB")


if __name__ == "__main__":
    main()
