"""The review loop: articles whose automatic gold has conflicts go to a Label Studio review project.

`push_review` sends each such article of project NAME to the project ``NAME-review`` (same
schema and config) with every annotator's latest version attached as a prediction
(``model_version`` = their pseudonym) and the automatic gold as one more prediction
(``model_version`` = ``gold:<strategy>``). The review project's ``model_version`` is set
to that gold one: Label Studio 1.23 pre-fills the labeling stream with the predictions of
the project's ``model_version`` only (with "show predictions to annotators" on), so the
reviewer starts from the automatic gold and accepts or edits it, while the annotators'
versions stay one click away (the task's predictions, the Data Manager's model filter).

The review project is recorded in the corpus's ``projects`` table with ``kind = review``
and ``review_of = NAME`` before any task is made, so `spanbank.labelstudio.pull.pull` stores what a
reviewer submits as gold (origin ``gold``, annotator ``gold:review``, the reviewer's
pseudonym in ``reviewer``): it never counts as another annotator, and exports prefer it
over automatic gold (`spanbank.gold.select_annotations`).
"""

from __future__ import annotations

import pandas as pd

from spanbank.adjudicate import parse_strategy
from spanbank.corpus import Corpus
from spanbank.corpus.annotations import (
    GOLD_ORIGIN,
    REVIEW_KIND,
    current_mask,
    latest_per_annotator,
    live_annotations,
    save_project,
)
from spanbank.corpus.tables import CONFLICTS_TABLE
from spanbank.errors import LabelStudioError, SpanbankError
from spanbank.gold import (
    gold_annotation_id,
    gold_annotator,
    gold_rows,
    resolve_gold,
    stale_articles,
)
from spanbank.labelstudio import convert
from spanbank.labelstudio.client import LabelStudioClient
from spanbank.labelstudio.projects import ensure_project
from spanbank.labelstudio.push import CHUNK_SIZE, push_batch
from spanbank.labelstudio.workflow import Workflow, connect, utc_now
from spanbank.progress import Event

__all__ = [
    "REVIEW_SUFFIX",
    "conflict_articles",
    "push_review",
    "review_predictions",
    "review_project_name",
]

REVIEW_SUFFIX = "-review"


def review_project_name(project: str) -> str:
    """The review project of `project`: ``<project>-review``."""
    return project + REVIEW_SUFFIX


def conflict_articles(corpus: Corpus, project: str, strategy: str) -> list[str]:
    """Sorted ids of the articles of `project` whose stored `strategy` gold has conflicts.

    Raises SpanbankError when that gold was never stored (run the adjudication first).
    """
    conflicts = corpus.read(CONFLICTS_TABLE) if corpus.has(CONFLICTS_TABLE) else pd.DataFrame()
    if len(conflicts):
        conflicts = conflicts[
            (conflicts["project"] == project) & (conflicts["strategy"] == strategy)
        ]
    if conflicts.empty:
        ann = corpus.read("annotations", columns=["annotator", "origin", "project"])
        stored = (ann["annotator"] == gold_annotator(strategy)) & (ann["origin"] == GOLD_ORIGIN)
        if not (stored & (ann["project"] == project)).any():
            raise SpanbankError(
                f"no {strategy} gold for project {project!r}; run "
                f"`spanbank adjudicate --strategy {strategy} --project {project}` first"
            )
        return []
    return sorted(conflicts["article_id"].unique())


def review_predictions(
    corpus: Corpus, project: str, strategy: str, articles: pd.DataFrame
) -> dict[str, list[dict]]:
    """article_id -> LS predictions for the review tasks of `articles` (article_id, text).

    Annotators' latest live versions in `project` come first, ordered by pseudonym
    (``model_version`` = the pseudonym); the automatic gold of `strategy` stored for
    `project` (``model_version`` = ``gold:<strategy>``) comes last. Articles without
    stored gold get none.
    """
    texts = dict(zip(articles["article_id"], articles["text"], strict=True))
    wanted = list(texts)
    ann = corpus.read("annotations")
    humans = latest_per_annotator(ann, project=project)
    humans = humans[humans["article_id"].isin(wanted)].sort_values(["article_id", "annotator"])
    gold_ids = [gold_annotation_id(strategy, a, project) for a in wanted]
    golds = ann[ann["annotation_id"].isin(gold_ids) & (ann["origin"] == GOLD_ORIGIN)]
    golds = golds[current_mask(golds)]
    rows = pd.concat([humans, golds], ignore_index=True)
    if rows.empty:
        return {}
    chosen = gold_rows(corpus, annotations=rows)
    spans, rels = chosen.spans.to_pandas(), chosen.relations.to_pandas()
    spans = spans.astype(object).where(spans.notna(), None)  # NaN attributes -> none
    spans_by = {k: g.to_dict("records") for k, g in spans.groupby("annotation_id", sort=False)}
    rels_by = {k: g.to_dict("records") for k, g in rels.groupby("annotation_id", sort=False)}
    schema = corpus.schema
    out: dict[str, list[dict]] = {}
    for ann_id, art, who in zip(
        rows["annotation_id"], rows["article_id"], rows["annotator"], strict=True
    ):
        result = convert.spans_to_result(
            texts[art], spans_by.get(ann_id, []), rels_by.get(ann_id, []), schema
        )
        out.setdefault(art, []).append(convert.prediction(result, who))
    # an article whose gold is missing would pre-fill nothing: leave it to a later run
    gold_mv = gold_annotator(strategy)
    return {a: p for a, p in out.items() if p[-1]["model_version"] == gold_mv}


