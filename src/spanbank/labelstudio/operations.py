"""A push with an annotation plan: honeypots mixed into the batch, overlap on a budgeted share.

Wraps `push.push_batch` without changing it: the batch push would send is selected first
(`push.select_batch`), honeypot articles (with stored gold) are added to it and pushed in the
same import, in corpus order (so they do not sit at the end of the queue); then each task's
`overlap` is set (spanbank.labelstudio.overlap) and the plan recorded in `task_plans`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from spanbank.corpus.annotations import HONEYPOT, HONEYPOT_GOLD, TASK_PLANS
from spanbank.corpus.articles import article_meta
from spanbank.corpus.tables import EXTRA_TABLES
from spanbank.errors import SpanbankError
from spanbank.gold import select_annotations
from spanbank.honeypots import parse_share
from spanbank.labelstudio.overlap import apply_overlap, plan_overlap
from spanbank.labelstudio.push import push_batch, select_batch
from spanbank.labelstudio.workflow import Workflow, connect, utc_now


def push_planned(
    corpus,
    project: str,
    *,
    overlap: int | None = None,
    overlap_share: float | None = None,
    stratify: str | None = None,
    honeypots: str | float | None = None,
    seed: int = 0,
    client=None,
    url: str | None = None,
    api_key: str | None = None,
    ids=None,
    where: str | None = None,
    sample: int | None = None,
    batch_size: int | None = None,
    **push_options,
) -> Workflow:
    """`push_batch` plus `honeypots` (a share of the batch, e.g. "5%") and `overlap_share` (the
    share of the batch's articles that get `overlap` annotators; the rest get one)."""
    if overlap_share is not None and (overlap or 1) < 2:
        raise SpanbankError("--overlap-share needs --overlap 2 or more")
    if stratify is not None and overlap_share is None:
        raise SpanbankError("--stratify applies to --overlap-share; give both")
    client = client or connect(url, api_key)
    batch, _ = select_batch(
        corpus, project, client.url, ids=ids, where=where, sample=sample, seed=seed,
        batch_size=batch_size,
    )  # fmt: skip
    pushed = _pushed(corpus, project, client.url)
    hp = pick_honeypots(corpus, batch, parse_share(honeypots), seed, pushed)
    wanted = list(batch["article_id"]) + list(hp["article_id"])
    if not wanted:  # nothing new: let push say so in its own words
        return (yield from push_batch(corpus, project, client=client, overlap=overlap,
                                      ids=ids, where=where, sample=sample, seed=seed,
                                      batch_size=batch_size, **push_options))  # fmt: skip
    summary = yield from push_batch(
        corpus, project, client=client, overlap=overlap, ids=wanted, seed=seed, **push_options
    )
    if summary.get("dry_run"):
        summary["honeypots"] = len(hp)
        return summary
    tasks = corpus.read("tasks")
    tasks = tasks[(tasks["batch_id"] == summary["batch_id"]) & tasks["article_id"].isin(wanted)]
    multi = set(hp["article_id"])  # every annotator the project allows checks against gold
    if overlap_share is not None:
        meta = article_meta(corpus)
        mine = meta[meta["article_id"].isin(set(batch["article_id"]))]
        multi |= plan_overlap(mine, overlap_share, seed, stratify)
    else:
        multi |= set(tasks["article_id"])
    planned = apply_overlap(client, tasks, multi, overlap or 1)
    gold = hp.set_index("article_id")[HONEYPOT_GOLD] if len(hp) else pd.Series(dtype=object)
    rows = tasks[["project", "ls_url", "article_id", "ls_task_id", "batch_id"]].assign(
        overlap=planned.astype("int64").to_numpy(),
        **{
            HONEYPOT: tasks["article_id"].isin(set(hp["article_id"])).to_numpy(),
            HONEYPOT_GOLD: tasks["article_id"].map(gold).to_numpy(),
        },
        planned_at=utc_now(),
    )
    schema = EXTRA_TABLES[TASK_PLANS]
    with corpus.writer(push_options.get("wait", False)) as w:
        w.append(TASK_PLANS, pa.Table.from_pandas(rows[schema.names], schema, preserve_index=False))
    summary["honeypots"] = int(rows[HONEYPOT].sum())
    summary["overlap_planned"] = {
        str(k): int(v) for k, v in rows["overlap"].value_counts().sort_index().items()
    }
    return summary


def _pushed(corpus, project: str, ls_url: str) -> set:
    """Articles already pushed to `project` on `ls_url` (a honeypot must be new to the project)."""
    tasks = corpus.read("tasks", columns=["project", "ls_url", "article_id"])
    mine = tasks[(tasks["project"] == project) & (tasks["ls_url"] == ls_url.rstrip("/"))]
    return set(mine["article_id"])


def pick_honeypots(
    corpus, batch: pd.DataFrame, share: float, seed: int, pushed: set
) -> pd.DataFrame:
    """Articles with stored gold to mix into `batch` (not in it, not in `pushed`): round(share ×
    batch size), at least one when share > 0; columns of `batch` plus HONEYPOT_GOLD."""
    want = int(np.floor(share * len(batch) + 0.5)) or (1 if share > 0 and len(batch) else 0)
    if not want:
        return batch.iloc[:0].assign(**{HONEYPOT_GOLD: pd.Series(dtype=object)})
    gold = select_annotations(corpus)
    gold = gold[gold["selection"].isin(["review", "gold"])]
    gold = gold[~gold["article_id"].isin(set(batch["article_id"]) | set(pushed))]
    if gold.empty:
        raise SpanbankError(
            "--honeypots needs articles with stored gold that this project has not had yet; "
            "run `spanbank adjudicate` (or review) first"
        )
    rng = np.random.default_rng(seed)
    gold = gold.sort_values("article_id").iloc[rng.permutation(len(gold))[:want]]
    meta = article_meta(corpus)
    rows = meta[meta["article_id"].isin(set(gold["article_id"]))]
    ref = gold.set_index("article_id")["annotation_id"]
    return rows[[c for c in batch.columns if c in rows]].assign(
        **{HONEYPOT_GOLD: rows["article_id"].map(ref).to_numpy()}
    )
