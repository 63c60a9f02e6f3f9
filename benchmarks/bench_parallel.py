"""Dask engine benchmark: the heavy stages on 1 vs 2 local workers, and the default vs in-process.

Prints, for N synthetic articles (spanbank.synth truth annotations, a spanbank corpus):
- export (spaCy; and all six formats) with --workers 1 and --workers 2: speedup 1 -> 2;
- the default engine (this machine's cores) vs in-process (--workers 1): ratio, goal <= 1.1;
- export to spaCy vs spaCy's own make_doc + char_span over the same data, in one process;
- the rule tagger over the same articles mapped by the engine: speedup 1 -> 2;
- peak RSS of the driver and of each worker process (psutil) at N and 4N: the slope per
  1,000 articles.
Every figure is a ratio of two runs in this same process tree, one after the other.
Usage: python benchmarks/bench_parallel.py --n 10000
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from _common import CACHE, corpus_from_synth

os.environ.pop("SPANBANK_WORKERS", None)


def corpus(n: int) -> Path:
    root = CACHE / f"parallel-{n}"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        corpus_from_synth(root / "corpus", n)
        (root / "done").write_text("ok\n")
    return root / "corpus"


class PeakRss:
    """Peak RSS (MB) of this process and, separately, of each of its child processes."""

    def __init__(self):
        import psutil

        self.me = psutil.Process()
        self.driver = 0.0
        self.children: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.wait(0.05):
            self.driver = max(self.driver, self.me.memory_info().rss / 2**20)
            for c in self.me.children(recursive=True):
                try:
                    rss = c.memory_info().rss / 2**20
                except Exception:
                    continue
                self.children[c.pid] = max(self.children.get(c.pid, 0.0), rss)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def export_time(path: Path, formats: str, workers: int | None) -> tuple[float, PeakRss]:
    from spanbank.corpus import Corpus
    from spanbank.export import export_dataset

    with tempfile.TemporaryDirectory(dir=CACHE) as tmp, PeakRss() as rss:
        t0 = time.perf_counter()
        export_dataset(Corpus(path), formats, Path(tmp) / "out", workers=workers, agreement=False)
        return time.perf_counter() - t0, rss


def spacy_baseline(path: Path) -> float:
    import spacy

    from spanbank.corpus import Corpus

    c = Corpus(path)
    texts = c.read("articles", columns=["article_id", "text"])
    spans = c.read("spans", columns=["article_id", "label", "start", "end"])
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
    return time.perf_counter() - t0


def _tag(texts: list[str]) -> int:
    from spanbank.preannotate import preannotate

    return sum(len(preannotate(t)["spans"]) for t in texts)


def tagger_time(path: Path, workers: int) -> float:
    from spanbank.corpus import Corpus
    from spanbank.parallel import engine

    texts = Corpus(path).read("articles", columns=["text"])["text"].tolist()
    parts = [texts[i : i + 500] for i in range(0, len(texts), 500)]
    with engine(workers=workers) as eng:
        t0 = time.perf_counter()
        sum(eng.map(_tag, parts))
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS at n and 4n")
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    path = corpus(args.n)
    print(f"n={args.n:,} articles, {os.cpu_count()} cores")
    for formats in ("spacy", "jsonl,spacy,hf,conll,brat,quotes"):
        one, _ = export_time(path, formats, 1)
        two, _ = export_time(path, formats, 2)
        print(
            f"export {formats:<34} 1 worker {one:7.2f} s  2 workers {two:7.2f} s  speedup {one / two:5.2f}"
        )
    one, _ = export_time(path, "spacy", 1)
    default, _ = export_time(path, "spacy", None)
    print(
        f"export spacy: default engine {default:.2f} s vs in-process {one:.2f} s: ratio {default / one:5.2f}"
    )
    base = spacy_baseline(path)
    print(
        f"export spacy vs spaCy make_doc+char_span ({base:.2f} s): 1 worker {one / base:5.2f}x, "
        f"default {default / base:5.2f}x"
    )
    t1, t2 = tagger_time(path, 1), tagger_time(path, 2)
    print(
        f"rule tagger 1 worker {t1:.2f} s ({args.n / t1:,.0f} articles/s)  2 workers {t2:.2f} s  "
        f"speedup {t1 / t2:5.2f}"
    )
    if args.memory:
        rows = []
        for n in (args.n, 4 * args.n):
            _, rss = export_time(corpus(n), "spacy", 2)
            worker = max(rss.children.values(), default=0.0)
            rows.append((n, rss.driver, worker))
            print(f"peak RSS n={n:,}: driver {rss.driver:7.0f} MB, largest worker {worker:7.0f} MB")
        (n0, d0, w0), (n1, d1, w1) = rows
        per_k = 1000 / (n1 - n0)
        print(
            f"slope per 1,000 articles: driver {(d1 - d0) * per_k:6.2f} MB, worker {(w1 - w0) * per_k:6.2f} MB"
        )


if __name__ == "__main__":
    main()
