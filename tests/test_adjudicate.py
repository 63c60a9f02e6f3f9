"""Adjudication: hand-built three-annotator cases with known results, the stored gold, the
gold selection used by exports, and the `adjudicate` command."""

import json
import random

import pandas as pd
import pytest
from click.testing import CliRunner

from spanbank.adjudicate import adjudicate, adjudicate_article
from spanbank.cli import cli
from spanbank.corpus.store import Corpus
from spanbank.corpus.tables import TABLES
from spanbank.errors import AdjudicationError, AnnotatorError, CorpusError, SpanbankError
from spanbank.gold import annotation_spans, run_adjudication, select_annotations

WHO = ["ann", "bob", "cat"]


def S(annotator, span_id, label, start, end, attributes=None):
    return dict(
        annotator=annotator,
        span_id=span_id,
        label=label,
        start=start,
        end=end,
        attributes=attributes,
    )


def R(annotator, frm, to, label="said_by"):
    return dict(annotator=annotator, from_span_id=frm, to_span_id=to, label=label)


def run(spans, relations=(), strategy="majority", **kw):
    kw.setdefault("annotators", WHO)
    return adjudicate_article(spans, list(relations), strategy, article_id="a1", **kw)


def spans_of(gold):
    return sorted(zip(gold["label"], gold["start"], gold["end"], strict=True))


def conflicts_of(conflicts, kind):
    rows = conflicts[conflicts["kind"] == kind]
    return [(g, json.loads(d)) for g, d in zip(rows["group_id"], rows["detail"], strict=True)]


# --------------------------------------------------------------------------- pure


def test_clean_majority_keeps_everything_without_conflicts():
    spans = [s for a in WHO for s in (S(a, "q", "QUOTE", 10, 40), S(a, "s", "SPEAKER", 0, 5))]
    rels = [R(a, "q", "s") for a in WHO]
    gold, links, conflicts = run(spans, rels)
    assert spans_of(gold) == [("QUOTE", 10, 40), ("SPEAKER", 0, 5)]
    assert gold["votes"].tolist() == [3, 3]
    assert gold["span_id"].tolist() == ["g1", "g2"]  # numbered by position
    assert links[["from_span_id", "to_span_id", "label", "votes"]].values.tolist() == [
        ["g2", "g1", "said_by", 3]
    ]
    assert conflicts.empty
    assert (gold["article_id"] == "a1").all()


def test_boundary_disagreement_two_against_one():
    spans = [
        S("ann", "q", "QUOTE", 10, 40),
        S("bob", "x", "QUOTE", 10, 40),
        S("cat", "q", "QUOTE", 12, 40),
    ]
    gold, _, conflicts = run(spans)
    assert spans_of(gold) == [("QUOTE", 10, 40)]
    assert conflicts["kind"].tolist() == ["boundary"]
    [(gid, detail)] = conflicts_of(conflicts, "boundary")
    assert gid == "g1"
    assert detail["votes"] == {"ann": [10, 40], "bob": [10, 40], "cat": [12, 40]}
    assert detail["chosen"] == [10, 40]


@pytest.mark.parametrize("names", [("ann", "bob"), ("bob", "ann"), ("zed", "amy")])
def test_tie_between_two_annotators_is_deterministic_and_reported(names):
    first, second = names
    spans = [S(first, "q", "QUOTE", 12, 40), S(second, "q", "QUOTE", 10, 40)]
    gold, _, conflicts = adjudicate_article(spans, [], "majority", article_id="a1")
    # earliest start wins a tie, whoever drew it and in whatever order the rows come
    assert spans_of(gold) == [("QUOTE", 10, 40)]
    [(gid, detail)] = conflicts_of(conflicts, "tie")
    assert detail["on"] == "boundary" and detail["chosen"] == [10, 40]
    assert detail["votes"] == {first: [12, 40], second: [10, 40]}


def test_tie_between_three_boundaries_prefers_earliest_then_longest():
    spans = [
        S("ann", "q", "QUOTE", 12, 40),
        S("bob", "q", "QUOTE", 10, 38),
        S("cat", "q", "QUOTE", 10, 40),
    ]
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        gold, _, conflicts = run([spans[i] for i in order])
        assert spans_of(gold) == [("QUOTE", 10, 40)]
        assert conflicts["kind"].tolist() == ["tie"]


def test_grouping_is_transitive_across_annotators():
    # ann-bob and bob-cat overlap with IoU 10/14, ann-cat only 6/14 < 0.5: still one group
    spans = [
        S("ann", "e", "EVENT", 0, 10),
        S("bob", "e", "EVENT", 0, 14),
        S("cat", "e", "EVENT", 4, 14),
    ]
    gold, _, conflicts = run(spans)
    assert spans_of(gold) == [("EVENT", 0, 14)]
    assert gold["votes"].tolist() == [3]
    assert "missing" not in set(conflicts["kind"])


def test_nested_speaker_inside_quote_both_kept():
    spans = [s for a in WHO for s in (S(a, "q", "QUOTE", 0, 60), S(a, "s", "SPEAKER", 20, 25))]
    rels = [R(a, "q", "s") for a in WHO]
    gold, links, conflicts = run(spans, rels)
    assert spans_of(gold) == [("QUOTE", 0, 60), ("SPEAKER", 20, 25)]
    assert len(links) == 1 and conflicts.empty


def test_relation_whose_speaker_lost_the_vote_is_dropped():
    spans = [S(a, "q", "QUOTE", 10, 40) for a in WHO] + [
        S("ann", "s", "SPEAKER", 0, 5),
        S("bob", "s", "SPEAKER", 0, 5),
        S("cat", "s", "SPEAKER", 50, 55),
    ]
    rels = [R(a, "q", "s") for a in WHO]
    gold, links, conflicts = run(spans, rels)
    assert spans_of(gold) == [("QUOTE", 10, 40), ("SPEAKER", 0, 5)]
    speaker = gold.loc[gold["label"] == "SPEAKER", "span_id"].item()
    quote = gold.loc[gold["label"] == "QUOTE", "span_id"].item()
    assert links[["from_span_id", "to_span_id", "votes"]].values.tolist() == [[quote, speaker, 2]]
    rel = dict(conflicts_of(conflicts, "relation"))
    dropped = [d for d in rel.values() if not d["kept"]]
    assert len(dropped) == 1 and dropped[0]["by"] == ["cat"]
    assert dropped[0]["reason"] == "an endpoint did not survive"
    missing = [d for _, d in conflicts_of(conflicts, "missing")]
    assert {(d["start"], d["kept"]) for d in missing} == {(0, True), (50, False)}


