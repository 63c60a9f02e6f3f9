"""brat standoff import: parsing `.ann` files and ingesting `X.txt` + `X[_annotator].ann` folders."""

import json
from pathlib import Path

import pandas as pd
import pytest

from spanbank.corpus.brat import parse_ann
from spanbank.corpus.ingest import ingest_paths
from spanbank.corpus.store import Corpus
from spanbank.errors import ExportError, IngestError
from spanbank.schema import load_schema, parse_attributes

TEXT = (
    "Storm hits coast\n"
    "The mayor said on Monday that \u201cwe will rebuild \U0001f3d7 everything\u201d, "
    "and the governor added it would take years.\n"
)
SCHEMA = load_schema()


def _at(s: str, nth: int = 0) -> tuple[int, int]:
    i = -1
    for _ in range(nth + 1):
        i = TEXT.index(s, i + 1)
    return i, i + len(s)


def _t(tid: str, label: str, s: str, nth: int = 0) -> str:
    a, b = _at(s, nth)
    return f"{tid}\t{label} {a} {b}\t{s}"


QUOTE = "\u201cwe will rebuild \U0001f3d7 everything\u201d"
ANN = (
    "\n".join(
        [
            _t("T1", "Source", "The mayor"),
            _t("T2", "Cue", "said"),
            _t("T3", "Content", QUOTE),
            _t("T4", "Attribution", "said"),
            "E1\tAttribution:T4 Content:T3 Cue:T2 Source:T1",
            "A1\tType T3 direct",
            "#1\tAnnotatorNotes T3\tnice one",
        ]
    )
    + "\n"
)


def _spans(result):
    return {s["span_id"]: s for s in result.spans}


# -- parse_ann ------------------------------------------------------------------------------


def test_t_lines_events_and_attributes():
    r = parse_ann(ANN, TEXT, SCHEMA)
    spans = _spans(r)
    assert set(spans) == {"T1", "T2", "T3"}  # T4 (Attribution) only holds the event together
    assert r.ignored == 1 and r.rejects == []
    assert spans["T1"]["label"] == "SPEAKER" and spans["T2"]["label"] == "CUE"
    q = spans["T3"]
    assert (q["label"], q["start"], q["end"]) == ("QUOTE", *_at(QUOTE))
    assert TEXT[q["start"] : q["end"]] == q["text"] == QUOTE
    assert q["attributes"] == {"type": "direct"}
    assert sorted((x["from_span_id"], x["to_span_id"], x["label"]) for x in r.relations) == [
        ("T3", "T1", "said_by"),
        ("T3", "T2", "cue"),
    ]


def test_discontinuous_span_is_one_span_with_fragments():
    (a1, b1), (a2, b2) = _at("The mayor"), _at("everything")
    ann = "\n".join(
        [
            f"T1\tContent {a1} {b1};{a2} {b2}\tThe mayor everything",
            _t("T2", "Source", "the governor"),
            "A1\tType T1 mixed",
            "E1\tContent:T1 Source:T2",
        ]
    )
    r = parse_ann(ann, TEXT, SCHEMA)
    assert r.rejects == []
    q = _spans(r)["T1"]
    assert len(r.spans) == 2
    assert (q["start"], q["end"]) == (a1, b2)
    assert q["fragments"] == [{"start": a1, "end": b1}, {"start": a2, "end": b2}]
    assert q["text"] == "The mayor … everything"
    assert q["attributes"] == {"type": "mixed"}
    assert r.relations == [{"from_span_id": "T1", "to_span_id": "T2", "label": "said_by"}]
    assert _spans(r)["T2"]["fragments"] is None


def test_each_fragment_is_checked_against_the_text():
    (a1, b1), (a2, b2) = _at("The mayor"), _at("everything")
    ann = f"T1\tContent {a1} {b1};{a2 + 1} {b2 + 1}\tThe mayor everything\n"
    r = parse_ann(ann, TEXT, SCHEMA)
    assert r.spans == []
    assert r.rejects[0]["reason"].startswith(
        f"line 1: fragment 2 ({a2 + 1} {b2 + 1}) cover 'verything\u201d', not the span text 'everything'"
    )


