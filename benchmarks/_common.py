"""Shared benchmark helpers: the synthetic corpus on disk, timing in a child process (median, peak RSS).

A workload module (benchmarks/bench_*.py) defines `prepare(n, work) -> params` (run in the
parent: writes inputs to disk, returns something picklable), and `ours(params, rep)` /
`baseline(params, rep)`, each returning the seconds of its timed part (or a dict with `s`
and extra figures). `measure()` runs each side `repeat` times in a fresh child process, so
the peak RSS reported is that side's own (interpreter and imports included), and returns
the median time. Benchmarks print figures; they never assert times.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = Path(os.environ.get("SPANBANK_BENCH_CACHE", "/tmp/spanbank-bench"))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

_ctx = None


def _context():
    """A forkserver with pandas/pyarrow preloaded: children start fast and their RSS is their own."""
    global _ctx
    if _ctx is None:
        _ctx = mp.get_context("forkserver")
        _ctx.set_forkserver_preload(
            ["numpy", "pandas", "pyarrow", "pyarrow.parquet", "spanbank.corpus"]
        )
    return _ctx


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(module: str, side: str, params, repeat: int, q) -> None:
    try:
        fn = getattr(importlib.import_module(module), side)
        runs = [fn(params, rep) for rep in range(repeat)]
        runs = [r if isinstance(r, dict) else {"s": r} for r in runs]
        q.put({"runs": runs, "rss": peak_rss_mb()})
    except BaseException as exc:  # report, so the parent does not wait forever
        import traceback

        q.put({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})


def in_child(module: str, side: str, params, repeat: int) -> dict:
    """Run `module.side(params, rep)` for rep in range(repeat) in a child; median seconds + peak RSS."""
    ctx = _context()
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(module, side, params, repeat, q))
    p.start()
    out = None
    while out is None:
        with contextlib.suppress(Exception):
            out = q.get(timeout=1.0)
        if out is None and not p.is_alive():
            out = {"error": f"child exited with code {p.exitcode}"}
    p.join()
    if "error" in out:
        raise RuntimeError(f"{module}.{side}: {out['error']}\n{out.get('trace', '')}")
    runs = out["runs"]
    res = {
        "s": statistics.median(r["s"] for r in runs),
        "rss": out["rss"],
        "runs": [r["s"] for r in runs],
    }
    for run in (runs[0], runs[len(runs) // 2]):  # extras of the middle run, or the first's only
        res.update({k: v for k, v in run.items() if k != "s"})
    return res


def measure(module: str, workload: str, n: int, repeat: int = 3, work: Path | None = None) -> dict:
    """One result row: ours and the baseline at size n, each the median of `repeat` runs."""
    mod = importlib.import_module(module)
    work = Path(work or CACHE / "work")
    work.mkdir(parents=True, exist_ok=True)
    params = mod.prepare(n, work)
    ours = in_child(module, "ours", params, repeat)
    base = in_child(module, "baseline", params, repeat)
    row = {
        "workload": workload,
        "n": n,
        "ours_s": ours["s"],
        "baseline_s": base["s"],
        "ratio": ours["s"] / base["s"] if base["s"] else float("nan"),
        "peak_rss_mb": ours["rss"],
        "baseline_rss_mb": base["rss"],
        "repeat": repeat,
    }
    row.update({k: v for k, v in ours.items() if k not in ("s", "rss", "runs")})
    row.update({f"baseline_{k}": v for k, v in base.items() if k not in ("s", "rss", "runs")})
    if hasattr(mod, "cleanup"):
        mod.cleanup(params)
    return row


def bench_main(
    module: str, workload: str, doc: str, default_n: list[int], describe=None, add_arguments=None
):
    """The command line every bench_*.py shares: --n (sizes), --repeat, --json; returns (args, rows).

    Prints one `fmt_row` line per size (plus `describe(row)`), or the rows as JSON with --json.
    `add_arguments(parser)` adds a script's own options.
    """
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=default_n)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    if add_arguments:
        add_arguments(ap)
    args = ap.parse_args()
    rows = [measure(module, workload, n, args.repeat) for n in args.n]
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    else:
        for r in rows:
            print(fmt_row(r) + (describe(r) if describe else ""))
    return args, rows


def synth_corpus(n: int, seed: int = 0, annotators: int = 0) -> Path:
    """`<cache>/synth-n<N>-s<seed>-k<K>/` with articles/spans/relations .parquet (made once, then reused)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from spanbank.synth import synth_chunks

    out = CACHE / f"synth-n{n}-s{seed}-k{annotators}"
    if (out / "done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    writers: dict = {}
    t0 = time.perf_counter()
    try:
        for frames in synth_chunks(n, seed, annotators, chunk=20_000):
            for name, df in zip(("articles", "spans", "relations"), frames, strict=True):
                table = pa.Table.from_pandas(df, preserve_index=False)
                if name not in writers:
                    writers[name] = pq.ParquetWriter(
                        out / f"{name}.parquet", table.schema, compression="zstd"
                    )
                writers[name].write_table(table)
    finally:
        for w in writers.values():
            w.close()
    (out / "done").write_text(f"{time.perf_counter() - t0:.2f}\n")
    return out


def synth_annotations(spans, now, origin: str = "human", annotator: str | None = None):
    """One `annotations` row per annotation of synthetic `spans` (project `bench`)."""
    ann = spans[["annotation_id", "article_id", "annotator"]].drop_duplicates("annotation_id")
    return ann.assign(
        project="bench",
        origin=origin,
        created_at=now,
        updated_at=now,
        version=1,
        cancelled=False,
        superseded=False,
        **({"annotator": annotator} if annotator else {}),
    )


def corpus_from_synth(
    path: Path,
    n: int,
    seed: int = 0,
    annotators: int = 0,
    chunk: int = 20_000,
    annotated: int | None = None,
) -> Path:
    """A spanbank corpus at `path` holding a synthetic corpus, appended chunk by chunk through
    the store's writer (children first, annotations last); with `annotated`, only the first
    that many articles keep their annotations."""
    import pandas as pd

    from spanbank.corpus.store import Corpus
    from spanbank.corpus.tables import TABLES
    from spanbank.synth import synth_chunks

    corpus = Corpus.init(path)
    now = pd.Timestamp("2025-06-01", tz="UTC")
    with corpus.writer() as w:
        for i, (arts, spans, rels) in enumerate(synth_chunks(n, seed, annotators, chunk=chunk)):
            if annotated is not None:
                keep = set(arts["article_id"].iloc[: max(0, annotated - i * chunk)])
                spans = spans[spans["article_id"].isin(keep)]
                rels = rels[rels["annotation_id"].isin(set(spans["annotation_id"]))]
            ann = synth_annotations(spans, now)
            tables = {
                "articles": arts.assign(language="en", origin="synth", ingested_at=now),
                "spans": spans.drop(columns="annotator"),
                "relations": rels,
                "annotations": ann,
            }
            for name, df in tables.items():
                w.append(name, df.reindex(columns=TABLES[name].names))
    return path


def machine() -> dict:
    """What the figures were measured on."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = None
    with contextlib.suppress(ImportError):
        import psutil

        ram = round(psutil.virtual_memory().total / 2**30, 1)
    versions = {}
    for pkg in (
        "spanbank",
        "pyarrow",
        "pandas",
        "numpy",
        "duckdb",
        "krippendorff",
        "spacy",
        "label-studio-sdk",
        "httpx",
    ):
        with contextlib.suppress(PackageNotFoundError):
            versions[pkg] = version(pkg)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


def fmt_row(r: dict) -> str:
    return (
        f"{r['workload']:<12} n={r['n']:>9,}  ours {r['ours_s']:8.3f} s  baseline {r['baseline_s']:8.3f} s  "
        f"ratio {r['ratio']:6.2f}  peak RSS {r['peak_rss_mb']:7.0f} MB"
    )
