"""Driving a workflow: push and pull are generators yielding progress events, never printing.

Each workflow is a generator: iterate it for progress events (`spanbank.progress.Event`: stage, done,
total), and its return value (``StopIteration.value``, or use `run`) is the summary.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import pandas as pd

from spanbank.corpus.commits import mask_userinfo
from spanbank.errors import (
    LabelStudioError,
)
from spanbank.labelstudio.client import LabelStudioClient, redact_url
from spanbank.progress import Event

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
    from spanbank.labelstudio.server import connection

    try:
        return LabelStudioClient(*connection(url, api_key))
    except LabelStudioError as exc:  # its message may quote a URL holding a password
        raise type(exc)(mask_userinfo(redact_url(str(exc)))) from None


def utc_now() -> pd.Timestamp:
    """Now in UTC, to the microsecond (what the tables' timestamps hold)."""
    return pd.Timestamp.now(tz="UTC").floor("us")
