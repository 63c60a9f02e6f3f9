"""Arrow's memory pool in spanbank's processes: jemalloc, which gives freed memory back.

pyarrow allocates from mimalloc by default on Linux, which kept what reading a table freed:
selecting the gold of 1M articles peaked at 716 MB with it and at 580-590 MB with jemalloc
(docs/SCALE.md, "fourth pass").
"""

from __future__ import annotations

import contextlib
import os

import pyarrow as pa

ENV = "ARROW_DEFAULT_MEMORY_POOL"  # pyarrow's own setting; when set, it decides


def chosen() -> str | None:
    """The pool our processes use: $ARROW_DEFAULT_MEMORY_POOL when set, else jemalloc when this
    pyarrow has it (None: pyarrow's default)."""
    if os.environ.get(ENV):
        return os.environ[ENV]
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return None
    return "jemalloc"


def use() -> None:
    """Make `chosen()` this process's default pool, even when pyarrow started before the variable
    was set (what was allocated before stays where it is)."""
    factory = getattr(pa, f"{chosen()}_memory_pool", None)
    if factory is not None:
        with contextlib.suppress(NotImplementedError):  # named, but not in this pyarrow
            pa.set_memory_pool(factory())
