"""Batch selection benchmark: pick 1,000 not-yet-pushed articles matching a filter, as `push` does, vs DuckDB.

Ours: the selection `spanbank.labelstudio.push.push_batch` runs before it talks to Label Studio
(`select_articles` with `--where "source == 'reuters'"` over the corpus's articles, minus the
articles already in `tasks`, first 1,000). Baseline: one DuckDB query over the same Parquet
files. A tenth of the corpus counts as already pushed.
Usage: python benchmarks/bench_select.py --n 100000 1000000
"""

from __future__ import annotations

import time
from pathlib import Path

from _common import bench_main, synth_corpus

WORKLOAD = "select"
BATCH = 1000
WHERE = "source == 'reuters'"


def prepare(n: int, work: Path) -> dict:
    import pandas as pd
    import pyarrow.parquet as pq

    from spanbank.corpus.store import Corpus
    from spanbank.corpus.tables import to_arrow

    root = work / f"select-{n}"
    corpus_dir = root / "corpus"
    if not (root / "done").exists():
        src = synth_corpus(n)
        corpus = Corpus.init(corpus_dir)
        arts = pq.read_table(src / "articles.parquet").to_pandas()
        arts = arts.assign(
            url=None,
            language="en",
            origin="synth",
            text_sha256=None,
            ingested_at=arts["published_at"],
        )
        with corpus.writer() as w:
            w.append("articles", to_arrow("articles", arts))
        pushed = arts["article_id"].iloc[: n // 10]
        tasks = pd.DataFrame(
            {
                "project": "bench",
                "ls_url": "http://127.0.0.1:1",
                "ls_project_id": 1,
                "article_id": pushed,
                "ls_task_id": range(1, len(pushed) + 1),
                "batch_id": "b0",
                "pushed_at": arts["published_at"].iloc[0],
                "schema_version": "x",
            }
        )
        with corpus.writer() as w:
            w.append("tasks", to_arrow("tasks", tasks))
        (root / "done").write_text("ok\n")
    return {"corpus": str(corpus_dir)}


def ours(p: dict, rep: int) -> dict:
    from spanbank.corpus import Corpus
    from spanbank.labelstudio.push import select_batch

    t0 = time.perf_counter()
    todo, _ = select_batch(
        Corpus(p["corpus"]), "bench", "http://127.0.0.1:1", where=WHERE, batch_size=BATCH
    )
    dt = time.perf_counter() - t0
    assert len(todo) == BATCH and todo["text"].notna().all()
    return {"s": dt, "first": todo["article_id"].iloc[0]}


def baseline(p: dict, rep: int) -> dict:
    import duckdb

    from spanbank.corpus import Corpus

    corpus = Corpus(p["corpus"])
    arts = [str(f) for f in corpus.table_files("articles")]  # the table's files, never a glob
    tasks = [str(f) for f in corpus.table_files("tasks")]
    t0 = time.perf_counter()
    con = duckdb.connect()
    todo = con.execute(f"""
        SELECT article_id, title, text, source, url, language
        FROM read_parquet({arts}, file_row_number = true, filename = true)
        WHERE source = 'reuters' AND article_id NOT IN (
            SELECT article_id FROM read_parquet({tasks}) WHERE project = 'bench')
        ORDER BY filename, file_row_number LIMIT {BATCH}""").df()
    con.close()
    dt = time.perf_counter() - t0
    assert len(todo) == BATCH
    return {"s": dt, "first": todo["article_id"].iloc[0]}


def main() -> None:
    bench_main(
        "bench_select",
        WORKLOAD,
        __doc__,
        [100_000, 1_000_000],
        lambda r: f"  (same first article: {r['first'] == r['baseline_first']})",
    )


if __name__ == "__main__":
    main()
