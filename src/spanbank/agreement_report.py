"""Agreement report over a corpus: who agrees with whom, on which labels and articles."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re

import numpy as np
import pandas as pd

from spanbank.agreement import (
    AgreementError,
    _ac1_from_table,
    _alpha_nominal_stats,
    _kappa_from_table,
    align_span_arrays,
    unitizing_components,
)

__all__ = [
    "agreement_report",
    "build_report",
    "latest_human_annotations",
    "render_table",
    "to_csv",
    "to_html",
    "to_json",
    "tokenize",
]

NAN = float("nan")
HUMAN_ORIGINS = ("human", "import")
TOKEN_PATTERN = r"\w+|[^\w\s]"
SPAN_MEASURES = ("span_f1_exact", "span_f1_overlap", "span_f1_any")
TOKEN_MEASURES = ("alpha", "fleiss_kappa", "ac1", "observed")
PAIR_TOKEN_MEASURES = ("cohen_kappa", "ac1", "observed")


# --------------------------------------------------------------------------- entry points


def agreement_report(
    corpus,
    project: str | None = None,
    labels=None,
    annotators=None,
    iou: float = 0.5,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """Agreement report for the latest human annotations of a corpus (see :func:`build_report`)."""
    return build_report(
        corpus.read("articles"),
        corpus.read("annotations"),
        corpus.read("spans"),
        corpus.read("relations"),
        corpus.read("tasks"),
        project=project,
        labels=labels,
        annotators=annotators,
        iou=iou,
        bootstrap=bootstrap,
        seed=seed,
    )


def _flag(col: pd.Series) -> np.ndarray:
    """A nullable boolean column as a plain bool array (missing = False)."""
    return np.array([bool(v) if not pd.isna(v) else False for v in col], dtype=bool)


def latest_human_annotations(
    annotations: pd.DataFrame, project=None, annotators=None
) -> pd.DataFrame:
    """The annotations agreement is computed on: the latest live human version per article and annotator.

    Keeps origin human/import, not cancelled, not superseded, not deleted; with several
    left for one (article, annotator), the last by updated_at/created_at/version.
    """
    a = annotations
    keep = np.array(a["origin"].isin(HUMAN_ORIGINS), dtype=bool)
    for col in ("cancelled", "superseded"):
        if col in a:
            keep = keep & ~_flag(a[col])
    if "deleted_at" in a:
        keep = keep & np.array(a["deleted_at"].isna(), dtype=bool)
    if "invalid_reason" in a:  # see corpus.live_annotations
        keep = keep & np.array(a["invalid_reason"].isna(), dtype=bool)
    if project is not None and "project" in a:
        keep = keep & np.array(a["project"] == project, dtype=bool)
    if annotators is not None:
        keep = keep & np.array(a["annotator"].isin(list(annotators)), dtype=bool)
    a = a[keep]
    order = [c for c in ("updated_at", "created_at", "version") if c in a]
    if order:
        a = a.sort_values(order, kind="stable", na_position="first")
    return a.drop_duplicates(["article_id", "annotator"], keep="last")


# --------------------------------------------------------------------------- tokens


def tokenize(texts) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tokens ``\\w+|[^\\w\\s]`` of many texts at once, without a per-token Python loop.

    Returns (article, start, end, offsets): int arrays per token (offsets local to the
    text) and ``offsets``, shape (n_texts + 1,), where each text starts on the shared line
    (text i occupies [offsets[i], offsets[i] + len(text_i)); one separator between texts).
    """
    texts = list(texts)
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths + 1)])
    joined = "\n".join(texts) + "\n"
    cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    present = np.unique(cp)
    word = np.zeros(int(present.max()) + 1 if len(present) else 1, dtype=bool)
    space = np.zeros_like(word)
    w_re, s_re = re.compile(r"\w"), re.compile(r"\s")
    for c in present.tolist():
        ch = chr(c)
        word[c] = w_re.match(ch) is not None
        space[c] = s_re.match(ch) is not None
    is_w = word[cp]
    is_p = ~is_w & ~space[cp]
    prev_w = np.concatenate([[False], is_w[:-1]])
    next_w = np.concatenate([is_w[1:], [False]])
    w_start = np.flatnonzero(is_w & ~prev_w)
    w_end = np.flatnonzero(is_w & ~next_w) + 1
    p_start = np.flatnonzero(is_p)
    start = np.concatenate([w_start, p_start])
    end = np.concatenate([w_end, p_start + 1])
    order = np.argsort(start, kind="stable")
    start, end = start[order], end[order]
    art = np.searchsorted(offsets, start, "right") - 1
    return art, start - offsets[art], end - offsets[art], offsets


# --------------------------------------------------------------------------- the report


