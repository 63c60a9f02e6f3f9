"""Gold checks: score each annotator against the known gold of honeypot articles mixed into a batch.

A honeypot is a `task_plans` row with `honeypot` true and `honeypot_gold` naming the gold it is
checked against: `pinned:<gold id>@<time>`, a copy of that gold's spans made when it was pushed
(`honeypot_spans`), so that a later `adjudicate`, which re-makes automatic gold under the same
id, cannot move the answer. Each annotator's `gold_remade` counts their checks whose stored
gold was made again since. Plans older than the copies name the stored gold itself and are
checked against it as it is now; such a check whose gold is gone is not scored, and counted
(`gold_gone`): against nothing, every span would count as wrong.
Scores per annotator: span F1 (same label, IoU >= iou; and exact) and Krippendorff's nominal α
over token categories (none / label of the innermost covering span) between annotator and
gold, each with a percentile bootstrap CI over articles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from spanbank.agreement.coefficients import (
    _alpha_nominal_stats,
    align_spans,
    fragment_pieces,
    token_categories,
)
from spanbank.corpus.annotations import (
    HONEYPOT_GOLD,
    honeypot_tasks,
    latest_per_annotator,
    live_annotations,
)
from spanbank.corpus.tables import HONEYPOT_SPANS
from spanbank.errors import SpanbankError
from spanbank.tokens import tokenize

SPAN_COLUMNS = ["article_id", "label", "start", "end"]
PINNED = "pinned:"  # a honeypot_gold naming the copy of the gold made at push (honeypot_spans)


def honeypot_scores(
    done: pd.DataFrame,
    human: pd.DataFrame,
    gold: pd.DataFrame,
    texts: dict[str, str],
    labels: list[str],
    *,
    iou: float = 0.5,
    bootstrap: int = 1000,
    seed: int = 0,
) -> list[dict]:
    """Per annotator: span F1 (IoU and exact) and token α against gold, with 95% bootstrap CIs.

    `done`: (annotator, article_id) of each honeypot an annotator submitted (with or without
    spans); `human`: their spans (annotator + SPAN_COLUMNS, and `fragments` when some are
    discontinuous); `gold`: the reference spans (the same columns, without annotator);
    `texts`: article_id -> text; `labels`: the token categories, taken in sorted order as
    the agreement report does (it settles which of two equal-length spans a token takes).
    """
    labels = sorted(labels)
    rng = np.random.default_rng(seed)
    out = []
    for who, mine in done.drop_duplicates().groupby("annotator", sort=True):
        stats = [
            _article_stats(
                human[(human["annotator"] == who) & (human["article_id"] == art)],
                gold[gold["article_id"] == art],
                texts[art],
                labels,
                iou,
            )
            for art in sorted(mine["article_id"])
        ]
        out.append({"annotator": str(who), "articles": len(stats)} | _scores(stats, bootstrap, rng))
    return out


def _spans(df: pd.DataFrame) -> list[tuple]:
    """(label, start, end, fragments) per span: a discontinuous span matches as one unit."""
    frags = df["fragments"] if "fragments" in df else [None] * len(df)
    return list(
        zip(df["label"], df["start"].astype(int), df["end"].astype(int), frags, strict=True)
    )


def _categories(spans: list[tuple], text: str, starts, ends, labels: list[str]) -> np.ndarray:
    """One annotator's token categories, as the report makes them: a discontinuous span
    covers its fragments' tokens, and the innermost piece wins (equal lengths: first label)."""
    known = [s for s in spans if s[0] in labels]
    if not known:
        return np.zeros(len(starts), dtype=np.int64)
    of, lo, hi = fragment_pieces(
        [s[1] for s in known],
        [s[2] for s in known],
        [s[3] for s in known],
        np.full(len(known), len(text)),
    )
    lab = np.array([labels.index(s[0]) for s in known])[of]
    return token_categories(
        np.searchsorted(ends, lo, "right"),
        np.searchsorted(starts, hi, "left"),
        np.zeros(len(of), dtype=np.int64),
        hi - lo,
        lab,
        len(starts),
        1,
        len(labels),
    )[0]


def _article_stats(mine, ref, text: str, labels: list[str], iou: float) -> dict:
    """Additive counts of one article: span matches and sizes, token agreement and categories."""
    a, b = _spans(mine), _spans(ref)
    _, starts, ends, _ = tokenize([text])
    cat = np.stack([_categories(s, text, starts, ends, labels) for s in (a, b)])
    q = len(labels) + 1
    return {
        "match": len(align_spans(a, b, iou)),
        "match_exact": len(align_spans(a, b, 1.0)),
        "n": len(a) + len(b),
        # two coders per token: o_cc gets 2 for each token both put in category c
        "o_diag": 2.0 * float((cat[0] == cat[1]).sum()),
        "n_c": np.bincount(cat.ravel(), minlength=q).astype(float),
    }


