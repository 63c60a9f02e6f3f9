"""Agreement report over a corpus: who agrees with whom, on which labels and articles."""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from spanbank.agreement.coefficients import (
    _ac1_from_table,
    _kappa_from_table,
    align_span_arrays,
    category_figures,
    category_item_stats,
    fragment_pieces,
    token_categories,
    unitizing_components,
)
from spanbank.corpus.annotations import latest_per_annotator
from spanbank.errors import AgreementError
from spanbank.tokens import TOKEN_PATTERN, tokenize

__all__ = [
    "agreement_report",
    "build_report",
]

NAN = float("nan")
SPAN_MEASURES = ("span_f1_exact", "span_f1_overlap", "span_f1_any")
QUOTE_LABEL, SOURCE_RELATION, CUE_RELATION = "QUOTE", "said_by", "cue"
ATTRIBUTION_MEASURES = (
    "attribution_f1",
    "attribution_f1_exact",
    "attribution_f1_full",
    "attribution_f1_full_exact",
)
# why _bootstrap_blocks has no alpha_u: its expected disagreement (unitizing_components)
# pairs each unit with the gaps of every article, so a resample's figure would need an
# article x article table per label, not per-article sums
ALPHA_U_NO_CI = (
    "alpha_u has no confidence interval: its expected disagreement compares units and gaps "
    "across articles, so it is not a sum over articles the bootstrap could resample"
)
CATEGORY_RULE = (
    "each token takes one value per annotator: none, or the label of the innermost (shortest) "
    "of that annotator's spans covering it; equal lengths: the label listed first"
)


# --------------------------------------------------------------------------- entry points


def agreement_report(
    corpus,
    project: str | None = None,
    labels=None,
    annotators=None,
    iou: float = 0.5,
    bootstrap: int = 1000,
    seed: int = 0,
    views: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
) -> dict:
    """Agreement report for the latest human annotations of a corpus (see :func:`build_report`),
    with the annotators' throughput (`spanbank.throughput`). Per-article statistics run on
    `workers` local processes or the Dask cluster at `scheduler` when asked (else here)."""
    from spanbank.honeypots import corpus_honeypot_scores
    from spanbank.parallel import asked_workers, engine
    from spanbank.throughput import throughput, timed_ids

    _check_labels(labels, list(corpus.schema.labels))
    labels = None if labels is None else list(dict.fromkeys(labels))  # a label named twice: once
    ann = corpus.read("annotations")
    # the spans of what the report reads, not the table's (an import of one annotator's work
    # on a whole archive would be read whole): compared work, gold and the work scored against
    # it, timed work
    live = latest_per_annotator(ann, project)
    multi = live.groupby("article_id")["annotator"].transform("nunique").to_numpy() >= 2
    gold = export_gold(corpus, project)
    stale = gold.attrs.get("stale", 0)
    on_gold = live["article_id"].isin(gold["article_id"]).to_numpy()
    needed = pd.concat(
        [
            live.loc[multi | on_gold, "annotation_id"],
            gold["annotation_id"],
            timed_ids(ann, project),
        ]
    ).unique()
    spans = corpus.read_in("spans", "annotation_id", needed).to_pandas()
    compared = live.loc[multi, "article_id"].unique()
    with engine(asked_workers(workers, scheduler), scheduler) as eng:
        report = _report_on(
            eng,
            corpus,
            ann,
            spans,
            gold,
            compared,
            project,
            labels,
            annotators,
            iou,
            bootstrap,
            seed,
            views,
        )
    if stale:
        report["notes"].append(
            f"{stale} article(s)' stored gold predates their annotators' latest work: not "
            "scored in gold[]; re-run `spanbank adjudicate`"
        )
    # the selection holds here too (hunt L, 10): an annotation's time covers all its spans, so
    # --labels keeps the per-label figures of the labels chosen, --annotators their rows
    who = ann if annotators is None else ann[ann["annotator"].isin(list(annotators))]
    report["throughput"] = throughput(who, spans, project)
    if labels is not None:
        per_label = report["throughput"]["per_label"]
        report["throughput"]["per_label"] = {k: v for k, v in per_label.items() if k in labels}
    report["honeypots"] = corpus_honeypot_scores(
        corpus,
        project,
        labels=labels,
        annotators=annotators,
        iou=iou,
        bootstrap=bootstrap,
        seed=seed,
    )
    return report


def _check_labels(labels, known: list[str]) -> None:
    """Refuse labels the schema lacks: a typo or the wrong case would compare nothing."""
    unknown = [lab for lab in labels or () if lab not in known]
    if not unknown:
        return
    by_case = {k.casefold(): k for k in known}
    named = ", ".join(
        f"{lab!r} (did you mean {by_case[lab.casefold()]!r}?)"
        if lab.casefold() in by_case
        else repr(lab)
        for lab in unknown
    )
    raise AgreementError(
        f"label {named} not in the schema; choose from its labels: {', '.join(known)}"
    )


def export_gold(corpus, project: str | None) -> pd.DataFrame:
    """The stored gold an export uses, one annotations row per article (reviewed gold, else
    gold:majority, else another strategy's: `spanbank.gold.select_annotations`); gold an
    export would compute on the fly is left out, since no one has looked at it."""
    from spanbank.gold import STALE_DROPPED, select_annotations

    rows = select_annotations(corpus, "auto", project, columns=["annotation_id", "article_id"])
    stored = rows[rows["selection"].isin(("review", "gold"))]
    stale = rows["selection"].isin(("stale", "stale_single")).sum()
    stored.attrs["stale"] = int(stale) + rows.attrs.get(STALE_DROPPED, 0)  # for a note
    return stored


def _report_on(
    eng,
    corpus,
    ann,
    spans,
    gold,
    compared,
    project,
    labels,
    annotators,
    iou,
    bootstrap,
    seed,
    views,
):
    """build_report over the rows of the `compared` articles (ids), read from the corpus."""
    from spanbank.corpus.articles import texts_of

    texts = texts_of(corpus, compared)
    return build_report(
        pd.DataFrame({"article_id": list(texts), "text": list(texts.values())}),
        ann,
        spans,
        corpus.read_in("relations", "annotation_id", spans["annotation_id"].unique()).to_pandas(),
        corpus.read_in("tasks", "article_id", compared).to_pandas(),
        gold=gold,
        project=project,
        labels=labels,
        annotators=annotators,
        iou=iou,
        bootstrap=bootstrap,
        seed=seed,
        views=views,
        engine=eng,
    )


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


def _multi_rater(stats: np.ndarray, ok: bool = True) -> dict:
    """Token measures of a binary (O / label) layer from summed category stats; NaN unless ``ok``."""
    out = category_figures(stats, q=2)
    return {k: _f(v) if ok else NAN for k, v in out.items()}


def _pair_token(t: np.ndarray, t_labelled: np.ndarray, ok: bool = True) -> dict:
    """Cohen's kappa, AC1, observed agreement from [n00, n01, n10, n11], over all and labelled tokens."""
    out = {}
    for suffix, tt in (("", t), ("_no_o", t_labelled)):
        table = np.asarray(tt, dtype=float).reshape(2, 2)
        n = table.sum()
        defined = ok or not suffix
        out["cohen_kappa" + suffix] = _f(_kappa_from_table(table)) if defined else NAN
        out["ac1" + suffix] = _f(_ac1_from_table(table)) if defined else NAN
        out["observed" + suffix] = _f(np.trace(table) / n) if n and defined else NAN
    return out


def _category_counts(cat: np.ndarray, q: int) -> np.ndarray:
    """Raters per (token, category) from the (slot, token) category matrix (-1 = missing)."""
    n_tok = cat.shape[1]
    tok = np.broadcast_to(np.arange(n_tok), cat.shape)
    ok = cat >= 0
    return np.bincount(tok[ok] * q + cat[ok], minlength=n_tok * q).reshape(n_tok, q)