def _f(x) -> float:
    """A plain Python float (NaN stays NaN) for JSON-ready output."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return NAN
    return v


def _f1(two_tp, n) -> float:
    return _f(two_tp / n) if n else NAN


def _multi_rater(stats: np.ndarray, m_const) -> dict:
    """Multi-rater token measures from summed stats [items, o_diag, n0, n1, pa, pi0, pi1]."""
    items, o_diag, n0, n1, pa, pi0, pi1 = (float(v) for v in stats)
    out = {"alpha": _alpha_nominal_stats(o_diag, [n0, n1])}
    if items:
        p_a = pa / items
        pi = np.array([pi0, pi1]) / items
        p_e = float((pi * (1 - pi)).sum())  # q = 2 categories: label / O
        out["ac1"] = (p_a - p_e) / (1 - p_e) if p_e < 1 else NAN
        out["observed"] = p_a
        if m_const:
            p_j = np.array([n0, n1]) / (items * m_const)
            pe_f = float((p_j * p_j).sum())
            out["fleiss_kappa"] = (p_a - pe_f) / (1 - pe_f) if pe_f < 1 else NAN
        else:
            out["fleiss_kappa"] = NAN
    else:
        out.update(ac1=NAN, observed=NAN, fleiss_kappa=NAN)
    return {k: _f(v) for k, v in out.items()}


def _pair_token(t: np.ndarray) -> dict:
    """Cohen's kappa, AC1, observed agreement from [n00, n01, n10, n11], with and without O."""
    out = {}
    for suffix, tt in (("", t), ("_no_o", np.array([0.0, t[1], t[2], t[3]]))):
        table = np.asarray(tt, dtype=float).reshape(2, 2)
        n = table.sum()
        out["cohen_kappa" + suffix] = _f(_kappa_from_table(table))
        out["ac1" + suffix] = _f(_ac1_from_table(table))
        out["observed" + suffix] = _f(np.trace(table) / n) if n else NAN
    return out


