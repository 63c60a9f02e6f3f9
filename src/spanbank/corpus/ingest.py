"""Ingest readers: txt / jsonl / csv / parquet files and brat standoff folders -> corpus tables."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spanbank.corpus import delta
from spanbank.corpus.articles import texts_of
from spanbank.corpus.brat import IDS_FILE, article_id_of, parse_ann
from spanbank.corpus.metadata import (
    FIELDS,
    metadata_changes,
    parse_dates,
    read_metadata,
    with_metadata,
)
from spanbank.corpus.store import CONFIG_FILE, SCHEMA_FILE, Corpus, Planned, temp_prefix
from spanbank.corpus.tables import TS, to_arrow
from spanbank.errors import IngestError
from spanbank.parallel import Engine, asked_workers
from spanbank.parallel import engine as parallel_engine
from spanbank.progress import Event, Progress
from spanbank.schema import attributes_json
from spanbank.spans import where_differ

FORMATS = ("txt", "jsonl", "csv", "parquet", "brat")
SUFFIXES = {
    ".txt": "txt",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
}
META = ("title", "source", "url", "published_at", "language")
# rows per batch when reading inputs and appending: memory is bounded by a batch, not by the input
BATCH_ROWS = 50_000
SHOWN_CLASHES = 20  # refused re-ingests whose message shows where the texts differ
READ_BLOCK = 1 << 22  # bytes of a JSON Lines / CSV file decoded at a time
SPOOL_COMPRESSION = "none"  # the temp file of new rows: written and read once, fast beats small


@dataclass
class Columns:
    """Which input columns hold the article fields (None: try the usual names)."""

    id: str | None = None
    text: str = "text"
    title: str | None = None
    source: str | None = None
    url: str | None = None
    published_at: str | None = None
    language: str | None = None

    def pick(self, field_: str, available: Iterable[str]) -> str | None:
        given = getattr(self, field_)
        if given is not None:
            return given
        guesses = {
            "id": ("article_id", "id"),
            "title": ("title", "headline"),
            "source": ("source", "outlet"),
            "url": ("url", "link"),
            "published_at": ("published_at", "date", "published"),
            "language": ("language", "lang"),
        }[field_]
        return next((g for g in guesses if g in available), None)


@dataclass
class IngestSummary:
    added: int = 0
    unchanged: int = 0
    refused: list[str] = field(default_factory=list)
    annotations: int = 0
    spans: int = 0
    relations: int = 0
    rejected: list[str] = field(default_factory=list)
    ignored: int = 0
    ignored_labels: dict[str, int] = field(default_factory=dict)  # brat marker label -> T lines
    recovered: int = 0  # brat span texts a raw newline had cut, rebuilt from their offsets
    metadata_updated: int = 0  # stored articles (same text) whose metadata this ingest changed
    skipped: list[str] = field(
        default_factory=list
    )  # whole files left out (--skip-bad), with the reason

    def as_dict(self) -> dict:
        out = {"added": self.added, "unchanged": self.unchanged, "refused": len(self.refused)}
        if self.skipped:
            out["skipped_files"] = len(self.skipped)
        if self.metadata_updated:
            out["metadata_updated"] = self.metadata_updated
        if self.annotations or self.rejected:
            out |= {
                "annotations": self.annotations,
                "spans": self.spans,
                "relations": self.relations,
                "rejected": len(self.rejected),
                "ignored": self.ignored,
            }
            if self.recovered:
                out["span_texts_recovered"] = self.recovered
            if self.ignored_labels:
                out["ignored_labels"] = dict(sorted(self.ignored_labels.items()))
        return out | {"reasons": self.skipped + self.refused + self.rejected}


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def article_id_for(text: str) -> str:
    """The id of an article that came without one: a hash of its text."""
    return "a" + text_sha256(text)[:16]


# what a file is, by its first bytes: such a file is never text, whatever --encoding says
MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a zip archive (or a .docx/.xlsx/.odt file)"),
    (b"\x1f\x8b", "gzip-compressed"),
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"(\xb5/\xfd", "zstd-compressed"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"PAR1", "a Parquet file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "a program (ELF)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document (.doc/.xls)"),
)
SNIFF_BYTES = 8192


def _sniff(head: bytes, path: Path, encoding: str) -> None:
    """Refuse bytes that are not text (a known magic number, or a NUL byte outside UTF-16/32), saying what they are."""
    for magic, what in MAGIC:
        if head.startswith(magic):
            raise IngestError(f"{path}: {what}, not a text file; leave it out (or pass --skip-bad)")
    wide = (
        codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")) if _known(encoding) else False
    )
    if not wide and b"\x00" in head:
        raise IngestError(
            f"{path}: binary data (a NUL byte at byte {head.index(0)}), not a text file; "
            "leave it out (or pass --skip-bad)"
        )


# codecs Python counts as text encodings that are not how a text file is written: domain names
# (idna, punycode) and Python's placeholder that refuses everything (undefined)
NOT_FILE_ENCODINGS = frozenset({"idna", "punycode", "undefined"})


def _known(encoding: str) -> bool:
    """True for an encoding of text files; an unknown name, or a codec that is not one (rot13,
    base64, hex, zlib, uu: bytes-to-bytes or str-to-str; idna, punycode, undefined), is an
    IngestError."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise IngestError(f"unknown encoding {encoding!r}") from None
    if not info._is_text_encoding or info.name in NOT_FILE_ENCODINGS:
        raise IngestError(
            f"{encoding!r} is not an encoding of text files; pass one such as utf-8, latin-1, "
            "cp1252 or utf-16"
        )
    return True


GZIP_ERRORS = (
    gzip.BadGzipFile,
    EOFError,
    zlib.error,
)  # a corrupt or truncated .gz, found while reading


def _open_text_bytes(path: Path, encoding: str):
    """A text input as a binary file object: gzip is decompressed on the fly; binary files are refused."""
    fh = open(path, "rb")
    try:
        if fh.peek(2)[:2] == b"\x1f\x8b":
            fh = gzip.GzipFile(fileobj=fh, mode="rb")
            try:
                head = fh.peek(SNIFF_BYTES)[:SNIFF_BYTES]
            except GZIP_ERRORS as exc:
                raise IngestError(f"{path}: not a readable gzip file ({exc})") from None
        else:
            head = fh.peek(SNIFF_BYTES)[:SNIFF_BYTES]
        _sniff(head, path, encoding)
    except BaseException:
        fh.close()
        raise
    return fh


def _read_all(path: Path, encoding: str) -> bytes:
    """A whole text file's bytes (a .txt, a brat .txt or .ann): a NUL byte anywhere in it is
    binary data, as one in the first SNIFF_BYTES is (a NUL in JSON Lines is a bad line)."""
    with _open_text_bytes(path, encoding) as fh:
        try:
            data = fh.read()
        except GZIP_ERRORS as exc:
            raise IngestError(f"{path}: not a readable gzip file ({exc})") from None
    if len(data) > SNIFF_BYTES:
        _sniff(data, path, encoding)
    return data


def _decode(data: bytes, path: Path, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"{path}: not valid {encoding} (byte {exc.start}); pass --encoding (e.g. --encoding latin-1)"
        ) from None
    except UnicodeError:
        raise IngestError(
            f"{path}: not valid {encoding}; pass --encoding (e.g. --encoding latin-1)"
        ) from None
    except LookupError:
        raise IngestError(f"unknown encoding {encoding!r}") from None


def _input_files(p: Path) -> list[Path]:
    """The files of input `p` (a file, or a folder's files, sorted). A corpus's tables are not
    articles: a path in a corpus folder is refused, a corpus met in a folder passed over."""
    if not p.exists():
        raise IngestError(f"{p}: no such file or directory")
    start = p.resolve() if p.is_dir() else p.resolve().parent
    for folder in (start, *start.parents):
        if _is_corpus(folder):
            raise IngestError(
                f"{p} is in the spanbank corpus {folder}; ingest reads article files, not a corpus's tables"
            )
    if not p.is_dir():
        return [p]
    files = _folder_files(p)
    corpora = {f.parent for f in files if f.name == CONFIG_FILE and _is_corpus(f.parent)}
    if not corpora:
        return files
    return [f for f in files if corpora.isdisjoint(f.parents)]


