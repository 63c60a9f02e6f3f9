"""Pure helpers for a span's fragments: one logical span, one or several (start, end) parts.

The `spans.fragments` column is null for a contiguous span; for a discontinuous one it lists
its ordered, non-overlapping parts (at least two) and `start`/`end` are the outer bounds.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from spanbank.errors import OffsetError

JOINER = " … "  # between the fragments' texts in a discontinuous span's `text`

Fragment = tuple[int, int]


def _pair(frag) -> Fragment:
    """(start, end) of one fragment given as a dict/struct row or a 2-sequence."""
    if isinstance(frag, dict):
        return int(frag["start"]), int(frag["end"])
    start, end = frag
    return int(start), int(end)


def is_missing(fragments) -> bool:
    """True when a `fragments` cell holds no list (None, NaN, pandas NA)."""
    if fragments is None:
        return True
    if isinstance(fragments, float):
        return fragments != fragments
    try:
        return len(fragments) == 0
    except TypeError:
        return True  # pandas.NA and other scalars


def fragment_list(start: int, end: int, fragments=None) -> list[Fragment]:
    """A span's parts as (start, end) pairs: its fragments, or [(start, end)] when contiguous."""
    if is_missing(fragments):
        return [(int(start), int(end))]
    return [_pair(f) for f in fragments]


def normalise(parts: Iterable[Sequence[int]]) -> list[Fragment]:
    """Parts sorted by offset, with touching or overlapping ones merged (brat allows both)."""
    out: list[list[int]] = []
    for s, e in sorted(_pair(p) for p in parts):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def check_fragments(parts: Sequence[Fragment], text_len: int | None = None) -> str | None:
    """Why `parts` is not a valid fragment list (ordered, non-empty, non-overlapping), or None."""
    if not parts:
        return "a span needs at least one fragment"
    prev_end = None
    for s, e in parts:
        if not s < e:
            return f"fragment {s} {e} is empty or reversed"
        if s < 0 or (text_len is not None and e > text_len):
            return f"fragment {s} {e} lies outside the text (length {text_len})"
        if prev_end is not None and s < prev_end:
            return f"fragment {s} {e} overlaps or precedes the one before it"
        prev_end = e
    return None


def validate(parts: Sequence[Fragment], text_len: int | None = None) -> None:
    """Raise OffsetError when `parts` is not a valid fragment list."""
    problem = check_fragments(parts, text_len)
    if problem:
        raise OffsetError(problem)


def bounds(parts: Sequence[Fragment]) -> Fragment:
    """The outer (start, end) of a span made of `parts`."""
    return parts[0][0], parts[-1][1]


def fragments_cell(parts: Sequence[Fragment]) -> list[dict] | None:
    """The `fragments` column value for `parts`: None when contiguous, else start/end dicts."""
    if len(parts) < 2:
        return None
    return [{"start": int(s), "end": int(e)} for s, e in parts]


def joined_text(text: str, parts: Sequence[Fragment]) -> str:
    """A span's `text`: its fragments' texts joined by " … " (just the text when contiguous)."""
    return JOINER.join(text[s:e] for s, e in parts)


def span_fields(text: str, parts: Iterable[Sequence[int]]) -> dict:
    """`start`, `end`, `text` and `fragments` of a span made of `parts` (normalised, checked)."""
    norm = normalise(parts)
    validate(norm, len(text))
    start, end = bounds(norm)
    return {
        "start": start,
        "end": end,
        "text": joined_text(text, norm),
        "fragments": fragments_cell(norm),
    }


def row_fragments(row) -> list[Fragment]:
    """The parts of a span row (dict or pandas row with start/end and maybe fragments)."""
    get = row.get if hasattr(row, "get") else lambda k, d=None: getattr(row, k, d)
    return fragment_list(get("start"), get("end"), get("fragments"))


def first_difference(a: str, b: str) -> int | None:
    """Index of the first character where `a` and `b` differ (the shorter's length if one is a
    prefix of the other); None when equal."""
    if a == b:
        return None
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def excerpt_pair(a: str, b: str, width: int = 40) -> tuple[str, str]:
    """`a` and `b` cut to `width` characters around where they first differ, so a message shows
    the difference rather than a common beginning ("…" marks a cut)."""
    at = first_difference(a, b) or 0
    lo = max(0, at - width // 2)

    def cut(s: str) -> str:
        hi = lo + width
        return ("…" if lo else "") + s[lo:hi] + ("…" if len(s) > hi else "")

    return cut(a), cut(b)


def where_differ(a: str, b: str, what: str, verb: str = "cover") -> str:
    """`cover 'x…', <what> 'y…'` with both excerpts around their first difference."""
    a_s, b_s = excerpt_pair(a, b)
    at = first_difference(a, b)
    where = f" (they differ at character {at})" if at and (at >= 20 or a_s == b_s) else ""
    if unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b):
        # alike on screen: composed vs decomposed characters
        where = f" (they differ at character {at} only in Unicode normalisation, NFC vs NFD)"
    return f"{verb} {a_s!r}, {what} {b_s!r}{where}"
