"""Discontinuous spans through the real Label Studio: pushed as chained fragment regions, pulled as one span."""

from __future__ import annotations

import json
import os
import uuid

import pandas as pd

from conftest import make_corpus
from spanbank.labelstudio import pull as ls_pull
from spanbank.labelstudio import push as ls_push
from spanbank.labelstudio import workflow
from spanbank.offsets import cp_to_utf16
from test_sync import _record

TEXT = "Fans 😀 waited. “We win,” the coach said, “and they lose.” Then she left."
A, B = "“We win,”", "“and they lose.”"


def _at(sub: str) -> tuple[int, int]:
    start = TEXT.index(sub)
    return start, start + len(sub)


def _prediction_file(tmp_path):
    (a0, a1), (b0, b1) = _at(A), _at(B)
    rows = [
        {
            "article_id": "f1",
            "span_id": "q1",
            "label": "QUOTE",
            "start": a0,
            "end": b1,
            "fragments": [{"start": a0, "end": a1}, {"start": b0, "end": b1}],
            "attributes": {"type": "direct"},
        },
        {
            "article_id": "f1",
            "span_id": "s1",
            "label": "SPEAKER",
            **dict(zip(("start", "end"), _at("the coach"), strict=True)),
        },
        {
            "article_id": "f1",
            "span_id": "c1",
            "label": "CUE",
            **dict(zip(("start", "end"), _at("said"), strict=True)),
        },
    ]
    path = tmp_path / "pred.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def _drawn(rid: str, sub: str, label: str) -> dict:
    """A region as the labeling UI sends it (UTF-16 offsets, as the frontend counts)."""
    s, e = _at(sub)
    return {
        "id": rid,
        "from_name": "label",
        "to_name": "text",
        "type": "labels",
        "value": {
            "start": cp_to_utf16(TEXT, s),
            "end": cp_to_utf16(TEXT, e),
            "text": sub,
            "labels": [label],
        },
    }


def _rel(a, b, label, direction="right"):
    return {"from_id": a, "to_id": b, "type": "relation", "direction": direction, "labels": [label]}


def test_fragments_round_trip_through_label_studio(tmp_path, ls_client, project_name):
    corpus = make_corpus(tmp_path / "corpus", {"f1": TEXT})
    summary = workflow.run(
        ls_push.push_batch(
            corpus, project_name, client=ls_client, preannotate=str(_prediction_file(tmp_path))
        )
    )
    pid = summary["ls_project_id"]
    (task,) = [t for p in ls_client.task_pages(pid) for t in p]
    pred = task["predictions"][0]["result"]
    regions = sorted(r["id"] for r in pred if r["type"] == "labels")
    assert regions == ["c1", "q1", "q1~2", "s1"]
    assert [(r["from_id"], r["to_id"], r["labels"]) for r in pred if r["type"] == "relation"] == [
        ("q1", "q1~2", ["continues"])
    ]
    tag = uuid.uuid4().hex[:6]
    u1, u2 = (ls_client.create_user(f"frag{i}-{tag}@example.org", f"frag{i}{tag}") for i in (1, 2))
    # annotator 1 accepts the prediction and links the speaker from the quote's second fragment
    ls_client.create_annotation(
        task["id"],
        pred + [_rel("q1~2", "s1", "said_by"), _rel("q1", "c1", "cue")],
        completed_by=u1["id"],
    )
    # annotator 2 draws it afresh, chaining the fragments right to left
    drawn = [
        _drawn("ab", A, "QUOTE"),
        _drawn("cd", B, "QUOTE"),
        _drawn("sp", "the coach", "SPEAKER"),
    ]
    drawn += [_rel("cd", "ab", "continues", "right"), _rel("sp", "ab", "said_by", "left")]
    ls_client.create_annotation(task["id"], drawn, completed_by=u2["id"])
    if os.environ.get("SPANBANK_RECORD_LS"):
        _record(ls_client, pid, [task["id"]], "api_fragments.json")

    pulled = workflow.run(ls_pull.pull(corpus, project_name, client=ls_client))
    assert pulled["new"] == 2
    spans, rels = corpus.read("spans"), corpus.read("relations")
    assert corpus.read("rejects").empty
    quotes = spans[spans["label"] == "QUOTE"].sort_values("span_id")
    want = [{"start": _at(A)[0], "end": _at(A)[1]}, {"start": _at(B)[0], "end": _at(B)[1]}]
    assert list(quotes["span_id"]) == ["ab", "q1"]  # the first fragment's region id, both times
    for q in quotes.itertuples():
        assert [dict(f) for f in q.fragments] == want
        assert (q.start, q.end, q.text) == (want[0]["start"], want[1]["end"], f"{A} … {B}")
    assert json.loads(quotes.iloc[1]["attributes"]) == {"type": "direct"}
    other = spans[spans["label"] != "QUOTE"]
    assert other["fragments"].isna().all()
    got = sorted(zip(rels["from_span_id"], rels["to_span_id"], rels["label"], strict=True))
    assert got == [("ab", "sp", "said_by"), ("q1", "c1", "cue"), ("q1", "s1", "said_by")]
    assert not pd.Series(rels["label"]).eq("continues").any()
