"""Push and pull workflows between the corpus and Label Studio: generators yielding progress, never printing.

Each workflow is a generator: iterate it for progress events (dicts with `stage`, `done`,
`total`), and its return value (``StopIteration.value``, or use `run`) is the summary.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections import Counter
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spanbank import identity
from spanbank.corpus import Corpus
from spanbank.corpus.articles import article_meta, attach_text
from spanbank.errors import (
    CorpusError,
    LabelStudioError,
    LabelStudioServerError,
    ProjectMissingError,
    SpanbankError,
)
from spanbank.labelstudio import convert
from spanbank.labelstudio.client import LabelStudioClient, encode_json, redact_url
from spanbank.schema import normalise_config

PROJECTS_TABLE = "projects"  # per project: LS id, schema, pull cursor (an extra table)
REVIEW_KIND = "review"  # projects.kind of a review project (spanbank.review); null: annotation
PSEUDONYM_KEY_FILE = ".pseudonym_key"
CHUNK_SIZE = 2500  # tasks per import: each request costs the server ~30-50 ms on top of its tasks
PAGE_SIZE = 500
MIN_TITLE = 3
SPLIT_TRIES = 2  # attempts per request while narrowing down a page Label Studio cannot serialise
# annotations.invalid_reason of an annotation made on a task whose text was edited in Label Studio
TEXT_EDITED = "task text in Label Studio differs from the article text"
# what ensure_project reads of a found project (the full JSON counts its tasks: slow on a big one)
PROJECT_FIELDS = ("id", "title", "label_config", "maximum_annotations", "created_at")

Event = dict
Workflow = Generator[Event, None, dict]


def run(workflow: Workflow, on_event: Callable[[Event], None] | None = None) -> dict:
    """Drive a workflow generator to its end, passing events to `on_event`; returns the summary."""
    while True:
        try:
            event = next(workflow)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)


def connect(url: str | None = None, api_key: str | None = None) -> LabelStudioClient:
    """A client for flags > LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY > the local server's env file."""
    from spanbank.server import connection

    try:
        return LabelStudioClient(*connection(url, api_key))
    except LabelStudioError as exc:  # its message may quote a URL holding a password
        raise type(exc)(redact_url(str(exc))) from None


def utc_now() -> pd.Timestamp:
    """Now in UTC, to the microsecond (what the tables' timestamps hold)."""
    return pd.Timestamp.now(tz="UTC").floor("us")


# ======================================================================== project records
def _project_records(corpus: Corpus) -> pd.DataFrame:
    df = corpus.read(PROJECTS_TABLE)
    if df.empty or "project" not in df.columns:
        return pd.DataFrame(columns=["project", "ls_url", "ls_project_id", "schema_version",
                                     "created_at", "pull_cursor", "last_pull_at"])
    return df


def save_project(writer, corpus: Corpus, **fields) -> None:
    """Insert or update the `projects` record of (fields["project"], fields["ls_url"]).

    None fields keep their value, and so does an existing record's `created_at`.
    """
    rows = _project_records(corpus).to_dict("records")
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


def ensure_project(
    client: LabelStudioClient, corpus: Corpus, project: str, *, overlap: int | None = None,
    update_config: bool = False, create: bool = True, allow_new: bool = True,
) -> tuple[dict | None, str]:
    """Find the LS project titled `project` (creating it from the schema), check its config.

    Returns (project JSON or None in a dry run, what happened: found/created/updated);
    (None, "missing") when it does not exist and `allow_new` is False.
    """
    schema = corpus.schema
    config = schema.label_config()
    found = client.find_project(project, fields=PROJECT_FIELDS)
    if found is None:
        if not allow_new:
            return None, "missing"
        if not create:
            return None, "would create"
        body = {"description": f"spanbank corpus {corpus.path.name}; schema {schema.ident}"}
        if overlap:
            body["maximum_annotations"] = int(overlap)
        return client.create_project(project, config, **body), "created"
    state = "found"
    if normalise_config(found.get("label_config") or "") != normalise_config(config):
        if not update_config:
            raise SpanbankError(
                f"project {project}'s labeling config differs from schema {schema.ident}; "
                "pass --update-config to replace it"
            )
        if create:
            found = client.update_project(found["id"], label_config=config)
        state = "config updated"
    if overlap and found.get("maximum_annotations") != overlap and create:
        found = client.update_project(found["id"], maximum_annotations=int(overlap))
    return found, state


def recorded_project(corpus: Corpus, tasks: pd.DataFrame, project: str, ls_url: str) -> tuple[int | None, str | None]:
    """(Label Studio id, its creation stamp) the corpus last recorded for `project` on `ls_url`."""
    records = _project_records(corpus)
    rec = records[(records["project"] == project) & (records["ls_url"] == ls_url)]
    if len(rec):
        stamp = rec["ls_created_at"].iloc[-1] if "ls_created_at" in rec else None
        return int(rec["ls_project_id"].iloc[-1]), stamp if isinstance(stamp, str) else None
    mine = tasks[(tasks["project"] == project) & (tasks["ls_url"] == ls_url)]
    return (int(mine["ls_project_id"].iloc[-1]), None) if len(mine) else (None, None)