def _folder_files(root: Path) -> list[Path]:
    """The files under folder `root`, sorted, symlinked folders followed (as a symlinked file is
    read): each folder is read once, found by its real path, so a link loop ends and a link to a
    folder read elsewhere adds nothing. A folder's own sub-folders come before the folders its
    links lead to, so a file is named by its path without links where it has one. A link
    into a corpus is passed over, as a corpus met in a folder is."""
    visited: set[str] = set()
    files: list[Path] = []
    pending = [str(root)]
    while pending:
        links: list[str] = []
        for top in pending:
            stack = [top]
            while stack:
                folder = stack.pop()
                real = os.path.realpath(folder)
                if real in visited:
                    continue
                visited.add(real)
                try:
                    with os.scandir(folder) as it:
                        entries = list(it)
                except OSError:  # an unreadable folder: passed over, as before
                    continue
                for e in entries:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_symlink() and e.is_dir():
                        links.append(e.path)
                    elif e.is_file():
                        files.append(Path(e.path))
        pending = sorted(
            link
            for link in links
            if not any(map(_is_corpus, (t := Path(os.path.realpath(link)), *t.parents)))
        )
    return sorted(files)


def _is_corpus(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() and (folder / SCHEMA_FILE).is_file()


def _expand(paths: Iterable[str | Path], fmt: str | None) -> list[tuple[Path, str]]:
    out = []
    for p in map(Path, paths):
        files = _input_files(p)
        for f in files:
            kind = fmt or _kind_of(f)
            if kind is None:
                if p.is_dir():
                    continue  # other files in a folder are not articles
                raise IngestError(
                    f"{f}: unknown file type; pass --format ({', '.join(FORMATS[:-1])}; .gz is read too)"
                )
            if p.is_dir() and fmt and _kind_of(f) != fmt:
                continue
            out.append((f, kind))
    return out


def _kind_of(path: Path) -> str | None:
    """The format a file's suffix names; `x.jsonl.gz` is JSON Lines (read through gzip)."""
    suffixes = [x.lower() for x in path.suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes.pop()
    return SUFFIXES.get(suffixes[-1]) if suffixes else None


class _Decoded(io.TextIOBase):
    """A binary file decoded a block at a time; a decoding error names the file and the byte."""

    def __init__(self, fh, path: Path, encoding: str, offset: int = 0):
        try:
            self._dec = codecs.getincrementaldecoder(encoding)()
        except LookupError:
            raise IngestError(f"unknown encoding {encoding!r}") from None
        self._fh, self._path, self._encoding = fh, path, encoding
        self._fed = offset  # bytes of the file before those given to the decoder so far
        self._offset = offset  # where in the file `fh` starts (a piece of a split file)
        self._start = offset == 0  # only the file's start can hold a BOM
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        """Some decoded text (a block, whatever `size`); "" only at the end. A leading BOM is dropped."""
        while not self._eof:
            try:
                data = self._fh.read(READ_BLOCK)
            except GZIP_ERRORS as exc:
                raise IngestError(f"{self._path}: not a readable gzip file ({exc})") from None
            self._eof = not data
            if self._fed == 0 and self._offset == 0:
                self._native_order(data)
            state = self._dec.getstate()
            pending = (
                len(state[0]) if isinstance(state, tuple) and isinstance(state[0], bytes) else 0
            )
            try:
                text = self._dec.decode(data, final=self._eof)
            except UnicodeDecodeError as exc:
                raise IngestError(
                    f"{self._path}: not valid {self._encoding} (byte {self._fed - pending + exc.start}); "
                    "pass --encoding (e.g. --encoding latin-1)"
                ) from None
            except UnicodeError:
                raise IngestError(
                    f"{self._path}: not valid {self._encoding}; pass --encoding (e.g. --encoding latin-1)"
                ) from None
            self._fed += len(data)
            if self._start and text:
                self._start = False
                text = text.removeprefix("\ufeff")  # a BOM is not JSON, nor a column name
            if text:
                return text
        return ""

    def _native_order(self, head: bytes) -> None:
        """UTF-16/32 without a BOM: native byte order, as bytes.decode does (the incremental decoder refuses)."""
        name = codecs.lookup(self._encoding).name
        boms = {
            "utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE),
            "utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE),
        }.get(name)
        if boms and not head.startswith(boms):
            self._dec = codecs.getincrementaldecoder(
                f"{name}-{'le' if sys.byteorder == 'little' else 'be'}"
            )()

    def lines(self) -> Iterator[str]:
        """The text split at "\n" only: splitlines() would also split at U+2028, NEL, form feed...
        inside strings written with ensure_ascii=False."""
        pending: list[str] = []
        while text := self.read():
            if "\n" not in text:
                pending.append(text)
                continue
            parts = text.split("\n")
            parts[0] = "".join(pending) + parts[0]
            pending = [parts.pop()]
            yield from parts
        yield "".join(pending)


def _label(path: Path, kind: str) -> Callable[[int], str]:
    """How reasons name a row of an input file from its `_where` number."""
    if kind == "txt":
        return lambda n: str(path)
    if kind == "parquet":
        return lambda n: f"{path}:row {n}"
    return lambda n: (
        f"{path}:{n}"
    )  # line of a JSON Lines file, or of a CSV file counting its header


def read_batches(
    path: Path,
    kind: str,
    encoding: str = "utf-8",
    rows: int | None = None,
    piece: _Piece | None = None,
) -> Iterator[pd.DataFrame]:
    """One input file as DataFrames of at most `rows` rows; `_where` numbers the rows (see `_label`).

    JSON Lines batches have object columns and list malformed lines in `attrs["bad"]`; a batch can
    lack a column that other batches of the file have. `piece`: only that byte range of a JSON
    Lines file or those row groups of a Parquet file (see `_plan`), numbered as in the whole file.
    """
    rows = rows or BATCH_ROWS
    if piece is not None and piece.stop is not None:
        if kind == "jsonl":
            yield from _jsonl_batches(path, encoding, rows, piece)
            return
        if kind == "parquet":
            yield from _parquet_batches(path, rows, piece)
            return
    if kind == "txt":
        # a BOM is not text: dropped, as JSON Lines and CSV drop it (brat keeps it: offsets count it)
        text = _decode(_read_all(path, encoding), path, encoding).removeprefix("\ufeff")
        title = text.split("\n", 1)[0].strip() if text.strip() else ""
        yield pd.DataFrame({"text": [text], "title": [title], "_where": [0]})
    elif kind == "jsonl":
        with _open_text_bytes(path, encoding) as fh:
            yield from _jsonl_lines(_Decoded(fh, path, encoding).lines(), path, rows, 0)
    elif kind == "csv":
        with _open_text_bytes(path, encoding) as fh:
            start = 2  # line 1 is the header
            try:
                # decoded by us: errors name the file, and a BOM (Excel writes one) is not a column name
                for df in pd.read_csv(
                    _Decoded(fh, path, encoding), dtype=str, keep_default_na=False, chunksize=rows
                ):
                    df["_where"] = np.arange(start, start + len(df))
                    start += len(df)
                    yield df
            except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
                raise IngestError(
                    f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})"
                ) from None
    elif kind == "parquet":
        yield from _parquet_batches(path, rows, None)
    else:
        raise IngestError(f"unknown format {kind!r}; use one of {', '.join(FORMATS)}")