def test_swapped_event_roles_are_rejected_not_flipped():
    ann = "\n".join(
        [
            _t("T1", "Source", "The mayor"),
            _t("T2", "Content", QUOTE),
            _t("T3", "Cue", "said"),
            _t("T4", "Attribution", "said"),
            "E1\tAttribution:T4 Content:T1 Cue:T3 Source:T2",
        ]
    )
    r = parse_ann(ann, TEXT, SCHEMA)
    assert r.relations == []
    assert [x["reason"] for x in r.rejects] == [
        "E1: role Content points at T1, a SPEAKER span, not a QUOTE: roles swapped"
    ]


def test_span_text_cut_by_a_raw_newline_is_recovered():
    text = "He said: first line\n\nsecond line, and more."
    a, b = 9, text.index(",")
    ann = f"T1\tContent {a} {b}\tfirst line\n\nsecond line\nT2\tSource 0 2\tHe\n"
    r = parse_ann(ann, text, SCHEMA)
    assert r.rejects == [] and r.recovered == 1
    assert [(s["span_id"], s["text"]) for s in r.spans] == [
        ("T1", "first line\n\nsecond line"),
        ("T2", "He"),
    ]
    bad = ann.replace("second line", "other words")
    r = parse_ann(bad, text, SCHEMA)
    assert r.recovered == 0 and {x["span_id"] for x in r.rejects} >= {"T1"}


def test_marker_labels_of_real_corpora_are_ignored_and_counted():
    ann = "\n".join(
        [
            _t("T1", "Discuss", "The mayor said"),
            _t("T2", "Discard", "Storm hits coast"),
            _t("T3", "Attribution-no-source", "said"),
            _t("T4", "Content", QUOTE),
            _t("T5", "Cue", "said"),
            "E1\tAttribution-no-source:T3 Content:T4 Cue:T5",
        ]
    )
    r = parse_ann(ann, TEXT, SCHEMA)
    assert r.rejects == []
    assert dict(r.ignored_labels) == {"Discuss": 1, "Discard": 1, "Attribution-no-source": 1}
    assert r.relations == [{"from_span_id": "T4", "to_span_id": "T5", "label": "cue"}]


def test_relations_in_either_argument_order():
    ann = "\n".join(
        [
            _t("T1", "Source", "The mayor"),
            _t("T2", "Content", QUOTE),
            _t("T3", "Cue", "said"),
            _t("T4", "Source", "the governor"),
            _t("T5", "Content", "it would take years"),
            "R1\tSource Arg1:T1 Arg2:T2",  # reversed: ours goes QUOTE -> SPEAKER
            "R2\tcue Arg1:T2 Arg2:T3",
            "R3\tsaid_by Arg1:T5 Arg2:T4",
            "R4\tKnows Arg1:T1 Arg2:T4",
            "R5\tSource Arg1:T1 Arg2:T3",
            "R6\tSource Arg1:T9 Arg2:T2",
        ]
    )
    r = parse_ann(ann, TEXT, SCHEMA)
    assert sorted((x["from_span_id"], x["to_span_id"], x["label"]) for x in r.relations) == [
        ("T2", "T1", "said_by"),
        ("T2", "T3", "cue"),
        ("T5", "T4", "said_by"),
    ]
    reasons = sorted(x["reason"] for x in r.rejects)
    assert len(reasons) == 3
    assert "R4: relation 'Knows' is not in schema news-v1" in reasons
    assert any(x.startswith("R5: relation said_by goes QUOTE -> SPEAKER") for x in reasons)
    assert "R6: relation said_by points to T9, which was not stored" in reasons


def test_event_with_numbered_roles_and_several_sources():
    ann = "\n".join(
        [
            _t("T1", "Source", "The mayor"),
            _t("T2", "Source", "the governor"),
            _t("T3", "Content", "it would take years"),
            _t("T4", "Attribution", "added"),
            "E1\tAttribution:T4 Content:T3 Source:T1 Source2:T2",
        ]
    )
    r = parse_ann(ann, TEXT, SCHEMA)
    assert sorted((x["from_span_id"], x["to_span_id"]) for x in r.relations) == [
        ("T3", "T1"),
        ("T3", "T2"),
    ]