def build_report(
    articles: pd.DataFrame,
    annotations: pd.DataFrame,
    spans: pd.DataFrame,
    relations: pd.DataFrame | None = None,
    tasks: pd.DataFrame | None = None,
    *,
    project: str | None = None,
    labels=None,
    annotators=None,
    iou: float = 0.5,
    bootstrap: int = 1000,
    seed: int = 0,
    lowest: int = 10,
) -> dict:
    """Agreement report from the corpus tables (pandas DataFrames as stored).

    Uses the latest live human annotation of each annotator (:func:`latest_human_annotations`)
    on articles that two or more annotators annotated. Returns a JSON-ready dict:
    ``selection``, ``coverage``, ``summary`` (headline figures with bootstrap CIs),
    ``labels`` (per label, then micro and macro), ``pairs`` (per annotator pair and label),
    ``relations``, ``articles`` (per article) and ``lowest_articles``. Undefined figures
    are NaN. Raises :class:`~spanbank.agreement.AgreementError` on an empty selection.
    """
    if not 0 <= iou <= 1:
        raise AgreementError(f"--iou must be between 0 and 1, got {iou}")
    if bootstrap < 0:
        raise AgreementError(f"bootstrap must be >= 0, got {bootstrap}")
    notes: list[str] = []
    ann = latest_human_annotations(annotations, project, annotators)
    per_article = ann.groupby("article_id")["annotator"].nunique()
    multi = per_article[per_article >= 2].index
    if len(multi) == 0:
        what = f" in project {project!r}" if project is not None else ""
        raise AgreementError(
            f"no article has two or more annotators{what}; "
            "pull annotations from several annotators first (or widen --project/--annotators)"
        )
    ann = ann[ann["article_id"].isin(multi)].copy()
    art_ids = np.array(sorted(multi), dtype=object)
    text_by_id = articles.drop_duplicates("article_id").set_index("article_id")["text"]
    missing = [a for a in art_ids if a not in text_by_id.index]
    if missing:
        raise AgreementError(
            f"article {missing[0]!r} has annotations but no text in the articles table; re-ingest it"
        )
    texts = [str(t) for t in text_by_id.loc[list(art_ids)]]
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    n_art = len(art_ids)
    a_index = pd.Series(np.arange(n_art), index=pd.Index(art_ids))
    ann["a_idx"] = a_index.loc[ann["article_id"]].to_numpy()
    ann = ann.sort_values(["a_idx", "annotator"], kind="stable")
    ann["slot"] = ann.groupby("a_idx").cumcount().to_numpy()
    n_coders = np.bincount(ann["a_idx"].to_numpy(), minlength=n_art)
    max_m = int(n_coders.max())
    names = list(sorted(ann["annotator"].unique()))
    slot_name = np.full((n_art, max_m), "", dtype=object)
    slot_name[ann["a_idx"].to_numpy(), ann["slot"].to_numpy()] = ann["annotator"].to_numpy()

    # Spans of the selected annotations, with label, article and slot as integers.
    sp = spans.merge(
        ann[["annotation_id", "a_idx", "slot", "annotator"]], on="annotation_id", how="inner"
    )
    if labels is not None:
        labels = list(labels)
        sp = sp[sp["label"].isin(labels)]
    else:
        labels = sorted(sp["label"].dropna().unique().tolist())
    if not labels:
        raise AgreementError(
            "no spans in the articles with two or more annotators; nothing to compare (check --labels)"
        )
    n_lab = len(labels)
    sp = sp.reset_index(drop=True)
    lab_idx = pd.Index(labels).get_indexer(sp["label"]) if len(sp) else np.zeros(0, np.int64)
    s_art = sp["a_idx"].to_numpy(np.int64)
    s_slot = sp["slot"].to_numpy(np.int64)
    s_start = sp["start"].to_numpy(np.int64)
    s_end = sp["end"].to_numpy(np.int64)
    bad = (s_start > s_end) | (s_start < 0)
    if bad.any():
        row = sp.iloc[int(np.flatnonzero(bad)[0])]
        raise AgreementError(
            f"span {row.get('span_id')!r} of annotation {row['annotation_id']!r} has "
            f"start={row['start']} end={row['end']}; repair the corpus (start <= end)"
        )
    clipped = s_end > lengths[s_art]
    if clipped.any():
        notes.append(f"{int(clipped.sum())} spans end beyond their article text and were clipped")
        s_end = np.minimum(s_end, lengths[s_art])
        s_start = np.minimum(s_start, s_end)

    slot_pairs = [(i, j) for i in range(max_m) for j in range(i + 1, max_m)]
    group = s_art * n_lab + lab_idx

    # ---- span F1 per (slot pair, article, label); alignments kept for relations
    span_counts = {}  # (i, j) -> dict of (n_art, n_lab) arrays
    alignments = {}
    for i, j in slot_pairs:
        ai = np.flatnonzero((s_slot == i) & (n_coders[s_art] > j))
        bj = np.flatnonzero(s_slot == j)
        cnt = {}
        for name, thr in (("exact", 1.0), ("overlap", iou), ("any", 0.0)):
            ia, ib = align_span_arrays(
                group[ai], s_start[ai], s_end[ai], group[bj], s_start[bj], s_end[bj], thr
            )
            cnt[name] = np.bincount(group[ai][ia], minlength=n_art * n_lab).reshape(n_art, n_lab)
            if name == "overlap":
                alignments[(i, j)] = (ai[ia], bj[ib])
        cnt["n_a"] = np.bincount(group[ai], minlength=n_art * n_lab).reshape(n_art, n_lab)
        cnt["n_b"] = np.bincount(group[bj], minlength=n_art * n_lab).reshape(n_art, n_lab)
        span_counts[(i, j)] = cnt

    # ---- token layers
    t_art, t_start, t_end, offsets = tokenize(texts)
    n_tok = len(t_art)
    g_tok_s = offsets[t_art] + t_start
    g_tok_e = offsets[t_art] + t_end
    m_tok = n_coders[t_art]
    m_const = int(n_coders[0]) if (n_coders == n_coders[0]).all() else 0
    if not m_const:
        notes.append("Fleiss' kappa is undefined: the number of annotators varies between articles")
    pair_tok = {p: np.zeros((n_lab, n_art, 4)) for p in slot_pairs}
    multi_stats = np.zeros((2, n_lab, n_art, 7))  # [with O, without O]
    prevalence = np.zeros(n_lab)
    for c in range(len(labels)):
        sel = np.flatnonzero(lab_idx == c)
        g_s = offsets[s_art[sel]] + s_start[sel]
        g_e = offsets[s_art[sel]] + s_end[sel]
        lo = np.searchsorted(g_tok_e, g_s, "right")
        hi = np.searchsorted(g_tok_s, g_e, "left")
        ok = hi > lo
        lay = s_slot[sel][ok]
        diff = np.bincount(lay * (n_tok + 1) + lo[ok], minlength=max_m * (n_tok + 1))
        diff = diff - np.bincount(lay * (n_tok + 1) + hi[ok], minlength=max_m * (n_tok + 1))
        inside = np.cumsum(diff.reshape(max_m, n_tok + 1)[:, :n_tok], axis=1) > 0
        n1 = inside.sum(0)
        n0 = m_tok - n1
        prevalence[c] = n1.sum() / m_tok.sum() if n_tok else NAN
        for v, mask in enumerate((np.ones(n_tok, bool), n1 > 0)):
            mm, a1, a0, ta = m_tok[mask], n1[mask], n0[mask], t_art[mask]
            cols = (
                np.ones(len(mm)),
                (a1 * (a1 - 1) + a0 * (a0 - 1)) / (mm - 1),
                a0,
                a1,
                (a1 * (a1 - 1) + a0 * (a0 - 1)) / (mm * (mm - 1)),
                a0 / mm,
                a1 / mm,
            )
            for k, col in enumerate(cols):
                multi_stats[v, c, :, k] = np.bincount(ta, weights=col, minlength=n_art)
        for i, j in slot_pairs:
            valid = m_tok > j
            code = inside[i][valid].astype(np.int64) * 2 + inside[j][valid]
            pair_tok[(i, j)][c] = np.bincount(t_art[valid] * 4 + code, minlength=n_art * 4).reshape(
                n_art, 4
            )

    # ---- unitizing alpha
    d_o, d_e = unitizing_components(
        s_art, s_slot, lab_idx, s_start, s_end, lengths, n_coders, n_lab
    )
    units_per_label = np.bincount(lab_idx, minlength=n_lab)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha_u = np.where(d_e > 0, 1 - d_o / d_e, np.nan)
    present = units_per_label > 0
    alpha_u_overall = (
        1 - d_o[present].mean() / d_e[present].mean()
        if present.any() and d_e[present].mean() > 0
        else NAN
    )
    a_do, a_de = unitizing_components(
        s_art, s_slot, lab_idx, s_start, s_end, lengths, n_coders, n_lab, per_article=True
    )
    a_present = np.bincount(group, minlength=n_art * n_lab).reshape(n_art, n_lab) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        cnt_p = a_present.sum(1)
        mo = np.where(a_present, a_do, 0).sum(1) / cnt_p
        me = np.where(a_present, a_de, 0).sum(1) / cnt_p
        art_alpha_u = np.where(me > 0, 1 - mo / me, np.nan)

    # ---- relations
    rel_rows = _relation_counts(relations, sp, ann, alignments, slot_pairs, n_coders)

    # ---- per-pair table (one row per article x slot pair x label)
    frames = []
    for i, j in slot_pairs:
        arts = np.flatnonzero(n_coders > j)
        if not len(arts):
            continue
        cnt = span_counts[(i, j)]
        for c in range(len(labels)):
            t = pair_tok[(i, j)][c][arts]
            frames.append(
                pd.DataFrame(
                    {
                        "a_idx": arts,
                        "annotator_a": slot_name[arts, i],
                        "annotator_b": slot_name[arts, j],
                        "label": labels[c],
                        "tp_exact": cnt["exact"][arts, c],
                        "tp_overlap": cnt["overlap"][arts, c],
                        "tp_any": cnt["any"][arts, c],
                        "n_a": cnt["n_a"][arts, c],
                        "n_b": cnt["n_b"][arts, c],
                        "n00": t[:, 0],
                        "n01": t[:, 1],
                        "n10": t[:, 2],
                        "n11": t[:, 3],
                    }
                )
            )
    pair_df = pd.concat(frames, ignore_index=True)
    sum_cols = ["tp_exact", "tp_overlap", "tp_any", "n_a", "n_b", "n00", "n01", "n10", "n11"]

    def span_measures(row) -> dict:
        n = row["n_a"] + row["n_b"]
        return {
            "span_f1_exact": _f1(2 * row["tp_exact"], n),
            "span_f1_overlap": _f1(2 * row["tp_overlap"], n),
            "span_f1_any": _f1(2 * row["tp_any"], n),
        }

    # per label (all pairs pooled) and micro/macro
    label_rows = []
    by_label = pair_df.groupby("label", sort=False)[sum_cols].sum()
    for c, lab in enumerate(labels):
        row = {"label": lab}
        row.update(
            span_measures(by_label.loc[lab])
            if lab in by_label.index
            else dict.fromkeys(SPAN_MEASURES, NAN)
        )
        for v, suffix in ((0, ""), (1, "_no_o")):
            for k, val in _multi_rater(multi_stats[v, c].sum(0), m_const).items():
                row[k + suffix] = val
        row["alpha_u"] = _f(alpha_u[c])
        row["units"] = int(units_per_label[c])
        row["prevalence"] = _f(prevalence[c])
        label_rows.append(row)
    micro = {"label": "micro"}
    micro.update(span_measures(pair_df[sum_cols].sum()))
    for v, suffix in ((0, ""), (1, "_no_o")):
        for k, val in _multi_rater(multi_stats[v].sum((0, 1)), m_const).items():
            micro[k + suffix] = val
    micro["alpha_u"] = _f(alpha_u_overall)
    micro["units"] = int(units_per_label.sum())
    micro["prevalence"] = NAN
    macro = {"label": "macro"}
    for k in micro:
        if k not in ("label", "units", "prevalence"):
            vals = [r[k] for r in label_rows if not math.isnan(r[k])]
            macro[k] = _f(np.mean(vals)) if vals else NAN
    macro["units"] = int(units_per_label.sum())
    macro["prevalence"] = _f(np.nanmean(prevalence)) if len(labels) else NAN
    label_rows += [micro, macro]

    # per annotator pair
    pair_rows = []
    pair_articles = pair_df.groupby(["annotator_a", "annotator_b"])["a_idx"].nunique()
    grouped = pair_df.groupby(["annotator_a", "annotator_b", "label"], sort=True)[sum_cols].sum()
    for (pa, pb), n_shared in pair_articles.items():
        per = []
        for lab in labels:
            if (pa, pb, lab) not in grouped.index:
                continue
            g = grouped.loc[(pa, pb, lab)]
            r = {"annotator_a": pa, "annotator_b": pb, "articles": int(n_shared), "label": lab}
            r.update(span_measures(g))
            r.update(_pair_token(g[["n00", "n01", "n10", "n11"]].to_numpy(float)))
            per.append(r)
        tot = grouped.loc[(pa, pb)].sum()
        mic = {"annotator_a": pa, "annotator_b": pb, "articles": int(n_shared), "label": "micro"}
        mic.update(span_measures(tot))
        mic.update(_pair_token(tot[["n00", "n01", "n10", "n11"]].to_numpy(float)))
        mac = {"annotator_a": pa, "annotator_b": pb, "articles": int(n_shared), "label": "macro"}
        for k in mic:
            if k not in mac:
                vals = [r[k] for r in per if not math.isnan(r[k])]
                mac[k] = _f(np.mean(vals)) if vals else NAN
        if rel_rows is not None and len(rel_rows):
            rp = rel_rows[(rel_rows["annotator_a"] == pa) & (rel_rows["annotator_b"] == pb)]
            rel = _relation_measures(rp)
            mic.update(rel)
        pair_rows += per + [mic, mac]

    # ---- relations overall
    relations_out = {"overall": _relation_measures(rel_rows), "by_label": []}
    if rel_rows is not None and len(rel_rows):
        for lab, g in rel_rows.groupby("label", sort=True):
            relations_out["by_label"].append({"label": lab, **_relation_measures(g)})

    # ---- per article
    art_sum = pair_df.groupby("a_idx")[sum_cols].sum().reindex(np.arange(n_art), fill_value=0)
    n_ab = (art_sum["n_a"] + art_sum["n_b"]).to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        art_f1_exact = np.where(n_ab > 0, 2 * art_sum["tp_exact"].to_numpy() / n_ab, np.nan)
        art_f1_overlap = np.where(n_ab > 0, 2 * art_sum["tp_overlap"].to_numpy() / n_ab, np.nan)
    tok_art = multi_stats[0].sum(0)  # (n_art, 7) summed over labels
    art_alpha = _alpha_nominal_stats(tok_art[:, 1], tok_art[:, 2:4])
    art_alpha = np.atleast_1d(art_alpha)
    links = _task_links(tasks, art_ids, project)
    spans_per_art = np.bincount(s_art, minlength=n_art)
    article_rows = [
        {
            "article_id": str(art_ids[k]),
            "annotators": [x for x in slot_name[k, : n_coders[k]]],
            "spans": int(spans_per_art[k]),
            "span_f1_exact": _f(art_f1_exact[k]),
            "span_f1_overlap": _f(art_f1_overlap[k]),
            "alpha": _f(art_alpha[k]),
            "alpha_u": _f(art_alpha_u[k]),
            "link": links.get(art_ids[k]),
        }
        for k in range(n_art)
    ]
    rank = np.lexsort((art_alpha, np.nan_to_num(art_f1_overlap, nan=np.inf)))
    rank = [k for k in rank if not (math.isnan(art_f1_overlap[k]) and math.isnan(art_alpha[k]))]
    lowest_rows = [article_rows[k] for k in rank[:lowest]]

    # ---- bootstrap over articles
    rel_art = _relation_article_stats(rel_rows, n_art)
    stat_cols = np.column_stack(
        [
            2 * art_sum["tp_exact"].to_numpy(float),
            2 * art_sum["tp_overlap"].to_numpy(float),
            2 * art_sum["tp_any"].to_numpy(float),
            n_ab,
            tok_art[:, 1],
            tok_art[:, 2],
            tok_art[:, 3],
            multi_stats[1].sum(0)[:, 1],
            multi_stats[1].sum(0)[:, 2],
            multi_stats[1].sum(0)[:, 3],
            rel_art,
        ]
    )
    summary = {
        "span_f1_exact": micro["span_f1_exact"],
        "span_f1_overlap": micro["span_f1_overlap"],
        "span_f1_any": micro["span_f1_any"],
        "alpha": micro["alpha"],
        "alpha_no_o": micro["alpha_no_o"],
        "alpha_u": micro["alpha_u"],
        "relation_f1": relations_out["overall"]["relation_f1"],
    }
    cis = _bootstrap(stat_cols, bootstrap, seed)
    summary = {
        k: {"value": v, "ci_low": cis.get(k, (NAN, NAN))[0], "ci_high": cis.get(k, (NAN, NAN))[1]}
        for k, v in summary.items()
    }

    raters = pd.Series(n_coders).value_counts().sort_index()
    units_by_ann = (
        sp.assign(label=sp["label"].astype(str)).groupby(["label", "annotator"]).size()
        if len(sp)
        else pd.Series(dtype=int)
    )
    coverage = {
        "articles_annotated": int(per_article.size),
        "articles_with_2plus": n_art,
        "annotations": int(len(ann)),
        "annotators": names,
        "raters_per_article": {str(k): int(v) for k, v in raters.items()},
        "tokens": int(n_tok),
        "units_per_label": {lab: int(units_per_label[c]) for c, lab in enumerate(labels)},
        "units_per_label_annotator": {
            lab: {a: int(units_by_ann.get((lab, a), 0)) for a in names} for lab in labels
        },
        "prevalence": {lab: _f(prevalence[c]) for c, lab in enumerate(labels)},
    }
    return {
        "selection": {
            "project": project,
            "labels": labels,
            "annotators": list(annotators) if annotators is not None else None,
            "iou": float(iou),
            "bootstrap": int(bootstrap),
            "seed": int(seed),
            "tokenizer": TOKEN_PATTERN,
        },
        "coverage": coverage,
        "summary": summary,
        "labels": label_rows,
        "pairs": pair_rows,
        "relations": relations_out,
        "articles": article_rows,
        "lowest_articles": lowest_rows,
        "notes": notes,
    }