def _jsonl_lines(lines: Iterable[str], path: Path, rows: int, base: int) -> Iterator[pd.DataFrame]:
    """JSON Lines frames of lines numbered from `base` + 1."""
    objs, where, bad = [], [], []
    for n, line in enumerate(lines, base + 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append((n, f"{path}:{n}: not valid JSON ({exc.msg})"))
            continue
        if not isinstance(obj, dict):
            bad.append((n, f"{path}:{n}: a line must be a JSON object"))
            continue
        objs.append(obj)
        where.append(n)
        if len(objs) >= rows:
            yield _jsonl_frame(objs, where, bad)
            objs, where, bad = [], [], []
    if objs or bad:
        yield _jsonl_frame(objs, where, bad)


def _jsonl_batches(path: Path, encoding: str, rows: int, piece: _Piece) -> Iterator[pd.DataFrame]:
    """The lines of one byte range of an uncompressed UTF-8 JSON Lines file (it starts a line)."""
    if piece.start == 0:
        fh = _open_text_bytes(path, encoding)  # the file's head: sniffed as a whole file is
    else:
        fh = open(path, "rb")
        fh.seek(piece.start)
    with fh:
        decoded = _Decoded(_Range(fh, piece.stop - piece.start), path, encoding, piece.start)
        yield from _jsonl_lines(decoded.lines(), path, rows, piece.base)


class _Range:
    """At most `size` bytes of a binary file object, from where it stands."""

    def __init__(self, fh, size: int):
        self._fh, self._left = fh, size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._fh.read(n) if n else b""
        self._left -= len(data)
        return data


def _parquet_batches(path: Path, rows: int, piece: _Piece | None) -> Iterator[pd.DataFrame]:
    """A Parquet file's rows (or those of the row groups of `piece`), `_where` from the file's start."""
    start = piece.base if piece is not None else 0
    try:
        with pq.ParquetFile(path) as pf:
            groups = None if piece is None else list(range(piece.start, piece.stop))
            for batch in pf.iter_batches(batch_size=rows, row_groups=groups):
                df = batch.to_pandas(integer_object_nulls=True)  # ids 1, not 1.0
                df["_where"] = np.arange(start, start + len(df))
                start += len(df)
                yield df
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise IngestError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None


def _jsonl_frame(objs: list[dict], where: list[int], bad: list[tuple[int, str]]) -> pd.DataFrame:
    # object columns: ints stay ints when some rows lack them, lone surrogates stay refusable
    df = pd.DataFrame(objs, dtype=object)
    df["_where"] = where
    df.attrs["bad"] = [m for _, m in bad]
    df.attrs["bad_at"] = [n for n, _ in bad]
    return df


def _check_columns(cols: Columns, available: list, path: Path) -> None:
    """The text column, and every column named on the command line, must be in the input."""
    if cols.text not in available:
        raise IngestError(
            f"{path}: no column {cols.text!r} (columns: {', '.join(map(str, available))}); pass --text-col"
        )
    for field_ in ("id", *META):
        given = getattr(cols, field_)
        if given is not None and given not in available:
            raise IngestError(
                f"{path}: no column {given!r} for {field_} (columns: {', '.join(map(str, available))})"
            )


def normalise(
    df: pd.DataFrame,
    cols: Columns,
    origin: str,
    path: Path,
    label: Callable[[object], str] = str,
    lenient: bool = False,
) -> tuple[pd.DataFrame, list[str]]:
    """Input columns -> article columns (with `text_sha256`); rows that cannot be articles are refused.

    `label` turns a row's `_where` into the name reasons give it. `lenient`: a column that this
    batch lacks is taken as missing in every row (the caller checks the file's columns as a whole).
    """
    refused = list(df.attrs.get("bad", []))
    at = list(df.attrs.get("bad_at", [None] * len(refused)))  # the row each reason is about
    if df.empty:
        return pd.DataFrame(
            columns=["article_id", "text", *META, "origin", "text_sha256", "_where"]
        ), refused
    if not lenient:
        _check_columns(cols, [c for c in df.columns if c != "_where"], path)
    out = pd.DataFrame({"_where": df["_where"]})
    text = (
        df[cols.text] if cols.text in df.columns else pd.Series(None, index=df.index, dtype=object)
    )
    if isinstance(text.dtype, pd.StringDtype):
        out["text"] = text
    else:
        out["text"] = text.where(text.map(lambda t: isinstance(t, str)), None)
    for field_ in META:
        src = cols.pick(field_, df.columns)
        out[field_] = _present_str(df[src], field_ == "published_at") if src in df.columns else None
    id_col = cols.pick("id", df.columns)
    out["article_id"] = _present_str(df[id_col], strip=True) if id_col in df.columns else None
    out["origin"] = origin
    t = out["text"]
    why = pd.Series(None, index=out.index, dtype=object)
    present = t.notna()
    why[~present] = "text is missing or not a string"
    why[present & _blank(t)] = "text is empty or whitespace only"
    # a .txt holding one is refused as binary; Label Studio's PostgreSQL cannot store one
    why[present & why.isna() & t.str.contains("\x00", regex=False).fillna(False).astype(bool)] = (
        "text contains a NUL character (U+0000)"
    )
    for name, col in [("text", t), *((f, out[f]) for f in META if f != "published_at")]:
        if col.dtype == object:  # only JSON escapes make lone surrogates; Arrow cannot hold them
            bad = col.str.contains("[\ud800-\udfff]", regex=True, na=False).astype(bool)
            why[present & why.isna() & bad] = (
                f"{name} contains a lone surrogate (not valid Unicode)"
            )
    ids = out["article_id"]
    bad_id = (
        why.isna() & ids.notna() & ids.astype(object).str.contains(_CONTROL, regex=True, na=False)
    )
    if bad_id.any():
        why[bad_id] = [
            f"article id {_shown(a)} contains a control character (ids name export files and lines)"
            for a in ids[bad_id]
        ]
    keep = why.isna()
    if not keep.all():  # filtering copies every column, the texts too
        where = out.loc[~keep, "_where"].tolist()
        refused += [f"{label(w)}: {r}" for w, r in zip(where, why[~keep], strict=True)]
        at += where
        out = out[keep]
    if out["published_at"].notna().any():
        parsed, date_why = parse_dates(out["published_at"])
        bad = date_why.notna()
        for w, v, r in zip(
            out.loc[bad, "_where"], out.loc[bad, "published_at"], date_why[bad], strict=True
        ):
            shown = v if isinstance(v, str) else str(v)  # a Parquet date: its text, not its repr
            refused.append(f"{label(w)}: published_at {shown!r} {r}")
            at.append(w)
        out = (
            out[~bad].assign(published_at=parsed[~bad])
            if bad.any()
            else out.assign(published_at=parsed)
        )
    sha = pd.Series(_sha256s(out["text"]), index=out.index, dtype=object)
    out["text_sha256"] = sha
    missing_id = out["article_id"].isna()
    if missing_id.any():  # article_id_for, from the hash already made
        out["article_id"] = out["article_id"].astype(object).where(~missing_id, "a" + sha.str[:16])
    if len(refused) > 1 and all(isinstance(a, (int, np.integer)) for a in at):
        # in row order, whatever the batches: reasons do not depend on where a file was cut
        refused = [r for _, r in sorted(zip(at, refused, strict=True), key=lambda p: p[0])]
    return out, refused


# newline, NUL, tab, ... and the line/paragraph separators: an id holding one breaks file names and lines
_CONTROL = "[\x00-\x1f\x7f-\x9f\u2028\u2029]"


def _shown(value: str, limit: int = 60) -> str:
    """A value for a one-line reason: repr (control characters escaped), shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# what str.strip() strips (str.isspace): a text of only these is blank
_SPACE = "".join(c for c in map(chr, range(0x110000)) if c.isspace())


def _blank(t: pd.Series) -> pd.Series:
    """Texts that are empty or whitespace only (False for missing ones), as str.strip() sees it."""
    if t.dtype == object:
        return (t.str.strip() == "").fillna(False).astype(bool)
    # Arrow strings: a regex scan stops at the first other character; strip() would copy every text
    return t.str.fullmatch(f"[{_SPACE}]*").fillna(False).astype(bool)


def _sha256s(texts: pd.Series) -> list[str]:
    """text_sha256 of each (present) text; Arrow-backed texts are hashed from their UTF-8 buffer."""
    if not isinstance(texts.dtype, pd.StringDtype) or texts.isna().any():
        return [text_sha256(t) for t in texts.tolist()]
    arr = pa.array(texts.array)
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    out: list[str] = []
    sha = hashlib.sha256
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        if not pa.types.is_large_string(chunk.type):
            chunk = chunk.cast(pa.large_string())
        _, offsets, data = chunk.buffers()
        pos = np.frombuffer(
            offsets, dtype=np.int64, count=len(chunk) + 1, offset=chunk.offset * 8
        ).tolist()
        view = memoryview(data) if data is not None else memoryview(b"")
        out += [sha(view[a:b]).hexdigest() for a, b in zip(pos[:-1], pos[1:], strict=True)]
    return out


def _present_str(col: pd.Series, keep_dates: bool = False, strip: bool = False) -> pd.Series:
    """Values as strings, missing for None/NaN/empty ones; vectorised for string and date columns."""
    if keep_dates and pd.api.types.is_datetime64_any_dtype(col.dtype):
        return col  # already dates: no round trip through strings
    if isinstance(col.dtype, pd.StringDtype):
        return col.where(col.notna() & ((col.str.strip() if strip else col) != ""), None)
    if strip:
        values = [None if v is None or v != v or str(v).strip() == "" else str(v) for v in col]
    else:
        values = [None if v is None or v != v or v == "" else str(v) for v in col]
    # objects, not inferred: a lone surrogate (a JSON escape) must reach the check that refuses it
    return pd.Series(values, index=col.index, dtype=object)


def _dedupe(
    batch: pd.DataFrame,
    existing: dict[str, str],
    summary: IngestSummary,
    stored_text: Callable[[list[str]], dict[str, str]] | None = None,
) -> pd.DataFrame:
    """Drop rows already stored with the same text; refuse other text under a known id
    (showing where the two texts differ when `stored_text` can fetch the stored ones)."""
    if "text_sha256" not in batch.columns:
        batch = batch.assign(text_sha256=_sha256s(batch["text"]))
    stored = batch["article_id"].map(existing)
    same_stored = stored == batch["text_sha256"]
    other_stored = stored.notna() & ~same_stored
    first = batch.drop_duplicates("article_id")
    first_sha = batch["article_id"].map(first.set_index("article_id")["text_sha256"])
    first_where = batch["article_id"].map(first.set_index("article_id")["_where"])
    repeat = batch["article_id"].duplicated() & stored.isna()
    same_repeat = repeat & (first_sha == batch["text_sha256"])
    other_repeat = repeat & ~same_repeat
    summary.unchanged += int(same_stored.sum() + same_repeat.sum())
    clash = batch.loc[other_stored]
    old = stored_text(list(clash["article_id"])) if stored_text and len(clash) else {}
    summary.refused += [
        f"{w}: id {a} is stored with another text (re-ingesting would misalign its annotations)"
        + (f"; the texts {where_differ(old[a], t, 'and now')}" if a in old else "")
        for w, a, t in zip(clash["_where"], clash["article_id"], clash["text"], strict=True)
    ]
    summary.refused += [
        f"{w}: duplicate id {a} (first at {f}) with another text"
        for w, a, f in zip(
            batch.loc[other_repeat, "_where"],
            batch.loc[other_repeat, "article_id"],
            first_where[other_repeat],
            strict=True,
        )
    ]
    return batch[stored.isna() & ~repeat]


def ingest_paths(
    corpus: Corpus,
    paths: Iterable[str | Path],
    fmt: str | None = None,
    columns: Columns | None = None,
    encoding: str = "utf-8",
    annotator: str | None = None,
    wait: bool | float = False,
    progress: Progress | None = None,
    skip_bad: bool = False,
    metadata: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> IngestSummary:
    """Read articles (and brat annotations) from files or folders and add them to the corpus.

    Identical re-ingest is a no-op; another text under a stored id is refused. Everything is read
    and checked before the first write, so a bad file leaves the corpus untouched; with `skip_bad`
    a file that cannot be read is left out instead (`summary.skipped` says which and why).
    brat only: `metadata` (a TSV/CSV file, one row per document) fills title, source,
    published_at and adds its other columns; it updates stored articles with the same text;
    its .ann files are parsed on `workers` local processes or the Dask cluster at `scheduler`
    (spanbank.parallel; the result is the same wherever they ran). Other formats: pieces of the
    inputs are parsed there too, and their new rows written as data files this process commits
    (see `_ingest_files`), but only when `workers`/`scheduler` (or their environment variables)
    ask for it; the default stays in this process.
    """
    if fmt is not None and fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    _known(encoding)
    corpus.require()
    if fmt == "brat":
        meta = None
        if metadata is not None:
            meta = read_metadata(metadata, corpus.stored_schema("articles").names)
        with parallel_engine(workers, scheduler) as engine:
            return _ingest_brat(
                corpus, paths, encoding, annotator, wait, progress, skip_bad, meta, engine
            )
    if metadata is not None:
        raise IngestError("--metadata is for brat folders; other formats carry metadata columns")
    cols = columns or Columns()
    files = _expand(paths, fmt)
    if not files:
        raise IngestError("no input files found (expected .txt, .jsonl, .csv or .parquet)")
    # in this process unless asked: on 2 cores a local cluster was slower (docs/SCALE.md)
    with parallel_engine(asked_workers(workers, scheduler), scheduler) as engine:
        return _ingest_files(corpus, files, cols, encoding, wait, progress, skip_bad, engine)


def _ingest_files(
    corpus: Corpus,
    files: list[tuple[Path, str]],
    cols: Columns,
    encoding: str,
    wait: bool | float,
    progress: Progress | None,
    skip_bad: bool,
    engine: Engine,
) -> IngestSummary:
    """Plain ingest in two passes over parts of the inputs (`_parts`) on the engine's workers;
    the texts stay with the workers: this process (the driver) gets only what dedupe needs.

    Pass 1, without the lock: each worker parses and normalises its part, parks the rows in a
    spool file of its own (in a temp folder inside the corpus) and returns their ids, sha256
    and row numbers. The driver keeps the dedupe state (the first row of each id, in input
    order) and marks which rows of each part are new; a bad file raises here, before anything
    is written. Pass 2, under the lock: the driver drops the rows already stored (reading only
    the ids and hashes back from the spools); each worker writes its part's new rows as Delta
    data files of one commit the driver planned (named so they read back in input order) and
    returns their add actions; the driver makes that one commit (the pattern of dask-deltatable).
    A worker or driver killed before the commit leaves files no version of the table references,
    which the next writer removes with the spools.

    Workers write into the corpus folder: on a cluster of several machines it must be shared
    (the same path on each); on one machine any local path works.
    """
    summary = IngestSummary()
    labels = [_label(path, kind) for path, kind in files]
    seen: dict[
        str, tuple[str, int, int, int]
    ] = {}  # id -> (sha256, file, where, metadata digest) of its first row in the input
    repeats: list[
        tuple[int, int, str, str, int, tuple[str, int, int, int]]
    ] = []  # later rows under a seen id
    pieces = _plan(files, encoding)
    groups = _groups(pieces)
    corpus.check_writable()
    folder = Path(
        tempfile.mkdtemp(prefix=temp_prefix("ingest"), suffix=".tmp", dir=corpus.path)
    ).resolve()  # absolute: workers run elsewhere
    try:
        parts: list[
            tuple[_PartRows, np.ndarray]
        ] = []  # each part's spool and its rows first in the input
        skipped: set[int] = set()  # files left out by skip_bad; their rows are dropped in pass 2
        # pass 1, without the lock: read and check every file; a bad file raises here
        with contextlib.ExitStack() as stack:
            marks: tuple[int, int] = (0, 0)  # refused and repeats before the current file
            columns: dict = {}  # JSON Lines: the current file's columns, over all its pieces
            had_rows = False
            done = 0
            parsed = None
            if progress and engine.distributed:  # a second bar: parts as the workers finish them

                def parsed(n: int) -> None:
                    progress(Event("parsing", n, len(groups)))

            mapped = engine.map(
                _read_part, _parts(pieces, groups), encoding, cols, str(folder), done=parsed
            )
            stack.enter_context(contextlib.closing(mapped))  # an error cancels what is in flight
            for part in mapped:
                first = np.zeros(part.rows, dtype=bool)
                parts.append((part, first))
                for r in part.pieces:
                    done += 1
                    k, path = r.k, files[r.k][0]
                    if r.first:
                        marks, columns, had_rows = (len(summary.refused), len(repeats)), {}, False
                    try:
                        if k in skipped:
                            pass  # an earlier piece of this file was bad
                        elif r.error is not None:
                            raise IngestError(r.error)
                        else:
                            summary.refused += r.refused
                            if r.keys is not None:
                                at = slice(r.offset, r.offset + r.keys.num_rows)
                                first[at] = _first_mask(r.keys, k, seen, repeats)
                            columns.update(dict.fromkeys(r.columns))
                            had_rows = had_rows or r.had_rows
                            if r.last and had_rows:
                                _check_columns(cols, list(columns), path)
                    except IngestError as exc:
                        if not skip_bad:
                            raise
                        summary.skipped.append(f"{exc} (file skipped)")
                        skipped.add(k)
                        del summary.refused[marks[0] :], repeats[marks[1] :]
                        for aid in [a for a, v in seen.items() if v[1] == k]:
                            del seen[aid]
                    if progress:
                        progress(Event("reading", done, len(pieces)))
                part.pieces = []  # their ids and reasons are taken: held no longer than needed
        del seen
        # pass 2, under the lock: drop what is stored; workers write the rest, the driver commits
        with corpus.writer(wait) as w:
            stored = _Stored(corpus.read_arrow("articles", columns=["article_id", "text_sha256"]))
            clashes: list[
                list
            ] = []  # [file, where, id, text or None] of rows stored with another text
            shown: dict[
                tuple[int, int], list
            ] = {}  # (part, spool row) -> a clash whose text is shown
            now = datetime.now(timezone.utc)
            plan: list[Planned] = []  # the commit, planned when the first part has new rows
            changes = _MetadataChanges(corpus, stored)
            jobs = _write_jobs(
                parts, skipped, stored, changes, summary, clashes, shown, w, plan, now
            )
            adds = []
            try:
                with contextlib.closing(engine.map(_write_part, jobs)) as written:
                    for i, part_adds, texts in written:
                        adds += part_adds
                        for row, text in texts.items():
                            shown[i, row][3] = text
                if plan:
                    if _before_commit is not None:  # tests: a kill between the files and the commit
                        _before_commit(plan[0], adds)
                    summary.added = w.commit_planned(plan[0], adds)
            except BaseException:  # a task still running on a cluster may write a file after
                if plan:  # this: not part of the table, removed by the next writer if it can be
                    w.abort_planned(plan[0])
                raise
            updated = changes.updates()  # a commit of its own: a kill before it loses nothing
            if len(updated):  # the next run does not find done
                w.update("articles", updated, "article_id")
                summary.metadata_updated = len(updated)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    duplicates = []
    if repeats:
        known = stored.sha_of(pa.array([r[2] for r in repeats], pa.string())).to_pylist()
        for (k, where, aid, sha, meta, first), stored_sha in zip(repeats, known, strict=True):
            first_sha, first_k, first_where, first_meta = first
            at = f"{labels[k](where)}: duplicate id {aid} (first at {labels[first_k](first_where)})"
            if stored_sha is not None and stored_sha != sha:  # judged as its first row was
                clashes.append([k, where, aid, None])
            elif stored_sha is None and sha != first_sha:
                duplicates.append(f"{at} with another text")
            elif sha == first_sha and (fields := _other_metadata(meta, first_meta)):
                duplicates.append(  # a correction a second command would have made
                    f"{at} with the same text and another {', '.join(fields)}: the first row's "
                    "is kept; ingest the correction on its own to update it"
                )
            else:
                summary.unchanged += 1
    old = texts_of(corpus, [c[2] for c in clashes if c[3] is not None]) if clashes else {}
    summary.refused += [
        f"{labels[k](where)}: id {aid} is stored with another text (re-ingesting would misalign its annotations)"
        + (f"; the texts {where_differ(old[aid], text, 'and now')}" if aid in old and text else "")
        for k, where, aid, text in sorted(clashes, key=lambda c: c[:3])
    ]
    summary.refused += duplicates
    return summary


# tests only: called in the driver between the data files and their commit (a kill there), and
# in a worker after it wrote a part's data files (a worker killed before returning them)
_before_commit: Callable | None = None
_after_part_written: Callable | None = None


def _write_jobs(
    parts, skipped, stored, changes, summary, clashes, shown, w, plan, now
) -> Iterator[_WriteJob]:
    """Pass 2 in the driver, a part at a time (as the engine takes them): its first rows that
    the corpus does not store yet are the ones its worker writes. Counts the rows stored with
    the same text as unchanged and those stored with another text as clashes (the first
    SHOWN_CLASHES get their text back from the worker, for the message)."""
    base = 0  # part number of the next data file: files read back in input order
    for i, (part, first) in enumerate(parts):
        for k, offset, n in part.ranges:
            if k in skipped:
                first[offset : offset + n] = False
        rows = np.flatnonzero(first)
        if not len(rows):
            continue
        keys = pq.read_table(part.spool, columns=["article_id", "text_sha256", "_where"])
        keys = keys.take(pa.array(rows))  # ids and hashes only: the texts stay in the spool
        at = stored.positions(keys.column("article_id"))
        known = stored.sha.take(pa.array(at, mask=at < 0))
        same = pc.fill_null(pc.equal(known, keys.column("text_sha256")), False)
        summary.unchanged += pc.sum(same).as_py() or 0
        is_same = same.to_numpy(zero_copy_only=False)
        changes.check(part.spool, rows[is_same], at[is_same])
        is_stored = pc.is_valid(known).to_numpy(zero_copy_only=False)
        clash = is_stored & ~is_same
        show = []
        if clash.any():
            file_of = np.empty(part.rows, dtype=np.int64)
            for k, offset, n in part.ranges:
                file_of[offset : offset + n] = k
            at = np.flatnonzero(clash)
            wheres = keys.column("_where").take(pa.array(at)).to_pylist()
            ids = keys.column("article_id").take(pa.array(at)).to_pylist()
            for j, where, aid in zip(at.tolist(), wheres, ids, strict=True):
                entry = [int(file_of[rows[j]]), where, aid, None]
                clashes.append(entry)
                if len(shown) < SHOWN_CLASHES:
                    shown[i, int(rows[j])] = entry
                    show.append(int(rows[j]))
        keep = first
        if is_stored.any():
            keep = first.copy()
            keep[rows[is_stored]] = False
        files = 0
        if keep.any():
            if not plan:
                sample = pq.read_schema(part.spool)
                sample = sample.remove(sample.get_field_index("_where")).empty_table()
                plan.append(w.plan("articles", sample))
            files = 1 + part.nbytes // delta.FILE_BYTES  # at least the files its rows can fill
            if base + files > MAX_PART_FILES:
                raise IngestError(
                    f"this ingest would write more than {MAX_PART_FILES:,} data files in one "
                    "commit; ingest the inputs in several runs"
                )
        if files or show:
            yield _WriteJob(i, part.spool, keep, plan[0] if files else None, base, files, show, now)
        base += files


MAX_PART_FILES = 99_999  # data files one commit can name (a file name has 5 digits for them)


@dataclass
class _WriteJob:
    """What a worker writes in pass 2: the rows `keep` of its part's spool file, as data files
    `part` .. `part + files - 1` of the planned commit; `show`: spool rows whose text it sends."""

    index: int
    spool: str
    keep: np.ndarray
    plan: Planned | None
    part: int
    files: int
    show: list[int]
    now: datetime


def _write_part(job: _WriteJob) -> tuple[int, list, dict[int, str]]:
    """Pass 2 in a worker: write the part's new rows as data files of the planned commit (not
    committed: the driver does that); returns (part, their add actions, texts asked for)."""
    out = job.plan.file_writer(job.part, job.files) if job.files else None
    texts: dict[int, str] = {}
    try:
        with pq.ParquetFile(job.spool) as pf:
            at = 0
            for g in range(pf.num_row_groups):
                table = pf.read_row_group(g, use_threads=False)
                n = table.num_rows
                for row in job.show:
                    if at <= row < at + n:
                        texts[row] = table.column("text")[row - at].as_py()
                keep = job.keep[at : at + n]
                at += n
                if out is None or not keep.any():
                    continue
                if not keep.all():
                    table = table.filter(pa.array(keep))
                table = table.drop_columns(["_where"])
                table = table.set_column(
                    table.schema.get_field_index("ingested_at"),
                    "ingested_at",
                    pa.repeat(pa.scalar(job.now, type=TS), table.num_rows),
                )
                out.write(job.plan.conform(table))
        adds = out.finish() if out is not None else []
        if _after_part_written is not None:
            _after_part_written(job, adds)
    except BaseException:
        if out is not None:
            out.abort()
        raise
    return job.index, adds, texts


# how plain inputs are cut into parts for the engine: a part is a few whole files or one piece
# of a big one, about PART_BYTES of input; the cut depends on the inputs only, never on where
# the parts run, so every engine reads the same batches and gives the same result
PART_BYTES = 32 << 20
PART_FILES = 1000  # whole files in one part at most (small .txt files: one row each)


@dataclass(frozen=True)
class _Piece:
    """A whole input file (`stop` None), or a byte range of an uncompressed UTF-8 JSON Lines file,
    or a range of row groups of a Parquet file. `base`: lines (rows) of the file before `start`."""

    k: int  # the file's number in the input
    path: Path
    kind: str
    size: int  # bytes, to size parts
    start: int = 0
    stop: int | None = None
    base: int = 0
    first: bool = True  # the file's first piece
    last: bool = True  # the file's last piece
    shown: Path | None = None  # `path` as given (messages name it so); `path` is absolute

    @property
    def given(self) -> Path:
        return self.path if self.shown is None else self.shown


@dataclass
class _PieceRows:
    """What a worker made of one piece, without the texts: the id, sha256 and `_where` of its
    rows (`keys`; the rows themselves are in its part's spool file from row `offset` on), refused
    rows' reasons, the JSON Lines columns it saw; or the one-line error that makes the file bad."""

    k: int
    first: bool
    last: bool
    keys: pa.Table | None = None
    offset: int = 0
    refused: list[str] = field(default_factory=list)
    columns: list = field(default_factory=list)
    had_rows: bool = False
    error: str | None = None


@dataclass
class _PartRows:
    """Pass 1's result for one part: its spool file (None: no rows), how many rows it holds and
    their Arrow bytes, (file, offset, rows) of each piece's rows in it, and the pieces."""

    spool: str | None
    rows: int
    nbytes: int
    ranges: list[tuple[int, int, int]]
    pieces: list[_PieceRows]


def _plan(files: list[tuple[Path, str]], encoding: str) -> list[_Piece]:
    """The pieces of the inputs, in input order. Only this process reads here, and little: file
    sizes, a Parquet footer, the next line end after each cut. `base` is filled in by `_parts`."""
    pieces = []
    for k, (path, kind) in enumerate(files):
        try:
            size = path.stat().st_size
        except OSError:
            size = 0  # the reader says what is wrong, as it would have
        cuts = _cuts(path, kind, size, encoding) if size > PART_BYTES else None
        at = path.absolute()  # workers on a cluster do not share this process's folder
        if not cuts:
            pieces.append(_Piece(k, at, kind, size, shown=path))
            continue
        for i, (a, b, nbytes) in enumerate(cuts):
            pieces.append(
                _Piece(k, at, kind, nbytes, a, b, -1, i == 0, i == len(cuts) - 1, shown=path)
            )
    return pieces


def _cuts(path: Path, kind: str, size: int, encoding: str) -> list[tuple[int, int, int]] | None:
    """(start, stop, bytes) of each piece of a big file, or None to read it whole."""
    try:
        if kind == "parquet":
            with pq.ParquetFile(path) as pf:
                meta = pf.metadata
                groups = [meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)]
            cuts, a, nbytes = [], 0, 0
            for i, g in enumerate(groups):
                nbytes += g
                if nbytes >= PART_BYTES or i == len(groups) - 1:
                    cuts.append((a, i + 1, nbytes))
                    a, nbytes = i + 1, 0
            return cuts if len(cuts) > 1 else None
        if kind != "jsonl" or codecs.lookup(encoding).name != "utf-8":
            return None  # gzip, CSV (quoted line ends), other encodings: read whole
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
            if head[:2] == b"\x1f\x8b":
                return None
            _sniff(head, path, encoding)
            ends = [0]
            while ends[-1] + PART_BYTES < size:
                fh.seek(ends[-1] + PART_BYTES)
                rest = b""
                while b"\n" not in rest:
                    block = fh.read(1 << 16)
                    if not block:
                        break
                    rest += block
                if b"\n" not in rest:
                    break
                ends.append(ends[-1] + PART_BYTES + rest.index(b"\n") + 1)
        ends = [e for e in ends if e < size] + [size]
        cuts = [(a, b, b - a) for a, b in zip(ends, ends[1:], strict=False)]
        return cuts if len(cuts) > 1 else None
    except (OSError, LookupError, IngestError, pa.ArrowException):
        return None  # read whole: the reader raises what it would have


