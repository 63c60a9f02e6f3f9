"""Gold annotations in the corpus: store automatic adjudications and pick each article's gold for export."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from spanbank.adjudicate import adjudicate, fragment_key, parse_strategy
from spanbank.corpus.annotations import (
    GOLD_ORIGIN,
    REVIEW_ANNOTATOR,
    latest_per_annotator,
    live_annotations,
    rows_at,
)
from spanbank.corpus.articles import IdSet, texts_of
from spanbank.corpus.store import Corpus
from spanbank.corpus.tables import CONFLICTS_TABLE, EXTRA_TABLES, TABLES, isin, to_arrow
from spanbank.errors import AdjudicationError, AnnotatorError, CorpusError, SpanbankError
from spanbank.schema import attributes_json
from spanbank.spans import fragment_list, joined_text

__all__ = [
    "CONFLICTS_TABLE",
    "CONFLICTS_SCHEMA",
    "GOLD_ORIGIN",
    "REVIEW_ANNOTATOR",
    "GoldRows",
    "annotation_spans",
    "gold_rows",
    "gold_annotation_id",
    "gold_annotator",
    "run_adjudication",
    "select_annotations",
]

CONFLICTS_SCHEMA = EXTRA_TABLES[CONFLICTS_TABLE]
INPUTS = "inputs_digest"  # on automatic gold rows: see inputs_digest()
MIN_VOTES = "min_votes"  # on automatic gold rows: adjudicate's --min-votes, to redo it alike
# in select_annotations' attrs: articles whose stale gold gave way to nothing (no work left)
STALE_DROPPED = "stale_dropped"
SEP = "\x1f"  # joins an article id and a project into one key (ids hold no control characters)


def gold_annotator(strategy: str) -> str:
    """The pseudonym automatic gold of a strategy is stored under, e.g. ``gold:majority``."""
    return f"gold:{strategy}"


def gold_annotation_id(strategy: str, article_id: str, project: str | None = None) -> str:
    """``gold-<strategy>-<article_id>``, or ``gold-<strategy>-<project>-<article_id>`` for a project."""
    return _gold_prefix(strategy, project) + article_id


def _gold_prefix(strategy: str, project: str | None) -> str:
    """What :func:`gold_annotation_id` puts before the article id (prefixed to id columns at once)."""
    return f"gold-{strategy}-" if project is None else f"gold-{strategy}-{project}-"


def resolve_gold(corpus: Corpus, gold: str) -> str:
    """`gold` (or a strategy) with the annotator it names (`prefer:X`, or X alone) as their
    pseudonym: an e-mail or a Label Studio user name given there never reaches a gold id, a
    manifest or an export. An annotator it cannot name is an error."""
    if not isinstance(gold, str) or gold in ("auto", "majority", "union", "intersection"):
        return gold
    from spanbank.annotators import resolve_annotators

    prefix, name = ("prefer:", gold[len("prefer:") :]) if gold.startswith("prefer:") else ("", gold)
    found = resolve_annotators(corpus, [name])
    if len(found) > 1:
        raise AnnotatorError(
            f"{name!r} is {len(found)} annotators (one person seen on {len(found)} servers); "
            f"name one: {', '.join(found)}"
        )
    return prefix + found[0]


# --------------------------------------------------------------------------- adjudicating


@dataclass
class _Gold:
    """Automatic gold for some articles, as corpus rows."""

    annotations: pd.DataFrame
    spans: pd.DataFrame
    relations: pd.DataFrame
    conflicts: pd.DataFrame
    single: int  # articles left out for having one annotator


def _human_inputs(corpus: Corpus, project, article_ids=None):
    """Latest human annotations, and the spans/relations of those on articles with two or more
    annotators (the others are not adjudicated: an archive imported with one annotator's
    spans would be read whole), each row tagged with its annotator."""
    from spanbank.corpus.annotations import without_honeypot_work

    rows = (
        corpus.read("annotations")
        if article_ids is None
        else corpus.read_in("annotations", "article_id", article_ids).to_pandas()
    )
    # honeypot work out first: an annotator's later honeypot of the same article in another
    # project would otherwise be their "latest" there, and take their real work with it
    ann = latest_per_annotator(without_honeypot_work(corpus, rows), project=project)
    del rows
    multi = ann.groupby("article_id")["annotator"].transform("nunique").to_numpy() >= 2
    who = ann.loc[multi, ["annotation_id", "article_id", "annotator"]]
    spans = _rows_of(corpus, "spans", who["annotation_id"]).to_pandas()
    rels = _rows_of(corpus, "relations", who["annotation_id"]).to_pandas()
    spans = spans.drop(columns=["article_id"]).merge(who, on="annotation_id")
    rels = rels.merge(who, on="annotation_id")
    return ann.reset_index(drop=True), spans, rels


def _rows_of(corpus: Corpus, name: str, annotation_ids) -> pa.Table:
    """Rows of a table belonging to some annotations, in the table's columns."""
    return to_arrow(name, corpus.read_in(name, "annotation_id", annotation_ids, TABLES[name].names))