def _task_links(tasks, art_ids, project) -> dict:
    """article_id -> Label Studio data-manager link of its task (the project's, else any)."""
    if tasks is None or not len(tasks):
        return {}
    t = tasks[tasks["article_id"].isin(set(art_ids))].dropna(
        subset=["ls_url", "ls_project_id", "ls_task_id"]
    )
    if project is not None and "project" in t:
        t = t[t["project"] == project]
    t = t.drop_duplicates("article_id", keep="last")
    return {
        a: f"{str(u).rstrip('/')}/projects/{int(p)}/data?task={int(k)}"
        for a, u, p, k in zip(
            t["article_id"], t["ls_url"], t["ls_project_id"], t["ls_task_id"], strict=True
        )
    }


def _relation_counts(relations, sp, ann, alignments, slot_pairs, n_coders):
    """Per (article, annotator pair, relation label): links of a, of b, matched, and the conditional counts."""
    if relations is None or not len(relations) or not len(sp):
        return None
    idx = pd.Series(
        np.arange(len(sp)), index=pd.MultiIndex.from_arrays([sp["annotation_id"], sp["span_id"]])
    )
    rel = relations.merge(
        ann[["annotation_id", "a_idx", "slot", "annotator"]], on="annotation_id", how="inner"
    )
    if not len(rel):
        return None
    f = idx.reindex(
        pd.MultiIndex.from_arrays([rel["annotation_id"], rel["from_span_id"]])
    ).to_numpy()
    t = idx.reindex(pd.MultiIndex.from_arrays([rel["annotation_id"], rel["to_span_id"]])).to_numpy()
    ok = ~(np.isnan(f) | np.isnan(t))  # links to spans outside the label selection drop out
    rel = rel[ok].assign(f=f[ok].astype(np.int64), t=t[ok].astype(np.int64))
    out = []
    for i, j in slot_pairs:
        ra = rel[(rel["slot"] == i) & (n_coders[rel["a_idx"].to_numpy()] > j)]
        rb = rel[rel["slot"] == j]
        sa, sb = alignments[(i, j)]
        a2b = np.full(len(sp), -1, np.int64)
        a2b[sa] = sb
        in_b = np.zeros(len(sp), bool)
        in_b[sb] = True
        ra = ra.assign(bf=a2b[ra["f"].to_numpy()], bt=a2b[ra["t"].to_numpy()])
        ra = ra.assign(cond=(ra["bf"] >= 0) & (ra["bt"] >= 0))
        rb = rb.assign(cond=in_b[rb["f"].to_numpy()] & in_b[rb["t"].to_numpy()])
        # one-to-one: the k-th duplicate on one side can only meet the k-th on the other
        ra = ra.assign(k=ra.groupby(["bf", "bt", "label"]).cumcount())
        rb = rb.assign(k=rb.groupby(["f", "t", "label"]).cumcount())
        hits = ra.merge(
            rb[["f", "t", "label", "k"]],
            left_on=["bf", "bt", "label", "k"],
            right_on=["f", "t", "label", "k"],
            how="inner",
            suffixes=("", "_b"),
        )
        keys = ["a_idx", "label"]
        parts = [
            ra.groupby(keys).size().rename("n_a"),
            rb.groupby(keys).size().rename("n_b"),
            hits.groupby(keys).size().rename("hits"),
            ra[ra["cond"]].groupby(keys).size().rename("n_a_cond"),
            rb[rb["cond"]].groupby(keys).size().rename("n_b_cond"),
        ]
        df = pd.concat(parts, axis=1).fillna(0).astype(np.int64).reset_index()
        if not len(df):
            continue
        arts = df["a_idx"].to_numpy()
        slot_names = ann.set_index(["a_idx", "slot"])["annotator"]
        df["annotator_a"] = slot_names.reindex(
            pd.MultiIndex.from_arrays([arts, np.full(len(arts), i)])
        ).to_numpy()
        df["annotator_b"] = slot_names.reindex(
            pd.MultiIndex.from_arrays([arts, np.full(len(arts), j)])
        ).to_numpy()
        out.append(df)
    return pd.concat(out, ignore_index=True) if out else None