def _groups(pieces: list[_Piece]) -> list[int]:
    """How many pieces each part takes, in order: about PART_BYTES, at most PART_FILES pieces."""
    sizes: list[int] = []
    nbytes = 0
    for p in pieces:
        if sizes and (nbytes + p.size > PART_BYTES or sizes[-1] >= PART_FILES):
            sizes.append(0)
            nbytes = 0
        if not sizes:
            sizes.append(0)
        sizes[-1] += 1
        nbytes += p.size
    return sizes


def _parts(pieces: list[_Piece], groups: list[int] | None = None) -> Iterator[list[_Piece]]:
    """The pieces in parts (`_groups`), each piece's `base` counted as it goes (line ends before
    a JSON Lines cut, rows before a row group): this process reads the file once, as parts go out."""
    counted: tuple[Path, int, int] | None = None  # (file, offset, lines or rows before it)
    it = iter(pieces)
    for size in groups if groups is not None else _groups(pieces):
        part = []
        for p in (next(it) for _ in range(size)):
            if p.base < 0:
                at, base = counted[1:] if counted is not None and counted[0] == p.path else (0, 0)
                base += _count_before(p, at)
                counted = (p.path, p.start, base)
                p = replace(p, base=base)
            part.append(p)
        yield part


def _count_before(p: _Piece, at: int) -> int:
    """Line ends (JSON Lines: bytes) or rows (Parquet: row groups) from `at` to the piece's start."""
    if p.kind == "parquet":
        with pq.ParquetFile(p.path) as pf:
            return sum(pf.metadata.row_group(i).num_rows for i in range(at, p.start))
    n = 0
    with open(p.path, "rb") as fh:
        fh.seek(at)
        left = p.start - at
        while left > 0:
            block = fh.read(min(READ_BLOCK, left))
            if not block:
                break
            n += block.count(b"\n")
            left -= len(block)
    return n