def _per_article(stats: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Per-token rows summed per article (tokens are grouped by article; ``bounds`` from searchsorted).

    Each article's sum is over its own tokens only (not a difference of running sums), so it is
    the same whichever other articles were computed with it (see `ARTICLES_PER_PART`)."""
    out = np.zeros((len(bounds) - 1, stats.shape[1]))
    has = bounds[1:] > bounds[:-1]
    if has.any():
        out[has] = np.add.reduceat(stats, bounds[:-1][has], axis=0)
    return out


def build_report(
    articles: pd.DataFrame,
    annotations: pd.DataFrame,
    spans: pd.DataFrame,
    relations: pd.DataFrame | None = None,
    tasks: pd.DataFrame | None = None,
    *,
    gold: pd.DataFrame | None = None,
    project: str | None = None,
    labels=None,
    annotators=None,
    iou: float = 0.5,
    bootstrap: int = 1000,
    seed: int = 0,
    lowest: int = 10,
    views: bool = False,
    engine=None,
) -> dict:
    """Agreement report from the corpus tables (pandas DataFrames as stored).

    Uses the latest live human annotation of each annotator (:func:`spanbank.corpus.annotations.latest_per_annotator`)
    on articles that two or more annotators annotated. Returns a JSON-ready dict:
    ``selection``, ``coverage``, ``summary`` (headline figures with bootstrap CIs),
    ``labels`` (per label, then micro and macro), ``pairs`` (per annotator pair and label),
    ``relations``, ``token_categories``, ``attributions``, ``gold`` (each annotator against
    the ``gold`` annotations rows, one per article, as `export_gold` gives; none without
    them), ``articles`` (per article) and ``lowest_articles``; with ``views`` also
    ``_views``, what the HTML page needs to show the least-agreed articles' text (left out
    of JSON). Undefined figures are NaN. Raises :class:`~spanbank.agreement.AgreementError` on an empty selection.

    The per-article statistics (token layers, span matches, relations, attributions) are
    computed on ``engine`` (:class:`spanbank.parallel.Engine`; default: in this process) for
    parts of `ARTICLES_PER_PART` articles and combined here, and so are the bootstrap's
    replicates (`_bootstrap`); the figures and CIs are the same wherever they ran.
    """
    if not 0 <= iou <= 1:
        raise AgreementError(f"--iou must be between 0 and 1, got {iou}")
    if bootstrap < 0:
        raise AgreementError(f"bootstrap must be >= 0, got {bootstrap}")
    notes: list[str] = []
    u = _Units(articles, annotations, spans, project, labels, annotators, notes)
    n_art, n_lab = len(u.art_ids), len(u.labels)
    unused = [lab for lab, used in zip(u.labels, u.used, strict=True) if not used]
    if unused:
        notes.append(
            f"no span of {', '.join(unused)} in the compared articles: its token figures are "
            "undefined (annotators agreeing that no token is a label is not agreement on it)"
        )
    tok, attr_rows, span_counts, rel_rows = _article_stats(u, relations, iou, engine)
    if u.used.sum() == 1:
        notes.append(
            "figures over labelled tokens only (-O) need two or more labels with spans: with "
            "one, every such token is that label for someone, so they cannot be positive; left "
            "undefined"
        )
    unitizing = _unitizing(
        u.f_art, u.f_slot, u.f_lab, u.f_start, u.f_end, u.lengths, u.n_coders, u.group[u.f_of],
        n_art, n_lab, u.lab_idx,
    )  # fmt: skip
    attributions_out = _attribution_report(attr_rows)
    # one row per article x slot pair x label
    pair_df = _pair_table(
        u.slot_pairs, u.n_coders, span_counts, tok.pair_tok, u.slot_name, u.labels
    )
    label_rows = _label_rows(pair_df, u.labels, tok, unitizing)
    relations_out = {"overall": _relation_measures(rel_rows), "by_label": []}
    if rel_rows is not None and len(rel_rows):
        for lab, g in rel_rows.groupby("label", sort=True):
            relations_out["by_label"].append({"label": lab, **_relation_measures(g)})
    arts = _Articles(pair_df, u, tok, unitizing[2], tasks, project)
    lowest_rows = [arts.rows[k] for k in arts.rank[:lowest]]
    token_out = _token_section(tok, u.labels)
    summary = _summary(label_rows[-2], token_out, relations_out, attributions_out)
    blocks = _bootstrap_blocks(tok, arts, rel_rows, attr_rows, n_art)
    cis = _bootstrap(blocks, bootstrap, seed, engine)
    if bootstrap and not math.isnan(summary["alpha_u"]):
        notes.append(ALPHA_U_NO_CI)
    summary = {
        k: {"value": v, "ci_low": cis.get(k, (NAN, NAN))[0], "ci_high": cis.get(k, (NAN, NAN))[1]}
        for k, v in summary.items()
    }
    view_rows = (
        _article_views(
            [int(u.a_index[r["article_id"]]) for r in lowest_rows],
            u.texts,
            tok.cat,
            tok.art_bounds,
            tok.t_start,
            tok.t_end,
            u.slot_name,
            u.n_coders,
            ["none", *u.labels],
            u.sp_all,
            relations,
            u.lengths,
        )
        if views
        else None
    )
    return {
        "selection": {
            "project": project,
            "labels": u.labels,
            "annotators": list(annotators) if annotators is not None else None,
            "iou": float(iou),
            "bootstrap": int(bootstrap),
            "seed": int(seed),
            "tokenizer": TOKEN_PATTERN,
        },
        "coverage": _coverage(u, tok, unitizing[3]),
        "summary": summary,
        "labels": label_rows,
        "pairs": _pair_rows(pair_df, u, tok, rel_rows),
        "relations": relations_out,
        "token_categories": token_out,
        "attributions": attributions_out,
        "gold": _gold_scores(annotations, spans, gold, project, annotators, u.labels, iou),
        "articles": arts.rows,
        "lowest_articles": lowest_rows,
        "notes": notes,
        **({"_views": view_rows} if views else {}),
    }


class _Units:
    """The selection as integer arrays: articles annotated by two or more annotators, each
    annotator's slot in an article, and the spans (and their fragments) of those annotations."""

    def __init__(self, articles, annotations, spans, project, labels, annotators, notes):
        ann = latest_per_annotator(annotations, project, annotators)
        self.per_article = ann.groupby("article_id")["annotator"].nunique()
        multi = self.per_article[self.per_article >= 2].index
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
        self.texts = [str(t) for t in text_by_id.loc[list(art_ids)]]
        self.lengths = lengths = np.array([len(t) for t in self.texts], dtype=np.int64)
        n_art = len(art_ids)
        self.a_index = pd.Series(np.arange(n_art), index=pd.Index(art_ids))
        ann["a_idx"] = self.a_index.loc[ann["article_id"]].to_numpy()
        ann = ann.sort_values(["a_idx", "annotator"], kind="stable")
        ann["slot"] = ann.groupby("a_idx").cumcount().to_numpy()
        self.n_coders = np.bincount(ann["a_idx"].to_numpy(), minlength=n_art)
        max_m = int(self.n_coders.max())
        self.names = list(sorted(ann["annotator"].unique()))
        self.slot_name = np.full((n_art, max_m), "", dtype=object)
        self.slot_name[ann["a_idx"].to_numpy(), ann["slot"].to_numpy()] = ann[
            "annotator"
        ].to_numpy()
        self.ann, self.art_ids, self.max_m = ann, art_ids, max_m
        self.slot_pairs = [(i, j) for i in range(max_m) for j in range(i + 1, max_m)]

        # spans of the selected annotations, with label, article and slot as integers
        sp = spans.merge(
            ann[["annotation_id", "a_idx", "slot", "annotator"]], on="annotation_id", how="inner"
        )
        self.sp_all = sp
        if labels is not None:
            labels = list(labels)
            sp = sp[sp["label"].isin(labels)]
        else:
            unlabelled = int(sp["label"].isna().sum())
            if unlabelled:  # no category to agree on (its index would point at another label)
                notes.append(f"{unlabelled} spans without a label were left out")
                sp = sp[sp["label"].notna()]
            labels = sorted(sp["label"].unique().tolist())
        if not labels:
            raise AgreementError(
                "no spans in the articles with two or more annotators; nothing to compare (check --labels)"
            )
        self.labels = labels
        self.sp = sp = sp.reset_index(drop=True)
        self.lab_idx = (
            pd.Index(labels).get_indexer(sp["label"]) if len(sp) else np.zeros(0, np.int64)
        )
        self.s_art = sp["a_idx"].to_numpy(np.int64)
        self.s_slot = sp["slot"].to_numpy(np.int64)
        self.s_start = sp["start"].to_numpy(np.int64)
        self.s_end = sp["end"].to_numpy(np.int64)
        bad = (self.s_start > self.s_end) | (self.s_start < 0)
        if bad.any():
            row = sp.iloc[int(np.flatnonzero(bad)[0])]
            raise AgreementError(
                f"span {row.get('span_id')!r} of annotation {row['annotation_id']!r} has "
                f"start={row['start']} end={row['end']}; repair the corpus (start <= end)"
            )
        clipped = self.s_end > lengths[self.s_art]
        if clipped.any():
            notes.append(
                f"{int(clipped.sum())} spans end beyond their article text and were clipped"
            )
            self.s_end = np.minimum(self.s_end, lengths[self.s_art])
            self.s_start = np.minimum(self.s_start, self.s_end)
        self.group = self.s_art * len(labels) + self.lab_idx
        self.used = np.bincount(self.lab_idx, minlength=len(labels)) > 0  # labels with a span
        # a discontinuous span matches as one unit, but its tokens are its fragments' tokens
        self.s_frag = sp["fragments"].to_numpy(object) if "fragments" in sp else None
        self.f_of, self.f_start, self.f_end = fragment_pieces(
            self.s_start, self.s_end, self.s_frag, lengths[self.s_art]
        )
        self.f_art = self.s_art[self.f_of]
        self.f_slot = self.s_slot[self.f_of]
        self.f_lab = self.lab_idx[self.f_of]


