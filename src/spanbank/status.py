"""Corpus counts for `spanbank status`: articles, annotations by origin, per-project sync state."""

from __future__ import annotations

import pandas as pd

from spanbank.corpus import Corpus


def corpus_status(corpus: Corpus) -> dict:
    """Counts a user checks before and after each step; no e-mails, no keys."""
    corpus.require()
    articles = corpus.read_arrow("articles", columns=["article_id"]).num_rows
    ann = corpus.read("annotations")
    tasks = corpus.read("tasks")
    live = ann[~ann["superseded"].fillna(False).astype(bool) & ann["deleted_at"].isna()]
    out = {
        "corpus": str(corpus.path),
        "schema": corpus.schema.ident,
        "articles": articles,
        "annotations": {str(k): int(v) for k, v in live["origin"].value_counts().sort_index().items()},
        "spans": corpus.read_arrow("spans", columns=["span_id"]).num_rows,
        "rejects": corpus.read_arrow("rejects", columns=["reason"]).num_rows,
        "projects": [],
    }
    conflicts = corpus.read("conflicts")  # tables other commands add: empty when absent
    projects_df = corpus.read("projects")
    projects = sorted(set(tasks["project"].dropna()) | set(live["project"].dropna()))
    for project in projects:
        t = tasks[tasks["project"] == project]
        is_review = len(projects_df) and "kind" in projects_df and (
            projects_df.loc[projects_df["project"] == project, "kind"] == "review").any()
        # a review project's annotations are stored as gold (annotator gold:review), not human
        origin, who = ("gold", "reviewer") if is_review else ("human", "annotator")
        human = live[(live["project"] == project) & (live["origin"] == origin) & ~live["cancelled"].fillna(False).astype(bool)]
        if who not in human:
            who = "annotator"
        annotated = set(human["article_id"])
        pulled = ann.loc[ann["project"] == project, "pulled_at"].max()
        if len(projects_df) and "last_pull_at" in projects_df:
            pulled = projects_df.loc[projects_df["project"] == project, "last_pull_at"].max()
        gold = live[(live["origin"] == "gold") & live["article_id"].isin(set(t["article_id"]))]
        row = {
            "project": project,
            "pushed": int(t["article_id"].nunique()),
            "annotated": len(annotated),
            "pending": int(len(set(t["article_id"]) - annotated)),
            "annotators": int(human[who].nunique()),
            "last_pull": None if pd.isna(pulled) else pulled.isoformat(),
            "adjudicated": int(gold["article_id"].nunique()),
            "reviewed": int(gold.loc[gold["annotator"] == "gold:review", "article_id"].nunique()),
        }
        if len(conflicts) and "article_id" in conflicts:
            row["with_conflicts"] = int(conflicts.loc[conflicts["article_id"].isin(set(t["article_id"])), "article_id"].nunique())
        out["projects"].append(row)
    return out
