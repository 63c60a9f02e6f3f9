"""Push: send a batch of articles to a Label Studio project as tasks (a generator yielding progress)."""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spanbank.corpus import Corpus
from spanbank.corpus.annotations import REVIEW_KIND, project_records, save_project, task_plans
from spanbank.corpus.articles import attach_rows, selection_frame
from spanbank.corpus.tables import BATCHES_TABLE
from spanbank.errors import (
    CorpusError,
    LabelStudioError,
    ListingChangedError,
    SpanbankError,
)
from spanbank.labelstudio import convert, identity
from spanbank.labelstudio.client import LISTING_TRIES, LabelStudioClient, encode_json
from spanbank.labelstudio.projects import (
    ensure_project,
    missing_project,
    project_change,
    recorded_project,
)
from spanbank.labelstudio.workflow import Workflow, connect, utc_now
from spanbank.parallel import Engine, asked_workers, engine
from spanbank.progress import Event

MIN_TITLE = 3
CHUNK_SIZE = 2500  # tasks per import: each request costs the server ~30-50 ms on top of its tasks
# characters of text per import: Label Studio's API takes at most 200 MB per request (its default
# DATA_UPLOAD_MAX_MEMORY_SIZE is 250 MiB); a task's JSON is at most ~4 bytes per character, twice
# that with predictions
CHUNK_CHARS = 16_000_000
PROJECT_TASKS = 100_000  # Label Studio's guide: "about 100k tasks / 100k annotations per project"


def select_articles(
    articles: pd.DataFrame,
    *,
    ids: Iterable[str] | None = None,
    where: str | None = None,
) -> tuple[pd.DataFrame, Counter]:
    """Articles matching `ids` (in the order of `ids`) and the pandas query `where`; also
    counts of what was left out."""
    skipped: Counter = Counter()
    if ids is not None:
        wanted = pd.Index(pd.unique(pd.Series(list(ids), dtype=object)))
        unknown = wanted.difference(pd.Index(articles["article_id"]))
        if len(unknown):
            skipped["not in corpus"] += len(unknown)
        articles = articles[articles["article_id"].isin(wanted)]
        place = wanted.get_indexer(articles["article_id"])
        articles = articles.iloc[np.argsort(place, kind="stable")]
    if where:
        meta = articles.drop(columns=["text", "_row"], errors="ignore")
        try:
            keep = meta.query(where, engine="python")
        except Exception as exc:  # pandas raises many types for a bad expression
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SpanbankError(
                f"--where {where!r} is not a valid filter on article columns "
                f"({', '.join(meta.columns)}): {msg}"
            ) from None
        skipped["filtered out by --where"] += len(articles) - len(keep)
        articles = articles.loc[keep.index]
    return articles, skipped


def _pick(
    selected: pd.DataFrame,
    pushed_ids: set,
    skipped: Counter,
    sample: int | None,
    seed: int,
    batch_size: int | None,
) -> pd.DataFrame:
    """The selected articles not yet pushed, sampled, at most `batch_size`; counts the rest in `skipped`."""
    pushed = list(pushed_ids) if isinstance(pushed_ids, (set, frozenset)) else pushed_ids
    already = pc.is_in(
        pa.array(selected["article_id"], pa.string()), value_set=pa.array(pushed, pa.string())
    )
    fresh = np.flatnonzero(~already.to_numpy(zero_copy_only=False))
    skipped["already pushed"] += len(selected) - len(fresh)
    if sample is None and batch_size is not None and batch_size < len(fresh):
        skipped["beyond --batch-size"] += len(fresh) - batch_size
        return selected.iloc[fresh[:batch_size]]  # only the picked rows are copied
    todo = selected.iloc[fresh]
    if sample is not None and sample < len(todo):
        skipped["not sampled"] += len(todo) - sample
        todo = todo.sample(n=sample, random_state=seed).sort_index()
    if batch_size is not None and batch_size < len(todo):
        skipped["beyond --batch-size"] += len(todo) - batch_size
        todo = todo.iloc[:batch_size]
    return todo


