"""A push with an annotation plan: honeypots mixed into the batch, overlap on a budgeted share.

Wraps `push.push_batch` without changing it: the batch push would send is selected first
(`push.select_batch`), honeypot articles (with stored gold) are added to it and pushed in the
same import, each at a seeded place among the batch's articles (Label Studio hands tasks out in
the order they were imported: in corpus order, gold articles, older than a batch, sat at the
head of the queue, where every annotator met them first); then each task's
`overlap` is set (spanbank.labelstudio.overlap). The plan is recorded in `task_plans` before
the import (rows without a task id) and again once the overlaps are set: a planned push stopped
in between (Ctrl-C, a kill, a server error) is finished by the next planned push to the
project, which pushes what is left of that plan and sets its overlaps, instead of a new batch.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pyarrow as pa

from spanbank.corpus.annotations import HONEYPOT, HONEYPOT_GOLD, TASK_PLANS, task_plans
from spanbank.corpus.articles import article_meta
from spanbank.corpus.tables import EXTRA_TABLES, HONEYPOT_SPANS, ON_DEMAND_TABLES
from spanbank.errors import SpanbankError
from spanbank.gold import select_annotations
from spanbank.honeypots import PINNED, parse_share
from spanbank.labelstudio import identity
from spanbank.labelstudio.overlap import apply_overlap, plan_overlap
from spanbank.labelstudio.push import check_push, push_batch, select_batch
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
    share of the batch's articles that get `overlap` annotators; the rest get one).

    Each task's overlap is set as planned; the project's maximum_annotations is set only when
    the project is created (Label Studio sets every earlier task of overlap > 1 to a new
    maximum). A plan stopped half-way is finished with its own overlaps by the next planned
    push, which must not ask for another `overlap`."""
    if stratify is not None and overlap_share is None:
        raise SpanbankError("--stratify applies to --overlap-share; give both")
    check_push(corpus, project, overlap, push_options.get("preannotate"))  # before a plan
    client = client or connect(url, api_key)
    # one writer throughout: a planned push queued behind this one (--wait) sees its plan
    with (
        contextlib.nullcontext()
        if push_options.get("dry_run")
        else corpus.writer(push_options.get("wait", False))
    ) as held:
        moved = None
        if held is not None:  # a server found on a new URL: its records (plans too) follow first
            moved = identity.resolve_server(client, corpus, held).moved_from
        plan = _unfinished(corpus, project, client.url)
        resumed, short, left_out = len(plan) > 0, 0, {}
        if resumed:
            planned_overlap = int(plan["overlap"].max())
            if overlap is not None and overlap != planned_overlap:
                raise SpanbankError(
                    f"a planned push to {project} stopped half-way ({len(plan)} articles, "
                    f"--overlap {planned_overlap}); finish it first: run the push again with "
                    f"--overlap {planned_overlap} (or none), then push the next batch"
                )
            overlap = planned_overlap
        elif overlap_share is not None and (overlap or 1) < 2:
            raise SpanbankError("--overlap-share needs --overlap 2 or more")
        else:
            batch, left_out = select_batch(
                corpus, project, client.url, ids=ids, where=where, sample=sample, seed=seed,
                batch_size=batch_size,
            )  # fmt: skip
            pushed = _pushed(corpus, project, client.url)
            hp = pick_honeypots(corpus, batch, parse_share(honeypots), seed, pushed)
            if batch.empty and hp.empty:  # nothing new: let push say so in its own words
                return (yield from push_batch(corpus, project, client=client, overlap=overlap,
                                              ids=ids, where=where, sample=sample, seed=seed,
                                              batch_size=batch_size, **push_options))  # fmt: skip
            plan = _plan(
                corpus, batch, hp, overlap, overlap_share, seed, stratify, client.url, project
            )
            short = hp.attrs.get("asked", 0) - len(hp)
            if not push_options.get("dry_run"):
                # recorded before any task exists: a push stopped from here on is finished by the
                # next planned push (its honeypots are known as such from their first annotation)
                plan = pin_honeypot_gold(corpus, plan, push_options.get("wait", False))
                _record(corpus, plan, push_options.get("wait", False))
        found = client.find_project(project, fields=("maximum_annotations",))
        base = int(found.get("maximum_annotations") or 1) if found else int(overlap or 1)
        summary = yield from push_batch(
            corpus, project, client=client, overlap=None if found else overlap,
            ids=list(plan["article_id"]), seed=seed, **push_options,
        )  # fmt: skip
        skipped = summary.setdefault("skipped", {})
        for why, n in left_out.items():  # what the pick left out: push saw only the plan's ids
            if n and why != "already pushed":
                skipped[why] = skipped.get(why, 0) + n
        if moved:
            summary["moved_from"] = moved
        if short > 0:
            summary["honeypots_short"] = (
                f"{len(hp) + short} asked; only {len(hp)} article(s) with stored gold are new to "
                "this project"
            )
        if summary.get("dry_run"):
            summary["honeypots"] = int(plan[HONEYPOT].sum())
            return summary
        tasks = corpus.read("tasks")
        tasks = tasks[(tasks["project"] == project) & (tasks["ls_url"] == client.url)]
        tasks = tasks[tasks["article_id"].isin(set(plan["article_id"]))]
        tasks = tasks.drop_duplicates("article_id", keep="last")
        planned = apply_overlap(client, tasks, plan.set_index("article_id")["overlap"], base)
        done = plan.drop(columns=["ls_task_id", "batch_id"]).merge(
            tasks[["article_id", "ls_task_id", "batch_id"]].assign(overlap=planned.to_numpy()),
            on="article_id",
            suffixes=("_plan", ""),
        )
        _record(corpus, done.assign(planned_at=utc_now()), push_options.get("wait", False))
        if resumed:
            summary["resumed_plan"] = len(plan)
        summary["honeypots"] = int(done[HONEYPOT].sum())
        summary["overlap_planned"] = {
            str(k): int(v) for k, v in done["overlap"].value_counts().sort_index().items()
        }
        return summary


