"""Ingest of txt / jsonl / csv / parquet files and folders into the articles table."""

import json
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spanbank.corpus.ingest import Columns, article_id_for, ingest_paths, text_sha256
from spanbank.corpus.store import Corpus
from spanbank.corpus.tables import TABLES
from spanbank.errors import IngestError, LockError


@pytest.fixture
def corpus(tmp_path):
    return Corpus.init(tmp_path / "corpus")


def _jsonl(path: Path, rows, ensure_ascii=False) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def _articles(corpus) -> dict[str, dict]:
    df = corpus.read("articles")
    return {r["article_id"]: r for r in df.to_dict("records")}


def _snapshot(corpus) -> dict:
    """Every file of the articles table (its data and its log), by name."""
    root = corpus.table_path("articles")
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- formats ------------------------------------------------------------------------------


def test_txt_first_line_is_title_and_text_is_exact(corpus, tmp_path):
    raw = "  Minister resigns\r\n\r\nThe minister said \u201cI quit\u201d.\r\n  \t"
    f = tmp_path / "story.txt"
    f.write_bytes(raw.encode("utf-8"))
    g = tmp_path / "no_newline.txt"
    g.write_bytes(b"Just one line")
    summary = ingest_paths(corpus, [f, g])
    assert (summary.added, summary.unchanged, summary.refused) == (2, 0, [])
    arts = _articles(corpus)
    a = arts[article_id_for(raw)]
    assert a["text"] == raw
    assert a["title"] == "Minister resigns"
    assert a["text_sha256"] == text_sha256(raw)
    assert a["origin"] == "txt:story.txt"
    assert arts[article_id_for("Just one line")]["text"] == "Just one line"
    assert corpus.read_arrow("articles").schema == TABLES["articles"]


def test_jsonl_with_column_mapping(corpus, tmp_path):
    f = _jsonl(
        tmp_path / "a.jsonl",
        [
            {
                "uid": "n1",
                "body": "First text.",
                "headline": "One",
                "outlet": "Daily",
                "when": "2024-03-01T10:00:00+01:00",
                "link": "http://x/1",
                "lang": "en",
            },
            {
                "uid": 7,
                "body": "Second text.",
                "headline": "Two",
                "outlet": None,
                "when": "",
                "link": None,
                "lang": "fr",
            },
        ],
    )
    cols = Columns(
        id="uid",
        text="body",
        title="headline",
        source="outlet",
        published_at="when",
        url="link",
        language="lang",
    )
    summary = ingest_paths(corpus, [f], columns=cols)
    assert (summary.added, summary.refused) == (2, [])
    arts = _articles(corpus)
    n1 = arts["n1"]
    assert (n1["text"], n1["title"], n1["source"], n1["url"], n1["language"]) == (
        "First text.",
        "One",
        "Daily",
        "http://x/1",
        "en",
    )
    assert n1["published_at"] == pd.Timestamp("2024-03-01T09:00:00Z")
    assert pd.isna(arts["7"]["source"]) and pd.isna(arts["7"]["published_at"])


def test_usual_column_names_are_guessed(corpus, tmp_path):
    f = _jsonl(
        tmp_path / "a.jsonl",
        [
            {
                "id": "g1",
                "text": "T.",
                "headline": "H",
                "outlet": "O",
                "date": "2020-01-02",
                "lang": "de",
            }
        ],
    )
    ingest_paths(corpus, [f])
    a = _articles(corpus)["g1"]
    assert (a["title"], a["source"], a["language"]) == ("H", "O", "de")
    assert a["published_at"] == pd.Timestamp("2020-01-02", tz="UTC")


def test_numeric_ids_stay_integers(corpus, tmp_path):
    # pandas turns an int column with a gap into floats; ids must not become "1.0"
    f = _jsonl(
        tmp_path / "a.jsonl",
        [{"id": 1, "text": "one"}, {"text": "two"}, {"id": 3, "text": "three"}],
    )
    ingest_paths(corpus, [f])
    assert set(_articles(corpus)) == {"1", "3", article_id_for("two")}
    t = pa.table({"id": pa.array([11, None], pa.int64()), "text": ["eleven", "twelve"]})
    pq.write_table(t, tmp_path / "b.parquet")
    ingest_paths(corpus, [tmp_path / "b.parquet"])
    assert {"11", article_id_for("twelve")} <= set(_articles(corpus))


def test_csv_with_mapping_and_multiline_text(corpus, tmp_path):
    df = pd.DataFrame(
        {
            "key": ["c1", "c2"],
            "content": ["Line one\nline two", "Caf\u00e9 \U0001f600"],
            "hl": ["A", ""],
        }
    )
    df.to_csv(tmp_path / "a.csv", index=False)
    summary = ingest_paths(
        corpus, [tmp_path / "a.csv"], columns=Columns(id="key", text="content", title="hl")
    )
    assert summary.added == 2
    arts = _articles(corpus)
    assert arts["c1"]["text"] == "Line one\nline two"
    assert arts["c2"]["text"] == "Caf\u00e9 \U0001f600" and pd.isna(arts["c2"]["title"])


