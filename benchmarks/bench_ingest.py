"""Ingest benchmark: `ingest_paths` of N synthetic articles (Parquet input) vs pyarrow writing the same table.

Each side runs in its own child process (peak RSS is its own); median of --repeat runs.
Prints seconds, MB/s of text and the ratio ours / baseline.
Usage: python benchmarks/bench_ingest.py --n 100000
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _common import bench_main, synth_corpus

WORKLOAD = "ingest"


def prepare(n: int, work: Path) -> dict:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    src = synth_corpus(n) / "articles.parquet"
    text = pq.read_table(src, columns=["text"]).column("text")
    return {
        "src": str(src),
        "work": str(work),
        "mb_text": pc.sum(pc.binary_length(text)).as_py() / 1e6,
    }


def ours(p: dict, rep: int) -> dict:
    from spanbank.corpus import Corpus
    from spanbank.corpus.ingest import ingest_paths

    with tempfile.TemporaryDirectory(dir=p["work"]) as work:
        corpus = Corpus.init(Path(work) / "corpus")
        t0 = time.perf_counter()
        summary = ingest_paths(corpus, [p["src"]])
        dt = time.perf_counter() - t0
    return {"s": dt, "mb_s": p["mb_text"] / dt, "added": summary.added}


def baseline(p: dict, rep: int) -> dict:
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(dir=p["work"]) as work:
        t0 = time.perf_counter()
        table = pq.read_table(p["src"])
        pq.write_table(table, Path(work) / "articles.parquet", compression="zstd")
        dt = time.perf_counter() - t0
    return {"s": dt, "mb_s": p["mb_text"] / dt}


def append_growth(n: int, batches: int = 5) -> list[float]:
    """Seconds of each of `batches` successive ingests of n/batches articles into one corpus."""
    import pyarrow.parquet as pq

    from spanbank.corpus import Corpus
    from spanbank.corpus.ingest import ingest_paths

    table = pq.read_table(synth_corpus(n) / "articles.parquet")
    step = n // batches
    out = []
    with tempfile.TemporaryDirectory() as work:
        corpus = Corpus.init(Path(work) / "corpus")
        for k in range(batches):
            part = Path(work) / f"part{k}.parquet"
            pq.write_table(table.slice(k * step, step), part)
            t0 = time.perf_counter()
            ingest_paths(corpus, [part])
            out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    args, _ = bench_main(
        "bench_ingest",
        WORKLOAD,
        __doc__,
        [100_000],
        lambda r: f"  ({r['mb_s']:.1f} vs {r['baseline_mb_s']:.1f} MB/s of text)",
        lambda ap: ap.add_argument(
            "--appends", type=int, default=0, help="also time N successive appends (growth)"
        ),
    )
    if args.appends:
        times = append_growth(args.n[-1], args.appends)
        print(
            f"{args.appends} appends of {args.n[-1] // args.appends:,} articles: "
            + ", ".join(f"{t:.2f}" for t in times)
            + " s"
        )


if __name__ == "__main__":
    main()
