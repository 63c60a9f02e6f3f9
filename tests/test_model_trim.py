"""Model spans are trimmed of whitespace (hunt G, finding 7): 57 of 3,332 predicted spans ended
in "\\n\\n" or "\\r\\n", and went so to Label Studio and into --out."""

import numpy as np
import spacy
from spacy.tokens import Span

from spanbank import model


def test_predicted_spans_are_trimmed_and_blank_ones_dropped():
    text = '"We will win," Smith said.\r\n\n  The senator said taxes would rise.\n\n'
    doc = spacy.blank("en").make_doc(text)
    space = [t.i for t in doc if t.is_space]
    first_space, last_space = space[0], space[-1]
    doc.ents = [
        Span(doc, 0, first_space + 1, label="QUOTE"),  # ends in "\r\n\n"
        Span(doc, first_space + 1, len(doc), label="QUOTE"),  # "  The ... rise.\n\n"
    ]
    got = model._spans(doc, np.full(len(doc), 0.5))
    assert [text[s["start"] : s["end"]] for s in got] == [
        '"We will win," Smith said.',
        "The senator said taxes would rise.",
    ]
    doc.ents = [Span(doc, last_space, last_space + 1, label="CUE")]  # whitespace only
    assert model._spans(doc, np.full(len(doc), 0.5)) == []