def test_parquet(corpus, tmp_path):
    t = pa.table(
        {
            "article_id": ["p1", "p2"],
            "text": ["Alpha \U0001f600", "Beta"],
            "title": ["a", "b"],
            "published_at": pa.array(
                [pd.Timestamp("2021-06-01", tz="UTC"), None], pa.timestamp("us", tz="UTC")
            ),
        }
    )
    pq.write_table(t, tmp_path / "a.parquet")
    summary = ingest_paths(corpus, [tmp_path / "a.parquet"])
    assert summary.added == 2
    arts = _articles(corpus)
    assert arts["p1"]["text"] == "Alpha \U0001f600"
    assert arts["p1"]["published_at"] == pd.Timestamp("2021-06-01", tz="UTC")
    assert arts["p2"]["title"] == "b"


def test_directory_mixing_formats(corpus, tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / "one.txt").write_text("Title one\nBody one", encoding="utf-8")
    _jsonl(d / "two.jsonl", [{"id": "j1", "text": "Body two"}])
    pd.DataFrame({"id": ["c1"], "text": ["Body three"]}).to_csv(
        d / "sub" / "three.csv", index=False
    )
    pq.write_table(pa.table({"id": ["q1"], "text": ["Body four"]}), d / "sub" / "four.parquet")
    (d / "README.md").write_text("not an article")
    summary = ingest_paths(corpus, [d])
    assert (summary.added, summary.refused) == (4, [])
    arts = _articles(corpus)
    assert {"j1", "c1", "q1", article_id_for("Title one\nBody one")} == set(arts)
    assert {a["origin"] for a in arts.values()} == {
        "txt:one.txt",
        "jsonl:two.jsonl",
        "csv:three.csv",
        "parquet:four.parquet",
    }
    # --format restricts a folder to one kind
    corpus2 = Corpus.init(tmp_path / "c2")
    assert ingest_paths(corpus2, [d], fmt="jsonl").added == 1


def test_a_corpus_is_not_an_input(corpus, tmp_path):
    """`ingest .` in a folder holding the corpus read its tables as inputs (stopped by the
    commits table: "no column 'text'"): a corpus met in a folder is passed over, and a path in
    a corpus folder is refused, for brat too."""
    _jsonl(tmp_path / "first.jsonl", [{"id": "a1", "text": "Body one"}])
    ingest_paths(corpus, [tmp_path / "first.jsonl"])
    (tmp_path / "first.jsonl").unlink()
    (tmp_path / "in").mkdir()
    _jsonl(tmp_path / "in" / "second.jsonl", [{"id": "a2", "text": "Body two"}])
    summary = ingest_paths(corpus, [tmp_path])
    assert (summary.added, summary.unchanged, summary.refused) == (1, 0, [])
    assert set(_articles(corpus)) == {"a1", "a2"}
    before = _snapshot(corpus)
    inside = corpus.path / "notes.jsonl"
    _jsonl(inside, [{"id": "a3", "text": "Body three"}])
    for path, fmt in [
        (corpus.path, None),
        (corpus.table_path("articles"), "parquet"),
        (inside, None),
        (corpus.path, "brat"),
    ]:
        with pytest.raises(
            IngestError, match=f"^{path} is in the spanbank corpus {corpus.path.resolve()}; "
        ):
            ingest_paths(corpus, [path], fmt=fmt)
    assert _snapshot(corpus) == before


def test_unknown_file_type_is_an_error(corpus, tmp_path):
    f = tmp_path / "notes.md"
    f.write_text("hello")
    with pytest.raises(IngestError, match="notes.md: unknown file type; pass --format"):
        ingest_paths(corpus, [f])
    assert ingest_paths(corpus, [f], fmt="txt").added == 1


def test_missing_path_and_uninitialised_corpus(tmp_path):
    corpus = Corpus.init(tmp_path / "c")
    with pytest.raises(IngestError, match="nope.txt: no such file or directory"):
        ingest_paths(corpus, [tmp_path / "nope.txt"])
    f = tmp_path / "a.txt"
    f.write_text("x")
    with pytest.raises(Exception, match="spanbank init"):
        ingest_paths(Corpus(tmp_path / "missing"), [f])
    with pytest.raises(IngestError, match="unknown format 'docx'"):
        ingest_paths(corpus, [f], fmt="docx")


# -- ids and re-ingest ----------------------------------------------------------------------


def test_ids_are_given_or_hash_of_text(corpus, tmp_path):
    f = _jsonl(
        tmp_path / "a.jsonl",
        [{"id": "given", "text": "A"}, {"text": "B"}, {"id": "  ", "text": "C"}],
    )
    ingest_paths(corpus, [f])
    assert set(_articles(corpus)) == {"given", article_id_for("B"), article_id_for("C")}
    assert article_id_for("B") == article_id_for("B") != article_id_for("B ")


