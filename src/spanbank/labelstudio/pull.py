"""Pull: store a Label Studio project's annotations as new versions in the corpus (a generator
yielding progress); edits supersede, deletions mark, nothing stored is dropped."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections import Counter

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spanbank.corpus import Corpus
from spanbank.corpus.annotations import (
    GOLD_ORIGIN,
    REVIEW_ANNOTATOR,
    REVIEW_KIND,
    TEXT_EDITED,
    current_mask,
    not_superseded,
    project_records,
    save_project,
)
from spanbank.errors import (
    LabelStudioError,
    LabelStudioServerError,
)
from spanbank.labelstudio import convert, identity
from spanbank.labelstudio.client import LabelStudioClient
from spanbank.labelstudio.projects import (
    missing_project,
    project_change,
    recorded_project,
)
from spanbank.labelstudio.workflow import Workflow, connect, utc_now
from spanbank.progress import Event

PSEUDONYM_KEY_FILE = ".pseudonym_key"
PAGE_SIZE = 500
SPLIT_TRIES = 2  # attempts per request while narrowing down a page Label Studio cannot serialise


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


def _pull_project(
    client, corpus: Corpus, tasks: pd.DataFrame, project: str
) -> tuple[dict, int | None]:
    """The server's project titled `project`, and the Label Studio id recorded for it when that
    project was since deleted and made again (else None).

    A project the corpus recorded that the server no longer has is an error: pulling it would
    mark every stored annotation deleted.
    """
    found = client.find_project(project, fields=("id", "created_at"))
    recorded = recorded_project(corpus, tasks, project, client.url)
    if found is None:
        raise missing_project(client, corpus, project, recorded[0], pulling=True)
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
        tasks = corpus.read(
            "tasks", columns=["project", "ls_url", "ls_project_id", "ls_task_id", "article_id"]
        )
        found, change = _pull_project(client, corpus, tasks, project)
        pid = int(found["id"])
        summary["ls_project_id"] = pid
        if change:
            summary["project_recreated"] = (
                f"the Label Studio project was deleted and made again (was id {change}); earlier "
                f"annotations are kept; push its articles again with "
                f"`spanbank push --project {project} --repush-missing`"
            )
        records = project_records(corpus)
        rec = records[(records["project"] == project) & (records["ls_url"] == client.url)]
        saved_cursor = None if rec.empty or change else convert.stamp(rec["pull_cursor"].iloc[-1])
        if saved_cursor is not None and pd.isna(saved_cursor):
            saved_cursor = None
        cursor = None if full else saved_cursor
        # a review project's annotations are adjudicated gold, not another annotator's work
        review_of = (
            rec.iloc[-1].get("review_of")
            if len(rec) and rec.iloc[-1].get("kind") == REVIEW_KIND
            else None
        )
        origin = GOLD_ORIGIN if review_of is not None else "human"
        # 1. cheap listing
        yield Event("list", 0, None)
        listing = {}
        for page in client.task_pages(
            pid, include=["id", "annotations_ids", "updated_at"], page_size=1000
        ):
            for t in page:
                ann_ids = {
                    int(x) for x in str(t.get("annotations_ids") or "").split(",") if x.strip()
                }
                listing[int(t["id"])] = (t.get("updated_at"), ann_ids)
            yield Event("list", len(listing), None)
        all_ann = corpus.read("annotations")
        extra_cols = [
            c for c in ("ls_url", "result_sha", "invalid_reason") if c not in all_ann.columns
        ]
        for c in extra_cols:
            all_ann[c] = None
        is_mine = (all_ann["project"] == project) & (
            all_ann["ls_url"].fillna(client.url) == client.url
        )
        is_mine &= all_ann["origin"] == origin
        current = all_ann[is_mine & not_superseded(all_ann)]
        live = current[current_mask(current)]
        # an earlier (deleted) project's annotations are not deletions in this one
        live = live[annotation_project_ids(live["annotation_id"]).fillna(pid) == pid]
        local_ids = live.groupby("ls_task_id")["ls_annotation_id"].agg(set).to_dict()
        # 2. which tasks to fetch
        fetch = []
        for tid, (updated, ann_ids) in listing.items():
            if not ann_ids:
                continue
            ts = convert.stamp(updated)
            if cursor is None or ts is None or ts > cursor or ann_ids - local_ids.get(tid, set()):
                fetch.append(tid)
        summary["tasks_listed"] = len(listing)
        summary["tasks_fetched"] = len(fetch)
        # 3. deletions: annotations we hold whose task no longer lists them
        now = utc_now()
        on_server = (
            pd.MultiIndex.from_tuples(
                [(tid, a) for tid, (_, ids) in listing.items() for a in ids], names=["t", "a"]
            )
            if listing
            else pd.MultiIndex.from_tuples([], names=["t", "a"])
        )
        pairs = pd.MultiIndex.from_arrays(
            [live["ls_task_id"].astype("int64"), live["ls_annotation_id"].astype("int64")]
        )
        deleted_idx = list(live.index[~pairs.isin(on_server)]) if len(live) else []
        counts["deleted"] = len(deleted_idx)
        # 4. fetch and convert
        # `_row`: the annotation's row in all_ann, to mark it superseded
        latest = (
            current.assign(_row=current.index).set_index("ls_annotation_id")
            if len(current)
            else None
        )
        articles = corpus.read("articles", columns=["article_id", "text"]).set_index("article_id")[
            "text"
        ]
        task_articles = tasks[(tasks["project"] == project) & (tasks["ls_url"] == client.url)]
        task_articles = task_articles.drop_duplicates("ls_task_id")
        task_article = dict(
            zip(task_articles["ls_task_id"], task_articles["article_id"], strict=True)
        )
        key = pseudonym_key(corpus)
        known_users = corpus.read("annotators", columns=["ls_url", "ls_user_id"])
        known_users = set(zip(known_users["ls_url"], known_users["ls_user_id"], strict=True))
        new_users: dict[int, str] = {}
        ann_rows, span_rows, rel_rows, rej_rows = [], [], [], []
        superseded_idx = []
        invalid_tasks: set[int] = set()
        unreadable: list[int] = []
        pages = _readable_task_pages(
            client, pid, fetch, len(fetch) < 0.5 * len(listing), page_size, unreadable
        )
        wanted = set(fetch)
        done = 0
        yield Event("pull", 0, len(fetch))
        for page in pages if fetch else ():
            for task in page:
                tid = int(task["id"])
                if tid not in wanted:
                    continue
                done += 1
                aid = (
                    task_article.get(tid)
                    or (task.get("meta") or {}).get("article_id")
                    or (task.get("data") or {}).get("article_id")
                )
                if aid is None or aid not in articles.index:
                    counts["unknown_tasks"] += 1
                    continue
                text = articles.at[aid]
                task_text = (task.get("data") or {}).get("text")
                invalid = TEXT_EDITED if task_text is not None and task_text != text else None
                for ann in task.get("annotations") or []:
                    ls_aid = int(ann["id"])
                    prev = None
                    if latest is not None and ls_aid in latest.index:
                        prev = latest.loc[ls_aid]
                        if isinstance(prev, pd.DataFrame):
                            prev = prev.sort_values("version").iloc[-1]
                    version = convert.pulled_version(ann, prev, invalid)
                    if version is None:
                        continue
                    if prev is not None:
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
                    ann_rows.append(
                        {
                            "annotation_id": annotation_id,
                            "project": project,
                            "article_id": aid,
                            "ls_task_id": tid,
                            "ls_annotation_id": ls_aid,
                            "annotator": pseudonym(key, server.basis, user)
                            if user is not None
                            else None,
                            "origin": "human",
                            "created_at": convert.stamp(ann.get("created_at")),
                            "updated_at": convert.updated_at(ann),
                            "lead_time_s": ann.get("lead_time"),
                            "cancelled": cancelled,
                            "version": version,
                            "superseded": False,
                            "deleted_at": None,
                            "pulled_at": now,
                            "ls_url": client.url,
                            "result_sha": convert.result_sha(ann.get("result")),
                            "invalid_reason": invalid,
                        }
                    )
                    if review_of is not None:  # the reviewer's pseudonym moves to `reviewer`
                        ann_rows[-1].update(
                            annotator=REVIEW_ANNOTATOR,
                            origin=origin,
                            reviewer=ann_rows[-1]["annotator"],
                            review_of=review_of,
                        )
                    if invalid is not None:  # kept (not live) with its raw result in rejects
                        rej_rows.append(
                            {
                                "annotation_id": annotation_id,
                                "span_id": None,
                                "reason": invalid,
                                "raw": json.dumps(ann.get("result"), ensure_ascii=False),
                            }
                        )
                        invalid_tasks.add(tid)
                        continue
                    conv = convert.convert_annotation(
                        ann.get("result"), text, schema, annotation_id, aid
                    )
                    span_rows += conv.spans
                    rel_rows += conv.relations
                    rej_rows += conv.rejects
                    repairs.update(
                        {k: v for k, v in conv.repairs.items() if k != convert.NO_REPAIR}
                    )
            yield Event("pull", done, len(fetch))
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
                writer.replace(
                    name, pd.concat([kept, pd.DataFrame(rows)], ignore_index=True) if rows else kept
                )
            elif rows:
                writer.append(name, rows)
        if new_users:
            emails = {}
            try:
                emails = {int(u["id"]): u.get("email") for u in client.list_users()}
            except LabelStudioError:
                pass  # pseudonyms work without the e-mail; it is filled on a later pull
            writer.append(
                "annotators",
                [
                    {"annotator": p, "ls_url": client.url, "ls_user_id": u, "email": emails.get(u)}
                    for u, p in new_users.items()
                ],
            )
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
        cursor_ts = max(
            (t for t in (convert.stamp(u) for u, _ in listing.values()) if t is not None),
            default=cursor,
        )
        cursor_ts = _cursor_before(cursor_ts, [convert.stamp(listing[t][0]) for t in unreadable])
        if saved_cursor is not None and (cursor_ts is None or saved_cursor > cursor_ts):
            cursor_ts = saved_cursor
        save_project(
            writer,
            corpus,
            project=project,
            ls_url=client.url,
            ls_project_id=pid,
            schema_version=schema.ident,
            ls_created_at=found.get("created_at"),
            created_at=None if rec.empty else rec["created_at"].iloc[-1],
            pull_cursor=cursor_ts,
            last_pull_at=now,
        )
    summary.update(
        {
            "new": counts["new"],
            "updated": counts["updated"],
            "deleted": counts["deleted"],
            "cancelled": counts["cancelled"],
            "spans": len(span_rows),
            "relations": len(rel_rows),
            "repaired": dict(repairs),
            "rejected": len(rej_rows),
        }
    )
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


def _cursor_before(cursor: pd.Timestamp | None, held_back: list) -> pd.Timestamp | None:
    """`cursor`, moved to just before the earliest of `held_back` (tasks a pull could not read),
    so the next incremental pull fetches those tasks again."""
    times = [t for t in held_back if t is not None]
    if cursor is None or not times:
        return cursor
    return min(cursor, min(times) - pd.Timedelta(1, "us"))


def _readable_task_pages(
    client: LabelStudioClient,
    pid: int,
    fetch: list[int],
    by_ids: bool,
    page_size: int,
    unreadable: list[int],
):
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
        yield from client.task_pages(
            pid, ids=ids, page_size=len(ids), tries=SPLIT_TRIES if len(ids) > 1 else None
        )
        return
    except LabelStudioServerError:
        if len(ids) == 1:
            unreadable.append(ids[0])
            return
    half = len(ids) // 2
    yield from _split_pages(client, pid, ids[:half], unreadable)
    yield from _split_pages(client, pid, ids[half:], unreadable)