def test_relation_is_voted_by_majority_even_when_both_spans_survive():
    spans = [s for a in WHO for s in (S(a, "q", "QUOTE", 10, 40), S(a, "c", "CUE", 41, 45))]
    gold, links, _ = run(spans, [R("ann", "q", "c", "cue")])
    assert len(gold) == 2 and links.empty
    _, links, _ = run(spans, [R("ann", "q", "c", "cue")], strategy="union")
    assert links["label"].tolist() == ["cue"]


def test_attributes_are_voted_per_key():
    spans = [
        S("ann", "q", "QUOTE", 0, 9, {"type": "direct"}),
        S("bob", "q", "QUOTE", 0, 9, '{"type": "direct"}'),  # JSON as stored
        S("cat", "q", "QUOTE", 0, 9, {"type": "indirect"}),
    ]
    gold, _, conflicts = run(spans)
    assert gold["attributes"].tolist() == [{"type": "direct"}]
    [(_, detail)] = conflicts_of(conflicts, "attribute")
    assert detail["votes"] == {"ann": "direct", "bob": "direct", "cat": "indirect"}
    # no value is a vote too: two annotators left it empty
    spans = [
        S("ann", "q", "QUOTE", 0, 9, {"type": "mixed"}),
        S("bob", "q", "QUOTE", 0, 9),
        S("cat", "q", "QUOTE", 0, 9, None),
    ]
    gold, _, conflicts = run(spans)
    assert gold["attributes"].tolist() == [{}]
    assert conflicts["kind"].tolist() == ["attribute"]


@pytest.mark.parametrize("order", [("direct", "indirect"), ("indirect", "direct")])
def test_a_span_drawn_twice_with_two_values_gives_its_annotator_no_vote(order):
    """Hunt M, F5: ann drew the quote twice, once direct and once indirect; bob said indirect,
    cat direct. The gold took ann's first copy's type, so it followed the drawing order."""
    spans = [
        S("ann", "q1", "QUOTE", 0, 9, {"type": order[0]}),
        S("ann", "q2", "QUOTE", 0, 9, {"type": order[1]}),
        S("bob", "q", "QUOTE", 0, 9, {"type": "indirect"}),
        S("cat", "q", "QUOTE", 0, 9, {"type": "direct"}),
    ]
    gold, _, conflicts = run(spans)
    assert gold["attributes"].tolist() == [{"type": "direct"}]  # a tie: the smallest value
    [(_, detail)] = conflicts_of(conflicts, "tie")
    assert detail["votes"] == {"ann": ["direct", "indirect"], "bob": "indirect", "cat": "direct"}
    # with bob agreeing with cat, their two votes decide whatever ann drew
    spans[2] = S("bob", "q", "QUOTE", 0, 9, {"type": "mixed"})
    spans[3] = S("cat", "q", "QUOTE", 0, 9, {"type": "mixed"})
    gold, _, conflicts = run(spans)
    assert gold["attributes"].tolist() == [{"type": "mixed"}]
    [(_, detail)] = conflicts_of(conflicts, "attribute")
    assert detail["votes"]["ann"] == ["direct", "indirect"]


def test_attribute_ties_prefer_a_value_then_the_smallest():
    two = ["ann", "bob"]
    gold, _, conflicts = run(
        [S("ann", "q", "QUOTE", 0, 9), S("bob", "q", "QUOTE", 0, 9, {"type": "mixed"})],
        annotators=two,
    )
    assert gold["attributes"].tolist() == [{"type": "mixed"}]
    assert conflicts["kind"].tolist() == ["tie"]
    gold, _, conflicts = run(
        [
            S("ann", "q", "QUOTE", 0, 9, {"type": "mixed"}),
            S("bob", "q", "QUOTE", 0, 9, {"type": "direct"}),
        ],
        annotators=two,
    )
    assert gold["attributes"].tolist() == [{"type": "direct"}]
    [(_, detail)] = conflicts_of(conflicts, "tie")
    assert detail["on"] == "attribute:type" and detail["chosen"] == "direct"


@pytest.mark.parametrize("strategy", ["majority", "union", "intersection", "prefer:ann"])
def test_a_span_drawn_twice_by_one_annotator_counts_once(strategy):
    # ann drew the speaker twice alike and linked the quote to the copy; bob and cat once
    spans = [s for a in WHO for s in (S(a, "q", "QUOTE", 10, 40), S(a, "s", "SPEAKER", 0, 5))]
    spans.append(S("ann", "s2", "SPEAKER", 0, 5))
    rels = [R("ann", "q", "s2"), R("bob", "q", "s"), R("cat", "q", "s")]
    gold, links, conflicts = run(spans, rels, strategy=strategy)
    assert spans_of(gold) == [("QUOTE", 10, 40), ("SPEAKER", 0, 5)]
    assert gold["votes"].tolist() == [3, 3]
    assert links[["from_span_id", "to_span_id", "votes"]].values.tolist() == [["g2", "g1", 3]]
    assert conflicts["kind"].tolist() == ["merge"]  # not "missing": bob and cat drew it
    [(gid, detail)] = conflicts_of(conflicts, "merge")
    assert gid == "g1" and detail["annotator"] == "ann"
    assert detail["spans"] == [[0, 5], [0, 5]] and detail["kept"] is True


def test_annotator_who_drew_nothing_still_counts():
    spans = [S("ann", "s", "SPEAKER", 0, 5), S("bob", "s", "SPEAKER", 0, 5)]
    gold, _, conflicts = run(spans)
    assert spans_of(gold) == [("SPEAKER", 0, 5)]
    [(_, detail)] = conflicts_of(conflicts, "missing")
    assert detail["not_by"] == ["cat"] and detail["kept"] is True
    gold, _, _ = run(spans, min_votes=3)
    assert gold.empty
    gold, _, conflicts = run(spans, annotators=["ann", "bob"])  # only the two of them
    assert len(gold) == 1 and conflicts.empty


def test_label_disagreement_is_reported_and_voted():
    spans = [
        S("ann", "x", "CUE", 45, 49),
        S("bob", "x", "EVENT", 45, 49),
        S("cat", "x", "EVENT", 45, 49),
    ]
    gold, _, conflicts = run(spans)
    assert spans_of(gold) == [("EVENT", 45, 49)]
    assert sorted(conflicts["kind"]) == ["label", "missing", "missing"]
    [(gid, detail)] = conflicts_of(conflicts, "label")
    assert detail["labels"] == {"ann": "CUE", "bob": "EVENT", "cat": "EVENT"}
    kept = {g["label"]: g["kept"] for g in detail["groups"].values()}
    assert kept == {"CUE": False, "EVENT": True}


