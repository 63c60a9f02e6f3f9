"""Inter-annotator agreement coefficients: kappas, alphas, unitizing alpha, span and relation F1."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from spanbank.errors import AgreementError
from spanbank.spans import fragment_list, is_missing

__all__ = [
    "align_span_arrays",
    "align_spans",
    "category_figures",
    "category_item_stats",
    "cohen_kappa",
    "fragment_pieces",
    "fleiss_kappa",
    "gwet_ac1",
    "krippendorff_alpha",
    "multi_rater_agreement",
    "nominal_alpha_from_counts",
    "observed_agreement",
    "prf",
    "relation_f1",
    "span_f1",
    "unitizing_alpha",
    "unitizing_components",
]

NAN = float("nan")


# --------------------------------------------------------------------------- helpers


def _ratio(num: float, den: float) -> float:
    """num / den, NaN when the denominator is zero (an undefined figure)."""
    return float(num / den) if den else NAN


def prf(tp: int, n_pred: int, n_gold: int, undefined: float = NAN) -> dict:
    """Precision, recall and F1 of ``tp`` matches among ``n_pred`` predicted and ``n_gold``
    gold items, with the counts; a figure with a zero denominator is ``undefined``."""
    p = tp / n_pred if n_pred else undefined
    r = tp / n_gold if n_gold else undefined
    f = 2 * tp / (n_pred + n_gold) if n_pred + n_gold else undefined
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "n_pred": n_pred, "n_gold": n_gold}


def _paired_codes(a: Sequence, b: Sequence, categories: Sequence | None, who: str):
    """Factorise two rating sequences jointly; returns (codes_a, codes_b, q)."""
    a = list(a)
    b = list(b)
    if len(a) != len(b):
        raise AgreementError(
            f"{who} needs two sequences of equal length, got {len(a)} and {len(b)}"
        )
    both = pd.Series(a + b, dtype=object)
    if both.isna().any():
        raise AgreementError(
            f"{who} does not accept missing ratings (None/NaN); drop those items first"
        )
    if categories is None:
        codes, uniques = pd.factorize(both, sort=False)
        q = len(uniques)
    else:
        cats = pd.Index(list(categories))
        codes = cats.get_indexer(both)
        if (codes < 0).any():
            raise AgreementError(f"{who}: a rating is not among the given categories")
        q = len(cats)
    n = len(a)
    return codes[:n], codes[n:], q


def _pair_table(a: Sequence, b: Sequence, categories: Sequence | None, who: str) -> np.ndarray:
    """Contingency table, ndarray shape (q, q), rows rater a, columns rater b."""
    ca, cb, q = _paired_codes(a, b, categories, who)
    return (
        np.bincount(ca * q + cb, minlength=q * q).reshape(q, q).astype(float)
        if q
        else np.zeros((0, 0))
    )


def _kappa_from_table(table: np.ndarray) -> float:
    n = table.sum()
    if n == 0:
        return NAN
    p_o = np.trace(table) / n
    p_e = float(table.sum(1) @ table.sum(0)) / (n * n)
    return _ratio(p_o - p_e, 1.0 - p_e) if p_e < 1 else NAN


def _ac1_from_table(table: np.ndarray) -> float:
    """Gwet's AC1 from a (q, q) two-rater table (Gwet 2008, eqs. 14-15)."""
    n = table.sum()
    q = table.shape[0]
    if n == 0 or q < 2:
        return NAN
    p_a = np.trace(table) / n
    pi = (table.sum(1) + table.sum(0)) / (2 * n)
    p_e = float((pi * (1 - pi)).sum()) / (q - 1)
    return _ratio(p_a - p_e, 1.0 - p_e) if p_e < 1 else NAN


# --------------------------------------------------------------------------- two raters


def observed_agreement(a: Sequence, b: Sequence) -> float:
    """Raw proportion of items on which two raters gave the same label (NaN when empty)."""
    table = _pair_table(a, b, None, "observed_agreement")
    n = table.sum()
    return float(np.trace(table) / n) if n else NAN


def cohen_kappa(a: Sequence, b: Sequence, categories: Sequence | None = None) -> float:
    """Cohen's (1960) kappa for two raters labelling the same items.

    ``a`` and ``b`` are equal-length label sequences; ``categories`` optionally fixes the
    scale. kappa = (p_o - p_e) / (1 - p_e) with p_e from each rater's own marginals.
    NaN when there are no items or chance agreement is 1 (both raters used one label).
    """
    return _kappa_from_table(_pair_table(a, b, categories, "cohen_kappa"))


def gwet_ac1(a: Sequence, b: Sequence, categories: Sequence | None = None) -> float:
    """Gwet's (2008) AC1 for two raters labelling the same items.

    AC1 = (p_a - p_e) / (1 - p_e), p_e = sum_k pi_k (1 - pi_k) / (q - 1), pi_k the mean of
    both raters' proportions for category k and q the number of categories (those used,
    unless ``categories`` gives the scale). NaN when there are no items or q < 2.
    """
    return _ac1_from_table(_pair_table(a, b, categories, "gwet_ac1"))


