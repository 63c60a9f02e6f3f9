"""brat ingest benchmark: one article with N `T` lines and N `A` lines vs reading and splitting the same lines.

Both sides grow linearly when ingest does; a ratio that grows with N shows quadratic work (an
`A` line once searched every span: 40k T + 40k A lines took 164 s).
Usage: python benchmarks/bench_brat.py --n 10000 40000
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _common import bench_main

WORKLOAD = "brat"


def prepare(n: int, work: Path) -> dict:
    """`<work>/brat-n<N>/`: d.txt of N words, d_alice.ann with a Content span and a Type on each
    (every tenth span discontinuous)."""
    folder = work / f"brat-n{n}"
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        words = [f"w{i}" for i in range(n)]
        (folder / "d.txt").write_text(" ".join(words) + "\n", encoding="utf-8")
        lines, pos = [], 0
        for i, w in enumerate(words):
            end = pos + len(w)
            if i % 10 == 9 and i + 1 < n:  # two fragments: this word and the next
                nxt = end + 1 + len(words[i + 1])
                lines.append(f"T{i + 1}\tContent {pos} {end};{end + 1} {nxt}\t{w} {words[i + 1]}")
            else:
                lines.append(f"T{i + 1}\tContent {pos} {end}\t{w}")
            lines.append(f"A{i + 1}\tType T{i + 1} direct")
            pos = end + 1
        (folder / "d_alice.ann").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (folder / "done").write_text("")
    return {"src": str(folder), "work": str(work)}


def ours(p: dict, rep: int) -> dict:
    from spanbank.corpus import Corpus
    from spanbank.corpus.ingest import ingest_paths

    with tempfile.TemporaryDirectory(dir=p["work"]) as work:
        corpus = Corpus.init(Path(work) / "corpus")
        t0 = time.perf_counter()
        summary = ingest_paths(corpus, [p["src"]], fmt="brat")
        dt = time.perf_counter() - t0
    return {"s": dt, "spans": summary.spans, "rejected": len(summary.rejected)}


def baseline(p: dict, rep: int) -> float:
    t0 = time.perf_counter()
    raw = (Path(p["src"]) / "d_alice.ann").read_text(encoding="utf-8")
    fields = [line.split("\t") for line in raw.split("\n")]
    assert fields
    return time.perf_counter() - t0


def main() -> None:
    bench_main(
        "bench_brat",
        WORKLOAD,
        __doc__,
        [10_000, 40_000],
        lambda r: f"  ({r['spans']:,} spans, {r['rejected']} rejected)",
    )


if __name__ == "__main__":
    main()