def _plan(corpus, batch, hp, overlap, overlap_share, seed, stratify, ls_url, project):
    """Per article of the batch and its honeypots: the annotators planned (`overlap` for
    honeypots and the `overlap_share` picked, else for all; 1 for the others)."""
    honeypots = set(hp["article_id"])
    multi = set(honeypots)  # every annotator the project allows checks against gold
    if overlap_share is not None:
        meta = article_meta(corpus)
        mine = meta[meta["article_id"].isin(set(batch["article_id"]))]
        multi |= plan_overlap(mine, overlap_share, seed, stratify)
    else:
        multi |= set(batch["article_id"])
    arts = list(batch["article_id"])
    rng = np.random.default_rng([seed, 1])
    for a in hp["article_id"]:  # each at a seeded place in the batch, not all at its head
        arts.insert(int(rng.integers(0, len(arts) + 1)), a)
    gold = hp.set_index("article_id")[HONEYPOT_GOLD] if len(hp) else pd.Series(dtype=object)
    return pd.DataFrame(
        {
            "project": project,
            "ls_url": ls_url,
            "article_id": arts,
            "ls_task_id": pd.array([None] * len(arts), dtype="Int64"),
            "batch_id": None,
            "overlap": [int(overlap or 1) if a in multi else 1 for a in arts],
            HONEYPOT: [a in honeypots for a in arts],
            HONEYPOT_GOLD: [gold.get(a) for a in arts],
            "planned_at": utc_now(),
        }
    )


def pin_honeypot_gold(corpus, plan: pd.DataFrame, wait=False) -> pd.DataFrame:
    """`plan` with each honeypot's gold pinned: its spans copied to `honeypot_spans` under
    `pinned:<gold id>@<planned_at>`, which `honeypot_gold` then names, so that a later
    `adjudicate` re-making that gold does not move the answer it is checked against."""
    hp = plan[plan[HONEYPOT]]
    if hp.empty:
        return plan
    gold_ids = hp[HONEYPOT_GOLD].astype(str)
    stamp = pd.Timestamp(hp["planned_at"].iloc[0]).strftime("%Y%m%dT%H%M%S.%fZ")
    pinned = PINNED + gold_ids + "@" + stamp
    spans = corpus.read_in("spans", "annotation_id", gold_ids.unique()).to_pandas()
    copies = spans.merge(
        pd.DataFrame({"annotation_id": gold_ids, "pinned": pinned, "project": hp["project"]}),
        on="annotation_id",
    )
    copies = copies.assign(annotation_id=copies.pop("pinned"))
    schema = ON_DEMAND_TABLES[HONEYPOT_SPANS]
    with corpus.writer(wait) as w:
        w.append(
            HONEYPOT_SPANS, pa.Table.from_pandas(copies[schema.names], schema, preserve_index=False)
        )
    return plan.assign(
        **{HONEYPOT_GOLD: plan[HONEYPOT_GOLD].where(~plan[HONEYPOT], pinned.reindex(plan.index))}
    )


def _unfinished(corpus, project: str, ls_url: str) -> pd.DataFrame:
    """The plan rows of a planned push to `project` that stopped before it finished (recorded
    before its import, no task id yet); empty when none."""
    plans = task_plans(corpus, project)
    if plans.empty:
        return plans
    mine = plans[(plans["ls_url"] == ls_url) & plans["ls_task_id"].isna()]
    return mine.reset_index(drop=True)


def _record(corpus, rows: pd.DataFrame, wait) -> None:
    schema = EXTRA_TABLES[TASK_PLANS]
    table = pa.Table.from_pandas(rows[schema.names], schema, preserve_index=False)
    with corpus.writer(wait) as w:
        w.append(TASK_PLANS, table)


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
    out = rows[[c for c in batch.columns if c in rows]].assign(
        **{HONEYPOT_GOLD: rows["article_id"].map(ref).to_numpy()}
    )
    out.attrs["asked"] = want  # more than there are: the push says so
    return out