def project_change(recorded: tuple[int | None, str | None], found: dict | None) -> str | None:
    """How the server's project differs from the one recorded: None, "deleted" or "recreated"."""
    pid, stamp = recorded
    if pid is None:
        return None
    if found is None:
        return "deleted"
    if int(found["id"]) != pid or (stamp and found.get("created_at") and found["created_at"] != stamp):
        return "recreated"
    return None


def _missing_project(client: LabelStudioClient, corpus: Corpus, project: str, pid: int | None, *, pulling: bool) -> ProjectMissingError:
    """The one-line error for a project title the server lacks (deleted, or never made, or a typo)."""
    if pid is not None:
        return ProjectMissingError(
            f"project {project} (Label Studio id {pid}) is gone from {client.url}: deleted in Label Studio? "
            f"{'nothing pulled; ' if pulling else ''}push its articles again with "
            f"`spanbank push --project {project} --create --repush-missing`"
        )
    names = identity.known_projects(corpus)
    try:
        listed = client.request("GET", "api/projects/", params={"include": "id,title", "page_size": 1000})
        names += [p.get("title") for p in (listed or {}).get("results", []) if p.get("title")]
    except LabelStudioError:
        pass  # suggestions from the corpus alone
    hint = identity.did_you_mean(project, names)
    todo = (f"push to it first (`spanbank push --project {project} --create`)" if pulling
            else "pass --create to create it")
    return ProjectMissingError(f"no project {project!r} on {client.url}; {todo}{hint}")


# ======================================================================== push
def select_articles(
    articles: pd.DataFrame, *, ids: Iterable[str] | None = None, where: str | None = None,
) -> tuple[pd.DataFrame, Counter]:
    """Articles matching `ids` and the pandas query `where`; also counts of what was left out."""
    skipped: Counter = Counter()
    if ids is not None:
        wanted = pd.Index(pd.unique(pd.Series(list(ids), dtype=object)))
        unknown = wanted.difference(pd.Index(articles["article_id"]))
        if len(unknown):
            skipped["not in corpus"] += len(unknown)
        articles = articles[articles["article_id"].isin(wanted)]
    if where:
        meta = articles.drop(columns=["text"], errors="ignore")
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


def _pick(selected: pd.DataFrame, pushed_ids: set, skipped: Counter, sample: int | None, seed: int,
          batch_size: int | None) -> pd.DataFrame:
    """The selected articles not yet pushed, sampled, at most `batch_size`; counts the rest in `skipped`."""
    already = selected["article_id"].isin(pushed_ids)
    skipped["already pushed"] += int(already.sum())
    todo = selected[~already]
    if sample is not None and sample < len(todo):
        skipped["not sampled"] += len(todo) - sample
        todo = todo.sample(n=sample, random_state=seed).sort_index()
    if batch_size is not None and batch_size < len(todo):
        skipped["beyond --batch-size"] += len(todo) - batch_size
        todo = todo.iloc[:batch_size]
    return todo


def select_batch(
    corpus: Corpus, project: str, ls_url: str, *, ids: Iterable[str] | None = None, where: str | None = None,
    sample: int | None = None, seed: int = 0, batch_size: int | None = None,
) -> tuple[pd.DataFrame, Counter]:
    """The articles (with text) a push to `project` on `ls_url` would send next, as push_batch picks
    them from the corpus alone (without reconciling with the server), and counts of what was left out."""
    articles = article_meta(corpus)
    selected, skipped = select_articles(articles, ids=ids, where=where)
    local = corpus.read("tasks", columns=["project", "ls_url", "article_id"])
    local = local[(local["project"] == project) & (local["ls_url"] == ls_url.rstrip("/"))]
    todo = _pick(selected, set(local["article_id"]), skipped, sample, seed, batch_size)
    return attach_text(corpus, todo), skipped


