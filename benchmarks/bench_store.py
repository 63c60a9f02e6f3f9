"""Corpus store (format 2, Delta tables) benchmark: each figure a ratio of two runs in this process.

- append: 1,000 span rows into a spans table of BIG rows vs into an empty one (median of 9);
  goal <= 2; also the per-append cost at intermediate sizes.
- ingest: N synthetic articles (JSONL, ~1.2 KB of text each) through `spanbank ingest` (a child
  process, peak RSS from /usr/bin/time) vs pyarrow reading the same JSONL and writing one
  Parquet file; goal >= 0.5 of pyarrow's rate and peak < 1.5 GB.
- pull: the store work of a pull of 1,000 changed annotations (1,000 new versions, 1,000
  superseded, 20 spans and 10 relations each, orphan cleanup) into a corpus of S spans vs an
  empty one; goal <= 2. Not the Label Studio fetch.
- select: the next 1,000 unpushed articles of M (a tenth pushed) as push picks them
  (`select_batch`) vs one DuckDB query over the same files; goal <= 2.
Usage: python benchmarks/bench_store.py [--only append,ingest,pull,select] [--big 10000000]
       [--articles 1000000] [--spans 1000000] [--select 10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from spanbank.corpus.store import Corpus  # noqa: E402
from spanbank.corpus.tables import TABLES, to_arrow  # noqa: E402

RESULTS = HERE / "results" / "store.json"
NOW = pd.Timestamp("2026-01-01", tz="UTC")


def span_rows(start: int, n: int, ann_prefix: str = "ann") -> pa.Table:
    """n span rows, 20 per annotation, ids from `start` on (vectorised)."""
    i = np.arange(start, start + n)
    aid = pa.array([f"{ann_prefix}-{k:09d}" for k in i // 20])
    return pa.table(
        {
            "annotation_id": aid,
            "span_id": pa.array([f"s{k}" for k in i % 20]),
            "article_id": pa.array([f"a{k:09d}" for k in i // 40]),
            "label": pa.array(np.array(["QUOTE", "SPEAKER", "CUE", "EVENT"])[i % 4]),
            "start": pa.array(i % 1000, pa.int64()),
            "end": pa.array(i % 1000 + 30, pa.int64()),
            "text": pa.array(["some span text here"] * n),
            "attributes": pa.nulls(n, pa.string()),
            "offset_repair": pa.nulls(n, pa.string()),
            "fragments": pa.nulls(n, TABLES["spans"].field("fragments").type),
        }
    )


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def append_costs(corpus: Corpus, reps: int = 9) -> float:
    """Median seconds of a 1,000-row append (each its own writing command)."""
    runs = []
    for r in range(reps):
        rows = span_rows(10**12 + r * 1000, 1000, "new")

        def one(rows=rows):
            with corpus.writer() as w:
                w.append("spans", rows)

        runs.append(timed(one))
    return statistics.median(runs)


def bench_append(work: Path, big: int) -> dict:
    empty = Corpus.init(work / "append-empty")
    grown = Corpus.init(work / "append-big")
    out = {"rows": big, "at": {}}
    out["at"][0] = append_costs(empty)
    done, step = 0, 1_000_000
    marks = sorted({min(big, m) for m in (1_000_000, big // 2, big)})
    for mark in marks:
        with grown.writer() as w:
            w.append_batches(
                "spans", (span_rows(k, min(step, mark - k)) for k in range(done, mark, step))
            )
        done = mark
        out["at"][mark] = append_costs(grown)
    out["ratio"] = out["at"][big] / out["at"][0]
    print(
        f"append 1,000 spans: empty {out['at'][0] * 1000:.0f} ms, "
        + ", ".join(f"{k:,} rows {v * 1000:.0f} ms" for k, v in out["at"].items() if k)
        + f"; ratio {big:,} / empty = {out['ratio']:.2f} (goal <= 2)"
    )
    return out


def bench_ingest(work: Path, n: int) -> dict:
    src = work / f"articles-{n}.jsonl"
    if not src.exists():
        words = np.array("the minister said on monday that trains would run again soon".split())
        rng = np.random.default_rng(0)
        with src.open("w") as fh:
            for k in range(0, n, 10_000):
                m = min(10_000, n - k)
                body = rng.integers(0, len(words), size=(m, 200))
                for j in range(m):
                    text = " ".join(words[body[j]])
                    fh.write(
                        json.dumps({"id": f"x{k + j:08d}", "title": f"T{k + j}", "text": text})
                    )
                    fh.write("\n")
    corpus_dir = work / "ingest-corpus"
    shutil.rmtree(corpus_dir, ignore_errors=True)
    sb = [sys.executable, "-m", "spanbank", "--corpus", str(corpus_dir)]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src"), "SPANBANK_WORKERS": "1"}
    subprocess.run([*sb, "init"], check=True, env=env, capture_output=True)
    t = time.perf_counter()
    res = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *sb, "ingest", str(src), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
    )
    ours = time.perf_counter() - t
    assert res.returncode == 0, res.stderr
    rss_mb = int(res.stderr.strip().splitlines()[-1]) / 1024
    stored = len(Corpus(corpus_dir).read("articles", columns=["article_id"]))
    code = (
        "import sys, pyarrow.json as pj, pyarrow.parquet as pq\n"
        "t = pj.read_json(sys.argv[1], read_options=pj.ReadOptions(block_size=1<<24))\n"
        "pq.write_table(t, sys.argv[2], compression='zstd')\n"
    )
    t = time.perf_counter()
    base = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "%M",
            sys.executable,
            "-c",
            code,
            str(src),
            str(work / "b.parquet"),
        ],
        capture_output=True,
        text=True,
    )
    baseline = time.perf_counter() - t
    assert base.returncode == 0, base.stderr
    base_mb = int(base.stderr.strip().splitlines()[-1]) / 1024
    out = {
        "articles": n,
        "stored": stored,
        "ours_s": ours,
        "pyarrow_s": baseline,
        "rate_ratio": baseline / ours,
        "peak_mb": rss_mb,
        "pyarrow_peak_mb": base_mb,
    }
    print(
        f"ingest {n:,} articles ({src.stat().st_size / 1e6:.0f} MB JSONL): spanbank {ours:.1f} s "
        f"({n / ours:,.0f}/s, peak {rss_mb:,.0f} MB) vs pyarrow read+write {baseline:.1f} s "
        f"(peak {base_mb:,.0f} MB): rate ratio {out['rate_ratio']:.2f} (goal >= 0.5), "
        f"stored {stored:,}"
    )
    return out


def _pull_store(corpus: Corpus, held: pd.DataFrame, k: int) -> None:
    """What pull._store writes for k changed annotations: children (after the orphan cleanup),
    then the superseded marks and the new versions in one commit."""
    new_ids = [f"ls-t-1-{9_000_000 + j}-v2" for j in range(k)]
    spans = span_rows(0, 20 * k).to_pandas()
    spans["annotation_id"] = np.repeat(new_ids, 20)
    rels = pd.DataFrame(
        {
            "annotation_id": np.repeat(new_ids, 10),
            "from_span_id": "s0",
            "to_span_id": "s1",
            "label": "said_by",
        }
    )
    ann = pd.DataFrame(
        {
            "annotation_id": new_ids,
            "project": "p",
            "article_id": [f"a{j:09d}" for j in range(k)],
            "ls_task_id": range(k),
            "ls_annotation_id": range(k),
            "annotator": "ann-1",
            "origin": "human",
            "created_at": NOW,
            "updated_at": NOW,
            "lead_time_s": 1.0,
            "cancelled": False,
            "version": 2,
            "superseded": False,
            "deleted_at": pd.NaT,
            "pulled_at": NOW,
        }
    )
    marked = held.head(k).assign(superseded=True) if len(held) else held
    with corpus.writer() as w:
        for name, rows in (("spans", spans), ("relations", rels), ("rejects", [])):
            w.delete(name, "annotation_id", new_ids)
            if len(rows):
                w.append(name, rows)
        w.upsert("annotations", pd.concat([marked, ann], ignore_index=True), "annotation_id")


def bench_pull(work: Path, n_spans: int, k: int = 1000) -> dict:
    def corpus_with(path: Path, spans: int) -> tuple[Corpus, pd.DataFrame]:
        c = Corpus.init(path)
        if spans:
            n_ann = spans // 20
            with c.writer() as w:
                w.append_batches(
                    "spans",
                    (
                        span_rows(s, min(1_000_000, spans - s), "ls-t-1")
                        for s in range(0, spans, 10**6)
                    ),
                )
                ids = [f"ls-t-1-{j:09d}" for j in range(n_ann)]
                w.append(
                    "annotations",
                    to_arrow(
                        "annotations",
                        pd.DataFrame(
                            {
                                "annotation_id": ids,
                                "project": "p",
                                "article_id": [f"a{j:09d}" for j in range(n_ann)],
                                "ls_task_id": range(n_ann),
                                "ls_annotation_id": range(n_ann),
                                "annotator": "ann-1",
                                "origin": "human",
                                "created_at": NOW,
                                "updated_at": NOW,
                                "lead_time_s": 1.0,
                                "cancelled": False,
                                "version": 1,
                                "superseded": False,
                                "deleted_at": pd.NaT,
                                "pulled_at": NOW,
                            }
                        ),
                    ),
                )
        return c, c.read("annotations")

    empty, held0 = corpus_with(work / "pull-empty", 0)
    full, held = corpus_with(work / "pull-full", n_spans)
    t_empty = timed(lambda: _pull_store(empty, held0, k))
    t_full = timed(lambda: _pull_store(full, held, k))
    out = {"spans": n_spans, "changed": k, "empty_s": t_empty, "full_s": t_full}
    out["ratio"] = t_full / t_empty
    print(
        f"pull store work, {k:,} changed annotations: empty corpus {t_empty:.2f} s, "
        f"{n_spans:,} spans {t_full:.2f} s: ratio {out['ratio']:.2f} (goal <= 2; the Label "
        "Studio fetch is not in this figure)"
    )
    return out


def _select_corpus(path: Path, m: int) -> Corpus:
    """M articles of metadata (tiny text), a tenth of them pushed to project p."""
    if path.exists():
        return Corpus(path)
    c = Corpus.init(path)
    ts = TABLES["articles"].field("published_at").type

    def parts():
        for s in range(0, m, 1_000_000):
            k = min(1_000_000, m - s)
            ids = pa.array([f"a{j:09d}" for j in range(s, s + k)])
            stamp = pa.array(np.full(k, np.datetime64("2025-01-01", "us")), ts)
            yield pa.table(
                {
                    "article_id": ids,
                    "title": ids,
                    "text": pa.array(["x"] * k, pa.large_string()),
                    "source": pa.array(np.array(["reuters", "ap", "bbc"])[np.arange(k) % 3]),
                    "url": pa.nulls(k, pa.string()),
                    "published_at": stamp,
                    "language": pa.array(["en"] * k),
                    "origin": pa.array(["synth"] * k),
                    "text_sha256": pa.nulls(k, pa.string()),
                    "ingested_at": stamp,
                }
            )

    pushed = m // 10
    with c.writer() as w:
        w.append_batches("articles", parts())
        w.append(
            "tasks",
            pa.table(
                {
                    "project": pa.array(["p"] * pushed),
                    "ls_url": pa.array(["http://ls"] * pushed),
                    "ls_project_id": pa.array(np.ones(pushed, dtype=np.int64)),
                    "article_id": pa.array([f"a{j:09d}" for j in range(pushed)]),
                    "ls_task_id": pa.array(np.arange(pushed, dtype=np.int64)),
                    "batch_id": pa.array(["b"] * pushed),
                    "pushed_at": pa.array(np.full(pushed, np.datetime64("2025-01-01", "us")), ts),
                    "schema_version": pa.array(["news-v1"] * pushed),
                }
            ),
        )
    return c


def bench_select(work: Path, m: int) -> dict:
    import duckdb

    from spanbank.labelstudio.push import select_batch

    c = _select_corpus(work / f"select-{m}", m)
    ours_rows = []
    t_ours = statistics.median(
        timed(lambda: ours_rows.append(select_batch(c, "p", "http://ls", batch_size=1000)[0]))
        for _ in range(3)
    )
    arts = [str(f) for f in c.table_files("articles")]
    tasks = [str(f) for f in c.table_files("tasks")]
    q = (
        f"SELECT a.* EXCLUDE (text), a.text FROM read_parquet({arts}) a "
        f"WHERE a.article_id NOT IN (SELECT article_id FROM read_parquet({tasks}) "
        "WHERE project = 'p' AND ls_url = 'http://ls') ORDER BY a.article_id LIMIT 1000"
    )
    got = []
    t_duck = statistics.median(timed(lambda: got.append(duckdb.sql(q).df())) for _ in range(3))
    same = sorted(ours_rows[0]["article_id"]) == sorted(got[0]["article_id"])
    out = {"articles": m, "ours_s": t_ours, "duckdb_s": t_duck, "ratio": t_ours / t_duck}
    print(
        f"select 1,000 unpushed of {m:,}: select_batch {t_ours:.2f} s vs DuckDB {t_duck:.2f} s: "
        f"ratio {out['ratio']:.2f} (goal <= 2); same articles: {same}"
    )
    out["same_articles"] = same
    return out


def _export(corpus_dir: Path, out: Path, as_of=None) -> None:
    cmd = [sys.executable, "-m", "spanbank", "--corpus", str(corpus_dir), "export"]
    cmd += ["--format", "jsonl,spacy,hf,conll,brat,quotes", "--out", str(out), "--quiet"]
    if as_of is not None:
        cmd += ["--as-of", str(as_of)]
    env = dict(os.environ, PYTHONPATH=str(HERE.parent / "src"))
    subprocess.run(cmd, check=True, env=env)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()
    }


def bench_export_as_of(work: Path, n: int) -> dict:
    """Export, append more rows, export --as-of the first commit: every file byte-identical?"""
    sys.path.insert(0, str(HERE))
    from _common import corpus_from_synth

    cdir = work / f"asof-{n}"
    shutil.rmtree(cdir, ignore_errors=True)
    corpus_from_synth(cdir, n, seed=0)
    c = Corpus(cdir)
    first = int(c.commits()["commit"].iloc[-1])
    _export(cdir, work / "export-before")
    # more of everything, under new article and annotation ids (a second synthetic corpus)
    extra = work / f"asof-extra-{n}"
    shutil.rmtree(extra, ignore_errors=True)
    corpus_from_synth(extra, n // 2, seed=1)
    e = Corpus(extra)
    with c.writer() as w:
        for name in ("articles", "spans", "relations", "annotations"):
            df = e.read(name)
            for col in ("article_id", "annotation_id"):
                if col in df.columns:
                    df[col] = "x" + df[col].astype(str)
            w.append(name, df)
    after = int(Corpus(cdir).commits()["commit"].iloc[-1])
    _export(cdir, work / "export-as-of", as_of=first)
    _export(cdir, work / "export-latest")
    a, b = _files(work / "export-before"), _files(work / "export-as-of")
    latest = _files(work / "export-latest")
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    out = {
        "articles": n,
        "first_commit": first,
        "latest_commit": after,
        "files": len(a),
        "identical": not differ,
        "differing_files": differ,
        "latest_differs": latest != a,
    }
    print(
        f"export --as-of {first} after appending {n // 2:,} more articles (commit {after}): "
        f"{len(a)} files, byte-identical to the export made before: {not differ}"
        + (f" (differ: {differ})" if differ else "")
        + f"; the latest export differs, as it should: {latest != a}"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="append,ingest,pull,select,export")
    ap.add_argument("--big", type=int, default=10_000_000)
    ap.add_argument("--articles", type=int, default=1_000_000)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--select", type=int, default=10_000_000)
    ap.add_argument("--export-articles", type=int, default=2000)
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="bench-store-"))
    work.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for part in a.only.split(","):
        if part == "append":
            results["append"] = bench_append(work, a.big)
        elif part == "ingest":
            results["ingest"] = bench_ingest(work, a.articles)
        elif part == "pull":
            results["pull"] = bench_pull(work, a.spans)
        elif part == "select":
            results["select"] = bench_select(work, a.select)
        elif part == "export":
            results["export_as_of"] = bench_export_as_of(work, a.export_articles)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n")
    if a.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
