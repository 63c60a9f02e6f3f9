"""spanbank.labelstudio.convert on payloads recorded from a real Label Studio (no server needed)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest

from spanbank.labelstudio import convert
from spanbank.labelstudio.convert import (
    article_task,
    convert_annotation,
    prediction,
    result_sha,
    spans_to_result,
)
from spanbank.offsets import cp_to_utf16
from spanbank.preannotate import preannotate
from spanbank.schema import load_schema

LS = Path(__file__).parent / "data" / "ls"
SCHEMA = load_schema()


def _tasks(name="api_tasks.json"):
    return json.loads((LS / name).read_text("utf-8"))


def _task(text_start: str, name="api_tasks.json"):
    return next(t for t in _tasks(name) if t["data"]["text"].startswith(text_start))


def _convert(result, text):
    return convert_annotation(result, text, SCHEMA, "ann-1", "a1")


def test_emoji_offsets_code_points_and_utf16_agree():
    task = _task("Fans")
    text = task["data"]["text"]
    assert len(task["annotations"]) == 2
    got = []
    for ann in task["annotations"]:
        out = _convert(ann["result"], text)
        assert not out.rejects
        got.append(sorted((s["label"], s["start"], s["end"], s["text"]) for s in out.spans))
        repairs = {s["offset_repair"] for s in out.spans}
        assert repairs in ({None}, {"utf16"})
    assert got[0] == got[1]
    quote = next(s for s in got[0] if s[0] == "QUOTE")
    assert quote[3] == "“We won the cup,”" and text[quote[1] : quote[2]] == quote[3]


def test_attributes_and_relations_from_recorded_annotation():
    task = _task("Fans")
    ann = next(a for a in task["annotations"] if a["lead_time"] == 3.5)
    out = _convert(ann["result"], task["data"]["text"])
    q = next(s for s in out.spans if s["label"] == "QUOTE")
    assert json.loads(q["attributes"]) == {"type": "direct"}
    assert all(s["attributes"] is None for s in out.spans if s["label"] != "QUOTE")
    # one relation carried its label, the other was unlabeled and is inferred from the schema
    assert sorted((r["from_span_id"], r["to_span_id"], r["label"]) for r in out.relations) == [
        ("q1", "c1", "cue"),
        ("q1", "s1", "said_by"),
    ]


def test_crlf_region_text_tolerated_and_rejects():
    task = _task("Headline")
    text = task["data"]["text"]
    out = _convert(task["annotations"][0]["result"], text)
    q = next(s for s in out.spans if s["label"] == "QUOTE")
    assert q["text"] == "“Roads will\r\nreopen soon.”" and text[q["start"] : q["end"]] == q["text"]
    reasons = sorted(r["reason"] for r in out.rejects)
    assert any("'HEADLINE' is not in schema news-v1" in r for r in reasons)
    assert any("missing or rejected region 'zz'" in r for r in reasons)
    raw = [json.loads(r["raw"]) for r in out.rejects]
    assert {
        "from_id": "q1",
        "to_id": "zz",
        "type": "relation",
        "direction": "right",
        "labels": ["cue"],
    } in raw
    assert [r["label"] for r in out.relations] == ["said_by"]


def test_search_repair_for_shifted_offsets():
    task = _task("Headline")
    text = task["data"]["text"]
    result = copy.deepcopy(task["annotations"][0]["result"])
    speaker = next(r for r in result if r.get("value", {}).get("labels") == ["SPEAKER"])
    speaker["value"]["start"] -= 2  # e.g. the frontend dropped the \r of two CRLFs
    speaker["value"]["end"] -= 2
    out = _convert(result, text)
    s = next(s for s in out.spans if s["label"] == "SPEAKER")
    assert (s["text"], s["offset_repair"]) == ("The mayor", "search")
    assert out.repairs["search"] == 1


def test_edited_payload_changes_fingerprint():
    before = next(a for a in _task("Fans")["annotations"] if a["lead_time"] == 3.5)
    after = next(
        a for a in _task("Fans", "api_tasks_edited.json")["annotations"] if a["id"] == before["id"]
    )
    assert after["updated_at"] > before["updated_at"]
    assert result_sha(after["result"]) != result_sha(before["result"])
    assert result_sha(copy.deepcopy(before["result"])) == result_sha(before["result"])
    assert _convert(after["result"], _task("Fans")["data"]["text"]).relations == []


TEXT = "Tom 😀 said “hi”."


def _lab(rid, start, end, label, text=None):
    return {
        "id": rid,
        "from_name": "label",
        "to_name": "text",
        "type": "labels",
        "value": {
            "start": start,
            "end": end,
            "text": text if text is not None else TEXT[start:end],
            "labels": [label],
        },
    }


@pytest.mark.parametrize(
    "item, reason",
    [
        (
            {"id": "a", "type": "labels", "value": {"start": "1", "end": 3, "labels": ["CUE"]}},
            "offsets",
        ),
        ({"id": "a", "type": "labels", "value": {"start": 0, "end": 3}}, "no label"),
        ({"id": "a", "type": "labels", "value": [1, 2]}, "not an object"),
        ({"id": "a", "type": "textarea", "value": {"text": ["x"]}}, "unsupported result type"),
        (_lab("a", 0, 3, "SPEAKER", "Bob"), "no nearby match"),
        (_lab("a", 30, 33, "SPEAKER", "Tom!"), "beyond the text"),
    ],
)
def test_malformed_regions_rejected(item, reason):
    out = _convert([item], TEXT)
    assert not out.spans and len(out.rejects) == 1 and reason in out.rejects[0]["reason"]


def test_a_rejected_region_keeps_no_comment_nor_e_mail():
    """A region's comment (`meta.text`) and a label naming an e-mail were stored whole in
    `rejects` (hunt F, finding 4): e-mails belong in `annotators` only."""
    item = _lab("a", 0, 3, "contact ann.k@corp.example")
    item["meta"] = {"text": ["asked bob.j@corp.example to re-check"]}
    (row,) = _convert([item], TEXT).rejects
    assert "contact ***" in row["reason"]
    raw = json.loads(row["raw"])
    assert "meta" not in raw and raw["value"]["labels"] == ["contact ***"]
    assert "@" not in row["raw"] + row["reason"]


def test_choices_on_wrong_label_and_bad_value_rejected():
    cue = _lab("c", 6, 10, "CUE")
    quote = _lab("q", 11, 15, "QUOTE")
    items = [
        cue,
        quote,
        {"id": "c", "from_name": "QUOTE_type", "type": "choices", "value": {"choices": ["direct"]}},
        {
            "id": "q",
            "from_name": "QUOTE_type",
            "type": "choices",
            "value": {"choices": ["shouted"]},
        },
    ]
    out = _convert(items, TEXT)
    assert len(out.spans) == 2 and all(s["attributes"] is None for s in out.spans)
    assert sorted(r["span_id"] for r in out.rejects) == ["c", "q"]


def test_unlabeled_reverse_relation_inferred():
    items = [
        _lab("s", 0, 3, "SPEAKER"),
        _lab("q", 11, 15, "QUOTE"),
        {"from_id": "s", "to_id": "q", "type": "relation", "direction": "right", "labels": []},
    ]
    out = _convert(items, TEXT)
    assert out.relations == [
        {"annotation_id": "ann-1", "from_span_id": "q", "to_span_id": "s", "label": "said_by"}
    ]
    items[2]["labels"] = ["cue"]
    assert "relation cue goes QUOTE -> CUE" in _convert(items, TEXT).rejects[0]["reason"]


def test_utf16_offsets_from_frontend():
    s, e = cp_to_utf16(TEXT, [11, 15]).tolist()
    out = _convert([_lab("q", s, e, "QUOTE", "“hi”")], TEXT)
    assert (out.spans[0]["start"], out.spans[0]["end"], out.spans[0]["offset_repair"]) == (
        11,
        15,
        "utf16",
    )


PARTY = "🎉" * 14 + " He said: no. She said: yes."


def _party(rid, start, end, label, units):
    """A region of PARTY[start:end] (code points) as a client counting `units` sends it."""
    claimed = PARTY[start:end]
    if units == "utf16":
        start, end = cp_to_utf16(PARTY, [start, end]).tolist()
    return _lab(rid, start, end, label, claimed)


def test_a_region_that_fits_both_counts_is_read_as_its_annotation_counts():
    """Hunt M, F2: after 14 emoji, the first "said" in UTF-16 units (32..36) is the second
    "said" in code points. The annotation's other regions tell which count its client uses."""
    first, second, he, she = 18, 32, 15, 28
    assert PARTY[first : first + 4] == PARTY[second : second + 4] == "said"
    assert cp_to_utf16(PARTY, first) == second
    by16 = [
        _party("h", he, he + 2, "SPEAKER", "utf16"),
        _party("c", first, first + 4, "CUE", "utf16"),
    ]
    out = _convert(by16, PARTY)
    assert [(s["span_id"], s["start"], s["text"], s["offset_repair"]) for s in out.spans] == [
        ("h", he, "He", "utf16"),
        ("c", first, "said", "utf16"),
    ]
    by_cp = [
        _party("s", she, she + 3, "SPEAKER", "cp"),
        _party("c", second, second + 4, "CUE", "cp"),
    ]
    out = _convert(by_cp, PARTY)
    assert [(s["span_id"], s["start"], s["offset_repair"]) for s in out.spans] == [
        ("s", she, None),
        ("c", second, None),
    ]
    # alone, "said" at 32..36 fits both counts: read as code points, as Label Studio's UI sends
    assert _convert(by_cp[1:], PARTY).spans[0]["start"] == second
    # a client that changed the text (a line end, say) still gives its count away
    crlf = "🎉" * 14 + " He said: no.\r\nWe said: yes."
    assert crlf.index("said", first + 1) == second
    quote = _lab("q", *cp_to_utf16(crlf, [first, first + 13]).tolist(), "QUOTE", "said: no.\nWe")
    cue = _lab("c", *cp_to_utf16(crlf, [first, first + 4]).tolist(), "CUE", "said")
    out = convert_annotation([quote, cue], crlf, SCHEMA, "ann-1", "a1")
    assert [(s["start"], s["offset_repair"]) for s in out.spans] == [
        (first, "utf16"),
        (first, "utf16"),
    ]


