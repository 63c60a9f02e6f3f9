"""Pre-annotation benchmark: articles per second of `spanbank.preannotate` on one core, and F1 on the seed gold.

Articles come from the shared synthetic corpus (`spanbank.synth`). The baseline is a single
regex scan for quote marks over the same texts (the floor any tagger pays); the ratio says
how many scans one tagging costs. Goal: >= 500 articles/s.
Usage: python benchmarks/bench_preannotate.py --n 5000
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from _common import ROOT, bench_main, synth_corpus

WORKLOAD = "preannotate"
GOAL = 500.0
_MARKS = re.compile(r"[\"“”„«»]")


def _texts(p: dict) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_table(p["src"], columns=["text"]).column("text").to_pylist()


def prepare(n: int, work: Path) -> dict:
    return {"src": str(synth_corpus(n) / "articles.parquet"), "n": n}


def ours(p: dict, rep: int) -> dict:
    from spanbank.preannotate import preannotate

    texts = _texts(p)
    preannotate(texts[0])  # warm-up: lexicon and patterns load once
    t0 = time.perf_counter()
    spans = sum(len(preannotate(t)["spans"]) for t in texts)
    dt = time.perf_counter() - t0
    return {"s": dt, "articles_per_s": len(texts) / dt, "spans_per_article": spans / len(texts)}


def baseline(p: dict, rep: int) -> dict:
    texts = _texts(p)
    t0 = time.perf_counter()
    for t in texts:
        _MARKS.findall(t)
    dt = time.perf_counter() - t0
    return {"s": dt, "articles_per_s": len(texts) / dt}


def seed_scores() -> dict:
    from spanbank.preannotate import evaluate, preannotate

    with open(ROOT / "seeds" / "000_2e13a8ea3bc18025.txt", encoding="utf-8", newline="") as fh:
        text = fh.read()
    gold = json.loads(
        (ROOT / "tests" / "data" / "000_2e13a8ea3bc18025.gold.json").read_text("utf-8")
    )
    out = preannotate(text)
    spans = [s for s in gold["spans"] if s["label"] != "EVENT"]
    return evaluate(out["spans"], spans, out["relations"], gold["relations"])


def main() -> None:
    args, _ = bench_main(
        "bench_preannotate",
        WORKLOAD,
        __doc__,
        [5000],
        lambda r: (
            f"  ({r['articles_per_s']:.0f} articles/s, {r['articles_per_s'] / GOAL:.1f}x the "
            f"{GOAL:.0f}/s goal; {r['spans_per_article']:.1f} spans/article)"
        ),
    )
    if args.json:
        return
    rep = seed_scores()
    print("seed gold (000_2e13a8ea3bc18025):")
    for key in ("QUOTE", "QUOTE:direct", "QUOTE:indirect", "SPEAKER", "CUE", "said_by", "cue"):
        e, o = rep["exact"].get(key), rep["overlap"].get(key)
        if e:
            print(f"  {key:15s} exact F1 {e['f1']:.3f}   overlap F1 {o['f1']:.3f}")


if __name__ == "__main__":
    main()
