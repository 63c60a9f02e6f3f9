"""Ingest benchmark: `spanbank ingest` of N synthetic articles vs pyarrow writing the same table.

Each side runs in a fresh process so peak RSS is its own. Prints MB/s of text and the ratio.
Usage: python benchmarks/bench_ingest.py --n 100000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(src: str, work: str, q) -> None:
    from spanbank.corpus import Corpus
    from spanbank.ingest import ingest_paths

    corpus = Corpus.init(Path(work) / "corpus")
    t0 = time.perf_counter()
    summary = ingest_paths(corpus, [src])
    q.put({"s": time.perf_counter() - t0, "rss": _peak_mb(), "added": summary.added})


def _baseline(src: str, work: str, q) -> None:
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    table = pq.read_table(src)
    pq.write_table(table, Path(work) / "articles.parquet", compression="zstd")
    q.put({"s": time.perf_counter() - t0, "rss": _peak_mb(), "added": table.num_rows})


def _run(fn, src: str) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with tempfile.TemporaryDirectory() as work:
        p = ctx.Process(target=fn, args=(src, work, q))
        p.start()
        out = q.get()
        p.join()
    return out


def bench(n: int, repeat: int = 3) -> dict:
    import pyarrow.parquet as pq

    from spanbank.synth import synth_articles

    with tempfile.TemporaryDirectory() as tmp:
        src = str(Path(tmp) / "input.parquet")
        arts = synth_articles(n)
        mb = arts["text"].str.len().sum() / 1e6
        pq.write_table(__import__("pyarrow").Table.from_pandas(arts, preserve_index=False), src)
        del arts
        ours = sorted((_run(_ours, src) for _ in range(repeat)), key=lambda r: r["s"])[repeat // 2]
        base = sorted((_run(_baseline, src) for _ in range(repeat)), key=lambda r: r["s"])[repeat // 2]
    return {
        "workload": "ingest", "n": n, "ours_s": ours["s"], "baseline_s": base["s"],
        "ratio": ours["s"] / base["s"], "peak_rss_mb": ours["rss"], "baseline_rss_mb": base["rss"],
        "mb_text": mb, "ours_mb_s": mb / ours["s"], "baseline_mb_s": mb / base["s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    r = bench(args.n, args.repeat)
    if args.json:
        json.dump(r, sys.stdout)
        print()
    else:
        print(f"ingest {r['n']} articles ({r['mb_text']:.0f} MB text): ours {r['ours_s']:.2f} s "
              f"({r['ours_mb_s']:.1f} MB/s, peak {r['peak_rss_mb']:.0f} MB) vs pyarrow {r['baseline_s']:.2f} s "
              f"({r['baseline_mb_s']:.1f} MB/s, peak {r['baseline_rss_mb']:.0f} MB); ratio ours/baseline {r['ratio']:.2f}")


if __name__ == "__main__":
    main()
