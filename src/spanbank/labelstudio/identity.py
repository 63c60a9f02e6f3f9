"""Which Label Studio server and project a corpus record belongs to, whatever URL reached it.

A server is known by its organisation's id and creation stamp (in the server's own data, so
they survive a restart on another port or a new host name), not by its URL. The corpus keeps
one `servers` row per server: its current URL, the tag its annotation ids carry and the basis
its pseudonyms hash. When a known server answers at a new URL, its records are rewritten to
that URL, so every URL-keyed lookup keeps meaning "this server".
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass

import pandas as pd

from spanbank.corpus import Corpus
from spanbank.corpus.tables import SERVER_COLUMNS, SERVERS_TABLE
from spanbank.errors import AuthError, LabelStudioError, SpanbankError, UnknownProjectError

# tables whose rows name a server by URL: rewritten together when a server moves
URL_TABLES = ("tasks", "projects", "annotations", "annotators", "task_plans", "push_batches")


@dataclass
class Server:
    """A Label Studio server as the corpus knows it.

    `tag` goes into annotation ids and `basis` into pseudonyms; both stay fixed for the
    server's lifetime (for servers first seen before fingerprints, they are the URL's).
    """

    url: str
    server_id: str | None
    tag: str
    basis: str
    moved_from: str | None = None


def url_tag(ls_url: str) -> str:
    """Six hex digits of the URL: the tag of servers first seen before fingerprints existed."""
    return hashlib.sha256(ls_url.rstrip("/").encode()).hexdigest()[:6]


def server_fingerprint(client) -> tuple[str, dict] | None:
    """(fingerprint, organisation) of the server `client` talks to, or None when it does not say.

    The fingerprint hashes the active organisation's id and creation stamp: both live in the
    server's database, so a new port, host name or proxy does not change them.
    """
    try:
        orgs = client.request("GET", "api/organizations/")
    except AuthError:
        raise
    except LabelStudioError:
        return None
    orgs = orgs.get("results", []) if isinstance(orgs, dict) else list(orgs or [])
    if len(orgs) > 1:
        active = (client.whoami() or {}).get("active_organization")
        orgs = [o for o in orgs if o.get("id") == active] or orgs[:1]
    if not orgs or not orgs[0].get("created_at") or orgs[0].get("id") is None:
        return None
    org = {"id": int(orgs[0]["id"]), "created_at": str(orgs[0]["created_at"])}
    digest = hashlib.sha256(f"{org['id']}|{org['created_at']}".encode()).hexdigest()[:16]
    return digest, org


def server_records(corpus: Corpus) -> pd.DataFrame:
    """The `servers` table (empty with its columns when the corpus has none yet)."""
    df = corpus.read(SERVERS_TABLE)
    if df.empty or "server_id" not in df.columns:
        return pd.DataFrame(columns=SERVER_COLUMNS)
    return df


def _has_records_at(corpus: Corpus, url: str) -> bool:
    """Whether any table names `url` (records from before servers were fingerprinted)."""
    for name in URL_TABLES:
        df = corpus.read(name)
        if "ls_url" in df.columns and (df["ls_url"] == url).any():
            return True
    return False


def rewrite_url(writer, corpus: Corpus, old: str, new: str) -> dict[str, int]:
    """Point every record naming `old` at `new`; returns rows changed per table."""
    changed = {}
    for name in (*URL_TABLES, SERVERS_TABLE):
        df = corpus.read(name)
        if "ls_url" not in df.columns:
            continue
        hit = df["ls_url"] == old
        if not hit.any():
            continue
        df.loc[hit, "ls_url"] = new
        if name == "projects":  # one record per (project, server): the older one's values first
            df = df.groupby(["project", "ls_url"], as_index=False, sort=False, dropna=False).first()
        writer.replace(name, df)
        changed[name] = int(hit.sum())
    return changed


def _save_servers(writer, rows: pd.DataFrame) -> None:
    rows = rows.reset_index(drop=True)
    for col in ("first_seen_at", "moved_at"):
        rows[col] = pd.to_datetime(rows[col], utc=True).astype("datetime64[us, UTC]")
    rows["org_id"] = rows["org_id"].astype("Int64")
    writer.replace(SERVERS_TABLE, rows[SERVER_COLUMNS])


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("us")


def resolve_server(client, corpus: Corpus, writer) -> Server:
    """The server `client` reaches, as the corpus knows it; records a new one, follows a moved one.

    A known server at a new URL has its records rewritten to that URL (`moved_from` says from
    where). A different server now answering at a URL the corpus knew for another has that
    other's records set aside under a placeholder URL, so the two never mix.
    """
    url = client.url
    found = server_fingerprint(client)
    servers = server_records(corpus)
    if found is None:  # the server does not say who it is: its URL is all there is
        at = servers[servers["ls_url"] == url]
        if len(at):
            return Server(url, at["server_id"].iloc[0], at["tag"].iloc[0], at["basis"].iloc[0])
        return Server(url, None, url_tag(url), url)
    fp, org = found
    known = servers[servers["server_id"] == fp]
    if len(known):
        row = known.iloc[0]
        if row["ls_url"] == url:
            return Server(url, fp, row["tag"], row["basis"])
        old = row["ls_url"]
        servers = _set_aside_others(writer, corpus, servers, url, fp)
        rewrite_url(writer, corpus, old, url)
        servers = server_records(corpus)  # the rewrite touched it
        hit = servers["server_id"] == fp
        servers.loc[hit, ["ls_url", "moved_from"]] = [url, old]
        servers.loc[hit, "moved_at"] = _now()
        _save_servers(writer, servers)
        return Server(url, fp, row["tag"], row["basis"], moved_from=old)
    held = (servers["ls_url"] == url).any()
    servers = _set_aside_others(writer, corpus, servers, url, fp)
    moved_from = None
    if not held and _has_records_at(corpus, url):
        tag, basis = url_tag(url), url  # adopt what this URL recorded before fingerprints
    elif not held and (moved_from := _earlier_url(client, corpus, set(servers["ls_url"].dropna()))):
        rewrite_url(writer, corpus, moved_from, url)  # recorded before fingerprints, at another URL
        servers = server_records(corpus)
        tag, basis = url_tag(moved_from), moved_from
    else:
        tag, basis = fp[:6], f"server:{fp}"
    row = {
        "server_id": fp,
        "ls_url": url,
        "tag": tag,
        "basis": basis,
        "org_id": org["id"],
        "org_created_at": org["created_at"],
        "first_seen_at": _now(),
        "moved_from": moved_from,
        "moved_at": _now() if moved_from else None,
    }
    _save_servers(
        writer,
        pd.concat([servers, pd.DataFrame([row])], ignore_index=True)
        if len(servers)
        else pd.DataFrame([row]),
    )
    return Server(url, fp, tag, basis, moved_from=moved_from)


def _earlier_url(client, corpus: Corpus, fingerprinted: set[str]) -> str | None:
    """The URL this server was pulled from before servers had fingerprints, if the corpus has one.

    Evidence is an annotation: the server holds, under the same id on the same task, one
    created at the same microsecond as an annotation stored from that URL (two servers never do).
    """
    ann = corpus.read("annotations")
    if "ls_url" not in ann.columns:
        return None
    ann = ann.dropna(subset=["ls_url", "ls_task_id", "ls_annotation_id", "created_at"])
    ann = ann[
        ~ann["ls_url"].isin(fingerprinted) & ~ann["ls_url"].str.contains("#gone-", regex=False)
    ]
    for _, row in ann.drop_duplicates("ls_url", keep="last").iterrows():
        try:
            task = client.request("GET", f"api/tasks/{int(row['ls_task_id'])}/", ok_404=True)
        except LabelStudioError:
            continue
        for a in (task or {}).get("annotations") or []:
            if (
                a.get("id") == int(row["ls_annotation_id"])
                and a.get("created_at")
                and pd.Timestamp(a["created_at"]) == pd.Timestamp(row["created_at"])
            ):
                return row["ls_url"]
    return None


def _set_aside_others(
    writer, corpus: Corpus, servers: pd.DataFrame, url: str, fp: str
) -> pd.DataFrame:
    """Move records of servers other than `fp` that sit at `url` to `url#gone-<tag>`."""
    others = servers[(servers["ls_url"] == url) & (servers["server_id"] != fp)]
    for _, other in others.iterrows():
        rewrite_url(writer, corpus, url, f"{url}#gone-{other['tag']}")
    return server_records(corpus) if len(others) else servers


def move_server(corpus: Corpus, old_url: str, new_url: str, wait: bool | float = False) -> dict:
    """Rewrite the corpus's records of the server at `old_url` to `new_url` (a server that moved).

    `new_url` is stored as push and pull store a URL (the client's form: no user-info, no final
    slash), so credentials in it are never stored or shown; `old_url` matches records as typed
    or in that form (records an older move stored with credentials can be moved to their own
    URL without them).
    """
    from spanbank.labelstudio.client import check_url, masked_url, redact_url  # SDK: moves only

    corpus.require()
    new = check_url(new_url)
    old = old_url.strip().rstrip("/")
    try:
        shown = check_url(old)
    except LabelStudioError:
        shown = masked_url(old)
    with corpus.writer(wait) as writer:
        servers = server_records(corpus)
        if not _has_server_at(corpus, servers, old):
            old = shown
        if old == new:
            raise SpanbankError(f"{shown} is already the server's URL")
        if not _has_server_at(corpus, servers, old):
            urls = sorted(
                {redact_url(u) for u in set(servers["ls_url"].dropna()) | _recorded_urls(corpus)}
            )
            raise SpanbankError(
                f"the corpus has no records of a server at {shown}{did_you_mean(shown, urls)}"
            )
        if _has_server_at(corpus, servers, new):
            raise SpanbankError(
                f"the corpus already has records of a server at {new}; "
                "a pull from it sorts out which server is which"
            )
        changed = rewrite_url(writer, corpus, old, new)
        servers = server_records(corpus)
        hit = servers["ls_url"] == new
        if hit.any():
            servers.loc[hit, "moved_from"] = shown
            servers.loc[hit, "moved_at"] = _now()
            _save_servers(writer, servers)
    return {"from": shown, "to": new, "changed": changed}


def _has_server_at(corpus: Corpus, servers: pd.DataFrame, url: str) -> bool:
    """Whether the `servers` rows or any other table name `url`."""
    return bool((servers["ls_url"] == url).any()) or _has_records_at(corpus, url)


def _recorded_urls(corpus: Corpus) -> set[str]:
    urls: set[str] = set()
    for name in URL_TABLES:
        df = corpus.read(name)
        if "ls_url" in df.columns:
            urls |= set(df["ls_url"].dropna())
    return urls


# ======================================================================== project names
def known_projects(corpus: Corpus) -> list[str]:
    """Every project name the corpus has records of (pushed, pulled or imported)."""
    names: set[str] = set()
    for name in ("tasks", "annotations", "projects"):
        df = corpus.read(name)
        if "project" in df.columns:
            names |= set(df["project"].dropna().astype(str))
    return sorted(names)


def did_you_mean(name: str, candidates, n: int = 3) -> str:
    """`; did you mean X?` with the nearest candidates (difflib), or `` when none is near."""
    near = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=n, cutoff=0.6)
    if not near:
        return ""
    return "; did you mean " + " or ".join(near) + "?"


def require_known_project(corpus: Corpus, project: str | None) -> None:
    """Raise UnknownProjectError (with the nearest names) unless the corpus knows `project`."""
    if project is None:
        return
    corpus.require()
    names = known_projects(corpus)
    if project in names:
        return
    hint = did_you_mean(project, names)
    if not hint:
        hint = (
            f"; known projects: {', '.join(names[:8])}"
            if names
            else "; the corpus has no projects yet"
        )
    raise UnknownProjectError(f"no project {project!r} in corpus {corpus.path}{hint}")