def test_a_region_or_relation_with_two_labels_is_rejected_whole():
    """Hunt M, F3: with choice="multiple" in the project, a region (or a relation) came back
    as its first label only; the other vanished from spans and rejects alike."""
    two = _lab("q", 11, 15, "QUOTE", "“hi”")
    two["value"]["labels"] = ["QUOTE", "EVENT"]
    out = _convert([_lab("s", 0, 3, "SPEAKER", "Tom"), two], TEXT)
    assert [s["span_id"] for s in out.spans] == ["s"]
    (rej,) = out.rejects
    assert rej["reason"] == "region has 2 labels ('QUOTE', 'EVENT'); a span takes one"
    assert json.loads(rej["raw"])["value"]["labels"] == ["QUOTE", "EVENT"]
    link = {"from_id": "q", "to_id": "s", "type": "relation", "labels": ["said_by", "cue"]}
    out = _convert(
        [_lab("s", 0, 3, "SPEAKER", "Tom"), _lab("q", 11, 15, "QUOTE", "“hi”"), link], TEXT
    )
    assert out.relations == []
    assert [r["reason"] for r in out.rejects] == [
        "relation has 2 labels ('said_by', 'cue'); a relation takes one"
    ]
    # hunt N, F9: with the chain's label first, the two regions were joined into one span
    chain = {"from_id": "q", "to_id": "q2", "type": "relation", "labels": ["continues", "said_by"]}
    q2 = _lab("q2", 0, 3, "QUOTE", "Tom")
    out = _convert([_lab("q", 11, 15, "QUOTE", "“hi”"), q2, chain], TEXT)
    assert sorted(s["span_id"] for s in out.spans) == ["q", "q2"]
    assert [r["reason"] for r in out.rejects] == [
        "relation has 2 labels ('continues', 'said_by'); a relation takes one"
    ]


