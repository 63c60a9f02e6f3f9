"""Corpus counts for `spanbank status`: articles, live annotations, and where each project stands."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spanbank.corpus.annotations import (
    REVIEW_ANNOTATOR,
    REVIEW_KIND,
    current_mask,
    live_annotations,
    task_plans,
)
from spanbank.corpus.store import Corpus
from spanbank.gold import current_gold, stale_articles
from spanbank.honeypots import corpus_honeypot_scores
from spanbank.labelstudio.overlap import OVERLAP_COLUMN
from spanbank.throughput import throughput, timed_ids

DEFAULT_OVERLAP = 1  # Label Studio's maximum_annotations when a project sets none
STATUS_BOOTSTRAP = 200  # resamples for the honeypot CIs status shows (agree uses its --bootstrap)


def corpus_status(corpus: Corpus) -> dict:
    """Counts a user checks before and after each step; no e-mails, no keys.

    Annotations and spans are counted over live annotations only (not superseded, deleted
    or skipped); per project: tasks, coverage against the overlap, per-annotator progress,
    and gold, reviews and conflicts of that project alone.
    """
    corpus.require()
    ann = corpus.read("annotations")
    live = live_annotations(ann)
    span_counts = _spans_per_annotation(corpus, live["annotation_id"])
    skipped = ann[current_mask(ann) & ann["cancelled"].fillna(False).astype(bool).to_numpy()]
    tasks = corpus.read("tasks")
    records = corpus.read("projects")
    conflicts = corpus.read("conflicts")  # tables other commands add: empty when absent
    gold = _gold_of(live)
    current = current_gold(corpus, gold, live)  # once: each project's count reads it
    projects = sorted(
        set(tasks["project"].dropna().unique()) | set(live["project"].dropna().unique())
    )
    # the spans throughput counts: those of timed work, not the table's
    labelled = corpus.read_in(
        "spans", "annotation_id", timed_ids(ann), ["annotation_id", "label"]
    ).to_pandas()
    plans = task_plans(corpus)
    log = corpus.commits()
    return {
        "corpus": str(corpus.path.resolve()),
        "schema": corpus.schema.ident,
        # the commit this status reads (`--as-of` it, or the latest)
        "commit": int(log["commit"].iloc[-1]) if len(log) else None,
        "articles": corpus.read_arrow("articles", columns=["article_id"]).num_rows,
        "annotations": {
            str(k): int(v) for k, v in live["origin"].value_counts().sort_index().items()
        },
        "skipped": len(skipped),
        "stale_gold": len(stale_articles(corpus, gold, live, current)),
        "spans": int(span_counts.sum()),
        "rejects": corpus.read_arrow("rejects", columns=["reason"]).num_rows,
        "projects": [
            _project_status(
                p, tasks, live, skipped, span_counts, records, conflicts, current, plans
            )
            | {
                "throughput": throughput(ann, labelled, p)["overall"],
                "honeypots": corpus_honeypot_scores(corpus, p, bootstrap=STATUS_BOOTSTRAP),
                **_multi_annotated(p, tasks, live, records, plans),
            }
            for p in projects
        ],
        "throughput": throughput(ann, labelled),
    }


def _spans_per_annotation(corpus: Corpus, live_ids: pd.Series) -> pd.Series:
    """Span count per live annotation id (superseded, deleted or skipped versions' spans left
    out), counted a batch of the table at a time: memory holds counts, not spans."""
    parts = [pc.value_counts(b.column(0)) for b in corpus.iter_batches("spans", ["annotation_id"])]
    if not parts:
        return pd.Series(0, index=live_ids.to_numpy(), dtype="int64")
    per_batch = pa.concat_arrays(parts)  # an annotation's spans may straddle two batches
    counts = (
        pa.table({"id": per_batch.field("values"), "n": per_batch.field("counts")})
        .group_by("id")
        .aggregate([("n", "sum")])
    )
    counts = pd.Series(
        counts.column("n_sum").to_numpy(), index=counts.column("id").to_pandas(), dtype="int64"
    )
    return counts.reindex(live_ids.to_numpy(), fill_value=0)


def _record(records: pd.DataFrame, project: str) -> dict:
    """The project's latest `projects` record as a dict ({} when it has none)."""
    if records.empty or "project" not in records:
        return {}
    rec = records[records["project"] == project]
    return {} if rec.empty else rec.iloc[-1].to_dict()


def _gold_of(live: pd.DataFrame) -> pd.DataFrame:
    """Adjudicated gold (not reviewed gold: that is counted as reviews)."""
    return live[(live["origin"] == "gold") & (live["annotator"] != REVIEW_ANNOTATOR)]


