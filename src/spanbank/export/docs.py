"""Corpus rows -> export documents, every span re-checked against its article text.

A document is a plain dict, the one shape every format writer reads:

    {"article_id": str, "text": str,
     "spans": [{"span_id", "start", "end", "label", "text", "attributes": dict,
                "fragments": [[start, end], ...]}, ...],
     "relations": [{"head": int, "tail": int, "label": str}, ...],
     "meta": {"title", "source", "url", "published_at", "language",
              "annotation_id", "annotator", "origin", "group",
              "extra": {column: value} of the article's other columns (e.g. from --metadata)}}

Offsets are code points, end-exclusive (`text[start:end] == span["text"]` for a contiguous
span). `fragments` lists a span's parts: one for a contiguous span; for a discontinuous one
(a quote broken by its cue) two or more, `start`/`end` being the outer bounds and `text`
the parts' texts joined by " … " (see `spanbank.spans`). Spans are
sorted by (start, -end, label, span_id); a relation's `head`/`tail` are indices into that
list (`head` is the relation's source, e.g. the QUOTE of `said_by`).
"""

from __future__ import annotations

import bisect
import re
import secrets
from collections.abc import Iterable

import pandas as pd

from spanbank import pseudonyms
from spanbank.errors import ExportError, OffsetError
from spanbank.offsets import check_span
from spanbank.schema import parse_attributes
from spanbank.spans import check_fragments, fragment_list, joined_text
from spanbank.tokens import TOKEN_PATTERN

META_COLUMNS = ("title", "source", "url", "published_at", "language")
_NOT_EXTRA = frozenset({"article_id", "text", "group", *META_COLUMNS})
MAX_NAMED = 10
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # an annotator named by e-mail


def exported_annotator(annotator, key: bytes) -> str | None:
    """The annotator as exported: an e-mail (a corpus from before pull stored pseudonyms only)
    becomes the pseudonym brat ingest gives it, keyed with `key` (an unkeyed hash was reversed
    from a list of candidate addresses); any other name as it is."""
    if _missing(annotator):
        return None
    name = str(annotator)
    return pseudonyms.pseudonym(key, "brat", name) if EMAIL.fullmatch(name) else name


def exported_annotation_id(annotation_id, annotator, key: bytes) -> str | None:
    """The annotation id as exported: an e-mail annotator's address in it (brat ingest once made
    `import-ARTICLE-EMAIL-HASH`) replaced by that annotator's pseudonym; an id that merely holds
    an "@" (`press@v2.1`) kept."""
    if _missing(annotation_id):
        return None
    text, name = str(annotation_id), None if _missing(annotator) else str(annotator)
    if name and EMAIL.fullmatch(name) and name in text:
        text = text.replace(name, exported_annotator(name, key))
    return text


def _plain(value):
    """A metadata value as JSON-friendly data (timestamps as ISO 8601, missing as None)."""
    if _missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def _sort_key(span: dict) -> tuple:
    return (span["start"], -span["end"], span["label"], span["span_id"])


