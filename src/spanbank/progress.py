"""Progress of a long job (ingest, push, pull, export): one typed event, which the CLI draws."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Event(NamedTuple):
    """A stage of a job, how much of it is done, and of how much (None: not known yet)."""

    stage: str
    done: int
    total: int | None = None


Progress = Callable[[Event], None]  # what ingest and export call; push and pull yield the events