def _predictions(mode: str | None, candidates: pd.DataFrame, schema) -> dict[str, list[dict]]:
    """article_id -> LS predictions, from the rule tagger, a spans file (Parquet/JSONL) or a
    callable given the candidate articles (how `spanbank.review` attaches its predictions)."""
    if callable(mode):
        return mode(candidates)
    if not mode or mode == "none":
        return {}
    texts = dict(zip(candidates["article_id"], candidates["text"], strict=True))
    out: dict[str, list[dict]] = {}
    if mode == "rules":
        from spanbank.preannotate import TAGGER_VERSION, preannotate

        for aid, text in texts.items():
            tagged = preannotate(text)
            if tagged["spans"]:
                result = convert.spans_to_result(text, tagged["spans"], tagged["relations"], schema)
                scores = [s.get("score", 1.0) for s in tagged["spans"]]
                out[aid] = [convert.prediction(result, TAGGER_VERSION, sum(scores) / len(scores))]
        return out
    path = Path(mode)
    if not path.exists():
        raise SpanbankError(f"--preannotate: {mode!r} is neither rules, none nor an existing file")
    try:
        if path.suffix in (".jsonl", ".ndjson", ".json"):
            spans = pd.read_json(path, lines=path.suffix != ".json")
        else:
            spans = pd.read_parquet(path)
    except (ValueError, OSError) as exc:
        raise SpanbankError(f"--preannotate: cannot read {path}: {str(exc).splitlines()[0]}") from None
    missing = {"article_id", "label", "start", "end"} - set(spans.columns)
    if missing:
        raise SpanbankError(f"--preannotate: {path} lacks column(s) {', '.join(sorted(missing))}")
    spans = spans[spans["article_id"].isin(texts)].dropna(subset=["label", "start", "end"])
    version = f"file:{path.name}"
    for aid, group in spans.groupby("article_id", sort=False):
        text = texts[aid]
        rows = group.to_dict("records")
        good = [r for r in rows if 0 <= int(r["start"]) < int(r["end"]) <= len(text)]
        if good:
            out[aid] = [convert.prediction(convert.spans_to_result(text, good, (), schema), version)]
    return out


