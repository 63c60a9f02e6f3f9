"""Pure conversion: articles -> Label Studio tasks (+ predictions); LS annotations -> span/relation/reject rows."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise

import pandas as pd

from spanbank.corpus.annotations import GOLD_ORIGIN, REVIEW_ANNOTATOR
from spanbank.corpus.commits import without_emails
from spanbank.errors import OffsetError
from spanbank.offsets import CP, UTF16, counted_in, resolve_span
from spanbank.schema import (
    LS_LABELS_NAME,
    LS_TEXT_NAME,
    Schema,
    attribute_control_name,
    attributes_json,
)
from spanbank.spans import fragment_list, fragments_cell, joined_text, normalise

NO_REPAIR = "none"
FRAGMENT_RELATION = "continues"  # when no schema is given (the default schema's name for it)


# -- push side ----------------------------------------------------------------------------
def article_task(article: dict, predictions: list[dict] | None = None) -> dict:
    """One LS task for an article row (article_id, title, text, optional source/url)."""
    task = {
        "data": {
            LS_TEXT_NAME: article["text"],
            "article_id": article["article_id"],
            "title": article.get("title") if _present(article.get("title")) else "",
        },
        "meta": {k: article[k] for k in ("source", "url", "language") if _present(article.get(k))},
    }
    if predictions:
        task["predictions"] = predictions
    return task


def _present(value) -> bool:
    """False for a missing value: None, NaN, NaT, pd.NA or an empty string."""
    try:
        return value is not None and bool(value == value) and value != ""
    except (TypeError, ValueError):  # pd.NA has no truth value
        return False


def spans_to_result(
    text: str, spans: list[dict], relations: list[dict] = (), schema: Schema | None = None
) -> list[dict]:
    """LS result items for spans (span_id, label, start, end[, attributes]) and their relations.

    Offsets are code points (what the corpus stores); the pull side verifies whatever
    comes back, so an annotator accepting a prediction round-trips through resolve_span.
    """
    result = []
    known = set()
    chain = schema.fragment_relation if schema is not None else FRAGMENT_RELATION
    for i, s in enumerate(spans):
        rid = str(s["span_id"]) if _present(s.get("span_id")) else f"p{i}"
        if schema is not None and s["label"] not in schema.labels:
            continue
        regions = _fragment_regions(text, s, rid)
        result += regions
        result += _fragment_links(regions, chain)
        known.add(rid)
        value = {k: regions[0]["value"][k] for k in ("start", "end", "text")}
        attrs = s.get("attributes") if _present(s.get("attributes")) else {}
        if isinstance(attrs, str):
            attrs = json.loads(attrs)
        for key, val in attrs.items():
            if not _present(val):
                continue
            if schema is not None and schema.check_span(s["label"], {key: val}) is not None:
                continue
            result.append(
                {
                    "id": rid,
                    "from_name": attribute_control_name(s["label"], key),
                    "to_name": LS_TEXT_NAME,
                    "type": "choices",
                    "value": {**value, "choices": [val]},
                }
            )
    for r in relations:
        a, b = str(r["from_span_id"]), str(r["to_span_id"])
        if a in known and b in known:
            result.append(_relation_item(a, b, [r["label"]] if _present(r.get("label")) else []))
    return result


def _fragment_regions(text: str, span: dict, rid: str) -> list[dict]:
    """One LS region per fragment of `span` (one for a contiguous span); the first keeps `rid`,
    so the span id survives a push/pull round trip, the others get `rid~2`, `rid~3`, ..."""
    parts = fragment_list(span["start"], span["end"], span.get("fragments"))
    return [
        {
            "id": rid if k == 0 else f"{rid}~{k + 1}",
            "from_name": LS_LABELS_NAME,
            "to_name": LS_TEXT_NAME,
            "type": "labels",
            "value": {"start": s, "end": e, "text": text[s:e], "labels": [span["label"]]},
        }
        for k, (s, e) in enumerate(parts)
    ]


def _fragment_links(regions: list[dict], chain: str | None) -> list[dict]:
    """The `chain` relations tying a span's fragment regions together in text order."""
    if not chain:
        return []
    return [_relation_item(a["id"], b["id"], [chain]) for a, b in pairwise(regions)]