def test_event_whose_trigger_is_the_quote():
    ann = "\n".join(
        [
            _t("T1", "Source", "The mayor"),
            _t("T2", "Content", QUOTE),
            _t("T3", "Cue", "said"),
            "E1\tContent:T2 Source:T1 Cue:T3",
            "E2\tContent Source:T1",
        ]
    )
    r = parse_ann(ann, TEXT, SCHEMA)
    assert sorted((x["from_span_id"], x["to_span_id"], x["label"]) for x in r.relations) == [
        ("T2", "T1", "said_by"),
        ("T2", "T3", "cue"),
    ]
    assert [x["reason"] for x in r.rejects] == ["line 5: bad event arguments 'Content Source:T1'"]


def test_span_not_matching_text_is_rejected():
    a, b = _at("The mayor")
    ann = "\n".join(
        [
            f"T1\tSource {a + 1} {b + 1}\tThe mayor",  # shifted by one
            f"T2\tSource {a} 99999\tThe mayor",  # beyond the text
            f"T3\tSource {a} {b}\tThe mayor",
            f"T4\tSource {b} {a}\tThe mayor",  # reversed
            "T5\tSource x y\tThe mayor",  # not numbers
        ]
    )
    r = parse_ann(ann, TEXT, SCHEMA)
    assert list(_spans(r)) == ["T3"]
    rej = {x["span_id"]: x["reason"] for x in r.rejects}
    assert set(rej) == {"T1", "T2", "T4", "T5"}
    assert rej["T1"].startswith("line 1: offsets cover 'he mayor ', not the span text 'The mayor'")
    assert "outside the text" in rej["T2"] and "outside the text" in rej["T4"]
    assert rej["T5"].startswith("line 5:")
    assert json.loads(r.rejects[0]["raw"]) == {"line": ann.splitlines()[0]}


def test_whitespace_in_span_text_is_tolerated():
    # brat writes a span's newlines as spaces in the .ann file
    a = TEXT.index("coast")
    b = TEXT.index("mayor") + 5
    r = parse_ann(f"T1\tSource {a} {b}\tcoast The mayor\n", TEXT, SCHEMA)
    assert r.rejects == [] and r.spans[0]["text"] == "coast\nThe mayor"


def test_unknown_label_and_bad_attribute_rejected():
    ann = "\n".join(
        [
            _t("T1", "Location", "coast"),
            _t("T2", "Content", QUOTE),
            "A1\tType T2 sarcastic",
            "A2\tType T1 direct",
            "A3\tNegated T2",
            "X1\tsomething odd",
        ]
    )
    r = parse_ann(ann, TEXT, SCHEMA)
    assert list(_spans(r)) == ["T2"] and _spans(r)["T2"]["attributes"] == {}
    reasons = [x["reason"] for x in r.rejects]
    assert (
        reasons[0] == "line 1: label 'Location' is not in schema news-v1 and has no import mapping"
    )
    assert "line 6: unknown annotation kind 'X'" in reasons
    assert (
        "attribute Type: value 'sarcastic' of QUOTE.type is not one of direct, indirect, mixed"
        in reasons
    )
    assert "attribute Type on T1, which was not stored" in reasons
    assert "attribute Negated: attribute 'negated' is not defined for label QUOTE" in reasons


def test_malformed_lines_are_rejected_not_raised():
    ann = "\n".join(
        [
            "R1 Source Arg1:T1 Arg2:T2",  # spaces instead of a tab
            "E1 Attribution:T4",
            "A1",
            "R2\tSource T1 T2",
            "T1\tSource 0 5",
            _t("T2", "Source", "The mayor"),
        ]
    )
    r = parse_ann(ann, TEXT, SCHEMA)
    assert list(_spans(r)) == ["T2"]
    reasons = [x["reason"] for x in r.rejects]
    assert reasons == [
        "line 1: expected a tab between the id and the annotation",
        "line 2: expected a tab between the id and the annotation",
        "line 3: expected a tab between the id and the annotation",
        "line 4: an R line needs Arg1 and Arg2",
        "line 5: a T line needs id, type and offsets, and text",
    ]


