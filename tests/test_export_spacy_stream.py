"""The spaCy writer streams each split to disk from pieces compressed apart; its files must hold,
byte for byte once decompressed, what spaCy's own `DocBin.add` + `to_disk` write for the same
documents, and be one valid zlib stream (its Adler-32 checked by zlib)."""

from __future__ import annotations

import io
import os
import random
import zlib
from pathlib import Path

import pytest

spacy = pytest.importorskip("spacy")
from spacy.attrs import (  # noqa: E402
    IS_ALPHA,
    IS_PUNCT,
    LIKE_NUM,
    LIKE_URL,
    LOWER,
    NORM,
    ORTH,
    PREFIX,
    SHAPE,
    SPACY,
    SUFFIX,
)
from spacy.tokens import DocBin  # noqa: E402

from spanbank.export.spacy import (  # noqa: E402
    DOCBIN_ATTRS,
    WARM_LEN,
    Deflated,
    SpacyWriter,
    WarmTokenizer,
    ZlibJoin,
    _blank,
    adler32_combine,
    to_doc,
)

SEED = Path(__file__).resolve().parents[1] / "seeds" / "000_2e13a8ea3bc18025.txt"


def _doc(i: int, text: str) -> dict:
    """An export document with a few spans: a token-aligned one, one cutting a token, a
    whitespace-only one (unaligned) and a quote in two fragments."""
    spans = []
    n = len(text)
    if n > 20:
        spans = [
            {"span_id": f"s{i}a", "label": "QUOTE", "start": 0, "end": 5},
            {"span_id": f"s{i}b", "label": "SPEAKER", "start": 3, "end": min(n, 17)},
            {
                "span_id": f"s{i}c",
                "label": "QUOTE",
                "start": 0,
                "end": n,
                "fragments": [[0, n // 3], [n // 2, n]],
            },
        ]
        ws = text.find("  ")
        if ws >= 0:
            spans.append({"span_id": f"s{i}d", "label": "CUE", "start": ws, "end": ws + 2})
    return {
        "article_id": f"a{i}",
        "text": text,
        "spans": spans,
        "relations": [{"label": "said_by", "head": 0, "tail": 1}] if spans else [],
        "meta": {"language": "en", "n": i},
    }


def _texts() -> list[str]:
    rng = random.Random(7)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyzé") for _ in range(8)) for _ in range(70_000)
    ]
    return [
        SEED.read_text(encoding="utf-8"),
        "",
        "   ",
        "He said: “We won't stop — Dr. Zoë Müller’s plan isn't gonna work” 📈.  Ok.",
        "Kremlin spokesperson Dmitry Peskov told reporters in Łódź that talks would go on.",
        " ".join(words),  # more than 65,535 strings and tokens: the 32-bit msgpack headers
    ]


def _reference(docs: list[dict]) -> bytes:
    nlp = spacy.blank("en")  # spaCy's own tokenizer, not the export's warmed one
    db = DocBin(attrs=DOCBIN_ATTRS, store_user_data=True)
    for d in docs:
        db.add(to_doc(nlp, d)[0])
    return db.to_bytes()


def test_streamed_splits_decompress_to_spacys_own_bytes(tmp_path):
    docs = [_doc(i, t) for i, t in enumerate(_texts())]
    train, test = docs[:4] + docs[5:], [docs[4]]
    w = SpacyWriter(tmp_path, ["train", "test", "dev"], ["QUOTE", "SPEAKER", "CUE"])
    w.write("train", train[:2])  # one split arrives in several parts, as chunks do
    w.write("test", test)
    w.write("train", train[2:])
    notes = w.close()
    for split, want in (("train", train), ("test", test), ("dev", [])):  # dev: an empty split
        got = (tmp_path / "spacy" / f"{split}.spacy").read_bytes()
        assert zlib.decompress(got) == zlib.decompress(_reference(want)), split
    assert notes["spacy_boundaries_moved"] >= 1  # the span cutting a token was expanded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spacy"]  # the spool is gone

    loaded = list(
        DocBin().from_disk(tmp_path / "spacy" / "train.spacy").get_docs(_blank("en").vocab)
    )
    assert [d.text for d in loaded] == [d["text"] for d in train]
    assert loaded[0].user_data["article_id"] == "a0"


def test_pieces_compressed_apart_join_into_one_zlib_stream():
    """Adler-32 sums combine as zlib's own over the whole (at and around its 65,521 modulus),
    and pieces made separately decompress, checksum checked, to their concatenation."""
    rng = random.Random(3)
    for n1, n2 in [(0, 0), (1, 0), (0, 1), (7, 65_521), (65_522, 3), (1 << 20, 65_520)]:
        a, b = rng.randbytes(n1), bytes(rng.choice(b"ab") for _ in range(n2))
        assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)
    pieces = [b"", b"he said " * 5000, os.urandom(70_000), b"x"]
    sink = io.BytesIO()
    z = ZlibJoin(sink)
    for p in pieces:
        z.piece(Deflated.of(p))
    z.close()
    assert zlib.decompress(sink.getvalue()) == b"".join(pieces)
    broken = bytearray(sink.getvalue())
    broken[-1] ^= 1  # a wrong sum is refused, so the test above checks the combined sum
    with pytest.raises(zlib.error):
        zlib.decompress(bytes(broken))