# --------------------------------------------------------------------------- many raters


def _count_matrix(counts, who: str) -> np.ndarray:
    x = np.asarray(counts, dtype=float)
    if x.ndim != 2:
        raise AgreementError(f"{who} needs a 2-D subjects x categories matrix, got {x.ndim}-D")
    if x.size and (np.isnan(x).any() or (x < 0).any()):
        raise AgreementError(f"{who}: counts must be non-negative numbers")
    return x


def category_item_stats(counts) -> np.ndarray:
    """Per-subject sums behind the multi-rater figures, so they add up over subjects.

    ``counts``: ndarray, shape (N, q), raters per (subject, category); subjects with fewer
    than two ratings carry no pair and get a zero row. Returns ndarray, shape (N, 3 + 2q):
    [1, p_a(i), o(i), r_ik (q), r_ik / r_i (q)] with r_i = sum_k r_ik,
    p_a(i) = sum_k r_ik (r_ik - 1) / (r_i (r_i - 1)) and o(i) = sum_k r_ik (r_ik - 1) / (r_i - 1),
    Krippendorff's coincidence diagonal of the subject. See :func:`category_figures`.
    """
    x = np.asarray(counts, dtype=float)
    r = x.sum(1)
    ok = r >= 2
    same = (x * (x - 1)).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_a = np.where(ok, same / (r * (r - 1)), 0.0)
        o = np.where(ok, same / (r - 1), 0.0)
        share = np.where(ok[:, None], x / r[:, None], 0.0)
    return np.column_stack([ok.astype(float), p_a, o, np.where(ok[:, None], x, 0.0), share])


def category_figures(sums, q: int | None = None) -> dict:
    """Krippendorff's alpha, Fleiss' kappa, Gwet's AC1 and observed agreement from summed stats.

    ``sums``: ndarray, shape (..., 3 + 2q), :func:`category_item_stats` summed over subjects
    (a leading axis = bootstrap replicates). With n' subjects rated at least twice, r_i
    raters of subject i and pi_k = (1/n') sum_i r_ik / r_i (Gwet 2014, Handbook of
    Inter-Rater Reliability, 4th ed., ch. 2 and 4, for a varying number of raters):

        p_a = (1/n') sum_i sum_k r_ik (r_ik - 1) / (r_i (r_i - 1))
        Fleiss' kappa = (p_a - sum_k pi_k^2) / (1 - sum_k pi_k^2)      (Fleiss 1971)
        AC1 = (p_a - p_e) / (1 - p_e),  p_e = sum_k pi_k (1 - pi_k) / (q - 1)   (Gwet 2008)

    With the same number of raters everywhere these are Fleiss' (1971) and Gwet's formulas
    exactly. alpha is Krippendorff's nominal alpha from the coincidence diagonal and the
    pairable values per category. ``q`` (default: every category column) is the size of
    the scale for AC1. Values NaN where undefined.
    """
    s = np.asarray(sums, dtype=float)
    k = (s.shape[-1] - 3) // 2
    q = k if q is None else q
    items, pa = s[..., 0], s[..., 1]
    n_c, share = s[..., 3 : 3 + k], s[..., 3 + k :]
    with np.errstate(divide="ignore", invalid="ignore"):
        p_a = np.where(items > 0, pa / items, np.nan)
        pi = share / items[..., None]
        pe_f = (pi * pi).sum(-1)
        pe_g = (pi * (1 - pi)).sum(-1) / (q - 1) if q > 1 else np.full_like(p_a, np.nan)
        fleiss = np.where(pe_f < 1, (p_a - pe_f) / (1 - pe_f), np.nan)
        ac1 = np.where(pe_g < 1, (p_a - pe_g) / (1 - pe_g), np.nan)
    out = {
        "alpha": _alpha_nominal_stats(s[..., 2], n_c),
        "fleiss_kappa": fleiss,
        "ac1": ac1,
        "observed": p_a,
    }
    return {key: (float(v) if np.ndim(v) == 0 else v) for key, v in out.items()}


def fleiss_kappa(counts) -> float:
    """Fleiss' (1971) kappa from a count matrix, for a constant or varying number of raters.

    ``counts``: array_like, shape (N, k); ``counts[i, j]`` is how many raters put subject i
    in category j. Subjects rated fewer than twice are left out; with a varying number of
    raters the chance term uses the mean per-subject proportions (Gwet 2014, see
    :func:`category_figures`), which is Fleiss' formula when the number is constant. NaN
    when no subject has two ratings or chance agreement is 1.
    """
    x = _count_matrix(counts, "fleiss_kappa")
    if x.shape[0] == 0 or x.shape[1] == 0:
        return NAN
    return category_figures(category_item_stats(x).sum(0))["fleiss_kappa"]


