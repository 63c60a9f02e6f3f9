"""Label Studio projects as the corpus knows them: find or create one, and notice when it changed."""

from __future__ import annotations

import pandas as pd

from spanbank.corpus import Corpus
from spanbank.corpus.annotations import project_records
from spanbank.errors import (
    LabelStudioError,
    ProjectMissingError,
    ProjectRenamedError,
    SpanbankError,
    UnknownProjectError,
)
from spanbank.labelstudio import identity
from spanbank.labelstudio.client import LabelStudioClient
from spanbank.schema import normalise_config

PROJECT_FIELDS = ("id", "title", "label_config", "maximum_annotations", "created_at")


def ensure_project(
    client: LabelStudioClient,
    corpus: Corpus,
    project: str,
    *,
    overlap: int | None = None,
    update_config: bool = False,
    create: bool = True,
    allow_new: bool = True,
    recorded_id: int | None = None,
) -> tuple[dict | None, str]:
    """Find the LS project titled `project` (creating it from the schema), check its config.

    Returns (project JSON or None in a dry run, what happened: found/created/updated);
    (None, "missing") when it does not exist and `allow_new` is False. The project the corpus
    recorded as `recorded_id`, renamed in Label Studio, is an error, not a reason for a new one.
    """
    schema = corpus.schema
    config = schema.label_config()
    found = client.find_project(project, fields=PROJECT_FIELDS)
    if found is None:
        if (error := renamed(client, project, recorded_id)) is not None:
            raise error
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


def recorded_project(
    corpus: Corpus, tasks: pd.DataFrame, project: str, ls_url: str
) -> tuple[int | None, str | None]:
    """(Label Studio id, its creation stamp) the corpus last recorded for `project` on `ls_url`."""
    records = project_records(corpus)
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
    if int(found["id"]) != pid or (
        stamp and found.get("created_at") and found["created_at"] != stamp
    ):
        return "recreated"
    return None


def missing_project(
    client: LabelStudioClient, corpus: Corpus, project: str, pid: int | None, *, pulling: bool
) -> UnknownProjectError:
    """The one-line error for a project title the server lacks (deleted, renamed, or never made,
    or a typo)."""
    if (error := renamed(client, project, pid)) is not None:
        return error
    if pid is not None:
        return ProjectMissingError(
            f"project {project} (Label Studio id {pid}) is gone from {client.url}: deleted in Label Studio? "
            f"{'nothing pulled; ' if pulling else ''}push its articles again with "
            f"`spanbank push --project {project} --create --repush-missing`"
        )
    names = identity.known_projects(corpus)
    try:
        listed = client.request(
            "GET", "api/projects/", params={"include": "id,title", "page_size": 1000}
        )
        names += [p.get("title") for p in (listed or {}).get("results", []) if p.get("title")]
    except LabelStudioError:
        pass  # suggestions from the corpus alone
    hint = identity.did_you_mean(project, names)
    todo = (
        f"push to it first (`spanbank push --project {project} --create`)"
        if pulling
        else "pass --create to create it"
    )
    return ProjectMissingError(f"no project {project!r} on {client.url}; {todo}{hint}")


def renamed(client: LabelStudioClient, project: str, pid: int | None) -> ProjectRenamedError | None:
    """The error for the project recorded as `pid` when Label Studio now titles it otherwise;
    None when it is gone (or was never recorded). Its tasks and annotations are all there: a new
    project and a second push of every article would be the wrong repair."""
    if pid is None:
        return None
    found = client.request(
        "GET", f"api/projects/{int(pid)}/", params={"include": "id,title"}, ok_404=True
    )
    title = found.get("title") if isinstance(found, dict) else None
    if title is None or title == project:
        return None
    return ProjectRenamedError(
        f"project {project} (Label Studio id {pid}) is titled {title!r} on {client.url} now; "
        f"rename it back to {project!r} in Label Studio (spanbank finds its projects by title) "
        "and run again"
    )