THREE_WAY = [
    S("ann", "q", "QUOTE", 10, 40, {"type": "direct"}),
    S("bob", "q", "QUOTE", 10, 40, {"type": "direct"}),
    S("cat", "q", "QUOTE", 12, 40, {"type": "indirect"}),
    S("ann", "s", "SPEAKER", 0, 5),
    S("bob", "s", "SPEAKER", 0, 5),  # ann + bob
    S("ann", "c", "CUE", 41, 45),  # ann only
    S("cat", "s", "SPEAKER", 50, 55),  # cat only
]


def test_union_keeps_every_group_with_voted_boundaries():
    gold, _, _ = run(THREE_WAY, strategy="union")
    assert spans_of(gold) == [
        ("CUE", 41, 45),
        ("QUOTE", 10, 40),
        ("SPEAKER", 0, 5),
        ("SPEAKER", 50, 55),
    ]


def test_intersection_keeps_only_what_everyone_drew():
    gold, _, conflicts = run(THREE_WAY, strategy="intersection")
    assert spans_of(gold) == [("QUOTE", 10, 40)]
    assert gold["attributes"].tolist() == [{"type": "direct"}]
    missing = {d["start"]: d["kept"] for _, d in conflicts_of(conflicts, "missing")}
    assert missing == {0: False, 41: False, 50: False}


def test_prefer_annotator_wins_conflicts_and_others_need_a_majority():
    gold, _, conflicts = run(THREE_WAY, strategy="prefer:cat")
    # cat's quote boundaries and type win; cat's lone speaker kept; ann+bob's speaker kept
    # by majority; ann's lone cue dropped
    assert spans_of(gold) == [("QUOTE", 12, 40), ("SPEAKER", 0, 5), ("SPEAKER", 50, 55)]
    quote = gold[gold["label"] == "QUOTE"].iloc[0]
    assert quote["attributes"] == {"type": "indirect"}
    assert "tie" not in set(conflicts["kind"])
    majority, _, _ = run(THREE_WAY)
    assert spans_of(majority) == [("QUOTE", 10, 40), ("SPEAKER", 0, 5)]


def test_prefer_annotator_decides_relations_between_their_spans():
    spans = [s for a in WHO for s in (S(a, "q", "QUOTE", 10, 40), S(a, "s", "SPEAKER", 0, 5))]
    rels = [R("ann", "q", "s"), R("bob", "q", "s")]  # cat did not link them
    _, links, _ = run(spans, rels, strategy="prefer:cat")
    assert links.empty
    _, links, _ = run(spans, rels)
    assert len(links) == 1


def test_frame_level_matches_article_level():
    rows = []
    for art, shift in (("a1", 0), ("a2", 3)):
        for s in THREE_WAY:
            rows.append(
                {**s, "article_id": art, "start": s["start"] + shift, "end": s["end"] + shift}
            )
    rels = [dict(R(a, "q", "s"), article_id=art) for a in ("ann", "bob") for art in ("a1", "a2")]
    random.Random(0).shuffle(rows)
    roster = pd.DataFrame(
        [(art, a) for art in ("a1", "a2") for a in WHO], columns=["article_id", "annotator"]
    )
    gold, links, conflicts = adjudicate(
        pd.DataFrame(rows), pd.DataFrame(rels), "majority", annotators=roster
    )
    one, one_links, one_conf = run(THREE_WAY, [R(a, "q", "s") for a in ("ann", "bob")])
    a2 = gold[gold["article_id"] == "a2"]
    assert spans_of(a2) == [(lab, s + 3, e + 3) for lab, s, e in spans_of(one)]
    a1 = gold[gold["article_id"] == "a1"].reset_index(drop=True)
    pd.testing.assert_frame_equal(a1, one, check_dtype=False)
    assert len(links) == 2 * len(one_links)
    assert len(conflicts) == 2 * len(one_conf)


def test_min_votes_above_an_article_s_annotators_drops_with_a_conflict_per_group():
    # a1: ann, bob, cat all drew the speaker; a2: ann and bob drew it, ann alone a cue
    rows = [dict(S(a, "s", "SPEAKER", 0, 5), article_id="a1") for a in WHO]
    rows += [dict(S(a, "s", "SPEAKER", 0, 5), article_id="a2") for a in ("ann", "bob")]
    rows.append(dict(S("ann", "c", "CUE", 10, 14), article_id="a2"))
    roster = {"a1": WHO, "a2": ["ann", "bob"]}
    gold, _, conflicts = adjudicate(pd.DataFrame(rows), [], "majority", 3, roster)
    assert list(zip(gold["article_id"], gold["label"], gold["votes"], strict=True)) == [
        ("a1", "SPEAKER", 3)
    ]
    got = [(a, k, json.loads(d)) for a, k, d in conflicts[["article_id", "kind", "detail"]].values]
    assert [(a, k, d["label"], d["kept"]) for a, k, d in got] == [
        ("a2", "min_votes", "SPEAKER", False),  # everyone drew it: not "missing"
        ("a2", "missing", "CUE", False),
    ]
    assert all((d["min_votes"], d["annotators"]) == (3, 2) for _, _, d in got)
    with pytest.raises(AdjudicationError) as err:
        adjudicate(pd.DataFrame(rows), [], "majority", 4, roster)
    assert str(err.value) == (
        "min_votes 4 is more than the annotators of any article here (they have 2 to 3), "
        "so no span could be kept; use at most 3"
    )
    with pytest.raises(AdjudicationError, match=r"\(they have 3\)"):
        run(THREE_WAY, min_votes=4)


def test_bad_input_is_a_clear_error():
    with pytest.raises(AdjudicationError, match="unknown strategy"):
        run(THREE_WAY, strategy="vote")
    with pytest.raises(AdjudicationError, match="unknown strategy"):
        run(THREE_WAY, strategy="prefer:")
    with pytest.raises(AdjudicationError, match="min_votes"):
        run(THREE_WAY, min_votes=0)
    with pytest.raises(AdjudicationError, match="lack column"):
        run([{"annotator": "ann", "label": "QUOTE", "start": 0, "end": 3}])
    gold, links, conflicts = run([])
    assert gold.empty and links.empty and conflicts.empty


# --------------------------------------------------------------------------- corpus

TEXT = 'The mayor said: "We will win the vote tomorrow." Critics disagreed loudly.'
Q = (TEXT.index('"We'), TEXT.index('." ') + 2)  # the direct quote with its marks
SP = (TEXT.index("The mayor"), TEXT.index("The mayor") + 9)
CUE = (TEXT.index("said"), TEXT.index("said") + 4)
NOW = pd.Timestamp("2024-05-01", tz="UTC")