def test_identical_reingest_is_a_noop(corpus, tmp_path):
    f = _jsonl(tmp_path / "a.jsonl", [{"id": "x", "text": "A"}, {"text": "B"}])
    ingest_paths(corpus, [f])
    before = _snapshot(corpus)
    summary = ingest_paths(corpus, [f])
    assert (summary.added, summary.unchanged, summary.refused) == (0, 2, [])
    assert _snapshot(corpus) == before


def test_other_text_for_stored_id_is_refused(corpus, tmp_path):
    ingest_paths(corpus, [_jsonl(tmp_path / "a.jsonl", [{"id": "x", "text": "Original"}])])
    f = _jsonl(tmp_path / "b.jsonl", [{"id": "x", "text": "Edited"}, {"id": "y", "text": "New"}])
    summary = ingest_paths(corpus, [f])
    assert summary.added == 1
    assert len(summary.refused) == 1
    assert (
        summary.refused[0]
        == f"{f}:1: id x is stored with another text (re-ingesting would misalign its annotations)"
        "; the texts cover 'Original', and now 'Edited'"
    )
    arts = _articles(corpus)
    assert arts["x"]["text"] == "Original" and arts["y"]["text"] == "New"
    # only refused rows: nothing stored changes
    ingest_paths(corpus, [_jsonl(tmp_path / "c.jsonl", [{"id": "x", "text": "Edited again"}])])
    assert len(_articles(corpus)) == 2


def test_refusal_alone_leaves_table_bytes_unchanged(corpus, tmp_path):
    ingest_paths(corpus, [_jsonl(tmp_path / "a.jsonl", [{"id": "x", "text": "Original"}])])
    before = _snapshot(corpus)
    summary = ingest_paths(corpus, [_jsonl(tmp_path / "b.jsonl", [{"id": "x", "text": "Edited"}])])
    assert summary.added == 0 and len(summary.refused) == 1
    assert _snapshot(corpus) == before


def test_duplicate_ids_in_one_input(corpus, tmp_path):
    f = _jsonl(
        tmp_path / "a.jsonl",
        [{"id": "d", "text": "First"}, {"id": "d", "text": "Second"}, {"id": "d", "text": "First"}],
    )
    summary = ingest_paths(corpus, [f])
    assert summary.added == 1
    assert summary.refused == [f"{f}:2: duplicate id d (first at {f}:1) with another text"]
    assert _articles(corpus)["d"]["text"] == "First"


@pytest.mark.parametrize("stored_first", [False, True])
def test_a_repeated_id_correcting_metadata_in_one_input_is_said(corpus, tmp_path, stored_first):
    """Hunt M, F1: a second row of one input with the same text and a corrected title was
    counted `unchanged` and dropped, where a second command would have updated the title."""
    if stored_first:
        ingest_paths(corpus, [_jsonl(tmp_path / "s.jsonl", [{"id": "d", "text": "Same"}])])
    f = _jsonl(
        tmp_path / "a.jsonl",
        [
            {"id": "d", "text": "Same", "title": "Old"},
            {"id": "d", "text": "Same", "title": "New", "source": "wire"},
            {"id": "d", "text": "Same"},  # gives no field: no correction
            {"id": "d", "text": "Same", "title": "Old", "published_at": None},
        ],
    )
    summary = ingest_paths(corpus, [f])
    assert summary.refused == [
        f"{f}:2: duplicate id d (first at {f}:1) with the same text and another title, source: "
        "the first row's is kept; ingest the correction on its own to update it"
    ]
    assert summary.unchanged == 2 + stored_first
    assert _articles(corpus)["d"]["title"] == "Old"


def test_empty_and_whitespace_texts_are_refused(corpus, tmp_path):
    f = _jsonl(
        tmp_path / "a.jsonl",
        [
            {"id": "e", "text": ""},
            {"id": "w", "text": " \r\n\t "},
            {"id": "n", "text": None},
            {"id": "m"},
            {"id": "num", "text": 5},
            {"id": "ok", "text": "fine"},
        ],
    )
    summary = ingest_paths(corpus, [f])
    assert summary.added == 1
    assert summary.refused == [
        f"{f}:1: text is empty or whitespace only",
        f"{f}:2: text is empty or whitespace only",
        f"{f}:3: text is missing or not a string",
        f"{f}:4: text is missing or not a string",
        f"{f}:5: text is missing or not a string",
    ]
    (tmp_path / "blank.txt").write_text("\n  \n")
    summary = ingest_paths(corpus, [tmp_path / "blank.txt"])
    assert summary.added == 0 and summary.refused == [
        f"{tmp_path / 'blank.txt'}: text is empty or whitespace only"
    ]


def test_bad_date_is_refused(corpus, tmp_path):
    f = _jsonl(
        tmp_path / "a.jsonl",
        [
            {"id": "a", "text": "x", "date": "not a date"},
            {"id": "b", "text": "y", "date": "2024-01-01"},
        ],
    )
    summary = ingest_paths(corpus, [f])
    assert summary.added == 1 and summary.refused == [
        f"{f}:1: published_at 'not a date' is not a date"
    ]


