"""Pure brat standoff parsing: `.ann` lines -> span, relation and reject rows in our schema."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from spanbank.errors import OffsetError
from spanbank.offsets import tolerant
from spanbank.schema import Schema

FRAGMENT_KEY = "_fragment_of"
IDS_FILE = (
    "article_ids.json"  # beside an export's split folders: file stems that are not ids -> ids
)
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_STEM_BYTES = 200  # a file name holds 255 bytes; room for `.txt` / `_<annotator>.ann`


def file_stem(article_id: str) -> str:
    """The file name (without suffix) of an article in a brat folder: the id, percent-encoded when it
    is not a safe name (`.`, `/`, spaces...), shortened with a hash when too long for a file name."""
    stem = article_id if _SAFE.match(article_id) else quote(article_id, safe="").replace(".", "%2E")
    if len(stem.encode()) > MAX_STEM_BYTES:
        stem = (
            f"{stem[: MAX_STEM_BYTES - 40]}~{hashlib.sha256(article_id.encode()).hexdigest()[:32]}"
        )
    return stem


def article_id_of(stem: str) -> str:
    """The article id a brat file stem names: decoded when it is what `file_stem` writes for it."""
    if "%" not in stem:
        return stem
    try:
        decoded = unquote(stem, errors="strict")
    except UnicodeDecodeError:
        return stem
    return decoded if file_stem(decoded) == stem else stem


@dataclass
class BratResult:
    spans: list[dict] = field(default_factory=list)
    relations: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    ignored: int = 0


def _reject(out: BratResult, span_id: str | None, reason: str, line: str) -> None:
    out.rejects.append({"span_id": span_id, "reason": reason, "raw": json.dumps({"line": line})})


def parse_ann(ann: str, text: str, schema: Schema) -> BratResult:
    """Parse a brat `.ann` file against its article text.

    Discontinuous `T` spans become one span per fragment (`T1`, `T1:2`, ...), the later ones
    marked with `_fragment_of`; relations attach to the first fragment. Every fragment is
    checked against the text; anything that does not fit goes to `rejects` with a reason.
    """
    out = BratResult()
    labels: dict[str, str] = {}  # brat id -> our label, for stored spans only
    pending_rel: list[tuple[str, str, str, str, str]] = []  # (rel_type, arg1, arg2, line, rid)
    pending_attr: list[tuple[str, str, str | None, str]] = []
    spans_by_id: dict[str, dict] = {}
    fragments: dict[
        str, list[dict]
    ] = {}  # brat id -> its later fragments: an A line finds them by id
    # only "\n" ends an .ann line: splitlines() would also split span text at U+2028, NEL, ...
    for lineno, line in enumerate(ann.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip() or line.startswith("#"):
            continue
        kind = line[0]
        parts = line.split("\t")
        ident = parts[0]
        try:
            if len(parts) < 2 and kind not in "#*":
                raise ValueError("expected a tab between the id and the annotation")
            if kind == "T":
                if len(parts) < 3:
                    raise ValueError("a T line needs id, type and offsets, and text")
                type_, _, offs = parts[1].partition(" ")
                frags = [tuple(int(x) for x in f.split()) for f in offs.split(";")]
                if not frags or any(len(f) != 2 for f in frags):
                    raise ValueError(f"bad offsets {offs!r}")
                if schema.ignores_import_label("brat", type_):
                    out.ignored += 1
                    continue
                label = schema.map_import_label("brat", type_)
                if label is None:
                    _reject(
                        out,
                        ident,
                        f"line {lineno}: label {type_!r} is not in schema {schema.ident} and has no import mapping",
                        line,
                    )
                    continue
                claimed = parts[2]
                _check_fragments(text, frags, claimed)
                labels[ident] = label
                for k, (s, e) in enumerate(frags):
                    sid = ident if k == 0 else f"{ident}:{k + 1}"
                    attrs = {FRAGMENT_KEY: ident} if k else {}
                    row = {
                        "span_id": sid,
                        "label": label,
                        "start": s,
                        "end": e,
                        "text": text[s:e],
                        "attributes": attrs,
                    }
                    out.spans.append(row)
                    if k == 0:
                        spans_by_id[ident] = row
                    else:
                        fragments.setdefault(ident, []).append(row)
            elif kind == "R":
                rel_type, *args = parts[1].split()
                roles = dict(a.split(":", 1) for a in args if ":" in a)
                if "Arg1" not in roles or "Arg2" not in roles:
                    raise ValueError("an R line needs Arg1 and Arg2")
                pending_rel.append((rel_type, roles["Arg1"], roles["Arg2"], line, ident))
            elif kind == "E":
                trigger, *args = parts[1].split()
                roles = [a.split(":", 1) for a in args]
                if any(len(r) != 2 for r in roles) or ":" not in trigger:
                    raise ValueError(f"bad event arguments {parts[1]!r}")
                for role, arg in roles:
                    rel = schema.map_import_role("brat", role.rstrip("0123456789"))
                    if rel is None:
                        continue
                    source_label = schema.relations[rel].source
                    # the head (e.g. the quote) is an argument, or the trigger itself (`Quote:T3 Source:T1`)
                    heads = [
                        a
                        for r, a in [trigger.split(":", 1), *roles]
                        if schema.map_import_label("brat", r.rstrip("0123456789")) == source_label
                    ]
                    for head in heads:
                        pending_rel.append((rel, head, arg, line, ident))
            elif kind == "A" or kind == "M":
                fields = parts[1].split()
                if len(fields) < 2:
                    raise ValueError("an A line needs a name and a target")
                pending_attr.append(
                    (fields[0], fields[1], fields[2] if len(fields) > 2 else None, line)
                )
            elif kind in "N#*":
                continue  # normalisations, notes and equivalences carry nothing we store
            else:
                raise ValueError(f"unknown annotation kind {kind!r}")
        except (ValueError, OffsetError) as exc:
            _reject(out, ident if kind == "T" else None, f"line {lineno}: {exc}", line)
    for rel_type, a1, a2, line, rid in pending_rel:
        rel = schema.map_import_role("brat", rel_type)
        if rel is None:
            _reject(
                out, None, f"{rid}: relation {rel_type!r} is not in schema {schema.ident}", line
            )
            continue
        if a1 not in labels or a2 not in labels:
            missing = a1 if a1 not in labels else a2
            _reject(
                out, None, f"{rid}: relation {rel} points to {missing}, which was not stored", line
            )
            continue
        if schema.check_relation(rel, labels[a1], labels[a2]) is None:
            out.relations.append({"from_span_id": a1, "to_span_id": a2, "label": rel})
        elif schema.check_relation(rel, labels[a2], labels[a1]) is None:
            out.relations.append({"from_span_id": a2, "to_span_id": a1, "label": rel})
        else:
            _reject(out, None, f"{rid}: {schema.check_relation(rel, labels[a1], labels[a2])}", line)
    for name, target, value, line in pending_attr:
        span = spans_by_id.get(target)
        if span is None:
            _reject(out, target, f"attribute {name} on {target}, which was not stored", line)
            continue
        key = name.lower()
        problem = schema.check_span(span["label"], {key: value})
        if problem:
            _reject(out, target, f"attribute {name}: {problem}", line)
            continue
        span["attributes"][key] = value
        for frag in fragments.get(target, ()):
            frag["attributes"][key] = value
    return out


def _check_fragments(text: str, frags: list[tuple[int, int]], claimed: str) -> None:
    for s, e in frags:
        if not 0 <= s < e <= len(text):
            raise OffsetError(f"offsets {s} {e} lie outside the text (length {len(text)})")
    actual = " ".join(text[s:e] for s, e in frags)
    if actual != claimed and tolerant(actual) != tolerant(claimed):
        shown = actual if len(actual) <= 40 else actual[:37] + "..."
        raise OffsetError(f"offsets cover {shown!r}, not the span text {claimed[:40]!r}")
