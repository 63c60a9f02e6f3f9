"""Deterministic train/dev/test splits by article (or by group of articles)."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from spanbank.errors import ExportError

DEFAULT_SPLIT = {"train": 0.8, "dev": 0.1, "test": 0.1}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def parse_split(spec: str | dict | None) -> dict[str, float]:
    """`train=0.8,dev=0.1,test=0.1` -> {"train": 0.8, ...}; fractions must be >= 0 and sum to 1."""
    if spec is None:
        return dict(DEFAULT_SPLIT)
    if isinstance(spec, dict):
        items = list(spec.items())
    else:
        items = []
        for part in str(spec).split(","):
            if not part.strip():
                continue
            name, sep, value = part.partition("=")
            if not sep:
                raise ExportError(
                    f"split {part.strip()!r} needs a fraction, e.g. train=0.8,dev=0.1,test=0.1"
                )
            items.append((name.strip(), value.strip()))
    if not items:
        raise ExportError("empty split; use e.g. train=0.8,dev=0.1,test=0.1")
    out: dict[str, float] = {}
    for name, value in items:
        if not _NAME.match(name):
            raise ExportError(
                f"split name {_short(name)} must start with a letter and hold only letters, digits, - and _"
            )
        if name in out:
            raise ExportError(f"split {name!r} is given twice")
        try:
            frac = float(value)
        except (TypeError, ValueError):
            raise ExportError(f"split {name}: {value!r} is not a number") from None
        if not 0 <= frac <= 1:
            raise ExportError(f"split {name}: fraction {frac} is not between 0 and 1")
        out[name] = frac
    check_names(list(out))
    total = sum(out.values())
    if abs(total - 1) > 1e-6:
        raise ExportError(f"split fractions sum to {total:g}, not 1")
    return out


# names an export's formats give their own files beside the splits' (`hf/parquet/` holds every
# split's Parquet copy; `hf/dataset_dict.json` is what `save_to_disk` writes)
RESERVED = ("parquet", "dataset_dict")


def check_names(names: list[str]) -> None:
    """Refuse split names an export cannot lay out as folders: one a format uses for its own
    files (in any case), or two differing only in case (one folder on macOS and Windows)."""
    seen: dict[str, str] = {}
    for name in names:
        if name.lower() in RESERVED:
            raise ExportError(
                f"split name {name!r} is taken: hf/{name.lower()}/ holds the export's own files; "
                "choose another name"
            )
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise ExportError(
                f"split names {other!r} and {name!r} differ only in case "
                "(one folder on macOS and Windows); rename one"
            )


def unit_hash(keys, seed: int) -> np.ndarray:
    """Each key (str) and the seed -> a number in [0, 1), the same on every machine and run."""
    salt = f"{int(seed)}\x00".encode()
    raw = b"".join(hashlib.sha256(salt + str(k).encode()).digest()[:8] for k in keys)
    ints = np.frombuffer(raw, dtype=">u8")
    return (ints >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def assign_splits(keys, fractions: dict[str, float], seed: int = 0) -> np.ndarray:
    """Split name per key: hash(seed, key) in [0,1) falls into the cumulative fraction bins.

    Equal keys always land in the same split, so passing a group value as the key keeps a
    group together. Returns an object array of split names, aligned with `keys`.
    """
    return np.asarray(list(fractions), dtype=object)[split_codes(keys, fractions, seed)]


def split_codes(keys, fractions: dict[str, float], seed: int = 0) -> np.ndarray:
    """:func:`assign_splits` as positions in `fractions`' names (int64), key by key: a corpus
    can be split a batch of keys at a time."""
    keys = list(keys)
    names = list(fractions)
    if not keys:
        return np.empty(0, dtype=np.int64)
    bounds = np.cumsum([fractions[n] for n in names])
    last = max(i for i, n in enumerate(names) if fractions[n] > 0)
    bounds[last:] = np.inf  # float rounding must not leave a sliver to an empty bin
    # a zero-width bin never receives keys: searchsorted(side=right) skips it
    return np.searchsorted(bounds, unit_hash(keys, seed), side="right")


def _short(name: str, limit: int = 40) -> str:
    """`name` quoted on one line, cut to `limit` characters (a split-by column may hold texts)."""
    return repr(name if len(name) <= limit else name[:limit] + "…")