def _relation_measures(rows) -> dict:
    if rows is None or not len(rows):
        return {"relation_f1": NAN, "relation_f1_conditional": NAN, "links": 0}
    s = rows[["n_a", "n_b", "hits", "n_a_cond", "n_b_cond"]].sum()
    return {
        "relation_f1": _f1(2 * s["hits"], s["n_a"] + s["n_b"]),
        "relation_f1_conditional": _f1(2 * s["hits"], s["n_a_cond"] + s["n_b_cond"]),
        "links": int(s["n_a"] + s["n_b"]),
    }


def _relation_article_stats(rows, n_art) -> np.ndarray:
    """Per article [2 * hits, n_a + n_b] for the bootstrap."""
    out = np.zeros((n_art, 2))
    if rows is not None and len(rows):
        a = rows["a_idx"].to_numpy()
        out[:, 0] = np.bincount(a, weights=2 * rows["hits"].to_numpy(float), minlength=n_art)
        out[:, 1] = np.bincount(
            a, weights=(rows["n_a"] + rows["n_b"]).to_numpy(float), minlength=n_art
        )
    return out


def _bootstrap(stats: np.ndarray, n_boot: int, seed: int) -> dict:
    """95% percentile CIs from resampling articles with replacement (seeded).

    ``stats``: ndarray, shape (n_articles, 12): per-article sums the figures are ratios of,
    so a replicate is just a weighted sum of rows.
    """
    if n_boot <= 0:
        return {}
    n = len(stats)
    rng = np.random.default_rng(seed)
    reps = []
    for lo in range(0, n_boot, 200):
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=min(200, n_boot - lo)).astype(float)
        reps.append(w @ stats)
    r = np.concatenate(reps)
    with np.errstate(divide="ignore", invalid="ignore"):
        figs = {
            "span_f1_exact": r[:, 0] / r[:, 3],
            "span_f1_overlap": r[:, 1] / r[:, 3],
            "span_f1_any": r[:, 2] / r[:, 3],
            "alpha": _alpha_nominal_stats(r[:, 4], r[:, 5:7]),
            "alpha_no_o": _alpha_nominal_stats(r[:, 7], r[:, 8:10]),
            "relation_f1": r[:, 10] / r[:, 11],
        }
    out = {}
    for k, v in figs.items():
        v = v[np.isfinite(v)]
        out[k] = (_f(np.percentile(v, 2.5)), _f(np.percentile(v, 97.5))) if len(v) else (NAN, NAN)
    return out


