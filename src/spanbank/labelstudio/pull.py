"""Pull: store a Label Studio project's annotations as new versions in the corpus (a generator
yielding progress); edits supersede, deletions mark, nothing stored is dropped."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd

from spanbank.corpus import Corpus
from spanbank.corpus.annotations import (
    GOLD_ORIGIN,
    REVIEW_KIND,
    TEXT_EDITED,
    current_mask,
    not_superseded,
    project_records,
    save_project,
)
from spanbank.corpus.articles import texts_of
from spanbank.errors import (
    LabelStudioError,
    LabelStudioServerError,
    ListingChangedError,
    SpanbankError,
)
from spanbank.labelstudio import convert, identity
from spanbank.labelstudio.client import LISTING_TRIES, LabelStudioClient
from spanbank.labelstudio.projects import (
    missing_project,
    project_change,
    recorded_project,
)
from spanbank.labelstudio.workflow import Workflow, connect, utc_now
from spanbank.progress import Event
from spanbank.pseudonyms import pseudonym, pseudonym_key
from spanbank.schema import normalise_config

PAGE_SIZE = 500
LISTING_PAGE = 1000  # tasks per page of the cheap listing
SPLIT_TRIES = 2  # attempts per request while narrowing down a page Label Studio cannot serialise


def server_tag(ls_url: str) -> str:
    """Six hex digits of a URL: the tag of a server first seen before servers had fingerprints
    (`identity.resolve_server` gives every server's tag)."""
    return identity.url_tag(ls_url)


def _pull_project(
    client, corpus: Corpus, tasks: pd.DataFrame, project: str
) -> tuple[dict, int | None]:
    """The server's project titled `project`, and the Label Studio id recorded for it when that
    project was since deleted and made again (else None).

    A project the corpus recorded that the server no longer has is an error: pulling it would
    mark every stored annotation deleted.
    """
    found = client.find_project(project, fields=("id", "created_at", "label_config"))
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
    client = client or connect(url, api_key)
    summary: dict = {"project": project, "ls_url": client.url}
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
        config = found.get("label_config")
        if config and normalise_config(config) != normalise_config(corpus.schema.label_config()):
            summary["config_differs"] = corpus.schema.ident
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
        # edits from here on may be missed by the listing's earlier pages: the next pull
        # fetches what changed since (not since the newest update the listing saw)
        listed_from = client.server_time()
        listing = yield from _list_tasks(client, pid, project)
        held = _Held(corpus, project, client.url, GOLD_ORIGIN if review_of else "human", pid)
        fetch = held.changed_tasks(listing, cursor)
        summary["tasks_listed"] = len(listing)
        summary["tasks_fetched"] = len(fetch)
        deleted_idx = held.deleted(listing)
        got = _Pulled(corpus, client, server, project, pid, tasks, held, review_of, fetch)
        unreadable: list[int] = []
        pages = _readable_task_pages(
            client, pid, fetch, len(fetch) < 0.5 * len(listing), page_size, unreadable
        )
        wanted = set(fetch)
        done = 0
        yield Event("pull", 0, len(fetch))
        try:
            for page in pages if fetch else ():
                for task in page:
                    if int(task["id"]) in wanted:
                        done += 1
                        got.add_task(task)
                yield Event("pull", done, len(fetch))
        except ListingChangedError:  # fetching most tasks, it reads the whole project's pages
            raise ListingChangedError(
                f"the tasks of project {project} were added or deleted in Label Studio while "
                "spanbank read them; nothing was stored; pull again"
            ) from None
        got.add_later()
        _store(writer, corpus, client, got, held.all, deleted_idx)
        cursor_ts = _next_cursor(listing, cursor, unreadable, saved_cursor, listed_from)
        save_project(
            writer,
            corpus,
            project=project,
            ls_url=client.url,
            ls_project_id=pid,
            schema_version=corpus.schema.ident,
            ls_created_at=found.get("created_at"),
            created_at=None if rec.empty else rec["created_at"].iloc[-1],
            pull_cursor=cursor_ts,
            last_pull_at=got.now,
        )
    summary.update(got.summary(len(deleted_idx)))
    if unreadable:
        summary["unreadable_tasks"] = sorted(unreadable)
    return summary


def _list_tasks(client, pid: int, project: str):
    """The cheap listing: task id -> (updated_at, its annotation ids); yields progress. Read
    again when tasks were added or deleted meanwhile: what it lacks is taken as deleted."""
    for _ in range(LISTING_TRIES):
        yield Event("list", 0, None)
        listing = {}
        try:
            for page in client.task_pages(
                pid, include=["id", "annotations_ids", "updated_at"], page_size=LISTING_PAGE
            ):
                for t in page:
                    ids = str(t.get("annotations_ids") or "").split(",")
                    listing[int(t["id"])] = (
                        t.get("updated_at"),
                        {int(x) for x in ids if x.strip()},
                    )
                yield Event("list", len(listing), None)
        except ListingChangedError:
            continue
        return listing
    raise ListingChangedError(
        f"the tasks of project {project} were added or deleted in Label Studio while spanbank "
        f"listed them, {LISTING_TRIES} times; nothing was stored; pull again"
    )


class _Held:
    """What the corpus holds of this project's annotations: all rows, the current version of
    each Label Studio annotation, and those live in this Label Studio project."""

    def __init__(self, corpus: Corpus, project: str, ls_url: str, origin: str, pid: int):
        all_ann = corpus.read("annotations")
        for c in ("ls_url", "result_sha", "invalid_reason"):
            if c not in all_ann.columns:
                all_ann[c] = None
        mine = (all_ann["project"] == project) & (all_ann["ls_url"].fillna(ls_url) == ls_url)
        mine &= all_ann["origin"] == origin
        current = all_ann[mine & not_superseded(all_ann)]
        live = current[current_mask(current)]
        # an earlier (deleted) project's annotations are not deletions in this one
        self.live = live[annotation_project_ids(live["annotation_id"]).fillna(pid) == pid]
        self.all, self.current = all_ann, current
        # `_row`: the annotation's row in `all`, to mark it superseded
        self.latest = (
            current.assign(_row=current.index).set_index("ls_annotation_id")
            if len(current)
            else None
        )

    def changed_tasks(self, listing: dict, cursor) -> list[int]:
        """Tasks updated after `cursor` or listing an annotation we do not hold."""
        local_ids = self.live.groupby("ls_task_id")["ls_annotation_id"].agg(set).to_dict()
        fetch = []
        for tid, (updated, ann_ids) in listing.items():
            if not ann_ids:
                continue
            ts = convert.stamp(updated)
            if cursor is None or ts is None or ts > cursor or ann_ids - local_ids.get(tid, set()):
                fetch.append(tid)
        return fetch

    def deleted(self, listing: dict) -> list:
        """Rows (of `all`) of live annotations whose task no longer lists them."""
        if not len(self.live):
            return []
        on_server = pd.MultiIndex.from_tuples(
            [(tid, a) for tid, (_, ids) in listing.items() for a in ids] or [(None, None)],
            names=["t", "a"],
        )
        pairs = pd.MultiIndex.from_arrays(
            [self.live["ls_task_id"].astype("int64"), self.live["ls_annotation_id"].astype("int64")]
        )
        return list(self.live.index[~pairs.isin(on_server)])

    def newest(self, ls_aid: int):
        """The newest stored row of Label Studio annotation `ls_aid`, or None."""
        if self.latest is None or ls_aid not in self.latest.index:
            return None
        prev = self.latest.loc[ls_aid]
        return prev.sort_values("version").iloc[-1] if isinstance(prev, pd.DataFrame) else prev


class _Pulled:
    """The rows a pull converts from the tasks it fetched, and its counts."""

    def __init__(self, corpus, client, server, project, pid, tasks, held: _Held, review_of, fetch):
        self.corpus, self.schema, self.url, self.server = corpus, corpus.schema, client.url, server
        self.project, self.pid, self.held, self.review_of = project, pid, held, review_of
        self.now = utc_now()
        mine = tasks[(tasks["project"] == project) & (tasks["ls_url"] == client.url)]
        mine = mine.drop_duplicates("ls_task_id")
        self.task_article = dict(zip(mine["ls_task_id"], mine["article_id"], strict=True))
        # the texts of the tasks to fetch, not the corpus's (every text was read per pull)
        self.articles = texts_of(
            corpus, {self.task_article[t] for t in fetch if t in self.task_article}
        )
        self.later: list[dict] = []  # tasks of articles not looked up yet: see `add_later`
        self.key = pseudonym_key(corpus)
        users = corpus.read("annotators", columns=["ls_url", "ls_user_id", "email"])
        self.known_users = set(zip(users["ls_url"], users["ls_user_id"], strict=True))
        # users stored without their e-mail (Label Studio's user list failed): asked again
        known = users.dropna(subset=["email"])
        self.with_email = set(zip(known["ls_url"], known["ls_user_id"], strict=True))
        self.new_users: dict[int, str] = {}
        self.ann, self.spans, self.relations, self.rejects = [], [], [], []
        self.superseded: list = []
        self.invalid_tasks: set[int] = set()
        self.counts: Counter = Counter()
        self.repairs: Counter = Counter()

    def _article_of(self, task: dict):
        return (
            self.task_article.get(int(task["id"]))
            or (task.get("meta") or {}).get("article_id")
            or (task.get("data") or {}).get("article_id")
        )

    def add_task(self, task: dict, looked_up: bool = False) -> None:
        tid = int(task["id"])
        aid = self._article_of(task)
        if aid is not None and aid not in self.articles and not looked_up:
            self.later.append(task)  # a task `tasks` does not record (e.g. made in Label Studio)
            return
        if aid is None or aid not in self.articles:
            self.counts["unknown_tasks"] += 1
            return
        text = self.articles[aid]
        task_text = (task.get("data") or {}).get("text")
        invalid = TEXT_EDITED if task_text is not None and task_text != text else None
        for ann in task.get("annotations") or []:
            self.add_annotation(ann, tid, aid, text, invalid)

    def add_annotation(self, ann: dict, tid: int, aid: str, text: str, invalid) -> None:
        ls_aid = int(ann["id"])
        prev = self.held.newest(ls_aid)
        if prev is not None and pd.notna(prev["ls_task_id"]) and int(prev["ls_task_id"]) != tid:
            raise SpanbankError(  # an annotation never changes task: this is another server
                f"Label Studio annotation {ls_aid} of project {self.project!r} is on task {tid} "
                f"at {self.url}, but the corpus holds it on task {int(prev['ls_task_id'])}: two "
                "servers share one identity (one started from a copy of the other's data?); "
                "nothing was stored. Pull from one of them only, or give the copy a new "
                "organization"
            )
        version = convert.pulled_version(ann, prev, invalid)
        if version is None:
            return
        if prev is not None:
            self.superseded.append(int(prev["_row"]))
        self.counts["updated" if prev is not None else "new"] += 1
        user = ann.get("completed_by")
        user = user.get("id") if isinstance(user, dict) else user
        annotator = pseudonym(self.key, self.server.basis, user) if user is not None else None
        if user is not None and (self.url, int(user)) not in self.with_email:
            self.new_users[int(user)] = annotator
        annotation_id = f"ls-{self.server.tag}-{self.pid}-{ls_aid}-v{version}"
        row = convert.annotation_row(
            ann,
            annotation_id=annotation_id,
            project=self.project,
            article_id=aid,
            task_id=tid,
            annotator=annotator,
            version=version,
            pulled_at=self.now,
            ls_url=self.url,
            invalid=invalid,
            review_of=self.review_of,
        )
        self.counts["cancelled"] += row["cancelled"]
        self.ann.append(row)
        if invalid is not None:  # kept (not live) with its raw result in rejects
            raw = json.dumps(ann.get("result"), ensure_ascii=False)
            self.rejects.append(
                {"annotation_id": annotation_id, "span_id": None, "reason": invalid, "raw": raw}
            )
            self.invalid_tasks.add(tid)
            return
        conv = convert.convert_annotation(ann.get("result"), text, self.schema, annotation_id, aid)
        self.spans += conv.spans
        self.relations += conv.relations
        self.rejects += conv.rejects
        self.repairs.update({k: v for k, v in conv.repairs.items() if k != convert.NO_REPAIR})

    def add_later(self) -> None:
        """The tasks `add_task` set aside, their texts read in one pass over the articles."""
        if self.later:
            ids = {self._article_of(t) for t in self.later} - {None}
            self.articles.update(texts_of(self.corpus, ids))
            for task in self.later:
                self.add_task(task, looked_up=True)
            self.later = []

    def summary(self, deleted: int) -> dict:
        out = {
            "new": self.counts["new"],
            "updated": self.counts["updated"],
            "deleted": deleted,
            "cancelled": self.counts["cancelled"],
            "spans": len(self.spans),
            "relations": len(self.relations),
            "repaired": dict(self.repairs),
            "rejected": len(self.rejects),
        }
        if self.counts["unknown_tasks"]:
            out["skipped_unknown_tasks"] = self.counts["unknown_tasks"]
        if self.invalid_tasks:
            out["invalid"] = sum(1 for r in self.ann if r["invalid_reason"] is not None)
            out["invalid_tasks"] = sorted(self.invalid_tasks)
        return out


def _store(
    writer, corpus: Corpus, client, got: _Pulled, all_ann: pd.DataFrame, deleted_idx
) -> None:
    """Store a pull: details first, annotations last (a crash before that leaves orphans the
    next pull replaces, never duplicates)."""
    new_ids = sorted({r["annotation_id"] for r in got.ann})
    for r in got.rejects:
        r["pulled_at"] = got.now
    for name, rows in (
        ("spans", got.spans),
        ("relations", got.relations),
        ("rejects", got.rejects),
    ):
        writer.delete(
            name, "annotation_id", new_ids
        )  # orphans of a pull killed before its last write
        if rows:
            writer.append(name, rows)
    if got.new_users:
        emails = {}
        try:
            emails = {int(u["id"]): u.get("email") for u in client.list_users()}
        except LabelStudioError:
            pass  # pseudonyms work without the e-mail; a later pull asks again
        people = [
            {"annotator": p, "ls_url": client.url, "ls_user_id": u, "email": emails.get(u)}
            for u, p in got.new_users.items()
            if emails.get(u) or (client.url, u) not in got.known_users
        ]
        if people:  # a later row's e-mail completes an earlier row (`annotators._users`)
            writer.append("annotators", people)
    superseded_idx, ann_rows, now = got.superseded, got.ann, got.now
    if not (superseded_idx or deleted_idx or ann_rows):
        return
    changed = all_ann.loc[sorted(set(superseded_idx) | set(deleted_idx))].copy()
    if superseded_idx:
        changed.loc[superseded_idx, "superseded"] = True
    if deleted_idx:
        changed["deleted_at"] = pd.to_datetime(changed["deleted_at"], utc=True)
        changed.loc[deleted_idx, "deleted_at"] = now
    parts = [t for t in (changed, pd.DataFrame(ann_rows)) if len(t)]
    rows = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    for c in ("created_at", "updated_at", "deleted_at", "pulled_at"):
        rows[c] = pd.to_datetime(rows[c], utc=True)
    if len(changed):  # the marked versions and the new ones in one commit
        writer.upsert("annotations", rows, "annotation_id")
    else:
        writer.append("annotations", rows)


def _next_cursor(listing: dict, cursor, unreadable: list[int], saved_cursor, listed_from=None):
    """The newest update the listing saw, but not after `listed_from` (the server's clock as the
    listing began: a task edited after its page was read is seen only if the cursor stays
    before that edit), held back before any unreadable task, never behind the saved cursor."""
    cursor_ts = max(
        (t for t in (convert.stamp(u) for u, _ in listing.values()) if t is not None),
        default=cursor,
    )
    if cursor_ts is not None and listed_from is not None:
        # the Date header is cut to the second; an update in that second is fetched again
        cursor_ts = min(cursor_ts, convert.stamp(listed_from) - pd.Timedelta(1, "s"))
    cursor_ts = _cursor_before(cursor_ts, [convert.stamp(listing[t][0]) for t in unreadable])
    if saved_cursor is not None and (cursor_ts is None or saved_cursor > cursor_ts):
        cursor_ts = saved_cursor
    return cursor_ts


def pull_warnings(summary: dict) -> list[str]:
    """One line for each problem a pull summary reports that needs the user's action in Label Studio."""
    out = []
    if summary.get("invalid"):
        out.append(
            f"{summary['invalid']} annotation(s) stored as not live (invalid_reason): the text of task(s) "
            f"{_ids(summary['invalid_tasks'])} was edited in Label Studio after push; restore it there "
            "and pull again"
        )
    if summary.get("config_differs"):
        out.append(
            f"project {summary['project']}'s labeling config differs from schema "
            f"{summary['config_differs']} (edited in Label Studio?): what the schema cannot hold "
            "is rejected, with its reason, into `rejects`; `spanbank push --project "
            f"{summary['project']} --update-config` puts the schema's config back"
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