def _adjudicate_store(
    corpus: Corpus, strategy: str, project, min_votes=None, article_ids=None
) -> _Gold:
    """Adjudicate articles with >= 2 annotators; rows shaped as the corpus tables."""
    _, preferred = parse_strategy(strategy)
    ann, spans, rels = _human_inputs(corpus, project, article_ids)
    n = ann.groupby("article_id")["annotator"].nunique()
    multi = n[n >= 2].index
    # (only for a whole run: a chunk of articles may simply not include theirs)
    if article_ids is None and preferred is not None and preferred not in set(ann["annotator"]):
        raise AdjudicationError(
            f"annotator {preferred!r} has no annotations here "
            f"(annotators: {', '.join(sorted(set(ann['annotator'])))})"
        )
    ann = ann[ann["article_id"].isin(multi)]
    digests = inputs_digest(ann)
    spans = spans[spans["article_id"].isin(multi)]
    rels = rels[rels["article_id"].isin(multi)]
    gold, links, conflicts = adjudicate(
        spans, rels, strategy, min_votes=min_votes, annotators=ann[["article_id", "annotator"]]
    )
    now = pd.Timestamp(datetime.now(timezone.utc))
    arts = sorted(multi)
    prefix = _gold_prefix(strategy, project)
    ann_rows = pd.DataFrame(
        {
            "annotation_id": [prefix + a for a in arts],
            "project": project,
            "article_id": arts,
            "ls_task_id": None,
            "ls_annotation_id": None,
            "annotator": gold_annotator(strategy),
            "origin": GOLD_ORIGIN,
            "created_at": now,
            "updated_at": now,
            "lead_time_s": None,
            "cancelled": False,
            "version": 1,
            "superseded": False,
            "deleted_at": None,
            "pulled_at": None,
            INPUTS: digests.reindex(arts).to_numpy(dtype=object),
            MIN_VOTES: pd.array([min_votes] * len(arts), dtype="Int64"),
        },
        columns=[*TABLES["annotations"].names, INPUTS, MIN_VOTES],
    )
    span_rows = gold.assign(
        annotation_id=prefix + gold["article_id"].astype(str),
        attributes=gold["attributes"].map(attributes_json),
        offset_repair=None,
    )
    span_rows["text"] = _span_texts(corpus, span_rows, spans)
    rel_rows = links.assign(annotation_id=prefix + links["article_id"].astype(str))
    conflicts = conflicts.assign(project=project, strategy=strategy)
    return _Gold(
        annotations=ann_rows,
        spans=span_rows.reindex(columns=TABLES["spans"].names).reset_index(drop=True),
        relations=rel_rows[TABLES["relations"].names].reset_index(drop=True),
        conflicts=conflicts[CONFLICTS_SCHEMA.names].reset_index(drop=True),
        single=int((n < 2).sum()),
    )


