"""Dask engine benchmark: the heavy stages on 1 vs 2 local workers, and the default vs in-process.

Prints, for N synthetic articles (spanbank.synth truth annotations, a spanbank corpus):
- export (spaCy; and all six formats) with --workers 1 and --workers 2: speedup 1 -> 2;
- the default engine (this machine's cores) vs in-process (--workers 1): ratio, goal <= 1.1;
- export to spaCy vs spaCy's own make_doc + char_span over the same data, in one process;
- the rule tagger over the same articles mapped by the engine: speedup 1 -> 2;
- (--stages memory) peak RSS of the driver and of the largest worker (psutil) of a 2-worker
  export at N and 4N (--factor) articles, each in a fresh process: the slope per 1,000 articles
  (memory-tag: of preannotate --out; memory-ingest: of ingesting one JSON Lines file;
  memory-boot: of the agreement report's bootstrap alone, on 1,000 replicates).
Every figure is a ratio of two runs in this same process tree, one after the other.
- the agreement report (--stages agree) the same way, over synthetic articles x 3 annotators,
  and its bootstrap alone;
- ingest (--stages ingest) of one big JSON Lines file on 1 vs 2 workers, and in-process against
  the code at --baseline-ref (e.g. main), each run in its own child process, alternating.
- push's `--select uncertain` ranking (--stages select): `order_articles` tagging N synthetic
  candidates with a small model trained on the seed gold, 1 vs 2 workers; the two orders must match.
- (--stages export-fresh) the export (--formats, default spacy) on 1 worker, the default engine
  and 2 workers, each run in a fresh process, alternating, --repeat rounds: best and median,
  the speedups and the default's ratio to 1 worker; the median
  head (start to the first chunk written) and tail (last chunk to the end); with
  --baseline-ref, the code at that ref too, in the same rounds.
- (--stages start) seconds and CPU seconds until 2 local workers are ready with an export's
  modules imported, and their memory: forked from a forkserver (what the engine does) vs
  spawned (Dask's default).
- (--stages export-real) the in-process export to spaCy vs spaCy's own make_doc + char_span over
  real news: PolNeAR's articles and their gold spans (../shared/data/polnear-train, or --real
  DIR), each run in a fresh process, spaCy imported before either clock starts. Synthetic texts
  are made from a few hundred distinct words, which flatters any tokenizer cache; real text
  does not.
Usage: python benchmarks/bench_parallel.py --n 10000
       python benchmarks/bench_parallel.py --stages ingest --n 200000 --baseline-ref main
       python benchmarks/bench_parallel.py --stages agree --n 5000 --baseline-ref main
       python benchmarks/bench_parallel.py --stages select --n 5000
       python benchmarks/bench_parallel.py --stages export-real --repeat 5
       python benchmarks/bench_parallel.py --stages start --repeat 5
       python benchmarks/bench_parallel.py --stages export-fresh --n 62500 --baseline-ref main
       python benchmarks/bench_parallel.py --stages export-fresh --n 62500 --repeat 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from _common import CACHE, corpus_from_synth, synth_corpus

os.environ.pop("SPANBANK_WORKERS", None)
# every run here, ours and a --baseline-ref's, on the Arrow pool the spanbank command uses:
# children read the variable as pyarrow starts, this process is set by arrowpool.use
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
with contextlib.suppress(ImportError):  # a --baseline-ref's spanbank may predate it
    from spanbank import arrowpool

    arrowpool.use()
with contextlib.suppress(ImportError):  # as the spanbank command sets glibc's malloc
    from spanbank import malloctrim

    malloctrim.tune()


def run_json(code: str, *args: str, path: str | None = None, file: Path | None = None) -> dict:
    """Run `code` (or the script `file`) in a fresh Python (importing spanbank from `path` when
    given) and return the JSON object its last output line holds."""
    import json
    import subprocess
    import sys

    env = os.environ | {"PYTHONPATH": path} if path else None
    run = [str(file)] if file else ["-c", code]
    out = subprocess.run([sys.executable, *run, *args], env=env, capture_output=True, text=True)
    if out.returncode:  # the child's own last words, not only its exit status
        sys.exit(f"a benchmark child failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


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
        # listing children scans every process in /proc: done each second, not each poll, as it
        # took a fifth of a core from the runs it measured
        kids, listed = [], 0.0
        while not self._stop.wait(0.05):
            self.driver = max(self.driver, self.me.memory_info().rss / 2**20)
            if time.monotonic() - listed > 1.0:
                kids, listed = self.me.children(recursive=True), time.monotonic()
            for c in kids:
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


def export_time(
    path: Path, formats: str, workers: int | None, memory: bool = False, phases: dict | None = None
) -> tuple[float, PeakRss | None]:
    """Seconds of the export; with `memory`, also the peak RSS (its polling thread costs CPU);
    `phases` gets `head` (until the first chunk was written) and `tail` (after the last)."""
    from spanbank.corpus import Corpus
    from spanbank.export import export_dataset

    seen: list[float] = []

    def progress(event) -> None:
        if event.stage == "exporting":
            seen.append(time.perf_counter())

    watch = PeakRss() if memory else contextlib.nullcontext()
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp, watch as rss:
        t0 = time.perf_counter()
        export_dataset(
            Corpus(path),
            formats,
            Path(tmp) / "out",
            workers=workers,
            agreement=False,
            progress=progress if phases is not None else None,
        )
        end = time.perf_counter()
    if phases is not None and seen:
        phases.update(head=seen[0] - t0, tail=end - seen[-1])
    return end - t0, rss


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


def select_model() -> str:
    """A span model trained once on the repository's seed gold (30 epochs), kept in the cache."""
    out = CACHE / "select-model"
    if not (out / "done").exists():
        import sys

        from spanbank import model
        from spanbank.tagger_eval import gold_items

        sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
        from test_tagger_eval import _seed_corpus

        shutil.rmtree(out, ignore_errors=True)
        items = gold_items(_seed_corpus(out / "seed"))
        model.train(items, out / "m", ["QUOTE", "SPEAKER", "CUE"], holdout=0, epochs=30)
        (out / "done").write_text("ok\n")
    return str(out / "m")