def test_two_values_of_one_attribute_for_a_region_are_rejected_not_the_last_kept():
    """Hunt M, F3: two `type` choices for one QUOTE region (direct, then indirect) stored the
    last, with no reject."""

    def choice(value):
        return {"id": "q", "from_name": "QUOTE_type", "to_name": "text", "type": "choices",
                "value": {"start": 11, "end": 15, "choices": [value]}}  # fmt: skip

    quote = _lab("q", 11, 15, "QUOTE", "“hi”")
    out = _convert([quote, choice("direct"), choice("indirect")], TEXT)
    assert out.spans[0]["attributes"] is None
    assert [r["reason"] for r in out.rejects] == [
        "2 values of type for one region ('direct', 'indirect'); a span takes one"
    ] * 2
    out = _convert([quote, choice("direct"), choice("direct")], TEXT)  # the same twice: fine
    assert json.loads(out.spans[0]["attributes"]) == {"type": "direct"} and not out.rejects


def test_prediction_round_trip_through_converter():
    text = _task("Fans")["data"]["text"]
    tagged = preannotate(text)
    result = spans_to_result(text, tagged["spans"], tagged["relations"], SCHEMA)
    out = _convert(result, text)
    assert not out.rejects
    assert sorted((s["label"], s["start"], s["end"]) for s in out.spans) == sorted(
        (s["label"], s["start"], s["end"]) for s in tagged["spans"]
    )
    assert len(out.relations) == len(tagged["relations"])
    pred = prediction(result, "v1", 0.5)
    assert pred["model_version"] == "v1" and pred["score"] == 0.5


