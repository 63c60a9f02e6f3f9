"""Pure brat standoff parsing: `.ann` lines -> span, relation and reject rows in our schema."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from spanbank.errors import OffsetError
from spanbank.offsets import tolerant
from spanbank.schema import Schema
from spanbank.spans import span_fields, where_differ

IDS_FILE = (
    "article_ids.json"  # beside an export's split folders: file stems that are not ids -> ids
)
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_STEM_BYTES = 200  # a file name holds 255 bytes; room for `.txt` / `_<annotator>.ann`


def file_stem(article_id: str) -> str:
    """The file name (without suffix) of an article in a brat folder: the id, percent-encoded when it
    is not a safe name (`.`, `/`, spaces...), shortened with a hash when too long for a file name.

    No two ids get one stem: a safe id starts with a letter or digit and holds no `%` or `~`;
    an encoded one starts with `%`, `-` or `_`, or holds a `%`, and never a `~` (`~` is
    encoded as `%7E`); only a shortened stem holds a `~`, before its 32 hex of sha256."""
    stem = article_id if _SAFE.match(article_id) else _encoded(article_id)
    if len(stem.encode()) > MAX_STEM_BYTES:
        stem = (
            f"{stem[: MAX_STEM_BYTES - 40]}~{hashlib.sha256(article_id.encode()).hexdigest()[:32]}"
        )
    return stem


def _encoded(article_id: str) -> str:
    return quote(article_id, safe="").replace(".", "%2E").replace("~", "%7E")


def article_id_of(stem: str) -> str:
    """The article id a brat file stem names: decoded when it is what `file_stem` writes for it,
    or what it wrote before `~` was encoded (a `~` kept as it is, in an export made then)."""
    if "%" not in stem:
        return stem
    try:
        decoded = unquote(stem, errors="strict")
    except UnicodeDecodeError:
        return stem
    legacy = quote(decoded, safe="").replace(".", "%2E")
    return decoded if stem in (file_stem(decoded), legacy) else stem


@dataclass
class BratResult:
    spans: list[dict] = field(default_factory=list)
    relations: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    ignored: int = 0
    ignored_labels: Counter = field(default_factory=Counter)  # marker label -> T lines skipped
    recovered: int = 0  # T lines whose text a raw newline had cut, rebuilt from the offsets


@dataclass
class _Event:
    ident: str
    trigger: tuple[str, str]  # (role, brat id)
    roles: list[tuple[str, str]]
    line: str


@dataclass
class _Parse:
    """What one `.ann` file's lines have given so far; relations and attributes resolve at the end."""

    text: str
    schema: Schema
    out: BratResult = field(default_factory=BratResult)
    labels: dict[str, str] = field(default_factory=dict)  # brat id -> our label (stored spans)
    spans_by_id: dict[str, dict] = field(default_factory=dict)
    relations: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    events: list[_Event] = field(default_factory=list)
    attrs: list[tuple[str, str, str | None, str]] = field(default_factory=list)


def _reject(out: BratResult, span_id: str | None, reason: str, line: str) -> None:
    out.rejects.append({"span_id": span_id, "reason": reason, "raw": json.dumps({"line": line})})


def parse_ann(ann: str, text: str, schema: Schema) -> BratResult:
    """Parse a brat `.ann` file against its article text.

    A discontinuous `T` span (`T3 Content 7 16;26 42`) is one span with `fragments`; relations
    point at it. Every fragment is checked against the text; a span text a raw newline cut is
    rebuilt from the offsets; anything that does not fit goes to `rejects` with a reason.
    """
    p = _Parse(text, schema)
    # only "\n" ends an .ann line: splitlines() would also split span text at U+2028, NEL, ...
    lines = [line.removesuffix("\r") for line in ann.split("\n")]
    i = 0
    while i < len(lines):
        i = _parse_line(p, lines, i)
    for rel_type, a1, a2, line, rid in p.relations:
        _resolve_relation(p, rel_type, a1, a2, line, rid)
    for event in p.events:
        _resolve_event(p, event)
    for name, target, value, line in p.attrs:
        _resolve_attribute(p, name, target, value, line)
    return p.out