def _read_part(part: list[_Piece], encoding: str, cols: Columns, folder: str) -> _PartRows:
    """Pass 1 in a worker: parse and normalise the pieces of one part into a spool file of its
    own in `folder`; what comes back holds no text (see `_PartRows`)."""
    spool = _PartSpool(Path(folder))
    try:
        pieces = [_read_piece(p, encoding, cols, spool) for p in part]
    finally:
        spool.close()
    ranges = [(r.k, r.offset, r.keys.num_rows) for r in pieces if r.keys is not None]
    return _PartRows(spool.name, spool.rows, spool.nbytes, ranges, pieces)


def _read_piece(p: _Piece, encoding: str, cols: Columns, spool: _PartSpool) -> _PieceRows:
    out = _PieceRows(p.k, p.first, p.last, offset=spool.rows)
    label = _label(p.given, p.kind)
    lenient = p.kind == "jsonl"  # a batch of JSON lines can lack a column that the file has
    columns: dict = {}
    keys = []
    try:
        for df in read_batches(p.path, p.kind, encoding, piece=p):
            if lenient and len(df):
                out.had_rows = True
                columns.update(dict.fromkeys(c for c in df.columns if c != "_where"))
            rows, refused = normalise(df, cols, f"{p.kind}:{p.path.name}", p.given, label, lenient)
            out.refused += refused
            if len(rows):  # typed here: the spool holds Arrow rows
                table = to_arrow("articles", rows.assign(ingested_at=None))
                spool.write(table)
                keys.append(table.select(KEY_COLUMNS).append_column("_meta", _meta_digest(rows)))
    except IngestError as exc:  # its rows already spooled are never kept (no keys name them)
        error = str(exc).replace(str(p.path), str(p.given))  # the file as the user named it
        return _PieceRows(p.k, p.first, p.last, offset=out.offset, error=error)
    out.columns = list(columns)
    if keys:
        out.keys = pa.concat_tables(keys, promote_options="permissive").combine_chunks()
    return out