def test_article_task_shape():
    task = article_task(
        {"article_id": "a1", "title": None, "text": "T", "source": "ap", "url": float("nan")},
        [prediction([], "m")],
    )
    assert task["data"] == {"text": "T", "article_id": "a1", "title": ""}
    assert task["meta"] == {"source": "ap"} and task["predictions"][0]["model_version"] == "m"


@pytest.mark.parametrize("name", ["emoji", "crlf", "tabs", "combining", "mixed"])
def test_ui_payloads_land_on_the_selected_text(name):
    """Payloads Label Studio's own UI submitted (tests/record_ui_payloads.py) map to the true offsets."""
    task = json.loads((LS / f"ui_{name}.json").read_text("utf-8"))
    text = task["data"]["text"]
    (ann,) = task["annotations"]
    out = _convert(ann["result"], text)
    assert not out.rejects
    got = sorted((s["label"], s["start"], s["end"], s["text"]) for s in out.spans)
    want = sorted(
        (label, text.index(sub), text.index(sub) + len(sub), sub)
        for label, sub in task["spanbank_selected"]
    )
    assert got == want
    # Label Studio 1.23's UI sends code point offsets and the exact characters (CRLF, tabs,
    # combining marks, emoji included): no repair needed on this path
    assert {s["offset_repair"] for s in out.spans} == {None}


def test_pulled_version_new_unchanged_and_edited():
    """The version pull stores an LS annotation as: 1 when new, None when unchanged, else +1."""
    ann = {
        "id": 7,
        "result": [{"id": "a"}],
        "updated_at": "2026-01-02T03:04:05Z",
        "was_cancelled": False,
    }
    assert convert.pulled_version(ann, None, None) == 1
    prev = pd.Series(
        {
            "result_sha": convert.result_sha(ann["result"]),
            "updated_at": None,
            "invalid_reason": None,
            "deleted_at": None,
            "cancelled": False,
            "version": 2,
        }
    )
    assert convert.pulled_version(ann, prev, None) is None
    assert convert.pulled_version(ann, prev, "task text edited") == 3  # validity changed
    assert convert.pulled_version({**ann, "result": []}, prev, None) == 3  # result edited
    assert convert.pulled_version({**ann, "was_cancelled": True}, prev, None) == 3  # now skipped
    gone = prev.copy()
    gone["deleted_at"] = pd.Timestamp("2026-01-03", tz="UTC")
    assert convert.pulled_version(ann, gone, None) == 3  # restored after a deletion
    old = prev.copy()  # stored before result digests: compared by its time stamp
    old["result_sha"], old["updated_at"] = None, pd.Timestamp("2026-01-02T03:04:05Z")
    assert convert.pulled_version(ann, old, None) is None


# -- discontinuous spans: one region per fragment, chained by the schema's fragment relation
def _chain(a, b, label="continues", direction="right"):
    return {"from_id": a, "to_id": b, "type": "relation", "direction": direction, "labels": [label]}