def multi_rater_agreement(counts, q: int | None = None) -> dict:
    """alpha, Fleiss' kappa, Gwet's AC1 and observed agreement of a count matrix at once.

    ``counts``: array_like, shape (N, k), raters per (subject, category); the number of
    raters may vary (missing ratings). ``q``: the scale size for AC1 (default k).
    """
    x = _count_matrix(counts, "multi_rater_agreement")
    if x.shape[1] == 0:
        return dict.fromkeys(("alpha", "fleiss_kappa", "ac1", "observed"), NAN)
    return category_figures(category_item_stats(x).sum(0), q)


def nominal_alpha_from_counts(value_counts) -> float:
    """Krippendorff's nominal alpha from a value-count matrix, vectorised.

    ``value_counts``: array_like, shape (N, V): how many coders gave unit u value v.
    Same result as ``krippendorff.alpha(value_counts=..., level_of_measurement="nominal")``
    without building the (N, V, V) coincidence arrays. NaN when undefined.
    """
    x = np.asarray(value_counts, dtype=float)
    if x.ndim != 2 or (x.size and (x < 0).any()):
        raise AgreementError(
            "nominal_alpha_from_counts needs a non-negative (units x values) matrix"
        )
    m_u = x.sum(1)
    keep = m_u >= 2
    x, m_u = x[keep], m_u[keep]
    o_diag = float((x * (x - 1) / (m_u - 1)[:, None]).sum())
    n_c = x.sum(0)
    return _alpha_nominal_stats(o_diag, n_c)


def _alpha_nominal_stats(o_diag, n_c) -> float:
    """alpha = 1 - (n - 1)(n - sum_c o_cc) / (n^2 - sum_c n_c^2) (Krippendorff 2011, nominal).

    ``o_diag`` is the sum of the coincidence matrix diagonal, ``n_c`` the pairable values per
    category; either may carry a leading batch axis (bootstrap replicates).
    """
    n_c = np.asarray(n_c, dtype=float)
    n = n_c.sum(-1)
    d_e = n * n - (n_c * n_c).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = 1.0 - (n - 1) * (n - np.asarray(o_diag, dtype=float)) / d_e
    a = np.where(d_e > 0, a, np.nan)
    return float(a) if a.ndim == 0 else a


def krippendorff_alpha(reliability_data, level: str = "nominal") -> float:
    """Krippendorff's alpha (Krippendorff 2011) via the ``krippendorff`` package.

    ``reliability_data``: array_like, shape (M coders, N units); NaN or None marks a
    missing value. ``level``: "nominal", "ordinal", "interval" or "ratio". Strings are
    allowed at the nominal level. NaN when undefined (fewer than two coders, no unit
    coded twice, or a single value in the data).
    """
    import krippendorff

    if level not in ("nominal", "ordinal", "interval", "ratio"):
        raise AgreementError(f"unknown level {level!r}; use nominal, ordinal, interval or ratio")
    raw = np.asarray(reliability_data, dtype=object)
    if raw.ndim != 2:
        raise AgreementError(
            f"krippendorff_alpha needs a 2-D coders x units array, got {raw.ndim}-D"
        )
    try:
        data = raw.astype(float)
    except (TypeError, ValueError):
        if level != "nominal":
            raise AgreementError(
                f"non-numeric ratings need level='nominal', not {level!r}"
            ) from None
        codes, _ = pd.factorize(pd.Series(raw.ravel()), use_na_sentinel=True)
        data = np.where(codes < 0, np.nan, codes).astype(float).reshape(raw.shape)
    if data.shape[0] < 2 or data.shape[1] == 0:
        return NAN
    coded = ~np.isnan(data)
    pairable = data[:, coded.sum(0) >= 2]
    # Only values in units coded at least twice enter alpha; one such value = undefined.
    if pairable.size == 0 or len(np.unique(pairable[~np.isnan(pairable)])) < 2:
        return NAN
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
    return value if np.isfinite(value) else NAN


def token_categories(lo, hi, slot, length, label, n_tok: int, n_slots: int, n_labels: int):
    """The category of every (annotator slot, token): 0 = none, else 1 + the label of the innermost span.

    ``lo``/``hi``: int arrays, the token range [lo, hi) each span covers; ``slot``,
    ``length`` (characters) and ``label`` (0..n_labels-1) per span. Nested or overlapping
    spans of one annotator give a token one value: the shortest span covering it wins, and
    between spans of equal length the label listed first. Returns ndarray, shape
    (n_slots, n_tok).
    """
    cnt = np.maximum(np.asarray(hi) - np.asarray(lo), 0)
    span = np.repeat(np.arange(len(cnt)), cnt)
    tok = np.asarray(lo)[span] + np.arange(int(cnt.sum())) - (np.cumsum(cnt) - cnt)[span]
    rank = np.asarray(length, dtype=np.int64)[span] * n_labels + np.asarray(label)[span]
    none = np.iinfo(np.int64).max
    best = np.full(n_slots * n_tok, none, dtype=np.int64)
    np.minimum.at(best, np.asarray(slot, dtype=np.int64)[span] * n_tok + tok, rank)
    return np.where(best == none, 0, best % max(n_labels, 1) + 1).reshape(n_slots, n_tok)