KEY_COLUMNS = ["article_id", "text_sha256", "_where"]  # what the driver gets of each row


def _meta_digest(rows: pd.DataFrame) -> pa.Array:
    """Per row, a 64-bit digest of each metadata field (0: missing): repeats of an id within one
    input are compared by them, so that a second row correcting the first's title is not
    dropped unsaid."""
    fields = []
    for name in META:
        col = rows[name]
        missing = col.isna().to_numpy()
        if missing.all():  # often whole columns (url, language): nothing to hash
            fields.append(np.zeros(len(col), np.uint64))
            continue
        if pd.api.types.is_datetime64_any_dtype(col.dtype):
            values = np.asarray(col.array.as_unit("us").asi8)  # dates: their instant
        else:
            values = col.to_numpy(dtype=object, na_value=None)
        fields.append(np.where(missing, 0, pd.util.hash_array(values, categorize=False)))
    flat = np.stack(fields, axis=1).reshape(-1) if fields else np.empty(0, np.uint64)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.uint64()), len(META))


def _other_metadata(meta: list, first: list) -> list[str]:
    """The fields a repeated row gives another value than the id's first row (a field it
    leaves out is no correction, as in a later ingest)."""
    return [name for name, m, f in zip(META, meta, first, strict=True) if m and m != f]


