"""Annotator pseudonyms and the Label Studio users behind them: listed locally, resolved from names.

The `annotators` table maps a pseudonym to a Label Studio server, user id and e-mail. It is
local only: e-mails are listed only when asked for, and never appear in an error message.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from spanbank.corpus.annotations import HUMAN_ORIGINS, live_annotations
from spanbank.corpus.store import Corpus
from spanbank.errors import AnnotatorError


def _users(corpus: Corpus) -> pd.DataFrame:
    """The annotators table, one row per pseudonym, with a `username` column.

    Label Studio names a user after the local part of the e-mail when it signs them up, so
    that stands in for the user name where the table records none.
    """
    users = corpus.read("annotators")
    users["email"] = users["email"].astype(object)  # all missing, pandas reads it as floats
    if "username" not in users:
        users["username"] = users["email"].str.split("@").str[0]
    # a later row (a later pull) may know the e-mail an earlier one lacked
    users = users.sort_values("email", na_position="first", kind="stable")
    return users.drop_duplicates("annotator", keep="last").reset_index(drop=True)


def list_annotators(corpus: Corpus, show_emails: bool = False) -> list[dict]:
    """Every pseudonym with its Label Studio server and user id, live annotations and projects.

    Pseudonyms of imported annotations (no Label Studio user) are listed too. E-mails and user
    names appear only with `show_emails`.
    """
    corpus.require()
    users = _users(corpus).set_index("annotator")
    live = live_annotations(corpus.read("annotations"))
    ann = live[live["origin"].isin(HUMAN_ORIGINS)]
    reviews = pd.Series(dtype="int64")
    if "reviewer" in live:  # reviewed gold keeps the reviewer's pseudonym apart from annotators
        reviews = live.groupby("reviewer")["article_id"].size()
    counts = ann.groupby("annotator")["article_id"].size()
    projects = ann.dropna(subset=["project"]).groupby("annotator")["project"].unique()
    out = []
    for name in sorted(set(users.index) | set(counts.index) | set(reviews.index)):
        row = {
            "annotator": name,
            "ls_url": _value(users, name, "ls_url"),
            "ls_user_id": _value(users, name, "ls_user_id"),
            "annotations": int(counts.get(name, 0)),
            "reviews": int(reviews.get(name, 0)),
            "projects": sorted(projects.get(name, [])),
        }
        if show_emails:
            row["email"] = _value(users, name, "email")
            row["username"] = _value(users, name, "username")
        out.append(row)
    return out


def _value(users: pd.DataFrame, name: str, column: str):
    """users.at[name, column] as a plain value; None when the pseudonym has no row or no value."""
    if name not in users.index:
        return None
    value = users.at[name, column]
    if pd.isna(value):
        return None
    return int(value) if column == "ls_user_id" else str(value)


def resolve_annotators(corpus: Corpus, names: Iterable[str]) -> list[str]:
    """Pseudonyms for `names`, each a pseudonym, a Label Studio user name or an e-mail.

    In the order given, without repeats; one user seen on two servers gives both pseudonyms.
    A name that matches nothing (or a user name shared by two e-mails) is an AnnotatorError.
    """
    known = set(corpus.read("annotations", ["annotator"])["annotator"].dropna().unique())
    users = None  # read only when a name is not a pseudonym already
    out: list[str] = []
    for name in names:
        if name in known:
            found = [name]
        else:
            users = _users(corpus) if users is None else users
            found = [name] if name in set(users["annotator"]) else _by_user(users, name)
        out += [p for p in found if p not in out]
    return out


def _by_user(users: pd.DataFrame, name: str) -> list[str]:
    """The pseudonyms of the Label Studio user with e-mail or user name `name` (case-insensitive)."""
    key = name.strip().casefold()
    match = users[users["email"].str.casefold() == key]
    if match.empty:
        match = users[users["username"].str.casefold() == key]
        if match["email"].dropna().str.casefold().nunique() > 1:
            raise AnnotatorError(
                f"user name {name!r} belongs to {match['email'].nunique()} Label Studio users; "
                "give the e-mail or the pseudonym (`spanbank annotators` lists them)"
            )
    if match.empty:
        raise AnnotatorError(
            f"no annotator {name!r} in this corpus (not a pseudonym, Label Studio user name or "
            "e-mail); `spanbank annotators` lists them"
        )
    return match["annotator"].tolist()
