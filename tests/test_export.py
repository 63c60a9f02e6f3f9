"""Export: every format loaded by its real consumer and compared with the corpus; splits, manifest, atomicity."""

from __future__ import annotations

import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from spanbank.corpus.store import Corpus
from spanbank.corpus.tables import TABLES
from spanbank.errors import ExportError
from spanbank.export import export_dataset, parse_formats, verify
from spanbank.export.conll import read_conll
from spanbank.export.docs import bio_layers, build_documents, tokenize
from spanbank.export.jsonl import read_jsonl
from spanbank.export.manifest import checksums
from spanbank.export.split import assign_splits, parse_split
from spanbank.schema import attributes_json

ALL = ["jsonl", "spacy", "hf", "conll", "brat", "quotes"]
T0 = pd.Timestamp("2024-05-01T12:00:00Z")

# (text, [(key, label, surface, occurrence, attrs)], [(from_key, to_key, label)])
ARTICLES = {
    "a1": (
        'Smith said: "We will win." The mayor disagreed.',
        [
            ("s1", "SPEAKER", "Smith", 0, None),
            ("c1", "CUE", "said", 0, None),
            ("q1", "QUOTE", '"We will win."', 0, {"type": "direct"}),
            ("s2", "SPEAKER", "We", 0, None),  # nested inside the quote
            ("e1", "EVENT", "disagreed", 0, {"type": "statement"}),
        ],
        [("q1", "s1", "said_by"), ("q1", "c1", "cue")],
    ),
    "a2": (
        "Der Bürgermeister 🎉 sagte:\nAlles wird gut, sagte er.",
        [
            ("s1", "SPEAKER", "Der Bürgermeister", 0, None),
            ("c1", "CUE", "sagte", 0, None),
            ("q1", "QUOTE", "Alles wird gut", 0, {"type": "indirect"}),
            ("q2", "QUOTE", "🎉 sagte:\nAlles", 0, {"type": "mixed"}),
        ],  # crosses a line end
        [("q1", "s1", "said_by"), ("q1", "c1", "cue")],
    ),
}
for i in range(3, 31):
    ARTICLES[f"a{i:02d}"] = (
        f"Report {i}. Officials said that item {i} was ready.",
        [
            ("s1", "SPEAKER", "Officials", 0, None),
            ("c1", "CUE", "said", 0, None),
            ("q1", "QUOTE", f"that item {i} was ready", 0, {"type": "indirect"}),
        ],
        [("q1", "s1", "said_by"), ("q1", "c1", "cue")],
    )


def _find(text: str, surface: str, occurrence: int) -> int:
    pos = -1
    for _ in range(occurrence + 1):
        pos = text.index(surface, pos + 1)
    return pos