ARTICLES_PER_PART = 1000  # articles whose per-article statistics one engine task computes


def _article_stats(u: _Units, relations, iou: float, engine) -> tuple:
    """The token layers, attribution rows, span match counts and relation rows, computed per
    part of the articles on the engine (in this process without one) and put together in
    article order."""
    from spanbank.parallel import Engine

    engine = engine or Engine(workers=1)
    n_art = len(u.art_ids)
    bounds = list(range(0, n_art, ARTICLES_PER_PART)) + [n_art]
    # each table sorted by article once (stable: an article's rows keep their order), then sliced
    f_order = np.argsort(u.f_art, kind="stable")
    f_cut = np.searchsorted(u.f_art[f_order], bounds)
    s_order = np.argsort(u.s_art, kind="stable")
    s_cut = np.searchsorted(u.s_art[s_order], bounds)
    n_lab = len(u.labels)
    sp = u.sp_all.iloc[np.argsort(u.sp_all["a_idx"].to_numpy(), kind="stable")]
    sp_cut = np.searchsorted(sp["a_idx"].to_numpy(), bounds)
    ann = u.ann  # sorted by article already
    ann_cut = np.searchsorted(ann["a_idx"].to_numpy(), bounds)
    rels = [None] * (len(bounds) - 1)
    if relations is not None and len(relations):
        rel = relations.merge(ann[["annotation_id", "a_idx"]], on="annotation_id", how="inner")
        a = rel.pop("a_idx").to_numpy()
        r_order = np.argsort(a, kind="stable")
        r_cut = np.searchsorted(a[r_order], bounds)
        rels = [rel.iloc[r_order[r_cut[k] : r_cut[k + 1]]] for k in range(len(rels))]

    def parts():
        for k, (a0, a1) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            f = f_order[f_cut[k] : f_cut[k + 1]]
            s = s_order[s_cut[k] : s_cut[k + 1]]
            frag = None if u.s_frag is None else u.s_frag[s]
            yield {
                "a0": a0,
                "texts": u.texts[a0:a1],
                "lengths": u.lengths[a0:a1],
                "n_coders": u.n_coders[a0:a1],
                "f": (u.f_art[f] - a0, u.f_start[f], u.f_end[f], u.f_slot[f], u.f_lab[f]),
                "sp": _rebased(sp.iloc[sp_cut[k] : sp_cut[k + 1]], a0),
                "ann": _rebased(ann.iloc[ann_cut[k] : ann_cut[k + 1]], a0),
                "s": (u.s_art[s] - a0, u.s_slot[s], u.lab_idx[s], u.s_start[s], u.s_end[s], frag),
                "sp_ids": u.sp.iloc[s][["annotation_id", "span_id"]].reset_index(drop=True),
                "rel": rels[k],
            }

    shared = (u.max_m, n_lab, u.slot_pairs, iou)
    results = list(engine.map(_part_stats, parts(), shared))
    span_counts = {
        pr: {
            k: np.concatenate([r["spans"][pr][k] for r in results]) for k in results[0]["spans"][pr]
        }
        for pr in u.slot_pairs
    }
    return (
        _Tokens(results, u),
        _attribution_rows(results, u.slot_pairs, bounds),
        span_counts,
        _relation_rows(results, bounds),
    )


def _rebased(df: pd.DataFrame, a0: int) -> pd.DataFrame:
    return df.assign(a_idx=df["a_idx"].to_numpy() - a0) if a0 else df


def _part_stats(part: dict, shared: tuple) -> dict:
    """One part's per-article statistics (articles numbered from 0 in the part): pure, so a
    worker can run it."""
    max_m, n_lab, slot_pairs, iou = shared
    out = _token_stats(part["texts"], part["n_coders"], part["f"], max_m, n_lab, slot_pairs)
    art, slot, lab, start, end, frag = part["s"]
    out["spans"], alignments = _span_counts(
        art * n_lab + lab, slot, art, start, end, part["n_coders"], slot_pairs,
        len(part["texts"]), n_lab, iou, frag,
    )  # fmt: skip
    out["relations"] = _relation_counts(
        part["rel"], part["sp_ids"], part["ann"], alignments, slot_pairs, part["n_coders"]
    )
    out["attributions"] = _attribution_counts(
        part["sp"], part["rel"], part["ann"], part["lengths"], slot_pairs, part["n_coders"], iou,
        keep_empty=True,
    )  # fmt: skip
    return out


def _token_stats(texts, n_coders, f, max_m: int, n_lab: int, slot_pairs) -> dict:
    """The token layers of some articles: the multi-category layer (none or a label per
    annotator and token), its per-article statistics and pair confusions, and the binary layer
    of each label."""
    f_art, f_start, f_end, f_slot, f_lab = f
    n_art = len(texts)
    t_art, t_start, t_end, offsets = tokenize(texts)
    n_tok = len(t_art)
    g_tok_s = offsets[t_art] + t_start
    g_tok_e = offsets[t_art] + t_end
    m_tok = n_coders[t_art]
    art_bounds = np.searchsorted(t_art, np.arange(n_art + 1))
    span_lo = np.searchsorted(g_tok_e, offsets[f_art] + f_start, "right")
    span_hi = np.searchsorted(g_tok_s, offsets[f_art] + f_end, "left")
    # the multi-category layer: one value per (annotator, token), none = 0, label c = c + 1
    cat = token_categories(span_lo, span_hi, f_slot, f_end - f_start, f_lab, n_tok, max_m, n_lab)
    cat[np.arange(max_m)[:, None] >= m_tok[None, :]] = -1  # annotator did not annotate it
    q = n_lab + 1
    tok_counts = _category_counts(cat, q)
    labelled = tok_counts[:, 0] < m_tok  # at least one annotator gave a label
    cat_stats = category_item_stats(tok_counts)
    pair_tok, multi_stats, n1 = _binary_layers(
        span_lo, span_hi, f_slot, f_lab, cat, m_tok, labelled, t_art, art_bounds, slot_pairs,
        n_art, n_lab,
    )  # fmt: skip
    return {
        "t_start": t_start,
        "t_end": t_end,
        "art_bounds": art_bounds,
        "cat": cat,
        "labelled": labelled,
        "cat_art": _per_article(cat_stats, art_bounds),
        "cat_art_l": _per_article(cat_stats * labelled[:, None], art_bounds),
        "pair_conf": _pair_confusion(cat, m_tok, t_art, slot_pairs, n_art, q),
        "pair_tok": pair_tok,
        "multi_stats": multi_stats,
        "n1": n1,  # per label: annotator-tokens inside a span of it
        "m": int(m_tok.sum()),  # annotator-tokens
    }


