"""spaCy writer: one `DocBin` per split (`spacy/<split>.spacy`), spans in `doc.spans["sc"]`.

Tokens are those of `spacy.blank(<lang>)` (whose tokenizer cache is warmed first, see
`WarmTokenizer`). A span whose offsets are not token boundaries is aligned with
`char_span(alignment_mode="expand")`; every boundary that moved is counted and reported, and
the exact offsets stay in `doc.user_data["spans"]`. Each `sc` span has `span.id_` = the corpus
span_id. `doc.user_data` holds `article_id`, `spans` (lossless, with `sc`: the index in
`doc.spans["sc"]` or None), `relations` (`head`/`tail` index into `user_data["spans"]`) and
`meta`. A discontinuous span (a quote broken by its cue) is one `sc` Span per fragment, all
with the corpus span_id as `id_`; `user_data["groups"]` maps that id to the indices of its
Spans in `sc` (the shared group), and its lossless entry's `sc` is the list of them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from spanbank.errors import ExportError

SPAN_KEY = "sc"
# a blank pipeline sets nothing else (and docbin_part relies on it)
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
    """`spacy.blank(lang)` with a warmed tokenizer and a lean vocabulary: the same tokens, norms
    and spaces, sooner; one per process."""
    spacy, _ = _spacy()
    from spacy.attrs import LANG, NORM

    nlp = spacy.blank(lang)
    nlp.tokenizer = WarmTokenizer(nlp.tokenizer)
    # A new word's lexeme runs every getter (shape, like_num, is_stop, ...): a fifth of the
    # tokenizing of real news. A DocBin stores only ORTH and SPACY, and its strings need NORM
    # (LANG is the vocab's language).
    getters = nlp.vocab.lex_attr_getters
    nlp.vocab.lex_attr_getters = {k: getters[k] for k in (NORM, LANG) if k in getters}
    return nlp


# Distinct chunks a process tokenizes ahead, and their longest: both bound the memory it keeps.
WARM_CHUNKS = 200_000
WARM_LEN = 40


class WarmTokenizer:
    """spaCy's tokenizer, its cache filled first. spaCy stops caching a text's chunks once it meets
    a special case in that text (`has_special` in tokenizer.pyx), so most chunks of a news text go
    through its affix rules again every time. Each new whitespace-delimited chunk is tokenized on
    its own first, which puts it in the cache spaCy reads for every text: the same Doc, sooner."""

    def __init__(self, tokenizer, limit: int = WARM_CHUNKS):
        self.tokenizer = tokenizer
        if hasattr(tokenizer, "max_cache_size"):  # spaCy >= 3.8 caps its cache (default 10,000)
            tokenizer.max_cache_size = max(tokenizer.max_cache_size, 2 * limit)
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, text: str):
        if len(self.seen) < self.limit:
            new = {c for c in set(text.split()) - self.seen if len(c) <= WARM_LEN}
            for chunk in new:
                self.tokenizer(chunk)
            self.seen |= new
        return self.tokenizer(text)


# DocBin.to_bytes packs one msgpack map in this key order; a split's file is written in that
# order from per-split spool files, so the driver never holds a split's documents.
_SPOOLED = ("tokens", "spaces", "lengths")
_PER_DOC = ("cats", "flags", "span_groups", "user_data")
_FIELDS = _SPOOLED + _PER_DOC


@dataclass
class DocBinPart:
    """What `DocBin.add` would store for a run of documents, already serialised and compressed:
    for each field (`_FIELDS`) one `Deflated` piece of the split's zlib stream, and the strings.
    Small to send back from a worker."""

    n: int
    fields: dict  # field -> Deflated: byte arrays, or msgpack items one per document
    strings: set
    head: bytes = b""  # the file's first entries (`docbin_head`), so the driver needs no spaCy


# zlib's level 4, not its default 6: on PolNeAR's news 2.3 times faster, for files 4% larger
# (on very repetitive text, as synthetic articles are, up to a quarter larger).
ZLIB_LEVEL = 4


@dataclass(frozen=True)
class Deflated:
    """Bytes as one piece of a zlib stream made elsewhere: raw deflate ending on a byte boundary
    (a sync flush, as pigz does), with the length and Adler-32 of what it holds. Pieces made
    apart, on different workers, join into one stream (`ZlibJoin`)."""

    data: bytes
    n: int
    adler: int

    @classmethod
    def of(cls, raw: bytes) -> Deflated:
        z = zlib.compressobj(ZLIB_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        return cls(z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH), len(raw), zlib.adler32(raw))


ADLER_BASE = 65521


def adler32_combine(a1: int, a2: int, n2: int) -> int:
    """Adler-32 of x + y from adler32(x), adler32(y) and len(y) (zlib's adler32_combine)."""
    rem = n2 % ADLER_BASE
    lo1, hi1, lo2, hi2 = a1 & 0xFFFF, a1 >> 16, a2 & 0xFFFF, a2 >> 16
    lo = (lo1 + lo2 - 1) % ADLER_BASE
    hi = (hi1 + hi2 + rem * (lo1 - 1)) % ADLER_BASE
    return lo | hi << 16


class ZlibJoin:
    """One zlib stream (what `zlib.compress` makes, and `DocBin.from_bytes` reads) written from
    `Deflated` pieces in order: the header, the pieces, a final empty block, the Adler-32."""

    def __init__(self, out):
        self.out = out
        self.adler = 1
        out.write(zlib.compress(b"", ZLIB_LEVEL)[:2])  # deflate, 32 KiB window, the level

    def piece(self, p: Deflated) -> None:
        self.out.write(p.data)
        self.adler = adler32_combine(self.adler, p.adler, p.n)

    def put(self, raw: bytes) -> None:
        self.piece(Deflated.of(raw))

    def pieces(self, fh, n: int, adler: int) -> None:
        """Pieces already joined in a file, holding `n` bytes whose Adler-32 is `adler`."""
        shutil.copyfileobj(fh, self.out, 1 << 20)
        self.adler = adler32_combine(self.adler, adler, n)

    def close(self) -> None:
        self.out.write(b"\x03\x00" + struct.pack(">I", self.adler))


def docbin_part(docs) -> DocBinPart:
    """`DocBin(attrs=DOCBIN_ATTRS, store_user_data=True).add(doc)` for each doc, without
    spaCy's per-token Python loop: a blank pipeline's tokens add only their text, norm and ""
    to the strings, so those come from the ORTH and NORM arrays. Compressed here, so the
    workers do the zlib work, not the driver."""
    import numpy as np
    import srsly
    from spacy.attrs import NORM, SPACY
    from spacy.tokens import DocBin

    attrs = DocBin(attrs=DOCBIN_ATTRS).attrs  # ORTH first; SPACY is kept apart
    raw: dict[str, list[bytes]] = {k: [] for k in _FIELDS}
    lengths, hashes = [], []
    strings: set = set()
    for doc in docs:
        array = doc.to_array(attrs)
        if array.ndim == 1:
            array = array.reshape((array.shape[0], 1))
        raw["tokens"].append(array.tobytes("C"))
        raw["spaces"].append(np.asarray(doc.to_array(SPACY), dtype=bool).tobytes("C"))
        lengths.append(len(array))
        if len(array):
            hashes += (array[:, 0], doc.to_array(NORM))
            strings.add("")  # tag_, lemma_, dep_, morph, ent_*: unset in a blank pipeline
        raw["cats"].append(srsly.msgpack_dumps(doc.cats))
        raw["flags"].append(srsly.msgpack_dumps({"has_unknown_spaces": doc.has_unknown_spaces}))
        raw["span_groups"].append(srsly.msgpack_dumps(doc.spans.to_bytes()))
        raw["user_data"].append(srsly.msgpack_dumps(srsly.msgpack_dumps(doc.user_data)))
        for group in doc.spans.values():
            for span in group:
                strings.add(span.label_)
                if span.kb_id in doc.vocab.strings:
                    strings.add(span.kb_id_)
                if span.id in doc.vocab.strings:
                    strings.add(span.id_)
    if hashes:  # looked up once per part: documents share most of their words
        lookup = docs[0].vocab.strings
        strings.update(lookup[int(h)] for h in np.unique(np.concatenate(hashes)))
    raw["lengths"] = [np.asarray(lengths, dtype="int32").tobytes("C")]
    return DocBinPart(
        n=len(lengths),
        fields={k: Deflated.of(b"".join(v)) for k, v in raw.items()},
        strings=strings,
        head=docbin_head(),
    )


def docbin_head() -> bytes:
    """The map header and the `version` and `attrs` entries a DocBin's file starts with."""
    import srsly
    from spacy.tokens import DocBin

    empty = DocBin(attrs=DOCBIN_ATTRS, store_user_data=True)
    return (
        _map_header(10)
        + srsly.msgpack_dumps("version")
        + srsly.msgpack_dumps(empty.version)
        + srsly.msgpack_dumps("attrs")
        + srsly.msgpack_dumps(empty.attrs)
    )


@dataclass(frozen=True)
class SpacyEncoder:
    """A chunk's DocBin content and notes (pure: a worker can run it; `SpacyWriter.put` spools it)."""

    lang: str = "en"

    def __call__(self, split: str, docs: list[dict]):
        nlp = _blank(self.lang)
        notes = {"spacy_boundaries_moved": 0, "spacy_spans_unaligned": 0}
        built = []
        for d in docs:
            doc, n = to_doc(nlp, d)
            notes["spacy_boundaries_moved"] += n["moved"]
            notes["spacy_spans_unaligned"] += n["unaligned"]
            built.append(doc)
        with _encoders_looked_up_once():
            return docbin_part(built), notes


class _SplitSpool:
    """One split's DocBin fields on disk, appended part by part as compressed pieces; `write`
    joins them into the zlib stream of what `DocBin.to_disk` would write (the same bytes once
    decompressed), compressing only the few headers and the strings itself."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files = {k: open(folder / k, "wb") for k in _FIELDS}  # noqa: SIM115
        self.sums = {k: (0, 1) for k in _FIELDS}  # each file's (length, Adler-32) uncompressed
        self.strings: set = set()
        self.n = 0
        self.head = b""

    def fits(self, part: DocBinPart) -> bool:
        """Whether the part still fits in this file: `FILE_BYTES` of fields, uncompressed."""
        held = sum(n for n, _ in self.sums.values())
        return held + sum(p.n for p in part.fields.values()) <= FILE_BYTES

    def add(self, part: DocBinPart) -> None:
        for k, p in part.fields.items():
            self.files[k].write(p.data)
            n, adler = self.sums[k]
            self.sums[k] = (n + p.n, adler32_combine(adler, p.adler, p.n))
        self.strings |= part.strings
        self.n += part.n
        self.head = part.head

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()

    def write(self, path: Path) -> None:
        import srsly

        self.close()
        with open(path, "wb") as out, _encoders_looked_up_once():
            z = ZlibJoin(out)
            z.put(self.head or docbin_head())  # spaCy's import only for a split with no part
            for k in _SPOOLED:
                z.put(srsly.msgpack_dumps(k) + _bin_header(self.sums[k][0]))
                self._copy(k, z)
            z.put(srsly.msgpack_dumps("strings") + _array_header(len(self.strings)))
            ordered = sorted(self.strings)
            for i in range(0, len(ordered), 10_000):
                run = ordered[i : i + 10_000]  # packed as an array, then without its header
                z.put(srsly.msgpack_dumps(run)[len(_array_header(len(run))) :])
            for k in _PER_DOC:
                z.put(srsly.msgpack_dumps(k) + _array_header(self.n))
                self._copy(k, z)
            z.close()

    def _copy(self, name: str, z: ZlibJoin) -> None:
        """The field's pieces as they are, already compressed; their sums were kept by `add`."""
        with open(self.folder / name, "rb") as fh:
            z.pieces(fh, *self.sums[name])


def _map_header(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    return b"\xdc" + struct.pack(">H", n) if n < 1 << 16 else b"\xdd" + struct.pack(">I", n)


def _bin_header(n: int) -> bytes:
    if n < 1 << 8:
        return b"\xc4" + struct.pack(">B", n)
    return b"\xc5" + struct.pack(">H", n) if n < 1 << 16 else b"\xc6" + struct.pack(">I", n)


# The most bytes of DocBin fields, uncompressed, one `.spacy` file holds. Under msgpack's 4 GiB
# `bin` (one field's ceiling), and what spaCy can load: `DocBin.from_disk` peaked at 5.4 GB
# for a file of 2.5 GB uncompressed (measured, docs/SCALE.md).
FILE_BYTES = 1 << 31


class SpacyWriter:
    """Spools each split's DocBin fields to disk and writes `spacy/<split>.spacy` at close: once
    decompressed, byte for byte what one DocBin holding the split would write (the compressed
    bytes differ: the workers compress their parts apart); memory holds only the strings.
    A split bigger than `FILE_BYTES` is written as a folder, `spacy/<split>/0000.spacy`, ...,
    cut between chunks; `spacy train` (its `Corpus` reader) reads a folder's files in name
    order."""

    name = "spacy"

    def __init__(
        self, root: Path, splits: list[str], labels: list[str], schema=None, lang: str = "en"
    ):
        if importlib.util.find_spec("spacy") is None:  # not imported: workers encode (0.7 s)
            _spacy()  # its error
        self.dir = Path(root) / "spacy"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.encoder = SpacyEncoder(lang)
        self._spool = Path(tempfile.mkdtemp(prefix=".spool-", dir=root))
        self.splits: dict[str, list[_SplitSpool]] = {s: [] for s in splits}
        for s in splits:
            self._shard(s)
        self.notes = {"spacy_boundaries_moved": 0, "spacy_spans_unaligned": 0}

    def _shard(self, split: str) -> _SplitSpool:
        folder = self._spool / split / f"{len(self.splits[split]):04d}"
        folder.mkdir(parents=True)
        self.splits[split].append(_SplitSpool(folder))
        return self.splits[split][-1]

    def write(self, split: str, docs: list[dict]) -> None:
        self.put(split, self.encoder(split, docs))

    def put(self, split: str, payload) -> None:
        part, notes = payload
        spool = self.splits[split][-1]
        if spool.n and not spool.fits(part):
            spool.close()
            spool = self._shard(split)
        if not spool.fits(part):
            raise ExportError(
                f"spacy: a chunk of {part.n} documents holds more than one .spacy file does "
                f"({FILE_BYTES:,} bytes uncompressed); export with a smaller --chunk-size"
            )
        spool.add(part)
        for k, v in notes.items():
            self.notes[k] += v

    def close(self) -> dict:
        for split, shards in self.splits.items():
            if len(shards) == 1:
                shards[0].write(self.dir / f"{split}.spacy")
                continue
            (self.dir / split).mkdir()
            for i, spool in enumerate(shards):
                spool.write(self.dir / split / f"{i:04d}.spacy")
        self.abort()
        return dict(self.notes)

    def abort(self) -> None:
        for shards in self.splits.values():
            for spool in shards:
                spool.close()
        self.splits = {}
        shutil.rmtree(self._spool, ignore_errors=True)