def _parse_line(p: _Parse, lines: list[str], i: int) -> int:
    """Read the line at `i` (and the lines a cut span text continues on); the next line's index."""
    line, lineno = lines[i], i + 1
    if not line.strip() or line.startswith("#"):
        return i + 1
    kind, parts = line[0], line.split("\t")
    try:
        if len(parts) < 2 and kind not in "#*":
            raise ValueError("expected a tab between the id and the annotation")
        if kind == "T":
            return _t_line(p, lines, i, parts)
        if kind == "R":
            _r_line(p, parts, line)
        elif kind == "E":
            _e_line(p, parts, line)
        elif kind in "AM":
            _a_line(p, parts, line)
        elif kind not in "N#*":  # normalisations, notes and equivalences carry nothing we store
            raise ValueError(f"unknown annotation kind {kind!r}")
    except (ValueError, OffsetError) as exc:
        _reject(p.out, parts[0] if kind == "T" else None, f"line {lineno}: {exc}", line)
    return i + 1


def _offsets(offs: str) -> list[tuple[int, int]]:
    """`7 16;26 42` -> [(7, 16), (26, 42)]; ValueError when malformed."""
    frags = [tuple(int(x) for x in f.split()) for f in offs.split(";")]
    if not frags or any(len(f) != 2 for f in frags):
        raise ValueError(f"bad offsets {offs!r}")
    return frags


def _t_line(p: _Parse, lines: list[str], i: int, parts: list[str]) -> int:
    """Store a text-bound annotation as one span (fragments and all); the next line's index."""
    ident, line = parts[0], lines[i]
    if len(parts) < 3:
        raise ValueError("a T line needs id, type and offsets, and text")
    type_, _, offs = parts[1].partition(" ")
    frags = _offsets(offs)
    claimed, nxt = _recover_cut(p, "\t".join(parts[2:]), frags, lines, i)
    if ident in p.spans_by_id:  # relations name spans by id: a second one would be ambiguous
        _reject(p.out, ident, f"line {i + 1}: id {ident} is taken by an earlier span", line)
        return nxt
    if p.schema.ignores_import_label("brat", type_):
        p.out.ignored += 1
        p.out.ignored_labels[type_] += 1
        return nxt
    label = p.schema.map_import_label("brat", type_)
    if label is None:
        reason = f"label {type_!r} is not in schema {p.schema.ident} and has no import mapping"
        _reject(p.out, ident, f"line {i + 1}: {reason}", line)
        return nxt
    try:
        _check_fragments(p.text, frags, claimed)
        fields = span_fields(p.text, frags)
    except OffsetError as exc:
        _reject(p.out, ident, f"line {i + 1}: {exc}", line)
        return nxt
    p.labels[ident] = label
    row = {"span_id": ident, "label": label, **fields, "attributes": {}}
    p.out.spans.append(row)
    p.spans_by_id[ident] = row
    return nxt


def _recover_cut(
    p: _Parse, claimed: str, frags: list[tuple[int, int]], lines: list[str], i: int
) -> tuple[str, int]:
    """The span text and next line index, joining the lines a raw newline in the text cut off.

    Only when the offsets are valid and their text starts with what the line holds: the
    continuation lines must then spell the rest of it exactly.
    """
    if not all(0 <= s < e <= len(p.text) for s, e in frags):
        return claimed, i + 1
    expected = " ".join(p.text[s:e] for s, e in frags)
    if "\n" not in expected or not expected.startswith(claimed + "\n"):
        return claimed, i + 1
    j = i + 1
    while j < len(lines) and expected.startswith(claimed + "\n" + lines[j]):
        claimed += "\n" + lines[j]
        j += 1
        if claimed == expected:
            p.out.recovered += 1
            return claimed, j
    return lines[i].split("\t", 2)[2], i + 1


def _r_line(p: _Parse, parts: list[str], line: str) -> None:
    rel_type, *args = parts[1].split()
    roles = dict(a.split(":", 1) for a in args if ":" in a)
    if "Arg1" not in roles or "Arg2" not in roles:
        raise ValueError("an R line needs Arg1 and Arg2")
    p.relations.append((rel_type, roles["Arg1"], roles["Arg2"], line, parts[0]))


def _e_line(p: _Parse, parts: list[str], line: str) -> None:
    trigger, *args = parts[1].split()
    roles = [a.split(":", 1) for a in args]
    if any(len(r) != 2 for r in roles) or ":" not in trigger:
        raise ValueError(f"bad event arguments {parts[1]!r}")
    role, tid = trigger.split(":", 1)
    p.events.append(_Event(parts[0], (role, tid), [(r, a) for r, a in roles], line))


def _a_line(p: _Parse, parts: list[str], line: str) -> None:
    fields = parts[1].split()
    if len(fields) < 2:
        raise ValueError("an A line needs a name and a target")
    p.attrs.append((fields[0], fields[1], fields[2] if len(fields) > 2 else None, line))