class _Tokens:
    """The token layers of all articles, put together from the parts' (`_token_stats`)."""

    def __init__(self, parts: list[dict], u: _Units):
        n_lab = len(u.labels)
        self.q = n_lab + 1
        self.multi_label = u.used.sum() >= 2
        self.t_start = np.concatenate([p["t_start"] for p in parts])
        self.t_end = np.concatenate([p["t_end"] for p in parts])
        self.n_tok = n_tok = len(self.t_start)
        starts = np.cumsum([0] + [len(p["t_start"]) for p in parts])
        self.art_bounds = np.concatenate(
            [p["art_bounds"][:-1] + s for p, s in zip(parts, starts, strict=False)] + [[n_tok]]
        )
        self.cat = np.concatenate([p["cat"] for p in parts], axis=1)
        self.labelled = np.concatenate([p["labelled"] for p in parts])
        self.cat_art = np.concatenate([p["cat_art"] for p in parts])
        self.cat_art_l = np.concatenate([p["cat_art_l"] for p in parts])
        self.pair_conf = {
            pr: np.concatenate([p["pair_conf"][pr] for p in parts]) for pr in u.slot_pairs
        }
        self.pair_tok = {
            pr: np.concatenate([p["pair_tok"][pr] for p in parts], axis=2) for pr in u.slot_pairs
        }
        self.multi_stats = np.concatenate([p["multi_stats"] for p in parts], axis=2)
        n1 = sum(p["n1"] for p in parts)
        m = sum(p["m"] for p in parts)
        self.prevalence = n1 / m if n_tok else np.full(n_lab, NAN)
        # a label no one used has no agreement to measure: an all-O layer would read as
        # perfect (AC1, observed 1.0), and pooled with the others it would inflate theirs
        self.multi_stats[:, ~u.used] = 0
        for t in self.pair_tok.values():
            t[:, ~u.used] = 0
        if not u.used.any():  # then no token was labelled: the categories too
            self.cat_art[:], self.cat_art_l[:] = 0, 0
            for c in self.pair_conf.values():
                c[:] = 0


def _attribution_rows(results: list[dict], slot_pairs, bounds) -> pd.DataFrame | None:
    """The parts' attribution rows as one run over all articles makes them: pair by pair, in
    article order, without the pairs that have no quote anywhere."""
    rows = _joined_rows(results, "attributions", bounds)
    if rows is None:
        return None
    quotes = rows.groupby("_pair")[["n_a", "n_b"]].sum().sum(axis=1)
    rows = rows[rows["_pair"].isin(quotes.index[quotes > 0])]
    if not len(rows):
        return None
    rows = rows.sort_values(["_pair", "a_idx"], kind="stable")
    return rows.drop(columns="_pair").reset_index(drop=True)


def _relation_rows(results: list[dict], bounds) -> pd.DataFrame | None:
    """The parts' relation rows as one run over all articles makes them: pair by pair, in
    article order."""
    rows = _joined_rows(results, "relations", bounds)
    if rows is None:
        return None
    rows = rows.sort_values("_pair", kind="stable")
    return rows.drop(columns="_pair").reset_index(drop=True)


def _joined_rows(results: list[dict], key: str, bounds) -> pd.DataFrame | None:
    """The parts' `key` rows in one frame, their article indices made global again."""
    frames = [
        r[key].assign(a_idx=r[key]["a_idx"].to_numpy() + a0)
        for r, a0 in zip(results, bounds, strict=False)
        if r[key] is not None
    ]
    return pd.concat(frames, ignore_index=True) if frames else None


_TAB_COLS = ["n00", "n01", "n10", "n11"]
_TAB_COLS_L = ["l00", "l01", "l10", "l11"]
_SUM_COLS = ["tp_exact", "tp_overlap", "tp_any", "n_a", "n_b", *_TAB_COLS, *_TAB_COLS_L]


def _span_measures(row) -> dict:
    n = row["n_a"] + row["n_b"]
    return {
        "span_f1_exact": _f1(2 * row["tp_exact"], n),
        "span_f1_overlap": _f1(2 * row["tp_overlap"], n),
        "span_f1_any": _f1(2 * row["tp_any"], n),
    }


def _label_rows(pair_df: pd.DataFrame, labels: list, tok: _Tokens, unitizing) -> list[dict]:
    """Per label (all pairs pooled), then micro and macro."""
    alpha_u, alpha_u_overall, _, units_per_label = unitizing
    multi_stats, prevalence, multi_label = tok.multi_stats, tok.prevalence, tok.multi_label
    label_rows = []
    by_label = pair_df.groupby("label", sort=False)[_SUM_COLS].sum()
    for c, lab in enumerate(labels):
        row = {"label": lab}
        row.update(
            _span_measures(by_label.loc[lab])
            if lab in by_label.index
            else dict.fromkeys(SPAN_MEASURES, NAN)
        )
        for v, suffix in ((0, ""), (1, "_no_o")):
            for k, val in _multi_rater(multi_stats[v, c].sum(0), v == 0 or multi_label).items():
                row[k + suffix] = val
        row["alpha_u"] = _f(alpha_u[c])
        row["units"] = int(units_per_label[c])
        row["prevalence"] = _f(prevalence[c])
        label_rows.append(row)
    micro = {"label": "micro"}
    micro.update(_span_measures(pair_df[_SUM_COLS].sum()))
    for v, suffix in ((0, ""), (1, "_no_o")):
        for k, val in _multi_rater(multi_stats[v].sum((0, 1)), v == 0 or multi_label).items():
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
    return label_rows + [micro, macro]


def _pair_rows(pair_df: pd.DataFrame, u: _Units, tok: _Tokens, rel_rows) -> list[dict]:
    """Per annotator pair: per label, then micro (with categorical and relation figures) and macro."""
    multi_label = tok.multi_label

    def pair_token(g) -> dict:
        return _pair_token(
            g[_TAB_COLS].to_numpy(float), g[_TAB_COLS_L].to_numpy(float), multi_label
        )

    pair_cat = _confusion_by_pair(tok.pair_conf, u.slot_name, u.n_coders)
    pair_rows = []
    pair_articles = pair_df.groupby(["annotator_a", "annotator_b"])["a_idx"].nunique()
    grouped = pair_df.groupby(["annotator_a", "annotator_b", "label"], sort=True)[_SUM_COLS].sum()
    for (pa, pb), n_shared in pair_articles.items():
        head = {"annotator_a": pa, "annotator_b": pb, "articles": int(n_shared)}
        per = []
        for lab in u.labels:
            if (pa, pb, lab) not in grouped.index:
                continue
            g = grouped.loc[(pa, pb, lab)]
            per.append({**head, "label": lab, **_span_measures(g), **pair_token(g)})
        tot = grouped.loc[(pa, pb)].sum()
        mic = {**head, "label": "micro", **_span_measures(tot), **pair_token(tot)}
        mac = {**head, "label": "macro"}
        for k in mic:
            if k not in mac:
                vals = [r[k] for r in per if not math.isnan(r[k])]
                mac[k] = _f(np.mean(vals)) if vals else NAN
        mic.update(_pair_categorical(pair_cat.get((pa, pb)), tok.q, multi_label))
        if rel_rows is not None and len(rel_rows):
            rp = rel_rows[(rel_rows["annotator_a"] == pa) & (rel_rows["annotator_b"] == pb)]
            mic.update(_relation_measures(rp))
        pair_rows += per + [mic, mac]
    return pair_rows