def _project_status(
    project, tasks, live, skipped, span_counts, records, conflicts, current, plans
) -> dict:
    """One project's row of `corpus_status`."""
    rec = _record(records, project)
    t = tasks[tasks["project"] == project]
    articles = pd.Index(t["article_id"].unique())  # pushed
    is_review = rec.get("kind") == REVIEW_KIND
    # a review project's annotations are stored as gold (annotator gold:review), not human
    origin, who = ("gold", "reviewer") if is_review else ("human", "annotator")
    mine = live[(live["project"] == project) & (live["origin"] == origin)]
    if who not in mine:
        who = "annotator"
    overlap = _overlap(rec)
    per_article = mine.groupby("article_id")[who].nunique()
    per_article = per_article.reindex(articles.union(per_article.index), fill_value=0)
    planned = _planned(project, tasks, records, plans).reindex(per_article.index)
    missing = planned.fillna(overlap or DEFAULT_OVERLAP).astype("int64") - per_article
    missing = missing[missing > 0]
    gold = _gold_of(live[live["project"] == project])
    stale = stale_articles(None, gold, live, current)
    pulled = rec.get("last_pull_at")
    if pulled is None or pd.isna(pulled):
        pulled = live.loc[live["project"] == project, "pulled_at"].max()
    row = {
        "project": project,
        "kind": "review" if is_review else "annotation",
        "tasks": int(t[["ls_url", "ls_task_id"]].drop_duplicates().shape[0]),
        "pushed": len(articles),
        "annotated": int((per_article > 0).sum()),
        "pending": int((per_article.reindex(articles) == 0).sum()),
        "overlap": overlap,
        "needs_more": {str(k): int(v) for k, v in missing.value_counts().sort_index().items()},
        "under_annotated": len(missing),
        "annotators": int(mine[who].nunique()),
        "progress": _progress(mine, skipped[skipped["project"] == project], who, len(articles)),
        "spans": int(span_counts.reindex(mine["annotation_id"]).fillna(0).sum()),
        "last_pull": None if pd.isna(pulled) else pd.Timestamp(pulled).isoformat(),
        "adjudicated": int(gold["article_id"].nunique()) - len(stale),
        "stale_gold": len(stale),
        "reviewed": int(_reviews_of(live, project)["article_id"].nunique()),
        **_conflicts_of(conflicts, project),
    }
    if is_review:
        row["review_of"] = rec.get("review_of")
    return row


def _multi_annotated(project, tasks, live, records, plans) -> dict:
    """Articles planned for several annotators (per-task `overlap` from push --overlap-share, else
    the project's overlap) and how many of them have all their annotators."""
    planned = _planned(project, tasks, records, plans)
    multi = planned[planned >= 2]
    done = live[(live["project"] == project) & (live["origin"] == "human")]
    have = done.groupby("article_id")["annotator"].nunique().reindex(multi.index, fill_value=0)
    return {"multi_planned": len(multi), "multi_done": int((have >= multi).sum())}


def _planned(project, tasks, records, plans) -> pd.Series:
    """Annotators each pushed article of `project` should get: its task's planned `overlap`
    (push --overlap-share, --honeypots), else the project's."""
    t = tasks[tasks["project"] == project].drop_duplicates("article_id", keep="last")
    project_overlap = _overlap(_record(records, project)) or DEFAULT_OVERLAP
    planned = pd.Series(float(project_overlap), index=t["article_id"].to_numpy())
    if OVERLAP_COLUMN in plans:
        mine = plans[plans["project"] == project].drop_duplicates("article_id", keep="last")
        mine = mine.set_index("article_id")[OVERLAP_COLUMN]
        planned.update(pd.to_numeric(mine, errors="coerce").dropna())
    return planned


def _overlap(rec: dict) -> int | None:
    """Annotators per task asked of the project (its Label Studio maximum_annotations), if recorded."""
    value = rec.get("maximum_annotations", rec.get("overlap"))
    return None if value is None or pd.isna(value) else int(value)


def _progress(mine: pd.DataFrame, skipped: pd.DataFrame, who: str, assigned: int) -> list[dict]:
    """Per annotator: articles done, skipped, and assigned (Label Studio offers every task to every
    annotator until it has its overlap, so each is assigned the project's tasks)."""
    done = mine.groupby(who)["article_id"].nunique()
    skips = (
        skipped.groupby(who)["article_id"].nunique() if who in skipped else pd.Series(dtype="int64")
    )
    names = sorted(set(done.index) | set(skips.index))
    return [
        {
            "annotator": a,
            "done": int(done.get(a, 0)),
            "skipped": int(skips.get(a, 0)),
            "assigned": assigned,
        }
        for a in names
    ]


def _reviews_of(live: pd.DataFrame, project: str) -> pd.DataFrame:
    """Live reviewed gold of `project` (pulled from its review project)."""
    reviews = live[live["annotator"] == REVIEW_ANNOTATOR]
    if "review_of" in reviews:
        return reviews[reviews["review_of"] == project]
    return reviews.iloc[:0]


def _conflicts_of(conflicts: pd.DataFrame, project: str) -> dict:
    """Conflicts adjudication recorded for `project` (rows, and articles with any)."""
    if conflicts.empty or "project" not in conflicts:
        return {"conflicts": 0, "with_conflicts": 0}
    mine = conflicts[conflicts["project"] == project]
    return {"conflicts": len(mine), "with_conflicts": int(mine["article_id"].nunique())}
