"""Overlap by budget: which of a batch's tasks get several annotators, set per task in Label Studio.

Label Studio's own `overlap_cohort_percentage` picks the multiply-annotated tasks itself (not
reproducibly, not stratified) and re-picks over the whole project at every import, so spanbank
keeps it at 100 and writes each task's `overlap` instead: the project's maximum_annotations for
the chosen share, 1 for the rest. Verified on Label Studio 1.23.2 (tests/test_overlap.py): a
task's `overlap` is writable through the API, survives later imports, and the labeling queue
hands an overlap-2 task to a second annotator and an overlap-1 task to one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from spanbank.errors import SpanbankError

if TYPE_CHECKING:  # the client pulls in the Label Studio SDK; status only needs the column name
    from spanbank.labelstudio.client import LabelStudioClient

OVERLAP_COLUMN = "overlap"  # task_plans column: annotators planned for the task


def plan_overlap(
    articles: pd.DataFrame, share: float, seed: int = 0, stratify: str | None = None
) -> set[str]:
    """The article_ids of `articles` that get the full overlap: round(share × n), reproducible
    for a seed; with `stratify`, each value of that column gets its proportional part
    (largest remainders), so every source is represented in the agreement subset."""
    if not 0 <= share <= 1:
        raise SpanbankError(f"--overlap-share must be between 0 and 1, got {share:g}")
    if stratify is not None and stratify not in articles:
        raise SpanbankError(f"--stratify {stratify!r} is not an articles column")
    ids = articles.sort_values("article_id", kind="stable")
    total = int(np.floor(share * len(ids) + 0.5))
    # as text, so that a missing value of any type (None, NaN, NaT) is one stratum of its own
    key = ids[stratify].astype("string").fillna("") if stratify else np.zeros(len(ids))
    groups = ids.groupby(key, sort=True)
    sizes = groups.size()
    exact = sizes * total / max(len(ids), 1)
    take = np.floor(exact).astype(int)
    rest = total - int(take.sum())
    order = (exact - take).sort_values(ascending=False, kind="stable").index[:rest]
    take[order] += 1
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    for key, part in groups:
        pick = rng.permutation(len(part))[: int(take[key])]
        chosen.update(part["article_id"].iloc[pick].astype(str))
    return chosen


def apply_overlap(client: LabelStudioClient, tasks: pd.DataFrame, planned, base: int) -> pd.Series:
    """Set each task's (`article_id`, `ls_task_id`) overlap to its article's in `planned`
    (article_id -> annotators; 1 for an article it lacks), PATCHing only those that differ from
    `base`, the project's maximum_annotations, which imported tasks carry; returns the planned
    overlap per row of `tasks`."""
    want = tasks["article_id"].map(planned).fillna(1).astype("int64")
    for tid, n in zip(tasks["ls_task_id"], want, strict=True):
        if n != base:
            client.request(
                "PATCH", f"api/tasks/{int(tid)}/", json_body={"overlap": int(n)}, idempotent=True
            )
    return want