class _Articles:
    """Per-article figures, the least agreed first in `rank`, and the per-article sums the
    bootstrap resamples."""

    def __init__(self, pair_df: pd.DataFrame, u: _Units, tok: _Tokens, art_alpha_u, tasks, project):
        n_art, art_ids = len(u.art_ids), u.art_ids
        self.art_sum = art_sum = (
            pair_df.groupby("a_idx")[_SUM_COLS].sum().reindex(np.arange(n_art), fill_value=0)
        )
        self.n_ab = n_ab = (art_sum["n_a"] + art_sum["n_b"]).to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            f1_exact = np.where(n_ab > 0, 2 * art_sum["tp_exact"].to_numpy() / n_ab, np.nan)
            f1_overlap = np.where(n_ab > 0, 2 * art_sum["tp_overlap"].to_numpy() / n_ab, np.nan)
        self.tok_art = tok.multi_stats[0].sum(0)  # (n_art, 7) binary-layer stats summed over labels
        alpha = np.atleast_1d(category_figures(self.tok_art, q=2)["alpha"])
        token_alpha = np.atleast_1d(category_figures(tok.cat_art, q=tok.q)["alpha"])
        links = _task_links(tasks, art_ids, project)
        spans_per_art = np.bincount(u.s_art, minlength=n_art)
        self.rows = [
            {
                "article_id": str(art_ids[k]),
                "annotators": [x for x in u.slot_name[k, : u.n_coders[k]]],
                "spans": int(spans_per_art[k]),
                "span_f1_exact": _f(f1_exact[k]),
                "span_f1_overlap": _f(f1_overlap[k]),
                "token_alpha": _f(token_alpha[k]),
                "alpha": _f(alpha[k]),
                "alpha_u": _f(art_alpha_u[k]),
                "link": links.get(art_ids[k]),
            }
            for k in range(n_art)
        ]
        # least agreed first: token alpha, then overlap F1 (undefined last)
        rank = np.lexsort(
            (np.nan_to_num(f1_overlap, nan=np.inf), np.nan_to_num(token_alpha, nan=np.inf))
        )
        self.rank = [
            k for k in rank if not (math.isnan(f1_overlap[k]) and math.isnan(token_alpha[k]))
        ]


def _token_section(tok: _Tokens, labels: list) -> dict:
    """The headline: the multi-category token layer over all tokens and over labelled ones."""
    token_all = category_figures(tok.cat_art.sum(0), q=tok.q)
    token_lab = category_figures(tok.cat_art_l.sum(0), q=tok.q)
    conf = sum(c.sum(0) for c in tok.pair_conf.values()).reshape(tok.q, tok.q)
    return {
        "categories": ["none", *labels],
        "rule": CATEGORY_RULE,
        "tokens_labelled": int(tok.labelled.sum()),
        **{f"token_{k}": _f(v) for k, v in token_all.items()},
        **{f"token_{k}_labelled": _f(v) if tok.multi_label else NAN for k, v in token_lab.items()},
        "confusion": (conf + conf.T).astype(int).tolist(),
    }


def _summary(micro: dict, token_out: dict, relations_out: dict, attributions_out: dict) -> dict:
    return {
        "token_alpha": token_out["token_alpha"],
        "token_alpha_labelled": token_out["token_alpha_labelled"],
        "token_fleiss_kappa": token_out["token_fleiss_kappa"],
        "token_ac1": token_out["token_ac1"],
        "span_f1_exact": micro["span_f1_exact"],
        "span_f1_overlap": micro["span_f1_overlap"],
        "span_f1_any": micro["span_f1_any"],
        "alpha": micro["alpha"],
        "alpha_no_o": micro["alpha_no_o"],
        "alpha_u": micro["alpha_u"],
        "relation_f1": relations_out["overall"]["relation_f1"],
        **{k: attributions_out["overall"][k] for k in ATTRIBUTION_MEASURES},
    }


def _bootstrap_blocks(tok: _Tokens, arts: _Articles, rel_rows, attr_rows, n_art: int) -> dict:
    """Per-article statistics and the figure computed from their sum, for each summary figure."""
    q, multi_label, art_sum = tok.q, tok.multi_label, arts.art_sum
    span_cols = np.column_stack(
        [
            2 * art_sum["tp_exact"].to_numpy(float),
            2 * art_sum["tp_overlap"].to_numpy(float),
            2 * art_sum["tp_any"].to_numpy(float),
            arts.n_ab,
            _relation_article_stats(rel_rows, n_art),
        ]
    )

    def undefined(r):
        return np.full(len(r), np.nan)

    def cat_fig(key, labelled_only=False):
        if labelled_only and not multi_label:
            return undefined
        return lambda r: category_figures(r, q=q)[key]

    def binary_alpha(r):
        return category_figures(r, q=2)["alpha"]

    return {
        "token_alpha": (tok.cat_art, cat_fig("alpha")),
        "token_alpha_labelled": (tok.cat_art_l, cat_fig("alpha", True)),
        "token_fleiss_kappa": (tok.cat_art, cat_fig("fleiss_kappa")),
        "token_ac1": (tok.cat_art, cat_fig("ac1")),
        "span_f1_exact": (span_cols, lambda r: r[:, 0] / r[:, 3]),
        "span_f1_overlap": (span_cols, lambda r: r[:, 1] / r[:, 3]),
        "span_f1_any": (span_cols, lambda r: r[:, 2] / r[:, 3]),
        "alpha": (arts.tok_art, binary_alpha),
        "alpha_no_o": (tok.multi_stats[1].sum(0), binary_alpha if multi_label else undefined),
        "relation_f1": (span_cols, lambda r: r[:, 4] / r[:, 5]),
        **_attribution_blocks(attr_rows, n_art),
    }


def _coverage(u: _Units, tok: _Tokens, units_per_label) -> dict:
    raters = pd.Series(u.n_coders).value_counts().sort_index()
    sp, labels, names = u.sp, u.labels, u.names
    units_by_ann = (
        sp.assign(label=sp["label"].astype(str)).groupby(["label", "annotator"]).size()
        if len(sp)
        else pd.Series(dtype=int)
    )
    return {
        "articles_annotated": int(u.per_article.size),
        "articles_with_2plus": len(u.art_ids),
        "annotations": int(len(u.ann)),
        "annotators": names,
        "raters_per_article": {str(k): int(v) for k, v in raters.items()},
        "tokens": int(tok.n_tok),
        "units_per_label": {lab: int(units_per_label[c]) for c, lab in enumerate(labels)},
        "units_per_label_annotator": {
            lab: {a: int(units_by_ann.get((lab, a), 0)) for a in names} for lab in labels
        },
        "prevalence": {lab: _f(tok.prevalence[c]) for c, lab in enumerate(labels)},
    }


def _pair_confusion(cat: np.ndarray, m_tok, t_art, slot_pairs, n_art: int, q: int) -> dict:
    """(i, j) -> token category confusion counts per article, shape (n_art, q * q), rows annotator i."""
    pair_conf = {}
    for i, j in slot_pairs:
        valid = m_tok > j
        code = t_art[valid] * q * q + cat[i][valid] * q + cat[j][valid]
        pair_conf[(i, j)] = np.bincount(code, minlength=n_art * q * q).reshape(n_art, q * q)
    return pair_conf


