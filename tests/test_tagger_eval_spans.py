"""Scores key spans by the span itself, not by span_id (hunt G, finding 14): two spans that
shared an id (a brat file repeating a T id) counted as one, so precision read 1.0 for 0.5."""

from spanbank.tagger_eval import score_items

TEXT = "Smith said that it was over. Jones said that it was not."


def _span(sid, label, a, b):
    return {"span_id": sid, "label": label, "start": a, "end": b}


def test_spans_sharing_an_id_count_as_two():
    gold = [_span("g1", "SPEAKER", 29, 34)]
    same_id = [_span("p", "SPEAKER", 0, 5), _span("p", "SPEAKER", 29, 34)]
    got = score_items([{"spans": same_id, "relations": []}], [("a", TEXT, gold, [])])
    assert {k: got["exact"]["SPEAKER"][k] for k in ("tp", "n_pred", "n_gold")} == {
        "tp": 1,
        "n_pred": 2,
        "n_gold": 1,
    }
    assert got["exact"]["SPEAKER"]["precision"] == 0.5


def test_gold_sharing_an_id_keeps_both_spans_and_their_links():
    gold = [
        _span("T1", "SPEAKER", 0, 5),
        _span("T1", "SPEAKER", 29, 34),
        _span("T2", "QUOTE", 16, 27),
        _span("T2", "QUOTE", 16, 27),  # the same span twice is one span
    ]
    rels = [{"from_span_id": "T2", "to_span_id": "T1", "label": "said_by"}]
    pred = {
        "spans": [_span("m1", "SPEAKER", 0, 5), _span("m2", "SPEAKER", 29, 34)]
        + [_span("m3", "QUOTE", 16, 27)],
        "relations": [{"from_span_id": "m3", "to_span_id": "m1", "label": "said_by"}],
    }
    got = score_items([pred], [("a", TEXT, gold, rels)])["exact"]
    assert (got["SPEAKER"]["tp"], got["SPEAKER"]["n_gold"]) == (2, 2)
    assert (got["QUOTE"]["tp"], got["QUOTE"]["n_pred"], got["QUOTE"]["n_gold"]) == (1, 1, 1)
    # the link names T1, which is both speakers: it is kept for each
    assert (got["said_by"]["tp"], got["said_by"]["n_gold"]) == (1, 2)