# --------------------------------------------------------------------------- span alignment


def _check_spans(starts: np.ndarray, ends: np.ndarray, who: str) -> None:
    bad = (starts > ends) | (starts < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise AgreementError(
            f"{who}: span {i} has start={int(starts[i])} end={int(ends[i])}; need 0 <= start <= end"
        )


def align_span_arrays(
    group_a,
    start_a,
    end_a,
    group_b,
    start_b,
    end_b,
    threshold: float = 0.5,
    fragments_a=None,
    fragments_b=None,
):
    """One-to-one alignment of two span sets, vectorised over many groups at once.

    ``group_*``: int array, a span can only match a span of the same group (encode
    article, label and whatever else must agree). ``start_*``/``end_*``: int arrays,
    end-exclusive. Spans match when IoU >= ``threshold`` (1.0 = identical offsets) or,
    for ``threshold == 0``, when they overlap at all. Matching is greedy by descending
    IoU (ties: earlier spans first), the same answer per group as sorting all candidate
    pairs and taking each pair whose spans are both still free.

    ``fragments_*`` (optional): per span None or its (start, end) parts; a discontinuous span
    is one unit whose overlap and length count only the characters inside its fragments
    (identical = same fragments).

    Returns (ia, ib): int arrays of matched indices into a and b, ordered by ia.
    """
    ga, sa, ea = (np.asarray(v, dtype=np.int64).ravel() for v in (group_a, start_a, end_a))
    gb, sb, eb = (np.asarray(v, dtype=np.int64).ravel() for v in (group_b, start_b, end_b))
    if not (len(ga) == len(sa) == len(ea)) or not (len(gb) == len(sb) == len(eb)):
        raise AgreementError("align_span_arrays: group, start and end arrays differ in length")
    if not 0 <= threshold <= 1:
        raise AgreementError(f"IoU threshold must be between 0 and 1, got {threshold}")
    _check_spans(sa, ea, "spans a")
    _check_spans(sb, eb, "spans b")
    empty = np.zeros(0, dtype=np.int64)
    if len(ga) == 0 or len(gb) == 0:
        return empty, empty
    # Lay every group on its own stretch of one line so a single searchsorted finds the
    # candidates of all groups at once.
    gmin = min(ga.min(), gb.min())
    width = int(max(ea.max(), eb.max())) + 2
    ka_s = (ga - gmin) * width + sa
    ka_e = (ga - gmin) * width + ea
    kb_s = (gb - gmin) * width + sb
    order_b = np.argsort(kb_s, kind="stable")
    kb_sorted = kb_s[order_b]
    max_len_b = int((eb - sb).max())
    lo = np.searchsorted(kb_sorted, np.maximum(ka_s - max_len_b, (ga - gmin) * width), "left")
    hi = np.searchsorted(kb_sorted, ka_e, "right")
    cnt = np.maximum(hi - lo, 0)
    total = int(cnt.sum())
    if total == 0:
        return empty, empty
    ca = np.repeat(np.arange(len(ga)), cnt)
    first = np.cumsum(cnt) - cnt
    cb = order_b[lo[ca] + np.arange(total) - first[ca]]
    same = ga[ca] == gb[cb]
    ca, cb = ca[same], cb[same]
    inter = np.minimum(ea[ca], eb[cb]) - np.maximum(sa[ca], sb[cb])
    len_a, len_b = ea[ca] - sa[ca], eb[cb] - sb[cb]
    identical = (sa[ca] == sb[cb]) & (ea[ca] == eb[cb])
    if fragments_a is not None or fragments_b is not None:
        inter, len_a, len_b, identical = _fragment_overlap(
            ca, cb, (sa, ea, fragments_a), (sb, eb, fragments_b), (inter, len_a, len_b, identical)
        )
    union = len_a + len_b - np.maximum(inter, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(identical, 1.0, np.maximum(inter, 0) / np.where(union > 0, union, 1))
    keep = identical | ((inter > 0) & (iou >= threshold))
    ca, cb, iou = ca[keep], cb[keep], iou[keep]
    # Strict global order: IoU descending, then a index, then b index.
    order = np.lexsort((cb, ca, -iou))
    ca, cb = ca[order], cb[order]
    out_a, out_b = [empty], [empty]
    while len(ca):
        # A pair that is the best remaining for both its spans is taken by greedy in any
        # order; taking all such pairs per round reproduces the sequential greedy result.
        _, fa = np.unique(ca, return_index=True)
        _, fb = np.unique(cb, return_index=True)
        best_a = np.zeros(len(ca), bool)
        best_b = np.zeros(len(ca), bool)
        best_a[fa] = True
        best_b[fb] = True
        take = best_a & best_b
        ta, tb = ca[take], cb[take]
        out_a.append(ta)
        out_b.append(tb)
        used_a = np.zeros(len(ga), bool)
        used_b = np.zeros(len(gb), bool)
        used_a[ta] = True
        used_b[tb] = True
        free = ~(used_a[ca] | used_b[cb])
        ca, cb = ca[free], cb[free]
    ia, ib = np.concatenate(out_a), np.concatenate(out_b)
    order = np.argsort(ia, kind="stable")
    return ia[order], ib[order]


def _fragment_overlap(ca, cb, side_a, side_b, figures):
    """(inter, len_a, len_b, identical) of candidate pairs, recounted over fragments for the
    pairs where either span is discontinuous (the others keep their outer-bound figures)."""
    inter, len_a, len_b, identical = (np.array(f) for f in figures)

    def parts(side, i):
        starts, ends, frags = side
        cell = None if frags is None else frags[i]
        return fragment_list(starts[i], ends[i], cell)

    def split(side, i):
        return side[2] is not None and not is_missing(side[2][i])

    for k in range(len(ca)):
        a, b = int(ca[k]), int(cb[k])
        if not (split(side_a, a) or split(side_b, b)):
            continue
        pa, pb = parts(side_a, a), parts(side_b, b)
        inter[k] = sum(max(0, min(e1, e2) - max(s1, s2)) for s1, e1 in pa for s2, e2 in pb)
        len_a[k], len_b[k] = sum(e - s for s, e in pa), sum(e - s for s, e in pb)
        identical[k] = pa == pb
    return inter, len_a, len_b, identical


def fragment_pieces(starts, ends, fragments=None, limits=None):
    """The pieces of text a span set covers: one per contiguous span, one per fragment of a
    discontinuous one (for token and unitizing measures, which count characters, not spans).

    ``starts``/``ends``: int arrays, shape (n,); ``fragments``: None or per span None / its
    (start, end) parts; ``limits``: optional int array, shape (n,), each piece clipped to it.
    Returns (owner, start, end): int arrays, shape (m,), owner = index of the piece's span.
    """
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    owner = np.arange(len(starts))
    if fragments is not None:
        split = np.array([not is_missing(f) for f in fragments], dtype=bool)
        if split.any():
            parts = [
                fragment_list(s, e, f) for s, e, f in zip(starts, ends, fragments, strict=True)
            ]
            counts = np.array([len(p) if k else 1 for p, k in zip(parts, split, strict=True)])
            owner = np.repeat(owner, counts)
            flat = [
                q
                for p, k, s, e in zip(parts, split, starts, ends, strict=True)
                for q in (p if k else [(s, e)])
            ]
            starts = np.array([q[0] for q in flat], np.int64)
            ends = np.array([q[1] for q in flat], np.int64)
    if limits is not None:
        ends = np.minimum(ends, np.asarray(limits, np.int64)[owner])
        starts = np.minimum(starts, ends)
    return owner, starts, ends


def _span_arrays(spans: Iterable, who: str):
    rows = [tuple(s) for s in spans]
    for r in rows:
        if len(r) not in (3, 4):
            raise AgreementError(
                f"{who}: each span must be (label, start, end[, fragments]), got {r!r}"
            )
    labels = [r[0] for r in rows]
    starts = np.array([r[1] for r in rows], dtype=np.int64)
    ends = np.array([r[2] for r in rows], dtype=np.int64)
    _check_spans(starts, ends, who)
    frags = [r[3] if len(r) == 4 else None for r in rows]
    return labels, starts, ends, frags if any(f is not None for f in frags) else None


def _align(a, b, threshold: float):
    la, sa, ea, fa = _span_arrays(a, "spans a")
    lb, sb, eb, fb = _span_arrays(b, "spans b")
    codes, _ = pd.factorize(pd.Series(la + lb, dtype=object))
    ga, gb = codes[: len(la)], codes[len(la) :]
    ia, ib = align_span_arrays(ga, sa, ea, gb, sb, eb, threshold, fa, fb)
    return ia, ib, len(la), len(lb)


def align_spans(a: Iterable, b: Iterable, threshold: float = 0.5) -> list[tuple[int, int]]:
    """Match spans of two annotators one-to-one; returns [(index in a, index in b), ...].

    ``a``, ``b``: iterables of ``(label, start, end)`` or ``(label, start, end, fragments)``
    (end exclusive; a discontinuous span matches as one unit). Spans match when
    they share the label and IoU >= ``threshold`` (1.0 = identical offsets, 0 = any
    overlap), greedily by descending IoU. See :func:`align_span_arrays`.
    """
    ia, ib, _, _ = _align(a, b, threshold)
    return list(zip(ia.tolist(), ib.tolist(), strict=True))


def _mode_threshold(mode: str, threshold: float) -> float:
    if mode == "exact":
        return 1.0
    if mode == "overlap":
        return threshold
    raise AgreementError(f"unknown span matching mode {mode!r}; use 'exact' or 'overlap'")


def span_f1(a: Iterable, b: Iterable, mode: str = "exact", threshold: float = 0.5) -> float:
    """F1 between two annotators' spans, each an iterable of ``(label, start, end)``.

    ``mode="exact"``: same label and offsets; ``"overlap"``: one-to-one matching of spans
    with the same label and IoU >= ``threshold`` (0 = any overlap). F1 = 2 matches /
    (|a| + |b|), symmetric in a and b; NaN when both are empty.
    """
    ia, _, na, nb = _align(a, b, _mode_threshold(mode, threshold))
    return _ratio(2 * len(ia), na + nb)


def _relation_pairs(relations: Iterable, n_spans: int, who: str):
    rows = [tuple(r) for r in relations]
    for r in rows:
        if len(r) != 3:
            raise AgreementError(
                f"{who}: each relation must be (from_index, to_index, label), got {r!r}"
            )
        if not (0 <= int(r[0]) < n_spans and 0 <= int(r[1]) < n_spans):
            raise AgreementError(f"{who}: relation {r!r} points outside the {n_spans} spans")
    return rows


def relation_f1(
    spans_a: Iterable,
    relations_a: Iterable,
    spans_b: Iterable,
    relations_b: Iterable,
    threshold: float = 0.5,
    conditional: bool = False,
) -> float:
    """F1 over links (e.g. QUOTE -> SPEAKER) whose endpoints match through the span alignment.

    ``spans_*``: iterables of ``(label, start, end)``; ``relations_*``: iterables of
    ``(from_index, to_index, label)`` indexing those spans. A link of a matches a link of
    b with the same label when both endpoints are aligned (:func:`align_spans` with
    ``threshold``). End-to-end F1 counts every link; ``conditional=True`` counts only
    links whose two endpoints are both aligned, so it measures linking alone. NaN when
    there are no links to count.
    """
    spans_a, spans_b = list(spans_a), list(spans_b)
    ia, ib, na, nb = _align(spans_a, spans_b, threshold)
    ra = _relation_pairs(relations_a, na, "relations a")
    rb = _relation_pairs(relations_b, nb, "relations b")
    a_to_b = dict(zip(ia.tolist(), ib.tolist(), strict=True))
    aligned_b = set(ib.tolist())
    if conditional:
        ra = [r for r in ra if int(r[0]) in a_to_b and int(r[1]) in a_to_b]
        rb = [r for r in rb if int(r[0]) in aligned_b and int(r[1]) in aligned_b]
    remaining: dict = {}
    for f, t, lab in rb:
        key = (int(f), int(t), lab)
        remaining[key] = remaining.get(key, 0) + 1
    hits = 0
    for f, t, lab in ra:
        key = (a_to_b.get(int(f)), a_to_b.get(int(t)), lab)
        if remaining.get(key, 0) > 0:
            remaining[key] -= 1
            hits += 1
    return _ratio(2 * hits, len(ra) + len(rb))


# --------------------------------------------------------------------------- unitizing alpha


def _merge_units(key_s: np.ndarray, key_e: np.ndarray):
    """Union overlapping intervals (already on disjoint stretches per layer); sorted output."""
    order = np.argsort(key_s, kind="stable")
    s, e = key_s[order], key_e[order]
    if len(s) == 0:
        return s, e, order
    run_end = np.maximum.accumulate(e)
    new = np.ones(len(s), bool)
    new[1:] = s[1:] >= run_end[:-1]
    starts_at = np.flatnonzero(new)
    return s[starts_at], np.maximum.reduceat(e, starts_at), order[starts_at]


def unitizing_components(
    article, coder, label, start, end, lengths, n_coders, n_labels, per_article=False
):
    """Observed and expected disagreement of Krippendorff's unitizing alpha, per label.

    Krippendorff (1995) "On the reliability of unitizing continuous data", Sociological
    Methodology 25; Krippendorff (2004) Content Analysis, 2nd ed., sec. 12.4. For each label
    c every coder's continuum splits into c-units (overlapping ones of one coder merged)
    and gaps. Pairs of coders' segments disagree by delta^2 = (b_g - b_h)^2 + (e_g - e_h)^2
    for overlapping units, l^2 for a unit lying inside the other coder's gap, else 0:

        cDo = sum_i sum_{j != i} sum_g sum_h delta^2 / (m (m - 1) L^2)
        cDe = (2 / L) sum_units [ (N_c - 1)/3 (2 l^3 - 3 l^2 + l)
                                  + l^2 sum_{gaps G >= l} (G - l + 1) ]
              / (m L (m L - 1) - sum_units l (l - 1))

    Several articles are treated as one continuum of total length L made of separate
    stretches (gaps never run across an article boundary); an article's coders are only
    compared with each other, so m may vary: m (m - 1) L^2 becomes L sum_a m_a (m_a - 1) L_a
    and m L becomes sum_a m_a L_a.

    Parameters: ``article``, ``coder``, ``label``, ``start``, ``end``: int arrays, one row
    per unit (coder = 0..n_coders[article]-1, label = 0..n_labels-1, offsets local to the
    article). ``lengths``, ``n_coders``: int arrays indexed by article.

    Returns (d_o, d_e), float arrays of shape (n_labels,), or (n_articles, n_labels) with
    ``per_article=True`` (each article its own continuum).
    """
    art = np.asarray(article, dtype=np.int64)
    cod = np.asarray(coder, dtype=np.int64)
    lab = np.asarray(label, dtype=np.int64)
    s = np.asarray(start, dtype=np.int64)
    e = np.asarray(end, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n_coders = np.asarray(n_coders, dtype=np.int64)
    n_art = len(lengths)
    s = np.clip(s, 0, lengths[art] if len(art) else 0)
    e = np.clip(e, 0, lengths[art] if len(art) else 0)
    keep = e > s
    art, cod, lab, s, e = art[keep], cod[keep], lab[keep], s[keep], e[keep]
    max_m = int(n_coders.max()) if n_art else 0

    # One line: article a occupies [off[a], off[a] + L_a); layers (label, coder) are
    # stacked far apart so intervals of different layers never touch.
    off = np.concatenate([[0], np.cumsum(lengths + 1)])
    line = int(off[-1]) + 1
    layer = lab * max(max_m, 1) + cod
    ks, ke, src = _merge_units(layer * line + off[art] + s, layer * line + off[art] + e)
    u_art, u_cod, u_lab = art[src], cod[src], lab[src]
    u_len = (ke - ks).astype(float)
    u_s = ks - (layer[src] * line + off[u_art])  # back to article-local offsets
    u_e = u_s + (ke - ks)

    # Gaps: complement of each present coder's merged units within its article.
    lay = (u_art * n_labels + u_lab) * max(max_m, 1) + u_cod  # (article, label, coder) id
    prev_same = np.zeros(len(lay), bool)
    prev_same[1:] = lay[1:] == lay[:-1]
    next_same = np.zeros(len(lay), bool)
    next_same[:-1] = lay[1:] == lay[:-1]
    prev_end = np.where(prev_same, np.concatenate([[0], u_e[:-1]]), 0)
    gap_before = u_s - prev_end
    gap_after = np.where(next_same, 0, lengths[u_art] - u_e)
    # Layers (article, label, coder) of present coders that have no unit at all: one gap.
    all_lay = np.arange(n_art * n_labels * max(max_m, 1))
    la_art = all_lay // (n_labels * max(max_m, 1))
    la_cod = all_lay % max(max_m, 1)
    la_lab = (all_lay // max(max_m, 1)) % n_labels
    empty = (la_cod < n_coders[la_art]) & ~np.isin(all_lay, lay)
    g_len = np.concatenate([gap_before, gap_after, lengths[la_art[empty]]])
    g_art = np.concatenate([u_art, u_art, la_art[empty]])
    g_lab = np.concatenate([u_lab, u_lab, la_lab[empty]])
    pos = g_len > 0
    g_len, g_art, g_lab = g_len[pos], g_art[pos], g_lab[pos]

    n_cells = n_art * n_labels if per_article else n_labels
    cell_u = u_art * n_labels + u_lab if per_article else u_lab
    cell_g = g_art * n_labels + g_lab if per_article else g_lab

    # Observed: every pair of coders within an article, both orders (hence the 2).
    delta = np.zeros(n_cells)
    for ci in range(max_m):
        for cj in range(ci + 1, max_m):
            sel_i = (u_cod == ci) & (n_coders[u_art] > cj)
            sel_j = u_cod == cj
            # back on the line without the coder in the layer: only same article+label meet
            ai = np.flatnonzero(sel_i)
            bj = np.flatnonzero(sel_j)
            ka = (
                u_lab[ai] * line + off[u_art[ai]] + u_s[ai],
                u_lab[ai] * line + off[u_art[ai]] + u_e[ai],
            )
            kb = (
                u_lab[bj] * line + off[u_art[bj]] + u_s[bj],
                u_lab[bj] * line + off[u_art[bj]] + u_e[bj],
            )
            lo = np.searchsorted(kb[1], ka[0], "right")
            hi = np.searchsorted(kb[0], ka[1], "left")
            cnt = np.maximum(hi - lo, 0)
            pa = np.repeat(np.arange(len(ai)), cnt)
            pb = lo[pa] + np.arange(int(cnt.sum())) - (np.cumsum(cnt) - cnt)[pa]
            d2 = (ka[0][pa] - kb[0][pb]).astype(float) ** 2 + (ka[1][pa] - kb[1][pb]).astype(
                float
            ) ** 2
            matched_b = np.zeros(len(bj), bool)
            matched_b[pb] = True
            lone_a = cnt == 0
            lone_b = ~matched_b
            delta += 2 * np.bincount(cell_u[ai][pa], weights=d2, minlength=n_cells)
            delta += 2 * np.bincount(
                cell_u[ai][lone_a], weights=u_len[ai][lone_a] ** 2, minlength=n_cells
            )
            delta += 2 * np.bincount(
                cell_u[bj][lone_b], weights=u_len[bj][lone_b] ** 2, minlength=n_cells
            )

    # Expected: units against all other units and all gaps of the same cell.
    n_c = np.bincount(cell_u, minlength=n_cells).astype(float)
    cubic = np.bincount(
        cell_u, weights=(2 * u_len**3 - 3 * u_len**2 + u_len) / 3.0, minlength=n_cells
    )
    term1 = (n_c - 1) * cubic
    width = int(max(g_len.max() if len(g_len) else 0, u_len.max() if len(u_len) else 0)) + 2
    gkey = cell_g * width + g_len
    order = np.argsort(gkey, kind="stable")
    gkey, gsorted = gkey[order], g_len[order].astype(float)
    csum = np.concatenate([[0.0], np.cumsum(gsorted)])
    lo = np.searchsorted(gkey, cell_u * width + u_len.astype(np.int64), "left")
    hi = np.searchsorted(gkey, (cell_u + 1) * width, "left")
    fits = (csum[hi] - csum[lo]) - (u_len - 1) * (hi - lo)
    term2 = np.bincount(cell_u, weights=u_len**2 * fits, minlength=n_cells)
    within = np.bincount(cell_u, weights=u_len * (u_len - 1), minlength=n_cells)

    m_l = (n_coders * lengths).astype(float)
    pair_l = (n_coders * (n_coders - 1) * lengths).astype(float)
    if per_article:
        big_l = np.repeat(lengths.astype(float), n_labels)
        big_ml = np.repeat(m_l, n_labels)
        norm_o = big_l * np.repeat(pair_l, n_labels)
    else:
        big_l = np.full(n_labels, float(lengths.sum()))
        big_ml = np.full(n_labels, m_l.sum())
        norm_o = big_l * pair_l.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        d_o = np.where(norm_o > 0, delta / norm_o, np.nan)
        den_e = big_ml * (big_ml - 1) - within
        d_e = np.where((den_e > 0) & (big_l > 0), (2.0 / big_l) * (term1 + term2) / den_e, np.nan)
    if per_article:
        return d_o.reshape(n_art, n_labels), d_e.reshape(n_art, n_labels)
    return d_o, d_e


def _alpha_u(d_o: np.ndarray, d_e: np.ndarray, present: np.ndarray) -> float:
    """1 - mean Do / mean De over the labels present (DKPro Statistics' overall alpha_U)."""
    if not present.any():
        return NAN
    mo, me = float(np.mean(d_o[present])), float(np.mean(d_e[present]))
    return NAN if not np.isfinite(me) or me <= 0 else 1.0 - mo / me


def unitizing_alpha(
    units: Iterable,
    continuum: tuple[int, int],
    label=None,
    annotators: Iterable | None = None,
) -> float:
    """Krippendorff's unitizing alpha (alpha_U) for annotators marking stretches of a continuum.

    ``units``: iterable of ``(annotator, label, start, end)``, end exclusive;
    ``continuum``: ``(start, end)`` of the stretch being unitized. With ``label`` the
    alpha_U of that label (1 - cDo / cDe); without, the overall alpha_U across labels,
    1 - mean cDo / mean cDe as DKPro Statistics' KrippendorffAlphaUnitizingAgreement
    computes it. ``annotators`` lists every coder (one who marked nothing still counts);
    by default the annotators appearing in ``units``. Overlapping units of one coder and
    label are merged. NaN when undefined (fewer than two coders, no units, or zero
    expected disagreement). Formulas: :func:`unitizing_components`.
    """
    c0, c1 = (int(v) for v in continuum)
    if c1 < c0:
        raise AgreementError(f"continuum end {c1} is before its start {c0}")
    rows = [tuple(u) for u in units]
    for r in rows:
        if len(r) != 4:
            raise AgreementError(f"each unit must be (annotator, label, start, end), got {r!r}")
        if int(r[2]) > int(r[3]):
            raise AgreementError(f"unit {r!r} has start > end")
        if int(r[2]) < c0 or int(r[3]) > c1:
            raise AgreementError(f"unit {r!r} lies outside the continuum ({c0}, {c1})")
    coders = list(dict.fromkeys(annotators)) if annotators is not None else []
    coders += [c for c in dict.fromkeys(r[0] for r in rows) if c not in set(coders)]
    labels = list(dict.fromkeys(r[1] for r in rows))
    if label is not None and label not in labels:
        labels.append(label)
    if len(coders) < 2 or not labels:
        return NAN
    cidx = {c: i for i, c in enumerate(coders)}
    lidx = {x: i for i, x in enumerate(labels)}
    arr = np.array(
        [(cidx[r[0]], lidx[r[1]], int(r[2]) - c0, int(r[3]) - c0) for r in rows], dtype=np.int64
    )
    arr = arr.reshape(-1, 4)
    d_o, d_e = unitizing_components(
        np.zeros(len(arr), np.int64),
        arr[:, 0],
        arr[:, 1],
        arr[:, 2],
        arr[:, 3],
        np.array([c1 - c0]),
        np.array([len(coders)]),
        len(labels),
    )
    if label is not None:
        i = lidx[label]
        return NAN if not np.isfinite(d_e[i]) or d_e[i] <= 0 else float(1.0 - d_o[i] / d_e[i])
    present = np.bincount(arr[:, 1][arr[:, 3] > arr[:, 2]], minlength=len(labels)) > 0
    return _alpha_u(d_o, d_e, present)