def _server_tasks(client: LabelStudioClient, project_id: int) -> pd.DataFrame:
    """(ls_task_id, article_id) of every task in the project, listed cheaply (id + meta)."""
    rows, bare = [], []
    for page in client.task_pages(project_id, include=["id", "meta"], page_size=1000):
        for t in page:
            aid = (t.get("meta") or {}).get("article_id")
            if aid is not None:
                rows.append((t["id"], aid))
            else:
                bare.append(t["id"])
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
) -> Workflow:
    """Push articles not yet in Label Studio project `project` as tasks; summary as return value.

    Creates the project from the corpus schema if needed and `create` (or checks its config),
    reconciles with the tasks already on the server (recording any we lost track of), then
    imports in chunks, recording each chunk in `tasks` as soon as the server confirms it.
    Articles recorded as pushed whose tasks are gone from the server (a project deleted or
    recreated in Label Studio) are counted, and pushed again with `repush_missing`. Holding
    the corpus lock throughout keeps two pushes from creating tasks for the same article.
    """
    corpus.require()
    if len(project) < MIN_TITLE:
        raise SpanbankError(f"project name {project!r} is too short: Label Studio needs >= {MIN_TITLE} characters")
    if overlap is not None and overlap < 1:
        raise SpanbankError("--overlap must be at least 1")
    if not callable(preannotate):  # spanbank.review pushes review tasks with a callable
        records = _project_records(corpus)
        if "kind" in records and (records.loc[records["project"] == project, "kind"] == REVIEW_KIND).any():
            raise SpanbankError(
                f"{project} is a review project; send conflicts to it with "
                "`spanbank adjudicate --review`, not `spanbank push`"
            )
    schema = corpus.schema
    articles = article_meta(corpus)  # no text: a batch is small, the corpus may not be
    if articles.empty:
        raise CorpusError(f"corpus {corpus.path} has no articles; run `spanbank ingest` first")
    selected, skipped = select_articles(articles, ids=ids, where=where)
    client = client or connect(url, api_key)
    batch_id = f"{project}-{utc_now().strftime('%Y%m%dT%H%M%S%fZ')}"
    summary = {"project": project, "ls_url": client.url, "batch_id": batch_id, "dry_run": dry_run}
    with corpus.writer(wait) as writer, ThreadPoolExecutor(max_workers=1) as server_side, \
            ThreadPoolExecutor(max_workers=1) as encoder:
        yield {"stage": "project", "done": 0, "total": None}
        # the project is looked up (or created) while the batch is read and its first chunks
        # are encoded here; only a project that already held tasks can change the batch
        looked_up = server_side.submit(ensure_project, client, corpus, project, overlap=overlap,
                                       update_config=update_config, create=not dry_run,
                                       allow_new=create or dry_run)
        server = identity.resolve_server(client, corpus, writer)
        if server.moved_from:
            summary["moved_from"] = server.moved_from
        local = corpus.read("tasks")
        recorded = recorded_project(corpus, local, project, client.url)
        local = local[(local["project"] == project) & (local["ls_url"] == client.url)]

        def pick(pushed_ids: set) -> tuple[pd.DataFrame, Counter]:
            counts = Counter()
            return _pick(selected, pushed_ids, counts, sample, seed, batch_size), counts

        def build(chunk, preds):
            tasks = [convert.article_task(r, preds.get(r["article_id"])) for r in chunk]
            for t, r in zip(tasks, chunk, strict=True):
                t["meta"]["article_id"] = r["article_id"]
            return tasks

        def plan(todo):
            """The batch's predictions and rows in chunks; the first two chunks start encoding."""
            preds = _predictions(preannotate, todo, schema) if len(todo) else {}
            cols = ["article_id", "title", "text"] + [c for c in ("source", "url", "language") if c in todo]
            rows = todo[cols].to_dict("records")
            chunks = [rows[i : i + chunk_size] for i in range(0, len(rows), chunk_size)]
            bodies = {} if dry_run else {
                k: encoder.submit(lambda c: encode_json(build(c, preds)), chunks[k]) for k in range(min(2, len(chunks)))
            }
            return preds, chunks, bodies

        batch, picked = pick(set(local["article_id"]))
        todo = attach_text(corpus, batch)
        preds, chunks, bodies = plan(todo)
        proj, state = looked_up.result()
        if state == "missing":
            raise _missing_project(client, corpus, project, recorded[0], pulling=False)
        change = project_change(recorded, proj)
        if change:
            summary[f"project_{change}"] = f"was Label Studio id {recorded[0]}"
        summary["project_state"] = state
        pid = int(proj["id"]) if proj else None
        summary["ls_project_id"] = pid
        summary["project_url"] = client.project_url(pid) if pid else None
        # reconcile: tasks the server holds for our articles that `tasks` lacks
        reconciled = pd.DataFrame(columns=["ls_task_id", "article_id"])
        if pid is not None and state != "created":  # a new project holds no tasks yet
            yield {"stage": "reconcile", "done": 0, "total": None}
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
            reconciled = reconciled.drop_duplicates("article_id")
            if len(reconciled) and not dry_run:
                writer.append("tasks", _task_rows(reconciled, project, client.url, pid,
                                                  f"{batch_id}-reconciled", schema.ident))
            gone = _gone_articles(local, remote)
        else:  # a project just made (or to be made) holds none of what `tasks` records
            gone = set(local["article_id"])
        if gone:
            summary["missing_from_server"] = len(gone)
            if not repush_missing:
                summary["hint"] = "articles recorded as pushed are gone from the server; pass --repush-missing to push them again"
        if len(reconciled) or (gone and repush_missing):  # the batch as if those tasks had been recorded all along
            done_ids = set(local["article_id"]) - (gone if repush_missing else set())
            again, picked = pick(done_ids | set(reconciled["article_id"]))
            if again["article_id"].tolist() != batch["article_id"].tolist():
                todo = attach_text(corpus, again)
                preds, chunks, bodies = plan(todo)
        skipped.update(picked)
        summary["reconciled"] = len(reconciled)
        summary["selected"] = len(todo)
        summary["predictions"] = len(preds)
        pushed = 0
        if dry_run:
            summary["pushed"] = 0
            summary["would_push"] = len(todo)
            summary["skipped"] = {k: v for k, v in skipped.items() if v}
            return summary
        total = len(todo)

        def send(k: int) -> list[int]:
            return client.import_tasks(pid, bodies.pop(k).result(), len(chunks[k]))

        # one import at a time: the next chunk travels while this one is recorded, and the one
        # after it is encoded meanwhile, so the server never waits on us between chunks. A chunk
        # is still recorded only after the server confirmed it; anything in flight at a crash is
        # reconciled by the next push (the project is found by its title).
        future = server_side.submit(send, 0) if chunks else None
        save_project(writer, corpus, project=project, ls_url=client.url, ls_project_id=pid,
                     schema_version=schema.ident, created_at=utc_now(), ls_created_at=proj.get("created_at"),
                     maximum_annotations=proj.get("maximum_annotations"),
                     **({"pull_cursor": pd.NaT} if change else {}))
        yield {"stage": "push", "done": 0, "total": total}
        for k, chunk in enumerate(chunks):
            try:
                task_ids = future.result()
            except LabelStudioError:
                task_ids, chunk, found = _recover_chunk(client, pid, build(chunk, preds), chunk)
                if len(found):
                    writer.append("tasks", _task_rows(found, project, client.url, pid,
                                                      f"{batch_id}-reconciled", schema.ident))
                    summary["reconciled"] += len(found)
            if k + 1 < len(chunks):
                future = server_side.submit(send, k + 1)
            if k + 2 < len(chunks):
                bodies[k + 2] = encoder.submit(lambda c: encode_json(build(c, preds)), chunks[k + 2])
            if chunk:
                done = pd.DataFrame({"ls_task_id": task_ids, "article_id": [r["article_id"] for r in chunk]})
                writer.append("tasks", _task_rows(done, project, client.url, pid, batch_id, schema.ident))
                pushed += len(chunk)
            yield {"stage": "push", "done": pushed, "total": total}
    summary["pushed"] = pushed
    summary["skipped"] = {k: v for k, v in skipped.items() if v}
    return summary


