"""The agreement report's bootstrap: percentile CIs from resampling articles, in blocks whose draws
depend only on (seed, block), so the CIs are the same in this process and on Dask workers."""

from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np
import pytest

import spanbank.agreement.report as report_mod
import spanbank.parallel as parallel_mod
from spanbank.agreement.report import (
    BOOT_BLOCK,
    BOOT_ROWS,
    _boot_block,
    _boot_range,
    _bootstrap,
    _replicates,
    build_report,
)
from spanbank.parallel import Engine
from spanbank.synth import synth_chunks


@pytest.fixture(scope="module")
def tables():
    """60 synthetic articles, each annotated by 3 annotators who disagree (spanbank.synth)."""
    arts, spans, rels = next(synth_chunks(60, 4, 3, chunk=60))
    ann = spans[["annotation_id", "article_id", "annotator"]].drop_duplicates("annotation_id")
    ann = ann.assign(project="synth", origin="human", cancelled=False, superseded=False)
    return arts, ann, spans.drop(columns="annotator"), rels


@pytest.fixture(scope="module")
def blocks(tables):
    """The report's bootstrap input (per-article sums and figure of each summary figure)."""
    got = {}

    def keep(blocks, *args):
        got["blocks"] = blocks
        return {}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_mod, "_bootstrap", keep)
        build_report(*tables, bootstrap=1)
    return got["blocks"]


def _cis(report: dict) -> dict:
    return {k: (v["ci_low"], v["ci_high"]) for k, v in report["summary"].items()}


def test_two_workers_give_the_cis_of_one_process(blocks, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(parallel_mod, "SCATTER_BYTES", 1)  # the sums go to the workers once
    n_boot = 5 * BOOT_BLOCK + 37  # six blocks, the last one short
    here = _bootstrap(blocks, n_boot, 7)
    eng = Engine(workers=2)
    try:
        client = eng._connect()
        scatter, scattered = client.scatter, []
        monkeypatch.setattr(
            client, "scatter", lambda a, **kw: scattered.append(a) or scatter(a, **kw)
        )
        there = _bootstrap(blocks, n_boot, 7, eng)
        assert len(scattered) == 1 and scattered[0].ndim == 2  # the sums, once for six blocks
        deadline = time.monotonic() + 10  # the scheduler forgets released data asynchronously
        while eng._client.who_has() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not eng._client.who_has()  # the scattered sums were released after the map
    finally:
        eng.close()
    assert here == there  # to the last bit
    assert math.isfinite(here["token_alpha"][0]) and here["token_alpha"][0] < here["token_alpha"][1]


def test_same_seed_same_cis_other_seed_other_cis(tables):
    a, b = (build_report(*tables, bootstrap=400, seed=5) for _ in range(2))
    c = build_report(*tables, bootstrap=400, seed=6)
    assert _cis(a) == _cis(b)
    assert _cis(a)["token_alpha"] != _cis(c)["token_alpha"]
    assert _cis(a)["span_f1_overlap"] != _cis(c)["span_f1_overlap"]


def test_cis_bracket_the_figures(tables):
    summary = build_report(*tables, bootstrap=1000)["summary"]
    assert math.isnan(summary.pop("alpha_u")["ci_low"])  # not a sum over articles: no CI
    defined = {k: s for k, s in summary.items() if math.isfinite(s["value"])}
    assert {"token_alpha", "span_f1_overlap", "alpha", "relation_f1", "attribution_f1"} <= set(
        defined
    )
    for k, s in defined.items():
        assert s["ci_low"] <= s["value"] <= s["ci_high"], k
        assert s["ci_low"] < s["ci_high"], k  # the annotators disagree: the CI has a width


def test_percentile_bootstrap_matches_a_plain_loop():
    """Independently: resample the articles with the documented draws, one replicate at a time,
    and take the 2.5th and 97.5th percentiles of the ratio of sums."""
    rng = np.random.default_rng(1)
    m = np.column_stack([rng.poisson(3, 51), rng.poisson(5, 51) + 1]).astype(float)
    n_boot, seed = 450, 11
    figs = []
    for b in range(math.ceil(n_boot / BOOT_BLOCK)):
        rng = np.random.default_rng([seed, b])
        for _ in range(min(BOOT_BLOCK, n_boot - b * BOOT_BLOCK)):
            sample = m[rng.integers(0, len(m), size=len(m))]  # n articles, with replacement
            figs.append(sample[:, 0].sum() / sample[:, 1].sum())
    want = (np.percentile(figs, 2.5), np.percentile(figs, 97.5))
    got = _bootstrap({"ratio": (m, lambda r: r[:, 0] / r[:, 1])}, n_boot, seed)["ratio"]
    assert got == pytest.approx(want, rel=1e-12)


def test_a_block_holds_the_counts_of_a_few_replicates_not_of_all():
    """A block of 200 replicates over 100,000 articles held 200 x 100,000 counts (160 MB) at once;
    it now holds `BOOT_ROWS` rows of counts, and gives the same sums as the plain product."""
    n = 100_000
    m = np.column_stack([np.arange(n) % 7, np.ones(n)]).astype(float)
    tracemalloc.start()
    try:
        got = _boot_block(0, m, 3, BOOT_BLOCK)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < (BOOT_ROWS + 8) * n * 8  # the counts, one draw, one bincount, some slack
    rng = np.random.default_rng([3, 0])
    for r in range(BOOT_BLOCK):
        counts = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(float)
        assert np.array_equal(got[r], counts @ m), r  # integer sums: exact


def test_ci_of_a_mean_has_the_normal_width():
    """The mean of 400 draws of N(5, 2): the 95% CI is about mean ± 1.96 s / sqrt(n)."""
    x = np.random.default_rng(3).normal(5, 2, 400)
    m = np.column_stack([x, np.ones_like(x)])
    lo, hi = _bootstrap({"mean": (m, lambda r: r[:, 0] / r[:, 1])}, 2000, 0)["mean"]
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert (lo + hi) / 2 == pytest.approx(x.mean(), abs=0.1 * half)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)