def test_date_outside_years_1_to_9999_in_utc_is_refused(corpus, tmp_path):
    """Such dates were stored (pandas and Arrow hold them), then every export and `sql` over
    articles died with OverflowError, and a re-ingest with the date fixed said unchanged."""
    out = "is outside years 1..9999 in UTC (what every export can write)"
    f = _jsonl(
        tmp_path / "a.jsonl",
        [
            {"id": "y0", "text": "a", "published_at": "0000-01-01"},
            {"id": "neg", "text": "b", "published_at": -1},
            {"id": "net", "text": "c", "published_at": "0001-01-01T00:00:00+01:00"},
            {"id": "max", "text": "d", "published_at": "9999-12-31T23:00:00-05:00"},
            {"id": "lo", "text": "e", "published_at": "0001-01-01T00:00:00Z"},
            {"id": "hi", "text": "f", "published_at": "9999-12-31T23:59:59Z"},
        ],
    )
    c = tmp_path / "a.csv"
    c.write_text("id,text,published_at\ncy0,g,0000-06-01\ncok,h,2021-01-01\n")
    p = tmp_path / "a.parquet"
    year0 = -62167219200000000  # 0000-01-01 in microseconds since 1970
    pq.write_table(
        pa.table(
            {
                "id": ["py0", "pok"],
                "text": ["i", "j"],
                "published_at": pa.array([year0, 0], pa.timestamp("us")),
            }
        ),
        p,
    )
    summary = ingest_paths(corpus, [f, c, p])
    assert summary.refused == [
        f"{f}:1: published_at '0000-01-01' {out}",
        f"{f}:2: published_at '-1' {out}",
        f"{f}:3: published_at '0001-01-01T00:00:00+01:00' {out}",
        f"{f}:4: published_at '9999-12-31T23:00:00-05:00' {out}",
        f"{c}:2: published_at '0000-06-01' {out}",
        f"{p}:row 0: published_at '0000-01-01 00:00:00' {out}",
    ]
    assert sorted(_articles(corpus)) == ["cok", "hi", "lo", "pok"]
    # what exports and `sql` do with the dates: turn them into Python datetimes
    assert len(corpus.read_arrow("articles").column("published_at").to_pylist()) == 4


def test_non_utf8_file_names_file_and_suggests_encoding(corpus, tmp_path):
    f = tmp_path / "latin.txt"
    f.write_bytes("Caf\xe9 cr\xe8me\nLe ministre a dit.".encode("latin-1"))
    with pytest.raises(IngestError) as info:
        ingest_paths(corpus, [f])
    assert str(f) in str(info.value) and "--encoding" in str(info.value)
    assert corpus.read_arrow("articles").num_rows == 0
    assert ingest_paths(corpus, [f], encoding="latin-1").added == 1
    a = next(iter(_articles(corpus).values()))
    assert a["title"] == "Caf\u00e9 cr\u00e8me"
    c = tmp_path / "latin.csv"
    c.write_bytes("id,text\nl1,na\xefve\n".encode("latin-1"))
    with pytest.raises(IngestError, match=f"{c}: not valid utf-8"):
        ingest_paths(corpus, [c])
    ingest_paths(corpus, [c], encoding="latin-1")
    assert _articles(corpus)["l1"]["text"] == "na\u00efve"
    with pytest.raises(IngestError, match="unknown encoding 'klingon'"):
        ingest_paths(corpus, [c], encoding="klingon")


@pytest.mark.parametrize(
    "encoding", ["rot13", "base64", "hex", "zlib", "uu", "punycode", "undefined", "idna"]
)
@pytest.mark.parametrize("kind", ["jsonl", "txt", "csv"])
def test_an_encoding_that_is_not_one_of_text_files_is_one_line(corpus, tmp_path, encoding, kind):
    """Python's other codecs passed codecs.lookup() and ended in tracebacks (TypeError,
    binascii.Error, zlib.error, ValueError, UnicodeError)."""
    f = tmp_path / f"a.{kind}"
    body = {"jsonl": '{"id":"a","text":"Some text."}\n', "csv": "id,text\na,Some text.\n"}
    f.write_text(body.get(kind, "Title\nBody.\n"))
    with pytest.raises(IngestError) as info:
        ingest_paths(corpus, [f], encoding=encoding)
    assert str(info.value) == (
        f"{encoding!r} is not an encoding of text files; pass one such as utf-8, latin-1, "
        "cp1252 or utf-16"
    )
    assert corpus.read_arrow("articles").num_rows == 0