def _binary_layers(
    span_lo,
    span_hi,
    s_slot,
    lab_idx,
    cat,
    m_tok,
    labelled,
    t_art,
    art_bounds,
    slot_pairs,
    n_art: int,
    n_lab: int,
):
    """The binary (label / O) token layer of each label: (pair 2x2 tables, multi-rater stats, prevalence).

    ``pair_tok[(i, j)]``: shape (2, n_lab, n_art, 4), over all tokens and tokens someone labelled;
    ``multi_stats``: shape (2, n_lab, n_art, 7); ``n1``: shape (n_lab,), annotator-tokens inside
    a span of each label (prevalence = n1 / annotator-tokens).
    """
    n_tok = len(t_art)
    max_m = cat.shape[0]
    pair_tok = {p: np.zeros((2, n_lab, n_art, 4)) for p in slot_pairs}  # [all, labelled]
    multi_stats = np.zeros((2, n_lab, n_art, 7))  # [all tokens, tokens someone labelled]
    n1_sum = np.zeros(n_lab, np.int64)
    for c in range(n_lab):
        sel = np.flatnonzero(lab_idx == c)
        lo, hi = span_lo[sel], span_hi[sel]
        ok = hi > lo
        lay = s_slot[sel][ok]
        diff = np.bincount(lay * (n_tok + 1) + lo[ok], minlength=max_m * (n_tok + 1))
        diff = diff - np.bincount(lay * (n_tok + 1) + hi[ok], minlength=max_m * (n_tok + 1))
        inside = np.cumsum(diff.reshape(max_m, n_tok + 1)[:, :n_tok], axis=1) > 0
        n1 = inside.sum(0)
        n0 = m_tok - n1
        n1_sum[c] = n1.sum()
        stats = category_item_stats(np.column_stack([n0, n1]))
        multi_stats[0, c] = _per_article(stats, art_bounds)
        multi_stats[1, c] = _per_article(stats * labelled[:, None], art_bounds)
        for i, j in slot_pairs:
            valid = m_tok > j
            code = inside[i][valid].astype(np.int64) * 2 + inside[j][valid]
            some = (cat[i][valid] > 0) | (cat[j][valid] > 0)
            for v, keep in enumerate((np.ones(len(code), bool), some)):
                pair_tok[(i, j)][v, c] = np.bincount(
                    t_art[valid][keep] * 4 + code[keep], minlength=n_art * 4
                ).reshape(n_art, 4)
    return pair_tok, multi_stats, n1_sum


def _span_counts(
    group,
    s_slot,
    s_art,
    s_start,
    s_end,
    n_coders,
    slot_pairs,
    n_art: int,
    n_lab: int,
    iou: float,
    s_frag=None,
) -> tuple[dict, dict]:
    """Span matches per annotator slot pair: (counts, alignments).

    ``counts[(i, j)]``: ``exact``/``overlap``/``any`` matches and ``n_a``/``n_b`` spans, each
    an int array, shape (n_art, n_lab); ``alignments[(i, j)]``: the overlap-matched span
    index pairs (kept for relations). Spans are the flat arrays of :func:`build_report`;
    ``s_frag`` (optional) their fragments, so a discontinuous span matches as one unit.
    """
    span_counts = {}  # (i, j) -> dict of (n_art, n_lab) arrays
    alignments = {}
    for i, j in slot_pairs:
        ai = np.flatnonzero((s_slot == i) & (n_coders[s_art] > j))
        bj = np.flatnonzero(s_slot == j)
        cnt = {}
        for name, thr in (("exact", 1.0), ("overlap", iou), ("any", 0.0)):
            fa, fb = (None, None) if s_frag is None else (s_frag[ai], s_frag[bj])
            ia, ib = align_span_arrays(
                group[ai], s_start[ai], s_end[ai], group[bj], s_start[bj], s_end[bj], thr, fa, fb
            )
            cnt[name] = np.bincount(group[ai][ia], minlength=n_art * n_lab).reshape(n_art, n_lab)
            if name == "overlap":
                alignments[(i, j)] = (ai[ia], bj[ib])
        cnt["n_a"] = np.bincount(group[ai], minlength=n_art * n_lab).reshape(n_art, n_lab)
        cnt["n_b"] = np.bincount(group[bj], minlength=n_art * n_lab).reshape(n_art, n_lab)
        span_counts[(i, j)] = cnt
    return span_counts, alignments


def _unitizing(
    s_art, s_slot, lab_idx, s_start, s_end, lengths, n_coders, group, n_art: int, n_lab: int,
    span_lab,
):  # fmt: skip
    """Krippendorff's unitizing alpha over the spans' fragments: (per label, overall, per
    article, spans per label). A discontinuous span counts as one span (as in the span F1s),
    each of its fragments as a unit of alpha_U. `span_lab`: each span's label index."""
    d_o, d_e = unitizing_components(
        s_art, s_slot, lab_idx, s_start, s_end, lengths, n_coders, n_lab
    )
    units_per_label = np.bincount(span_lab, minlength=n_lab)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha_u = np.where(d_e > 0, 1 - d_o / d_e, np.nan)
    present = np.bincount(lab_idx, minlength=n_lab) > 0
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
    return alpha_u, alpha_u_overall, art_alpha_u, units_per_label


def _pair_table(
    slot_pairs, n_coders, span_counts: dict, pair_tok: dict, slot_name, labels: list
) -> pd.DataFrame:
    """One row per (article, annotator slot pair, label): span matches and token 2x2 tables."""
    frames = []
    for i, j in slot_pairs:
        arts = np.flatnonzero(n_coders > j)
        if not len(arts):
            continue
        cnt = span_counts[(i, j)]
        for c in range(len(labels)):
            t = pair_tok[(i, j)][0, c][arts]
            tl = pair_tok[(i, j)][1, c][arts]
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
                        "l00": tl[:, 0],
                        "l01": tl[:, 1],
                        "l10": tl[:, 2],
                        "l11": tl[:, 3],
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _confusion_by_pair(pair_conf: dict, slot_name, n_coders) -> dict:
    """(annotator a, annotator b) -> token category confusion summed over their shared articles."""
    frames = []
    for (i, j), conf in pair_conf.items():
        arts = np.flatnonzero(n_coders > j)
        df = pd.DataFrame(conf[arts])
        df["a"], df["b"] = slot_name[arts, i], slot_name[arts, j]
        frames.append(df)
    if not frames:
        return {}
    summed = pd.concat(frames, ignore_index=True).groupby(["a", "b"]).sum()
    return {k: row.to_numpy(float) for k, row in summed.iterrows()}


