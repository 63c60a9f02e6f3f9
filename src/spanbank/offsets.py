"""Code point <-> UTF-16 offsets, and verifying (or repairing) a span against its article text."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from spanbank.errors import OffsetError
from spanbank.spans import where_differ

UTF16 = "utf16"
SEARCH = "search"
SEARCH_WINDOW = 2000


_NONE = np.empty(0, dtype=np.int64)
_NONE.flags.writeable = False


@functools.lru_cache(maxsize=8)  # pull asks it of one article's text once per region
def _astral_positions(text: str) -> np.ndarray:
    """Code point indices of characters outside the BMP (two UTF-16 units each); read-only."""
    if text.isascii() or max(text) <= "\uffff":  # both loops in C: most texts have none
        return _NONE
    out = np.fromiter((i for i, ch in enumerate(text) if ord(ch) > 0xFFFF), dtype=np.int64)
    out.flags.writeable = False
    return out


def cp_to_utf16(text: str, offsets):
    """Code point offsets -> UTF-16 code unit offsets (scalar or array)."""
    astral = _astral_positions(text)
    arr = np.asarray(offsets, dtype=np.int64)
    out = arr + np.searchsorted(astral, arr, side="left")
    return int(out) if np.ndim(offsets) == 0 else out


def utf16_to_cp(text: str, offsets):
    """UTF-16 code unit offsets -> code point offsets; raises OffsetError inside a surrogate pair."""
    astral = _astral_positions(text)
    # UTF-16 position of each astral char; units at u16+1 are the low surrogate (not a boundary).
    astral_u16 = astral + np.arange(len(astral))
    arr = np.asarray(offsets, dtype=np.int64)
    before = np.searchsorted(astral_u16, arr, side="left")
    inside = np.isin(arr - 1, astral_u16)
    if inside.any():
        raise OffsetError("offset falls inside a surrogate pair (not a UTF-16 character boundary)")
    out = arr - before
    return int(out) if np.ndim(offsets) == 0 else out


def utf16_len(text: str) -> int:
    return len(text) + len(_astral_positions(text))


_WS = re.compile(r"\s+")


def tolerant(s: str) -> str:
    """What the Label Studio frontend may change: whitespace runs, line ends, Unicode composition."""
    return _WS.sub(" ", unicodedata.normalize("NFC", s)).strip()


@dataclass(frozen=True)
class SpanFix:
    """Where a span really is in the text, and which repair (None, `utf16`, `search`) found it."""

    start: int
    end: int
    repair: str | None


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _utf16_reading(text: str, start: int, end: int) -> tuple[int, int] | None:
    """start..end read as UTF-16 units, in code points; None when that reading is no span."""
    if not 0 <= start < end <= 2 * len(text) or not len(_astral_positions(text)):
        return None  # past 2n no reading fits; without astral characters it is code points
    try:
        s16, e16 = utf16_to_cp(text, [start, end]).tolist()
    except OffsetError:
        return None
    return (s16, e16) if s16 < e16 <= len(text) else None


CP = "cp"  # a count of offsets: code points (UTF16: UTF-16 code units)


def _collapsed(s: str) -> str:
    """`tolerant` without the strip: a whitespace character at an edge still counts."""
    return _WS.sub(" ", unicodedata.normalize("NFC", s))


def _as_sent(s: str) -> str:
    """What Label Studio's frontend makes of a text: CRLF line ends as LF, characters composed."""
    return unicodedata.normalize("NFC", s.replace("\r\n", "\n"))


def _fit(piece: str, claimed: str, forms: tuple[str, ...]) -> int | None:
    """How well `piece` of the text is the `claimed` span text: 0 exactly, 1 as the frontend
    sends it (`_as_sent`), 2 with whitespace runs as one space, 3 with the edges' whitespace
    forgiven too; None not at all. `forms`: claimed's `_as_sent`, `_collapsed`, `tolerant`."""
    if piece == claimed:
        return 0
    if _as_sent(piece) == forms[0]:
        return 1
    if _collapsed(piece) == forms[1]:
        return 2
    return 3 if piece.strip() and tolerant(piece) == forms[2] else None


def _forms(claimed: str) -> tuple[str, ...]:
    return _as_sent(claimed), _collapsed(claimed), tolerant(claimed)


def _readings(text: str, start: int, end: int) -> list[tuple[str, int, int]]:
    """(count, start, end) of each way to read the offsets: code points, and UTF-16 units when
    astral characters make that another place."""
    out = [(CP, start, end)] if end <= len(text) else []
    u16 = _utf16_reading(text, start, end)
    if u16 is not None and u16 != (start, end):
        out.append((UTF16, *u16))
    return out