def _refuse_stale(corpus: Corpus, project: str, strategy: str) -> None:
    """Raise SpanbankError when stored `strategy` gold of `project` predates its annotators'
    latest work: its conflicts, and the gold a reviewer would start from, are out of date."""
    live = live_annotations(corpus.read("annotations"))
    mine = live[
        (live["origin"] == GOLD_ORIGIN)
        & (live["annotator"] == gold_annotator(strategy))
        & (live["project"] == project)
    ]
    stale = stale_articles(corpus, mine, live)
    if stale:
        raise SpanbankError(
            f"{len(stale)} article(s)' {strategy} gold of project {project!r} predates their "
            "annotators' latest work, so its conflicts are out of date; run `spanbank adjudicate "
            f"--strategy {strategy} --project {project}` first"
        )


def push_review(
    corpus: Corpus,
    project: str,
    strategy: str = "majority",
    *,
    client: LabelStudioClient | None = None,
    url: str | None = None,
    api_key: str | None = None,
    wait: bool | float = False,
    chunk_size: int = CHUNK_SIZE,
) -> Workflow:
    """Push the articles of `project` with `strategy` conflicts to ``<project>-review``.

    A workflow (see `spanbank.labelstudio.workflow.run`): yields progress, returns a summary. Needs the
    gold stored by `spanbank.gold.run_adjudication(corpus, strategy, project)`. Safe to
    re-run: an article already in the review project (recorded, or found on the server by
    its article_id) is not pushed again.
    """
    corpus.require()
    parse_strategy(strategy)
    strategy = resolve_gold(corpus, strategy)
    name = review_project_name(project)
    ids = conflict_articles(corpus, project, strategy)
    _refuse_stale(corpus, project, strategy)
    gold_mv = gold_annotator(strategy)
    summary: dict = {
        "project": name,
        "review_of": project,
        "strategy": strategy,
        "articles_with_conflicts": len(ids),
        "pushed": 0,
    }
    if not ids:
        return summary
    client = client or connect(url, api_key)
    # recorded as a review project before any task exists, so no pull can take it for
    # an annotation project
    with corpus.writer(wait) as writer:
        yield Event("project", 0, None)
        proj, state = ensure_project(client, corpus, name)
        save_project(
            writer,
            corpus,
            project=name,
            ls_url=client.url,
            ls_project_id=int(proj["id"]),
            schema_version=corpus.schema.ident,
            created_at=utc_now(),
            kind=REVIEW_KIND,
            review_of=project,
            strategy=strategy,
        )
    pushed = yield from push_batch(
        corpus,
        name,
        client=client,
        ids=ids,
        wait=wait,
        chunk_size=chunk_size,
        preannotate=lambda todo: review_predictions(corpus, project, strategy, todo),
    )
    pid = int(pushed["ls_project_id"])
    summary.update(
        ls_url=client.url,
        ls_project_id=pid,
        project_url=pushed["project_url"],
        project_state=state,
        pushed=pushed["pushed"],
        reconciled=pushed["reconciled"],
        already_in_review=pushed["skipped"].get("already pushed", 0),
    )
    # pre-fill the gold: Label Studio only accepts a model_version some prediction has
    current = client.get_project(pid)
    if current.get("model_version") != gold_mv or not current.get("show_collab_predictions"):
        try:
            client.update_project(pid, model_version=gold_mv, show_collab_predictions=True)
        except LabelStudioError:
            if pushed["pushed"]:
                raise
            summary["prefill"] = f"unchanged ({current.get('model_version') or 'none'})"
    summary.setdefault("prefill", gold_mv)
    return summary
