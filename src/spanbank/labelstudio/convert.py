"""Pure conversion: articles -> Label Studio tasks (+ predictions); LS annotations -> span/relation/reject rows."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from spanbank.errors import OffsetError
from spanbank.offsets import resolve_span
from spanbank.schema import (
    LS_LABELS_NAME,
    LS_TEXT_NAME,
    Schema,
    attribute_control_name,
    attributes_json,
)

NO_REPAIR = "none"


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
    for i, s in enumerate(spans):
        rid = str(s["span_id"]) if _present(s.get("span_id")) else f"p{i}"
        start, end = int(s["start"]), int(s["end"])
        if schema is not None and s["label"] not in schema.labels:
            continue
        value = {"start": start, "end": end, "text": text[start:end]}
        result.append(
            {
                "id": rid,
                "from_name": LS_LABELS_NAME,
                "to_name": LS_TEXT_NAME,
                "type": "labels",
                "value": {**value, "labels": [s["label"]]},
            }
        )
        known.add(rid)
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
            result.append(
                {
                    "from_id": a,
                    "to_id": b,
                    "type": "relation",
                    "direction": "right",
                    "labels": [r["label"]] if _present(r.get("label")) else [],
                }
            )
    return result


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
        span, reason = _span(item, rid, text, schema, annotation_id, article_id)
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
                attrs.setdefault(rid, {})[target[1]] = values[0]
        if reason is not None:
            out.rejects.append(_reject(annotation_id, rid, reason, item))
    for rid, span in regions.items():
        a = attrs.get(rid)
        span["attributes"] = attributes_json(a)
        out.spans.append(span)
    seen_rel = set()
    for item in rels:
        row, reason = _relation(item, regions, schema, annotation_id)
        if row is None:
            key = f"{item.get('from_id')}->{item.get('to_id')}"
            out.rejects.append(_reject(annotation_id, key, reason, item))
            continue
        key = (row["from_span_id"], row["to_span_id"], row["label"])
        if key not in seen_rel:
            seen_rel.add(key)
            out.relations.append(row)
    return out


def _span(item: dict, rid, text: str, schema: Schema, annotation_id: str, article_id: str):
    if rid is None:
        return None, "region without an id"
    value = item.get("value")
    if not isinstance(value, dict):
        return None, "region value is not an object"
    labels = value.get("labels")
    if not isinstance(labels, list) or not labels or not isinstance(labels[0], str):
        return None, "region has no label"
    label = labels[0]
    if label not in schema.labels:
        return None, f"label {label!r} is not in schema {schema.ident}"
    start, end, claimed = value.get("start"), value.get("end"), value.get("text")
    if claimed is not None and not isinstance(claimed, str):
        return None, "region text is not a string"
    try:
        fix = resolve_span(text, start, end, claimed)
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
    }, None


def _relation(item: dict, regions: dict, schema: Schema, annotation_id: str):
    a, b = item.get("from_id"), item.get("to_id")
    if a is None or b is None:
        return None, "relation without from_id/to_id"
    a, b = str(a), str(b)
    if item.get("direction") == "left":
        a, b = b, a
    for end in (a, b):
        if end not in regions:
            return None, f"relation refers to missing or rejected region {end!r}"
    la, lb = regions[a]["label"], regions[b]["label"]
    labels = item.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        return None, f"relation labels must be a list of names, got {labels!r}"
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
    return {
        "annotation_id": annotation_id,
        "span_id": span_id,
        "reason": reason,
        "raw": json.dumps(raw, ensure_ascii=False, sort_keys=True, default=str),
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