def _gone_articles(local: pd.DataFrame, remote: pd.DataFrame) -> set:
    """Articles `local` records as pushed none of whose recorded tasks the server still has."""
    present = local.loc[local["ls_task_id"].isin(remote["ls_task_id"]), "article_id"]
    return set(local["article_id"]) - set(present)


def _recover_chunk(client, pid, tasks, chunk):
    """After a failed import: which of the chunk's articles the server has, and import the rest once."""
    remote = _server_tasks(client, pid)
    found = remote[remote["article_id"].isin([r["article_id"] for r in chunk])].drop_duplicates("article_id")
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
        if t.get("total_annotations") == 0 and t.get("cancelled_annotations") == 0 and not t.get("drafts")
    ]
    for tid in idle:
        client.delete_task(tid)
    return idle


def _task_rows(df: pd.DataFrame, project, ls_url, pid, batch_id, schema_version) -> pd.DataFrame:
    return pd.DataFrame({
        "project": project, "ls_url": ls_url, "ls_project_id": int(pid),
        "article_id": df["article_id"].to_numpy(), "ls_task_id": df["ls_task_id"].astype("int64").to_numpy(),
        "batch_id": batch_id, "pushed_at": utc_now(), "schema_version": schema_version,
    })


# ======================================================================== pull
def server_tag(ls_url: str) -> str:
    """Six hex digits of a URL: the tag of a server first seen before servers had fingerprints
    (`identity.resolve_server` gives every server's tag)."""
    return identity.url_tag(ls_url)


def pseudonym_key(corpus: Corpus) -> bytes:
    """The corpus's secret for annotator pseudonyms (`<corpus>/.pseudonym_key`, 0600, made once)."""
    path = corpus.path / PSEUDONYM_KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key


def pseudonym(key: bytes, ls_url: str, user_id) -> str:
    """`ann-` + 8 hex of HMAC-SHA256(key, basis|user id): stable, not reversible without the key.

    `ls_url` is the server's pseudonym basis (`identity.Server.basis`): its URL for a server
    first seen before fingerprints, else its fingerprint, so a new URL keeps every pseudonym.
    """
    msg = f"{ls_url.rstrip('/')}|{user_id}".encode()
    return "ann-" + hmac.new(key, msg, hashlib.sha256).hexdigest()[:8]


def _ts(value) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(value).tz_convert("UTC") if pd.Timestamp(value).tzinfo else pd.Timestamp(value, tz="UTC")
    except (ValueError, TypeError):
        return None


def _pull_project(client, corpus: Corpus, tasks: pd.DataFrame, project: str) -> tuple[dict, int | None]:
    """The server's project titled `project`, and the Label Studio id recorded for it when that
    project was since deleted and made again (else None).

    A project the corpus recorded that the server no longer has is an error: pulling it would
    mark every stored annotation deleted.
    """
    found = client.find_project(project, fields=("id", "created_at"))
    recorded = recorded_project(corpus, tasks, project, client.url)
    if found is None:
        raise _missing_project(client, corpus, project, recorded[0], pulling=True)
    return found, recorded[0] if project_change(recorded, found) else None


def annotation_project_ids(annotation_ids: pd.Series) -> pd.Series:
    """The Label Studio project id inside pulled annotation ids (`ls-<tag>-<pid>-<id>-v<n>`); NaN for others."""
    got = annotation_ids.astype("string").str.extract(r"^ls-[0-9a-f]+-(\d+)-\d+-v\d+$")[0]
    return pd.to_numeric(got, errors="coerce")