def bench_select(n: int, repeat: int) -> None:
    """Seconds of `order_articles(..., "uncertain")` over n candidates on 1 vs 2 local workers
    (a 2-worker run includes starting its cluster); best of `repeat`, sides alternating."""
    from spanbank.corpus import Corpus
    from spanbank.corpus.articles import selection_frame
    from spanbank.parallel import engine
    from spanbank.selection import order_articles

    model_dir, c = select_model(), Corpus(corpus(n))
    fresh = selection_frame(c, None)
    best: dict[int, float] = {}
    orders: dict[int, list] = {}
    for _ in range(repeat):
        for workers in (1, 2):
            with engine(workers=workers) as eng:
                t0 = time.perf_counter()
                order = order_articles(c, fresh, "uncertain", 0, model_dir, eng)
                best[workers] = min(best.get(workers, 1e9), time.perf_counter() - t0)
            orders[workers] = order["article_id"].tolist()
    assert orders[1] == orders[2], "the two orders differ"
    print(
        f"select uncertain, {n:,} candidates (best of {repeat}): 1 worker {best[1]:.2f} s "
        f"({n / best[1]:,.0f} articles/s)  2 workers {best[2]:.2f} s  "
        f"speedup {best[1] / best[2]:5.2f}  same order: yes"
    )


INGEST_RUN = """
import json, sys, tempfile, time
from pathlib import Path
from spanbank.corpus import Corpus
from spanbank.corpus.ingest import ingest_paths
src, work, workers = sys.argv[1], sys.argv[2], sys.argv[3]
with tempfile.TemporaryDirectory(dir=work) as tmp:
    corpus = Corpus.init(Path(tmp) / "corpus")
    kw = {} if workers == "today" else {"workers": None if workers == "default" else int(workers)}
    t0 = time.perf_counter()
    s = ingest_paths(corpus, [src], **kw)
    print(json.dumps({"s": time.perf_counter() - t0, "added": s.added, "refused": len(s.refused)}))
"""


