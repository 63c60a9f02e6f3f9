"""The spaCy writer streams each split to disk; its files must be byte for byte what spaCy's own
`DocBin.add` + `to_disk` write for the same documents."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

spacy = pytest.importorskip("spacy")
from spacy.tokens import DocBin  # noqa: E402

from spanbank.export.spacy import DOCBIN_ATTRS, SpacyWriter, _blank, to_doc  # noqa: E402

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
    nlp = _blank("en")
    db = DocBin(attrs=DOCBIN_ATTRS, store_user_data=True)
    for d in docs:
        db.add(to_doc(nlp, d)[0])
    return db.to_bytes()


def test_streamed_splits_are_spacys_own_bytes(tmp_path):
    docs = [_doc(i, t) for i, t in enumerate(_texts())]
    train, test = docs[:4] + docs[5:], [docs[4]]
    w = SpacyWriter(tmp_path, ["train", "test", "dev"], ["QUOTE", "SPEAKER", "CUE"])
    w.write("train", train[:2])  # one split arrives in several parts, as chunks do
    w.write("test", test)
    w.write("train", train[2:])
    notes = w.close()
    assert (tmp_path / "spacy" / "train.spacy").read_bytes() == _reference(train)
    assert (tmp_path / "spacy" / "test.spacy").read_bytes() == _reference(test)
    assert (tmp_path / "spacy" / "dev.spacy").read_bytes() == _reference([])  # an empty split
    assert notes["spacy_boundaries_moved"] >= 1  # the span cutting a token was expanded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spacy"]  # the spool is gone

    loaded = list(
        DocBin().from_disk(tmp_path / "spacy" / "train.spacy").get_docs(_blank("en").vocab)
    )
    assert [d.text for d in loaded] == [d["text"] for d in train]
    assert loaded[0].user_data["article_id"] == "a0"


def test_abort_leaves_no_spool(tmp_path):
    w = SpacyWriter(tmp_path, ["train"], ["QUOTE"])
    w.write("train", [_doc(0, "He said it was fine, and that was that.")])
    w.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spacy"]
    assert not any((tmp_path / "spacy").iterdir())