class _PartSpool:
    """A worker's spool file of one part's article rows (`to_arrow`, with `_where`), made on the
    first write in the spool folder; rows stay in the order written."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.name: str | None = None
        self.rows = 0
        self.nbytes = 0  # Arrow bytes written: bounds the size of the data files they make
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.name = str(self.folder / f"part-{uuid.uuid4().hex}.parquet")
            self._writer = pq.ParquetWriter(self.name, table.schema, compression=SPOOL_COMPRESSION)
        if not table.schema.equals(self._writer.schema, check_metadata=False):
            table = table.cast(self._writer.schema)
        self._writer.write_table(table, row_group_size=BATCH_ROWS)
        self.rows += table.num_rows
        self.nbytes += table.nbytes

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _first_mask(keys: pa.Table, k: int, seen: dict, repeats: list) -> np.ndarray:
    """Which rows of file `k` carry an id the input has not had yet (the others go to `repeats`)."""
    ids = keys.column("article_id").to_pylist()
    vals = [
        (sha, k, where, meta)
        for sha, where, meta in zip(
            keys.column("text_sha256").to_pylist(),
            keys.column("_where").to_pylist(),
            keys.column("_meta").to_pylist(),
            strict=True,
        )
    ]
    firsts = [seen.setdefault(aid, v) for aid, v in zip(ids, vals, strict=True)]
    is_first = [f is v for f, v in zip(firsts, vals, strict=True)]
    if not all(is_first):
        repeats += [
            (k, v[2], aid, v[0], v[3], f)
            for aid, v, f, ok in zip(ids, vals, firsts, is_first, strict=True)
            if not ok
        ]
    return np.array(is_first, dtype=bool)


class _Stored:
    """Stored article ids -> text_sha256, looked up a column at a time."""

    def __init__(self, table: pa.Table):
        index = pd.Index(table.column("article_id").to_numpy(zero_copy_only=False), dtype=object)
        sha = table.column("text_sha256").combine_chunks()
        self.rows = np.arange(len(index))  # each id's row in the table
        if not index.is_unique:  # should not happen; the last one wins, as in a dict
            last = ~index.duplicated(keep="last")
            index, sha, self.rows = index[last], sha.filter(pa.array(last)), self.rows[last]
        self.index, self.sha = index, sha

    def positions(self, ids) -> np.ndarray:
        """Each id's place among the stored ids (-1 when the id is not stored)."""
        if isinstance(ids, (pa.Array, pa.ChunkedArray)):
            ids = ids.to_numpy(zero_copy_only=False)
        return self.index.get_indexer(ids)

    def sha_of(self, ids) -> pa.Array:
        """The stored sha256 of each id (null when the id is not stored)."""
        pos = self.positions(ids)
        return self.sha.take(pa.array(pos, mask=pos < 0))


class _MetadataChanges:
    """Rows of the input stored with the same text that give a field (not null) another value
    than the stored one, gathered a part at a time. A field's stored values are read once, when a
    row first gives it: Arrow arrays, about what the field's text takes on disk."""

    def __init__(self, corpus: Corpus, stored: _Stored):
        self.corpus, self.stored = corpus, stored
        self.schema = corpus.stored_schema("articles")
        self.found: list[pa.Table] = []
        self._values: dict[str, pa.Array] = {}

    def check(self, spool: str, rows: np.ndarray, at: np.ndarray) -> None:
        """`rows` of `spool`, stored with the same text at `at` among the stored ids."""
        if not len(rows):
            return
        given = set(pq.read_schema(spool).names)
        fields = [f for f in FIELDS if f in given and f in self.schema.names]
        if not fields:
            return
        table = pq.read_table(spool, columns=["article_id", *fields]).take(pa.array(rows))
        at = pa.array(self.stored.rows[at])
        differs = pa.repeat(False, len(rows))
        for f in fields:
            new = table.column(f).cast(self.schema.field(f).type)
            old = self._stored(f).take(at)
            other = pc.fill_null(pc.not_equal(new, old), True)  # a stored null differs too
            differs = pc.or_(differs, pc.and_(pc.is_valid(new), other))
        if pc.any(differs).as_py():
            self.found.append(table.filter(differs))

    def _stored(self, field: str) -> pa.Array:
        if field not in self._values:  # in the table's order, as `stored` read the ids
            self._values[field] = (
                self.corpus.read_arrow("articles", columns=[field]).column(0).combine_chunks()
            )
        return self._values[field]

    def updates(self) -> pd.DataFrame:
        """The stored rows the gathered ones change, with their new metadata (text untouched)."""
        if not self.found:
            return pd.DataFrame()
        incoming = pa.concat_tables(self.found, promote_options="default").to_pandas()
        stored = self.corpus.read_in("articles", "article_id", pa.array(incoming["article_id"]))
        return metadata_changes(stored.to_pandas(), incoming)


def _brat_pairs(
    paths: Iterable[str | Path], annotator: str | None
) -> list[tuple[str, Path, Path, str]]:
    """(article_id, txt, ann, annotator) for `X.txt` + `X.ann` / `X_<annotator>.ann` files.

    The id is the file stem, decoded as our brat export encoded it (see `brat.file_stem`), or
    what an `article_ids.json` beside the files says for a stem shortened with a hash.
    """
    txts: dict[str, Path] = {}
    anns: list[Path] = []
    named: dict[Path, str] = {}  # file path without suffix -> article id, from article_ids.json
    for p in map(Path, paths):
        for f in _input_files(p):
            if f.suffix == ".txt":
                if f.stem in txts and txts[f.stem] != f:
                    raise IngestError(f"two texts named {f.stem}.txt: {txts[f.stem]} and {f}")
                txts[f.stem] = f
            elif f.suffix == ".ann":
                anns.append(f)
            elif f.name == IDS_FILE:
                named.update(_named_ids(f))
    if not txts:
        raise IngestError("no brat .txt files found")
    pairs = []
    for ann in anns:
        stem = ann.stem
        if stem in txts:
            pairs.append((stem, txts[stem], ann, annotator or "import"))
            continue
        base, _, who = stem.rpartition("_")
        if base in txts and who:
            pairs.append((base, txts[base], ann, who))
        else:
            raise IngestError(f"{ann}: no text file {stem}.txt (or {base}.txt) for it")
    paired = {p[0] for p in pairs}
    pairs += [
        (stem, txt, None, annotator or "import") for stem, txt in txts.items() if stem not in paired
    ]
    pairs = [
        (named.get(txt.parent / stem) or article_id_of(stem), txt, ann, who)
        for stem, txt, ann, who in pairs
    ]
    text_of: dict[str, Path] = {}
    for aid, txt, _, _ in pairs:  # two texts under one id (article_ids.json says so): refuse
        if text_of.setdefault(aid, txt) != txt:
            first, second = sorted((text_of[aid], txt))
            raise IngestError(f"two texts for article {aid!r}: {first} and {second}")
    by_key: dict[tuple[str, str], Path] = {}
    for aid, _, ann, who in pairs:  # two live annotations by one annotator would contradict
        if ann is None:
            continue
        if (aid, who) in by_key:
            raise IngestError(
                f"two annotation files for {aid} by {who}: {by_key[aid, who]} and {ann}"
            )
        by_key[aid, who] = ann
    return sorted(pairs, key=lambda p: (p[0], p[3]))