def _scores(stats: list[dict], bootstrap: int, rng) -> dict:
    """Pooled figures and their bootstrap CIs (articles resampled with replacement)."""
    m = np.array([s["match"] for s in stats], dtype=float)
    me = np.array([s["match_exact"] for s in stats], dtype=float)
    n = np.array([s["n"] for s in stats], dtype=float)
    o = np.array([s["o_diag"] for s in stats])
    nc = np.stack([s["n_c"] for s in stats])
    idx = (
        rng.integers(0, len(stats), size=(bootstrap, len(stats)))
        if bootstrap and len(stats) > 1
        else None
    )

    def figure(fn) -> dict:
        value = float(fn(np.arange(len(stats))[None, :])[0])
        if idx is None:
            return {"value": value, "ci_low": float("nan"), "ci_high": float("nan")}
        reps = fn(idx)
        reps = reps[np.isfinite(reps)]
        low, high = np.quantile(reps, [0.025, 0.975]) if len(reps) else (np.nan, np.nan)
        return {"value": value, "ci_low": float(low), "ci_high": float(high)}

    def f1(match):
        return lambda ix: _div(2 * match[ix].sum(1), n[ix].sum(1))

    return {
        "span_f1": figure(f1(m)),
        "span_f1_exact": figure(f1(me)),
        "token_alpha": figure(lambda ix: _alpha_nominal_stats(o[ix].sum(1), nc[ix].sum(1))),
    }


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def parse_share(value: str | float | None, what: str = "--honeypots") -> float:
    """`5%`, `0.05` or `5` (percent when > 1) as a fraction in [0, 1]."""
    if value is None or value == "":
        return 0.0
    text = str(value).strip()
    try:
        x = float(text.rstrip("%"))
    except ValueError:
        raise SpanbankError(f"{what} must be a share like 5% or 0.05, got {value!r}") from None
    share = x / 100 if text.endswith("%") or x > 1 else x
    if not 0 <= share <= 1:
        raise SpanbankError(f"{what} must be between 0% and 100%, got {value!r}")
    return share


def corpus_honeypot_scores(
    corpus, project: str | None = None, labels=None, annotators=None, **options
) -> list[dict]:
    """`honeypot_scores` over the corpus's honeypot tasks (of `project`); [] when it has none.
    With `labels` only their spans are compared (tokens of other labels count as none); with
    `annotators` only theirs are scored.

    Each project's honeypot is its own check: an annotator's latest work on it in that
    project is scored, whatever they did on the same article elsewhere."""
    hp = honeypot_tasks(corpus, project)
    if hp.empty:
        return []
    units = hp.drop_duplicates(["project", "article_id"], keep="last")[
        ["project", "article_id", HONEYPOT_GOLD, "planned_at"]
    ]
    ref = units[HONEYPOT_GOLD].astype(str)
    pinned = ref.str.startswith(PINNED)
    units = units.assign(
        unit=units["project"].astype(str) + "\x1f" + units["article_id"],
        stored=ref.where(~pinned, ref.str[len(PINNED) :].str.rsplit("@", n=1).str[0]),
    )
    ann = corpus.read("annotations")
    made = live_annotations(ann).drop_duplicates("annotation_id", keep="last")
    made = made.set_index("annotation_id")
    made = made["updated_at"].fillna(made["created_at"])
    remade = set(units.loc[units["stored"].map(made) > units["planned_at"], "unit"])
    # a check without its gold has nothing to be scored against (a pinned copy is never gone)
    gone = set(units.loc[~pinned & ~units["stored"].isin(made.index), "unit"])
    human = pd.concat(
        [latest_per_annotator(ann, project=p) for p in units["project"].unique()]
    ).merge(units, on=["project", "article_id"])
    if annotators is not None:
        human = human[human["annotator"].isin(list(annotators))]
    lost = human[human["unit"].isin(gone)].groupby("annotator")["unit"].nunique()
    human = human[~human["unit"].isin(gone)]
    wanted = pd.concat([human["annotation_id"], ref[~pinned]]).dropna().unique()
    spans = corpus.read_in("spans", "annotation_id", wanted).to_pandas()  # not the whole table
    copies = corpus.read(HONEYPOT_SPANS)
    copies = copies[copies["annotation_id"].isin(set(ref[pinned]))].drop(columns=["project"])
    spans = pd.concat([spans, copies]).drop(columns=["article_id"])
    if labels is not None:  # the pinned copies too
        spans = spans[spans["label"].isin(list(labels))]
    mine = spans.merge(human[["annotation_id", "unit", "annotator"]], on="annotation_id")
    gold = spans.merge(
        units[[HONEYPOT_GOLD, "unit"]].rename(columns={HONEYPOT_GOLD: "annotation_id"}),
        on="annotation_id",
    )
    from spanbank.corpus.articles import attach_text

    texts = attach_text(corpus, units[["article_id"]].drop_duplicates())
    text_of = dict(zip(texts["article_id"], texts["text"], strict=True))
    scores = honeypot_scores(
        human[["annotator", "unit"]].rename(columns={"unit": "article_id"}),
        mine.rename(columns={"unit": "article_id"}),
        gold.rename(columns={"unit": "article_id"}),
        {u: text_of[a] for u, a in zip(units["unit"], units["article_id"], strict=True)},
        list(corpus.schema.labels) if labels is None else list(labels),
        **options,
    )
    moved = human[human["unit"].isin(remade)].groupby("annotator")["unit"].nunique()
    nothing = {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    scored = {h["annotator"] for h in scores}
    scores += [  # annotators whose every check lost its gold: still named, with no figure
        {"annotator": str(a), "articles": 0}
        | dict.fromkeys(("span_f1", "span_f1_exact", "token_alpha"), nothing)
        for a in sorted(set(lost.index) - scored)
    ]
    return [
        h
        | {
            "gold_remade": int(moved.get(h["annotator"], 0)),
            "gold_gone": int(lost.get(h["annotator"], 0)),
        }
        for h in scores
    ]