def test_recorded_fragment_regions_pull_as_one_span():
    """Both annotations of the recorded task (the accepted prediction, and one drawn afresh in
    UTF-16 offsets and chained right to left) give one QUOTE with two fragments."""
    (task,) = _tasks("api_fragments.json")
    text = task["data"]["text"]
    a, b = text.index("“We win,”"), text.index("“and they lose.”")
    want = [{"start": a, "end": a + 9}, {"start": b, "end": b + 16}]
    got = {}
    for ann in task["annotations"]:
        out = _convert(ann["result"], text)
        assert not out.rejects
        (q,) = [s for s in out.spans if s["label"] == "QUOTE"]
        assert q["fragments"] == want and (q["start"], q["end"]) == (a, b + 16)
        assert q["text"] == "“We win,” … “and they lose.”"
        got[q["span_id"]] = sorted((r["from_span_id"], r["label"]) for r in out.relations)
    assert got == {"q1": [("q1", "cue"), ("q1", "said_by")], "ab": [("ab", "said_by")]}


def test_fragments_push_and_pull_back_identically():
    text = "“A,” he said, “B.”"
    quote = {
        "span_id": "q",
        "label": "QUOTE",
        "start": 0,
        "end": 18,
        "fragments": [{"start": 0, "end": 4}, {"start": 14, "end": 18}],
        "attributes": '{"type": "direct"}',
    }
    spans = [quote, {"span_id": "s", "label": "SPEAKER", "start": 5, "end": 7}]
    rels = [{"from_span_id": "q", "to_span_id": "s", "label": "said_by"}]
    result = spans_to_result(text, spans, rels, SCHEMA)
    assert [r["id"] for r in result if r["type"] == "labels"] == ["q", "q~2", "s"]
    out = _convert(result, text)
    assert not out.rejects and len(out.spans) == 2
    q = out.spans[0]
    assert (q["span_id"], q["fragments"], q["text"]) == ("q", quote["fragments"], "“A,” … “B.”")
    assert json.loads(q["attributes"]) == {"type": "direct"}
    assert [(r["from_span_id"], r["to_span_id"]) for r in out.relations] == [("q", "s")]


def test_three_fragments_attributes_and_links_from_any_fragment():
    text = "“A,” he said, “B,” he added, “C.”"
    parts = [(0, 4), (14, 18), (29, 33)]
    result = [_lab(f"r{i}", s, e, "QUOTE", text[s:e]) for i, (s, e) in enumerate(parts)]
    result += [_lab("c", 19, 27, "CUE", text[19:27]), _chain("r2", "r1"), _chain("r0", "r1")]
    result += [
        {
            "id": "r2",
            "from_name": "QUOTE_type",
            "type": "choices",
            "value": {"choices": ["direct"]},
        },
        {"from_id": "r1", "to_id": "c", "type": "relation", "direction": "right", "labels": []},
    ]
    out = _convert(result, text)
    assert not out.rejects
    (q,) = [s for s in out.spans if s["label"] == "QUOTE"]
    assert q["span_id"] == "r0" and [(f["start"], f["end"]) for f in q["fragments"]] == parts
    assert json.loads(q["attributes"]) == {"type": "direct"}
    assert out.relations == [
        {"annotation_id": "ann-1", "from_span_id": "r0", "to_span_id": "c", "label": "cue"}
    ]


def test_unnamed_link_between_two_quote_regions_joins_them():
    """An annotator who links two QUOTE regions without naming the relation means one quote
    (no relation of the schema joins two quotes)."""
    text = "“A,” he said, “B.”"
    result = [_lab("q", 0, 4, "QUOTE", "“A,”"), _lab("r", 14, 18, "QUOTE", "“B.”")]
    result.append(
        {"from_id": "r", "to_id": "q", "type": "relation", "direction": "right"} | {"labels": []}
    )
    out = _convert(result, text)
    assert not out.rejects and [s["span_id"] for s in out.spans] == ["q"]
    assert out.spans[0]["fragments"] == [{"start": 0, "end": 4}, {"start": 14, "end": 18}]


def test_ui_drawn_link_between_quote_fragments_pulls_as_one_span():
    """Recorded from Label Studio's labeling UI (headless Chromium): two QUOTE regions and the
    SPEAKER drawn, then the first quote linked to the second with "Create Relation" (no label)."""
    (task,) = [_tasks("ui_fragments.json")]
    text = task["data"]["text"]
    (ann,) = task["annotations"]
    (rel,) = [r for r in ann["result"] if r["type"] == "relation"]
    assert "labels" not in rel  # what the UI sends for an unnamed link
    out = _convert(ann["result"], text)
    assert not out.rejects
    (q,) = [s for s in out.spans if s["label"] == "QUOTE"]
    a, b = text.index("“We win,”"), text.index("“and they lose.”")
    assert q["span_id"] == rel["from_id"]
    assert q["fragments"] == [{"start": a, "end": a + 9}, {"start": b, "end": b + 16}]
    assert q["text"] == "“We win,” … “and they lose.”"