def pull(
    corpus: Corpus,
    project: str,
    *,
    client: LabelStudioClient | None = None,
    url: str | None = None,
    api_key: str | None = None,
    full: bool = False,
    wait: bool | float = False,
    page_size: int = PAGE_SIZE,
) -> Workflow:
    """Fetch new, edited and deleted annotations of `project` and store them as versions.

    A cheap listing (task id, annotation ids, updated_at) finds the tasks changed since the
    last pull's cursor and the annotations deleted in Label Studio; only those tasks are
    fetched in full (`full` fetches every annotated task). Spans are verified against the
    article text; edits become new versions (the old one superseded), deletions get
    `deleted_at`. Nothing an earlier pull stored is dropped.
    """
    corpus.require()
    schema = corpus.schema
    client = client or connect(url, api_key)
    summary: dict = {"project": project, "ls_url": client.url}
    counts: Counter = Counter()
    repairs: Counter = Counter()
    with corpus.writer(wait) as writer:
        server = identity.resolve_server(client, corpus, writer)
        if server.moved_from:  # a restart on another port, a new host name: the same server
            summary["moved_from"] = server.moved_from
        tasks = corpus.read("tasks", columns=["project", "ls_url", "ls_project_id", "ls_task_id", "article_id"])
        found, change = _pull_project(client, corpus, tasks, project)
        pid = int(found["id"])
        summary["ls_project_id"] = pid
        if change:
            summary["project_recreated"] = (
                f"the Label Studio project was deleted and made again (was id {change}); earlier "
                f"annotations are kept; push its articles again with "
                f"`spanbank push --project {project} --repush-missing`"
            )
        records = _project_records(corpus)
        rec = records[(records["project"] == project) & (records["ls_url"] == client.url)]
        saved_cursor = None if rec.empty or change else _ts(rec["pull_cursor"].iloc[-1])
        if saved_cursor is not None and pd.isna(saved_cursor):
            saved_cursor = None
        cursor = None if full else saved_cursor
        # a review project's annotations are adjudicated gold, not another annotator's work
        review_of = rec.iloc[-1].get("review_of") if len(rec) and rec.iloc[-1].get("kind") == REVIEW_KIND else None
        origin = "gold" if review_of is not None else "human"
        if review_of is not None:
            from spanbank.gold import REVIEW_ANNOTATOR
        # 1. cheap listing
        yield {"stage": "list", "done": 0, "total": None}
        listing = {}
        for page in client.task_pages(pid, include=["id", "annotations_ids", "updated_at"], page_size=1000):
            for t in page:
                ann_ids = {int(x) for x in str(t.get("annotations_ids") or "").split(",") if x.strip()}
                listing[int(t["id"])] = (t.get("updated_at"), ann_ids)
            yield {"stage": "list", "done": len(listing), "total": None}
        all_ann = corpus.read("annotations")
        extra_cols = [c for c in ("ls_url", "result_sha", "invalid_reason") if c not in all_ann.columns]
        for c in extra_cols:
            all_ann[c] = None
        is_mine = (all_ann["project"] == project) & (all_ann["ls_url"].fillna(client.url) == client.url)
        is_mine &= all_ann["origin"] == origin
        current = all_ann[is_mine & ~all_ann["superseded"].fillna(False).astype(bool)]
        live = current[current["deleted_at"].isna()]
        # an earlier (deleted) project's annotations are not deletions in this one
        live = live[annotation_project_ids(live["annotation_id"]).fillna(pid) == pid]
        local_ids = live.groupby("ls_task_id")["ls_annotation_id"].agg(set).to_dict()
        # 2. which tasks to fetch
        fetch = []
        for tid, (updated, ann_ids) in listing.items():
            if not ann_ids:
                continue
            ts = _ts(updated)
            if cursor is None or ts is None or ts > cursor or ann_ids - local_ids.get(tid, set()):
                fetch.append(tid)
        summary["tasks_listed"] = len(listing)
        summary["tasks_fetched"] = len(fetch)
        # 3. deletions: annotations we hold whose task no longer lists them
        now = utc_now()
        on_server = pd.MultiIndex.from_tuples(
            [(tid, a) for tid, (_, ids) in listing.items() for a in ids], names=["t", "a"]
        ) if listing else pd.MultiIndex.from_tuples([], names=["t", "a"])
        pairs = pd.MultiIndex.from_arrays(
            [live["ls_task_id"].astype("int64"), live["ls_annotation_id"].astype("int64")]
        )
        deleted_idx = list(live.index[~pairs.isin(on_server)]) if len(live) else []
        counts["deleted"] = len(deleted_idx)
        # 4. fetch and convert
        # `_row`: the annotation's row in all_ann, to mark it superseded
        latest = current.assign(_row=current.index).set_index("ls_annotation_id") if len(current) else None
        articles = corpus.read("articles", columns=["article_id", "text"]).set_index("article_id")["text"]
        task_articles = tasks[(tasks["project"] == project) & (tasks["ls_url"] == client.url)]
        task_articles = task_articles.drop_duplicates("ls_task_id")
        task_article = dict(zip(task_articles["ls_task_id"], task_articles["article_id"], strict=True))
        key = pseudonym_key(corpus)
        known_users = corpus.read("annotators", columns=["ls_url", "ls_user_id"])
        known_users = set(zip(known_users["ls_url"], known_users["ls_user_id"], strict=True))
        new_users: dict[int, str] = {}
        ann_rows, span_rows, rel_rows, rej_rows = [], [], [], []
        superseded_idx = []
        invalid_tasks: set[int] = set()
        unreadable: list[int] = []
        pages = _readable_task_pages(client, pid, fetch, len(fetch) < 0.5 * len(listing), page_size,
                                     unreadable)
        wanted = set(fetch)
        done = 0
        yield {"stage": "pull", "done": 0, "total": len(fetch)}
        for page in pages if fetch else ():
            for task in page:
                tid = int(task["id"])
                if tid not in wanted:
                    continue
                done += 1
                aid = task_article.get(tid) or (task.get("meta") or {}).get("article_id") \
                    or (task.get("data") or {}).get("article_id")
                if aid is None or aid not in articles.index:
                    counts["unknown_tasks"] += 1
                    continue
                text = articles.at[aid]
                task_text = (task.get("data") or {}).get("text")
                invalid = TEXT_EDITED if task_text is not None and task_text != text else None
                for ann in task.get("annotations") or []:
                    ls_aid = int(ann["id"])
                    sha = convert.result_sha(ann.get("result"))
                    updated = _ts(ann.get("updated_at")) or _ts(ann.get("created_at"))
                    version = 1
                    if latest is not None and ls_aid in latest.index:
                        prev = latest.loc[ls_aid]
                        if isinstance(prev, pd.DataFrame):
                            prev = prev.sort_values("version").iloc[-1]
                        same = prev["result_sha"] == sha if isinstance(prev["result_sha"], str) else False
                        same = same or (prev["result_sha"] is None and _ts(prev["updated_at"]) == updated)
                        same = same and _invalid_reason(prev) == invalid
                        if same and pd.isna(prev["deleted_at"]) and bool(prev["cancelled"]) == bool(ann.get("was_cancelled")):
                            continue
                        version = int(prev["version"]) + 1
                        superseded_idx.append(int(prev["_row"]))
                        counts["updated"] += 1
                    else:
                        counts["new"] += 1
                    user = ann.get("completed_by")
                    user = user.get("id") if isinstance(user, dict) else user
                    if user is not None and (client.url, int(user)) not in known_users:
                        new_users[int(user)] = pseudonym(key, server.basis, user)
                    annotation_id = f"ls-{server.tag}-{pid}-{ls_aid}-v{version}"
                    cancelled = bool(ann.get("was_cancelled"))
                    counts["cancelled"] += cancelled
                    ann_rows.append({
                        "annotation_id": annotation_id, "project": project, "article_id": aid,
                        "ls_task_id": tid, "ls_annotation_id": ls_aid,
                        "annotator": pseudonym(key, server.basis, user) if user is not None else None,
                        "origin": "human", "created_at": _ts(ann.get("created_at")),
                        "updated_at": updated, "lead_time_s": ann.get("lead_time"),
                        "cancelled": cancelled, "version": version, "superseded": False,
                        "deleted_at": None, "pulled_at": now, "ls_url": client.url, "result_sha": sha,
                        "invalid_reason": invalid,
                    })
                    if review_of is not None:  # the reviewer's pseudonym moves to `reviewer`
                        ann_rows[-1].update(annotator=REVIEW_ANNOTATOR, origin=origin,
                                            reviewer=ann_rows[-1]["annotator"], review_of=review_of)
                    if invalid is not None:  # kept (not live) with its raw result in rejects
                        rej_rows.append({"annotation_id": annotation_id, "span_id": None, "reason": invalid,
                                         "raw": json.dumps(ann.get("result"), ensure_ascii=False)})
                        invalid_tasks.add(tid)
                        continue
                    conv = convert.convert_annotation(ann.get("result"), text, schema, annotation_id, aid)
                    span_rows += conv.spans
                    rel_rows += conv.relations
                    rej_rows += conv.rejects
                    repairs.update({k: v for k, v in conv.repairs.items() if k != convert.NO_REPAIR})
            yield {"stage": "pull", "done": done, "total": len(fetch)}
        # 5. store: details first, annotations last (a crash before that leaves orphans the
        # next pull replaces, never duplicates)
        new_ids = pa.array(sorted({r["annotation_id"] for r in ann_rows}), pa.string())
        for name, rows in (("spans", span_rows), ("relations", rel_rows), ("rejects", rej_rows)):
            if name == "rejects":
                for r in rows:
                    r["pulled_at"] = now
            ids = corpus.read_arrow(name, columns=["annotation_id"]).column(0)
            stale = pc.fill_null(pc.is_in(ids, value_set=new_ids), False)
            if pc.any(stale).as_py():
                kept = corpus.read_arrow(name).filter(pc.invert(stale)).to_pandas()
                writer.replace(name, pd.concat([kept, pd.DataFrame(rows)], ignore_index=True) if rows else kept)
            elif rows:
                writer.append(name, rows)
        if new_users:
            emails = {}
            try:
                emails = {int(u["id"]): u.get("email") for u in client.list_users()}
            except LabelStudioError:
                pass  # pseudonyms work without the e-mail; it is filled on a later pull
            writer.append("annotators", [
                {"annotator": p, "ls_url": client.url, "ls_user_id": u, "email": emails.get(u)}
                for u, p in new_users.items()
            ])
        if superseded_idx or deleted_idx or ann_rows:
            table = all_ann
            if superseded_idx:
                table.loc[superseded_idx, "superseded"] = True
            if deleted_idx:
                table["deleted_at"] = table["deleted_at"].astype("datetime64[us, UTC]")
                table.loc[deleted_idx, "deleted_at"] = now
            if ann_rows:
                new = pd.DataFrame(ann_rows)
                table = pd.concat([table, new], ignore_index=True) if len(table) else new
            for c in ("created_at", "updated_at", "deleted_at", "pulled_at"):
                table[c] = pd.to_datetime(table[c], utc=True)
            if superseded_idx or deleted_idx:
                writer.replace("annotations", table)
            else:
                writer.append("annotations", pd.DataFrame(ann_rows))
        cursor_ts = max((t for t in (_ts(u) for u, _ in listing.values()) if t is not None), default=cursor)
        cursor_ts = _cursor_before(cursor_ts, [_ts(listing[t][0]) for t in unreadable])
        if saved_cursor is not None and (cursor_ts is None or saved_cursor > cursor_ts):
            cursor_ts = saved_cursor
        save_project(writer, corpus, project=project, ls_url=client.url, ls_project_id=pid,
                     schema_version=schema.ident, ls_created_at=found.get("created_at"),
                     created_at=None if rec.empty else rec["created_at"].iloc[-1],
                     pull_cursor=cursor_ts, last_pull_at=now)
    summary.update({
        "new": counts["new"], "updated": counts["updated"], "deleted": counts["deleted"],
        "cancelled": counts["cancelled"], "spans": len(span_rows), "relations": len(rel_rows),
        "repaired": dict(repairs), "rejected": len(rej_rows),
    })
    if counts["unknown_tasks"]:
        summary["skipped_unknown_tasks"] = counts["unknown_tasks"]
    if invalid_tasks:
        summary["invalid"] = sum(1 for r in ann_rows if r["invalid_reason"] is not None)
        summary["invalid_tasks"] = sorted(invalid_tasks)
    if unreadable:
        summary["unreadable_tasks"] = sorted(unreadable)
    return summary


