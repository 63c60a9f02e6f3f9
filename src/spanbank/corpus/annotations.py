"""Which annotations count: the one live / latest-per-annotator selection, origins, project records."""

from __future__ import annotations

import numpy as np
import pandas as pd

from spanbank.corpus.tables import PROJECT_COLUMNS, PROJECTS_TABLE

HUMAN_ORIGINS = (
    "human",
    "import",
)  # annotations people made (in Label Studio or imported from brat)
GOLD_ORIGIN = "gold"
REVIEW_ANNOTATOR = "gold:review"  # the gold annotator of a review project's verdicts
REVIEW_KIND = (
    "review"  # projects.kind of a review project (spanbank.labelstudio.review); null: annotation
)
TASK_PLANS = "task_plans"  # per planned task: overlap, honeypot, honeypot_gold (corpus.tables)
HONEYPOT = "honeypot"  # task_plans column: the task is a gold check
HONEYPOT_GOLD = "honeypot_gold"  # task_plans column: the gold annotation it is checked against
# annotations.invalid_reason of an annotation made on a task whose text was edited in Label Studio
TEXT_EDITED = "task text in Label Studio differs from the article text"


def _flag(ann: pd.DataFrame, column: str) -> np.ndarray:
    """A nullable boolean column as a plain bool array (missing column or value = False)."""
    if column not in ann:
        return np.zeros(len(ann), dtype=bool)
    return np.asarray(ann[column].fillna(False).astype(bool), dtype=bool)


def _null(ann: pd.DataFrame, column: str) -> np.ndarray:
    """Whether each row's `column` is null (a missing column counts as null)."""
    if column not in ann:
        return np.ones(len(ann), dtype=bool)
    return np.array(ann[column].isna(), dtype=bool)


def not_superseded(ann: pd.DataFrame) -> np.ndarray:
    """Rows that are an annotation's newest stored version (deleted or not)."""
    return ~_flag(ann, "superseded")


def current_mask(ann: pd.DataFrame) -> np.ndarray:
    """Rows in force: newest version and not deleted (a skipped annotation is still current)."""
    return not_superseded(ann) & _null(ann, "deleted_at")


def live_mask(ann: pd.DataFrame, origins=None) -> np.ndarray:
    """Rows that count: current, not skipped, not invalid (pulled from a task whose text was
    edited in Label Studio), and of `origins` (None: any)."""
    keep = current_mask(ann) & ~_flag(ann, "cancelled") & _null(ann, "invalid_reason")
    if origins is not None:
        keep &= np.array(ann["origin"].isin(list(origins)), dtype=bool)
    return keep


def rows_at(df: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """`df`'s rows where the boolean `rows` is true, or at the positions `rows`; `df` itself
    when that is all of them in order (the common case: copies of the whole annotations table
    were most of a gold selection's memory)."""
    if rows.dtype == bool:
        return df if rows.all() else df[rows]
    if len(rows) == len(df) and (rows == np.arange(len(df))).all():
        return df
    return df.take(rows)


def live_annotations(ann: pd.DataFrame, origins=None) -> pd.DataFrame:
    """Rows of an annotations frame not superseded, deleted, skipped or invalid (of `origins`; None: any)."""
    return rows_at(ann, live_mask(ann, origins))


def latest_per_annotator(
    ann: pd.DataFrame, project=None, annotators=None, origins=HUMAN_ORIGINS
) -> pd.DataFrame:
    """The live annotations of `origins`, one per (article, annotator): the last by
    updated_at/created_at/version; optionally of one project and some annotators only."""
    keep = live_mask(ann, origins)
    if project is not None and "project" in ann:
        keep &= np.array(ann["project"] == project, dtype=bool)
    if annotators is not None:
        keep &= np.array(ann["annotator"].isin(list(annotators)), dtype=bool)
    # positions first, from the key columns only; the rows are taken once (or not at all)
    rows = np.flatnonzero(keep)
    order = [c for c in ("updated_at", "created_at", "version") if c in ann]
    if order:
        by = ann[order].take(rows).reset_index(drop=True)
        rows = rows[by.sort_values(order, kind="stable", na_position="first").index.to_numpy()]
    again = ann[["article_id", "annotator"]].take(rows).duplicated(keep="last").to_numpy()
    return rows_at(ann, rows[~again])


# ======================================================================== project records
def project_records(corpus) -> pd.DataFrame:
    """The `projects` table (empty with its columns when the corpus has none yet)."""
    df = corpus.read(PROJECTS_TABLE)
    if df.empty or "project" not in df.columns:
        return pd.DataFrame(columns=PROJECT_COLUMNS)
    return df


def save_project(writer, corpus, **fields) -> None:
    """Insert or update the `projects` record of (fields["project"], fields["ls_url"]).

    None fields keep their value, and so does an existing record's `created_at`.
    """
    rows = project_records(corpus).to_dict("records")
    key = (fields["project"], fields["ls_url"])
    for row in rows:
        if (row["project"], row["ls_url"]) == key:
            keep = {"created_at"} if pd.notna(row.get("created_at")) else set()
            row.update({k: v for k, v in fields.items() if v is not None and k not in keep})
            break
    else:
        rows.append({"pull_cursor": None, "last_pull_at": None} | fields)
    df = pd.DataFrame(rows)
    for col in ("created_at", "pull_cursor", "last_pull_at"):
        df[col] = pd.to_datetime(df[col], utc=True).astype("datetime64[us, UTC]")
    df["ls_project_id"] = df["ls_project_id"].astype("int64")
    writer.replace(PROJECTS_TABLE, df)


def task_plans(corpus, project: str | None = None) -> pd.DataFrame:
    """The corpus's task plans (of `project`), the latest per (project, article); empty when none."""
    plans = corpus.read(TASK_PLANS)
    if plans.empty or "project" not in plans:
        return plans
    if project is not None:
        plans = plans[plans["project"] == project]
    return plans.drop_duplicates(["project", "article_id"], keep="last")


def honeypot_tasks(corpus, project: str | None = None) -> pd.DataFrame:
    """Task rows pushed as honeypots (of `project`); empty when the corpus has none."""
    plans = task_plans(corpus, project)
    if HONEYPOT not in plans:
        return pd.DataFrame(columns=["project", "article_id", HONEYPOT, HONEYPOT_GOLD])
    return plans[plans[HONEYPOT].fillna(False).astype(bool)]


def without_honeypot_work(corpus, ann: pd.DataFrame) -> pd.DataFrame:
    """`ann` minus annotations made on honeypot tasks: they check annotators against gold the
    article already has, so they never become its gold a second time."""
    hp = honeypot_tasks(corpus)
    if hp.empty or ann.empty:
        return ann
    keys = pd.MultiIndex.from_frame(hp[["project", "article_id"]].astype(object))
    mine = pd.MultiIndex.from_frame(ann[["project", "article_id"]].astype(object))
    return ann[~mine.isin(keys)]