@pytest.mark.parametrize(
    "extra, reason",
    [
        ([_lab("s", 5, 7, "SPEAKER", "he"), _chain("q", "s")], "joins a QUOTE and a SPEAKER"),
        ([_chain("q", "gone")], "missing or rejected region 'gone'"),
        (
            [
                _lab("q2", 14, 18, "QUOTE", "“B.”"),
                _chain("q", "q2"),
                {
                    "id": "q",
                    "from_name": "QUOTE_type",
                    "type": "choices",
                    "value": {"choices": ["direct"]},
                },
                {
                    "id": "q2",
                    "from_name": "QUOTE_type",
                    "type": "choices",
                    "value": {"choices": ["mixed"]},
                },
            ],
            "disagree on type",
        ),
    ],
)
def test_bad_fragment_chains_rejected(extra, reason):
    text = "“A,” he said, “B.”"
    out = _convert([_lab("q", 0, 4, "QUOTE", "“A,”"), *extra], text)
    assert len(out.rejects) == 1 and reason in out.rejects[0]["reason"]
    assert out.spans[0]["span_id"] == "q"


def test_frontend_changed_text_is_read_by_the_closest_fit_and_the_annotation_s_count():
    """Hunt N, F1 and F7. A UTF-16 client's lone region, line ends sent as LF, was stored one
    character late (a stray '\\r': edge whitespace forgiven made the code-point reading fit as
    well); a code-point client's region with changed text went through its UTF-16 reading to
    an earlier copy written the changed way (an exact hit beat a forgiving one), although the
    annotation's other region fits code points alone."""
    import unicodedata

    text = "Fans wrote:\r\nGreat game\r\nwell done 🎉\r\nThe club said nothing."
    s, e = text.index("Great"), text.index("🎉") + 1
    quote = _lab("q", *cp_to_utf16(text, [s, e]).tolist(), "QUOTE", text[s:e].replace("\r\n", "\n"))
    out = convert_annotation([quote], text, SCHEMA, "ann-1", "a1")
    assert (out.spans[0]["start"], out.spans[0]["end"]) == (s, e)
    cases = [
        ("🎉" * 13 + "Ann: 😀 hi\nyo.Bob: 😀 hi\r\nyo. Said Bob.", "😀 hi\r\nyo.", "😀 hi\nyo."),
        ("🎉" * 11 + "Ann: 😀 Zoë.Bob: 😀 Zoe\u0308. Said Bob.", "😀 Zoe\u0308.", "😀 Zoë."),
    ]
    for text, phrase, sent in cases:
        assert unicodedata.normalize("NFC", phrase.replace("\r\n", "\n")) == sent
        s, c = text.rindex(phrase), text.index("Said")
        regions = [_lab("q", s, s + len(phrase), "QUOTE", sent), _lab("c", c, c + 4, "CUE", "Said")]
        out = convert_annotation(regions, text, SCHEMA, "ann-1", "a1")
        assert [(x["start"], x["offset_repair"]) for x in out.spans] == [(s, None), (c, None)]


def test_a_span_whose_fragment_is_rejected_is_rejected_whole():
    """Hunt N, F4: the second fragment of a quote had two labels and was rejected; the first
    was stored as a whole QUOTE "“A,”" with its said_by link, and exported and voted on so."""
    text = "“A,” he said, “B.”"
    second = _lab("q2", 14, 18, "QUOTE", "“B.”")
    second["value"]["labels"] = ["QUOTE", "EVENT"]
    link = {"from_id": "q", "to_id": "s", "type": "relation", "labels": ["said_by"]}
    items = [_lab("q", 0, 4, "QUOTE", "“A,”"), second, _lab("s", 5, 7, "SPEAKER", "he")]
    out = _convert([*items, _chain("q", "q2"), link], text)
    assert [s["span_id"] for s in out.spans] == ["s"] and out.relations == []
    reasons = {r["span_id"]: r["reason"] for r in out.rejects}
    assert reasons["q"].startswith("a fragment of this span (region 'q2') was rejected")
    assert set(reasons) == {"q", "q2", "q->q2", "q->s"}
