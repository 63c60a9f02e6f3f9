"""The `commits` table: one row per writing command, naming every table's version after it.

`--as-of COMMIT|TIME` reads each table at the version its commit names. The command line is
stored without secrets: a value after an option that names a key, token, password or secret,
any argument holding the Label Studio API key, and the user-info of a URL (`http://user:pw@`
becomes `http://***@`) are replaced by `***`. Nor does it keep
e-mails (`ingest --annotator bob@corp.example`: they are kept only in `annotators`): each
becomes the pseudonym the corpus gives it, or `***`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from datetime import datetime, timezone

import pandas as pd

from spanbank.errors import CorpusError

COMMITS = "commits"
_SECRET_OPTION = re.compile(r"^--?[\w-]*(key|token|password|secret|passwd)[\w-]*$", re.I)
_SECRET_ENV = ("LABEL_STUDIO_API_KEY", "SPANBANK_PSEUDONYM_KEY")
_URL_START = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://")
# an e-mail, as ingest takes one (a name with "@"): text around an "@" up to a separator, not
# starting right after `://` (a URL's user-info, masked already)
_EMAIL = re.compile(r"""(?<![^\s/=,;:'"<>()@])(?<!://)[^\s/=,;:'"<>()@]+@[^\s/=,;:'"<>()@]+""")


def without_emails(text: str) -> str:
    """`text` with whatever reads as an e-mail address masked (`***`)."""
    return _EMAIL.sub("***", text)


def mask_userinfo(arg: str) -> str:
    """`arg` with each URL's user-info masked (`scheme://***@`): up to the last "@" of its
    authority (which ends at the first "/", "?" or "#"), or, when the authority holds a ":" but
    no "@" (a password holding "/"), up to the last "@" before a space: masking too much rather
    than leaving part of a password. An "@" in a path or query (`s3://bucket/key@v1`) is no
    user-info."""
    out, pos = [], 0
    for m in _URL_START.finditer(arg):
        if m.start() < pos:
            continue
        rest = arg[m.end() :]
        end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
        at = rest.rfind("@", 0, end)
        if at < 0 and ":" in rest[:end]:  # the last "@" before any space: text goes on after it
            at = rest.rfind("@", 0, next((i for i, c in enumerate(rest) if c.isspace()), len(rest)))
        if at >= 0:
            out.append(arg[pos : m.end()] + "***")
            pos = m.end() + at
    return "".join(out) + arg[pos:]


def command_line(
    argv: list[str] | None = None, pseudonym: Callable[[str], str] | None = None
) -> str:
    """This process's command line with secrets masked, and each e-mail in it replaced by
    `pseudonym(email)` (by `***` without one)."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        argv[0] = os.path.basename(argv[0])
    secrets = [v for v in (os.environ.get(k) for k in _SECRET_ENV) if v and len(v) >= 4]
    out, hide_next = [], False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        opt, eq, _ = arg.partition("=")
        if _SECRET_OPTION.match(opt):
            out.append(f"{opt}=***" if eq else arg)
            hide_next = not eq
            continue
        for s in secrets:
            arg = arg.replace(s, "***")
        arg = mask_userinfo(arg)
        out.append(_EMAIL.sub(lambda m: pseudonym(m.group()) if pseudonym else "***", arg))
    return " ".join(out)


def commit_row(number: int, versions: dict[str, int], status: str, command: str) -> dict:
    return {
        "commit": number,
        "committed_at": datetime.now(timezone.utc),
        "command": command,
        "status": status,
        "versions": json.dumps(versions, sort_keys=True),
    }


def resolve(commits: pd.DataFrame, spec) -> pd.Series:
    """The commit `spec` names: its number, or the last one made at or before a time."""
    if commits.empty:
        raise CorpusError("the corpus has no commits yet; --as-of needs one")
    text = str(spec).strip()
    if re.fullmatch(r"[-+]?\d+", text):  # a sign too: "-1" is no commit, not the year -1
        hit = commits[commits["commit"] == int(text)]
        if hit.empty:
            raise CorpusError(
                f"no commit {text}; `spanbank log` lists them (1 to {int(commits['commit'].max())})"
            )
        return hit.iloc[-1]
    try:
        when = pd.Timestamp(text) if text else pd.NaT
        if pd.isna(when):  # "", "nat", "none": pandas reads them as no time
            raise ValueError(text)
    except (ValueError, TypeError):
        raise CorpusError(
            f"--as-of {text!r} is neither a commit number nor a time (e.g. 2026-12-03T14:00Z)"
        ) from None
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    before = commits[pd.to_datetime(commits["committed_at"], utc=True) <= when]
    if before.empty:
        first = pd.to_datetime(commits["committed_at"], utc=True).min()
        raise CorpusError(f"no commit at or before {when.isoformat()}; the first is {first}")
    return before.iloc[-1]


def versions_of(row: pd.Series) -> dict[str, int]:
    return {k: int(v) for k, v in json.loads(row["versions"]).items()}