def _ann(aid, art, annotator, origin="human", version=1, superseded=False, project="news"):
    return dict(
        annotation_id=aid,
        project=project,
        article_id=art,
        ls_task_id=None,
        ls_annotation_id=None,
        annotator=annotator,
        origin=origin,
        created_at=NOW + pd.Timedelta(days=version),
        updated_at=NOW + pd.Timedelta(days=version),
        lead_time_s=None,
        cancelled=False,
        version=version,
        superseded=superseded,
        deleted_at=None,
        pulled_at=NOW,
    )


def _span(aid, art, sid, label, start, end, attrs=None):
    return dict(
        annotation_id=aid,
        span_id=sid,
        article_id=art,
        label=label,
        start=start,
        end=end,
        text=TEXT[start:end],
        attributes=json.dumps(attrs) if attrs else None,
        offset_repair=None,
    )


def _full(aid, art, quote_start=Q[0], qtype="direct"):
    """A complete annotation: quote, speaker, cue and both relations."""
    spans = [
        _span(aid, art, "q", "QUOTE", quote_start, Q[1], {"type": qtype}),
        _span(aid, art, "s", "SPEAKER", *SP),
        _span(aid, art, "c", "CUE", *CUE),
    ]
    rels = [
        dict(annotation_id=aid, from_span_id="q", to_span_id="s", label="said_by"),
        dict(annotation_id=aid, from_span_id="q", to_span_id="c", label="cue"),
    ]
    return spans, rels


@pytest.fixture
def corpus(tmp_path):
    return build_corpus(tmp_path / "corpus")


def build_corpus(path):
    """a1: ann, bob, cat (+ a superseded bob); a2: ann, bob; a3: ann only; a4: ann, cat."""
    c = Corpus.init(path)
    arts = pd.DataFrame(
        {
            "article_id": ["a1", "a2", "a3", "a4"],
            "title": "t",
            "text": TEXT,
            "source": "s",
            "url": None,
            "published_at": NOW,
            "language": "en",
            "origin": "test",
            "text_sha256": "x",
            "ingested_at": NOW,
        }
    )
    anns, spans, rels = [], [], []

    def add(aid, art, annotator, **kw):
        anns.append(_ann(aid, art, annotator, **kw))

    def content(aid, art, **kw):
        s, r = _full(aid, art, **kw)
        spans.extend(s)
        rels.extend(r)

    add("h1", "a1", "ann")
    content("h1", "a1")
    add("h2", "a1", "bob", version=2)
    content("h2", "a1")
    add("h2old", "a1", "bob", superseded=True)
    content("h2old", "a1", quote_start=0)
    add("h3", "a1", "cat")
    content("h3", "a1", quote_start=Q[0] + 1, qtype="indirect")
    spans.append(_span("h3", "a1", "e", "EVENT", TEXT.index("vote"), TEXT.index("vote") + 4))
    add("h4", "a2", "ann")
    content("h4", "a2")
    add("h5", "a2", "bob")
    spans.append(_span("h5", "a2", "s", "SPEAKER", *SP))
    add("h6", "a3", "ann")
    content("h6", "a3")
    add("h7", "a4", "ann")
    content("h7", "a4")
    add("h8", "a4", "cat")
    content("h8", "a4", qtype="indirect")
    with c.writer() as w:
        w.append("articles", arts)
        w.append("annotations", pd.DataFrame(anns))
        w.append("spans", pd.DataFrame(spans))
        w.append("relations", pd.DataFrame(rels))
    return c


def _gold_rows(c, annotator):
    ann = c.read("annotations")
    return ann[ann["annotator"] == annotator]


def test_run_adjudication_writes_gold_rows(corpus):
    summary = run_adjudication(corpus, "majority")
    assert summary["articles"] == 3 and summary["skipped_single_annotator"] == 1
    gold = _gold_rows(corpus, "gold:majority")
    assert sorted(gold["annotation_id"]) == [
        "gold-majority-a1",
        "gold-majority-a2",
        "gold-majority-a4",
    ]
    assert set(gold["origin"]) == {"gold"} and set(gold["version"]) == {1}
    assert gold["project"].isna().all()
    spans = corpus.read("spans")
    g1 = spans[spans["annotation_id"] == "gold-majority-a1"].sort_values("start")
    # superseded bob version ignored: ann + bob agree on the quote, cat's lone event dropped
    assert list(zip(g1["label"], g1["start"], g1["end"], strict=True)) == [
        ("SPEAKER", *SP),
        ("CUE", *CUE),
        ("QUOTE", *Q),
    ]
    assert all(t == TEXT[s:e] for t, s, e in zip(g1["text"], g1["start"], g1["end"], strict=True))
    assert json.loads(g1[g1["label"] == "QUOTE"]["attributes"].item()) == {"type": "direct"}
    rels = corpus.read("relations")
    assert len(rels[rels["annotation_id"] == "gold-majority-a1"]) == 2
    # a2: bob drew only the speaker -> with two annotators the quote and cue do not survive
    g2 = spans[spans["annotation_id"] == "gold-majority-a2"]
    assert g2["label"].tolist() == ["SPEAKER"]
    assert rels[rels["annotation_id"] == "gold-majority-a2"].empty
    conflicts = corpus.read("conflicts")
    assert set(conflicts.columns) >= {
        "article_id",
        "project",
        "strategy",
        "group_id",
        "kind",
        "detail",
    }
    assert set(conflicts["strategy"]) == {"majority"}
    assert summary["conflicts"] == len(conflicts)
    assert summary["conflicts_by_kind"] == conflicts["kind"].value_counts().to_dict()
    a4 = conflicts[conflicts["article_id"] == "a4"]
    assert a4["kind"].tolist() == ["tie"]  # direct vs indirect with two annotators
    assert summary["spans_kept"] == len(spans[spans["annotation_id"].str.startswith("gold-")])