def pull_warnings(summary: dict) -> list[str]:
    """One line for each problem a pull summary reports that needs the user's action in Label Studio."""
    out = []
    if summary.get("invalid"):
        out.append(
            f"{summary['invalid']} annotation(s) stored as not live (invalid_reason): the text of task(s) "
            f"{_ids(summary['invalid_tasks'])} was edited in Label Studio after push; restore it there "
            "and pull again"
        )
    if summary.get("unreadable_tasks"):
        out.append(
            f"Label Studio could not return task(s) {_ids(summary['unreadable_tasks'])} (server error); "
            "everything else was stored; check those tasks' annotations in Label Studio (and its log) "
            "and pull again"
        )
    return out


def _ids(ids: list[int], most: int = 10) -> str:
    """Up to `most` ids, comma-separated, and how many more."""
    shown = ", ".join(str(i) for i in ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _invalid_reason(row) -> str | None:
    """A stored annotation row's invalid_reason (None when absent or null)."""
    reason = row.get("invalid_reason")
    return reason if isinstance(reason, str) else None


def _cursor_before(cursor: pd.Timestamp | None, held_back: list) -> pd.Timestamp | None:
    """`cursor`, moved to just before the earliest of `held_back` (tasks a pull could not read),
    so the next incremental pull fetches those tasks again."""
    times = [t for t in held_back if t is not None]
    if cursor is None or not times:
        return cursor
    return min(cursor, min(times) - pd.Timedelta(1, "us"))


def _readable_task_pages(client: LabelStudioClient, pid: int, fetch: list[int], by_ids: bool,
                         page_size: int, unreadable: list[int]):
    """Pages holding the tasks `fetch` (by id, or the whole project when `by_ids` is false).

    A page Label Studio answers with a server error (one annotation it cannot serialise fails
    its whole page) is fetched again in halves, down to single tasks; the ids that still fail
    are appended to `unreadable`, and every other task is still yielded, once.
    """
    seen: set[int] = set()
    try:
        for page in client.task_pages(pid, ids=fetch if by_ids else None, page_size=page_size):
            seen.update(int(t["id"]) for t in page)
            yield page
        return
    except LabelStudioServerError:
        pass
    rest = [t for t in fetch if t not in seen]
    for i in range(0, len(rest), page_size):
        yield from _split_pages(client, pid, rest[i : i + page_size], unreadable)


def _split_pages(client: LabelStudioClient, pid: int, ids: list[int], unreadable: list[int]):
    """The tasks `ids` in one page, or, when Label Studio fails it, each half on its own.

    A single task gets the client's full retries before it is called unreadable.
    """
    try:
        yield from client.task_pages(pid, ids=ids, page_size=len(ids), tries=SPLIT_TRIES if len(ids) > 1 else None)
        return
    except LabelStudioServerError:
        if len(ids) == 1:
            unreadable.append(ids[0])
            return
    half = len(ids) // 2
    yield from _split_pages(client, pid, ids[:half], unreadable)
    yield from _split_pages(client, pid, ids[half:], unreadable)