# --------------------------------------------------------------------------- renderers


def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def _grid(header: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in enumerate(header)
    ]
    line = "  ".join(
        h.ljust(w) if k == 0 else h.rjust(w)
        for k, (h, w) in enumerate(zip(header, widths, strict=True))
    )
    out = [line, "-" * len(line)]
    for r in rows:
        out.append(
            "  ".join(
                c.ljust(w) if k == 0 else c.rjust(w)
                for k, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(out)


LABEL_COLUMNS = [
    ("F1 exact", "span_f1_exact"),
    ("F1 IoU", "span_f1_overlap"),
    ("F1 any", "span_f1_any"),
    ("alpha", "alpha"),
    ("alpha-O", "alpha_no_o"),
    ("Fleiss", "fleiss_kappa"),
    ("AC1", "ac1"),
    ("obs", "observed"),
    ("alpha_U", "alpha_u"),
    ("units", "units"),
]
PAIR_COLUMNS = [
    ("F1 exact", "span_f1_exact"),
    ("F1 IoU", "span_f1_overlap"),
    ("kappa", "cohen_kappa"),
    ("kappa-O", "cohen_kappa_no_o"),
    ("AC1", "ac1"),
    ("obs", "observed"),
    ("rel F1", "relation_f1"),
]


def render_table(report: dict) -> str:
    """The report as readable text tables (summary, labels, annotator pairs, lowest articles)."""
    cov, sel = report["coverage"], report["selection"]
    out = [
        f"Agreement on {cov['articles_with_2plus']} articles with 2+ annotators "
        f"({cov['annotations']} annotations, {len(cov['annotators'])} annotators, "
        f"{cov['tokens']} tokens; IoU >= {sel['iou']})",
        "",
    ]
    srows = []
    for k, v in report["summary"].items():
        ci = "" if math.isnan(v["ci_low"]) else f"[{_fmt(v['ci_low'])}, {_fmt(v['ci_high'])}]"
        srows.append([k, _fmt(v["value"]), ci])
    out += [_grid(["measure", "value", "95% CI"], srows), ""]
    out.append("Per label (token measures: alpha, Fleiss, AC1, obs; -O = tokens someone labelled)")
    out.append(
        _grid(
            ["label"] + [h for h, _ in LABEL_COLUMNS],
            [[r["label"]] + [_fmt(r.get(k)) for _, k in LABEL_COLUMNS] for r in report["labels"]],
        )
    )
    out += ["", "Per annotator pair (micro over labels)"]
    prow = [
        [f"{r['annotator_a']} / {r['annotator_b']}", str(r["articles"])]
        + [_fmt(r.get(k, NAN)) for _, k in PAIR_COLUMNS]
        for r in report["pairs"]
        if r["label"] == "micro"
    ]
    out.append(_grid(["pair", "articles"] + [h for h, _ in PAIR_COLUMNS], prow))
    rel = report["relations"]["overall"]
    out += [
        "",
        f"Relations: F1 {_fmt(rel['relation_f1'])}, conditional on matched endpoints "
        f"{_fmt(rel['relation_f1_conditional'])} ({rel['links']} links)",
    ]
    if report["lowest_articles"]:
        out += ["", "Lowest-agreement articles"]
        out.append(
            _grid(
                ["article", "F1 IoU", "alpha", "alpha_U", "link"],
                [
                    [
                        r["article_id"],
                        _fmt(r["span_f1_overlap"]),
                        _fmt(r["alpha"]),
                        _fmt(r["alpha_u"]),
                        r["link"] or "-",
                    ]
                    for r in report["lowest_articles"]
                ],
            )
        )
    for n in report.get("notes", []):
        out.append(f"note: {n}")
    return "\n".join(out) + "\n"


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def to_json(report: dict) -> str:
    """The report as JSON; NaN (undefined) becomes null."""
    return json.dumps(_jsonable(report), indent=2, ensure_ascii=False)


def _csv_rows(report: dict):
    skip = {"label", "annotator_a", "annotator_b", "articles"}
    for k, v in report["summary"].items():
        yield ["summary", "", "", "", k, v["value"], v["ci_low"], v["ci_high"]]
    for r in report["labels"]:
        for k, v in r.items():
            if k not in skip:
                yield ["label", r["label"], "", "", k, v, "", ""]
    for r in report["pairs"]:
        for k, v in r.items():
            if k not in skip:
                yield ["pair", r["label"], r["annotator_a"], r["annotator_b"], k, v, "", ""]
    for r in [{"label": "all", **report["relations"]["overall"]}] + report["relations"]["by_label"]:
        for k, v in r.items():
            if k != "label":
                yield ["relation", r["label"], "", "", k, v, "", ""]


def to_csv(report: dict) -> str:
    """The report as CSV, one row per scope/label/pair/measure (undefined = empty)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["scope", "label", "annotator_a", "annotator_b", "measure", "value", "ci_low", "ci_high"]
    )
    for row in _csv_rows(report):
        w.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in row])
    return buf.getvalue()


def _heatmap_png(names: list[str], values: dict, title: str) -> str:
    """A symmetric annotator x annotator heatmap as a base64 PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise AgreementError(
            "the HTML report needs matplotlib: pip install 'spanbank[plot]'"
        ) from err
    import base64

    n = len(names)
    m = np.full((n, n), np.nan)
    for (a, b), v in values.items():
        i, j = names.index(a), names.index(b)
        m[i, j] = m[j, i] = v
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * n, 1.0 + 0.5 * n), dpi=100)
    im = ax.imshow(
        m, vmin=min(0.0, np.nanmin(m)) if np.isfinite(m).any() else 0, vmax=1, cmap="viridis"
    )
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    for i in range(n):
        for j in range(n):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def to_html(report: dict) -> str:
    """A self-contained HTML page: summary, per-label table, pair heatmaps, lowest articles."""
    e = html.escape
    cov = report["coverage"]
    names = cov["annotators"]

    def table(header, rows):
        h = "".join(f"<th>{e(x)}</th>" for x in header)
        b = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>"

    summary = table(
        ["measure", "value", "95% CI"],
        [
            [
                e(k),
                _fmt(v["value"]),
                "" if math.isnan(v["ci_low"]) else f"{_fmt(v['ci_low'])} – {_fmt(v['ci_high'])}",
            ]
            for k, v in report["summary"].items()
        ],
    )
    labels = table(
        ["label"] + [h for h, _ in LABEL_COLUMNS],
        [
            [e(str(r["label"]))] + [_fmt(r.get(k)) for _, k in LABEL_COLUMNS]
            for r in report["labels"]
        ],
    )
    heat = []
    pairs_micro = [r for r in report["pairs"] if r["label"] == "micro"]
    for key, title in (
        ("span_f1_overlap", f"span F1 (IoU >= {report['selection']['iou']})"),
        ("cohen_kappa", "token Cohen's kappa"),
        ("span_f1_exact", "span F1 exact"),
    ):
        vals = {(r["annotator_a"], r["annotator_b"]): r[key] for r in pairs_micro}
        png = _heatmap_png(names, vals, title)
        heat.append(
            f'<figure><img alt="{e(title)}" src="data:image/png;base64,{png}"><figcaption>{e(title)}</figcaption></figure>'
        )
    lowest = table(
        ["article", "annotators", "F1 IoU", "F1 exact", "alpha", "alpha_U"],
        [
            [
                f'<a href="{e(r["link"])}">{e(r["article_id"])}</a>'
                if r["link"]
                else e(r["article_id"]),
                e(", ".join(r["annotators"])),
                _fmt(r["span_f1_overlap"]),
                _fmt(r["span_f1_exact"]),
                _fmt(r["alpha"]),
                _fmt(r["alpha_u"]),
            ]
            for r in report["lowest_articles"]
        ],
    )
    rel = report["relations"]["overall"]
    notes = "".join(f"<li>{e(n)}</li>" for n in report.get("notes", []))
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;"
        "text-align:right}td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:.5em}"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>spanbank agreement report</title>
<style>{style}</style></head><body>
<h1>Agreement report</h1>
<p>{cov["articles_with_2plus"]} articles with two or more annotators ({cov["annotations"]} annotations by
{len(names)} annotators: {e(", ".join(names))}); {cov["tokens"]} tokens.</p>
<h2>Summary</h2>{summary}
<h2>Per label</h2>{labels}
<p>Token measures treat each label as its own layer (token inside a span of that label, or O);
&ldquo;-O&rdquo; keeps only tokens some annotator labelled.</p>
<h2>Annotator pairs</h2>{"".join(heat)}
<h2>Relations</h2><p>F1 {_fmt(rel["relation_f1"])}; conditional on matched endpoints
{_fmt(rel["relation_f1_conditional"])} ({rel["links"]} links).</p>
<h2>Lowest-agreement articles</h2>{lowest}
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
</body></html>
"""