def _rows(table: str, rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for col in TABLES[table].names:
        if col not in df:
            df[col] = None
    return df


def build_corpus(path: Path, articles=ARTICLES, extra_spans=()) -> Corpus:
    corpus = Corpus.init(path)
    arts, anns, spans, rels = [], [], [], []
    for n, (aid, (text, sps, rs)) in enumerate(articles.items()):
        ann_id = f"ann-{aid}"
        arts.append(
            {
                "article_id": aid,
                "text": text,
                "title": text[:20],
                "source": f"outlet{n % 6}",
                "language": "en",
                "origin": "test",
                "published_at": T0,
            }
        )
        anns.append(
            {
                "annotation_id": ann_id,
                "project": "news",
                "article_id": aid,
                "annotator": "alice",
                "origin": "human",
                "cancelled": False,
                "superseded": False,
                "version": 1,
                "created_at": T0,
                "updated_at": T0 + pd.Timedelta(minutes=n),
            }
        )
        for key, label, surface, occ, attrs in sps:
            s = _find(text, surface, occ)
            spans.append(
                {
                    "annotation_id": ann_id,
                    "span_id": f"{aid}-{key}",
                    "article_id": aid,
                    "label": label,
                    "start": s,
                    "end": s + len(surface),
                    "text": surface,
                    "attributes": attributes_json(attrs),
                }
            )
        for src, dst, label in rs:
            rels.append(
                {
                    "annotation_id": ann_id,
                    "from_span_id": f"{aid}-{src}",
                    "to_span_id": f"{aid}-{dst}",
                    "label": label,
                }
            )
    spans += list(extra_spans)
    with corpus.writer() as w:
        w.append("articles", _rows("articles", arts))
        w.append("annotations", _rows("annotations", anns))
        w.append("spans", _rows("spans", spans))
        w.append("relations", _rows("relations", rels))
        w.append(
            "annotators",
            _rows(
                "annotators",
                [{"annotator": "alice", "ls_user_id": 7, "email": "alice@example.org"}],
            ),
        )
    return corpus


def given(corpus: Corpus) -> pd.DataFrame:
    """Stand-in for spanbank.gold.select_annotations: the one human annotation per article."""
    return corpus.latest_annotations()


def run(corpus, out, formats=ALL, **kw):
    kw.setdefault("annotations", given(corpus))
    return export_dataset(corpus, formats, out, **kw)


def corpus_spans(corpus) -> dict[str, list[tuple]]:
    sp = corpus.read("spans")
    out: dict[str, list[tuple]] = {}
    for r in sp.itertuples():
        out.setdefault(r.article_id, []).append(
            (r.span_id, r.label, int(r.start), int(r.end), r.text)
        )
    return {k: sorted(v, key=lambda t: (t[2], -t[3], t[1], t[0])) for k, v in out.items()}


def corpus_relations(corpus) -> dict[str, set]:
    rel = corpus.read("relations")
    out: dict[str, set] = {}
    for r in rel.itertuples():
        out.setdefault(r.annotation_id[4:], set()).add((r.from_span_id, r.to_span_id, r.label))
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    corpus = build_corpus(root / "corpus")
    summary = run(corpus, root / "out", group_by="source", seed=6)  # seed 6: three non-empty splits
    return corpus, root / "out", summary


def all_docs(out: Path) -> dict[str, dict]:
    docs = {}
    for f in sorted((out / "jsonl").glob("*.jsonl")):
        for d in read_jsonl(f):
            d["_split"] = f.stem
            docs[d["article_id"]] = d
    return docs


# --------------------------------------------------------------------------- formats


def test_jsonl_is_lossless(exported):
    corpus, out, summary = exported
    docs = all_docs(out)
    assert set(docs) == set(ARTICLES)
    want = corpus_spans(corpus)
    rels = corpus_relations(corpus)
    for aid, d in docs.items():
        got = [(s["span_id"], s["label"], s["start"], s["end"], s["text"]) for s in d["spans"]]
        assert got == want[aid]
        for s in d["spans"]:
            assert d["text"][s["start"] : s["end"]] == s["text"]
        ids = [s["span_id"] for s in d["spans"]]
        assert {(ids[r["head"]], ids[r["tail"]], r["label"]) for r in d["relations"]} == rels[aid]
        assert d["meta"]["annotator"] == "alice"
    assert docs["a1"]["spans"][2]["attributes"] == {"type": "direct"}
    assert summary["articles"] == len(ARTICLES)


def test_spacy_docbin_loads_with_nested_spans(exported):
    import spacy
    from spacy.tokens import DocBin

    corpus, out, summary = exported
    nlp = spacy.blank("en")
    want = corpus_spans(corpus)
    seen = set()
    for f in sorted((out / "spacy").glob("*.spacy")):
        for doc in DocBin().from_disk(f).get_docs(nlp.vocab):
            aid = doc.user_data["article_id"]
            seen.add(aid)
            got = sorted(
                ((s.id_, s.label_, s.start_char, s.end_char, s.text) for s in doc.spans["sc"]),
                key=lambda t: (t[2], -t[3], t[1], t[0]),
            )
            assert got == want[aid]
            assert len(doc.user_data["relations"]) == len(corpus_relations(corpus)[aid])
    assert seen == set(ARTICLES)
    assert summary["notes"]["spacy_boundaries_moved"] == 0
    assert summary["notes"]["spacy_spans_unaligned"] == 0
    # the nested SPEAKER "We" sits inside the QUOTE in the same span group
    doc = next(
        d
        for f in (out / "spacy").glob("*.spacy")
        for d in DocBin().from_disk(f).get_docs(nlp.vocab)
        if d.user_data["article_id"] == "a1"
    )
    labels = {s.text: s.label_ for s in doc.spans["sc"]}
    assert labels["We"] == "SPEAKER" and labels['"We will win."'] == "QUOTE"


def test_spacy_split_past_one_file_is_a_folder_and_a_chunk_past_it_is_refused(
    tmp_path, monkeypatch
):
    """A split bigger than one `.spacy` file (lowered here from 2 GiB) is written as a folder
    spaCy's `Corpus` reads, listed in the manifest; a single chunk past it fails in one line
    and leaves nothing."""
    import spacy
    from spacy.training import Corpus

    import spanbank.export.spacy as sx

    corpus = build_corpus(tmp_path / "c")
    monkeypatch.setattr(sx, "FILE_BYTES", 4_000)  # a few articles a file
    run(corpus, tmp_path / "o", ["jsonl", "spacy"], seed=3, chunk_size=2)
    out = tmp_path / "o"
    assert verify(out) == []
    shards = sorted((out / "spacy" / "train").glob("*.spacy"))
    assert len(shards) > 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert {f"spacy/train/{f.name}" for f in shards} <= set(manifest["files"])
    nlp = spacy.blank("en")
    read = [eg.reference.user_data["article_id"] for eg in Corpus(out / "spacy" / "train")(nlp)]
    want = [d["article_id"] for d in read_jsonl(out / "jsonl" / "train.jsonl") if d["text"]]
    assert read == want

    monkeypatch.setattr(sx, "FILE_BYTES", 8)
    with pytest.raises(ExportError, match=r"^spacy: a chunk of \d+ documents .*--chunk-size$"):
        run(corpus, tmp_path / "o2", ["jsonl", "spacy"], seed=3, chunk_size=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "o"]


def test_spacy_counts_moved_boundaries(tmp_path):
    import spacy
    from spacy.tokens import DocBin

    extra = [
        {
            "annotation_id": "ann-a1",
            "span_id": "a1-x",
            "article_id": "a1",
            "label": "SPEAKER",
            "start": 1,
            "end": 4,
            "text": "mit",
            "attributes": None,
        }
    ]
    corpus = build_corpus(tmp_path / "c", extra_spans=extra)
    summary = run(corpus, tmp_path / "o", ["spacy", "jsonl"], split="train=1")
    assert summary["notes"]["spacy_boundaries_moved"] == 2
    docs = list(
        DocBin().from_disk(tmp_path / "o/spacy/train.spacy").get_docs(spacy.blank("en").vocab)
    )
    a1 = next(d for d in docs if d.user_data["article_id"] == "a1")
    moved = next(s for s in a1.spans["sc"] if s.id_ == "a1-x")
    assert moved.text == "Smith"  # expanded to the token
    lossless = next(s for s in a1.user_data["spans"] if s["span_id"] == "a1-x")
    assert (lossless["start"], lossless["end"], lossless["text"]) == (1, 4, "mit")
    assert (
        json.loads((tmp_path / "o/manifest.json").read_text())["notes"]["spacy_boundaries_moved"]
        == 2
    )


def test_hf_load_from_disk(exported):
    import datasets

    corpus, out, summary = exported
    dd = datasets.load_from_disk(str(out / "hf"))
    assert set(dd) == {"train", "dev", "test"}
    assert sum(len(dd[s]) for s in dd) == len(ARTICLES)
    assert dd["train"].features["ner_tags_QUOTE"].feature.names == ["O", "B-QUOTE", "I-QUOTE"]
    want = corpus_spans(corpus)
    for split in dd:
        for row in dd[split]:
            aid = row["article_id"]
            got = [
                (s["span_id"], s["label"], s["start"], s["end"], s["text"]) for s in row["spans"]
            ]
            assert got == want[aid]
            # each BIO layer decodes back to that label's spans (tokens are cut at span boundaries)
            for lab in ("SPEAKER", "QUOTE", "CUE", "EVENT"):
                decoded = _decode_bio(
                    row["ner_tags_" + lab],
                    row["token_starts"],
                    row["token_ends"],
                    {0: "O", 1: "B", 2: "I"},
                )
                assert decoded == [(s[2], s[3]) for s in _one_layer(want[aid], lab)]
            pq_rows = pd.read_parquet(out / "hf" / "parquet" / f"{split}.parquet")
            assert aid in set(pq_rows["article_id"])
    a1 = next(r for s in dd for r in dd[s] if r["article_id"] == "a1")
    toks = a1["tokens"]
    we = toks.index("We")
    assert a1["ner_tags_SPEAKER"][we] == 1 and a1["ner_tags_QUOTE"][we] == 2  # nested survives
    # a2's two QUOTEs overlap: one BIO layer holds one of them; the other is counted, and kept in `spans`
    assert summary["notes"]["hf_bio_conflicts"] == 1


def _one_layer(spans, label):
    """What one BIO layer can hold: spans of `label` in order, skipping any overlapping an earlier one."""
    kept = []
    for sp in spans:
        if sp[1] == label and not any(k[2] < sp[3] and sp[2] < k[3] for k in kept):
            kept.append(sp)
    return sorted(kept, key=lambda t: t[2])


def _decode_bio(tags, starts, ends, names) -> list[tuple[int, int]]:
    spans, cur = [], None
    for t, s, e in zip(tags, starts, ends, strict=False):
        tag = names[t] if isinstance(t, int) else t[0]
        if tag == "B" or (tag == "I" and cur is None):
            if cur:
                spans.append(tuple(cur))
            cur = [s, e]
        elif tag == "I":
            cur[1] = e
        else:
            if cur:
                spans.append(tuple(cur))
            cur = None
    if cur:
        spans.append(tuple(cur))
    return sorted(spans)


def test_conll_parses_back_to_spans(exported):
    corpus, out, _ = exported
    labels = ["SPEAKER", "QUOTE", "CUE", "EVENT"]
    docs = {}
    for f in sorted((out / "conll").glob("*.conll")):
        for d in read_conll(f, labels):
            docs[d["article_id"]] = d
    assert set(docs) == set(ARTICLES)
    want = corpus_spans(corpus)
    jd = all_docs(out)
    for aid, d in docs.items():
        text = jd[aid]["text"]
        # recover token offsets by walking the text
        starts, ends, pos = [], [], 0
        for tok in d["tokens"]:
            pos = text.index(tok, pos)
            starts.append(pos)
            ends.append(pos + len(tok))
            pos += len(tok)
        for lab in labels:
            got = _decode_bio(d["tags"][lab], starts, ends, None)
            # a span over a line end decodes with the same characters
            assert [text[s:e] for s, e in got] == [s[4] for s in _one_layer(want[aid], lab)]
    assert docs["a1"]["tags"]["SPEAKER"][docs["a1"]["tokens"].index("We")] == "B-SPEAKER"
    assert docs["a1"]["tags"]["QUOTE"][docs["a1"]["tokens"].index("We")] == "I-QUOTE"


def test_brat_round_trip_through_our_import(exported, tmp_path):
    from spanbank.corpus.ingest import ingest_paths

    corpus, out, _ = exported
    conf = (out / "brat" / "annotation.conf").read_text()
    assert (
        "said_by\tArg1:QUOTE, Arg2:SPEAKER" in conf
        and "type_QUOTE\tArg:QUOTE, Value:direct|indirect|mixed" in conf
    )
    back = Corpus.init(tmp_path / "back")
    ingest_paths(back, [out / "brat"], fmt="brat")
    arts = back.read("articles").set_index("article_id")["text"]
    orig = corpus.read("articles").set_index("article_id")["text"]
    assert arts.sort_index().equals(orig.sort_index())
    sp = back.read("spans")
    rel = back.read("relations")
    osp = corpus.read("spans")
    key = lambda df: sorted(  # noqa: E731
        (
            r.article_id,
            r.label,
            int(r.start),
            int(r.end),
            r.text,
            "" if pd.isna(r.attributes) else r.attributes,
        )
        for r in df.itertuples()
    )
    assert key(sp) == key(osp)

    def ends(spans, relations):  # relations by the (article, start, end) of their spans
        at = {
            (r.annotation_id, r.span_id): (r.article_id, int(r.start), int(r.end))
            for r in spans.itertuples()
        }
        return sorted(
            (at[r.annotation_id, r.from_span_id], at[r.annotation_id, r.to_span_id], r.label)
            for r in relations.itertuples()
        )

    assert ends(sp, rel) == ends(osp, corpus.read("relations"))
    assert back.read("rejects").empty


def test_brat_ann_parses_back_with_the_import_parser(exported):
    """The same round trip one level down: our brat import's parser over the exported files."""
    from spanbank.corpus.brat import parse_ann

    corpus, out, _ = exported
    want = corpus_spans(corpus)
    rels = corpus_relations(corpus)
    attrs = {
        r.span_id: None if pd.isna(r.attributes) else r.attributes
        for r in corpus.read("spans").itertuples()
    }
    for txt in sorted((out / "brat").rglob("*.txt")):
        aid = txt.stem
        text = txt.read_bytes().decode("utf-8")
        parsed = parse_ann(txt.with_suffix(".ann").read_text("utf-8"), text, corpus.schema)
        assert parsed.rejects == [] and parsed.ignored == 0
        # brat ids are T1.. in exported order; map them back through offsets
        got = sorted(
            (s["label"], s["start"], s["end"], s["text"], attributes_json(s["attributes"]))
            for s in parsed.spans
        )
        assert got == sorted((w[1], w[2], w[3], w[4], attrs[w[0]]) for w in want[aid])
        by_t = {s["span_id"]: (s["start"], s["end"]) for s in parsed.spans}
        by_c = {w[0]: (w[2], w[3]) for w in want[aid]}
        assert {
            (by_t[r["from_span_id"]], by_t[r["to_span_id"]], r["label"]) for r in parsed.relations
        } == {(by_c[a], by_c[b], lab) for a, b, lab in rels[aid]}


def test_quotes_table(exported):
    corpus, out, _ = exported
    q = pd.read_parquet(out / "quotes" / "quotes.parquet")
    assert len(q) == (corpus.read("spans")["label"] == "QUOTE").sum()
    row = q[q["quote_span_id"] == "a1-q1"].iloc[0]
    assert (row["quote_text"], row["quote_type"], row["speaker_text"], row["cue_text"]) == (
        '"We will win."',
        "direct",
        "Smith",
        "said",
    )
    assert row["context"] == ARTICLES["a1"][0]  # short article: the window is the whole text
    lines = [json.loads(x) for x in (out / "quotes" / "quotes.jsonl").read_text().splitlines()]
    assert [x["quote_span_id"] for x in lines] == list(q["quote_span_id"])
    assert pd.isna(q[q["quote_span_id"] == "a2-q2"].iloc[0]["speaker_text"])


# --------------------------------------------------------------------------- manifest, splits, guarantees


def test_manifest_checksums_and_card(exported):
    corpus, out, summary = exported
    assert verify(out) == []
    m = json.loads((out / "manifest.json").read_text())
    assert m["schema"]["ident"] == "news-v1"
    assert set(m["files"]) >= {
        "README.md",
        "jsonl/train.jsonl",
        "spacy/train.spacy",
        "hf/dataset_dict.json",
    }
    assert m["fingerprint"]["sha256"] == summary["fingerprint"]
    import spanbank
    from spanbank.fingerprint import code_digest

    assert m["spanbank_code"] == code_digest(Path(spanbank.__file__).parent)
    assert f"(code `{m['spanbank_code']}`, schema `news-v1`)" in (out / "README.md").read_text()
    assert sum(v["articles"] for v in m["splits"].values()) == len(ARTICLES)
    total_quotes = sum(v["label_counts"]["QUOTE"] for v in m["splits"].values())
    assert total_quotes == (corpus.read("spans")["label"] == "QUOTE").sum()
    card = (out / "README.md").read_text()
    assert "load_from_disk" in card and "DocBin" in card
    assert not any(
        p.name.startswith(".") for p in out.parent.iterdir() if p.name.startswith(".out")
    )


def test_hf_leaves_out_empty_splits_and_says_so(tmp_path):
    import datasets

    corpus = build_corpus(tmp_path / "c")
    s = run(corpus, tmp_path / "o", ["hf"], split="train=0.5,dev=0.5,never=0")
    assert s["splits"]["never"] == 0 and s["notes"]["hf_empty_splits_left_out"] == 1
    assert set(datasets.load_from_disk(str(tmp_path / "o/hf"))) == {"train", "dev"}
    assert pd.read_parquet(tmp_path / "o/hf/parquet/never.parquet").empty


def test_brat_ann_lines_hold_no_character_python_breaks_lines_at():
    """Hunt M, F7: U+2029, form feed and NEL inside a span's text were written raw, and a
    reader iterating the `.ann` file's lines (brat's) saw 7 lines for 3."""
    from spanbank.corpus.brat import parse_ann
    from spanbank.export.brat import to_ann
    from spanbank.schema import load_schema

    text = "Ana said “Para one.”\u2029Next, and then\x0cthe end\x85ok\u2028\x1c\vdone."
    spans = [
        {"label": "SPEAKER", "start": 0, "end": 3, "attributes": {}},
        {"label": "QUOTE", "start": 9, "end": 25, "attributes": {"type": "direct"}},
        {"label": "QUOTE", "start": 36, "end": len(text) - 1, "attributes": {}},
    ]
    ann = to_ann(
        {"text": text, "spans": spans, "relations": [{"label": "said_by", "head": 1, "tail": 0}]}
    )
    assert len(ann.splitlines()) == 5
    parsed = parse_ann(ann, text, load_schema())
    assert parsed.rejects == []
    assert [(s["start"], s["end"], s["text"]) for s in parsed.spans] == [
        (s["start"], s["end"], text[s["start"] : s["end"]]) for s in spans
    ]


def test_brat_export_with_an_empty_split_is_replaced_by_its_rerun(tmp_path):
    """brat keeps a folder per split, empty or not (as jsonl keeps a file); the manifest lists
    files only, and the same export run again was refused: `brat/test/ is not in its manifest`."""
    corpus = build_corpus(tmp_path / "c")
    out = tmp_path / "o"
    run(corpus, out, ["brat", "jsonl"], split="train=1,test=0")
    assert (out / "brat/test").is_dir() and not any((out / "brat/test").iterdir())
    before = (out / "manifest.json").read_bytes()
    s = run(corpus, out, ["brat", "jsonl"], split="train=1,test=0")
    assert s["splits"] == {"train": len(ARTICLES), "test": 0}
    assert verify(out) == [] and (out / "manifest.json").read_bytes() == before
    (out / "brat/test/mine.txt").write_text("my notes")  # a folder holding anything still counts
    with pytest.raises(ExportError, match=r"\(brat/test/ is not in its manifest\)"):
        run(corpus, out, ["brat", "jsonl"], split="train=1,test=0")


def test_brat_file_names_of_two_ids_never_collide(tmp_path):
    """A 193-character id equal to another id's shortened file name (`<160 chars>~<32 hex>`)
    was used as it is: both articles went to one .txt/.ann, the manifest said 2 articles and
    verify() passed; re-importing gave the long id the other's text."""
    import hashlib

    from spanbank.corpus.brat import article_id_of
    from spanbank.export.manifest import MANIFEST

    long = "L" * 300
    collider = "L" * 160 + "~" + hashlib.sha256(long.encode()).hexdigest()[:32]
    texts = {long: "Officials said item one.", collider: "Officials said item two."}
    arts = {a: (t, [("s1", "SPEAKER", "Officials", 0, None)], []) for a, t in texts.items()}
    corpus = build_corpus(tmp_path / "c", arts)
    out = tmp_path / "o"
    run(corpus, out, ["brat"], split="train=1")
    assert len(list((out / "brat/train").glob("*.txt"))) == 2 and verify(out) == []
    back = Corpus.init(tmp_path / "back")
    from spanbank.corpus.ingest import ingest_paths

    ingest_paths(back, [out / "brat"], fmt="brat")
    got = back.read("articles").set_index("article_id")["text"].to_dict()
    assert got == texts
    assert article_id_of("a%20b~c") == "a b~c"  # a stem exported before `~` was encoded
    # an export whose manifest counts more articles than brat files (as one made before) fails
    manifest = json.loads((out / MANIFEST).read_text())
    victim = sorted(f for f in manifest["files"] if f.startswith("brat/train/"))[0][: -len(".ann")]
    for ext in (".ann", ".txt"):
        del manifest["files"][victim + ext]
        (out / (victim + ext)).unlink()
    (out / MANIFEST).write_text(json.dumps(manifest))
    assert verify(out) == ["brat/train/: 1 .txt files for 2 articles"]


def test_manifest_verify_detects_tampering(tmp_path):
    corpus = build_corpus(tmp_path / "c")
    run(corpus, tmp_path / "o", ["jsonl"])
    with open(tmp_path / "o/jsonl/train.jsonl", "a") as fh:
        fh.write("\n")
    assert verify(tmp_path / "o") == ["jsonl/train.jsonl: checksum differs"]


def test_brat_files_come_back_as_bytes_where_the_folder_is_not_seen(exported, tmp_path):
    """A worker on a machine without the driver's file system does not see the export's temp
    folder: its encoder sends the files' bytes, and the driver writes the same files with the
    digests its manifest takes."""
    import shutil

    from spanbank.export.brat import BratWriter

    corpus, out, _ = exported
    labels = json.loads((out / "manifest.json").read_text())["labels"]
    far = BratWriter(tmp_path / "far", ["train"], labels, corpus.schema)
    shutil.rmtree(far.dir)
    docs = read_jsonl(out / "jsonl" / "train.jsonl")
    payload = far.encoder("train", docs)
    assert len(payload) == len(docs) > 0
    assert all(not written and isinstance(txt, bytes) for _, _, written, txt, _ in payload)
    here = BratWriter(tmp_path / "here", ["train"], labels, corpus.schema)
    here.put("train", payload)
    names = sorted(p.name for p in (out / "brat" / "train").iterdir())
    assert sorted(p.name for p in (here.dir / "train").iterdir()) == names
    for name in names:
        assert (here.dir / "train" / name).read_bytes() == (
            out / "brat" / "train" / name
        ).read_bytes()
    on_disk = checksums(tmp_path / "here")
    assert here.digests == {k: v for k, v in on_disk.items() if k.startswith("brat/train/")}


def test_conll_and_hf_tag_a_document_once_and_write_the_same(exported, monkeypatch):
    """A built document keeps its tokens and BIO layers for the next writer that asks with the
    same labels; what the writers make is the same as from plain dicts."""
    import spanbank.export.docs as docs_mod
    from spanbank.export.conll import ConllEncoder
    from spanbank.export.docs import Document, tagged
    from spanbank.export.hf import HfEncoder, attribute_names, features

    corpus, out, _ = exported
    labels = json.loads((out / "manifest.json").read_text())["labels"]
    plain = read_jsonl(out / "jsonl" / "train.jsonl")
    attrs = tuple(attribute_names(corpus.schema, labels))
    encoders = [
        ConllEncoder(tuple(labels)),
        HfEncoder(tuple(labels), attrs, features(labels, list(attrs)).arrow_schema),
    ]
    want = [enc("train", plain) for enc in encoders]
    calls = []
    real = docs_mod.tokenize
    monkeypatch.setattr(docs_mod, "tokenize", lambda t, s: calls.append(t) or real(t, s))
    docs = [Document(d) for d in plain]
    assert [enc("train", docs) for enc in encoders] == want
    assert len(calls) == len(docs) > 0
    tagged(docs[0], labels[:1])  # other labels: tagged again
    assert len(calls) == len(docs) + 1


def test_checksums_take_given_digests_and_read_the_rest(tmp_path):
    """Digests a writer took of the bytes it wrote are not read again; the others are; symlinked
    folders are not entered and the manifest is left out."""
    import hashlib

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.txt").write_bytes(b"x")
    (tmp_path / "a" / "y.txt").write_bytes(b"y")
    (tmp_path / "manifest.json").write_bytes(b"{}")
    (tmp_path / "link").symlink_to(tmp_path / "a", target_is_directory=True)
    given = {"a/y.txt": "given"}
    got = checksums(tmp_path, given)
    assert got == {"a/b/x.txt": hashlib.sha256(b"x").hexdigest(), "a/y.txt": "given"}
    assert given == {}  # taken out as used
    assert checksums(tmp_path, skip={"a"}) == {}  # a folder hashed already is not walked


def test_checksums_read_by_several_threads_equal_one_by_one(tmp_path, monkeypatch):
    """Files are hashed by a few threads, each taking the next file: every file once, the same
    digests as one at a time; `prefix` names them from a writer's folder; a file that cannot be
    read is an error, not a missing entry."""
    import hashlib

    import spanbank.export.manifest as manifest_mod

    monkeypatch.setattr(manifest_mod, "HASH_THREADS", 3)
    sizes = [0, 1, 5 << 20, 3, 2 << 20, 7, 1 << 20] * 3
    for i, n in enumerate(sizes):
        (tmp_path / f"f{i:02d}.bin").write_bytes(os.urandom(n))
    read = []
    real = manifest_mod.file_sha256
    monkeypatch.setattr(manifest_mod, "file_sha256", lambda p: read.append(p) or real(p))
    got = checksums(tmp_path, {}, "w/")
    want = {f"w/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    assert got == want and list(got) == sorted(want) and sorted(read) == sorted(set(read))
    assert len(read) == len(sizes)
    monkeypatch.setattr(
        manifest_mod, "file_sha256", lambda p: real(p) if "f05" not in p else open(p + "x")
    )
    with pytest.raises(FileNotFoundError):
        checksums(tmp_path)


def test_split_disjoint_deterministic_and_grouped(exported, tmp_path):
    corpus, out, _ = exported
    docs = all_docs(out)
    by_source: dict[str, set] = {}
    for d in docs.values():
        by_source.setdefault(d["meta"]["source"], set()).add(d["_split"])
    assert all(len(s) == 1 for s in by_source.values())  # group-by keeps groups together
    per_split = [{d["article_id"] for d in read_jsonl(f)} for f in (out / "jsonl").glob("*.jsonl")]
    assert sum(map(len, per_split)) == len(set().union(*per_split)) == len(ARTICLES)
    keys = [f"k{i}" for i in range(2000)]
    fr = parse_split("train=0.8,dev=0.1,test=0.1")
    a, b, c = assign_splits(keys, fr, 1), assign_splits(keys, fr, 1), assign_splits(keys, fr, 2)
    assert list(a) == list(b) and list(a) != list(c)
    share = pd.Series(a).value_counts(normalize=True)
    assert abs(share["train"] - 0.8) < 0.04 and abs(share["test"] - 0.1) < 0.03
    assert set(assign_splits(keys, parse_split("train=0.5,dev=0.5,test=0"), 0)) == {"train", "dev"}


def test_split_spec_errors():
    with pytest.raises(ExportError, match="sum to 0.9"):
        parse_split("train=0.8,test=0.1")
    with pytest.raises(ExportError, match="needs a fraction"):
        parse_split("train")
    with pytest.raises(ExportError, match="unknown export format 'xml'"):
        parse_formats("jsonl,xml")


def test_split_names_an_export_folder_takes_are_refused(tmp_path):
    """A split named `parquet` shared `hf/parquet/` with every split's Parquet copy, and
    `datasets.load_dataset` then dropped it; `train`/`Train` are one folder on macOS."""
    for spec in ("train=0.5,parquet=0.5", "train=0.5,Parquet=0.5", "dataset_dict=1"):
        with pytest.raises(ExportError, match=r"^split name '\w+' is taken: hf/\w+/ holds"):
            parse_split(spec)
    with pytest.raises(ExportError, match="'train' and 'Train' differ only in case"):
        parse_split("train=0.5,Train=0.5")
    corpus = build_corpus(tmp_path / "c")
    with pytest.raises(ExportError, match="split name 'parquet' is taken"):
        run(corpus, tmp_path / "o", ["hf"], split="train=0.5,parquet=0.5")
    assert not (tmp_path / "o").exists()
    arts = corpus.read("articles")  # the corpus's own split, from a column
    arts["compartment"] = ["parquet" if i % 2 else "train" for i in range(len(arts))]
    with corpus.writer() as w:
        w.replace("articles", arts)
    with pytest.raises(ExportError, match="split name 'parquet' is taken"):
        run(corpus, tmp_path / "o", ["jsonl"], split_by="compartment")
    assert not (tmp_path / "o").exists()


def test_a_name_that_is_a_path_is_refused(tmp_path, monkeypatch):
    """Hunt O, F7: `export --name ../../x` (no --out) wrote outside exports/."""
    corpus = build_corpus(tmp_path / "c")
    monkeypatch.chdir(tmp_path)
    for name in ("../../x", "a/b", "..", "."):
        with pytest.raises(ExportError, match="is a dataset's name, not a path"):
            export_dataset(corpus, ["jsonl"], None, annotations=given(corpus), name=name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_reexport_is_byte_identical(tmp_path):
    corpus = build_corpus(tmp_path / "c")
    run(corpus, tmp_path / "o1", seed=3, chunk_size=7)
    run(corpus, tmp_path / "o2", seed=3, chunk_size=7)
    f1 = sorted(p.relative_to(tmp_path / "o1") for p in (tmp_path / "o1").rglob("*") if p.is_file())
    f2 = sorted(p.relative_to(tmp_path / "o2") for p in (tmp_path / "o2").rglob("*") if p.is_file())
    assert f1 == f2
    for rel in f1:
        assert (tmp_path / "o1" / rel).read_bytes() == (tmp_path / "o2" / rel).read_bytes(), rel
    # exporting again over an earlier export replaces it whole
    before = (tmp_path / "o1/manifest.json").read_bytes()
    run(corpus, tmp_path / "o1", seed=3, chunk_size=7)
    assert (tmp_path / "o1/manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "o1", "o2"]


def test_misaligned_span_fails_naming_it_and_leaves_nothing(tmp_path):
    bad = [
        {
            "annotation_id": "ann-a05",
            "span_id": "a05-bad",
            "article_id": "a05",
            "label": "SPEAKER",
            "start": 0,
            "end": 6,
            "text": "Rapport",
            "attributes": None,
        }
    ]
    corpus = build_corpus(tmp_path / "c", extra_spans=bad)
    with pytest.raises(ExportError, match=r"a05/a05-bad \(SPEAKER\): span 0\.\.6 covers 'Report'"):
        run(corpus, tmp_path / "o", ALL, chunk_size=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_a_stored_date_before_year_1_is_one_error_naming_the_article(tmp_path):
    """Ingest once stored such dates; turning them into Python values died with OverflowError."""
    corpus = build_corpus(tmp_path / "c", articles={k: ARTICLES[k] for k in ("a1", "a03")})
    art = _rows("articles", [{"article_id": "old", "text": "Old text.", "origin": "test"}])
    art["published_at"] = pd.to_datetime(pd.Series(["0000-06-01"]), utc=True, format="mixed")
    assert art["published_at"].dt.year[0] == 0
    ann = {"annotation_id": "ann-old", "project": "news", "article_id": "old"}
    ann |= {"annotator": "alice", "origin": "human", "cancelled": False, "superseded": False}
    ann |= {"version": 1, "created_at": T0, "updated_at": T0}
    with corpus.writer() as w:
        w.append("articles", art)
        w.append("annotations", _rows("annotations", [ann]))
    with pytest.raises(ExportError) as info:
        run(corpus, tmp_path / "o", ALL)
    assert str(info.value).startswith(
        "article 'old': its published_at is in year 0, outside 1..9999, and cannot be exported"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_no_emails_in_any_exported_byte(exported):
    _, out, _ = exported
    for p in out.rglob("*"):
        if p.is_file():
            assert b"example.org" not in p.read_bytes(), p


def test_email_annotator_is_pseudonymised():
    from spanbank.pseudonyms import pseudonym

    key = b"k" * 32
    docs, _ = build_documents(
        [{"article_id": "x", "text": "Hi there"}],
        {"x": {"annotation_id": "n", "annotator": "bob@example.org"}},
        pd.DataFrame(columns=TABLES["spans"].names),
        pd.DataFrame(columns=TABLES["relations"].names),
        key=key,
    )
    assert docs[0]["meta"]["annotator"] == pseudonym(key, "brat", "bob@example.org")


def test_labels_filter_drops_and_counts_relations(tmp_path):
    corpus = build_corpus(tmp_path / "c")
    s = run(corpus, tmp_path / "o", ["jsonl", "hf"], labels=["QUOTE", "SPEAKER"])
    assert s["notes"]["relations_dropped"] == len(ARTICLES)  # every `cue` link lost its CUE
    docs = all_docs(tmp_path / "o")
    assert {sp["label"] for d in docs.values() for sp in d["spans"]} == {"QUOTE", "SPEAKER"}
    import datasets

    dd = datasets.load_from_disk(str(tmp_path / "o/hf"))
    assert [c for c in dd["train"].column_names if c.startswith("ner_tags_")] == [
        "ner_tags_SPEAKER",
        "ner_tags_QUOTE",
    ]
    with pytest.raises(ExportError, match="label\\(s\\) NOPE not in schema news-v1"):
        run(corpus, tmp_path / "o2", ["jsonl"], labels=["NOPE"])


def test_missing_extra_names_it(tmp_path, monkeypatch):
    corpus = build_corpus(tmp_path / "c")
    monkeypatch.setitem(sys.modules, "spacy", None)
    with pytest.raises(ExportError, match=r"pip install 'spanbank\[spacy\]'"):
        run(corpus, tmp_path / "o", ["jsonl", "spacy"])
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ExportError, match=r"pip install 'spanbank\[hf\]'"):
        run(corpus, tmp_path / "o", ["hf"])
    assert not (tmp_path / "o").exists()


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    corpus = build_corpus(tmp_path / "c")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not a spanbank export"):
        run(corpus, tmp_path / "o", ["jsonl"])
    assert (tmp_path / "o" / "notes.txt").read_text() == "mine"


def test_tokens_cut_at_span_boundaries():
    spans = [{"start": 1, "end": 4, "label": "X"}, {"start": 0, "end": 5, "label": "Y"}]
    starts, ends = tokenize("Smith said", spans)
    assert list(zip(starts, ends, strict=True)) == [(0, 1), (1, 4), (4, 5), (6, 10)]
    layers, notes = bio_layers(
        starts, ends, spans + [{"start": 0, "end": 1, "label": "Y"}], ["X", "Y"]
    )
    assert layers == {"X": [0, 1, 0, 0], "Y": [1, 2, 2, 0]} and notes["conflicts"] == 1


def test_tokens_without_spans_are_the_agreement_report_tokens():
    """Export and agreement count the same tokens (one definition, two implementations)."""
    from spanbank.tokens import tokenize as report_tokenize

    text = 'Der Bürgermeister 🎉 sagte:\nAlles wird gut, "sagte" er_2 — é́ 3.5%'
    _, starts, ends, _ = report_tokenize([text])
    assert tokenize(text, []) == (starts.tolist(), ends.tolist())


# --------------------------------------------------------------------------- command line


def test_cli_export_json(tmp_path):
    from spanbank.cli import cli

    build_corpus(tmp_path / "c")
    res = CliRunner().invoke(
        cli,
        [
            "--corpus",
            str(tmp_path / "c"),
            "export",
            "--format",
            "jsonl,conll",
            "--out",
            str(tmp_path / "o"),
            "--seed",
            "5",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["articles"] == len(ARTICLES) and summary["formats"] == ["jsonl", "conll"]
    assert set(summary["label_counts"]) == {"train", "dev", "test"}
    assert verify(tmp_path / "o") == []


def test_cli_errors_are_one_line(tmp_path):
    from spanbank.cli import cli

    build_corpus(tmp_path / "c")
    res = CliRunner().invoke(
        cli,
        [
            "--corpus",
            str(tmp_path / "c"),
            "export",
            "--format",
            "xml",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 1
    assert (
        res.output.strip()
        == "Error: unknown export format 'xml'; choose from jsonl, spacy, hf, conll, brat, quotes"
    )
    res = CliRunner().invoke(cli, ["export", "--help"])
    assert res.exit_code == 0 and "Example:" in res.output


def _second_annotator(corpus, twice):
    """Give the articles `twice` a second annotator, bob, who agrees with the first."""
    ann = corpus.read("annotations")
    sp = corpus.read("spans")
    rel = corpus.read("relations")
    bob = ann[ann["article_id"].isin(twice)].assign(
        annotation_id=lambda d: d["annotation_id"] + "-bob", annotator="bob"
    )
    bob_sp = sp[sp["article_id"].isin(twice)].assign(
        annotation_id=lambda d: d["annotation_id"] + "-bob"
    )
    bob_rel = rel[rel["annotation_id"].isin("ann-" + pd.Series(twice))].assign(
        annotation_id=lambda d: d["annotation_id"] + "-bob"
    )
    with corpus.writer() as w:
        w.append("annotations", bob)
        w.append("spans", bob_sp)
        w.append("relations", bob_rel)


def test_gold_auto_with_two_annotators_and_agreement(tmp_path):
    """Real spanbank.gold: articles with two annotators get majority gold computed on the fly."""
    corpus = build_corpus(tmp_path / "c")
    twice = ["a03", "a04", "a05"]
    want = corpus_spans(corpus)
    _second_annotator(corpus, twice)
    s = export_dataset(corpus, ["jsonl"], tmp_path / "o")
    m = json.loads((tmp_path / "o/manifest.json").read_text())
    assert m["gold"] == "auto" and m["gold_selection"] == {
        "computed": 3,
        "single": len(ARTICLES) - 3,
    }
    assert s["articles"] == len(ARTICLES)
    docs = all_docs(tmp_path / "o")
    for aid in twice:  # both annotators agree, so the majority is their annotation
        assert [(x["label"], x["start"], x["end"]) for x in docs[aid]["spans"]] == [
            (w[1], w[2], w[3]) for w in want[aid]
        ]
        assert len(docs[aid]["relations"]) == 2
    assert m["agreement"] is not None and m["agreement"]["articles_with_2plus"] == 3
    assert verify(tmp_path / "o") == []


def test_gold_computed_on_the_fly_is_adjudicated_once_not_per_chunk(tmp_path, monkeypatch):
    """Small chunks do not make export re-read the tables and adjudicate again for each chunk."""
    from spanbank import gold

    corpus = build_corpus(tmp_path / "c")
    _second_annotator(corpus, ["a03", "a04", "a05"])
    calls = []
    real = gold._adjudicate_store
    monkeypatch.setattr(
        gold,
        "_adjudicate_store",
        lambda c, s, p, article_ids, **kw: (
            calls.append(len(article_ids)) or real(c, s, p, article_ids=article_ids, **kw)
        ),
    )
    export_dataset(corpus, ["jsonl"], tmp_path / "o", chunk_size=1)
    assert calls == [3]  # the three computed articles, in one call
    monkeypatch.undo()
    export_dataset(corpus, ["jsonl"], tmp_path / "o2", chunk_size=1000)
    assert all_docs(tmp_path / "o") == all_docs(tmp_path / "o2")


def test_leftovers_of_a_killed_export_are_removed_and_a_mid_swap_kill_restores(
    tmp_path, monkeypatch
):
    corpus = build_corpus(tmp_path / "c")
    out = tmp_path / "exp"
    run(corpus, out, formats="jsonl")
    before = (out / "manifest.json").read_bytes()
    # a kill between the two renames of a later export: the old export sits in .old-*/x
    (tmp_path / ".exp.old-abc").mkdir()
    out.rename(tmp_path / ".exp.old-abc" / "x")
    (tmp_path / ".exp.tmp-def").mkdir()
    (tmp_path / ".exp.tmp-def" / "half.jsonl").write_text("{", encoding="utf-8")
    (tmp_path / ".exp.lock").write_text("4194305")  # its killed holder's pid; nobody locks it

    # an export that fails after clearing the leftovers shows the earlier export was put back
    # (a successful one would rewrite the same bytes and hide whether it was)
    def fail(*args):
        raise ExportError("stopped after the target's lock")

    monkeypatch.setattr("spanbank.export.ChunkFrames", fail)
    with pytest.raises(ExportError, match="stopped after"):
        run(corpus, out, formats="jsonl")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "exp"]
    assert (out / "manifest.json").read_bytes() == before
    run(corpus, out, formats="jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "exp"]
    assert (out / "manifest.json").read_bytes() == before
    assert verify(out) == []


def test_leftover_cleanup_reads_the_out_name_literally(tmp_path):
    # "e[x]" as a glob matches ".ex.tmp-*": another export's temp folder, which must survive
    corpus = build_corpus(tmp_path / "c")
    other = tmp_path / ".ex.tmp-123"
    other.mkdir()
    (other / "part.jsonl").write_text("{}", encoding="utf-8")
    run(corpus, tmp_path / "e[x]", formats="jsonl")
    assert (other / "part.jsonl").is_file()
    assert verify(tmp_path / "e[x]") == []


def test_an_out_name_of_242_to_255_bytes_is_written_and_its_leftovers_found(tmp_path):
    """`.NAME.tmp-XXXXXXXX` beside a legal 242..255-byte NAME did not fit in a file name: the
    export said `cannot write beside ...: File name too long`."""
    from spanbank.outdir import stem_beside

    corpus = build_corpus(tmp_path / "c")
    for size in (241, 242, 255):
        out = tmp_path / ("é" * 5 + "x" * (size - 10))
        assert len(out.name.encode()) == size
        stem = stem_beside(out.name)
        assert (stem == out.name) == (size == 241) and len(f".{stem}.tmp-12345678") <= 255
        left = [tmp_path / f".{stem}.tmp-killed", tmp_path / f".{stem}.old-killed"]
        for d in left:
            d.mkdir()
        run(corpus, out, formats="jsonl")
        run(corpus, out, formats="jsonl")  # replacing it: its old one goes beside it for a while
        assert verify(out) == [] and not any(d.exists() for d in left)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    too_long = tmp_path / ("x" * 256)
    with pytest.raises(ExportError, match="its name has 256 bytes; a file name holds at most 255"):
        run(corpus, too_long, formats="jsonl")


def test_two_corpora_exporting_to_one_out_take_turns(tmp_path):
    """The corpus lock does not order two corpora's exports to one --out; before the target's
    lock, the second deleted the first's temp folder mid-export (its cleanup of leftovers)."""
    import threading

    from spanbank.errors import LockError

    first, second = build_corpus(tmp_path / "c1"), build_corpus(tmp_path / "c2")
    out = tmp_path / "exp"
    inside, release, done = threading.Event(), threading.Event(), []

    def hold(event):
        if event.stage == "exporting" and not inside.is_set():
            inside.set()
            release.wait(60)

    def export(corpus, **kw):
        done.append(run(corpus, out, formats="jsonl", **kw)["articles"])

    held = threading.Thread(target=export, args=(first,), kwargs={"progress": hold})
    held.start()
    try:
        assert inside.wait(60)
        (tmp,) = tmp_path.glob(".exp.tmp-*")
        pid = os.getpid()
        with pytest.raises(
            LockError, match=rf"exp is being written by another spanbank process \(pid {pid}\)"
        ):
            run(second, out, formats="jsonl")
        assert tmp.is_dir() and not out.exists()
        waiting = threading.Thread(target=export, args=(second,), kwargs={"wait": True})
        waiting.start()
        waiting.join(1)
        assert waiting.is_alive() and tmp.is_dir()  # it waits for the first
    finally:
        release.set()
        held.join(60)
    waiting.join(60)
    assert done == [len(ARTICLES)] * 2
    assert json.loads((out / "manifest.json").read_text())["name"] == "c2"  # the second ran last
    assert verify(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c1", "c2", "exp"]


def test_export_folder_gets_a_plain_folders_mode(tmp_path):
    """The export is written in a temp folder (mkdtemp: mode 0700) renamed into place: it now
    gets the mode a plain mkdir gives; before, only its owner could read a shared dataset."""
    import stat

    corpus = build_corpus(tmp_path / "c")
    (tmp_path / "plain").mkdir()
    run(corpus, tmp_path / "exp", formats="jsonl")
    mode = stat.S_IMODE((tmp_path / "exp").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode), oct(mode)


def test_export_waits_for_or_refuses_a_locked_corpus(tmp_path):
    from spanbank.errors import LockError

    corpus = build_corpus(tmp_path / "c")
    with corpus.writer(), pytest.raises(LockError, match="pass --wait"):
        run(corpus, tmp_path / "exp", formats="jsonl")
    assert not (tmp_path / "exp").exists()


def test_an_annotation_given_for_two_articles_is_refused(tmp_path):
    """Its rows would land with one article only: refused, nothing written."""
    corpus = build_corpus(tmp_path / "c")
    ann = given(corpus)
    ann.loc[1, "annotation_id"] = ann.loc[0, "annotation_id"]
    with pytest.raises(ExportError, match=f"given twice: {ann.loc[0, 'annotation_id']}$"):
        run(corpus, tmp_path / "exp", formats="jsonl", annotations=ann)
    assert not (tmp_path / "exp").exists()


def test_two_annotations_given_for_one_article_are_refused(tmp_path):
    """Which one to export? Refused, naming the article (found by sorting the ids), nothing
    written."""
    corpus = build_corpus(tmp_path / "c")
    ann = given(corpus)
    assert len(ann) >= 3
    ann.loc[2, "article_id"] = ann.loc[0, "article_id"]
    first = ann.loc[0, "article_id"]
    with pytest.raises(ExportError, match=f"several annotations for article\\(s\\): {first}$"):
        run(corpus, tmp_path / "exp", formats="jsonl", annotations=ann)
    assert not (tmp_path / "exp").exists()


def test_id_set_masks_as_is_in_does():
    """The once-hashed id set used to pick articles batch by batch agrees with pc.is_in."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from spanbank.corpus.articles import IdSet

    wanted = pa.array(["a3", "a1", "a1", "zz"])
    ids = IdSet(wanted)
    for column in (
        pa.array(["a1", "a2", "a3"]),
        pa.chunked_array([["a9"], ["zz", "a1"]]),
        pa.array([], pa.string()),
    ):
        assert ids.mask(column).to_pylist() == pc.is_in(column, value_set=wanted).to_pylist()
    assert len(ids) == 3


@pytest.mark.parametrize("seed", range(12))
def test_id_set_positions_are_a_dicts(seed):
    """Against a dict from id to its first place among those given: unicode, empty, prefixes of
    one another, longer than any in the set, NUL characters, missing values, sliced and chunked
    columns, string and large_string, a set given in one chunk or two; the places of ids given
    again; the sorted bytes and the index it falls back to for ids much longer than most."""
    import random

    import numpy as np
    import pyarrow as pa

    from spanbank.corpus.articles import IdSet

    rng = random.Random(seed)
    alphabet = ["a", "b", "é", "字", "\x00", "-", "Z"]
    pool = [""] + ["".join(rng.choices(alphabet, k=rng.randrange(1, 7))) for _ in range(60)]
    pool += [p + "a" for p in pool[:10]] + [p[:-1] for p in pool[10:20]]
    given = [rng.choice(pool) for _ in range(rng.randrange(1, 80))]
    mode = seed % 3  # 0: one id far longer than the rest; 1: no NUL in the set; 2: some
    if mode == 0:
        given.insert(rng.randrange(len(given)), "x" * 500)
    if mode == 1:
        given = [g for g in given if "\x00" not in g] or ["a"]
    if mode == 2:
        given.append("a\x00")
    first: dict[str, int] = {}
    for i, g in enumerate(given):
        first.setdefault(g, i)
    kind = pa.large_string() if seed % 2 else pa.string()  # pandas' str is large_string
    held = pa.array(given + [None], kind)
    if seed % 4 >= 2:  # a selection put together from ranges: several chunks
        held = pa.chunked_array([held.slice(0, len(held) // 2), held.slice(len(held) // 2)])
    ids = IdSet(held)
    longest = max(first, key=len)  # with one more character: longer than any in the set
    asked = [rng.choice(pool + [None, longest + "q"]) for _ in range(200)]
    whole = pa.array(["pad"] * 7 + asked, kind).slice(7)
    for column in (whole, pa.chunked_array([whole.slice(0, 50), whole.slice(50)])):
        want = [first.get(a, -1) if a is not None else -1 for a in asked]
        assert ids.positions(column).tolist() == want
        assert ids.mask(column).to_pylist() == [w >= 0 for w in want]
    assert len(ids) == len(first) and ids.size == len(given) + 1
    assert ids.repeats.tolist() == [i for i, g in enumerate(given) if first[g] != i]
    assert (ids.index is None) == (mode == 1)  # sorted bytes, or the index for the odd ones
    assert ids.positions(pa.array([], pa.string())).tolist() == []
    assert np.all(IdSet(pa.array([], pa.string())).positions(whole) == -1)


def test_chunks_by_row_number_equal_chunks_by_id(tmp_path):
    """`article_chunks(rows=)`, which the export streams with, gives the chunks that filtering by
    id gives, for articles stored over three commits and any chunk size; the row numbers are
    found here from the whole id column."""
    import random

    import pyarrow as pa

    from spanbank.corpus.articles import article_chunks

    corpus = build_corpus(tmp_path / "c")
    for commit in range(2):
        more = [
            {"article_id": f"b{commit}-{i:02d}", "text": f"text {i}", "language": "en"}
            for i in range(9)
        ]
        with corpus.writer() as w:
            w.append("articles", _rows("articles", more))
    ids = corpus.read("articles", columns=["article_id"])["article_id"].tolist()
    rng = random.Random(3)
    for k in (0, 1, 5, len(ids)):
        wanted = rng.sample(ids, k)
        rows = np.array(sorted(ids.index(a) for a in wanted), dtype=np.int64)
        for size in (1, 4, 7, 100):
            cols = ["article_id", "text"]
            by_id = list(article_chunks(corpus, cols, size, pa.array(wanted, pa.string())))
            by_row = list(article_chunks(corpus, cols, size, rows=rows))
            assert [pa.Table.from_batches(c) for c in by_row] == [
                pa.Table.from_batches(c) for c in by_id
            ]
            assert sum(sum(b.num_rows for b in c) for c in by_row) == k


def test_export_is_flushed_by_one_syncfs_else_file_by_file(tmp_path, monkeypatch):
    """On Linux one syncfs flushes the export's tree; without it every file and folder is
    fsynced, each file before the folder holding it."""
    from spanbank import outdir
    from spanbank.corpus import store

    root = tmp_path / "x"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f.txt").write_text("f")
    (root / "g.txt").write_text("g")
    flushed: list[Path] = []
    monkeypatch.setattr(outdir, "fsync_path", flushed.append)
    if sys.platform.startswith("linux"):
        assert store.sync_filesystem(root)
        outdir.fsync_tree(root)
        assert flushed == []
    monkeypatch.setattr(store, "_libc", lambda: None)  # no C library: no syncfs
    assert not store.sync_filesystem(root)
    outdir.fsync_tree(root)
    assert set(flushed) == {root, root / "a", root / "a" / "f.txt", root / "g.txt"}
    assert flushed.index(root / "a" / "f.txt") < flushed.index(root / "a") < flushed.index(root)


@pytest.mark.parametrize("selection", ["given", "gold"])
def test_articles_stored_out_of_id_order_keep_their_annotation_and_split(tmp_path, selection):
    """The driver pairs a chunk's articles with their annotation rows and splits by position,
    both put in the articles table's order once. With the articles stored in reverse id order
    (the selection comes sorted by id) and chunks of 3, each document carries its own
    annotation and the split its id hashes to, and every file equals a one-chunk export's (the
    spaCy files once decompressed: their compressed pieces follow the chunks)."""
    corpus = build_corpus(tmp_path / "c", dict(reversed(list(ARTICLES.items()))))
    kw = {"split": "train=0.5,test=0.5", "seed": 4}
    if selection == "gold":
        kw["annotations"] = None
    run(corpus, tmp_path / "small", ALL, chunk_size=3, **kw)
    run(corpus, tmp_path / "one", ALL, chunk_size=1000, **kw)
    docs = all_docs(tmp_path / "small")
    assert list(docs) != sorted(docs)  # the files follow the table's order, not the ids'
    fractions = parse_split(kw["split"])
    for aid, d in docs.items():
        assert d["meta"]["annotation_id"] == f"ann-{aid}"
        assert d["_split"] == assign_splits([aid], fractions, kw["seed"])[0]
    assert {d["_split"] for d in docs.values()} == {"train", "test"}
    files = sorted(
        str(p.relative_to(tmp_path / "one")) for p in (tmp_path / "one").rglob("*") if p.is_file()
    )
    assert {"quotes/quotes.parquet", "hf/parquet/train.parquet", "spacy/test.spacy"} <= set(files)
    for rel in files:
        small, one = ((tmp_path / o / rel).read_bytes() for o in ("small", "one"))
        if rel.endswith(".spacy"):
            small, one = zlib.decompress(small), zlib.decompress(one)
        if rel != "manifest.json":  # it names the chunk size
            assert small == one, rel


def test_group_by_that_leaves_a_split_empty_says_so(exported, tmp_path):
    """Six outlets, 0.8 / 0.1 / 0.1: a seed whose hashing puts no outlet in a split warns
    (PolNeAR's 7 publishers gave an empty dev split without a word: hunt J, finding 4)."""
    corpus = exported[0]
    for seed in range(50):
        summary = run(corpus, tmp_path / f"s{seed}", ["jsonl"], group_by="source", seed=seed)
        sizes = {s: (tmp_path / f"s{seed}" / "jsonl" / f"{s}.jsonl").read_text().count("\n")
                 for s in ("train", "dev", "test")}  # fmt: skip
        empty = [s for s, n in sizes.items() if not n]
        said = [w for w in summary.get("warnings", []) if "got none of the" in w]
        if empty:
            assert said == [
                f"--group-by source: split(s) {', '.join(empty)} got none of the 6 group(s); "
                "try another --seed or --split"
            ], seed
            break
        assert not said, seed
    else:
        pytest.fail("no seed of 50 left a split empty")
    assert not [w for w in run(corpus, tmp_path / "six", ["jsonl"], group_by="source",
                               seed=6).get("warnings", []) if "got none" in w]  # fmt: skip