def test_a_second_span_under_a_taken_id_is_rejected():
    """`T1` twice was stored as two spans sharing span_id T1: relations naming T1 were
    ambiguous and the evaluation counted one of them (hunt G, finding 14)."""
    first, second = _t("T1", "Source", "The mayor"), _t("T1", "Source", "the governor")
    r = parse_ann(f"{first}\n{second}\nR1\tSource Arg1:T1 Arg2:T1", TEXT, SCHEMA)
    assert [(s["span_id"], s["text"]) for s in r.spans] == [("T1", "The mayor")]
    assert r.rejects[0]["reason"] == "line 2: id T1 is taken by an earlier span"


def test_line_separators_inside_span_text():
    # U+2028 and NEL are characters of a span, not line ends of the .ann file
    text = "He said \u2028 yes\x85 no, she said."
    a, b = 3, text.index("no") + 2
    c = text.index("she")
    ann = f"T1\tContent {a} {b}\t{text[a:b]}\r\nT2\tSource {c} {c + 3}\tshe\r\n"
    r = parse_ann(ann, text, SCHEMA)
    assert r.rejects == []
    assert [(s["span_id"], s["text"]) for s in r.spans] == [("T1", text[a:b]), ("T2", "she")]


# -- ingest --format brat -------------------------------------------------------------------


@pytest.fixture
def corpus(tmp_path):
    return Corpus.init(tmp_path / "corpus")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def _stored(corpus):
    return {
        name: corpus.read(name)
        for name in ("articles", "annotations", "spans", "relations", "rejects")
    }


