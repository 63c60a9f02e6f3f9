"""Annotation throughput and cost from `lead_time_s` and timestamps: per annotator, per label, per day."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from spanbank.corpus.annotations import live_annotations
from spanbank.corpus.articles import IdSet

# Label Studio records lead time only for work done in its editor; imports and gold have none.
TIMED_ORIGINS = ("human",)
# the annotations columns gold_cost reads: what makes a row live, whose and how long it took
COST_COLUMNS = (
    "project",
    "article_id",
    "origin",
    "lead_time_s",
    "superseded",
    "deleted_at",
    "cancelled",
    "invalid_reason",
)
QUANTILES = (0.1, 0.5, 0.9)


def throughput(ann: pd.DataFrame, spans: pd.DataFrame, project: str | None = None) -> dict:
    """Articles/hour, seconds per span, lead-time distribution and per-day trend of live human work.

    `ann` and `spans` are the corpus tables (spans need `annotation_id` and `label`). Only live
    annotations with a lead time count; an annotation's time is shared equally among its spans
    for the per-label seconds per span (Label Studio does not time single regions).
    """
    timed = _timed(ann, project)
    per_ann = _span_counts(spans, timed["annotation_id"])
    timed = timed.assign(spans=per_ann.to_numpy())
    return {
        "annotations": len(timed),
        "hours": round(float(timed["lead_time_s"].sum()) / 3600, 4),
        "overall": _rates(timed),
        "per_annotator": {
            str(a): _rates(g) | {"per_day": _per_day(g)}
            for a, g in timed.groupby("annotator", sort=True)
        },
        "per_label": _per_label(timed, spans),
        "per_day": _per_day(timed),
    }


def gold_cost(ann, article_ids, project: str | None = None) -> dict:
    """Live human annotation time spent on `article_ids` (ids, or an IdSet of them: what their
    gold cost people). `ann`: a frame, or frames one after another (the table a batch at a
    time), with COST_COLUMNS."""
    wanted = article_ids if isinstance(article_ids, IdSet) else None
    mine = []
    for frame in [ann] if isinstance(ann, pd.DataFrame) else ann:
        timed = _timed(frame, project)
        if not len(timed):
            continue
        if wanted is None:  # indexed only once some annotation has a lead time
            wanted = IdSet(pa.array(article_ids, type=pa.string(), from_pandas=True))
        ids = pa.array(timed["article_id"], type=pa.string(), from_pandas=True)
        mine.append(timed["lead_time_s"][wanted.positions(ids) >= 0])
    # one array summed once: the same sum as the whole table's
    seconds = float(pd.concat(mine).sum()) if mine else 0.0
    return {
        "annotations": sum(map(len, mine)),
        "seconds": round(seconds, 3),
        "hours": round(seconds / 3600, 4),
    }


def timed_ids(ann: pd.DataFrame, project: str | None = None) -> pd.Series:
    """The ids of the annotations `throughput` times (it reads only their spans)."""
    return _timed(ann, project)["annotation_id"]


def _timed(ann: pd.DataFrame, project: str | None) -> pd.DataFrame:
    """Live human annotations with a positive lead time (of `project` when given)."""
    if ann.empty or "lead_time_s" not in ann:
        return pd.DataFrame(
            columns=["annotation_id", "article_id", "annotator", "lead_time_s", "created_at"]
        )
    live = live_annotations(ann, TIMED_ORIGINS)
    if project is not None:
        live = live[live["project"] == project]
    lead = pd.to_numeric(live["lead_time_s"], errors="coerce")
    return live[lead.notna().to_numpy() & (lead > 0).to_numpy()].assign(
        lead_time_s=lead[lead > 0].astype("float64")
    )


def _span_counts(spans: pd.DataFrame, annotation_ids: pd.Series) -> pd.Series:
    """Spans per annotation id, in the order of `annotation_ids` (0 when it has none)."""
    if spans.empty:
        return pd.Series(np.zeros(len(annotation_ids), dtype="int64"))
    counts = spans["annotation_id"].value_counts()
    return counts.reindex(annotation_ids.to_numpy(), fill_value=0).astype("int64")


def _rates(g: pd.DataFrame) -> dict:
    """Rates of one group of timed annotations (one row each)."""
    seconds = float(g["lead_time_s"].sum())
    n_spans = int(g["spans"].sum()) if "spans" in g else 0
    lead = g["lead_time_s"].to_numpy(dtype="float64")
    return {
        "articles": int(g["article_id"].nunique()),
        "annotations": len(g),
        "spans": n_spans,
        "seconds": round(seconds, 3),
        # distinct articles: pooled over annotators, each article counts once (hunt L, 9)
        "articles_per_hour": _ratio(g["article_id"].nunique() * 3600, seconds),
        "annotations_per_hour": _ratio(len(g) * 3600, seconds),
        "seconds_per_span": _ratio(seconds, n_spans),
        "seconds_per_annotation": _distribution(lead),  # one annotator on one article
    }


def _distribution(values: np.ndarray) -> dict:
    """Mean and 10/50/90th percentiles of `values` (nulls when empty)."""
    if len(values) == 0:
        return {"mean": None} | {f"p{int(q * 100)}": None for q in QUANTILES}
    qs = np.quantile(values, QUANTILES)
    return {"mean": round(float(values.mean()), 3)} | {
        f"p{int(q * 100)}": round(float(v), 3) for q, v in zip(QUANTILES, qs, strict=True)
    }


def _per_label(timed: pd.DataFrame, spans: pd.DataFrame) -> dict:
    """Per label: spans drawn, seconds attributed (annotation time shared by its spans), s/span."""
    if timed.empty or spans.empty:
        return {}
    share = timed.loc[timed["spans"] > 0].set_index("annotation_id")
    share = share["lead_time_s"] / share["spans"]
    mine = spans[spans["annotation_id"].isin(share.index)]
    secs = mine["annotation_id"].map(share)
    out = {}
    for label, s in secs.groupby(mine["label"], sort=True):
        out[str(label)] = {
            "spans": len(s),
            "seconds": round(float(s.sum()), 3),
            "seconds_per_span": _ratio(float(s.sum()), len(s)),
        }
    return out


def _per_day(g: pd.DataFrame) -> list[dict]:
    """Per UTC day of `created_at`: annotations, hours, articles/hour and annotations/hour (the
    trend)."""
    if g.empty:
        return []
    day = pd.to_datetime(g["created_at"], utc=True).dt.strftime("%Y-%m-%d")
    rows = []
    for d, part in g.groupby(day.to_numpy(), sort=True):
        seconds = float(part["lead_time_s"].sum())
        rows.append(
            {
                "day": str(d),
                "annotations": len(part),
                "hours": round(seconds / 3600, 4),
                "articles_per_hour": _ratio(part["article_id"].nunique() * 3600, seconds),
                "annotations_per_hour": _ratio(len(part) * 3600, seconds),
            }
        )
    return rows


def _ratio(num: float, den: float) -> float | None:
    """num/den rounded, None when den is 0."""
    return round(num / den, 3) if den else None