def test_abort_leaves_no_spool(tmp_path):
    w = SpacyWriter(tmp_path, ["train"], ["QUOTE"])
    w.write("train", [_doc(0, "He said it was fine, and that was that.")])
    w.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spacy"]
    assert not any((tmp_path / "spacy").iterdir())


TRICKY = [
    "Don't stop: we'll see, y'all. I'm SURE they can't — DON'T.",
    "The U.S. and the U.K. met at 3 p.m. on Jan. 5, e.g. in Washington, D.C.!",
    "See https://example.com/a?b=c&d=e or mail press@example.org :) :-( <3 o.O",
    "Prices rose 3.5% to $1,000.50 (well-known, so-called “fair”) 📈📉 ...",
    "Tabs\tand\nnewlines\u00a0and  double  spaces; 'quoted' \"things\" [brackets] {braces}",
    "don't Don't DON'T dont do n't can't cannot won't gonna wanna 'cause 's 'S",
    "Mr. Smith's dog isn't Dr. Müller's; it's Ms. Łódź-Żółw’s.",
]


def _attrs(doc):
    cols = [ORTH, NORM, SPACY, LOWER, SHAPE, PREFIX, SUFFIX, IS_ALPHA, IS_PUNCT, LIKE_NUM, LIKE_URL]
    return [t.text_with_ws for t in doc], doc.to_array(cols).tolist()


@pytest.mark.parametrize("lang", ["en", "de"])
def test_warm_tokenizer_makes_spacys_own_docs(lang):
    """Whatever order texts come in, and whichever chunks were cached from earlier texts, the
    warmed tokenizer's Doc is the one a fresh `spacy.blank(lang)` makes."""
    texts = TRICKY + _texts()[:5] + [" ".join(reversed(t.split())) for t in TRICKY]
    plain = spacy.blank(lang)
    want = {t: _attrs(plain.make_doc(t)) for t in texts}
    warm = spacy.blank(lang)
    warm.tokenizer = WarmTokenizer(warm.tokenizer)
    rng = random.Random(3)
    for _ in range(3):
        order = texts[:]
        rng.shuffle(order)
        for t in order:
            assert _attrs(warm.make_doc(t)) == want[t], t[:60]
    assert "Don't" in warm.tokenizer.seen  # it did warm up


def test_warm_tokenizer_keeps_a_bounded_set_of_short_chunks():
    nlp = spacy.blank("en")
    warm = WarmTokenizer(nlp.tokenizer, limit=5)
    long_chunk = "x" * (WARM_LEN + 1)
    for t in TRICKY + [long_chunk + " and more"]:
        warm(t)
    assert long_chunk not in warm.seen
    assert all(len(c) <= WARM_LEN for c in warm.seen)
    # it stops at the first text that takes it past the limit
    assert 5 <= len(warm.seen) <= 5 + len(set(TRICKY[0].split()))