def _ranges_of(monkeypatch, rows: int, width: int) -> None:
    """Make `_replicates` cut matrices `width` wide into ranges of `rows` rows."""
    monkeypatch.setattr(report_mod, "BOOT_RANGE_BYTES", 8 * width * rows)


@pytest.mark.parametrize("rows", [None, 7])  # one range (the corpus whole); ranges of 7 rows
def test_resamples_have_the_moments_of_n_uniform_draws(monkeypatch, rows):
    """With the identity as the sums, a replicate's row is how often each of n = 30 articles was
    drawn: multinomial(n, 1/n), whose counts have mean 1, variance 1 - 1/n and covariance -1/n
    (any textbook). Ranges (7, 7, 7, 7, 2 rows) must keep that distribution, and the total n."""
    n, n_boot = 30, 6000
    if rows:
        _ranges_of(monkeypatch, rows, n)
    reps = _replicates(np.eye(n), n_boot, 4)
    assert np.array_equal(reps.sum(axis=1), np.full(n_boot, n))  # n draws in every replicate
    assert np.array_equal(reps, np.round(reps)) and reps.min() >= 0
    se = math.sqrt(1 / n_boot)  # about the standard error of each moment below
    assert np.abs(reps.mean(axis=0) - 1).max() < 5 * se
    assert np.abs(reps.var(axis=0) - (1 - 1 / n)).max() < 8 * se
    cov = np.cov(reps, rowvar=False)[~np.eye(n, dtype=bool)]
    assert abs(cov.mean() + 1 / n) < se and np.abs(cov + 1 / n).max() < 5 * se  # independent ranges
    first = reps[:, :7].sum(axis=1)  # a range's share: binomial(n, 7/n)
    assert first.mean() == pytest.approx(7, abs=5 * se * math.sqrt(7))
    assert first.var() == pytest.approx(n * 7 / n * (1 - 7 / n), rel=0.1)


def test_ranges_give_the_cis_of_a_mean_and_the_same_on_two_workers(monkeypatch):
    """The normal-width check with the 400 draws in ranges of 64 rows, in this process and on
    2 workers (to the last bit)."""
    pytest.importorskip("distributed")
    x = np.random.default_rng(3).normal(5, 2, 400)
    m = np.column_stack([x, np.ones_like(x)])
    _ranges_of(monkeypatch, 64, 2)
    blocks = {"mean": (m, lambda r: r[:, 0] / r[:, 1])}
    here = _bootstrap(blocks, 2000, 0)
    with parallel_mod.engine(workers=2) as eng:
        assert _bootstrap(blocks, 2000, 0, eng) == here
    lo, hi = here["mean"]
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert (lo + hi) / 2 == pytest.approx(x.mean(), abs=0.1 * half)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)


def test_a_range_task_holds_its_range_not_the_corpus():
    """A range of 50,000 rows of a corpus of 1M: the task's memory is its range's counts."""
    n, rows = 1_000_000, 50_000
    m = np.column_stack([np.arange(rows) % 7, np.ones(rows)]).astype(float)
    tracemalloc.start()
    try:
        got = _boot_range((3, m), n, rows, 5, BOOT_BLOCK)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < (BOOT_ROWS + 8) * rows * 8  # as a block over the range alone
    assert got.shape == (BOOT_BLOCK, 2)
    assert abs(got[:, 1].mean() - rows) < 5 * math.sqrt(rows)  # a range's share: about n rows/n