def _pair_categorical(conf, q: int, multi_label: bool) -> dict:
    """Cohen's kappa, AC1 and observed agreement of two annotators over the token categories."""
    keys = ("token_cohen_kappa", "token_ac1", "token_observed", "token_cohen_kappa_labelled")
    if conf is None:
        return dict.fromkeys(keys, NAN)
    table = np.asarray(conf, dtype=float).reshape(q, q)
    labelled = table.copy()
    labelled[0, 0] = 0  # tokens neither annotator labelled
    n = table.sum()
    return {
        "token_cohen_kappa": _f(_kappa_from_table(table)),
        "token_ac1": _f(_ac1_from_table(table)),
        "token_observed": _f(np.trace(table) / n) if n else NAN,
        "token_cohen_kappa_labelled": _f(_kappa_from_table(labelled)) if multi_label else NAN,
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
    """Per (article, annotator pair, relation label): links of a, of b, matched, and the
    conditional counts; `_pair` numbers the pair in ``slot_pairs``."""
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
    for pair, (i, j) in enumerate(slot_pairs):
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
        df["_pair"] = pair
        out.append(df)
    return pd.concat(out, ignore_index=True) if out else None


def _units(sp: pd.DataFrame, lengths: np.ndarray) -> pd.DataFrame:
    """One row per span (a discontinuous one with its `fragments`), by (annotation, span id)."""
    end = np.minimum(sp["end"].to_numpy(np.int64), lengths[sp["a_idx"].to_numpy(np.int64)])
    u = sp.assign(
        head=sp["span_id"].astype(str).to_numpy(),
        start=np.minimum(sp["start"].to_numpy(np.int64), end),
        end=end,
        fragments=sp["fragments"] if "fragments" in sp else None,
    )
    u = u.drop_duplicates(["annotation_id", "head"]).set_index(["annotation_id", "head"])
    return u[["label", "start", "end", "a_idx", "slot", "fragments"]]


def _targets_match(ta: list, tb: list, threshold: float) -> bool:
    """Two quotes' speakers (or cues) agree: none on both sides, or aligned one to one."""
    if len(ta) != len(tb):
        return False
    if not ta:
        return True
    if len(ta) == 1:  # the common case, without the array machinery
        (sa, ea), (sb, eb) = ta[0], tb[0]
        if (sa, ea) == (sb, eb):
            return True
        inter = min(ea, eb) - max(sa, sb)
        return inter > 0 and inter / ((ea - sa) + (eb - sb) - inter) >= threshold
    ia, _ = align_span_arrays(
        np.zeros(len(ta)),
        [s for s, _ in ta],
        [e for _, e in ta],
        np.zeros(len(tb)),
        [s for s, _ in tb],
        [e for _, e in tb],
        threshold,
    )
    return len(ia) == len(ta)


def _attribution_units(sp_all, relations, lengths):
    """(quotes, targets): QUOTE units indexed by (annotation, span id); (annotation, quote id, relation) -> [(start, end)]."""
    if not len(sp_all):
        return None, {}
    units = _units(sp_all, lengths)
    quotes = units[units["label"] == QUOTE_LABEL]
    if not len(quotes):
        return None, {}
    targets: dict = {}
    if relations is not None and len(relations):
        rel = relations[relations["label"].isin([SOURCE_RELATION, CUE_RELATION])]
        rel = rel[rel["annotation_id"].isin(set(quotes.index.get_level_values(0)))]
        to = units.reindex(pd.MultiIndex.from_arrays([rel["annotation_id"], rel["to_span_id"]]))
        for aid, f, lab, s, e in zip(
            rel["annotation_id"],
            rel["from_span_id"],
            rel["label"],
            to["start"],
            to["end"],
            strict=True,
        ):
            if not pd.isna(s):
                targets.setdefault((aid, str(f), lab), []).append((int(s), int(e)))
    return quotes, targets


def _gold_scores(annotations, spans, gold, project, annotators, labels, iou) -> list[dict]:
    """Per annotator: span precision/recall/F1 (same label, IoU >= ``iou``) against the
    ``gold`` annotations (one per article)."""
    if gold is None or not len(gold):
        return []
    human = latest_per_annotator(annotations, project, annotators)
    human = human[human["article_id"].isin(set(gold["article_id"]))]
    sp = spans[spans["label"].isin(labels)]
    g = sp.merge(gold[["annotation_id", "article_id"]], on=["annotation_id", "article_id"])
    arts = pd.Index(sorted(set(gold["article_id"])))
    lab = pd.Index(labels)
    out = []
    for who, mine in human.groupby("annotator", sort=True):
        h = sp.merge(mine[["annotation_id", "article_id"]], on=["annotation_id", "article_id"])
        gg = g[g["article_id"].isin(set(mine["article_id"]))]
        key_h = arts.get_indexer(h["article_id"]) * len(lab) + lab.get_indexer(h["label"])
        key_g = arts.get_indexer(gg["article_id"]) * len(lab) + lab.get_indexer(gg["label"])
        row = {"annotator": who, "articles": int(mine["article_id"].nunique())}
        fh, fg = (
            (h["fragments"].to_numpy(object), gg["fragments"].to_numpy(object))
            if "fragments" in sp
            else (None, None)
        )
        for name, thr in (("", iou), ("_exact", 1.0)):
            ia, _ = align_span_arrays(
                key_h, h["start"], h["end"], key_g, gg["start"], gg["end"], thr, fh, fg
            )
            p = _f(len(ia) / len(h)) if len(h) else NAN
            r = _f(len(ia) / len(gg)) if len(gg) else NAN
            row["precision" + name] = p
            row["recall" + name] = r
            row["f1" + name] = _f1(2 * len(ia), len(h) + len(gg))
        out.append(row)
    return out


def _article_views(
    arts,
    texts,
    cat,
    bounds,
    t_start,
    t_end,
    slot_name,
    n_coders,
    categories,
    sp_all,
    relations,
    lengths,
) -> list[dict]:
    """What the HTML page shows of each least-agreed article: its tokens and every annotator's categories and attributions."""
    quotes, targets = _attribution_units(sp_all, relations, lengths)
    out = []
    for k in arts:
        lo, hi = bounds[k], bounds[k + 1]
        m = int(n_coders[k])
        who = [str(x) for x in slot_name[k, :m]]
        attrs = {w: [] for w in who}
        if quotes is not None:
            mine = quotes[quotes["a_idx"] == k]
            for (aid, qid), r in mine.iterrows():
                attrs[str(slot_name[k, int(r["slot"])])].append(
                    {
                        "quote": [int(r["start"]), int(r["end"])],
                        "speakers": targets.get((aid, qid, SOURCE_RELATION), []),
                        "cues": targets.get((aid, qid, CUE_RELATION), []),
                    }
                )
        out.append(
            {
                "article_index": int(k),
                "text": texts[k],
                "categories": categories,
                "tokens": np.column_stack([t_start[lo:hi], t_end[lo:hi]]).tolist(),
                "annotators": who,
                "values": cat[:m, lo:hi].tolist(),
                "attributions": [sorted(attrs[w], key=lambda a: a["quote"]) for w in who],
            }
        )
    return out


def _attribution_counts(
    sp_all, relations, ann, lengths, slot_pairs, n_coders, iou, keep_empty: bool = False
):
    """Per (article, annotator pair): attributions of a and b, quote matches, and full matches.

    An attribution is a QUOTE span with its said_by speakers and cue spans. Quotes match one
    to one (exact offsets, or IoU >= ``iou``); a full match also needs the speakers and the
    cues to match at the same threshold (none on both sides counts as a match).
    ``keep_empty`` (a part of the articles): every pair's rows, even without quotes, with the
    pair's number in `_pair` (see `_attribution_rows`).
    """
    quotes, targets = _attribution_units(sp_all, relations, lengths)
    if quotes is None:
        if not keep_empty:
            return None
        quotes = pd.DataFrame(
            {"a_idx": [], "slot": [], "start": [], "end": [], "fragments": []},
            index=pd.MultiIndex.from_arrays([[], []]),
        )
    keys = list(quotes.index)
    q_art = quotes["a_idx"].to_numpy(np.int64)
    q_slot = quotes["slot"].to_numpy(np.int64)
    q_s, q_e = quotes["start"].to_numpy(np.int64), quotes["end"].to_numpy(np.int64)
    q_f = quotes["fragments"].to_numpy(object)
    slot_names = ann.set_index(["a_idx", "slot"])["annotator"]
    n_art = len(n_coders)
    out = []
    for pair, (i, j) in enumerate(slot_pairs):
        ai = np.flatnonzero((q_slot == i) & (n_coders[q_art] > j))
        bj = np.flatnonzero(q_slot == j)
        if not len(ai) and not len(bj) and not keep_empty:
            continue
        row = {
            "n_a": np.bincount(q_art[ai], minlength=n_art),
            "n_b": np.bincount(q_art[bj], minlength=n_art),
        }
        for mode, thr in (("exact", 1.0), ("overlap", iou)):
            ia, ib = align_span_arrays(
                q_art[ai], q_s[ai], q_e[ai], q_art[bj], q_s[bj], q_e[bj], thr, q_f[ai], q_f[bj]
            )
            full = np.array(
                [
                    all(
                        _targets_match(
                            targets.get((*keys[x], r), []), targets.get((*keys[y], r), []), thr
                        )
                        for r in (SOURCE_RELATION, CUE_RELATION)
                    )
                    for x, y in zip(ai[ia], bj[ib], strict=True)
                ],
                dtype=bool,
            )
            row[f"quote_{mode}"] = np.bincount(q_art[ai][ia], minlength=n_art)
            row[f"full_{mode}"] = np.bincount(q_art[ai][ia][full], minlength=n_art)
        df = pd.DataFrame(row)
        df["a_idx"] = np.arange(n_art)
        df = df[n_coders > j]
        arts = df["a_idx"].to_numpy()
        for col, slot in (("annotator_a", i), ("annotator_b", j)):
            df[col] = slot_names.reindex(
                pd.MultiIndex.from_arrays([arts, np.full(len(arts), slot)])
            ).to_numpy()
        if keep_empty:
            df["_pair"] = pair
        out.append(df)
    return pd.concat(out, ignore_index=True) if out else None


def _attribution_measures(rows) -> dict:
    if rows is None or not len(rows):
        return {**dict.fromkeys(ATTRIBUTION_MEASURES, NAN), "attributions": 0}
    s = rows[["n_a", "n_b", "quote_exact", "quote_overlap", "full_exact", "full_overlap"]].sum()
    n = s["n_a"] + s["n_b"]
    return {
        "attribution_f1": _f1(2 * s["quote_overlap"], n),
        "attribution_f1_exact": _f1(2 * s["quote_exact"], n),
        "attribution_f1_full": _f1(2 * s["full_overlap"], n),
        "attribution_f1_full_exact": _f1(2 * s["full_exact"], n),
        "attributions": int(n),
    }


def _attribution_report(rows) -> dict:
    """Attribution agreement pooled over every pair and per annotator pair."""
    out = {
        "quote_label": QUOTE_LABEL,
        "source_relation": SOURCE_RELATION,
        "cue_relation": CUE_RELATION,
        "overall": _attribution_measures(rows),
        "pairs": [],
    }
    if rows is not None and len(rows):
        for (a, b), g in rows.groupby(["annotator_a", "annotator_b"], sort=True):
            out["pairs"].append(
                {
                    "annotator_a": a,
                    "annotator_b": b,
                    "articles": int(g["a_idx"].nunique()),
                    **_attribution_measures(g),
                }
            )
    return out


def _attribution_blocks(rows, n_art: int) -> dict:
    """Bootstrap blocks (per-article sums and figure) of the attribution F1s."""
    cols = ["quote_overlap", "quote_exact", "full_overlap", "full_exact"]
    m = np.zeros((n_art, 5))
    if rows is not None and len(rows):
        a = rows["a_idx"].to_numpy()
        for k, c in enumerate(cols):
            m[:, k] = np.bincount(a, weights=2 * rows[c].to_numpy(float), minlength=n_art)
        m[:, 4] = np.bincount(
            a, weights=(rows["n_a"] + rows["n_b"]).to_numpy(float), minlength=n_art
        )
    return {
        name: (m, (lambda r, k=k: r[:, k] / r[:, 4])) for k, name in enumerate(ATTRIBUTION_MEASURES)
    }


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


BOOT_BLOCK = 200  # replicates per engine task; block b draws from its own stream [seed, b]
BOOT_ROWS = 16  # replicates whose article counts are held at once: BOOT_ROWS x articles floats
# per-article sums a task holds at most: more articles than this are resampled in ranges, so a
# worker's memory does not grow with the corpus
BOOT_RANGE_BYTES = 64 << 20


def _bootstrap(blocks: dict, n_boot: int, seed: int, engine=None) -> dict:
    """95% percentile CIs from resampling articles with replacement (seeded).

    ``blocks``: name -> (per-article sums, ndarray shape (n_articles, w); a function of
    replicate sums, shape (B, w), returning the figure per replicate). Every figure is a
    function of sums over articles, so a replicate is a weighted sum of rows; all figures
    share the same resamples (`_replicates`).
    """
    if n_boot <= 0 or not blocks:
        return {}
    mats = {id(m): m for m, _ in blocks.values()}  # figures share matrices: resample each once
    ends = np.cumsum([m.shape[1] for m in mats.values()])
    cols = {k: slice(e - m.shape[1], e) for (k, m), e in zip(mats.items(), ends, strict=True)}
    reps = _replicates(np.hstack(list(mats.values())).astype(float), n_boot, seed, engine)
    out = {}
    for k, (m, fig) in blocks.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.asarray(fig(reps[:, cols[id(m)]]), dtype=float)
        v = v[np.isfinite(v)]
        out[k] = (_f(np.percentile(v, 2.5)), _f(np.percentile(v, 97.5))) if len(v) else (NAN, NAN)
    return out


def _replicates(m: np.ndarray, n_boot: int, seed: int, engine=None) -> np.ndarray:
    """The sums of ``m``'s rows over `n_boot` resamples of its n rows with replacement, shape
    (n_boot, w). Made in blocks of `BOOT_BLOCK` on ``engine`` (default: here); block b's draws
    depend only on (seed, b), so the sums are the same wherever and however many blocks ran.

    When ``m`` is bigger than `BOOT_RANGE_BYTES`, it is cut into ranges of rows instead, one
    task per range: in block b a replicate first splits its n draws among the ranges
    (multinomial, in proportion to their sizes, from the stream [seed, b]), then draws each
    range's share within it (stream [seed, b, j + 1]). That is the distribution of n uniform
    draws, so a worker holds one range, not the corpus; the draws are not the single-range
    ones, so such CIs differ from them by resampling noise."""
    from spanbank.parallel import Engine

    engine = engine or Engine(workers=1)
    n, w = m.shape
    rows = max(1, BOOT_RANGE_BYTES // (8 * max(w, 1)))
    if n <= rows:
        blocks = range(-(-n_boot // BOOT_BLOCK))
        return np.concatenate(list(engine.map(_boot_block, blocks, m, seed, n_boot)))
    ranges = [(j, m[lo : lo + rows]) for j, lo in enumerate(range(0, n, rows))]
    sums = engine.map(_boot_range, ranges, n, rows, seed, n_boot)
    return functools.reduce(np.add, sums)  # in range order: the same sums wherever they ran


def _boot_block(b: int, m: np.ndarray, seed: int, n_boot: int) -> np.ndarray:
    """Replicate sums of block b: each replicate draws n articles with replacement from the
    stream [seed, b] and sums their rows of ``m``. Pure, so a worker can run it; holds the
    counts of `BOOT_ROWS` replicates at a time, not of the whole block."""
    n = len(m)
    size = min(BOOT_BLOCK, n_boot - b * BOOT_BLOCK)
    return _weighted_sums(m, np.random.default_rng([seed, b]), [n] * size)


def _boot_range(part: tuple, n: int, rows: int, seed: int, n_boot: int) -> np.ndarray:
    """Every replicate's sums over range j of ``m``'s rows (`_replicates`); `part` is (j, the
    range's rows), each range `rows` long but the last."""
    j, m = part
    sizes = np.minimum(rows, n - np.arange(0, n, rows))
    out = []
    for b in range(-(-n_boot // BOOT_BLOCK)):
        size = min(BOOT_BLOCK, n_boot - b * BOOT_BLOCK)
        shares = np.random.default_rng([seed, b]).multinomial(n, sizes / n, size=size)[:, j]
        out.append(_weighted_sums(m, np.random.default_rng([seed, b, j + 1]), shares))
    return np.concatenate(out)


def _weighted_sums(m: np.ndarray, rng, draws) -> np.ndarray:
    """Row r: the sum of ``draws[r]`` rows of ``m`` drawn with replacement from ``rng``, with the
    counts of `BOOT_ROWS` replicates held at a time."""
    n, size = len(m), len(draws)
    out = np.empty((size, m.shape[1]))
    w = np.empty((min(BOOT_ROWS, size), n))
    for r0 in range(0, size, BOOT_ROWS):
        k = min(BOOT_ROWS, size - r0)
        for r in range(k):  # row by row: no (k, n) array of picks besides the counts
            w[r] = np.bincount(rng.integers(0, n, size=draws[r0 + r]), minlength=n)
        out[r0 : r0 + k] = w[:k] @ m
    return out
