"""Small helpers shared by the Label Studio reliability tests (crash, faults, concurrency, secrets)."""

from __future__ import annotations

import pandas as pd


def region(rid, text, sub, label):
    """A Label Studio `labels` result item over the first occurrence of `sub` in `text`."""
    start = text.index(sub)
    return {
        "id": rid,
        "from_name": "label",
        "to_name": "text",
        "type": "labels",
        "value": {"start": start, "end": start + len(sub), "text": sub, "labels": [label]},
    }


def server_articles(client, pid) -> pd.Series:
    """The article_id of every task of project `pid` on the server (one per task)."""
    return pd.Series(
        [
            (t.get("meta") or {}).get("article_id")
            for p in client.task_pages(pid, include=["id", "meta"])
            for t in p
        ]
    )


class Stopped(Exception):
    """A push stopped half-way (as by Ctrl-C, a kill or a server error)."""


def stop_after_first_import(client, monkeypatch) -> None:
    """`client`'s first task import goes through; the next raises Stopped."""
    real, sent = client.import_tasks, []

    def import_then_stop(pid, tasks, count=None):
        if sent:
            raise Stopped
        sent.append(count)
        return real(pid, tasks, count)

    monkeypatch.setattr(client, "import_tasks", import_then_stop)


def dead_pid() -> int:
    """A pid no process has: the kernel's pid_max (pids stay below it). A child that has
    exited is no such pid: once pids wrap, another process may take its pid at once."""
    from pathlib import Path

    return int(Path("/proc/sys/kernel/pid_max").read_text())
