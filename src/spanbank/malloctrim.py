"""glibc's malloc in spanbank's processes: freed memory goes back to the system, as Dask has it
for its workers (`MALLOC_TRIM_THRESHOLD_=65536`).

glibc raises its mmap threshold to the size of each mapped block it frees, so later blocks of
that size come from the heap, where anything allocated after them keeps their pages. An
export's driver receives every chunk's encoded part into such blocks: through the stream of a
2-worker export of 1M articles it crept from 406 to 522 MB, and with the threshold set it
stayed at 418-449 MB (docs/SCALE.md, "fifth pass").
"""

from __future__ import annotations

import ctypes
import os
import sys

ENV = "MALLOC_TRIM_THRESHOLD_"  # glibc's own setting; when set, it decides
M_TRIM_THRESHOLD = -1  # mallopt's parameter (malloc.h); setting it also fixes the mmap threshold
TRIM_THRESHOLD = 65536  # Dask's value for its workers (distributed.nanny.pre-spawn-environ)


def tune() -> bool:
    """Set glibc's trim threshold in this process unless $MALLOC_TRIM_THRESHOLD_ did; True when
    this call set it (False off glibc, where there is nothing to set)."""
    if os.environ.get(ENV) or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl)
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