def _named_ids(path: Path) -> dict[Path, str]:
    """An export's `article_ids.json` ({"<split>/<stem>": id}) as {file path without suffix: id}."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        raise IngestError(f"{path}: not readable JSON") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise IngestError(f"{path}: expected an object of file stems to article ids")
    return {path.parent / rel: aid for rel, aid in data.items()}


PARSE_BATCH = 100  # .ann files parsed per task


def _parse_batch(batch: list[tuple[str, str]], schema) -> list:
    """parse_ann over (ann text, article text) pairs: pure, so a worker can run it."""
    return [parse_ann(raw, text, schema) for raw, text in batch]


def _ingest_brat(
    corpus, paths, encoding, annotator, wait, progress, skip_bad=False, meta=None, engine=None
) -> IngestSummary:
    engine = engine or Engine(workers=1)
    schema = corpus.schema
    summary = IngestSummary()
    pairs = _brat_pairs(paths, annotator)
    now = datetime.now(timezone.utc)

    def read(path: Path) -> str | None:
        """A brat file's text; None (the file skipped, with its reason) when unreadable and skip_bad."""
        try:
            return _decode(_read_all(path, encoding), path, encoding)
        except IngestError as exc:
            if not skip_bad:
                raise
            summary.skipped.append(f"{exc} (file skipped)")
            return None

    texts: dict[str, tuple[str, Path]] = {}
    for aid, txt, _, _ in pairs:
        if aid not in texts and (text := read(txt)) is not None:
            texts[aid] = (text, txt)
    pairs = [p for p in pairs if p[0] in texts]
    articles = _brat_articles(texts, meta, summary)
    ok_ids = set(articles["article_id"])
    ann_rows, span_rows, rel_rows, rej_rows = [], [], [], []
    with corpus.writer(wait) as w:
        stored = corpus.read("articles", columns=["article_id", "text_sha256"])
        existing = dict(zip(stored["article_id"], stored["text_sha256"], strict=True))
        new = _dedupe(articles, existing, summary, lambda ids: texts_of(corpus, ids))
        updated = _metadata_updates(corpus, articles, existing) if meta is not None else None
        sha = dict(zip(articles["article_id"], articles["text_sha256"], strict=True))
        refused_ids = {
            a for a in ok_ids if pd.notna(existing.get(a)) and existing[a] != sha[a]
        }  # stored with another text
        old_ann = corpus.read("annotations")
        known = set(old_ann["annotation_id"])
        imported = dict(
            list(old_ann[old_ann["origin"] == "import"].groupby(["article_id", "annotator"]))
        )
        stored_as, people = _import_annotators(corpus, {p[3] for p in pairs if p[2] is not None})
        jobs = []  # (pair number, article, .ann path, annotation id, who, version, .ann text)
        for n, (aid, _, ann, name) in enumerate(pairs, 1):
            if ann is None or aid not in ok_ids or aid in refused_ids:
                continue
            who = stored_as[name]
            raw = read(ann)
            if raw is None:
                continue
            digest = hashlib.sha256(raw.encode()).hexdigest()[:12]
            ann_id = f"import-{aid}-{who}-{digest}"
            prev = imported.get((aid, who), old_ann.iloc[:0])
            live = prev.loc[~prev["superseded"].fillna(False).astype(bool), "annotation_id"]
            if any(i == ann_id or i.startswith(f"{ann_id}-v") for i in live):
                continue  # this very file is the current version
            if ann_id in known:  # back to an earlier file: a new version, under a new id
                ann_id = f"{ann_id}-v{len(prev) + 1}"
            jobs.append((n, aid, ann, ann_id, who, len(prev) + 1, raw))
        # parsing is the heavy part: batches of files on the engine's workers, back in order
        batches = [
            [(raw, texts[aid][0]) for _, aid, _, _, _, _, raw in jobs[i : i + PARSE_BATCH]]
            for i in range(0, len(jobs), PARSE_BATCH)
        ]
        results = (p for batch in engine.map(_parse_batch, batches, schema) for p in batch)
        for (n, aid, ann, ann_id, who, version, _), parsed in zip(jobs, results, strict=True):
            ann_rows.append(_import_annotation(ann_id, aid, who, version, now))
            sp, rl, rj = _parsed_rows(parsed, ann_id, aid, ann, now, summary)
            span_rows += sp
            rel_rows += rl
            rej_rows += rj
            if progress:
                progress(Event("annotations", n, len(pairs)))
        if updated is not None and len(updated):
            _write_metadata_updates(corpus, w, updated)
            summary.metadata_updated = len(updated)
        if len(new):
            w.append("articles", new.drop(columns="_where").assign(ingested_at=now))
        if ann_rows:
            children = {"spans": span_rows, "relations": rel_rows, "rejects": rej_rows}
            _write_imported(corpus, w, old_ann, ann_rows, children, people)
        summary.added = len(new)
        summary.annotations = len(ann_rows)
        summary.spans = len(span_rows)
        summary.relations = len(rel_rows)
    return summary


def _brat_articles(texts: dict, meta: pd.DataFrame | None, summary: IngestSummary) -> pd.DataFrame:
    """Article rows of brat texts ({id: (text, path)}): first line as title, then `meta`'s fields."""
    articles = pd.DataFrame(
        [
            {"article_id": aid, "text": t, "title": t.split("\n", 1)[0].strip(), "_where": str(p)}
            for aid, (t, p) in texts.items()
        ]
    )
    articles, refused = normalise(
        articles, Columns(id="article_id", title="title"), "brat", Path("brat")
    )
    summary.refused += refused
    return with_metadata(articles, meta)


def _import_annotation(ann_id: str, aid: str, who: str, version: int, now) -> dict:
    """The `annotations` row of one imported `.ann` file."""
    return {
        "annotation_id": ann_id,
        "project": None,
        "article_id": aid,
        "ls_task_id": None,
        "ls_annotation_id": None,
        "annotator": who,
        "origin": "import",
        "created_at": now,
        "updated_at": now,
        "lead_time_s": None,
        "cancelled": False,
        "version": version,
        "superseded": False,
        "deleted_at": None,
        "pulled_at": now,
    }


def _parsed_rows(parsed, ann_id: str, aid: str, ann: Path, now, summary: IngestSummary):
    """(span, relation, reject) rows of one parsed `.ann` file; counts go to `summary`."""
    summary.ignored += parsed.ignored
    summary.recovered += parsed.recovered
    for lab, n in parsed.ignored_labels.items():
        summary.ignored_labels[lab] = summary.ignored_labels.get(lab, 0) + n
    summary.rejected += [f"{ann}: {r['reason']}" for r in parsed.rejects]
    spans = [
        {
            **s,
            "annotation_id": ann_id,
            "article_id": aid,
            "attributes": attributes_json(s["attributes"]),
            "offset_repair": None,
        }
        for s in parsed.spans
    ]
    rels = [{**r, "annotation_id": ann_id} for r in parsed.relations]
    rejects = [{**r, "annotation_id": ann_id, "pulled_at": now} for r in parsed.rejects]
    return spans, rels, rejects


def _write_imported(corpus: Corpus, w, old_ann, ann_rows, children: dict, people) -> None:
    """Store imported annotations: children first, the annotation rows last, so every prefix
    of these writes is consistent and a re-run after a kill replaces the orphans it left
    (ids are deterministic); earlier imports by the same annotator become superseded."""
    ids = {r["annotation_id"] for r in ann_rows}
    for name, rows in children.items():
        _replace_children(corpus, w, name, rows, ids)
    if people:
        w.append("annotators", people)
    new_keys = {(r["article_id"], r["annotator"]) for r in ann_rows}
    old = old_ann
    hit = pd.MultiIndex.from_arrays([old["article_id"], old["annotator"]]).isin(list(new_keys))
    hit &= (old["origin"] == "import") & ~old["superseded"].fillna(False).astype(bool)
    marked = old[hit].assign(superseded=True)
    rows = (
        pd.concat([marked, pd.DataFrame(ann_rows)], ignore_index=True) if len(marked) else ann_rows
    )
    w.upsert("annotations", rows, "annotation_id")


def _metadata_updates(corpus: Corpus, articles: pd.DataFrame, existing: dict) -> pd.DataFrame:
    """Stored articles (same id, same text) whose metadata the incoming rows change, updated."""
    same = articles[articles["article_id"].map(existing) == articles["text_sha256"]]
    if same.empty:
        return same
    stored = corpus.read_in("articles", "article_id", same["article_id"].astype(str)).to_pandas()
    return metadata_changes(stored, same)


def _write_metadata_updates(corpus: Corpus, w, updated: pd.DataFrame) -> None:
    """Replace the updated articles' rows (text untouched) in one commit."""
    w.update("articles", updated, "article_id")


def _import_annotators(corpus: Corpus, names: set[str]) -> tuple[dict[str, str], list[dict]]:
    """brat annotator names -> what `annotator` (and so `annotation_id`) stores, plus new `annotators` rows.

    An e-mail becomes a keyed pseudonym (`ann-…`, as pull makes) and is kept only in `annotators`;
    other names (`4b22`, `alice`) are the user's own labels and stay as given.
    """
    out = {n: n for n in names}
    emails = sorted(n for n in names if "@" in n)
    if not emails:
        return out, []
    from spanbank.pseudonyms import pseudonym, pseudonym_key

    key = pseudonym_key(corpus)
    known = set(corpus.read("annotators", columns=["annotator"])["annotator"])
    people = []
    for email in emails:
        out[email] = pseudonym(key, "brat", email)
        if out[email] not in known:
            people.append(
                {"annotator": out[email], "ls_url": None, "ls_user_id": None, "email": email}
            )
    return out, people


def _replace_children(corpus: Corpus, w, name: str, rows: list[dict], ids: set[str]) -> None:
    """Append `rows` to a child table, first dropping rows a killed run left under the same `ids`."""
    w.delete(name, "annotation_id", ids)
    if rows:
        w.append(name, rows)