def test_rerun_replaces_and_leaves_human_work_alone(corpus):
    human_before = corpus.read("annotations")
    spans_before = corpus.read("spans")
    run_adjudication(corpus, "majority")
    run_adjudication(corpus, "union", project="news")
    first = corpus.read("spans")
    summary = run_adjudication(corpus, "majority")
    assert summary["replaced"] == 3
    ann = corpus.read("annotations")
    assert ann["annotation_id"].is_unique
    assert len(_gold_rows(corpus, "gold:majority")) == 3
    union = _gold_rows(corpus, "gold:union")
    assert sorted(union["annotation_id"]) == [
        "gold-union-news-a1",
        "gold-union-news-a2",
        "gold-union-news-a4",
    ]
    key = ["annotation_id", "span_id"]
    pd.testing.assert_frame_equal(
        corpus.read("spans").sort_values(key).reset_index(drop=True),
        first.sort_values(key).reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(
        ann[~ann["origin"].eq("gold")].reset_index(drop=True), human_before
    )
    spans = corpus.read("spans")
    human_spans = spans[~spans["annotation_id"].str.startswith("gold-")].reset_index(drop=True)
    pd.testing.assert_frame_equal(human_spans, spans_before)
    conflicts = corpus.read("conflicts")
    assert not conflicts.duplicated().any()
    assert set(zip(conflicts["strategy"], conflicts["project"].fillna("-"), strict=True)) == {
        ("majority", "-"),
        ("union", "news"),
    }


def test_rerun_drops_gold_of_articles_no_longer_adjudicable(corpus):
    run_adjudication(corpus, "majority")
    ann = corpus.read("annotations")
    ann.loc[ann["annotation_id"] == "h5", "deleted_at"] = NOW
    with corpus.writer() as w:
        w.replace("annotations", ann)
    run_adjudication(corpus, "majority")
    assert "gold-majority-a2" not in set(corpus.read("annotations")["annotation_id"])
    assert "gold-majority-a2" not in set(corpus.read("spans")["annotation_id"])


def test_run_adjudication_checks_span_text_and_prefer_annotator(corpus):
    with pytest.raises(AnnotatorError, match="no annotator 'zed' in this corpus"):
        run_adjudication(corpus, "prefer:zed")
    run_adjudication(corpus, "prefer:cat")
    spans = corpus.read("spans")
    quote = spans[(spans["annotation_id"] == "gold-prefer:cat-a1") & (spans["label"] == "QUOTE")]
    assert quote["start"].item() == Q[0] + 1
    spans.loc[spans["annotation_id"] == "h1", "text"] = "garbage"
    with corpus.writer() as w:
        w.replace("spans", spans)
    with pytest.raises(CorpusError, match="differs from the article text"):
        run_adjudication(corpus, "majority")


def test_select_annotations_precedence(corpus):
    run_adjudication(corpus, "majority")
    review = _ann("rv1", "a1", "gold:review", origin="gold")
    with corpus.writer() as w:
        w.append("annotations", pd.DataFrame([review]))
        w.append("spans", pd.DataFrame([_span("rv1", "a1", "s", "SPEAKER", *SP)]))
        ann = corpus.read("annotations")
        w.replace("annotations", ann[ann["annotation_id"] != "gold-majority-a4"])
    sel = select_annotations(corpus)
    assert sel["article_id"].tolist() == ["a1", "a2", "a3", "a4"]
    assert sel["selection"].tolist() == ["review", "gold", "single", "computed"]
    assert sel["annotation_id"].tolist() == ["rv1", "gold-majority-a2", "h6", "gold-majority-a4"]
    assert set(TABLES["annotations"].names) <= set(sel.columns)

    spans, rels = annotation_spans(corpus, sel)
    assert list(spans.columns) == TABLES["spans"].names
    assert list(rels.columns) == TABLES["relations"].names
    assert spans[spans["annotation_id"] == "rv1"]["label"].tolist() == ["SPEAKER"]
    computed = spans[spans["annotation_id"] == "gold-majority-a4"]
    # a4: ann and cat agree on all spans; type tie (direct vs indirect) -> direct
    assert sorted(computed["label"]) == ["CUE", "QUOTE", "SPEAKER"]
    assert (
        computed["text"]
        == [TEXT[s:e] for s, e in zip(computed["start"], computed["end"], strict=True)]
    ).all()
    assert len(rels[rels["annotation_id"] == "gold-majority-a4"]) == 2
    assert "gold-majority-a4" not in set(corpus.read("annotations")["annotation_id"])  # not written
    assert set(spans["annotation_id"]) == set(sel["annotation_id"])


def test_select_annotations_without_gold_computes_majority(corpus):
    sel = select_annotations(corpus)
    assert sel["selection"].tolist() == ["computed", "computed", "single", "computed"]
    spans, _ = annotation_spans(corpus, sel)
    run_adjudication(corpus, "majority")
    stored = select_annotations(corpus)
    assert stored["selection"].tolist() == ["gold", "gold", "single", "gold"]
    stored_spans, _ = annotation_spans(corpus, stored)
    key = ["annotation_id", "span_id"]
    pd.testing.assert_frame_equal(
        spans.sort_values(key).reset_index(drop=True),
        stored_spans.sort_values(key).reset_index(drop=True),
    )


def test_select_annotations_by_strategy_and_annotator(corpus):
    run_adjudication(corpus, "union")
    sel = select_annotations(corpus, gold="union")
    assert sel["annotation_id"].tolist() == ["gold-union-a1", "gold-union-a2", "gold-union-a4"]
    sel = select_annotations(corpus, gold="intersection", project="news")
    assert sel["selection"].tolist() == ["computed"] * 3
    assert sel["annotation_id"].tolist()[0] == "gold-intersection-news-a1"
    spans, _ = annotation_spans(corpus, sel)
    assert set(spans["annotation_id"]) == set(sel["annotation_id"])
    bob = select_annotations(corpus, gold="bob")
    assert bob["annotation_id"].tolist() == ["h2", "h5"]  # latest live version only
    assert select_annotations(corpus, gold="gold:union")["article_id"].tolist() == [
        "a1",
        "a2",
        "a4",
    ]
    with pytest.raises(SpanbankError, match="no annotations by 'zed'"):
        select_annotations(corpus, gold="zed")
    # gold stored without a project serves a project's articles; other projects see nothing
    assert len(select_annotations(corpus, gold="union", project="news")) == 3
    assert select_annotations(corpus, project="other").empty


def test_select_annotations_with_columns_reads_only_what_it_needs(corpus, monkeypatch):
    """`columns` (what an export keeps) gives the same choice as the whole rows, restricted to
    them, for every kind of selection; the table is read without the columns neither the
    selection nor the caller uses (lead time, Label Studio ids and urls, result hashes)."""
    run_adjudication(corpus, "union")
    review = _ann("rv1", "a1", "gold:review", origin="gold")
    # a3 has one live annotator; each of these would make a second one if its flag went unread
    dead = [_ann(f"x{i}", "a3", "carl", version=9) for i in range(4)]
    dead[0]["superseded"] = True
    dead[1]["deleted_at"] = NOW
    dead[2]["cancelled"] = True
    dead[3]["invalid_reason"] = "task text in Label Studio differs from the article text"
    for d in dead[:3]:
        d["invalid_reason"] = None
    with corpus.writer() as w:
        w.append("annotations", pd.DataFrame([review, *dead]))
    cols = ["annotation_id", "project", "article_id", "annotator", "origin", "version"]
    asked = []
    read = corpus.read
    monkeypatch.setattr(
        corpus,
        "read",
        lambda name, columns=None, where=None: asked.append(columns) or read(name, columns, where),
    )
    for gold, project in [("auto", None), ("union", None), ("intersection", "news"), ("bob", None)]:
        whole = select_annotations(corpus, gold=gold, project=project)
        asked.clear()
        some = select_annotations(corpus, gold=gold, project=project, columns=cols)
        assert list(some.columns) == [*cols, "selection"]
        pd.testing.assert_frame_equal(some, whole[[*cols, "selection"]])
        assert {"lead_time_s", "ls_task_id", "result_sha", "ls_url"}.isdisjoint(asked[0])
    assert set(whole["selection"]) == {"annotator"}
    auto = select_annotations(corpus, columns=cols).set_index("article_id")["selection"]
    assert auto.to_dict() == {"a1": "review", "a2": "gold", "a3": "single", "a4": "gold"}


# --------------------------------------------------------------------------- CLI


def test_cli_adjudicate_prints_summary(corpus):
    runner = CliRunner()
    res = runner.invoke(cli, ["--corpus", str(corpus.path), "adjudicate", "--strategy", "majority"])
    assert res.exit_code == 0, res.output
    assert "adjudicated 3 article(s) by majority: " in res.output
    assert "conflicts: " in res.output and "skipped 1 article(s) with one annotator" in res.output
    res = runner.invoke(cli, ["--corpus", str(corpus.path), "adjudicate", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["articles"] == 3 and data["replaced"] == 3
    assert runner.invoke(cli, ["--corpus", str(corpus.path), "adjudicate", "--quiet"]).output == ""


def test_cli_adjudicate_errors_and_help(corpus, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["--corpus", str(corpus.path), "adjudicate", "--strategy", "vote"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == (
        "Error: unknown strategy 'vote'; use majority, union, intersection or prefer:ANNOTATOR"
    )
    res = runner.invoke(cli, ["--corpus", str(tmp_path / "none"), "adjudicate"])
    assert res.exit_code == 1 and "spanbank init" in res.output
    res = runner.invoke(cli, ["adjudicate", "--help"])
    assert res.exit_code == 0 and "Example:" in res.output and "--min-votes" in res.output


def test_empty_corpus(tmp_path):
    c = Corpus.init(tmp_path / "empty")
    summary = run_adjudication(c, "majority")
    assert summary["articles"] == 0 and summary["conflicts"] == 0
    assert c.read("conflicts").empty
    with pytest.raises(AnnotatorError, match="no annotator 'ann' in this corpus"):
        run_adjudication(c, "prefer:ann")
    sel = select_annotations(c)
    assert sel.empty and "selection" in sel.columns
    spans, rels = annotation_spans(c, sel)
    assert spans.empty and list(spans.columns) == TABLES["spans"].names


def test_prefer_an_e_mail_is_its_pseudonym_everywhere(corpus, tmp_path):
    """Hunt L, 6: `export --gold prefer:<e-mail>` wrote the e-mail into the manifest, the card
    and every row's annotation id (and an unknown `prefer:` name exported all the same)."""
    from spanbank.export import export_dataset

    users = pd.DataFrame(
        {"annotator": ["cat"], "ls_user_id": [9], "email": ["cat.smith@corp.example"]}
    )
    with corpus.writer() as w:
        w.append("annotators", users.reindex(columns=TABLES["annotators"].names))
    out = tmp_path / "ex"
    export_dataset(corpus, ["jsonl"], out, gold="prefer:cat.smith@corp.example", split="train=1")
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and not any(b"corp.example" in p.read_bytes() for p in files)
    assert json.loads((out / "manifest.json").read_text())["gold"] == "prefer:cat"
    run_adjudication(corpus, "prefer:CAT.Smith@corp.example")  # e-mails match case-blind
    assert "gold:prefer:cat" in set(corpus.read("annotations")["annotator"])
    with pytest.raises(AnnotatorError, match="no annotator 'nobody' in this corpus"):
        export_dataset(corpus, ["jsonl"], tmp_path / "no", gold="prefer:nobody", split="train=1")
    assert not (tmp_path / "no").exists()


def test_prefer_on_the_fly_for_articles_the_annotator_skipped(corpus):
    sel = select_annotations(corpus, gold="prefer:cat")
    assert sel["article_id"].tolist() == ["a1", "a2", "a4"]
    spans, _ = annotation_spans(corpus, sel[sel["article_id"] == "a2"])  # cat did not annotate a2
    assert spans["label"].tolist() == ["SPEAKER"]  # plain majority there


def test_cli_min_votes_only_with_majority_or_prefer(corpus):
    res = CliRunner().invoke(
        cli, ["--corpus", str(corpus.path), "adjudicate", "--strategy", "union", "--min-votes", "2"]
    )
    assert res.exit_code == 2
    assert "Error: --min-votes only applies to majority and prefer:ANNOTATOR" in res.output
    res = CliRunner().invoke(cli, ["--corpus", str(corpus.path), "adjudicate", "--min-votes", "3"])
    assert res.exit_code == 0 and "adjudicated 3 article(s)" in res.output
    gold = corpus.read("spans")
    per_article = gold[gold["annotation_id"].str.startswith("gold-")].groupby("article_id").size()
    assert per_article.to_dict() == {"a1": 3}  # a2 and a4 have only two annotators
    conflicts = corpus.read("conflicts")
    short = conflicts[conflicts["detail"].str.contains('"min_votes": 3')]
    # a2: bob's speaker (both drew it) and ann's lone quote and cue; a4: all three spans
    assert sorted(zip(short["article_id"], short["kind"], strict=True)) == [
        ("a2", "min_votes"),
        ("a2", "missing"),
        ("a2", "missing"),
        ("a4", "min_votes"),
        ("a4", "min_votes"),
        ("a4", "min_votes"),
    ]
    res = CliRunner().invoke(cli, ["--corpus", str(corpus.path), "adjudicate", "--min-votes", "4"])
    assert res.exit_code == 1
    assert res.output == (
        "Error: min_votes 4 is more than the annotators of any article here (they have 2 to 3), "
        "so no span could be kept; use at most 3\n"
    )
    assert corpus.read("spans").equals(gold)  # the stored gold stays


# --------------------------------------------------------------------------- discontinuous spans
def F(annotator, span_id, parts, label="QUOTE", attributes=None):
    """A discontinuous span: outer bounds plus its fragments."""
    frags = [{"start": s, "end": e} for s, e in parts]
    return {
        **S(annotator, span_id, label, parts[0][0], parts[-1][1], attributes),
        "fragments": frags,
    }


def test_identical_fragment_sets_agree_without_conflicts():
    """Annotators who drew the same two-fragment quote and linked it agree exactly, even when
    their spans carry the old per-annotator `_fragment_of` bookkeeping key."""
    parts = [(10, 20), (30, 40)]
    spans, rels = [], []
    for who in WHO:
        spans += [
            F(who, f"{who}-q", parts, attributes={"_fragment_of": f"{who}-T9", "type": "direct"}),
            S(who, f"{who}-s", "SPEAKER", 21, 25),
        ]
        rels.append(R(who, f"{who}-q", f"{who}-s"))
    gold, links, conflicts = run(spans, rels)
    assert conflicts.empty
    q = gold[gold["label"] == "QUOTE"].iloc[0]
    assert q["fragments"] == [{"start": 10, "end": 20}, {"start": 30, "end": 40}]
    assert q["attributes"] == {"type": "direct"} and q["votes"] == 3
    assert gold[gold["label"] == "SPEAKER"]["fragments"].isna().all()
    assert links["votes"].tolist() == [3]


def test_fragment_set_is_one_boundary_vote():
    parts = [(10, 20), (30, 40)]
    spans = [F("ann", "q", parts), F("bob", "q", parts), S("cat", "q", "QUOTE", 10, 40)]
    gold, _, conflicts = run(spans)
    (q,) = gold.itertuples()
    assert (q.start, q.end, q.fragments) == (
        10,
        40,
        [{"start": 10, "end": 20}, {"start": 30, "end": 40}],
    )
    ((_, detail),) = conflicts_of(conflicts, "boundary")
    assert detail["votes"] == {
        "ann": [[10, 20], [30, 40]],
        "bob": [[10, 20], [30, 40]],
        "cat": [10, 40],
    }
    assert detail["chosen"] == [[10, 20], [30, 40]]
    # two contiguous votes beat one discontinuous: the gold span is contiguous
    spans = [F("ann", "q", parts), S("bob", "q", "QUOTE", 10, 40), S("cat", "q", "QUOTE", 10, 40)]
    gold, _, _ = run(spans)
    assert gold["fragments"].isna().all() and spans_of(gold) == [("QUOTE", 10, 40)]


def test_stored_gold_carries_fragments_and_joined_text(tmp_path):
    c = build_corpus(tmp_path / "corpus")
    a, b = Q[0], Q[0] + 4  # '"We ' ... the rest of the quote
    parts = [(a, b), (b + 5, Q[1])]
    frags = [{"start": s, "end": e} for s, e in parts]
    text = " … ".join(TEXT[s:e] for s, e in parts)
    spans = c.read("spans")
    quote = (spans["article_id"] == "a4") & (spans["label"] == "QUOTE")
    assert quote.sum() == 2
    spans["fragments"] = None
    for k in spans.index[quote]:
        spans.at[k, "fragments"] = frags
        spans.loc[k, ["start", "end", "text"]] = Q[0], Q[1], text
    with c.writer() as w:
        w.replace("spans", spans)
    run_adjudication(c, "majority")
    gold = c.read("spans")
    q = gold[(gold["annotation_id"] == "gold-majority-a4") & (gold["label"] == "QUOTE")].iloc[0]
    assert [dict(f) for f in q["fragments"]] == frags and q["text"] == text
    conflicts = c.read("conflicts")
    a4 = conflicts[conflicts["article_id"] == "a4"]
    assert set(a4["kind"]) == {"tie"}  # only the quote type (direct vs indirect), no boundary


# --------------------------------------------------------------------------- latest per annotator


ANNOTATION_KEYS = ["annotation_id", "project", "article_id", "annotator", "origin", "created_at"]
ANNOTATION_KEYS += [
    "updated_at",
    "version",
    "cancelled",
    "superseded",
    "deleted_at",
    "invalid_reason",
]


def _random_annotations(rng: random.Random, n: int) -> pd.DataFrame:
    """Annotation rows with ties, missing times, dead versions and a shuffled index."""
    stamps = [pd.NaT, *pd.date_range("2025-01-01", periods=4, freq="h", tz="UTC")]
    rows = [
        {
            "annotation_id": f"x{i}",
            "project": rng.choice(["news", "other", None]),
            "article_id": f"a{rng.randrange(12)}",
            "annotator": rng.choice(["ann", "bob", "cat", "gold:majority"]),
            "origin": rng.choice(["human", "human", "import", "gold"]),
            "created_at": rng.choice(stamps),
            "updated_at": rng.choice(stamps),
            "version": rng.randrange(1, 4),
            "cancelled": rng.random() < 0.1,
            "superseded": rng.random() < 0.1,
            "deleted_at": rng.choice([None] * 9 + [stamps[1]]),
            "invalid_reason": None,
        }
        for i in range(n)
    ]
    df = pd.DataFrame(rows, columns=ANNOTATION_KEYS)
    df["deleted_at"] = pd.to_datetime(df["deleted_at"], utc=True)
    return df.set_axis(rng.sample(range(10 * n), n))


@pytest.mark.parametrize("seed", range(20))
def test_latest_per_annotator_is_the_last_by_time_of_each_pair(seed):
    """Against its definition written the plain way: the live rows sorted (stable, missing
    times first), the last of each (article, annotator); same rows, order and index."""
    from spanbank.corpus.annotations import HUMAN_ORIGINS, latest_per_annotator, live_mask

    rng = random.Random(seed)
    ann = _random_annotations(rng, rng.choice([0, 1, 5, 60, 200]))
    for project in (None, "news"):
        want = ann[live_mask(ann, HUMAN_ORIGINS)]
        if project:
            want = want[want["project"] == project]
        want = want.sort_values(
            ["updated_at", "created_at", "version"], kind="stable", na_position="first"
        ).drop_duplicates(["article_id", "annotator"], keep="last")
        pd.testing.assert_frame_equal(latest_per_annotator(ann, project=project), want)


def test_a_selection_over_live_rows_does_not_copy_them():
    """Most of a gold selection's memory was copies of the whole annotations table: rows all
    live, one per article and annotator, in time order come back as the same frame."""
    from spanbank.corpus.annotations import latest_per_annotator, live_annotations

    ann = _random_annotations(random.Random(1), 40).assign(
        origin="human", cancelled=False, superseded=False, deleted_at=pd.NaT, version=1
    )
    ann = ann.drop_duplicates(["article_id", "annotator"]).sort_values(
        ["updated_at", "created_at"], kind="stable", na_position="first"
    )
    assert live_annotations(ann) is ann
    assert latest_per_annotator(ann) is ann
    dead = ann.assign(cancelled=[True] + [False] * (len(ann) - 1))
    assert len(latest_per_annotator(dead)) == len(ann) - 1


# ids that sort apart in bytes and in code points alike, prefixes of each other, non-ASCII
RANGE_IDS = ["a", "a1", "a10", "a2", "A", "b", "b ", "é", "ä1", "z", "zz", "日本", "ß", "0"]


@pytest.mark.parametrize("seed", range(6))
def test_a_selection_by_ranges_of_articles_is_the_whole_selection(tmp_path, seed, monkeypatch):
    """A table bigger than SELECT_ROWS is chosen from one range of article ids at a time: the
    same rows, order, columns and dtypes as one pass over the whole table, for every kind of
    selection (gold of several kinds and projects, honeypot work, dead rows, ties), and the same
    error for an annotator with no annotations; the table is written in several files. Columns
    held as categories (the export's) give the same values back."""
    import spanbank.gold as gold_mod

    rng = random.Random(seed)
    c = Corpus.init(tmp_path / "c")
    ids = [f"{rng.choice(RANGE_IDS)}{i}" for i in range(30)] + RANGE_IDS
    with c.writer() as w:
        w.append(
            "articles",
            pd.DataFrame(
                {"article_id": ids, "title": "t", "text": TEXT, "source": "s", "url": None}
                | {"published_at": NOW, "language": "en", "origin": "test"}
                | {"text_sha256": "x", "ingested_at": NOW}
            ),
        )
    who = ["ann", "bob", "cat", "gold:majority", "gold:review", "gold:union", "gold:majority"]
    n = 0
    for _ in range(4):  # one file per append
        rows = []
        for _ in range(rng.randrange(20, 60)):
            annotator = rng.choice(who)
            row = _ann(
                f"x{n}",
                rng.choice(ids),
                annotator,
                origin="gold" if annotator.startswith("gold:") else rng.choice(["human", "import"]),
                version=rng.randrange(1, 3),
                superseded=rng.random() < 0.1,
                project=rng.choice(["news", "news", "other", None]),
            )
            row["cancelled"] = rng.random() < 0.1
            row["review_of"] = "news" if annotator == "gold:review" and rng.random() < 0.5 else None
            rows.append(row)
            n += 1
        with c.writer() as w:
            w.append("annotations", pd.DataFrame(rows))
    plans = [(p, a) for p, a in zip(["news", "other"], rng.sample(ids, 2), strict=True)]
    with c.writer() as w:
        w.append(
            "task_plans",
            pd.DataFrame(
                [
                    {"project": p, "ls_url": "u", "article_id": a, "ls_task_id": i}
                    | {"batch_id": "b", "overlap": 2, "honeypot": True, "honeypot_gold": "g"}
                    | {"planned_at": NOW}
                    for i, (p, a) in enumerate(plans)
                ]
            ),
        )

    def choose(rows, **kw):
        monkeypatch.setattr(gold_mod, "SELECT_ROWS", rows)
        try:
            return select_annotations(c, **kw)
        except SpanbankError as exc:
            return str(exc)

    asked = [
        {},
        {"project": "news"},
        {"gold": "union"},
        {"gold": "majority", "project": "other"},
        {"gold": "bob"},
        {"gold": "zed"},
        {"columns": ["annotation_id", "project", "article_id", "annotator", "origin"]},
    ]
    for rows in (1, 5, 40):
        assert len(gold_mod.article_ranges(c, "annotations", rows)) > 1
        for kw in asked:
            whole, ranged = choose(10**9, **kw), choose(rows, **kw)
            if isinstance(whole, str):
                assert ranged == whole
            else:
                assert whole["article_id"].is_monotonic_increasing
                pd.testing.assert_frame_equal(ranged, whole)
                if rows != 5:
                    continue
                # held as categories from each range on: the same values (missing as missing)
                few = [f for f in ("project", "annotator", "origin", "selection") if f in whole]
                held = choose(rows, **kw, categories=few)
                assert all(isinstance(held[f].dtype, pd.CategoricalDtype) for f in few)
                plain = held.astype({f: held[f].cat.categories.dtype for f in few})
                pd.testing.assert_frame_equal(plain, whole.astype(dict(plain.dtypes[few])))


def test_split_stored_looks_each_given_annotation_up_in_the_table(corpus):
    """Stored annotations (one given twice) are read from the store; gold the corpus lacks, and
    gold marked computed even under a stored id, are adjudicated again; a human annotation the
    corpus lacks is refused."""
    from spanbank.gold import split_stored

    given = pd.DataFrame(
        {
            "annotation_id": ["h1", "gold-majority-a2", "h4", "h1", "h6"],
            "annotator": ["ann", "gold:majority", "gold:union", "ann", "ann"],
            "selection": ["single", "computed", "computed", "single", None],
        }
    )
    in_store, todo = split_stored(corpus, given)
    assert given["annotation_id"][in_store].tolist() == ["h1", "h1", "h6"]
    assert todo["annotation_id"].tolist() == ["gold-majority-a2", "h4"]
    # a nullable string column (its comparisons give <NA> for a missing value) chooses alike
    in_store, todo = split_stored(corpus, given.astype({"selection": "string"}))
    assert given["annotation_id"][in_store].tolist() == ["h1", "h1", "h6"]
    assert todo["annotation_id"].tolist() == ["gold-majority-a2", "h4"]
    # the export holds its few-valued columns as categories (a missing annotator: no fillna)
    few = given.astype({"selection": "category", "annotator": "category"})
    in_store, todo = split_stored(corpus, few)
    assert given["annotation_id"][in_store].tolist() == ["h1", "h1", "h6"]
    assert todo["annotation_id"].tolist() == ["gold-majority-a2", "h4"]
    with pytest.raises(CorpusError, match="annotation 'nope' is not in the corpus"):
        split_stored(corpus, given.assign(annotation_id=["h1", "g", "h4", "h1", "nope"]))
    with pytest.raises(CorpusError, match="annotation 'nope' is not in the corpus"):
        split_stored(
            corpus,
            few.assign(
                annotation_id=["h1", "g", "h4", "h1", "nope"],
                annotator=["ann", "gold:majority", "gold:union", "ann", None],
            ).astype({"annotator": "category"}),
        )
