"""What a part's result depends on besides its input: spanbank's own files, and the runtime and
libraries that parse, tag and encode. A Dask worker whose fingerprint differs from the driver's
could return other rows or other bytes, so it refuses the part (`spanbank.parallel`)."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import sys
import unicodedata
import zlib
from pathlib import Path

from spanbank.errors import SpanbankError

# what workers run besides spanbank: tables (pyarrow, pandas, numpy), Delta data files
# (deltalake), spaCy documents and the model (spacy, thinc, srsly); zlib compresses spaCy's
# files, unicodedata decides what str methods and regexes call letters and spaces
LIBRARIES = ("numpy", "pandas", "pyarrow", "deltalake", "spacy", "thinc", "srsly")
CODE = "spanbank code"


@functools.cache
def fingerprint() -> dict[str, str]:
    """This process's fingerprint: spanbank's code digest, Python's version, the Unicode and zlib
    versions it runs with, and the version of each library in `LIBRARIES` ("none" if absent)."""
    fp = {
        CODE: code_digest(Path(__file__).parent),
        "python": "{}.{}".format(*sys.version_info[:2]),
        "unicode": unicodedata.unidata_version,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }
    for name in LIBRARIES:
        try:
            fp[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            fp[name] = "none"
    return fp


def code_digest(root: Path) -> str:
    """sha256 of the modules and data files under `root` (their paths and bytes), cut to 12 hex
    digits: the same installed version can hold other code (an editable install). Other files
    (compiled ones, an editor's) are left out, so a wheel and a source tree of one commit agree."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        in_data = Path(dirpath).relative_to(root).parts[:1] == ("data",)
        for name in sorted(filenames):
            if name.startswith(".") or not (name.endswith(".py") or in_data):
                continue
            path = Path(dirpath, name)
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def check_same(
    driver: dict[str, str], where: str = "this worker", mine: dict | None = None
) -> None:
    """Refuse (one line) when `mine` (default: this process's fingerprint) differs from the
    driver's."""
    mine = fingerprint() if mine is None else mine
    diff = [k for k in driver.keys() | mine.keys() if driver.get(k) != mine.get(k)]
    if diff:
        said = ", ".join(f"{k} {mine.get(k)} (driver: {driver.get(k)})" for k in sorted(diff))
        raise SpanbankError(f"{where} runs other code than the driver: {said}; {NEED}")


NEED = "the workers need the spanbank and libraries of the process that drives them"
