"""The pure fragment helpers shared by import, sync and export."""

import numpy as np
import pytest

from spanbank.errors import OffsetError
from spanbank.spans import (
    check_fragments,
    fragment_list,
    fragments_cell,
    joined_text,
    normalise,
    row_fragments,
    span_fields,
)

TEXT = "“We win,” he said, “and they lose.”"


def test_contiguous_span_is_one_fragment():
    assert fragment_list(3, 9, None) == [(3, 9)]
    assert fragment_list(3, 9, float("nan")) == [(3, 9)]
    assert fragments_cell([(3, 9)]) is None


def test_fragments_from_stored_structs():
    cell = np.array([{"start": 1, "end": 7}, {"start": 20, "end": 33}], dtype=object)
    assert fragment_list(1, 33, cell) == [(1, 7), (20, 33)]
    assert row_fragments({"start": 1, "end": 33, "fragments": cell}) == [(1, 7), (20, 33)]


def test_span_fields_join_with_ellipsis():
    out = span_fields(TEXT, [(20, 33), (1, 7)])
    assert (out["start"], out["end"]) == (1, 33)
    assert out["text"] == "We win … and they lose"
    assert out["fragments"] == [{"start": 1, "end": 7}, {"start": 20, "end": 33}]
    assert joined_text(TEXT, [(1, 7)]) == "We win"


def test_overlapping_parts_merge_and_bad_ones_are_refused():
    assert normalise([(5, 9), (1, 6)]) == [(1, 9)]
    assert span_fields(TEXT, [(1, 4), (4, 7)])["fragments"] is None
    assert "overlaps" in check_fragments([(1, 9), (5, 12)])
    with pytest.raises(OffsetError, match="outside the text"):
        span_fields(TEXT, [(1, 7), (30, 99)])


def test_messages_show_where_two_long_texts_differ():
    from spanbank.offsets import check_span

    text = "The committee said on Tuesday that the budget would pass " * 2
    claimed = text[:90] + "X" + text[91:100]
    with pytest.raises(OffsetError) as exc:
        check_span(text, 0, 100, claimed)
    msg = str(exc.value)
    assert "differ at character 90" in msg
    assert "X" in msg  # the differing character is shown, not cut off


def test_texts_alike_but_for_unicode_normalisation_are_said_so():
    """Hunt M, F9: re-ingesting an NFD copy of a stored NFC text was refused with two excerpts
    that look the same and no position (the first difference, at character 3, was not shown)."""
    import unicodedata

    from spanbank.spans import where_differ

    text = "Café owner José said “déjà vu”. Second line of the story."
    msg = where_differ(text, unicodedata.normalize("NFD", text), "and now")
    assert msg.endswith("(they differ at character 3 only in Unicode normalisation, NFC vs NFD)")
    assert where_differ("abc", "abd", "and now") == "cover 'abc', and now 'abd'"
