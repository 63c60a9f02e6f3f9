"""Agreement benchmark: token-level Krippendorff's alpha (ours) vs `krippendorff.alpha` on the same matrix.

The corpus is the synthetic one (`spanbank.synth`, 3 annotators, ~16 spans each per article).
The reliability matrix (annotators x tokens, 1 inside a QUOTE span) is built once, untimed;
both sides compute nominal alpha on it. At rep 0 ours also times the whole agreement report
(`build_report`, what `spanbank agree --json` computes) as `report_s`.
Usage: python benchmarks/bench_agree.py --n 10000
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import bench_main, synth_corpus

WORKLOAD = "agree"
ANNOTATORS = 3


def tables(n: int):
    import pyarrow.parquet as pq

    src = synth_corpus(n, seed=2, annotators=ANNOTATORS)
    articles = pq.read_table(src / "articles.parquet").to_pandas()
    spans = pq.read_table(src / "spans.parquet").to_pandas()
    relations = pq.read_table(src / "relations.parquet").to_pandas()
    annotations = spans[["annotation_id", "article_id", "annotator"]].drop_duplicates(
        "annotation_id"
    )
    annotations = annotations.assign(
        project="bench", origin="human", cancelled=False, superseded=False, deleted_at=None
    )
    return articles, annotations, spans.drop(columns="annotator"), relations


def alpha_matrix(articles, annotations, spans, label="QUOTE") -> np.ndarray:
    """Reliability data (annotators x tokens, 0/1) of one label layer, built like the report does."""
    from spanbank.tokens import tokenize

    t_art, t_s, t_e, off = tokenize(articles["text"])
    gs, ge = off[t_art] + t_s, off[t_art] + t_e
    a_pos = pd.Series(np.arange(len(articles)), index=articles["article_id"])
    sp = spans[spans["label"] == label].merge(
        annotations[["annotation_id", "annotator"]], on="annotation_id"
    )
    coder = pd.factorize(sp["annotator"], sort=True)[0]
    base = off[a_pos.loc[sp["article_id"]].to_numpy()]
    lo = np.searchsorted(ge, base + sp["start"].to_numpy(), "right")
    hi = np.searchsorted(gs, base + sp["end"].to_numpy(), "left")
    m = coder.max() + 1
    diff = np.bincount(coder * (len(gs) + 1) + lo, minlength=m * (len(gs) + 1))
    diff -= np.bincount(coder * (len(gs) + 1) + hi, minlength=m * (len(gs) + 1))
    return (np.cumsum(diff.reshape(m, -1)[:, :-1], axis=1) > 0).astype(float)


def prepare(n: int, work: Path) -> dict:
    path = work / f"alpha-{n}.npy"
    if not path.exists():
        articles, annotations, spans, _ = tables(n)
        np.save(path, alpha_matrix(articles, annotations, spans))
    return {"n": n, "matrix": str(path)}


def ours(p: dict, rep: int) -> dict:
    from spanbank.agreement.coefficients import krippendorff_alpha

    data = np.load(p["matrix"])
    t0 = time.perf_counter()
    value = krippendorff_alpha(data, level="nominal")
    out = {"s": time.perf_counter() - t0, "alpha": value, "tokens": data.shape[1]}
    if rep == 0:
        from spanbank.agreement.report import build_report

        articles, annotations, spans, relations = tables(p["n"])
        t0 = time.perf_counter()
        build_report(articles, annotations, spans, relations, bootstrap=200)
        out["report_s"] = time.perf_counter() - t0
    return out


def baseline(p: dict, rep: int) -> dict:
    import krippendorff

    data = np.load(p["matrix"])
    t0 = time.perf_counter()
    value = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    return {"s": time.perf_counter() - t0, "alpha": value}


def main() -> None:
    bench_main(
        "bench_agree",
        WORKLOAD,
        __doc__,
        [10_000],
        lambda r: (
            f"  (alpha {r['alpha']:.6f} vs {r['baseline_alpha']:.6f} over {r['tokens']:,} tokens; "
            f"whole report {r['report_s']:.1f} s)"
        ),
    )


if __name__ == "__main__":
    main()
