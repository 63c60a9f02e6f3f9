"""Run every benchmark at growing sizes: ours vs its baseline, same run, median of several runs.

    .venv/bin/python benchmarks/run.py --quick          # under two minutes on 2 cores
    .venv/bin/python benchmarks/run.py                  # fuller sizes (about ten minutes)
    .venv/bin/python benchmarks/run.py --quick --json   # machine-readable rows on stdout

Each row: workload, n, ours_s, baseline_s, ratio (ours / baseline; > 1 means slower than the
baseline), peak_rss_mb (peak RSS of the child process that ran ours, interpreter included).
Writes benchmarks/RESULTS.md (tables of the last quick and full runs, and the machine) and
benchmarks/results.png (time vs N per workload, log-log). Figures only: nothing is asserted.
Synthetic inputs are cached under $SPANBANK_BENCH_CACHE (default /tmp/spanbank-bench).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from _common import CACHE, HERE, fmt_row, machine, measure

# workload -> (module, quick sizes, full sizes); a size is n or (n, repeat)
PLAN = {
    "ingest": ("bench_ingest", [2_000, 10_000], [10_000, 100_000, 300_000]),
    "brat": ("bench_brat", [10_000, 40_000], [10_000, 40_000, 160_000]),
    "select": ("bench_select", [10_000, 100_000], [10_000, 100_000, 1_000_000]),
    "push": ("bench_sync", [500, 2_000], [1_000, 5_000, 10_000]),
    "pull": ("bench_sync_pull", [300, 1_000], [1_000, 5_000, 10_000]),
    "agree": ("bench_agree", [300, 1_000], [1_000, 10_000, 30_000]),
    "export": ("bench_export", [200, 1_000], [1_000, 5_000, (20_000, 1)]),
    "preannotate": ("bench_preannotate", [300, 1_000], [1_000, 10_000, 50_000]),
}
GOALS = {
    "push": "issue 3: >= 0.8 of the raw bulk POST rate (ratio <= 1.25)",
    "pull": "issue 3: >= 0.5 of the raw rate (ratio <= 2); here conversion vs json.loads",
    "agree": "issue 4: whole report of 10,000 articles x 3 annotators under 60 s (`report_s`)",
    "preannotate": "issue 7: >= 500 articles/s on one core",
}


def run(quick: bool, only: list[str] | None, repeat: int, log) -> list[dict]:
    rows = []
    for workload, (module, small, large) in PLAN.items():
        if only and workload not in only:
            continue
        for size in small if quick else large:
            n, rep = size if isinstance(size, tuple) else (size, repeat)
            t0 = time.perf_counter()
            try:
                row = measure(module, workload, n, rep, CACHE / "work")
            except Exception as exc:  # one broken workload must not hide the others' figures
                log(f"{workload} n={n}: FAILED {str(exc).splitlines()[0]}")
                continue
            row["wall_s"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            log(fmt_row(row) + f"  [{row['wall_s']:.0f} s]")
    return rows


def _num(v, digits=3) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _extra(r: dict) -> str:
    bits = []
    for key, fmt in (
        ("mb_s", "{:.1f} vs {:.1f} MB/s text"),
        ("tasks_per_s", "{:.0f} vs {:.0f} tasks/s"),
        ("articles_per_s", "{:.0f} vs {:.0f} articles/s"),
    ):
        if key in r and f"baseline_{key}" in r:
            bits.append(fmt.format(r[key], r[f"baseline_{key}"]))
    if "report_s" in r:
        bits.append(f"whole report {r['report_s']:.1f} s")
    if "alpha" in r:
        bits.append(f"α {r['alpha']:.4f} = {r['baseline_alpha']:.4f}")
    return "; ".join(bits)


def table(rows: list[dict]) -> str:
    out = [
        "| workload | n | ours s | baseline s | ratio | peak RSS MB | baseline RSS MB | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['workload']} | {r['n']:,} | {_num(r['ours_s'])} | {_num(r['baseline_s'])} | "
            f"{r['ratio']:.2f} | {r['peak_rss_mb']:.0f} | {r['baseline_rss_mb']:.0f} | {_extra(r)} |"
        )
    return "\n".join(out)


def write_results(saved: dict) -> None:
    """RESULTS.md from the last quick and full runs kept in benchmarks/results/*.json."""
    m = next(iter(saved.values()))["machine"]
    lines = [
        "# Benchmark results",
        "",
        "Written by `benchmarks/run.py`; do not edit by hand. Ratio = ours / baseline time (lower is",
        "better; 1 means as fast as the baseline). Times are the median of several runs (`repeat`);",
        "peak RSS is that of the child process that ran ours (Python and its imports included,",
        "about 110-150 MB). The machine has 2 shared cores and other work (tests, other engineers)",
        "ran at the same time, so single figures are noisy: compare ratios and slopes, not digits.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Python {m['python']}, {m['platform']}.",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + ".",
        "",
        "Baselines: ingest — pyarrow reading the same Parquet input and writing the table; select —",
        "one DuckDB query over the same Parquet (1,000 not-yet-pushed articles with source = reuters);",
        "push — one raw bulk POST of the same task JSON to the same local Label Studio; pull —",
        "`json.loads` of the same task payload (ours: `convert_annotation` of every annotation on top);",
        "agree — `krippendorff.alpha` on the same reliability matrix; export — spaCy's own `make_doc`",
        "+ `char_span` over the same data in memory (ours: the whole `export --format spacy`);",
        "preannotate — one regex scan for quote marks.",
        "",
        "Goals from the issues: " + "; ".join(f"{k}: {v}" for k, v in GOALS.items()) + ".",
        "",
    ]
    for mode in ("quick", "full"):
        if mode in saved:
            s = saved[mode]
            lines += [
                f"## `run.py{' --quick' if mode == 'quick' else ''}` ({s['when']}, {s['wall_s']:.0f} s)",
                "",
                table(s["rows"]),
                "",
            ]
    lines += ["![time vs N](results.png)", ""]
    (HERE / "RESULTS.md").write_text("\n".join(lines), encoding="utf-8")


def plot(saved: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {}
    for mode in ("quick", "full"):  # full figures win where both measured a size
        for r in saved.get(mode, {}).get("rows", []):
            rows[(r["workload"], r["n"])] = r
    workloads = [w for w in PLAN if any(k[0] == w for k in rows)]
    cols = 4
    fig, axes = plt.subplots(
        (len(workloads) + cols - 1) // cols, cols, figsize=(16, 7.5), squeeze=False
    )
    for ax, w in zip(axes.flat, workloads, strict=False):
        pts = sorted((r for (wl, _), r in rows.items() if wl == w), key=lambda r: r["n"])
        n = [r["n"] for r in pts]
        ax.loglog(n, [r["ours_s"] for r in pts], "o-", label="spanbank")
        ax.loglog(n, [r["baseline_s"] for r in pts], "s--", label="baseline")
        if len(n) > 1:  # a linear-growth guide through ours' first point
            ax.loglog(
                [n[0], n[-1]],
                [pts[0]["ours_s"], pts[0]["ours_s"] * n[-1] / n[0]],
                ":",
                color="grey",
                label="linear",
            )
        ax.set_title(w)
        ax.set_xlabel("N (articles)")
        ax.set_ylabel("seconds")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(workloads) :]:
        ax.axis("off")
    fig.suptitle("spanbank benchmarks: time vs N (log-log), median of runs")
    fig.tight_layout()
    fig.savefig(HERE / "results.png", dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (under two minutes)")
    ap.add_argument("--json", action="store_true", help="print the rows as a JSON list on stdout")
    ap.add_argument("--only", default="", help=f"comma-separated workloads ({', '.join(PLAN)})")
    ap.add_argument("--repeat", type=int, default=3, help="runs per side and size (median)")
    ap.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md / results.png")
    args = ap.parse_args()
    only = [w.strip() for w in args.only.split(",") if w.strip()] or None
    unknown = set(only or ()) - set(PLAN)
    if unknown:
        ap.error(f"unknown workload(s) {', '.join(sorted(unknown))}; choose from {', '.join(PLAN)}")
    log = (
        (lambda s: print(s, file=sys.stderr, flush=True))
        if args.json
        else (lambda s: print(s, flush=True))
    )
    t0 = time.perf_counter()
    rows = run(args.quick, only, args.repeat, log)
    wall = time.perf_counter() - t0
    log(f"total {wall:.0f} s")
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    if args.no_write or not rows:
        return
    mode = "quick" if args.quick else "full"
    store = HERE / "results"
    store.mkdir(exist_ok=True)
    record = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "wall_s": wall,
        "machine": machine(),
        "only": only,
        "rows": rows,
    }
    (store / f"{mode}.json").write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
    saved = {
        m: json.loads((store / f"{m}.json").read_text("utf-8"))
        for m in ("quick", "full")
        if (store / f"{m}.json").exists()
    }
    write_results(saved)
    plot(saved)


if __name__ == "__main__":
    main()