AGREE_RUN = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from bench_agree import tables
import spanbank.agreement.report as report
n, workers = int(sys.argv[2]), sys.argv[3]
t = tables(n)
kw = {}
if workers != "today":
    from spanbank.parallel import Engine
    kw["engine"] = Engine(int(workers))
boot, boot_s = report._bootstrap, []
def timed(*args):
    t0 = time.perf_counter()
    out = boot(*args)
    boot_s.append(time.perf_counter() - t0)
    return out
report._bootstrap = timed
t0 = time.perf_counter()
rep = report.build_report(*t, bootstrap=1000, **kw)
s = time.perf_counter() - t0
print(json.dumps({"s": s, "boot_s": boot_s[0], "alpha": rep["summary"]["token_alpha"]}))
"""


def agree_time(n: int, workers: str, pythonpath: str) -> tuple[float, float, dict]:
    """Seconds of `build_report` (bootstrap 1000) over n synthetic articles x 3 annotators and of
    its bootstrap alone, in a child process importing spanbank from `pythonpath` (a local
    cluster's start included)."""

    got = run_json(
        AGREE_RUN, str(Path(__file__).resolve().parent), str(n), workers, path=pythonpath
    )
    return got["s"], got["boot_s"], got["alpha"]


def _baseline_src(ref: str) -> Path:
    """The src/ folder of git ref `ref`, extracted into the cache (removed by the caller)."""
    import subprocess

    base = Path(tempfile.mkdtemp(dir=CACHE))
    repo = Path(__file__).resolve().parents[1]
    tar = subprocess.run(
        ["git", "-C", str(repo), "archive", ref, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(base)], input=tar, check=True)
    return base


def bench_agree(n: int, baseline_ref: str | None, repeat: int) -> None:
    """The agreement report: 1 vs 2 workers, and 1 worker vs the code at `baseline_ref`."""
    import statistics

    from bench_agree import tables

    tables(n)  # made once, before timing
    here = str(Path(__file__).resolve().parents[1] / "src")
    print(f"agreement report over {n:,} articles x 3 annotators (bootstrap 1000)")
    sides = {"1 worker": ("1", here), "2 workers": ("2", here)}
    base = _baseline_src(baseline_ref) if baseline_ref else None
    if base:
        sides[f"{baseline_ref} (before)"] = ("today", str(base / "src"))
    times: dict[str, list[float]] = {k: [] for k in sides}
    boot: dict[str, list[float]] = {k: [] for k in sides}
    values = {}
    for _ in range(repeat):
        for name, (workers, path) in sides.items():
            dt, boot_s, values[name] = agree_time(n, workers, path)
            times[name].append(dt)
            boot[name].append(boot_s)
    best = {k: min(v) for k, v in times.items()}
    for k, v in times.items():
        print(
            f"  {k:<22} best {best[k]:6.2f} s  median {statistics.median(v):6.2f} s  "
            f"bootstrap best {min(boot[k]):5.2f} s  token alpha {values[k]['value']!r}"
        )
    print(f"  speedup 1 -> 2 workers: {best['1 worker'] / best['2 workers']:5.2f}")
    if base:
        ratio = best["1 worker"] / best[f"{baseline_ref} (before)"]
        print(f"  in-process now / {baseline_ref}: {ratio:5.2f} (goal <= 1.1)")
        shutil.rmtree(base, ignore_errors=True)


def ingest_input(n: int) -> Path:
    """One JSON Lines file of the n synthetic articles (about 1.1 KB each), made once."""
    import pyarrow.parquet as pq

    out = CACHE / f"ingest-{n}.jsonl"
    if not out.exists():
        import json

        table = pq.read_table(synth_corpus(n) / "articles.parquet")
        with open(out.with_suffix(".tmp"), "w", encoding="utf-8") as fh:
            for row in table.to_pylist():
                row = {
                    k: (str(v) if k == "published_at" and v is not None else v)
                    for k, v in row.items()
                }
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        out.with_suffix(".tmp").rename(out)
    return out


def ingest_time(src: Path, workers: str, pythonpath: str) -> float:
    """Seconds of `ingest_paths` of `src` into a new corpus, in a child process importing
    spanbank from `pythonpath` (workers "today": that code's own default call)."""

    return run_json(INGEST_RUN, str(src), str(CACHE), workers, path=pythonpath)["s"]


def bench_ingest(n: int, baseline_ref: str | None, repeat: int) -> None:
    """Ingest of one big JSON Lines file: 1 vs 2 workers, and in-process vs the code at
    `baseline_ref` (git archive of its src/), alternating, best of `repeat`."""

    src = ingest_input(n)
    here = str(Path(__file__).resolve().parents[1] / "src")
    print(f"ingest of {n:,} articles, one JSON Lines file of {src.stat().st_size / 1e6:,.0f} MB")
    sides = {"1 worker": ("1", here), "2 workers": ("2", here)}
    if baseline_ref:
        base = _baseline_src(baseline_ref)
        sides[f"{baseline_ref} (before)"] = ("today", str(base / "src"))
    best, med = alternating(sides, repeat, lambda name: ingest_time(src, *sides[name]))
    for k in sides:
        print(f"  {k:<22} best {best[k]:6.2f} s  median {med[k]:6.2f} s  ({n / best[k]:,.0f}/s)")
    print(f"  speedup 1 -> 2 workers: {best['1 worker'] / best['2 workers']:5.2f}")
    if baseline_ref:
        ratio = best["1 worker"] / best[f"{baseline_ref} (before)"]
        print(f"  in-process now / {baseline_ref}: {ratio:5.2f} (goal <= 1.1)")
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS at n and 4n")
    ap.add_argument(
        "--stages",
        default="export,tagger",
        help="comma-separated: export, tagger, ingest, agree, select, export-real, export-fresh, "
        "start, memory, memory-tag, memory-ingest, memory-boot",
    )
    ap.add_argument(
        "--baseline-ref",
        default=None,
        help="ingest, agree, export-fresh: also time the code at this git ref (e.g. main)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="ingest, agree, select, export-real: runs per side, alternating",
    )
    ap.add_argument("--real", type=Path, default=POLNEAR, help="export-real: a brat folder")
    ap.add_argument("--formats", default="spacy", help="export-fresh: the formats to export")
    ap.add_argument(
        "--factor", type=int, default=4, help="memory stages: the second size is factor x n"
    )
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    stages = set(args.stages.split(","))
    if "ingest" in stages:
        bench_ingest(args.n, args.baseline_ref, args.repeat)
    if "agree" in stages:
        bench_agree(args.n, args.baseline_ref, args.repeat)
    if "select" in stages:
        bench_select(args.n, args.repeat)
    if "export-real" in stages:
        bench_export_real(args.real, args.repeat)
    if "start" in stages:
        bench_start(args.repeat)
    if "export-fresh" in stages:
        bench_export_fresh(args.n, args.repeat, args.formats, args.baseline_ref)
    if args.memory:
        stages.add("memory")
    if "memory" in stages:
        for formats in ("spacy", "jsonl,spacy,hf,conll,brat,quotes", "preannotate"):
            bench_memory(args.n, formats, args.factor)
    if "memory-tag" in stages:
        bench_memory(args.n, "preannotate", args.factor)
    if "memory-ingest" in stages:
        bench_memory(args.n, "ingest", args.factor)
    if "memory-boot" in stages:
        bench_memory(args.n, "bootstrap", args.factor)
    if not stages & {"export", "tagger"}:
        return
    path = corpus(args.n)
    print(f"n={args.n:,} articles, {os.cpu_count()} cores")
    if "export" in stages:
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
    if "tagger" in stages:
        t1, t2 = tagger_time(path, 1), tagger_time(path, 2)
        print(
            f"rule tagger 1 worker {t1:.2f} s ({args.n / t1:,.0f} articles/s)  2 workers {t2:.2f} s  "
            f"speedup {t1 / t2:5.2f}"
        )


MEMORY_RUN = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from bench_parallel import bootstrap_rss, export_time, ingest_rss, preannotate_time
if sys.argv[3] == "preannotate":
    s, rss = preannotate_time(Path(sys.argv[2]), 2)
elif sys.argv[3] == "ingest":
    s, rss = ingest_rss(Path(sys.argv[2]), 2)
elif sys.argv[3] == "bootstrap":
    s, rss = bootstrap_rss(int(sys.argv[2]), 2)
else:
    s, rss = export_time(Path(sys.argv[2]), sys.argv[3], 2, memory=True)
print(json.dumps({"s": s, "driver": rss.driver, "worker": max(rss.children.values(), default=0.0)}))
"""


POLNEAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "polnear-train"
# export-real (sides "export" and "baseline"): spaCy is imported before the clock starts on both
# sides (the baseline also builds its spacy.blank outside it; our export builds its own inside).
# export-fresh (sides "1" and "2" workers): inside it, as the workers of "2" must import it too.
REAL_RUN = """
import json, sys, time
t0 = time.perf_counter()
if sys.argv[3] in ("export", "baseline"):
    import spacy
t_import = time.perf_counter() - t0
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from bench_parallel import export_time, spacy_baseline
path = Path(sys.argv[2])
if sys.argv[3] == "baseline":
    s = spacy_baseline(path)
else:
    formats = sys.argv[4] if len(sys.argv) > 4 else "spacy"
    phases = {}
    w = 1 if sys.argv[3] == "export" else None if sys.argv[3] == "default" else int(sys.argv[3])
    s = export_time(path, formats, w, phases=phases)[0]
print(json.dumps({"s": s, "import": t_import, **phases}))
"""


def alternating(sides, repeat: int, run) -> tuple[dict, dict]:
    """`run(side)` for each side, `repeat` rounds with the sides alternating: (best, median) of
    the seconds per side."""
    import statistics

    times: dict = {side: [] for side in sides}
    for _ in range(repeat):
        for side in sides:
            times[side].append(run(side))
    return (
        {k: min(v) for k, v in times.items()},
        {k: statistics.median(v) for k, v in times.items()},
    )


START_RUN = """
import json, os, time
import psutil


def ready():  # what an export's part brings into a worker; its memory then
    import pyarrow as pa
    import spacy
    import spanbank.export
    pa.array(["x"])
    m = psutil.Process().memory_full_info()
    return m.uss / 2**20, m.pss / 2**20


if __name__ == "__main__":
    from spanbank.parallel import engine
    me = psutil.Process()
    cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
    with engine(workers=2) as eng:
        eng.start("spanbank.export", "spacy")  # as export starts its cluster
        mem = list(eng._connect().run(ready).values())
        wall = time.perf_counter() - t0
        kids = sum(sum(k.cpu_times()[:2]) for k in me.children(recursive=True))
        cpu = sum(me.cpu_times()[:2]) - cpu0 + kids
        print(json.dumps({"s": wall, "cpu": cpu, "uss": max(m[0] for m in mem),
                          "pss": max(m[1] for m in mem)}))
"""


def bench_start(repeat: int) -> None:
    """Seconds and CPU seconds (this process and its children) until a local cluster of 2 workers
    has an export's modules (spaCy among them) imported, and each worker's unique and
    proportional memory (USS, PSS) then: workers forked from a forkserver (ours) vs spawned
    (Dask's default), each run in a fresh process, alternating."""
    import statistics

    key = "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD"
    sides = {"forkserver": "forkserver", "spawn": "spawn"}
    got: dict = {k: [] for k in sides}
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        script = Path(tmp) / "start.py"  # a file: the workers' start runs its main module again
        script.write_text(START_RUN)
        for _ in range(repeat):
            for side, method in sides.items():
                os.environ[key] = method
                try:
                    got[side].append(run_json("", file=script))
                finally:
                    os.environ.pop(key, None)
    print(f"2 local workers ready with an export's modules ({repeat} runs each, fresh processes):")
    med = {}
    for side, runs in got.items():
        med[side] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        s = [r["s"] for r in runs]
        m = med[side]
        print(
            f"  {side:<10} best {min(s):5.2f} s  median {m['s']:5.2f} s  CPU median {m['cpu']:5.2f} s"
            f"  per worker USS {m['uss']:4.0f} MB  PSS {m['pss']:4.0f} MB"
        )
    print(
        f"  spawn / forkserver (median seconds): {med['spawn']['s'] / med['forkserver']['s']:5.2f}"
    )


def bench_export_fresh(
    n: int, repeat: int, formats: str = "spacy", baseline_ref: str | None = None
) -> None:
    """The export on 1 worker, the default engine and 2 workers, each run in a fresh process
    (nothing warm carries over from one run to the next), sides alternating; with
    `baseline_ref`, that code's too, in the same rounds. Also the head (start to first chunk
    written) and tail (last chunk to the end)."""
    import statistics

    here, path = str(Path(__file__).parent), str(corpus(n))
    trees = {"now": str(Path(__file__).resolve().parents[1] / "src")}
    base = _baseline_src(baseline_ref) if baseline_ref else None
    if base:
        trees[baseline_ref] = str(base / "src")
    sides = (1, "default", 2)
    runs: dict = {(tree, w): [] for tree in trees for w in sides}
    try:
        for _ in range(repeat):
            for tree, w in runs:
                got = run_json(REAL_RUN, here, path, str(w), formats, path=trees[tree])
                runs[tree, w].append(got)
    finally:
        if base:
            shutil.rmtree(base, ignore_errors=True)
    print(f"export {formats} n={n:,}, fresh processes, best / median of {repeat}:")
    for tree in trees:
        line = []
        for w in sides:
            s = [r["s"] for r in runs[tree, w]]
            head = [r.get("head", float("nan")) for r in runs[tree, w]]
            tail = [r.get("tail", float("nan")) for r in runs[tree, w]]
            line.append(
                f"{w if w == 'default' else f'{w} worker(s)'} {min(s):.2f} / "
                f"{statistics.median(s):.2f} s "
                f"(head {statistics.median(head):.2f}, tail {statistics.median(tail):.2f})"
            )
        one, auto, two = ([r["s"] for r in runs[tree, w]] for w in sides)
        print(
            f"  {tree:<10} {', '.join(line)}; speedup {min(one) / min(two):.2f} / "
            f"{statistics.median(one) / statistics.median(two):.2f}; default / 1 worker "
            f"{min(auto) / min(one):.2f} / {statistics.median(auto) / statistics.median(one):.2f}"
        )


def real_corpus(folder: Path) -> Path:
    """A corpus of the brat folder's articles and annotations (ingested once, then cached)."""
    from spanbank.corpus import Corpus
    from spanbank.corpus.ingest import ingest_paths

    root = CACHE / f"real-{folder.resolve().name}"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        meta = folder / "metadata.tsv"
        ingest_paths(
            Corpus.init(root / "corpus"),
            [folder],
            fmt="brat",
            metadata=meta if meta.exists() else None,
        )
        (root / "done").write_text("ok\n")
    return root / "corpus"


def bench_export_real(folder: Path, repeat: int) -> None:
    """Our in-process spaCy export vs spaCy's make_doc + char_span over real articles, each run in
    a fresh process (a warm tokenizer would carry over otherwise), sides alternating."""
    if not folder.is_dir():
        print(f"export-real: {folder} is not present, skipped")
        return
    here, path = str(Path(__file__).parent), str(real_corpus(folder))
    imports = []

    def run(side):
        r = run_json(REAL_RUN, here, path, side)
        imports.append(r["import"])
        return r["s"]

    best, med = alternating(("export", "baseline"), repeat, run)
    print(
        f"export spacy of {folder.name} in-process: best {best['export']:.2f} s, median "
        f"{med['export']:.2f} s; spaCy make_doc+char_span best {best['baseline']:.2f} s, median "
        f"{med['baseline']:.2f} s; ratio {best['export'] / best['baseline']:.2f}x (best), "
        f"{med['export'] / med['baseline']:.2f}x (median); `import spacy`, outside both "
        f"clocks, took {min(imports):.2f}-{max(imports):.2f} s"
    )


def preannotate_time(path: Path, workers: int) -> tuple[float, PeakRss]:
    """Seconds and peak RSS of `preannotate --out x.parquet` (the rule tagger) over the corpus."""
    from spanbank.corpus import Corpus
    from spanbank.predict import write_predictions

    with tempfile.TemporaryDirectory(dir=CACHE) as tmp, PeakRss() as rss:
        t0 = time.perf_counter()
        for _ in write_predictions(Corpus(path), Path(tmp) / "p.parquet", workers=workers):
            pass
        return time.perf_counter() - t0, rss


def ingest_rss(src: Path, workers: int) -> tuple[float, PeakRss]:
    """Seconds and peak RSS of ingesting the JSON Lines file `src` into a new corpus."""
    from spanbank.corpus import Corpus
    from spanbank.corpus.ingest import ingest_paths

    with tempfile.TemporaryDirectory(dir=CACHE) as tmp, PeakRss() as rss:
        t0 = time.perf_counter()
        ingest_paths(Corpus.init(Path(tmp) / "corpus"), [src], workers=workers)
        return time.perf_counter() - t0, rss


BOOT_WIDTH = 51  # columns of per-article sums the report resamples (4 labels, 3 annotators)


def bootstrap_rss(n: int, workers: int) -> tuple[float, PeakRss]:
    """Seconds and peak RSS of the agreement report's bootstrap (1,000 replicates) over n
    articles' sums (Poisson counts, `BOOT_WIDTH` columns), the report's own tables left out."""
    import numpy as np

    import spanbank.agreement.report as report
    from spanbank.parallel import Engine

    m = np.random.default_rng(0).poisson(3, (n, BOOT_WIDTH)).astype(float) + 1
    blocks = {f"f{j}": (m, lambda r, j=j: r[:, j] / r[:, -1]) for j in range(BOOT_WIDTH - 1)}
    eng = Engine(workers)
    try:
        list(eng.map(len, [[], []]))  # the cluster starts outside the clock
        with PeakRss() as rss:
            t0 = time.perf_counter()
            report._bootstrap(blocks, 1000, 0, eng)
            return time.perf_counter() - t0, rss
    finally:
        eng.close()


def bench_memory(n: int, formats: str, factor: int = 4) -> None:
    """Peak RSS of the driver and of the largest worker of a 2-worker export (or, for formats
    "preannotate", of preannotate --out; for "ingest", of ingesting one JSON Lines file; for
    "bootstrap", of the agreement report's bootstrap alone) at n and factor x n articles, each
    in a fresh child process: the slope per 1,000 articles."""

    rows = []
    for size in (n, factor * n):
        if formats == "bootstrap":
            arg = size  # the sums are made in the child
        else:
            arg = ingest_input(size) if formats == "ingest" else corpus(size)
        got = run_json(MEMORY_RUN, str(Path(__file__).parent), str(arg), formats)
        rows.append((size, got["driver"], got["worker"]))
        print(
            f"{formats} n={size:,} on 2 workers: {got['s']:.1f} s, peak RSS driver "
            f"{got['driver']:.0f} MB, largest worker {got['worker']:.0f} MB"
        )
    (n0, d0, w0), (n1, d1, w1) = rows
    per_k = 1000 / (n1 - n0)
    print(
        f"  slope per 1,000 articles: driver {(d1 - d0) * per_k:6.2f} MB, worker {(w1 - w0) * per_k:6.2f} MB"
    )


if __name__ == "__main__":
    main()