@pytest.mark.parametrize("lang", ["en", "de"])
def test_export_pipeline_gives_the_tokens_norms_and_spaces_of_spacys_own(lang):
    """The export's pipeline skips the lexeme attributes a DocBin does not store; what it does
    store (ORTH, SPACY, and NORM for its strings) is spaCy's own."""
    plain, lean = spacy.blank(lang), _blank(lang)
    for t in TRICKY + _texts()[:5]:
        want = plain.make_doc(t)
        got = lean.make_doc(t)
        assert (
            got.to_array([ORTH, NORM, SPACY]).tolist()
            == want.to_array([ORTH, NORM, SPACY]).tolist()
        )
        assert [tok.norm_ for tok in got] == [tok.norm_ for tok in want]


def test_a_split_past_one_files_size_is_a_folder_of_files_spacy_reads(tmp_path, monkeypatch):
    """With the file size lowered, the train split is cut between parts into files of at most
    that many bytes of fields, each spaCy's own bytes for its documents; spaCy's `Corpus` reads
    the folder back in order. A split that fits stays one file."""
    from spacy.training import Corpus

    import spanbank.export.spacy as sx

    nlp = _blank("en")
    texts = [f"Minister {i} said the plan {'was fine ' * (i % 5)}and left." for i in range(12)]
    docs = [_doc(i, t) for i, t in enumerate(texts)]
    parts = [docs[0:2], docs[2:5], docs[5:6], docs[6:9], docs[9:12]]
    # a part's size: its fields uncompressed, i.e. its documents' share of spaCy's own DocBin
    sizes = [sum(f.n for f in sx.SpacyEncoder()("train", p)[0].fields.values()) for p in parts]
    monkeypatch.setattr(sx, "FILE_BYTES", sizes[0] + sizes[1])
    w = SpacyWriter(tmp_path, ["train", "test"], ["QUOTE", "SPEAKER", "CUE"])
    for p in parts:
        w.write("train", p)
    w.write("test", docs[:1])
    w.close()

    want, shard, used = [], [], 0  # a file closes before the part that would not fit
    for p, n in zip(parts, sizes, strict=True):
        if used + n > sx.FILE_BYTES:
            want.append(shard)
            shard, used = [], 0
        shard, used = shard + p, used + n
    want.append(shard)
    assert len(want) >= 3
    files = sorted((tmp_path / "spacy" / "train").iterdir())
    assert [f.name for f in files] == [f"{i:04d}.spacy" for i in range(len(want))]
    for f, shard_docs in zip(files, want, strict=True):
        assert zlib.decompress(f.read_bytes()) == zlib.decompress(_reference(shard_docs)), f
    assert (tmp_path / "spacy" / "test.spacy").is_file()
    read = [eg.reference for eg in Corpus(tmp_path / "spacy" / "train")(nlp)]
    assert [d.text for d in read] == texts
    assert [d.user_data["article_id"] for d in read] == [d["article_id"] for d in docs]


def test_a_part_past_one_files_size_is_refused_in_one_line(tmp_path, monkeypatch):
    import spanbank.export.spacy as sx
    from spanbank.errors import ExportError

    first = [_doc(0, "It was fine.")]
    monkeypatch.setattr(
        sx, "FILE_BYTES", sum(f.n for f in sx.SpacyEncoder()("train", first)[0].fields.values())
    )
    w = SpacyWriter(tmp_path, ["train"], ["QUOTE"])
    w.write("train", first)  # fills a file exactly
    with pytest.raises(ExportError, match=r"^spacy: a chunk of 2 documents .*--chunk-size$"):
        w.write("train", [_doc(1, "He said so."), _doc(2, "She said it was not fine at all.")])
    w.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spacy"]
