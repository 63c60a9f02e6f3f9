"""Code point <-> UTF-16 offsets and resolving spans whose offsets come from outside."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spanbank.errors import OffsetError
from spanbank.offsets import (
    SEARCH,
    UTF16,
    check_span,
    cp_to_utf16,
    resolve_span,
    tolerant,
    utf16_len,
    utf16_to_cp,
)

ASTRAL = "\U0001f600"  # 😀, two UTF-16 code units
TEXT = f"Hi {ASTRAL} said Ana: \u201cwe won {ASTRAL}\U0001f3c6\u201d.\nThe end."

# any Unicode scalar value (no lone surrogates), weighted towards astral characters
texts = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF, codec="utf-8"),
        st.sampled_from(["\r", "\n", "\t", " "]),
    ),
    max_size=60,
)


def _u16(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


@settings(max_examples=200, deadline=None)
@given(texts)
def test_cp_utf16_round_trip(text):
    cps = np.arange(len(text) + 1)
    u16 = cp_to_utf16(text, cps)
    assert u16.tolist() == [_u16(text[:i]) for i in cps]
    assert utf16_to_cp(text, u16).tolist() == cps.tolist()
    assert utf16_len(text) == _u16(text)


@settings(max_examples=200, deadline=None)
@given(texts, st.data())
def test_resolve_span_with_utf16_offsets_finds_the_span(text, data):
    if not text:
        return
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    claimed = text[start:end]
    s16, e16 = cp_to_utf16(text, start), cp_to_utf16(text, end)
    if not tolerant(claimed):  # a whitespace-only span: exact, or refused
        if text[s16:e16] != claimed:
            with pytest.raises(OffsetError, match="whitespace"):
                resolve_span(text, s16, e16, claimed)
        return
    fix = resolve_span(text, s16, e16, claimed)
    # the span found covers the claimed text (exactly, or as the frontend would show it)
    assert tolerant(text[fix.start : fix.end]) == tolerant(claimed)
    if (s16, e16) == (start, end):
        assert (fix.start, fix.end, fix.repair) == (start, end, None)
    elif text[s16:e16] != claimed:
        assert fix.repair in (UTF16, SEARCH)


def test_scalar_conversions():
    assert cp_to_utf16(TEXT, 3) == 3
    assert cp_to_utf16(TEXT, 4) == 5
    assert utf16_to_cp(TEXT, 5) == 4
    assert isinstance(cp_to_utf16(TEXT, 4), int)
    assert utf16_to_cp("plain ascii", 7) == 7


def test_offset_inside_surrogate_pair_is_an_error():
    with pytest.raises(OffsetError, match="surrogate pair"):
        utf16_to_cp(TEXT, 4)  # between the two halves of the emoji at code point 3


def test_exact_span_needs_no_repair():
    start = TEXT.index("we won")
    fix = resolve_span(TEXT, start, start + 6, "we won")
    assert (fix.start, fix.end, fix.repair) == (start, start + 6, None)


def test_utf16_offsets_are_repaired():
    start = TEXT.index("we won")
    end = TEXT.index("\u201d")
    claimed = TEXT[start:end]  # contains two astral characters
    s16, e16 = cp_to_utf16(TEXT, start), cp_to_utf16(TEXT, end)
    assert (s16, e16) != (start, end)
    fix = resolve_span(TEXT, s16, e16, claimed)
    assert (fix.start, fix.end, fix.repair) == (start, end, UTF16)
    assert TEXT[fix.start : fix.end] == claimed


def test_whitespace_and_crlf_tolerated_at_the_right_offsets():
    text = "Intro.\r\nShe said:\r\n  it  works\r\nend"
    start = text.index("it")
    end = text.index("works") + 5
    fix = resolve_span(text, start, end, "it works")
    assert (fix.start, fix.end, fix.repair) == (start, end, None)
    s2 = text.index("She")
    fix = resolve_span(text, s2, s2 + len("She said:\r\n  it"), "She said:\n it")
    assert (fix.start, fix.end, fix.repair) == (s2, s2 + len("She said:\r\n  it"), None)


def test_shifted_span_is_found_nearby():
    text = "x" * 50 + " the minister said " + "y" * 50
    true = text.index("minister")
    fix = resolve_span(text, true + 3, true + 11, "minister")
    assert (fix.start, fix.end, fix.repair) == (true, true + 8, SEARCH)
    assert text[fix.start : fix.end] == "minister"


def test_nearest_of_several_occurrences_wins():
    text = "said " + "." * 100 + "said " + "." * 100 + "said"
    second = text.index("said", 10)
    fix = resolve_span(text, second + 2, second + 6, "said")
    assert (fix.start, fix.repair) == (second, SEARCH)


def test_shifted_span_with_whitespace_changes_found():
    text = "aaaa bbb The  Prime\r\nMinister said so"
    true = text.index("The")
    fix = resolve_span(text, 0, 17, "The Prime\nMinister")
    assert fix.repair == SEARCH
    assert text[fix.start : fix.end] == "The  Prime\r\nMinister"
    assert fix.start == true


def test_nothing_found_is_rejected_with_reason():
    text = "The minister said nothing of note."
    with pytest.raises(OffsetError, match="covers 'The minis', not 'president'"):
        resolve_span(text, 0, 9, "president")
    with pytest.raises(OffsetError, match="beyond the text"):
        resolve_span(text, 30, 60, "president")
    with pytest.raises(OffsetError, match="whitespace"):
        resolve_span(text, 0, 3, "  \n ")


def test_far_away_match_is_not_taken():
    text = "target" + "." * 5000 + "other words"
    with pytest.raises(OffsetError):
        resolve_span(text, 5006, 5012, "target", window=100)


@pytest.mark.parametrize(
    ("start", "end", "why"),
    [
        (-1, 3, "negative"),
        (5, 3, "reversed"),
        (3, 3, "empty or reversed"),
        (0, 999, "beyond"),
        (1.0, 3, "integers"),
        ("1", 3, "integers"),
        (True, 3, "integers"),
        (None, 3, "integers"),
    ],
)
def test_bad_offsets_are_errors(start, end, why):
    with pytest.raises(OffsetError, match=why):
        resolve_span("short text", start, end)


def test_numpy_integers_are_offsets():
    fix = resolve_span("short text", np.int64(0), np.int32(5), "short")
    assert (fix.start, fix.end, fix.repair) == (0, 5, None)
    assert type(fix.start) is int


def test_check_span():
    check_span("abcdef", 1, 3, "bc")
    for s, e in [(-1, 2), (3, 3), (0, 7), (0.0, 2)]:
        with pytest.raises(OffsetError, match="outside the text"):
            check_span("abcdef", s, e)
    with pytest.raises(OffsetError, match="not 'xx'"):
        check_span("abcdef", 1, 3, "xx")


def test_code_points_win_a_tie_of_frontend_changed_text():
    """Hunt M, repro 6: code points for Bob's "said:\\r\\nno." with the text sent as
    "said:\\nno." fit as code points once line ends are forgiven; the UTF-16 reading (15 emoji
    before) fits the same way on Ann's words, and was taken first, marked `utf16`."""
    text = "😀" * 15 + " Ann said:\r\nno. Bob said:\r\nno."
    bob = text.rindex("said:")
    fix = resolve_span(text, bob, bob + 10, "said:\nno.")
    assert (fix.start, fix.repair) == (bob, None)
    # a client known to count UTF-16 units is read its way first (Ann's words, in its units)
    ann = text.index("said:")
    assert cp_to_utf16(text, ann) == bob
    fix = resolve_span(text, bob, bob + 10, "said:\nno.", counted=UTF16)
    assert (fix.start, fix.repair) == (ann, UTF16)