def build_documents(
    articles: Iterable[dict],
    annotations: dict[str, dict],
    spans,
    relations,
    labels: Iterable[str] | None = None,
    known_labels: Iterable[str] | None = None,
    key: bytes | None = None,
) -> tuple[list[dict], dict]:
    """Build export documents for a chunk of articles.

    `articles`: dicts with `article_id`, `text` and optional META_COLUMNS / `group`;
    `annotations`: article_id -> the selected annotation row (dict) of that article;
    `spans`/`relations`: rows of those annotations (DataFrame, Arrow table or list of
    dicts), columns as the corpus tables.
    `labels` keeps only these labels (relations touching a dropped span are counted as
    dropped); `known_labels` is the schema's labels: a span of another label fails.

    `key`: the corpus's pseudonym key, for e-mails left in old annotations (None: a new one).

    Returns (documents, notes) where notes counts `relations_dropped` (by the label filter).
    Raises ExportError naming every misaligned or unknown-label span of the chunk.
    """
    keep = set(labels) if labels is not None else None
    known = set(known_labels) if known_labels is not None else None
    key = key or secrets.token_bytes(32)
    by_ann_spans = _group(spans, "annotation_id")
    by_ann_rels = _group(relations, "annotation_id")
    problems: list[str] = []
    docs: list[dict] = []
    dropped = 0
    for art in articles:
        aid = art["article_id"]
        text = art["text"]
        ann = annotations.get(aid)
        ann_id = ann.get("annotation_id") if ann else None
        doc_spans: list[dict] = []
        by_id: dict[str, dict] = {}
        for row in by_ann_spans.get(ann_id, ()):
            if not _missing(row.get("article_id")) and row["article_id"] != aid:
                problems.append(
                    f"{aid}/{row['span_id']}: span belongs to article {row['article_id']}"
                )
                continue
            label = row["label"]
            if keep is not None and label not in keep:
                by_id[row["span_id"]] = None  # filtered out, not missing
                continue
            if known is not None and label not in known:
                problems.append(f"{aid}/{row['span_id']}: label {label!r} is not in the schema")
                continue
            try:
                parts = _checked_parts(text, row)
            except (OffsetError, TypeError, ValueError) as exc:
                problems.append(f"{aid}/{row['span_id']} ({label}): {exc}")
                continue
            span = {
                "span_id": str(row["span_id"]),
                "start": parts[0][0],
                "end": parts[-1][1],
                "label": str(label),
                "text": joined_text(text, parts),
                "attributes": parse_attributes(row.get("attributes")),
                "fragments": [[s, e] for s, e in parts],
            }
            doc_spans.append(span)
            by_id[span["span_id"]] = span
        doc_spans.sort(key=_sort_key)
        index = {s["span_id"]: i for i, s in enumerate(doc_spans)}
        doc_rels = []
        for row in by_ann_rels.get(ann_id, ()):
            src, dst = str(row["from_span_id"]), str(row["to_span_id"])
            if src not in by_id or dst not in by_id:
                gone = src if src not in by_id else dst
                problems.append(
                    f"{aid}: relation {row['label']} points to span {gone}, which is not in the annotation"
                )
                continue
            if by_id[src] is None or by_id[dst] is None:
                dropped += 1
                continue
            doc_rels.append({"head": index[src], "tail": index[dst], "label": str(row["label"])})
        doc_rels.sort(key=lambda r: (r["head"], r["tail"], r["label"]))
        meta = {k: _plain(art.get(k)) for k in META_COLUMNS if k in art}
        extra = {k: _plain(v) for k, v in art.items() if k not in _NOT_EXTRA}
        if extra:
            meta["extra"] = extra
        if ann:
            meta["annotation_id"] = exported_annotation_id(ann_id, ann.get("annotator"), key)
            meta["annotator"] = exported_annotator(ann.get("annotator"), key)
            meta["origin"] = _plain(ann.get("origin"))
        if "group" in art:
            meta["group"] = _plain(art["group"])
        docs.append(
            Document(article_id=aid, text=text, spans=doc_spans, relations=doc_rels, meta=meta)
        )
    if problems:
        named = "; ".join(problems[:MAX_NAMED])
        more = f" (and {len(problems) - MAX_NAMED} more)" if len(problems) > MAX_NAMED else ""
        raise ExportError(
            f"{len(problems)} span(s) do not match their article text or schema, export stopped: {named}{more}"
        )
    return docs, {"relations_dropped": dropped}


def _checked_parts(text: str, row: dict) -> list[tuple[int, int]]:
    """A span row's (start, end) parts, each checked against the text; OffsetError if not."""
    parts = fragment_list(row["start"], row["end"], row.get("fragments"))
    claimed = None if _missing(row.get("text")) else row.get("text")
    if len(parts) == 1:
        check_span(text, *parts[0], claimed)
        return parts
    problem = check_fragments(parts, len(text))
    if problem is None and (int(row["start"]), int(row["end"])) != (parts[0][0], parts[-1][1]):
        problem = f"outer bounds {row['start']} {row['end']} are not its fragments' bounds"
    if problem:
        raise OffsetError(problem)
    for s, e in parts:
        check_span(text, s, e)
    if claimed is not None and claimed != joined_text(text, parts):
        raise OffsetError(f"its fragments cover {joined_text(text, parts)!r}, not {claimed!r}")
    return parts


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _group(rows, key: str) -> dict[str, list[dict]]:
    """Rows (DataFrame, Arrow table or list of dicts) grouped by `key`, in their order."""
    if rows is None:
        return {}
    if isinstance(rows, pd.DataFrame):
        rows = rows.to_dict("records")
    elif hasattr(rows, "to_pylist"):
        rows = rows.to_pylist()
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row[key], []).append(row)
    return out