def inputs_digest(humans: pd.DataFrame) -> pd.Series:
    """Per article (the index), a digest of the human annotations gold is made from (their ids
    and versions): stored with automatic gold, so that gold made before an annotator's edit, a
    new annotator or a deletion is known to be stale. Order-free: each row's hash XORed."""
    if humans.empty:
        return pd.Series(dtype=object)
    version = humans["version"].astype("Int64").astype(str).to_numpy(dtype=object)
    keys = humans["annotation_id"].astype(str).to_numpy(dtype=object) + "#" + version
    hashes = pd.util.hash_array(keys, categorize=False)
    codes, articles = pd.factorize(humans["article_id"])
    acc = np.zeros(len(articles), dtype=np.uint64)
    np.bitwise_xor.at(acc, codes, hashes)
    n = np.bincount(codes, minlength=len(articles))
    return pd.Series(
        [f"{k}:{int(x):016x}" for k, x in zip(n, acc, strict=True)], index=articles, dtype=object
    )


def _with_fkey(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with an `fkey` column naming each span's fragment set ("" when contiguous)."""
    frags = rows["fragments"] if "fragments" in rows else [None] * len(rows)
    return rows.assign(fkey=[fragment_key(f) for f in frags])


def _span_texts(corpus: Corpus, gold: pd.DataFrame, human: pd.DataFrame) -> list[str]:
    """text[start:end] of every gold span, checked against the article and the human spans."""
    if gold.empty:
        return []
    texts = texts_of(corpus, gold["article_id"].unique())
    missing = sorted(set(gold["article_id"]) - set(texts))
    if missing:
        raise CorpusError(
            f"annotated article(s) {', '.join(missing[:5])} are not in the articles table; "
            "ingest them before adjudicating"
        )
    out = []
    frags = gold["fragments"] if "fragments" in gold else [None] * len(gold)
    for a, s, e, f in zip(gold["article_id"], gold["start"], gold["end"], frags, strict=True):
        text = texts[a]
        if not 0 <= s <= e <= len(text):
            raise CorpusError(
                f"article {a}: span [{s}, {e}) lies outside its {len(text)} characters; "
                "the annotations do not fit the article text"
            )
        out.append(joined_text(text, fragment_list(s, e, f)))
    # Gold offsets are copied from human spans: their stored text must be the same slice.
    on = ["article_id", "start", "end", "fkey"]  # the same fragments too, when discontinuous
    check = (
        _with_fkey(gold)[on]
        .assign(gold_text=out)
        .merge(_with_fkey(human)[[*on, "text"]].dropna(subset=["text"]), on=on)
    )
    bad = check[check["gold_text"] != check["text"]]
    if len(bad):
        b = bad.iloc[0]
        raise CorpusError(
            f"article {b['article_id']}: stored span text {b['text']!r} at [{b['start']}, "
            f"{b['end']}) differs from the article text {b['gold_text']!r}; repair the corpus first"
        )
    return out


def run_adjudication(
    corpus: Corpus,
    strategy: str,
    project: str | None = None,
    min_votes: int | None = None,
    wait: bool | float = False,
) -> dict:
    """Adjudicate every article with >= 2 human annotators and store the gold; returns a summary.

    Reads the latest live human annotations (origin human/import, not superseded, deleted
    or skipped; of ``project`` when given), adjudicates them with ``strategy`` (see
    :mod:`spanbank.adjudicate`) and writes one annotation per article (origin ``gold``,
    annotator ``gold:<strategy>``, id :func:`gold_annotation_id`, version 1) with its spans
    and relations, plus the ``conflicts`` table. The previous automatic gold of this
    strategy and project (annotations, spans, relations, conflicts) is replaced, all
    under the corpus write lock, which is taken before the human annotations are read: a
    writer that finished while this one waited is in the gold. Human work and reviewed gold
    are never touched.
    """
    corpus.require()
    strategy = resolve_gold(corpus, strategy)
    annotator = gold_annotator(strategy)
    with corpus.writer(wait) as w:
        result = _adjudicate_store(corpus, strategy, project, min_votes=min_votes)
        old = corpus.read_arrow("annotations")
        mask = pc.and_(
            pc.and_(
                pc.fill_null(pc.equal(old["annotator"], annotator), False),
                pc.fill_null(pc.equal(old["origin"], GOLD_ORIGIN), False),
            ),
            _of_project(old, project),
        )
        replaced = old["annotation_id"].filter(mask).to_pylist()
        stale = replaced + result.annotations["annotation_id"].tolist()
        # Old gold rows out first, contents next, new rows last: ids are deterministic, so no
        # reader (nor a crash in between) ever sees a gold row over half-written contents; in
        # between the articles have no stored gold (the selection adjudicates their work).
        w.delete("annotations", "annotation_id", replaced)
        for name, rows in (("spans", result.spans), ("relations", result.relations)):
            w.delete(name, "annotation_id", stale)
            w.append(name, rows)
        w.upsert("annotations", result.annotations, "annotation_id")
        old_conf = corpus.read_arrow(CONFLICTS_TABLE)
        if old_conf.num_rows:
            drop = pc.and_(
                _of_project(old_conf, project),
                pc.fill_null(pc.equal(old_conf["strategy"], strategy), False),
            )
            old_conf = old_conf.filter(pc.invert(drop)).cast(CONFLICTS_SCHEMA)
        new_conf = pa.Table.from_pandas(
            result.conflicts, schema=CONFLICTS_SCHEMA, preserve_index=False
        )
        w.replace(
            CONFLICTS_TABLE,
            pa.concat_tables([old_conf, new_conf]) if old_conf.num_rows else new_conf,
        )
    kinds = result.conflicts["kind"].value_counts().sort_index()
    return {
        "strategy": strategy,
        "project": project,
        "articles": len(result.annotations),
        "skipped_single_annotator": result.single,
        "spans_kept": len(result.spans),
        "relations_kept": len(result.relations),
        "replaced": int(pc.sum(mask).as_py() or 0),
        "conflicts": len(result.conflicts),
        "conflicts_by_kind": {str(k): int(v) for k, v in kinds.items()},
        "articles_with_conflicts": int(result.conflicts["article_id"].nunique()),
    }


def _of_project(table: pa.Table, project: str | None) -> pa.ChunkedArray:
    """Rows stored under `project` (None: rows stored without a project)."""
    if project is None:
        return pc.is_null(table["project"])
    return pc.fill_null(pc.equal(table["project"], project), False)


# --------------------------------------------------------------------------- selection


# what the selection itself reads of the annotations table (whichever columns it returns)
SELECTION_READS = frozenset(
    {
        "annotation_id",
        "project",
        "article_id",
        "annotator",
        "origin",
        "version",
        "created_at",
        "updated_at",
        "cancelled",
        "superseded",
        "deleted_at",
        "invalid_reason",
        "review_of",
        "inputs_digest",
    }
)


# annotation rows the selection chooses from at once: its working set, about 3.5 times the rows'
# Arrow data (340 MB for a million rows), was the export driver's peak
SELECT_ROWS = 1_000_000


def _latest_first(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(
        ["updated_at", "created_at", "version"], ascending=False, kind="stable", na_position="last"
    )


def select_annotations(
    corpus: Corpus, gold: str = "auto", project: str | None = None, columns=None, categories=()
) -> pd.DataFrame:
    """One annotations row per article: the annotation an export should use.

    ``gold="auto"``: the reviewed gold (annotator ``gold:review``) when there is one, else
    stored automatic gold (any ``gold:*``, ``gold:majority`` first), else the article's
    only human annotation when it has a single annotator, else majority computed on the
    fly (nothing is written; :func:`annotation_spans` recomputes its spans). Stored automatic
    gold made from annotations that have changed since (an edit, a new annotator, a deletion:
    :func:`inputs_digest`) is stale: computed again by its strategy (``selection`` "stale"). A strategy
    (``majority``, ``union``, ``intersection``, ``prefer:X``): that strategy's stored gold,
    else computed on the fly, for articles with >= 2 annotators. Anything else: that
    annotator's latest live annotation. With ``project``, annotations of that project
    (gold stored without a project counts for the project's articles, and so does the
    reviewed gold pulled from its review project, whose rows say ``review_of``).

    Stale gold of an article now left with one annotator's work gives way to that annotation
    (``selection`` "stale_single"); left with none, to nothing (their count is the result's
    ``attrs["stale_dropped"]``), as re-running `adjudicate` would.

    Returns the annotations table's columns (or only `columns` of them: the table is then read
    without the others) plus ``selection`` (review, gold, single, computed, stale, stale_single,
    annotator), sorted
    by article_id. Every choice depends on one article's rows only, so a table of more than
    SELECT_ROWS rows is read and chosen from one range of article ids at a time. `categories`:
    columns of few distinct values held as pandas categories from each range on (in an export's
    selection, about 1 MB per million articles each instead of 12 as strings).
    """
    corpus.require()
    if not isinstance(gold, str) or not gold:
        raise SpanbankError("gold must be auto, a strategy or an annotator pseudonym")
    names = TABLES["annotations"].names if columns is None else list(columns)
    stored = corpus.stored_schema("annotations").names
    read = [c for c in stored if c in names or c in SELECTION_READS]
    parts, known, dropped = [], set(), 0
    for where in article_ranges(corpus, "annotations", SELECT_ROWS):
        live = live_annotations(corpus.read("annotations", read, where))
        part, annotators = _select(corpus, live, gold, project, names)
        del live  # not held while the next range is read
        if part is not None:
            dropped += part.attrs.get(STALE_DROPPED, 0)
            parts.append(part.astype({c: "category" for c in categories if c in part}))
        known |= annotators
    if not parts:
        raise SpanbankError(
            f"no annotations by {gold!r}{'' if project is None else f' in project {project}'}; "
            f"use auto, a strategy or one of: {', '.join(sorted(known)) or '(none)'}"
        )
    # ranges in id order, each sorted: together sorted by article_id. A range's rows lack the
    # columns none of them had, as the whole table's would: concat then types them alike
    full = [p for p in parts if len(p)] or parts[-1:]
    rows = _finish(full[0] if len(full) == 1 else _concat(full, categories), names)
    rows.attrs = {STALE_DROPPED: dropped}
    return rows


def _concat(parts: list[pd.DataFrame], categories) -> pd.DataFrame:
    """`parts` one after another; a column each holds as categories stays so (concat would
    make strings of categories that differ)."""
    for c in categories:
        if not all(c in p and isinstance(p[c].dtype, pd.CategoricalDtype) for p in parts):
            continue
        every = parts[0][c].cat.categories
        for p in parts[1:]:
            every = every.append(p[c].cat.categories).unique()
        parts = [p.assign(**{c: p[c].cat.set_categories(every)}) for p in parts]
    return pd.concat(parts, ignore_index=True)


def article_ranges(corpus: Corpus, name: str, rows: int) -> list:
    """Filters cutting table `name` into ranges of article ids of about `rows` rows each, in id
    order (the last one also holds rows without an article id); [None] (no filter) when the
    table holds at most `rows` rows. Ids are sampled every rows/64 rows, in one pass over the
    article_id column."""
    files = corpus.table_files(name)
    total = sum(pq.read_metadata(f).num_rows for f in files)
    if total <= rows:
        return [None]
    step, seen, sample = max(1, rows // 64), 0, []
    for batch in corpus.iter_batches(name, ["article_id"]):
        first = -seen % step
        if first < batch.num_rows:
            sample.append(batch.column(0).take(pa.array(range(first, batch.num_rows, step))))
        seen += batch.num_rows
    ids = pc.drop_null(pc.unique(pa.chunked_array(sample, pa.string())))
    ids = ids.take(pc.array_sort_indices(ids))
    per = max(1, rows // step)  # sampled ids per range
    cuts = ids[per::per].to_pylist()
    if not cuts:
        return [None]
    field = ds.field("article_id")
    bounds = [field < cuts[0]]
    bounds += [(field >= lo) & (field < hi) for lo, hi in itertools.pairwise(cuts)]
    return [*bounds, (field >= cuts[-1]) | field.is_null()]


def _select(corpus, live: pd.DataFrame, gold: str, project, names) -> tuple:
    """select_annotations over the live rows of some articles (all their rows): (the rows, or
    None when `gold` names an annotator with no annotations among them; then the annotators
    there are, for the error)."""
    from spanbank.corpus.annotations import without_honeypot_work

    humans = latest_per_annotator(without_honeypot_work(corpus, live), project=project)
    is_strategy = gold in ("majority", "union", "intersection") or gold.startswith("prefer:")
    if gold != "auto" and not is_strategy:
        rows = live[live["annotator"] == gold]
        if project is not None:
            rows = rows[rows["project"] == project]
        if rows.empty:
            return None, set(live["annotator"].dropna())
        rows = _latest_first(rows).drop_duplicates("article_id")
        return _sorted(rows.assign(selection="annotator"), names), set()

    golds = live[
        (live["origin"] == GOLD_ORIGIN) & live["annotator"].str.startswith("gold:", na=False)
    ]
    if project is not None:
        scope = set(humans["article_id"]) | set(
            golds.loc[golds["project"] == project, "article_id"]
        )
        # reviewed gold lives in the review project (NAME-review) and names its source
        reviewed = (
            golds["review_of"] == project if "review_of" in golds else np.zeros(len(golds), bool)
        )
        golds = golds[
            (golds["project"] == project)
            | (golds["project"].isna() & isin(golds["article_id"], scope))
            | reviewed
        ]
    if is_strategy:
        parse_strategy(gold)
        golds = golds[golds["annotator"] == gold_annotator(gold)]
        strategy = gold
    else:
        strategy = "majority"
    # each article's stored gold by rank; a stale one is redone, never passed over for the next
    top = _ranked(golds).drop_duplicates("article_id")
    fresh = _current(corpus, top, live)
    chosen, stale = top[fresh], top[~fresh]
    chosen = chosen.assign(
        selection=np.where(chosen["annotator"] == REVIEW_ANNOTATOR, "review", "gold")
    )
    # annotators per article without gold (humans: one row per article and annotator)
    codes, articles = pd.factorize(humans["article_id"])
    named = (codes >= 0) & np.asarray(humans["annotator"].notna())
    n = np.bincount(codes[named], minlength=len(articles))
    n[isin(articles, chosen["article_id"])] = 0
    parts = [chosen]
    # stale gold of an article left with one annotator's work gives way to it ("stale_single"),
    # as `adjudicate` would now; else (none left, or a strategy asked for) to nothing (counted)
    single = 0
    if not is_strategy:
        of_row = np.zeros(len(codes), dtype=n.dtype)
        of_row[codes >= 0] = n[codes[codes >= 0]]
        one = rows_at(humans, of_row == 1)
        was_stale = isin(one["article_id"], stale["article_id"])
        single = int(was_stale.sum())
        parts.append(one.assign(selection=np.where(was_stale, "stale_single", "single")))
    multi = sorted(articles[n >= 2])
    del live, humans, golds  # the whole table's rows: not held while the selection is sorted
    # stale stored gold is adjudicated again, by its own strategy, from the annotators' work now
    redo = stale[isin(stale["article_id"], multi)]
    parts.append(redo.assign(selection="stale"))
    dropped = len(stale) - len(redo) - single
    redone = set(redo["article_id"])
    multi = [a for a in multi if a not in redone]
    if multi:
        parse_strategy(strategy)
        prefix = _gold_prefix(strategy, project)
        parts.append(
            pd.DataFrame(
                {
                    "annotation_id": [prefix + a for a in multi],
                    "project": project,
                    "article_id": multi,
                    "annotator": gold_annotator(strategy),
                    "origin": GOLD_ORIGIN,
                    "version": 1,
                    "cancelled": False,
                    "superseded": False,
                    "selection": "computed",
                }
            )
        )
    parts = [p for p in parts if len(p)]
    if not parts:
        rows = _sorted(chosen.iloc[:0].assign(selection=pd.Series(dtype=object)), names)
    else:
        rows = _sorted(parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True), names)
    rows.attrs[STALE_DROPPED] = dropped
    return rows, set()


def _ranked(golds: pd.DataFrame) -> pd.DataFrame:
    """Stored gold rows in the order an article's gold is chosen: reviewed, then majority, then
    other strategies; a project's before gold stored without one; the latest first."""
    rank = np.select(
        [golds["annotator"] == REVIEW_ANNOTATOR, golds["annotator"] == gold_annotator("majority")],
        [0, 1],
        2,
    )
    golds = golds.assign(_rank=rank, _global=golds["project"].isna())
    golds = _latest_first(golds).sort_values(["_rank", "_global", "annotator"], kind="stable")
    return golds.drop(columns=["_rank", "_global"])


def stale_articles(
    corpus, golds: pd.DataFrame, live: pd.DataFrame, current: pd.Series | None = None
) -> set:
    """Articles whose stored gold, the one the selection would choose, was made from annotations
    since edited, added or deleted (the export adjudicates them again). `current`: what
    `current_gold` gave for these rows (by index), so several calls share its passes."""
    if golds.empty:
        return set()
    top = _ranked(golds).drop_duplicates("article_id")
    fresh = (
        _current(corpus, top, live)
        if current is None
        else current.reindex(top.index).fillna(True).to_numpy(dtype=bool)
    )
    return set(top.loc[~fresh, "article_id"])


def current_gold(corpus, golds: pd.DataFrame, live: pd.DataFrame) -> pd.Series:
    """Per stored gold row (by index): still made from its annotators' latest work."""
    return pd.Series(_current(corpus, golds, live), index=golds.index, dtype=bool)


def _current(corpus, golds: pd.DataFrame, live: pd.DataFrame) -> np.ndarray:
    """True for stored gold still made from its annotators' latest work: its inputs digest is
    that of the live human annotations it would be made from now (of its project; all
    projects' for gold stored without one). Reviewed gold, and gold stored before digests
    were, count as current. Two passes over the gold's articles' rows, however many projects."""
    current = np.ones(len(golds), dtype=bool)
    if INPUTS not in golds or not golds[INPUTS].notna().any():
        return current
    digest = golds[INPUTS].to_numpy(dtype=object)
    has = golds[INPUTS].notna().to_numpy()
    project = golds["project"].astype(object).fillna("").to_numpy()  # "" : stored without one
    ids = golds["article_id"].to_numpy(dtype=object)
    for scoped in (True, False):
        mine = has & ((project != "") if scoped else (project == ""))
        if not mine.any():
            continue
        rows = rows_at(live, isin(live["article_id"], ids[mine]))
        now = _digests_now(corpus, rows, scoped)
        key = pd.Series(ids[mine]) + (SEP + pd.Series(project[mine]) if scoped else "")
        current[mine] = key.map(now).to_numpy(dtype=object) == digest[mine]
    return current


def _digests_now(corpus, rows: pd.DataFrame, scoped: bool) -> pd.Series:
    """inputs_digest of the annotations adjudicate would read now: per article and project
    ("ARTICLE<SEP>PROJECT", each project's own annotations) when `scoped`, else per article
    (every project's)."""
    from spanbank.corpus.annotations import without_honeypot_work

    if scoped:  # one pass for every project: an annotator's work counts per project
        rows = rows_at(rows, rows["project"].notna().to_numpy())
        who = rows["annotator"].astype(str) + SEP + rows["project"].astype(str)
        rows = rows.assign(annotator=who)
    humans = latest_per_annotator(without_honeypot_work(corpus, rows))
    if scoped:
        humans = humans.assign(article_id=humans["article_id"] + SEP + humans["project"])
    return inputs_digest(humans)


def _columns(names: list[str]) -> list[str]:
    return [c for c in names if c != "selection"] + ["selection"]


def _sorted(rows: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """`rows` sorted by article_id, with those of the result's columns they have."""
    rows = rows[[c for c in _columns(names) if c in rows]]
    return rows.sort_values("article_id", kind="stable")


def _finish(rows: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    return rows.reindex(columns=_columns(names)).reset_index(drop=True)


@dataclass
class GoldRows:
    """The chosen gold: one annotations row per article, and its spans and relations (Arrow,
    the corpus tables' columns)."""

    annotations: pd.DataFrame
    spans: pa.Table
    relations: pa.Table


def gold_rows(
    corpus: Corpus,
    gold: str = "auto",
    project: str | None = None,
    annotations: pd.DataFrame | None = None,
) -> GoldRows:
    """The one way to the gold an export or an evaluation uses: :func:`select_annotations`'
    choice (or the given `annotations` rows), with its spans and relations. Stored rows are
    read once; gold computed on the fly is adjudicated once, for all its articles together."""
    if annotations is None:
        annotations = select_annotations(corpus, gold=gold, project=project)
    spans, relations = _annotation_rows(corpus, annotations)
    return GoldRows(annotations, spans, relations)


def annotation_spans(
    corpus: Corpus, annotations: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(spans, relations) of the given annotations rows, with the corpus tables' columns.

    Stored annotations are read from the corpus; gold chosen by :func:`select_annotations`
    but not stored or stale (``selection`` "computed" or "stale", or a ``gold:<strategy>`` id the corpus
    lacks) is adjudicated again in memory, deterministically, with the same ids.
    """
    spans, rels = _annotation_rows(corpus, annotations)
    return spans.to_pandas(), rels.to_pandas()


def _annotation_rows(corpus: Corpus, annotations: pd.DataFrame) -> tuple[pa.Table, pa.Table]:
    """:func:`annotation_spans` as Arrow tables: stored rows first, then computed ones."""
    in_store, todo = split_stored(corpus, annotations)
    stored = annotations.loc[in_store, "annotation_id"]
    spans, rels = computed_rows(corpus, todo)
    return (
        pa.concat_tables([_rows_of(corpus, "spans", stored), spans]),
        pa.concat_tables([_rows_of(corpus, "relations", stored), rels]),
    )


def split_stored(
    corpus: Corpus, annotations: pd.DataFrame, ids: IdSet | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """(True for the annotations whose rows are read from the store, the rows of those to
    adjudicate again in memory: gold chosen but not stored). `ids`: the annotations' ids as an
    :class:`IdSet`, if the caller has one."""
    in_store = corpus.holds("annotations", "annotation_id", annotations["annotation_id"], ids)
    if "selection" in annotations:
        redo = annotations["selection"].isin(["computed", "stale"])
        in_store &= ~redo.fillna(False).to_numpy(dtype=bool)
    todo = annotations[~in_store]
    bad = todo[~todo["annotator"].str.startswith("gold:", na=False)]
    if len(bad):
        raise CorpusError(
            f"annotation {bad['annotation_id'].iloc[0]!r} is not in the corpus; "
            "select annotations with select_annotations()"
        )
    return in_store, todo


def _stored_min_votes(corpus: Corpus, ids: pd.Series) -> np.ndarray:
    """The --min-votes stored gold of these ids was made with (NaN: none, or not stored): stale
    gold is adjudicated again as it was."""
    if MIN_VOTES not in corpus.stored_schema("annotations").names or ids.empty:
        return np.full(len(ids), np.nan)
    rows = corpus.read_in("annotations", "annotation_id", ids, ["annotation_id", MIN_VOTES])
    k = rows.to_pandas().drop_duplicates("annotation_id").set_index("annotation_id")[MIN_VOTES]
    return ids.map(k).to_numpy(dtype=float)


def computed_rows(corpus: Corpus, todo: pd.DataFrame) -> tuple[pa.Table, pa.Table]:
    """Spans and relations of gold annotations not stored (rows of :func:`split_stored`'s
    second part), adjudicated again deterministically, with the ids they would be stored under."""
    span_cols, rel_cols = TABLES["spans"].names, TABLES["relations"].names
    spans, rels = [TABLES["spans"].empty_table()], [TABLES["relations"].empty_table()]
    keys = todo.assign(
        _project=todo["project"].astype(object).where(todo["project"].notna(), None),
        _k=_stored_min_votes(corpus, todo["annotation_id"]),
    )
    for (annotator, project, k), part in keys.groupby(
        ["annotator", "_project", "_k"], dropna=False
    ):
        project = None if project is None or project != project else project
        result = _adjudicate_store(
            corpus,
            annotator[len("gold:") :],
            project,
            min_votes=None if pd.isna(k) else int(k),
            article_ids=part["article_id"],
        )
        want = set(part["annotation_id"])
        spans.append(to_arrow("spans", result.spans[result.spans["annotation_id"].isin(want)]))
        rels.append(
            to_arrow("relations", result.relations[result.relations["annotation_id"].isin(want)])
        )
    return (
        pa.concat_tables([s.select(span_cols) for s in spans]),
        pa.concat_tables([r.select(rel_cols) for r in rels]),
    )