def select_batch(
    corpus: Corpus,
    project: str,
    ls_url: str,
    *,
    ids: Iterable[str] | None = None,
    where: str | None = None,
    sample: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> tuple[pd.DataFrame, Counter]:
    """The articles (with text) a push to `project` on `ls_url` would send next, as push_batch picks
    them from the corpus alone (without reconciling with the server), and counts of what was left out."""
    articles = selection_frame(corpus, where)
    selected, skipped = select_articles(articles, ids=ids, where=where)
    local = corpus.read("tasks", columns=["project", "ls_url", "article_id"])
    local = local[(local["project"] == project) & (local["ls_url"] == ls_url.rstrip("/"))]
    todo = _pick(selected, local["article_id"], skipped, sample, seed, batch_size)
    return attach_rows(corpus, todo), skipped


def _predictions(
    mode: str | None,
    candidates: pd.DataFrame,
    schema,
    eng: Engine | None = None,
    tagged: dict | None = None,
) -> tuple[dict[str, list[dict]], Counter]:
    """article_id -> LS predictions, from the rule tagger or a model (tagged in parts on `eng`,
    unless `tagged` holds every candidate's tagging already), a spans file (Parquet/JSONL) or a
    callable given the candidate articles (how `spanbank.labelstudio.review` attaches its
    predictions); and why articles got none (not counted for a callable)."""
    if callable(mode):
        return mode(candidates), Counter()
    if not mode or mode == "none":
        return {}, Counter()
    out: dict[str, list[dict]] = {}
    why: Counter = Counter()
    if mode == "rules" or mode.startswith("model:"):
        from spanbank.preannotate import TAGGER_VERSION
        from spanbank.predict import tag_in_parts

        model_dir = mode[len("model:") :] if mode != "rules" else None
        version = TAGGER_VERSION if model_dir is None else f"model:{Path(model_dir).name}"
        ids, bodies = candidates["article_id"], candidates["text"]
        langs = candidates["language"] if "language" in candidates else [None] * len(ids)
        if tagged is not None and all(a in tagged for a in ids):
            tags = [tagged[a] for a in ids]
        else:
            tags = tag_in_parts(bodies, langs, model_dir, eng)
        for aid, text, (got, reason) in zip(ids, bodies, tags, strict=True):
            if reason is not None:
                why[reason] += 1
            elif got["spans"]:
                result = convert.spans_to_result(text, got["spans"], got["relations"], schema)
                scores = [s.get("score", 1.0) for s in got["spans"]]
                out[aid] = [convert.prediction(result, version, sum(scores) / len(scores))]
        return out, why
    texts = dict(zip(candidates["article_id"], candidates["text"], strict=True))
    path = Path(mode)
    if not path.exists():
        raise SpanbankError(f"--preannotate: {mode!r} is neither rules, none nor an existing file")
    try:
        if path.suffix in (".jsonl", ".ndjson", ".json"):
            spans = pd.read_json(path, lines=path.suffix != ".json")
        else:
            spans = pd.read_parquet(path)
    except (ValueError, OSError) as exc:
        raise SpanbankError(
            f"--preannotate: cannot read {path}: {str(exc).splitlines()[0]}"
        ) from None
    missing = {"article_id", "label", "start", "end"} - set(spans.columns)
    if missing:
        raise SpanbankError(f"--preannotate: {path} lacks column(s) {', '.join(sorted(missing))}")
    spans = spans[spans["article_id"].isin(texts)].dropna(subset=["label", "start", "end"])
    _check_file_spans(spans, texts, path, schema)
    version = f"file:{path.name}"
    for aid, group in spans.groupby("article_id", sort=False):
        text = texts[aid]
        good = group.to_dict("records")
        for r in good:  # ids as text: a column with a missing id reads 1 as 1.0
            if "span_id" in r and not pd.isna(r["span_id"]):
                r["span_id"] = _id_text(r["span_id"])
        if good:
            result = convert.spans_to_result(text, good, _file_links(good, path, schema), schema)
            scores = [_score(r, path) for r in good if pd.notna(r.get("score", np.nan))]
            score = sum(scores) / len(scores) if scores else None
            out[aid] = [convert.prediction(result, version, score)]
    missing = len(texts) - len(out)
    if missing:
        why[f"no spans in {path.name}"] = missing
    return out, why


def _check_file_spans(spans: pd.DataFrame, texts: dict, path: Path, schema) -> None:
    """Refuse a predictions file whose spans (of the batch's articles) the schema or the texts
    cannot hold, naming the first: dropped, annotators would never see them."""
    unknown = sorted(set(map(str, spans["label"])) - set(schema.labels))
    if unknown:
        raise SpanbankError(
            f"--preannotate: {path.name}: span label(s) {', '.join(unknown)} not in schema "
            f"{schema.ident} ({', '.join(schema.labels)})"
        )
    for r in spans.itertuples(index=False):
        n = len(texts[r.article_id])
        try:
            start, end = float(r.start), float(r.end)
        except (TypeError, ValueError):
            start = end = float("nan")
        if not (start.is_integer() and end.is_integer() and 0 <= start < end <= n):
            raise SpanbankError(
                f"--preannotate: {path.name}: span {r.start}..{r.end} of article "
                f"{r.article_id!r} does not fit its text (length {n})"
            )
        attrs = getattr(r, "attributes", None)
        try:
            attrs = json.loads(attrs) if isinstance(attrs, str) else attrs
        except ValueError:
            attrs = {"": attrs}  # not JSON: refused below, as no attribute of the label
        if isinstance(attrs, dict):
            given = {k: v for k, v in attrs.items() if v is not None and v == v}
            reason = schema.check_span(r.label, given) if given else None
            if reason is not None:
                raise SpanbankError(
                    f"--preannotate: {path.name}: article {r.article_id!r}: {reason}"
                )


def _file_links(rows: list[dict], path: Path, schema) -> list[dict]:
    """Relations of a predictions file's spans: each row's `links` (JSON list of {label, to},
    what `preannotate --out` writes) from its span_id; a label not in the schema is an error."""
    relations = []
    for r in rows:
        links = r.get("links")
        if not isinstance(links, str | list | np.ndarray) or pd.isna(r.get("span_id")):
            continue
        where = f"--preannotate: {path}: span {r['span_id']} of article {r['article_id']}"
        try:
            links = json.loads(links) if isinstance(links, str) else list(links)
            relations += [
                {"from_span_id": r["span_id"], "to_span_id": _id_text(k["to"]), "label": k["label"]}
                for k in links
            ]
        except (ValueError, TypeError, KeyError):
            raise SpanbankError(
                f"{where} has links that are not a JSON list of {{label, to}}: "
                f"{str(r['links'])[:80]}"
            ) from None
    unknown = sorted({str(x["label"]) for x in relations} - set(schema.relations))
    if unknown:
        raise SpanbankError(
            f"--preannotate: {path}: link label(s) {', '.join(unknown)} not in schema "
            f"{schema.ident} ({', '.join(sorted(schema.relations))})"
        )
    return relations


def _id_text(value) -> str:
    """A span id as text: 1.0 (an integer id in a column pandas made float) as 1."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _score(row: dict, path: Path) -> float:
    try:
        return float(row["score"])
    except (TypeError, ValueError):
        raise SpanbankError(
            f"--preannotate: {path}: score {row['score']!r} of article {row['article_id']} is "
            "not a number"
        ) from None


def _server_tasks(client: LabelStudioClient, project_id: int) -> pd.DataFrame:
    """(ls_task_id, article_id) of every task in the project, listed cheaply (id + meta); read
    again when tasks were added or deleted meanwhile (an article it lacks is pushed again)."""
    for _ in range(LISTING_TRIES):
        rows, bare = [], []
        try:
            for page in client.task_pages(project_id, include=["id", "meta"], page_size=1000):
                for t in page:
                    aid = (t.get("meta") or {}).get("article_id")
                    if aid is not None:
                        rows.append((t["id"], aid))
                    else:
                        bare.append(t["id"])
        except ListingChangedError:
            continue
        break
    else:
        raise ListingChangedError(
            f"the tasks of Label Studio project {project_id} were added or deleted while spanbank "
            f"listed them, {LISTING_TRIES} times; push again"
        )
    if bare:  # tasks made elsewhere: their article_id, if any, is in data
        for page in client.task_pages(project_id, include=["id", "data"], ids=bare):
            rows += [(t["id"], (t.get("data") or {}).get("article_id")) for t in page]
    return pd.DataFrame(rows, columns=["ls_task_id", "article_id"]).astype({"ls_task_id": "int64"})


def push_batch(
    corpus: Corpus,
    project: str,
    *,
    client: LabelStudioClient | None = None,
    url: str | None = None,
    api_key: str | None = None,
    batch_size: int | None = None,
    overlap: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    ids: Iterable[str] | None = None,
    where: str | None = None,
    preannotate: str | Callable[[pd.DataFrame], dict[str, list[dict]]] | None = None,
    update_config: bool = False,
    dry_run: bool = False,
    wait: bool | float = False,
    chunk_size: int = CHUNK_SIZE,
    create: bool = True,
    repush_missing: bool = False,
    select: str | None = None,
    ml_backend: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> Workflow:
    """Push articles not yet in Label Studio project `project` as tasks; summary as return value.

    Creates the project from the corpus schema if needed and `create` (or checks its config),
    reconciles with the tasks already on the server (recording any we lost track of), then
    imports in chunks, recording each chunk in `tasks` as soon as the server confirms it.
    Articles recorded as pushed whose tasks are gone from the server (a project deleted or
    recreated in Label Studio) are counted, and pushed again with `repush_missing`. Holding
    the corpus lock throughout keeps two pushes from creating tasks for the same article.
    The rule tagger or model (--preannotate, --select uncertain) runs in parts on the engine
    of `workers`/`scheduler`: in this process unless they (or their variables) ask.
    """
    check_push(corpus, project, overlap, preannotate)
    articles = selection_frame(corpus, where)  # ids (and metadata for --where), no text
    if articles.empty:
        raise CorpusError(f"corpus {corpus.path} has no articles; run `spanbank ingest` first")
    selected, skipped = select_articles(articles, ids=ids, where=where)
    client = client or connect(url, api_key)
    batch_id = f"{project}-{utc_now().strftime('%Y%m%dT%H%M%S%fZ')}"
    summary = {"project": project, "ls_url": client.url, "batch_id": batch_id, "dry_run": dry_run}
    with (
        corpus.writer(wait) as writer,
        ThreadPoolExecutor(max_workers=1) as server_side,
        ThreadPoolExecutor(max_workers=1) as encoder,
        engine(asked_workers(workers, scheduler), scheduler) as eng,
    ):
        yield Event("project", 0, None)
        server = identity.resolve_server(client, corpus, writer)
        if server.moved_from:
            summary["moved_from"] = server.moved_from
        local = corpus.read("tasks")
        recorded = recorded_project(corpus, local, project, client.url)
        if overlap is not None:
            _check_planned_overlap(client, corpus, project, overlap)
        # the project is looked up (or created) while the batch is read and its first chunks
        # are encoded here; only a project that already held tasks can change the batch
        looked_up = server_side.submit(
            ensure_project,
            client,
            corpus,
            project,
            overlap=overlap,
            update_config=update_config,
            create=not dry_run,
            allow_new=create,  # a dry run without --create says what the push would: missing
            recorded_id=recorded[0],
        )
        local = local[(local["project"] == project) & (local["ls_url"] == client.url)]
        picks = bool(sample or batch_size)  # a pick a re-run would not make again
        rest = _unfinished_batch(corpus, project, client.url, local, articles) if picks else []
        if rest:  # finish the batch a push like this one was stopped in, not pick one anew
            selected = articles[articles["article_id"].isin(set(rest))]
            sample = batch_size = select = None
            summary["resumed_batch"] = len(rest)
        batch = _Batch(corpus, selected, preannotate, sample, seed, batch_size, chunk_size)
        batch.select, batch.eng = select, eng
        batch.pick(set(local["article_id"]), encoder=None if dry_run else encoder)
        proj, state = looked_up.result()
        if state == "missing":
            raise missing_project(client, corpus, project, recorded[0], pulling=False)
        change = _describe_project(summary, client, recorded, proj, state)
        pid = summary["ls_project_id"]
        record = functools.partial(
            _record_tasks, writer, project, client.url, pid, corpus.schema.ident
        )
        reconciled, gone = (
            pd.DataFrame(columns=["ls_task_id", "article_id"]),
            set(local["article_id"]),
        )
        if pid is not None and state != "created":  # a new project holds no tasks yet
            yield Event("reconcile", 0, None)
            reconciled, gone = _reconcile(client, pid, local, articles, summary, dry_run)
            if len(reconciled) and not dry_run:
                record(reconciled, f"{batch_id}-reconciled")
        if gone:
            summary["missing_from_server"] = len(gone)
            if not repush_missing:
                summary["hint"] = (
                    "articles recorded as pushed are gone from the server; pass --repush-missing to push them again"
                )
        if len(reconciled) or (gone and repush_missing):
            # the batch as if those tasks had been recorded all along
            done_ids = set(local["article_id"]) - (gone if repush_missing else set())
            batch.pick(
                done_ids | set(reconciled["article_id"]), encoder=None if dry_run else encoder
            )
        skipped.update(batch.picked)
        summary["reconciled"] = len(reconciled)
        summary["selected"] = len(batch.todo)
        summary["predictions"] = len(batch.preds)
        if isinstance(preannotate, str) and preannotate != "none":
            summary["without_predictions"] = dict(sorted(batch.why.items()))
        if dry_run:
            summary["pushed"] = 0
            summary["would_push"] = len(batch.todo)
            summary["skipped"] = {k: v for k, v in skipped.items() if v}
            return summary
        save_project(
            writer,
            corpus,
            project=project,
            ls_url=client.url,
            ls_project_id=pid,
            schema_version=corpus.schema.ident,
            created_at=utc_now(),
            ls_created_at=proj.get("created_at"),
            maximum_annotations=proj.get("maximum_annotations"),
            **({"pull_cursor": pd.NaT} if change else {}),
        )
        if ml_backend:
            from spanbank.labelstudio.mlbackend import register

            summary["ml_backend"] = register(client, pid, ml_backend)
        if picks and not rest and batch.ids:  # before the import: see `_unfinished_batch`
            writer.append(
                BATCHES_TABLE,
                pd.DataFrame(
                    {"project": project, "ls_url": client.url, "batch_id": batch_id}
                    | {"article_id": batch.ids, "picked_at": utc_now()}
                ),
            )
        summary["pushed"] = yield from _import_chunks(
            client, pid, batch, server_side, encoder, record, batch_id, summary
        )
        held = len(set(local["article_id"]) - gone) + len(reconciled) + summary["pushed"]
        if held > PROJECT_TASKS:
            summary["project_size"] = (
                f"{held:,} articles in this project; Label Studio advises about "
                f"{PROJECT_TASKS:,} tasks per project: push further batches to another project"
            )
    summary["skipped"] = {k: v for k, v in skipped.items() if v}
    return summary


def _check_planned_overlap(client, corpus: Corpus, project: str, overlap: int) -> None:
    """Refuse a new --overlap for a project whose tasks were planned one by one: Label Studio
    would set every planned task of overlap > 1 (or every task, for 1) to it, behind the plan."""
    plans = task_plans(corpus, project)
    if plans.empty or not (plans["ls_url"] == client.url).any():
        return
    found = client.find_project(project, fields=("maximum_annotations",))
    if found is not None and found.get("maximum_annotations") != overlap:
        raise SpanbankError(
            f"project {project}'s tasks were planned one by one (push --overlap-share/--honeypots); "
            f"--overlap {overlap} would make Label Studio set every planned task of overlap > 1 "
            f"to {overlap}: leave --overlap out, or plan this batch too (--overlap {overlap} "
            "--overlap-share 1)"
        )


def check_push(corpus: Corpus, project: str, overlap: int | None, preannotate) -> None:
    """Refuse, before any work, a push that cannot be right: no corpus, a bad name or overlap,
    or a review project (review tasks are sent by `adjudicate --review`, with a callable)."""
    corpus.require()
    if project != project.strip():  # Label Studio strips them: a second project, unfindable
        raise SpanbankError(
            f"project name {project!r} begins or ends with a space, which Label Studio drops; "
            f"name it {project.strip()!r}"
        )
    if len(project) < MIN_TITLE:
        raise SpanbankError(
            f"project name {project!r} is too short: Label Studio needs >= {MIN_TITLE} characters"
        )
    if overlap is not None and overlap < 1:
        raise SpanbankError("--overlap must be at least 1")
    if callable(preannotate):
        return
    if isinstance(preannotate, str) and preannotate.startswith("model:"):
        from spanbank.model import check, check_labels

        check(preannotate[len("model:") :])
        check_labels(preannotate[len("model:") :], corpus.schema)
    records = project_records(corpus)
    if (
        "kind" in records
        and (records.loc[records["project"] == project, "kind"] == REVIEW_KIND).any()
    ):
        raise SpanbankError(
            f"{project} is a review project; send conflicts to it with "
            "`spanbank adjudicate --review`, not `spanbank push`"
        )


def _unfinished_batch(corpus, project: str, ls_url: str, local, articles) -> list[str]:
    """The articles of the last batch picked by `--batch-size` or `--sample` for `project` that
    are still in the corpus but not pushed: that push stopped (Ctrl-C, a kill, a server error)
    before it finished. Its pick is recorded before its import (`push_batches`)."""
    picked = corpus.read(BATCHES_TABLE)
    picked = picked[(picked["project"] == project) & (picked["ls_url"] == ls_url)]
    if picked.empty:
        return []
    last = picked[picked["batch_id"] == picked.sort_values("picked_at")["batch_id"].iloc[-1]]
    done, here = set(local["article_id"]), set(articles["article_id"])
    return [a for a in last["article_id"] if a not in done and a in here]


class _Batch:
    """The articles one push sends: picked from the selection, with their predictions, in chunks
    of rows whose JSON bodies are encoded ahead of the import (two chunks ahead at most)."""

    def __init__(self, corpus, selected, preannotate, sample, seed, batch_size, chunk_size):
        self.corpus, self.selected, self.preannotate = corpus, selected, preannotate
        self.sample, self.seed, self.batch_size, self.chunk_size = (
            sample,
            seed,
            batch_size,
            chunk_size,
        )
        self.todo = selected.iloc[:0]
        self.select: str | None = None
        self.eng: Engine | None = None
        self.ids: list | None = None
        self.tagged: dict = {}  # article_id -> the model's tagging, kept from --select uncertain
        self.preds: dict[str, list[dict]] = {}
        self.why: Counter = Counter()
        self.chunks: list[list[dict]] = []
        self.bodies: dict = {}
        self.picked: Counter = Counter()

    def pick(self, pushed_ids: set, encoder: ThreadPoolExecutor | None) -> None:
        """Pick the batch leaving out `pushed_ids`; re-plan only when that changed the batch."""
        self.picked = Counter()
        if self.select:
            todo = self._ordered(pushed_ids)
        else:
            todo = _pick(
                self.selected, pushed_ids, self.picked, self.sample, self.seed, self.batch_size
            )
        ids = todo["article_id"].tolist()
        tagged, self.tagged = self.tagged, {}  # used once, for these predictions
        if ids == self.ids:
            return
        self.ids, self.todo = ids, attach_rows(self.corpus, todo)
        self.preds, self.why = (
            _predictions(self.preannotate, self.todo, self.corpus.schema, self.eng, tagged)
            if len(self.todo)
            else ({}, Counter())
        )
        cols = ["article_id", "title", "text"] + [
            c for c in ("source", "url", "language") if c in self.todo
        ]
        rows = self.todo[cols].to_dict("records")
        self.chunks = import_chunks(rows, self.chunk_size, CHUNK_CHARS)
        self.bodies = {}
        if encoder is not None:
            for k in range(min(2, len(self.chunks))):
                self.prefetch(encoder, k)

    def tasks(self, chunk: list[dict]) -> list[dict]:
        """Label Studio tasks of a chunk of article rows, with their predictions."""
        tasks = [convert.article_task(r, self.preds.get(r["article_id"])) for r in chunk]
        for t, r in zip(tasks, chunk, strict=True):
            t["meta"]["article_id"] = r["article_id"]
        return tasks

    def _ordered(self, pushed_ids) -> pd.DataFrame:
        """The unpushed articles by --select, at most batch_size (the model's tagging of those is
        kept in `tagged` for their predictions)."""
        from spanbank.selection import rank_articles

        fresh = _pick(self.selected, pushed_ids, self.picked, None, self.seed, None)
        mode = self.preannotate if isinstance(self.preannotate, str) else ""
        model_dir = mode[len("model:") :] if mode.startswith("model:") else None
        todo, self.tagged = rank_articles(
            self.corpus, fresh, self.select, self.seed, model_dir, self.eng, self.batch_size
        )
        if self.batch_size is not None and self.batch_size < len(todo):
            self.picked["beyond --batch-size"] += len(todo) - self.batch_size
            todo = todo.iloc[: self.batch_size]
        return todo

    def prefetch(self, encoder: ThreadPoolExecutor, k: int) -> None:
        if k < len(self.chunks):
            self.bodies[k] = encoder.submit(lambda c: encode_json(self.tasks(c)), self.chunks[k])

    def body(self, k: int) -> bytes:
        return self.bodies.pop(k).result()


def import_chunks(rows: list[dict], size: int, chars: int = CHUNK_CHARS) -> list[list[dict]]:
    """Article rows cut into imports of at most `size` rows and `chars` characters of title and
    text, in order; an article longer than `chars` goes alone."""
    chunks: list[list[dict]] = []
    n = 0
    for r in rows:
        k = sum(len(v) for v in (r.get("title"), r.get("text")) if isinstance(v, str))
        if not chunks or len(chunks[-1]) >= size or n + k > chars:
            chunks.append([])
            n = 0
        chunks[-1].append(r)
        n += k
    return chunks


def _describe_project(summary: dict, client, recorded, proj: dict | None, state: str) -> str | None:
    """Put the project's id, URL and state in `summary`; returns how it changed since recorded."""
    change = project_change(recorded, proj)
    if change:
        summary[f"project_{change}"] = f"was Label Studio id {recorded[0]}"
    summary["project_state"] = state
    pid = int(proj["id"]) if proj else None
    summary["ls_project_id"] = pid
    summary["project_url"] = client.project_url(pid) if pid else None
    return change


def _reconcile(client, pid: int, local, articles, summary: dict, dry_run: bool):
    """Tasks the server holds for our articles that `tasks` lacks, and the articles `tasks`
    records whose tasks are all gone; removes idle duplicate tasks (unless `dry_run`)."""
    remote = _server_tasks(client, pid)
    dup = remote["article_id"].dropna().duplicated().sum()
    if dup and not dry_run:
        # an import the client gave up on (timeout) can land after its retry did
        removed = _remove_duplicate_tasks(client, pid, remote, local)
        if removed:
            summary["duplicate_tasks_removed"] = len(removed)
            remote = remote[~remote["ls_task_id"].isin(removed)]
        dup -= len(removed)
    if dup:
        summary["duplicate_tasks_on_server"] = int(dup)
    ours = remote[remote["article_id"].isin(articles["article_id"])]
    reconciled = ours[~ours["ls_task_id"].isin(local["ls_task_id"])]
    reconciled = reconciled[~reconciled["article_id"].isin(local["article_id"])]
    return reconciled.drop_duplicates("article_id"), _gone_articles(local, remote)


def _record_tasks(
    writer, project, ls_url, pid, schema_version, done: pd.DataFrame, batch_id
) -> None:
    writer.append("tasks", _task_rows(done, project, ls_url, pid, batch_id, schema_version))


def _import_chunks(client, pid, batch: _Batch, server_side, encoder, record, batch_id, summary):
    """Import the batch's chunks one at a time, recording each as the server confirms it.

    The next chunk travels while this one is recorded, and the one after it is encoded
    meanwhile, so the server never waits on us between chunks. Anything in flight at a crash
    is reconciled by the next push (the project is found by its title)."""
    chunks, total, pushed = batch.chunks, len(batch.todo), 0

    def send(k: int) -> list[int]:
        return client.import_tasks(pid, batch.body(k), len(chunks[k]))

    future = server_side.submit(send, 0) if chunks else None
    yield Event("push", 0, total)
    for k, chunk in enumerate(chunks):
        try:
            task_ids = future.result()
        except LabelStudioError:
            task_ids, chunk, found = _recover_chunk(client, pid, batch.tasks(chunk), chunk)
            if len(found):
                record(found, f"{batch_id}-reconciled")
                summary["reconciled"] += len(found)
        if k + 1 < len(chunks):
            future = server_side.submit(send, k + 1)
        batch.prefetch(encoder, k + 2)
        if chunk:
            ids = [r["article_id"] for r in chunk]
            record(pd.DataFrame({"ls_task_id": task_ids, "article_id": ids}), batch_id)
            pushed += len(chunk)
        yield Event("push", pushed, total)
    return pushed


def _gone_articles(local: pd.DataFrame, remote: pd.DataFrame) -> set:
    """Articles `local` records as pushed none of whose recorded tasks the server still has."""
    present = local.loc[local["ls_task_id"].isin(remote["ls_task_id"]), "article_id"]
    return set(local["article_id"]) - set(present)


def _recover_chunk(client, pid, tasks, chunk):
    """After a failed import: which of the chunk's articles the server has, and import the rest once."""
    remote = _server_tasks(client, pid)
    found = remote[remote["article_id"].isin([r["article_id"] for r in chunk])].drop_duplicates(
        "article_id"
    )
    have = set(found["article_id"])
    rest = [(t, r) for t, r in zip(tasks, chunk, strict=True) if r["article_id"] not in have]
    if not rest:
        return [], [], found
    return client.import_tasks(pid, [t for t, _ in rest]), [r for _, r in rest], found


def _remove_duplicate_tasks(client, pid, remote: pd.DataFrame, local: pd.DataFrame) -> list[int]:
    """Delete extra server tasks of one article that hold no human work; returns their ids.

    The task kept is the one `tasks` records, else the oldest; a duplicate with annotations,
    skips or drafts is left alone (and still reported as a duplicate).
    """
    ours = remote.dropna(subset=["article_id"])
    ours = ours[ours["article_id"].duplicated(keep=False)].sort_values("ls_task_id")
    recorded = set(local["ls_task_id"].astype("int64"))
    extra = []
    for _, group in ours.groupby("article_id", sort=False):
        ids = group["ls_task_id"].astype("int64").tolist()
        keep = next((t for t in ids if t in recorded), ids[0])
        extra += [t for t in ids if t != keep and t not in recorded]
    if not extra:
        return []
    fields = ["id", "total_annotations", "cancelled_annotations", "drafts"]
    idle = [
        int(t["id"])
        for page in client.task_pages(pid, include=fields, ids=extra)
        for t in page
        if t.get("total_annotations") == 0
        and t.get("cancelled_annotations") == 0
        and not t.get("drafts")
    ]
    for tid in idle:
        client.delete_task(tid)
    return idle


def _task_rows(df: pd.DataFrame, project, ls_url, pid, batch_id, schema_version) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "project": project,
            "ls_url": ls_url,
            "ls_project_id": int(pid),
            "article_id": df["article_id"].to_numpy(),
            "ls_task_id": df["ls_task_id"].astype("int64").to_numpy(),
            "batch_id": batch_id,
            "pushed_at": utc_now(),
            "schema_version": schema_version,
        }
    )