# --------------------------------------------------------------------------- tokens and BIO

TOKEN_RE = re.compile(TOKEN_PATTERN)  # the tokens of spanbank.tokens, cut again at span boundaries


class Document(dict):
    """An export document: a plain dict to every writer, which keeps its tokens and BIO layers
    once a writer asks for them (conll and hf both write them; they cost as much as either's
    own encoding)."""

    __slots__ = ("_tagged",)


def tagged(doc: dict, labels: list[str]) -> tuple[list[int], list[int], list[str], dict, dict]:
    """A document's tokens (starts, ends, texts), its BIO layers for `labels` and their notes
    (see `tokenize`, `bio_layers`). A `Document` keeps them for the next writer: do not change
    them."""
    key = tuple(labels)
    kept = getattr(doc, "_tagged", None)
    if kept is not None and kept[0] == key:
        return kept[1]
    text = doc["text"]
    starts, ends = tokenize(text, doc["spans"])
    layers, notes = bio_layers(starts, ends, doc["spans"], labels)
    got = (starts, ends, [text[s:e] for s, e in zip(starts, ends, strict=True)], layers, notes)
    if isinstance(doc, Document):
        doc._tagged = (key, got)
    return got


def tokenize(text: str, spans: list[dict]) -> tuple[list[int], list[int]]:
    """Token (starts, ends): regex words/punctuation, cut again at every span boundary.

    Cutting at span boundaries means a span's tokens cover exactly its non-space characters,
    so BIO tags made from these tokens decode back to the span (up to outer whitespace).
    """
    cuts = sorted({b for s in spans for f in _parts(s) for b in f})
    starts: list[int] = []
    ends: list[int] = []
    ci = 0
    for m in TOKEN_RE.finditer(text):
        s, e = m.span()
        while ci < len(cuts) and cuts[ci] <= s:
            ci += 1
        j = ci
        while j < len(cuts) and cuts[j] < e:
            starts.append(s)
            ends.append(cuts[j])
            s = cuts[j]
            j += 1
        starts.append(s)
        ends.append(e)
    return starts, ends


def bio_layers(
    starts: list[int], ends: list[int], spans: list[dict], labels: list[str]
) -> tuple[dict[str, list[int]], dict[str, int]]:
    """One BIO layer per label: tag ids 0=O, 1=B, 2=I over the tokens (starts, ends).

    A span that overlaps an earlier span of the same label cannot be held by one BIO layer;
    it is left out of the layer and counted (`conflicts`). `moved` counts span boundaries
    that differ from the token boundaries (outer whitespace); `untaggable` spans cover no token.
    """
    n = len(starts)
    layers = {lab: [0] * n for lab in labels}
    notes = {"conflicts": 0, "moved": 0, "untaggable": 0}
    for sp in spans:
        tags = layers.get(sp["label"])
        if tags is None:
            continue
        # tokens fully inside each part: starts are sorted and tokens never straddle a boundary
        runs = [
            (bisect.bisect_left(starts, s), bisect.bisect_left(starts, e), s, e)
            for s, e in _parts(sp)
        ]
        runs = [r for r in runs if r[0] < r[1]]
        if not runs:
            notes["untaggable"] += 1
            continue
        if any(tags[k] for i, j, _, _ in runs for k in range(i, j)):
            notes["conflicts"] += 1
            continue
        for i, j, s, e in runs:  # each fragment its own B-I run
            tags[i] = 1
            for k in range(i + 1, j):
                tags[k] = 2
            notes["moved"] += (starts[i] != s) + (ends[j - 1] != e)
    return layers, notes


def _parts(span: dict) -> list[tuple[int, int]]:
    """A document span's parts (its `fragments`, or its start/end)."""
    return fragment_list(span["start"], span["end"], span.get("fragments"))


def layer_names(label: str) -> list[str]:
    return ["O", f"B-{label}", f"I-{label}"]
