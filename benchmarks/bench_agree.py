"""Benchmark the agreement report on a synthetic corpus (default 10,000 articles x 3 annotators x ~20 spans).

Prints the time of the whole report, peak RSS, and the token-level alpha step against
``krippendorff.alpha`` on the same reliability matrix, as a ratio. Not a test.

    .venv/bin/python benchmarks/bench_agree.py --n 1000
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd

from spanbank.agreement import nominal_alpha_from_counts
from spanbank.agreement_report import build_report, tokenize

LABELS = np.array(["SPEAKER", "QUOTE", "CUE", "EVENT"])
VOCAB = np.array("the mayor said that council will vote on budget , . a new plan for city".split())


def synthetic(n: int, annotators: int = 3, words: int = 400, spans: int = 20, seed: int = 0):
    """Corpus tables: n articles, each annotated by every annotator as noisy copies of one gold set."""
    rng = np.random.default_rng(seed)
    w = rng.integers(0, len(VOCAB), (n, words))
    wl = np.char.str_len(VOCAB)[w]
    wstart = np.cumsum(wl + 1, axis=1) - (wl + 1)
    texts = [" ".join(VOCAB[row]) for row in w]
    art_ids = np.array([f"art{i:06d}" for i in range(n)])
    articles = pd.DataFrame({"article_id": art_ids, "text": texts})

    g_w0 = rng.integers(0, words - 16, (n, spans))
    g_len = rng.integers(1, 15, (n, spans))
    g_lab = rng.integers(0, len(LABELS), (n, spans))
    ann_rows, span_frames, rel_frames = [], [], []
    for k in range(annotators):
        ann_ids = np.char.add(art_ids, f"-a{k}")
        ann_rows.append(
            pd.DataFrame(
                {
                    "annotation_id": ann_ids,
                    "project": "bench",
                    "article_id": art_ids,
                    "annotator": f"ann{k}",
                    "origin": "human",
                    "cancelled": False,
                    "superseded": False,
                    "deleted_at": None,
                }
            )
        )
        keep = rng.random((n, spans)) > 0.1
        w0 = np.clip(g_w0 + rng.choice([-1, 0, 0, 0, 1], (n, spans)), 0, words - 1)
        w1 = np.clip(w0 + g_len + rng.choice([-1, 0, 0, 0, 1], (n, spans)), w0 + 1, words)
        a_idx, s_idx = np.nonzero(keep)
        start = wstart[a_idx, w0[a_idx, s_idx]]
        end = wstart[a_idx, w1[a_idx, s_idx] - 1] + wl[a_idx, w1[a_idx, s_idx] - 1]
        sid = np.char.add("s", s_idx.astype(str))
        span_frames.append(
            pd.DataFrame(
                {
                    "annotation_id": ann_ids[a_idx],
                    "span_id": sid,
                    "article_id": art_ids[a_idx],
                    "label": LABELS[g_lab[a_idx, s_idx]],
                    "start": start,
                    "end": end,
                }
            )
        )
        # one quote -> speaker link per article between the first two kept spans
        first = pd.DataFrame({"a": a_idx, "s": sid}).groupby("a")["s"].head(2)
        pairs = (
            pd.DataFrame({"a": a_idx[first.index], "s": first.to_numpy()})
            .groupby("a")["s"]
            .agg(list)
        )
        pairs = pairs[pairs.map(len) == 2]
        rel_frames.append(
            pd.DataFrame(
                {
                    "annotation_id": ann_ids[pairs.index],
                    "from_span_id": pairs.str[0],
                    "to_span_id": pairs.str[1],
                    "label": "said_by",
                }
            )
        )
    return (
        articles,
        pd.concat(ann_rows, ignore_index=True),
        pd.concat(span_frames, ignore_index=True),
        pd.concat(rel_frames, ignore_index=True),
    )


def alpha_matrix(articles, annotations, spans, label="QUOTE"):
    """Reliability data (annotators x tokens, 0/1) of one label layer, built like the report does."""
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="articles (default 10000)")
    ap.add_argument("--annotators", type=int, default=3)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument(
        "--skip-krippendorff", action="store_true", help="do not time krippendorff.alpha"
    )
    args = ap.parse_args()

    t0 = time.perf_counter()
    articles, annotations, spans, relations = synthetic(args.n, args.annotators)
    t_gen = time.perf_counter() - t0
    print(
        f"synthetic corpus: {len(articles)} articles, {len(annotations)} annotations, "
        f"{len(spans)} spans, {len(relations)} links ({t_gen:.1f} s)"
    )

    t0 = time.perf_counter()
    rep = build_report(articles, annotations, spans, relations, bootstrap=args.bootstrap)
    t_report = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = rep["summary"]
    print(
        f"report: {t_report:.2f} s for {rep['coverage']['tokens']} tokens, bootstrap {args.bootstrap}; "
        f"peak RSS {rss_mb:.0f} MB"
    )
    print("  " + ", ".join(f"{k}={v['value']:.3f}" for k, v in s.items()))

    data = alpha_matrix(articles, annotations, spans)
    t0 = time.perf_counter()
    counts = np.stack([(data == 0).sum(0), (data == 1).sum(0)], axis=1)
    ours = nominal_alpha_from_counts(counts)
    t_ours = time.perf_counter() - t0
    print(
        f"token alpha (QUOTE layer, {data.shape[0]} x {data.shape[1]}): ours {t_ours:.3f} s -> {ours:.6f}"
    )
    if not args.skip_krippendorff:
        import krippendorff

        t0 = time.perf_counter()
        ref = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        t_ref = time.perf_counter() - t0
        print(
            f"  krippendorff.alpha {t_ref:.3f} s -> {ref:.6f}; ratio {t_ref / t_ours:.1f}x "
            f"(same value: {abs(ref - ours) < 1e-9})"
        )


if __name__ == "__main__":
    main()