def test_a_bad_file_among_good_ones_stores_nothing(corpus, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.txt").write_text("good")
    (d / "b.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(IngestError, match="b.txt"):
        ingest_paths(corpus, [d])
    assert corpus.read_arrow("articles").num_rows == 0


def test_unknown_or_missing_columns(corpus, tmp_path):
    f = _jsonl(tmp_path / "a.jsonl", [{"id": "a", "body": "x"}])
    with pytest.raises(IngestError) as info:
        ingest_paths(corpus, [f])
    assert str(info.value) == f"{f}: no column 'text' (columns: id, body); pass --text-col"
    with pytest.raises(IngestError, match=r"no column 'uid' for id \(columns: id, body\)"):
        ingest_paths(corpus, [f], columns=Columns(id="uid", text="body"))
    with pytest.raises(IngestError, match="no column 'hl' for title"):
        ingest_paths(corpus, [f], columns=Columns(text="body", title="hl"))
    pd.DataFrame({"x": ["1"]}).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(IngestError, match="a.csv: no column 'text'"):
        ingest_paths(corpus, [tmp_path / "a.csv"])
    assert corpus.read_arrow("articles").num_rows == 0


def test_malformed_jsonl_line_refused_with_line_number(corpus, tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text(
        '{"id": "a", "text": "ok"}\n{"id": "b", "text": \n\n["a list"]\n{"id": "c", "text": "also ok"}\n',
        encoding="utf-8",
    )
    summary = ingest_paths(corpus, [f])
    assert summary.added == 2
    assert len(summary.refused) == 2
    assert summary.refused[0].startswith(f"{f}:2: not valid JSON")
    assert summary.refused[1] == f"{f}:4: a line must be a JSON object"


def test_jsonl_line_separators_inside_strings(corpus, tmp_path):
    # U+2028, NEL, form feed etc. are not line ends in JSON Lines
    text = "a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\rh"
    f = tmp_path / "a.jsonl"
    f.write_text(
        json.dumps({"id": "s", "text": text}, ensure_ascii=False)
        + "\r\n"
        + json.dumps({"id": "t", "text": "x"})
        + "\n",
        encoding="utf-8",
    )
    summary = ingest_paths(corpus, [f])
    assert (summary.added, summary.refused) == (2, [])
    assert _articles(corpus)["s"]["text"] == text


def test_byte_order_marks(corpus, tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + b'{"id": "j", "text": "hi"}\n')
    (tmp_path / "a.csv").write_bytes(b"\xef\xbb\xbfid,text\nc,hello\n")
    summary = ingest_paths(corpus, [tmp_path / "a.jsonl", tmp_path / "a.csv"])
    assert (summary.added, summary.refused) == (2, [])
    assert set(_articles(corpus)) == {"j", "c"}


def test_empty_inputs(corpus, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    assert ingest_paths(corpus, [tmp_path / "empty.jsonl"]).added == 0
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(IngestError, match="empty.csv: not a readable CSV"):
        ingest_paths(corpus, [tmp_path / "empty.csv"])
    (tmp_path / "bad.parquet").write_bytes(b"nope")
    with pytest.raises(IngestError, match="bad.parquet: not a readable Parquet"):
        ingest_paths(corpus, [tmp_path / "bad.parquet"])
    (tmp_path / "d").mkdir()
    with pytest.raises(IngestError, match="no input files"):
        ingest_paths(corpus, [tmp_path / "d"])


def test_locked_corpus(corpus, tmp_path):
    f = _jsonl(tmp_path / "a.jsonl", [{"text": "x"}])
    with corpus.writer():
        with pytest.raises(LockError, match="--wait"):
            ingest_paths(Corpus(corpus.path), [f])
    assert ingest_paths(corpus, [f]).added == 1


def test_progress_is_reported(corpus, tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(f"text {i}")
    calls = []
    ingest_paths(corpus, [tmp_path / f"{i}.txt" for i in range(3)], progress=calls.append)
    assert calls == [("reading", 1, 3), ("reading", 2, 3), ("reading", 3, 3)]


# -- property: arbitrary Unicode is stored exactly or refused with a reason ------------------

unicode_text = st.lists(  # st.text() never yields lone surrogates; JSON escapes can
    st.one_of(
        st.characters(),  # any code point, control characters included
        st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
        st.sampled_from(["\r\n", "\r", "\n", "\u2028", "\x85", "\x00", "\ufeff", " "]),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(unicode_text, min_size=1, max_size=4),
    long_line=st.booleans(),
    ascii_json=st.booleans(),
)
def test_arbitrary_unicode_is_stored_exactly_or_refused(texts, long_line, ascii_json):
    if long_line:
        texts = [t * 2000 + "x" * 100_000 for t in texts[:1]]
    # JSON reads an escaped surrogate pair as the one character it encodes; lone ones stay lone
    texts = [
        t.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass") for t in texts
    ]
    has_surrogate = any(0xD800 <= ord(c) <= 0xDFFF for t in texts for c in t)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = Corpus.init(tmp / "c")
        f = tmp / "in.jsonl"
        rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)]
        f.write_text(
            "".join(json.dumps(r, ensure_ascii=ascii_json) + "\n" for r in rows),
            encoding="utf-8",
            errors="surrogatepass",
        )
        if has_surrogate and not ascii_json:  # raw surrogates in the file: not UTF-8 at all
            with pytest.raises(IngestError, match=f"{f}: not valid utf-8 .*--encoding"):
                ingest_paths(corpus, [f])
            assert corpus.read_arrow("articles").num_rows == 0
            return
        summary = ingest_paths(corpus, [f])
        stored = _articles(corpus) if corpus.has("articles") else {}
        refused = {r.split(": ", 1)[0]: r.split(": ", 1)[1] for r in summary.refused}
        assert summary.added == len(stored)
        for i, t in enumerate(texts):
            where = f"{f}:{i + 1}"
            if f"r{i}" in stored:
                assert stored[f"r{i}"]["text"] == t
                assert where not in refused
            else:
                assert where in refused, (t, summary.refused)
                if not t.strip():
                    assert refused[where] == "text is empty or whitespace only"
                elif "\x00" in t:
                    assert refused[where] == "text contains a NUL character (U+0000)"
                else:
                    assert refused[where] == "text contains a lone surrogate (not valid Unicode)"
                    assert any(0xD800 <= ord(c) <= 0xDFFF for c in t)


# -- inputs bigger than one batch ----------------------------------------------------------


@pytest.fixture
def small_batches(monkeypatch):
    import spanbank.corpus.ingest as ingest

    monkeypatch.setattr(ingest, "BATCH_ROWS", 4)
    monkeypatch.setattr(ingest, "READ_BLOCK", 16)  # lines and characters split across blocks too
    return ingest


def _rows_25():
    rows = [
        {"id": f"r{i}", "text": f"text {i} \u00e9\U0001f600", "date": "2024-01-02"}
        for i in range(25)
    ]
    rows[14] = {"id": "r1", "text": "other text"}  # duplicate id, batch 4 vs batch 1
    rows[17] = {"id": "r2", "text": "text 2 \u00e9\U0001f600"}  # same text again: unchanged
    rows[19] = {"text": "no id"}
    rows[21]["date"] = "nope"
    rows[22]["text"] = " \u3000\x1c"  # whitespace to str.strip()
    return rows


def _write_inputs(tmp_path, rows):
    j = _jsonl(tmp_path / "a.jsonl", rows)
    lines = j.read_text("utf-8").split("\n")
    lines.insert(20, '{"id": "broken", "text": ')  # malformed, in a later batch
    j.write_text("\n".join(lines), encoding="utf-8")
    df = pd.DataFrame(
        [{"id": r.get("id", ""), "text": r["text"], "date": r.get("date", "")} for r in rows]
    )
    c = tmp_path / "b.csv"
    df.assign(id=df["id"].map(lambda i: f"c{i}" if i else "")).to_csv(c, index=False)
    p = tmp_path / "c.parquet"
    pq.write_table(
        pa.Table.from_pandas(df.assign(id=df["id"].map(lambda i: f"p{i}" if i else None))), p
    )
    return [j, c, p]


def test_batched_ingest_matches_whole_file_ingest(tmp_path, monkeypatch):
    import spanbank.corpus.ingest as ingest

    results = []
    for rows_per_batch in (4, 1000):
        monkeypatch.setattr(ingest, "BATCH_ROWS", rows_per_batch)
        monkeypatch.setattr(ingest, "READ_BLOCK", 16 if rows_per_batch == 4 else 1 << 22)
        d = tmp_path / str(rows_per_batch)
        d.mkdir()
        corpus = Corpus.init(d / "corpus")
        _jsonl(
            d / "first.jsonl",
            [{"id": "r3", "text": "stored"}, {"id": "r4", "text": "text 4 \u00e9\U0001f600"}],
        )
        ingest_paths(corpus, [d / "first.jsonl"])
        files = _write_inputs(d, _rows_25())
        summary = ingest_paths(corpus, files)
        arts = corpus.read("articles").drop(columns=["ingested_at"])
        arts["origin"] = arts["origin"].str.replace(str(d), "")
        results.append(
            (
                summary.as_dict() | {"reasons": [r.replace(str(d), "") for r in summary.refused]},
                arts.sort_values("article_id").reset_index(drop=True),
            )
        )
        assert sorted(p.name for p in corpus.path.iterdir() if p.name.startswith(".")) == [".lock"]
    (batched, arts_b), (whole, arts_w) = results
    assert batched == whole
    pd.testing.assert_frame_equal(arts_b, arts_w)
    reasons = batched["reasons"]
    assert "/a.jsonl:21: not valid JSON (Expecting value)" in reasons
    assert "/a.jsonl:15: duplicate id r1 (first at /a.jsonl:2) with another text" in reasons
    assert next(r for r in reasons if r.startswith("/a.jsonl:4:")).startswith(
        "/a.jsonl:4: id r3 is stored with another text (re-ingesting would misalign its annotations)"
        "; the texts cover "
    )
    assert (
        "/c.parquet:row 14: duplicate id pr1 (first at /c.parquet:row 1) with another text"
        in reasons
    )
    assert "/b.csv:16: duplicate id cr1 (first at /b.csv:3) with another text" in reasons
    assert "/a.jsonl:24: text is empty or whitespace only" in reasons
    # per file 3 refused and r2 again; in a.jsonl r3 (clash) and r4 (stored); "no id" twice again
    assert batched["added"] == 3 * (25 - 4) - 2 - 2
    assert batched["unchanged"] == 3 + 1 + 2
    assert article_id_for("no id") in set(arts_b["article_id"])


def test_bad_later_batch_leaves_corpus_untouched(corpus, tmp_path, small_batches):
    ingest_paths(corpus, [_jsonl(tmp_path / "first.jsonl", [{"id": "x", "text": "kept"}])])
    before = _snapshot(corpus)
    rows = [{"id": f"r{i}", "text": f"t{i}"} for i in range(30)] + [{"id": "r1", "text": "again"}]
    j = _jsonl(tmp_path / "a.jsonl", rows)
    j.write_bytes(
        j.read_bytes() + b'{"id": "z", "text": "caf\xe9"}\n'
    )  # not UTF-8, after 7 batches
    with pytest.raises(
        IngestError, match=f"{j}: not valid utf-8 \\(byte {j.stat().st_size - 4}\\)"
    ):
        ingest_paths(corpus, [j])
    c = tmp_path / "a.csv"
    c.write_text(
        "id,text\n" + "".join(f"c{i},t{i}\n" for i in range(30)) + "c99,t,extra\n", encoding="utf-8"
    )
    with pytest.raises(IngestError, match=f"{c}: not a readable CSV file"):
        ingest_paths(corpus, [tmp_path / "first.jsonl", c])
    assert _snapshot(corpus) == before
    assert sorted(p.name for p in corpus.path.iterdir() if p.name.startswith(".")) == [".lock"]
    assert set(_articles(corpus)) == {"x"}


def test_jsonl_columns_are_those_of_the_whole_file(corpus, tmp_path, small_batches):
    rows = [{"id": f"r{i}", "body": f"t{i}"} for i in range(10)] + [
        {"id": "h", "body": "t", "hl": "Headline"}
    ]
    f = _jsonl(tmp_path / "a.jsonl", rows)
    summary = ingest_paths(
        corpus, [f], columns=Columns(text="body", title="hl")
    )  # hl only in the last batch
    assert summary.added == 11
    assert _articles(corpus)["h"]["title"] == "Headline"
    with pytest.raises(IngestError, match=r"no column 'text' \(columns: id, body, hl\)"):
        ingest_paths(corpus, [f])


def test_a_symlinked_folder_is_read_once_and_a_link_loop_ends(corpus, tmp_path):
    """`ingest inbox/` with `inbox/2024 -> ../archive/2024` read only inbox's own files (rglob
    does not enter a symlinked folder) and said nothing, while a symlinked file was read."""
    from spanbank.corpus.ingest import _input_files

    inbox, archive = tmp_path / "inbox", tmp_path / "archive" / "2024"
    (inbox / "real").mkdir(parents=True)
    archive.mkdir(parents=True)
    (inbox / "one.txt").write_text("Title one\nBody one.")
    (inbox / "real" / "four.txt").write_text("Title four\nBody four.")
    (archive / "two.txt").write_text("Title two\nBody two.")
    (archive / "three.txt").write_text("Title three\nBody three.")
    (inbox / "2024").symlink_to(archive)
    (inbox / "again").symlink_to(archive)  # one folder through two links: read once
    (inbox / "loop").symlink_to(inbox)  # a loop: inbox is read already
    (inbox / "a-real").symlink_to(inbox / "real")  # read at its own path, not the link's
    (archive / "up").symlink_to(tmp_path / "archive")  # back into the archive: nothing new
    (inbox / "tables").symlink_to(corpus.table_path("articles"))  # a corpus: passed over
    files = [f.relative_to(inbox).as_posix() for f in _input_files(inbox)]
    assert files == ["2024/three.txt", "2024/two.txt", "one.txt", "real/four.txt"]
    summary = ingest_paths(corpus, [inbox])
    assert summary.added == 4
    assert sorted(corpus.read("articles")["title"]) == [
        "Title four",
        "Title one",
        "Title three",
        "Title two",
    ]


def test_txt_drops_a_bom_and_refuses_a_nul_byte_anywhere(corpus, tmp_path):
    """A .txt kept its UTF-8 BOM in text and title (JSON Lines and CSV drop it: one article
    saved with and without a BOM became two), and a NUL byte past the first 8 KB was stored
    while one at byte 106 was refused as binary; so was one in a CSV or a JSON escape."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in/bom.txt").write_bytes(b"\xef\xbb\xbfMy Title\nBody.\n")
    (tmp_path / "in/plain.txt").write_bytes(b"My Title\nBody.\n")
    summary = ingest_paths(corpus, [tmp_path / "in"])
    assert summary.added == 1 and summary.unchanged == 1
    (a,) = _articles(corpus).values()
    assert a["title"] == "My Title" and a["text"] == "My Title\nBody.\n"
    for at in (100, 9000, 200_000):
        f = tmp_path / f"nul-{at}.txt"
        f.write_bytes(b"Title\n" + b"a" * at + b"\x00" + b"b" * 10)
        with pytest.raises(IngestError) as info:
            ingest_paths(corpus, [f])
        assert str(info.value) == (
            f"{f}: binary data (a NUL byte at byte {at + 6}), not a text file; "
            "leave it out (or pass --skip-bad)"
        )
    assert len(_articles(corpus)) == 1
    rows = tmp_path / "nul.csv"  # past CSV's first 8 KB, and in JSON as an escape
    rows.write_text("id,text\nx," + "a" * 9000 + "\x00b\ny,fine\n")
    escaped = tmp_path / "nul.jsonl"
    escaped.write_text('{"id": "z", "text": "a \\u0000 b"}\n')
    summary = ingest_paths(corpus, [rows, escaped])
    assert summary.added == 1 and summary.refused == [
        f"{rows}:2: text contains a NUL character (U+0000)",
        f"{escaped}:1: text contains a NUL character (U+0000)",
    ]
    f16 = tmp_path / "wide.txt"  # UTF-16 holds NUL bytes: text all the same
    f16.write_bytes(("Wide\n" + "x" * 9000).encode("utf-16"))
    assert ingest_paths(corpus, [f16], encoding="utf-16").added == 1


def test_reingest_updates_the_metadata_it_gives_and_nothing_else(corpus, tmp_path):
    """JSON Lines, CSV and Parquet alike: a stored article (same id, same text) whose row now
    gives another title, source or date gets it (the text, and fields the row leaves out, stay);
    a date written otherwise for the same instant is no change; a re-run changes nothing. It was
    `unchanged: 1` and the new metadata dropped, for every format but brat."""
    first = _jsonl(
        tmp_path / "a.jsonl",
        [
            {"id": "j1", "text": "one", "title": "Old", "source": "x", "url": "http://u/1"},
            {"id": "j2", "text": "two", "published_at": "2020-01-01T00:00:00Z"},
        ],
    )
    (tmp_path / "a.csv").write_text("id,text,title\nc1,three,Old\n")
    pq.write_table(
        pa.table({"id": ["p1"], "text": ["four"], "source": ["s"]}), tmp_path / "a.parquet"
    )
    ingest_paths(corpus, [first, tmp_path / "a.csv", tmp_path / "a.parquet"])
    before = _articles(corpus)

    again = _jsonl(
        tmp_path / "b.jsonl",
        [
            {"id": "j1", "text": "one", "title": "New"},  # source and url left out: kept
            {
                "id": "j2",
                "text": "two",
                "published_at": "2020-01-01T01:00:00+01:00",
            },  # same instant
        ],
    )
    (tmp_path / "b.csv").write_text("id,text,title,source\nc1,three,Old,wire\n")
    pq.write_table(
        pa.table({"id": ["p1"], "text": ["four"], "source": ["s"]}), tmp_path / "b.parquet"
    )
    order = corpus.read("articles")["article_id"].tolist()
    summary = ingest_paths(corpus, [again, tmp_path / "b.csv", tmp_path / "b.parquet"])
    assert (summary.added, summary.unchanged, summary.metadata_updated) == (0, 4, 2)
    # updated where they stand: moved to the end, they changed the export's order (hunt I, 11)
    assert corpus.read("articles")["article_id"].tolist() == order
    after = _articles(corpus)
    assert (after["j1"]["title"], after["j1"]["source"], after["j1"]["url"]) == (
        "New",
        "x",
        "http://u/1",
    )
    assert (after["c1"]["title"], after["c1"]["source"]) == ("Old", "wire")
    for aid in ("j2", "p1"):
        assert after[aid] == before[aid]
    for aid in before:
        assert {k: after[aid][k] for k in ("text", "text_sha256", "ingested_at", "origin")} == {
            k: before[aid][k] for k in ("text", "text_sha256", "ingested_at", "origin")
        }

    files = _snapshot(corpus)
    rerun = ingest_paths(corpus, [again, tmp_path / "b.csv", tmp_path / "b.parquet"])
    assert (rerun.added, rerun.unchanged, rerun.metadata_updated) == (0, 4, 0)
    assert _snapshot(corpus) == files  # nothing written


def test_a_lone_surrogate_in_a_metadata_field_is_refused_not_a_traceback(corpus, tmp_path):
    """Hunt O, F11: `"title": "\\udfff"` (a valid JSON escape) was a UnicodeEncodeError
    traceback, and none of the file's rows were stored."""
    f = tmp_path / "a.jsonl"
    lines = [
        r'{"id": "s1", "text": "ok text", "title": "\udfff"}',
        r'{"id": "s2", "text": "fine", "source": "x\ud800y"}',
        '{"id": "s3", "text": "good"}',
    ]
    f.write_text("\n".join(lines) + "\n")
    summary = ingest_paths(corpus, [f])
    assert summary.refused == [
        f"{f}:1: title contains a lone surrogate (not valid Unicode)",
        f"{f}:2: source contains a lone surrogate (not valid Unicode)",
    ]
    assert summary.added == 1 and list(corpus.read("articles")["article_id"]) == ["s3"]