def counted_in(text: str, start, end, claimed) -> tuple[str, int] | None:
    """Which count (`cp` or `utf16`) the offsets of `claimed` speak for, and how strongly: 2
    when it alone fits (`_fit`), 1 when it fits better than the other; None when both fit as
    well, neither does, or the two readings are one."""
    if not (_is_int(start) and _is_int(end) and isinstance(claimed, str)) or not 0 <= start < end:
        return None
    readings = _readings(text, int(start), int(end))
    if not any(c == UTF16 for c, _, _ in readings):  # one reading (or none): no evidence
        return None
    forms = _forms(claimed)
    fits = {c: _fit(text[s:e], claimed, forms) for c, s, e in readings}
    fitting = {c: f for c, f in fits.items() if f is not None}
    if len(fitting) == 1:
        return next(iter(fitting)), 2
    if len(fitting) == 2 and fitting[CP] != fitting[UTF16]:
        return min(fitting, key=fitting.get), 1
    return None


def resolve_span(
    text: str,
    start,
    end,
    claimed: str | None = None,
    window: int = SEARCH_WINDOW,
    counted: str | None = None,
) -> SpanFix:
    """Find the true code point offsets of a span whose offsets and text come from outside.

    `claimed` is the span text the source said it covered (None: trust bounds only). Label
    Studio has counted UTF-16 code units on some paths (astral characters count twice), so
    the offsets are read both ways; `counted` (`cp` or `utf16`, known from the source's other
    spans) takes its reading whenever it fits at all. Else the reading that fits best wins
    (exactly, then as the frontend sends text, then with whitespace runs as one, then with
    edge whitespace forgiven), code points first on a tie (Label Studio's UI sends code
    points). Raises
    OffsetError with the reason when no reading of the evidence fits.
    """
    if not (_is_int(start) and _is_int(end)):
        raise OffsetError(f"offsets must be integers, got {start!r}..{end!r}")
    start, end = int(start), int(end)
    if start < 0 or end < 0:
        raise OffsetError(f"negative offset {start}..{end}")
    if start >= end:
        raise OffsetError(f"empty or reversed span {start}..{end}")
    n = len(text)
    if claimed is None:
        if end > n:
            raise OffsetError(f"span {start}..{end} lies beyond the text (length {n})")
        return SpanFix(start, end, None)
    if not tolerant(claimed):  # whitespace is kept only where it was said to be
        if end <= n and text[start:end] == claimed:
            return SpanFix(start, end, None)
        raise OffsetError("span text is empty or whitespace")
    if counted != UTF16 and end <= n and text[start:end] == claimed:
        return SpanFix(start, end, None)  # exact in code points: nothing can fit better
    forms = _forms(claimed)
    fits = [
        (count != counted, level, count != CP, s, e)
        for count, s, e in _readings(text, start, end)
        if (level := _fit(text[s:e], claimed, forms)) is not None
    ]
    if fits:
        *_, s, e = min(fits)
        return SpanFix(s, e, None if (s, e) == (start, end) else UTF16)
    found = _search_near(text, claimed, start, window)
    if found is not None:
        return SpanFix(found[0], found[1], SEARCH)
    shown = claimed if len(claimed) <= 40 else claimed[:37] + "..."
    if end > n:
        raise OffsetError(
            f"span {start}..{end} lies beyond the text (length {n}) and {shown!r} is not nearby"
        )
    raise _rejection(start, end, text, shown)


def _rejection(start: int, end: int, text: str, shown: str) -> OffsetError:
    actual = text[start:end]
    actual = actual if len(actual) <= 40 else actual[:37] + "..."
    return OffsetError(f"span {start}..{end} covers {actual!r}, not {shown!r}, and no nearby match")


def _pattern(claimed: str) -> re.Pattern:
    parts = [re.escape(p) for p in _WS.split(unicodedata.normalize("NFC", claimed).strip()) if p]
    return re.compile(r"\s+".join(parts))


def _search_near(text: str, claimed: str, start: int, window: int) -> tuple[int, int] | None:
    """Nearest occurrence of `claimed` (whitespace-tolerant) within `window` of `start`."""
    lo, hi = max(0, start - window), min(len(text), start + len(claimed) + window)
    hay = text[lo:hi]
    candidates = []
    for variant in {claimed, claimed.strip()}:
        idx = hay.find(variant)
        while idx != -1 and variant:
            candidates.append((lo + idx, lo + idx + len(variant)))
            idx = hay.find(variant, idx + 1)
    if not candidates:
        pat = _pattern(claimed)
        candidates = [
            (lo + m.start(), lo + m.end()) for m in pat.finditer(unicodedata.normalize("NFC", hay))
        ]
        if not hay.isascii() and unicodedata.normalize("NFC", hay) != hay:
            return None  # composition changed lengths: offsets in `hay` would not be ours
    if not candidates:
        return None
    return min(candidates, key=lambda c: (abs(c[0] - start), c[0]))


def check_span(text: str, start: int, end: int, span_text: str | None = None) -> None:
    """Raise OffsetError unless text[start:end] is exactly the span (and equals span_text if given)."""
    if not (_is_int(start) and _is_int(end)) or not 0 <= start < end <= len(text):
        raise OffsetError(f"span {start!r}..{end!r} is outside the text (length {len(text)})")
    if span_text is not None and text[start:end] != span_text:
        raise OffsetError(
            f"span {start}..{end} {where_differ(text[start:end], span_text, 'not', 'covers')}"
        )
