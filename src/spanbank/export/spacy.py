"""spaCy writer: one `DocBin` per split (`spacy/<split>.spacy`), spans in `doc.spans["sc"]`.

Tokens come from `spacy.blank(<lang>)`. A span whose offsets are not token boundaries is
aligned with `char_span(alignment_mode="expand")`; every boundary that moved is counted
and reported, and the exact offsets stay in `doc.user_data["spans"]`. Each `sc` span has
`span.id_` = the corpus span_id. `doc.user_data` holds `article_id`, `spans` (lossless,
with `sc`: the index in `doc.spans["sc"]` or None), `relations` (`head`/`tail` index
into `user_data["spans"]`) and `meta`. A discontinuous span (a quote broken by its cue)
is one `sc` Span per fragment, all with the corpus span_id as `id_`; `user_data["groups"]`
maps that id to the indices of its Spans in `sc` (the shared group), and its lossless entry's
`sc` is the list of them.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

from spanbank.errors import ExportError

SPAN_KEY = "sc"
# a blank pipeline sets nothing else; fewer attributes keep the DocBin (held until close) small
DOCBIN_ATTRS = ["ORTH", "SPACY"]


@contextlib.contextmanager
def _encoders_looked_up_once():
    """Let srsly look up its msgpack encoders once instead of on every msgpack call.

    srsly builds a Packer per `msgpack_dumps`, and each Packer scans the installed packages'
    entry points for encoders; DocBin.add packs 2-3 times per doc, so that scan was a third
    of the export time. The encoders are the same objects, so the bytes are the same.
    """
    try:
        from srsly.msgpack import msgpack_encoders
    except ImportError:  # another srsly layout: just run unoptimised
        yield
        return
    encoders = msgpack_encoders.get_all()
    msgpack_encoders.get_all = lambda: encoders
    try:
        yield
    finally:
        del msgpack_encoders.get_all  # back to the class's method


def _spacy():
    try:
        import spacy
        from spacy.tokens import DocBin
    except ImportError:
        raise ExportError("the spacy format needs spaCy: pip install 'spanbank[spacy]'") from None
    return spacy, DocBin


def to_doc(nlp, doc_data: dict) -> tuple[object, dict]:
    """One export document -> (spaCy Doc, notes with `moved` boundaries and `unaligned` spans)."""
    doc = nlp.make_doc(doc_data["text"])
    group = []
    moved = unaligned = 0
    lossless = []
    groups: dict[str, list[int]] = {}
    for sp in doc_data["spans"]:
        indices = []
        for s, e in sp.get("fragments") or [[sp["start"], sp["end"]]]:
            cs, n_moved = _char_span(doc, s, e, sp)
            moved += n_moved
            if cs is None:
                unaligned += 1  # e.g. whitespace only: kept in user_data, reported, not in `sc`
                continue
            indices.append(len(group))
            group.append(cs)
        if len(sp.get("fragments") or ()) > 1:
            groups[sp["span_id"]] = indices
            index = indices
        else:
            index = indices[0] if indices else None
        lossless.append({**sp, SPAN_KEY: index})
    doc.spans[SPAN_KEY] = group
    doc.user_data["article_id"] = doc_data["article_id"]
    doc.user_data["spans"] = lossless
    doc.user_data["groups"] = groups
    doc.user_data["relations"] = doc_data["relations"]
    doc.user_data["meta"] = doc_data["meta"]
    return doc, {"moved": moved, "unaligned": unaligned}


def _char_span(doc, s: int, e: int, sp: dict):
    """The spaCy Span of [s, e) (expanded to tokens when it cuts one) and how many ends moved."""
    cs = doc.char_span(s, e, label=sp["label"], span_id=sp["span_id"])
    if cs is None:
        cs = doc.char_span(s, e, label=sp["label"], span_id=sp["span_id"], alignment_mode="expand")
        if cs is not None and len(cs):
            return cs, (cs.start_char != s) + (cs.end_char != e)
    return (cs if cs is not None and len(cs) else None), 0


@functools.lru_cache(maxsize=4)
def _blank(lang: str):
    spacy, _ = _spacy()
    return spacy.blank(lang)


class _Bin:
    """A chunk's DocBin that keeps its user data through pickling to a worker and back
    (spaCy's own pickle of a DocBin comes back with store_user_data off)."""

    def __init__(self, db):
        self.db = db

    def __reduce__(self):
        return _bin_from_bytes, (self.db.to_bytes(),)


def _bin_from_bytes(data: bytes) -> _Bin:
    _, DocBin = _spacy()
    return _Bin(DocBin(attrs=DOCBIN_ATTRS, store_user_data=True).from_bytes(data))


@dataclass(frozen=True)
class SpacyEncoder:
    """A chunk's DocBin and notes (pure: a worker can run it; `SpacyWriter.put` merges it)."""

    lang: str = "en"

    def __call__(self, split: str, docs: list[dict]):
        _, DocBin = _spacy()
        nlp = _blank(self.lang)
        db = DocBin(attrs=DOCBIN_ATTRS, store_user_data=True)
        notes = {"spacy_boundaries_moved": 0, "spacy_spans_unaligned": 0}
        with _encoders_looked_up_once():
            for d in docs:
                doc, n = to_doc(nlp, d)
                notes["spacy_boundaries_moved"] += n["moved"]
                notes["spacy_spans_unaligned"] += n["unaligned"]
                db.add(doc)
        return _Bin(db), notes


class SpacyWriter:
    """Adds documents to one DocBin per split; DocBin keeps compact token arrays, not Docs."""

    name = "spacy"

    def __init__(
        self, root: Path, splits: list[str], labels: list[str], schema=None, lang: str = "en"
    ):
        _, DocBin = _spacy()
        self.dir = Path(root) / "spacy"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.encoder = SpacyEncoder(lang)
        self.bins = {s: DocBin(attrs=DOCBIN_ATTRS, store_user_data=True) for s in splits}
        self.notes = {"spacy_boundaries_moved": 0, "spacy_spans_unaligned": 0}

    def write(self, split: str, docs: list[dict]) -> None:
        self.put(split, self.encoder(split, docs))

    def put(self, split: str, payload) -> None:
        chunk, notes = payload
        self.bins[split].merge(
            chunk.db
        )  # extends its lists: the same bytes as adding the docs here
        for k, v in notes.items():
            self.notes[k] += v

    def close(self) -> dict:
        with _encoders_looked_up_once():
            for split, db in self.bins.items():
                db.to_disk(self.dir / f"{split}.spacy")
        self.bins = {}
        return dict(self.notes)

    def abort(self) -> None:
        self.bins = {}