def _role_label(schema: Schema, role: str) -> str | None:
    """Our label an event role names (`Content2` -> QUOTE), if any."""
    return schema.map_import_label("brat", role.rstrip("0123456789"))


def _resolve_event(p: _Parse, ev: _Event) -> None:
    """An E line's relations, from its head (the quote) to each argument a role maps to.

    A role pointing at a span of another label (Content and Source swapped) rejects the line:
    guessing which one is right would invent an attribution.
    """
    every = [ev.trigger, *ev.roles]
    for role, arg in every:
        want = _role_label(p.schema, role)
        if want and arg in p.labels and p.labels[arg] != want:
            reason = f"{ev.ident}: role {role} points at {arg}, a {p.labels[arg]} span, not a {want}: roles swapped"
            _reject(p.out, None, reason, ev.line)
            return
    for role, arg in ev.roles:
        rel = p.schema.map_import_role("brat", role.rstrip("0123456789"))
        if rel is None:
            continue
        head_label = p.schema.relations[rel].source
        for head in [a for r, a in every if _role_label(p.schema, r) == head_label]:
            _add_relation(p, rel, head, arg, ev.line, ev.ident)


def _resolve_relation(p: _Parse, rel_type: str, a1: str, a2: str, line: str, rid: str) -> None:
    """An R line's relation; its arguments may come in either order (Arg1/Arg2 carry no role)."""
    rel = p.schema.map_import_role("brat", rel_type)
    if rel is None:
        _reject(
            p.out, None, f"{rid}: relation {rel_type!r} is not in schema {p.schema.ident}", line
        )
    elif (
        a1 in p.labels
        and a2 in p.labels
        and p.schema.check_relation(rel, p.labels[a1], p.labels[a2])
        and p.schema.check_relation(rel, p.labels[a2], p.labels[a1]) is None
    ):
        _add_relation(p, rel, a2, a1, line, rid)
    else:
        _add_relation(p, rel, a1, a2, line, rid)


def _add_relation(p: _Parse, rel: str, head: str, arg: str, line: str, rid: str) -> None:
    """Store head -> arg as `rel` when both spans were stored and their labels fit."""
    if head not in p.labels or arg not in p.labels:
        missing = head if head not in p.labels else arg
        _reject(
            p.out, None, f"{rid}: relation {rel} points to {missing}, which was not stored", line
        )
        return
    problem = p.schema.check_relation(rel, p.labels[head], p.labels[arg])
    if problem:
        _reject(p.out, None, f"{rid}: {problem}", line)
        return
    p.out.relations.append({"from_span_id": head, "to_span_id": arg, "label": rel})


def _resolve_attribute(p: _Parse, name: str, target: str, value: str | None, line: str) -> None:
    span = p.spans_by_id.get(target)
    if span is None:
        _reject(p.out, target, f"attribute {name} on {target}, which was not stored", line)
        return
    key = _attribute_key(p.schema, span["label"], name)
    problem = p.schema.check_span(span["label"], {key: value})
    if problem:
        _reject(p.out, target, f"attribute {name}: {problem}", line)
        return
    span["attributes"][key] = value


def _attribute_key(schema: Schema, label: str, name: str) -> str:
    """Our attribute for a brat one: `Type` -> `type`; `type_QUOTE` (what our export writes
    when labels share a name) -> `type` on a QUOTE."""
    key = name.lower()
    attrs = schema.labels[label].attributes if label in schema.labels else {}
    suffix = f"_{label.lower()}"
    if key not in attrs and key.endswith(suffix) and key.removesuffix(suffix) in attrs:
        return key.removesuffix(suffix)
    return key


def _check_fragments(text: str, frags: list[tuple[int, int]], claimed: str) -> None:
    """Each fragment lies in the text, and together (joined by a space, as brat writes them) they
    spell the line's span text, up to what line ends and whitespace runs change."""
    for s, e in frags:
        if not 0 <= s < e <= len(text):
            raise OffsetError(f"offsets {s} {e} lie outside the text (length {len(text)})")
    actual = " ".join(text[s:e] for s, e in frags)
    if actual == claimed or tolerant(actual) == tolerant(claimed):
        return
    pos = 0
    for k, (s, e) in enumerate(frags, 1):
        part, said = text[s:e], claimed[pos : pos + e - s]
        if part != said and tolerant(part) != tolerant(said):
            which = f"fragment {k} ({s} {e})" if len(frags) > 1 else "offsets"
            raise OffsetError(f"{which} {where_differ(part, said, 'not the span text')}")
        pos += e - s + 1
    raise OffsetError(f"offsets {where_differ(actual, claimed, 'not the span text')}")