def _relation_item(a: str, b: str, labels: list[str]) -> dict:
    return {"from_id": a, "to_id": b, "type": "relation", "direction": "right", "labels": labels}


def prediction(result: list[dict], model_version: str, score: float | None = None) -> dict:
    out = {"model_version": model_version, "result": result}
    if _present(score):
        out["score"] = float(score)
    return out


# -- pull side ----------------------------------------------------------------------------
@dataclass
class Converted:
    """Rows from one LS annotation: spans, relations, rejects, and the repairs applied."""

    spans: list[dict] = field(default_factory=list)
    relations: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    repairs: Counter = field(default_factory=Counter)


def result_sha(result) -> str:
    """Fingerprint of an annotation's result (edits in LS change it)."""
    blob = json.dumps(result or [], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def convert_annotation(
    result, text: str, schema: Schema, annotation_id: str, article_id: str
) -> Converted:
    """Turn one LS annotation `result` list into verified span, relation and reject rows.

    Spans get their true code point offsets in `text` (resolve_span decides between the
    code point and UTF-16 readings or a nearby match); anything that does not fit the text
    or the schema becomes a reject with the reason and the raw item.
    """
    out = Converted()
    if not isinstance(result, list):
        out.rejects.append(_reject(annotation_id, None, "annotation result is not a list", result))
        return out
    controls = {
        attribute_control_name(lab.name, a): (lab.name, a)
        for lab in schema.labels.values()
        for a in lab.attributes
    }
    counted = _counted(result, text)
    regions: dict[str, dict] = {}  # region id -> span row (accepted spans only)
    rejected_regions: set[str] = set()
    choices, rels = [], []
    for item in result:
        if not isinstance(item, dict):
            out.rejects.append(_reject(annotation_id, None, "result item is not an object", item))
            continue
        kind = item.get("type")
        if kind == "relation":
            rels.append(item)
            continue
        if kind == "choices":
            choices.append(item)
            continue
        rid = str(item.get("id")) if item.get("id") is not None else None
        if kind != "labels":
            out.rejects.append(
                _reject(annotation_id, rid, f"unsupported result type {kind!r}", item)
            )
            continue
        span, reason = _span(item, rid, text, schema, annotation_id, article_id, counted)
        if span is None:
            out.rejects.append(_reject(annotation_id, rid, reason, item))
            if rid is not None:
                rejected_regions.add(rid)
            continue
        if rid in regions:
            out.rejects.append(_reject(annotation_id, rid, f"duplicate region id {rid!r}", item))
            continue
        regions[rid] = span
        out.repairs[span["offset_repair"] or NO_REPAIR] += 1
    attrs: dict[str, dict] = {}
    given: dict[tuple, list] = {}  # (region, attribute) -> (value, item) as given
    for item in choices:
        rid = str(item.get("id")) if item.get("id") is not None else None
        name, value = item.get("from_name"), item.get("value")
        target = controls.get(name) if isinstance(name, str) else None
        values = value.get("choices") if isinstance(value, dict) else None
        if rid in rejected_regions and rid not in regions:
            continue  # the region itself is already rejected (a duplicate id may still be kept)
        if target is None:
            reason = f"choices control {item.get('from_name')!r} is not in schema {schema.ident}"
        elif rid not in regions:
            reason = f"attribute for missing region {rid!r}"
        elif regions[rid]["label"] != target[0]:
            reason = f"{item.get('from_name')} set on a {regions[rid]['label']} region"
        elif not isinstance(values, list) or len(values) != 1:
            reason = f"{item.get('from_name')} needs exactly one choice, got {values!r}"
        else:
            reason = schema.check_span(target[0], {target[1]: values[0]})
            if reason is None:
                given.setdefault((rid, target[1]), []).append((values[0], item))
        if reason is not None:
            out.rejects.append(_reject(annotation_id, rid, reason, item))
    for (rid, key), said in given.items():
        values = list(dict.fromkeys(v for v, _ in said))
        if len(values) == 1:
            attrs.setdefault(rid, {})[key] = values[0]
            continue
        reason = f"{len(values)} values of {key} for one region ({', '.join(map(repr, values))})"
        out.rejects += [
            _reject(annotation_id, rid, reason + "; a span takes one", i) for _, i in said
        ]
    chains = [i for i in rels if _is_chain(i, schema, regions)]
    rels = [i for i in rels if not _is_chain(i, schema, regions)]
    alias = _join_fragments(chains, regions, attrs, text, annotation_id, out, rejected_regions)
    for rid, span in regions.items():
        if alias.get(rid, rid) == rid:
            span["attributes"] = attributes_json(attrs.get(rid))
            out.spans.append(span)
    seen_rel = set()
    for item in rels:
        row, reason = _relation(item, regions, schema, annotation_id, alias)
        if row is None:
            key = f"{item.get('from_id')}->{item.get('to_id')}"
            out.rejects.append(_reject(annotation_id, key, reason, item))
            continue
        key = (row["from_span_id"], row["to_span_id"], row["label"])
        if key not in seen_rel:
            seen_rel.add(key)
            out.relations.append(row)
    return out


def _counted(result: list, text: str) -> str | None:
    """The count (`cp` or `utf16`) the annotation's regions speak for (`counted_in`: a region
    fitting one count alone weighs twice one fitting it better; None on a tie): one client drew
    them all, so a region that fits both ways (the same words again further on) is read that
    client's way too, not moved to the other occurrence."""
    votes: Counter = Counter()
    for item in result:
        if isinstance(item, dict) and item.get("type") == "labels":
            v = item.get("value")
            said = (
                counted_in(text, v.get("start"), v.get("end"), v.get("text"))
                if isinstance(v, dict)
                else None
            )
            if said is not None:
                votes[said[0]] += said[1]
    if votes[UTF16] == votes[CP]:
        return None
    return UTF16 if votes[UTF16] > votes[CP] else CP


def _span(
    item: dict,
    rid,
    text: str,
    schema: Schema,
    annotation_id: str,
    article_id: str,
    counted: str | None = None,
):
    if rid is None:
        return None, "region without an id"
    value = item.get("value")
    if not isinstance(value, dict):
        return None, "region value is not an object"
    labels = value.get("labels")
    if not isinstance(labels, list) or not labels or not isinstance(labels[0], str):
        return None, "region has no label"
    if len(labels) > 1:  # the project's <Labels> allow several (choice="multiple")
        named = ", ".join(repr(x) for x in labels)
        return None, f"region has {len(labels)} labels ({named}); a span takes one"
    label = labels[0]
    if label not in schema.labels:
        return None, f"label {label!r} is not in schema {schema.ident}"
    start, end, claimed = value.get("start"), value.get("end"), value.get("text")
    if claimed is not None and not isinstance(claimed, str):
        return None, "region text is not a string"
    try:
        fix = resolve_span(text, start, end, claimed, counted=counted)
    except OffsetError as exc:
        return None, f"offsets: {exc}"
    return {
        "annotation_id": annotation_id,
        "span_id": rid,
        "article_id": article_id,
        "label": label,
        "start": fix.start,
        "end": fix.end,
        "text": text[fix.start : fix.end],
        "attributes": None,
        "offset_repair": fix.repair,
        "fragments": None,
    }, None


def _is_chain(item: dict, schema: Schema, regions: dict) -> bool:
    """True for a relation that ties two fragment regions of one span (the schema's
    `fragment_relation`, or an unnamed link between two regions of one label that no
    relation of the schema joins), not a relation between spans."""
    labels = item.get("labels", [])  # the labeling UI leaves the key out of an unnamed link
    if schema.fragment_relation is None or not isinstance(labels, list):
        return False
    if labels:  # several labels are no chain: `_relation` rejects them
        return labels == [schema.fragment_relation]
    a, b = regions.get(str(item.get("from_id"))), regions.get(str(item.get("to_id")))
    return (
        a is not None
        and b is not None
        and a["label"] == b["label"]
        and schema.infer_relation(a["label"], a["label"]) is None
    )


def _join_fragments(
    chains: list[dict],
    regions: dict,
    attrs: dict,
    text: str,
    annotation_id: str,
    out: Converted,
    rejected: set = frozenset(),
) -> dict[str, str]:
    """Merge regions chained by the fragment relation into one span each (in place, onto the
    region that starts first, whose id the span keeps); region id -> span id for the others.
    A span one of whose fragments was `rejected` is rejected whole (dropped from `regions`):
    its other fragments alone would pass for the whole quote."""
    parent: dict[str, str] = {}
    broken: dict[str, str] = {}  # region id -> the rejected fragment it is chained to

    def root(r: str) -> str:
        while parent.get(r, r) != r:
            r = parent[r]
        return r

    for item in chains:
        a, b = str(item.get("from_id")), str(item.get("to_id"))
        reason = _chain_problem(a, b, regions)
        if reason is not None:
            out.rejects.append(_reject(annotation_id, f"{a}->{b}", reason, item))
            for kept, lost in ((a, b), (b, a)):
                if kept in regions and lost in rejected:
                    broken.setdefault(kept, lost)
            continue
        parent.setdefault(a, a)
        parent[root(b)] = root(a)
    groups: dict[str, list[str]] = {}
    for rid in [*parent, *broken]:
        groups.setdefault(root(rid), []).append(rid)
    alias: dict[str, str] = {}
    for members in groups.values():
        lost = next((broken[r] for r in members if r in broken), None)
        if lost is not None:
            reason = f"a fragment of this span (region {lost!r}) was rejected: a span is kept whole or not at all"
            for rid in dict.fromkeys(members):
                out.rejects.append(_reject(annotation_id, rid, reason, regions.pop(rid)))
            continue
        members = sorted(set(members), key=lambda r: (regions[r]["start"], regions[r]["end"], r))
        head = members[0]
        _merge_into(regions[head], [regions[r] for r in members], text)
        for rid in members[1:]:
            alias[rid] = head
            _merge_attributes(attrs, head, rid, annotation_id, out)
    return alias


def _chain_problem(a: str, b: str, regions: dict) -> str | None:
    """Why a fragment relation between regions `a` and `b` cannot join them, or None."""
    for end in (a, b):
        if end not in regions:
            return f"fragment relation refers to missing or rejected region {end!r}"
    la, lb = regions[a]["label"], regions[b]["label"]
    if la != lb:
        return f"fragment relation joins a {la} and a {lb} region (one span has one label)"
    return None


def _merge_into(head: dict, members: list[dict], text: str) -> None:
    """Make `head` the span made of every member's offsets (its fragments, outer bounds)."""
    parts = normalise((m["start"], m["end"]) for m in members)
    head.update(
        start=parts[0][0],
        end=parts[-1][1],
        text=joined_text(text, parts),
        fragments=fragments_cell(parts),
        offset_repair=next((m["offset_repair"] for m in members if m["offset_repair"]), None),
    )


def _merge_attributes(attrs: dict, head: str, rid: str, annotation_id: str, out) -> None:
    """Attributes set on a later fragment region belong to the span; a clash is rejected."""
    for key, val in (attrs.get(rid) or {}).items():
        have = attrs.setdefault(head, {}).setdefault(key, val)
        if have != val:
            reason = f"fragments of span {head!r} disagree on {key}: {have!r} vs {val!r}"
            out.rejects.append(_reject(annotation_id, rid, reason, {key: val}))


def _relation(item: dict, regions: dict, schema: Schema, annotation_id: str, alias=None):
    a, b = item.get("from_id"), item.get("to_id")
    if a is None or b is None:
        return None, "relation without from_id/to_id"
    a, b = str(a), str(b)
    if item.get("direction") == "left":
        a, b = b, a
    for end in (a, b):
        if end not in regions:
            return None, f"relation refers to missing or rejected region {end!r}"
    alias = alias or {}
    a, b = alias.get(a, a), alias.get(b, b)  # a fragment region stands for its whole span
    if a == b:
        return None, f"relation links span {a!r} to itself"
    la, lb = regions[a]["label"], regions[b]["label"]
    labels = item.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        return None, f"relation labels must be a list of names, got {labels!r}"
    if len(labels) > 1:  # the project's <Relations> allow several (choice="multiple")
        named = ", ".join(repr(x) for x in labels)
        return None, f"relation has {len(labels)} labels ({named}); a relation takes one"
    if labels:
        name = labels[0]
        reason = schema.check_relation(name, la, lb)
        if reason is not None and schema.check_relation(name, lb, la) is None:
            a, b, reason = b, a, None  # drawn the other way round
        if reason is not None:
            return None, reason
    else:
        name = schema.infer_relation(la, lb)
        if name is None:
            name = schema.infer_relation(lb, la)
            a, b = b, a
        if name is None:
            return None, f"no relation in schema {schema.ident} links {la} and {lb}"
    return {"annotation_id": annotation_id, "from_span_id": a, "to_span_id": b, "label": name}, None


def _reject(annotation_id: str, span_id, reason: str, raw) -> dict:
    """A `rejects` row: the item as Label Studio sent it, less its free text (a region's
    comment, `meta`) and with e-mail addresses masked: e-mails stay in `annotators` only."""
    if isinstance(raw, dict):
        raw = {k: v for k, v in raw.items() if k != "meta"}
    return {
        "annotation_id": annotation_id,
        "span_id": span_id,
        "reason": without_emails(reason),
        "raw": without_emails(json.dumps(raw, ensure_ascii=False, sort_keys=True, default=str)),
    }


# --------------------------------------------------------------------------- versions
def stamp(value) -> pd.Timestamp | None:
    """A Label Studio time stamp as a UTC Timestamp (None when absent or unreadable)."""
    if value is None:
        return None
    try:
        return (
            pd.Timestamp(value).tz_convert("UTC")
            if pd.Timestamp(value).tzinfo
            else pd.Timestamp(value, tz="UTC")
        )
    except (ValueError, TypeError):
        return None


def updated_at(ann: dict) -> pd.Timestamp | None:
    """When a Label Studio annotation last changed (its creation when never updated)."""
    return stamp(ann.get("updated_at")) or stamp(ann.get("created_at"))


def annotation_row(
    ann: dict,
    *,
    annotation_id: str,
    project: str,
    article_id: str,
    task_id: int,
    annotator: str | None,
    version: int,
    pulled_at,
    ls_url: str,
    invalid: str | None,
    review_of: str | None = None,
) -> dict:
    """The `annotations` row of a pulled Label Studio annotation. In a review project the
    result is gold: the reviewer's pseudonym moves to `reviewer`."""
    row = {
        "annotation_id": annotation_id,
        "project": project,
        "article_id": article_id,
        "ls_task_id": task_id,
        "ls_annotation_id": int(ann["id"]),
        "annotator": annotator,
        "origin": "human",
        "created_at": stamp(ann.get("created_at")),
        "updated_at": updated_at(ann),
        "lead_time_s": ann.get("lead_time"),
        "cancelled": bool(ann.get("was_cancelled")),
        "version": version,
        "superseded": False,
        "deleted_at": None,
        "pulled_at": pulled_at,
        "ls_url": ls_url,
        "result_sha": result_sha(ann.get("result")),
        "invalid_reason": invalid,
    }
    if review_of is not None:
        row.update(
            annotator=REVIEW_ANNOTATOR, origin=GOLD_ORIGIN, reviewer=annotator, review_of=review_of
        )
    return row


def pulled_version(ann: dict, prev, invalid: str | None) -> int | None:
    """The version a pulled annotation is stored as: 1 when there is no `prev` (the newest stored
    row of the same Label Studio annotation), None when `prev` already holds it (same result,
    validity and skip, not deleted), else prev's version + 1."""
    if prev is None:
        return 1
    sha = result_sha(ann.get("result"))
    stored_sha = prev["result_sha"] if isinstance(prev["result_sha"], str) else None
    same = stored_sha == sha if stored_sha is not None else False
    same = same or (prev["result_sha"] is None and stamp(prev["updated_at"]) == updated_at(ann))
    stored_reason = prev.get("invalid_reason")
    same = same and (stored_reason if isinstance(stored_reason, str) else None) == invalid
    if (
        same
        and pd.isna(prev["deleted_at"])
        and bool(prev["cancelled"]) == bool(ann.get("was_cancelled"))
    ):
        return None
    return int(prev["version"]) + 1