def test_ingest_pair(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(d / "storm.ann", ANN)
    summary = ingest_paths(corpus, [d], fmt="brat")
    assert (summary.added, summary.annotations, summary.spans, summary.relations) == (1, 1, 3, 2)
    assert summary.ignored == 1 and summary.rejected == []
    t = _stored(corpus)
    art = t["articles"].iloc[0]
    assert (art["article_id"], art["text"], art["title"]) == ("storm", TEXT, "Storm hits coast")
    ann = t["annotations"].iloc[0]
    assert (ann["article_id"], ann["origin"], ann["version"], bool(ann["superseded"])) == (
        "storm",
        "import",
        1,
        False,
    )
    spans = t["spans"]
    assert set(spans["annotation_id"]) == {ann["annotation_id"]}
    for s in spans.to_dict("records"):
        assert TEXT[s["start"] : s["end"]] == s["text"]
    q = spans[spans["label"] == "QUOTE"].iloc[0]
    assert parse_attributes(q["attributes"]) == {"type": "direct"}
    assert len(t["relations"]) == 2 and set(t["relations"]["annotation_id"]) == {
        ann["annotation_id"]
    }


def test_several_annotators_in_sibling_folders(corpus, tmp_path):
    _write(tmp_path / "texts" / "storm.txt", TEXT)
    _write(tmp_path / "anns" / "storm_alice.ann", ANN)
    _write(tmp_path / "anns" / "storm_bob.ann", _t("T1", "Source", "the governor") + "\n")
    summary = ingest_paths(corpus, [tmp_path / "texts", tmp_path / "anns"], fmt="brat")
    assert (summary.added, summary.annotations, summary.spans) == (1, 2, 4)
    t = _stored(corpus)
    ann = t["annotations"]
    assert sorted(ann["annotator"]) == ["alice", "bob"]
    assert set(ann["origin"]) == {"import"} and set(ann["article_id"]) == {"storm"}
    by_who = dict(zip(ann["annotator"], ann["annotation_id"], strict=True))
    spans = t["spans"]
    assert sorted(spans.loc[spans["annotation_id"] == by_who["bob"], "text"]) == ["the governor"]
    assert len(spans[spans["annotation_id"] == by_who["alice"]]) == 3
    # the parent folder holding both works the same
    corpus2 = Corpus.init(tmp_path / "c2")
    assert ingest_paths(corpus2, [tmp_path], fmt="brat").annotations == 2


def test_annotator_for_a_whole_folder(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(d / "storm.ann", ANN)
    _write(d / "calm.txt", "Nothing happened.\n")
    _write(d / "calm.ann", "")
    summary = ingest_paths(corpus, [d], fmt="brat", annotator="carol")
    assert (summary.added, summary.annotations) == (2, 2)
    assert set(corpus.read("annotations")["annotator"]) == {"carol"}


def test_text_without_annotation_file_is_just_an_article(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    summary = ingest_paths(corpus, [d], fmt="brat")
    assert (summary.added, summary.annotations) == (1, 0)
    assert corpus.read("annotations").empty


def test_ann_without_text_is_an_error(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(d / "other_alice.ann", ANN)
    with pytest.raises(IngestError, match="other_alice.ann: no text file"):
        ingest_paths(corpus, [d], fmt="brat")
    assert corpus.read_arrow("articles").num_rows == 0
    with pytest.raises(IngestError, match="no brat .txt files"):
        ingest_paths(corpus, [d / "other_alice.ann"], fmt="brat")


def test_misaligned_span_and_unknown_label_go_to_rejects(corpus, tmp_path):
    a, b = _at("The mayor")
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(
        d / "storm.ann",
        f"T1\tSource {a + 2} {b + 2}\tThe mayor\n"
        + _t("T2", "Place", "coast")
        + "\n"
        + _t("T3", "Cue", "said")
        + "\n",
    )
    summary = ingest_paths(corpus, [d], fmt="brat")
    assert (summary.annotations, summary.spans) == (1, 1)
    assert len(summary.rejected) == 2
    assert all(r.startswith(str(d / "storm.ann")) for r in summary.rejected)
    t = _stored(corpus)
    assert list(t["spans"]["span_id"]) == ["T3"]
    rej = t["rejects"].set_index("span_id")
    assert "offsets cover" in rej.loc["T1", "reason"]
    assert "label 'Place' is not in schema" in rej.loc["T2", "reason"]
    assert set(rej["annotation_id"]) == set(t["annotations"]["annotation_id"])


def test_reimport_is_a_noop(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(d / "storm_alice.ann", ANN)
    ingest_paths(corpus, [d], fmt="brat")
    files = {n: _table_files(corpus, n) for n in ("articles", "annotations", "spans", "relations")}
    summary = ingest_paths(corpus, [d], fmt="brat")
    assert (summary.added, summary.unchanged, summary.annotations, summary.spans) == (0, 1, 0, 0)
    assert {n: _table_files(corpus, n) for n in files} == files


def test_changed_ann_makes_a_new_version(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(d / "storm_alice.ann", ANN)
    _write(d / "storm_bob.ann", _t("T1", "Source", "the governor") + "\n")
    ingest_paths(corpus, [d], fmt="brat")
    _write(d / "storm_alice.ann", ANN + _t("T5", "Source", "the governor") + "\n")
    summary = ingest_paths(corpus, [d], fmt="brat")
    assert (summary.annotations, summary.spans) == (1, 4)
    ann = corpus.read("annotations").sort_values(["annotator", "version"])
    alice = ann[ann["annotator"] == "alice"]
    assert list(alice["version"]) == [1, 2]
    assert list(alice["superseded"]) == [True, False]
    assert alice["annotation_id"].nunique() == 2
    bob = ann[ann["annotator"] == "bob"]
    assert list(bob["superseded"]) == [False]  # another annotator's file is not touched
    spans = corpus.read("spans")
    new_id = alice.iloc[1]["annotation_id"]
    assert len(spans[spans["annotation_id"] == new_id]) == 4
    assert (
        len(spans[spans["annotation_id"] == alice.iloc[0]["annotation_id"]]) == 3
    )  # old version kept
    live = corpus.latest_annotations()
    assert sorted(live["annotator"]) == ["alice", "bob"] and new_id in set(live["annotation_id"])
    # a third version, and back to the first text: each is a new version
    _write(d / "storm_alice.ann", ANN)
    ingest_paths(corpus, [d], fmt="brat")
    alice = corpus.read("annotations").query("annotator == 'alice'").sort_values("version")
    assert list(alice["version"]) == [1, 2, 3] and list(alice["superseded"]) == [True, True, False]


def test_changed_text_is_refused_and_its_annotations_not_stored(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(d / "storm.ann", ANN)
    ingest_paths(corpus, [d], fmt="brat")
    before = {n: _table_files(corpus, n) for n in ("articles", "annotations", "spans")}
    _write(d / "storm.txt", TEXT.replace("mayor", "Mayor"))
    _write(d / "storm.ann", ANN.replace("mayor", "Mayor") + _t("T9", "Cue", "added") + "\n")
    summary = ingest_paths(corpus, [d], fmt="brat")
    assert summary.annotations == 0 and len(summary.refused) == 1
    assert "stored with another text" in summary.refused[0]
    # the message shows where the texts differ, not a common beginning cut short
    assert "'…Monday that " not in summary.refused[0]
    assert "mayor said" in summary.refused[0] and "Mayor said" in summary.refused[0]
    assert "differ at character 21" in summary.refused[0]
    assert {n: _table_files(corpus, n) for n in before} == before


def test_non_utf8_brat_text(corpus, tmp_path):
    d = tmp_path / "brat"
    (d).mkdir()
    (d / "x.txt").write_bytes("Caf\xe9 said hi".encode("latin-1"))
    _write(d / "x.ann", "T1\tCue 5 9\tsaid\n")
    with pytest.raises(IngestError, match="x.txt: not valid utf-8.*--encoding"):
        ingest_paths(corpus, [d], fmt="brat")
    summary = ingest_paths(corpus, [d], fmt="brat", encoding="latin-1")
    assert (summary.added, summary.spans) == (1, 1)


def test_underscored_ids_and_conflicting_files(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "news_01.txt", TEXT)
    _write(d / "news_01_alice.ann", ANN)
    _write(d / "news_01.ann", ANN)
    summary = ingest_paths(corpus, [d], fmt="brat")
    assert summary.annotations == 2
    ann = corpus.read("annotations")
    assert set(ann["article_id"]) == {"news_01"} and sorted(ann["annotator"]) == ["alice", "import"]
    # news_01.ann given to alice as well: two files for one annotator
    corpus2 = Corpus.init(tmp_path / "c2")
    with pytest.raises(IngestError, match="two annotation files for news_01 by alice"):
        ingest_paths(corpus2, [d], fmt="brat", annotator="alice")
    assert corpus2.read_arrow("articles").num_rows == 0


def test_empty_brat_text_is_refused(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "blank.txt", "  \n")
    _write(d / "blank.ann", "")
    _write(d / "storm.txt", TEXT)
    summary = ingest_paths(corpus, [d], fmt="brat")
    assert summary.added == 1 and summary.annotations == 0
    assert summary.refused == [f"{d / 'blank.txt'}: text is empty or whitespace only"]


def test_discontinuous_span_is_stored_as_one_row(corpus, tmp_path):
    (a1, b1), (a2, b2) = _at("The mayor"), _at("everything")
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(d / "storm.ann", f"T1\tContent {a1} {b1};{a2} {b2}\tThe mayor everything\n")
    ingest_paths(corpus, [d], fmt="brat")
    spans = corpus.read_arrow("spans").to_pylist()
    assert len(spans) == 1
    assert spans[0]["fragments"] == [{"start": a1, "end": b1}, {"start": a2, "end": b2}]
    assert (spans[0]["start"], spans[0]["end"], spans[0]["text"]) == (
        a1,
        b2,
        "The mayor … everything",
    )


META_TSV = (
    "compartment\tfilename\tpublisher\tpublication_date\tauthor\ttitle\n"
    "train\tstorm\tdaily-news\t2016-05-01\tJo Smith\tA storm hits the coast\n"
    "test\tother\tweekly\t2016-05-02\tNone\tOther\n"
)


def test_metadata_file_fills_fields_and_keeps_other_columns(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(d / "storm.ann", ANN)
    meta = _write(tmp_path / "metadata.tsv", META_TSV)
    summary = ingest_paths(corpus, [d], fmt="brat", metadata=meta)
    assert summary.added == 1 and summary.metadata_updated == 0
    art = corpus.read("articles").iloc[0]
    assert (art["title"], art["source"], art["author"], art["compartment"]) == (
        "A storm hits the coast",
        "daily-news",
        "Jo Smith",
        "train",
    )
    assert str(art["published_at"]) == "2016-05-01 00:00:00+00:00"


def test_reingest_with_new_metadata_updates_it_and_says_so(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(d / "storm.ann", ANN)
    ingest_paths(corpus, [d], fmt="brat")
    assert pd.isna(corpus.read("articles").iloc[0]["source"])
    meta = _write(tmp_path / "metadata.csv", META_TSV.replace("\t", ","))
    summary = ingest_paths(corpus, [d], fmt="brat", metadata=meta)
    assert summary.refused == [] and summary.metadata_updated == 1
    assert summary.as_dict()["metadata_updated"] == 1
    arts = corpus.read("articles")
    assert len(arts) == 1 and arts.iloc[0]["source"] == "daily-news"
    assert arts.iloc[0]["text"] == TEXT
    again = ingest_paths(corpus, [d], fmt="brat", metadata=meta)
    assert again.metadata_updated == 0 and again.unchanged == 1


def test_metadata_without_id_column_is_one_line_error(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    meta = _write(tmp_path / "m.tsv", "publisher\ttitle\nx\ty\n")
    with pytest.raises(IngestError, match="no id column"):
        ingest_paths(corpus, [d], fmt="brat", metadata=meta)


def test_metadata_date_outside_years_1_to_9999_is_one_line_error(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(d / "storm.ann", ANN)
    for date in ("0000-01-01", "-1", "0001-01-01T00:00:00+01:00"):
        meta = _write(tmp_path / "m.tsv", f"id\tdate\nstorm\t{date}\n")
        with pytest.raises(IngestError) as info:
            ingest_paths(corpus, [d], fmt="brat", metadata=meta)
        assert str(info.value) == (
            f"{meta}: published_at {date!r} is outside years 1..9999 in UTC "
            "(what every export can write)"
        )
    assert corpus.read_arrow("articles").num_rows == 0


@pytest.mark.parametrize(
    "name, text, problem",
    [
        (
            "case.tsv",
            "id\tsplit\tSplit\nstorm\ttrain\tx\n",
            "columns 'split' and 'Split' differ only in case or spacing; a table cannot hold "
            "both: rename one",
        ),
        (
            "title.tsv",
            "id\ttitle\tTITLE\nstorm\tA\tB\n",
            "columns 'title' and 'TITLE' differ only in case or spacing; a table cannot hold "
            "both: rename one",
        ),
        ("twice.tsv", "id\tauthor\tauthor\nstorm\tA\tB\n", "column 'author' is there twice"),
        (
            "text.tsv",
            "id\tText\nstorm\tx\n",
            "column 'Text' and the articles column 'text' differ only in case; a table cannot "
            "hold both: rename 'Text'",
        ),
        (
            "long.tsv",
            "id\tauthor\nstorm\tA\tEXTRA\nother\tC\n",
            "line 2 has 3 fields, the header 2",
        ),
    ],
)
def test_metadata_file_problems_are_one_line_errors(corpus, tmp_path, name, text, problem):
    """Each was a traceback (Delta's duplicate field, pandas' axis error, Arrow's bytes/float)."""
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(d / "storm.ann", ANN)
    meta = _write(tmp_path / name, text)
    with pytest.raises(IngestError) as info:
        ingest_paths(corpus, [d], fmt="brat", metadata=meta)
    assert str(info.value) == f"{meta}: {problem}"
    assert corpus.read_arrow("articles").num_rows == 0


def test_metadata_column_in_another_case_than_the_corpus_s_is_refused(corpus, tmp_path):
    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(d / "storm.ann", ANN)
    ingest_paths(
        corpus, [d], fmt="brat", metadata=_write(tmp_path / "a.tsv", "id\tauthor\nstorm\tA\n")
    )
    versions = corpus.versions()
    meta = _write(tmp_path / "b.tsv", "id\tAuthor\nstorm\tB\n")
    with pytest.raises(IngestError) as info:
        ingest_paths(corpus, [d], fmt="brat", metadata=meta)
    assert str(info.value) == (
        f"{meta}: column 'Author' and the articles column 'author' differ only in case; "
        "a table cannot hold both: rename 'Author'"
    )
    assert corpus.versions() == versions


def test_cli_ingest_with_metadata_then_export_by_official_split(corpus, tmp_path):
    from click.testing import CliRunner

    from spanbank.cli import cli

    d = tmp_path / "brat"
    _write(d / "storm.txt", TEXT)
    _write(d / "storm.ann", ANN)
    meta = _write(tmp_path / "metadata.tsv", META_TSV)
    base = ["--corpus", str(corpus.path)]
    res = CliRunner().invoke(
        cli, [*base, "ingest", "--format", "brat", str(d), "--metadata", str(meta)]
    )
    assert res.exit_code == 0, res.output
    meta.write_text(META_TSV.replace("daily-news", "daily-herald"), encoding="utf-8")
    res = CliRunner().invoke(
        cli, [*base, "ingest", "--format", "brat", str(d), "--metadata", str(meta)]
    )
    assert res.exit_code == 0 and "metadata_updated: 1" in res.output, res.output
    out = tmp_path / "out"
    args = [*base, "export", "--format", "jsonl", "--out", str(out), "--split-by", "compartment"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert [p.name for p in sorted((out / "jsonl").iterdir())] == ["train.jsonl"]
    res = CliRunner().invoke(cli, [*args, "--split", "train=1"])
    assert res.exit_code == 1
    assert res.output.strip() == (
        "Error: --split-by keeps the corpus's own split: drop --split and --group-by"
    )
    res = CliRunner().invoke(
        cli, [*base, "ingest", "--format", "brat", str(d), "--metadata", "nope.tsv"]
    )
    assert res.output.strip() == "Error: metadata file not found: nope.tsv"


def _table_files(corpus, name: str) -> dict:
    """Every file of a table (its data and its log), by name: equal means nothing was written."""
    root = corpus.table_path(name)
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_two_texts_mapped_to_one_id_by_article_ids_json_are_refused(tmp_path):
    """`article_ids.json` naming one id for two texts: the second text was dropped without a
    word and its .ann applied to the first text."""
    d = tmp_path / "brat"
    d.mkdir()
    (d / "f0.txt").write_text("Bob said hello there.", encoding="utf-8")
    (d / "f0_x.ann").write_text("T1\tSPEAKER 0 3\tBob\n", encoding="utf-8")
    (d / "f1.txt").write_text("Bob wrote goodbye now.", encoding="utf-8")
    (d / "f1_y.ann").write_text("T1\tSPEAKER 0 3\tBob\nT2\tCUE 4 9\twrote\n", encoding="utf-8")
    (d / "article_ids.json").write_text(json.dumps({"f0": "same", "f1": "same"}))
    corpus = Corpus.init(tmp_path / "c")
    with pytest.raises(IngestError) as exc:
        ingest_paths(corpus, [d], fmt="brat")
    assert str(exc.value) == f"two texts for article 'same': {d / 'f0.txt'} and {d / 'f1.txt'}"
    assert corpus.read("articles").empty and corpus.read("annotations").empty


def test_export_reads_articles_of_files_before_and_after_metadata_columns(corpus, tmp_path):
    """Hunt O, F1: a brat ingest, then one with --metadata (which adds columns such as
    `compartment`), then `export`: a 72-line traceback (the articles' files had two schemas),
    and `--split-by compartment` a KeyError; after `compact` it worked."""
    import json

    from spanbank.export import export_dataset

    first, second = tmp_path / "b1", tmp_path / "b2"
    _write(first / "other.txt", TEXT.replace("storm", "flood"))
    _write(first / "other.ann", ANN)
    _write(second / "storm.txt", TEXT)
    _write(second / "storm.ann", ANN)
    ingest_paths(corpus, [first], fmt="brat")
    ingest_paths(corpus, [second], fmt="brat", metadata=_write(tmp_path / "m.tsv", META_TSV))
    assert len(corpus.table_files("articles")) == 2  # two files, with different columns
    export_dataset(corpus, ["jsonl"], tmp_path / "ex", split="train=1")
    rows = [
        json.loads(x) for x in (tmp_path / "ex" / "jsonl" / "train.jsonl").read_text().splitlines()
    ]
    assert sorted(r["article_id"] for r in rows) == ["other", "storm"]
    with pytest.raises(
        ExportError, match="--split-by compartment: 1 article.s. have no value .e.g. other."
    ):
        export_dataset(corpus, ["quotes"], tmp_path / "ex2", split_by="compartment")
