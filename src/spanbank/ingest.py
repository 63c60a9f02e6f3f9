"""Ingest readers: txt / jsonl / csv / parquet files and brat standoff folders -> corpus tables."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from spanbank.brat import parse_ann
from spanbank.corpus import Corpus, attributes_json
from spanbank.errors import IngestError

FORMATS = ("txt", "jsonl", "csv", "parquet", "brat")
SUFFIXES = {".txt": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
META = ("title", "source", "url", "published_at", "language")

Progress = Callable[[str, int, int | None], None]


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
            "id": ("article_id", "id"), "title": ("title", "headline"), "source": ("source", "outlet"),
            "url": ("url", "link"), "published_at": ("published_at", "date", "published"),
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

    def as_dict(self) -> dict:
        out = {"added": self.added, "unchanged": self.unchanged, "refused": len(self.refused)}
        if self.annotations or self.rejected:
            out |= {"annotations": self.annotations, "spans": self.spans, "relations": self.relations,
                    "rejected": len(self.rejected), "ignored": self.ignored}
        return out | {"reasons": self.refused + self.rejected}


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def article_id_for(text: str) -> str:
    """The id of an article that came without one: a hash of its text."""
    return "a" + text_sha256(text)[:16]


def _decode(data: bytes, path: Path, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"{path}: not valid {encoding} (byte {exc.start}); pass --encoding (e.g. --encoding latin-1)"
        ) from None
    except LookupError:
        raise IngestError(f"unknown encoding {encoding!r}") from None


def _expand(paths: Iterable[str | Path], fmt: str | None) -> list[tuple[Path, str]]:
    out = []
    for p in map(Path, paths):
        if not p.exists():
            raise IngestError(f"{p}: no such file or directory")
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            kind = fmt or SUFFIXES.get(f.suffix.lower())
            if kind is None:
                if p.is_dir():
                    continue  # other files in a folder are not articles
                raise IngestError(f"{f}: unknown file type; pass --format ({', '.join(FORMATS[:-1])})")
            if p.is_dir() and fmt and SUFFIXES.get(f.suffix.lower()) != fmt:
                continue
            out.append((f, kind))
    return out


def read_table(path: Path, kind: str, encoding: str = "utf-8") -> pd.DataFrame:
    """One input file as a DataFrame of strings; a `_where` column says file and line for reasons."""
    if kind == "txt":
        text = _decode(path.read_bytes(), path, encoding)
        title = text.split("\n", 1)[0].strip() if text.strip() else ""
        return pd.DataFrame({"text": [text], "title": [title], "_where": [str(path)]})
    if kind == "jsonl":
        raw = _decode(path.read_bytes(), path, encoding).removeprefix("\ufeff")  # a BOM is not JSON
        rows, where, bad = [], [], []
        # only "\n" ends a JSON line: splitlines() would also split at U+2028, NEL, form feed...
        # inside strings written with ensure_ascii=False
        for n, line in enumerate(raw.split("\n"), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                bad.append(f"{path}:{n}: not valid JSON ({exc.msg})")
                continue
            if not isinstance(obj, dict):
                bad.append(f"{path}:{n}: a line must be a JSON object")
                continue
            rows.append(obj)
            where.append(f"{path}:{n}")
        # object columns: ints stay ints when some rows lack them, lone surrogates stay refusable
        df = pd.DataFrame(rows, dtype=object)
        df["_where"] = where
        df.attrs["bad"] = bad
        return df
    if kind == "csv":
        # decoded here: errors name the file, and a BOM (Excel writes one) is not a column name
        raw = _decode(path.read_bytes(), path, encoding).removeprefix("\ufeff")
        try:
            df = pd.read_csv(io.StringIO(raw), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise IngestError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
        df["_where"] = [f"{path}:{i + 2}" for i in range(len(df))]
        return df
    if kind == "parquet":
        try:
            df = pq.read_table(path).to_pandas(integer_object_nulls=True)  # ids 1, not 1.0
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise IngestError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
        df["_where"] = [f"{path}:row {i}" for i in range(len(df))]
        return df
    raise IngestError(f"unknown format {kind!r}; use one of {', '.join(FORMATS)}")


def normalise(df: pd.DataFrame, cols: Columns, origin: str, path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Input columns -> article columns; rows that cannot be articles are refused with reasons."""
    refused = list(df.attrs.get("bad", []))
    if df.empty:
        return pd.DataFrame(columns=["article_id", "text", *META, "origin", "_where"]), refused
    available = [c for c in df.columns if c != "_where"]
    if cols.text not in df.columns:
        raise IngestError(f"{path}: no column {cols.text!r} (columns: {', '.join(map(str, available))}); pass --text-col")
    for field_ in ("id", *META):
        given = getattr(cols, field_)
        if given is not None and given not in df.columns:
            raise IngestError(f"{path}: no column {given!r} for {field_} (columns: {', '.join(map(str, available))})")
    out = pd.DataFrame({"_where": df["_where"]})
    text = df[cols.text]
    ok_type = text.notna() if isinstance(text.dtype, pd.StringDtype) else text.map(lambda t: isinstance(t, str))
    out["text"] = text.where(ok_type, None)
    for field_ in META:
        src = cols.pick(field_, df.columns)
        out[field_] = _present_str(df[src], field_ == "published_at") if src else None
    id_col = cols.pick("id", df.columns)
    ids = _present_str(df[id_col], strip=True) if id_col else None
    out["article_id"] = ids if ids is not None else None
    out["origin"] = origin
    t = out["text"]
    why = pd.Series(None, index=out.index, dtype=object)
    why[t.isna()] = "text is missing or not a string"
    present = t.notna()
    why[present & (t.str.strip() == "")] = "text is empty or whitespace only"
    if t.dtype == object:  # only JSON escapes make lone surrogates; Arrow strings cannot hold them
        why[present & why.isna() & t.str.contains("[\ud800-\udfff]", regex=True, na=False)] = (
            "text contains a lone surrogate (not valid Unicode)"
        )
    keep = why.isna()
    refused += [f"{w}: {r}" for w, r in zip(out.loc[~keep, "_where"], why[~keep], strict=True)]
    out = out[keep]
    missing_id = out["article_id"].isna()
    out.loc[missing_id, "article_id"] = out.loc[missing_id, "text"].map(article_id_for)
    if out["published_at"].notna().any():
        parsed = pd.to_datetime(out["published_at"], utc=True, errors="coerce", format="mixed")
        bad = parsed.isna() & out["published_at"].notna()
        for w, v in zip(out.loc[bad, "_where"], out.loc[bad, "published_at"], strict=True):
            refused.append(f"{w}: published_at {v!r} is not a date")
        out = out[~bad].assign(published_at=parsed[~bad])
    return out, refused


def _present_str(col: pd.Series, keep_dates: bool = False, strip: bool = False) -> pd.Series:
    """Values as strings, missing for None/NaN/empty ones; vectorised for string and date columns."""
    if keep_dates and pd.api.types.is_datetime64_any_dtype(col.dtype):
        return col  # already dates: no round trip through strings
    if isinstance(col.dtype, pd.StringDtype):
        return col.where(col.notna() & ((col.str.strip() if strip else col) != ""), None)
    if strip:
        return col.map(lambda v: None if v is None or v != v or str(v).strip() == "" else str(v))
    return col.map(lambda v: None if v is None or v != v or v == "" else str(v))


def _dedupe(batch: pd.DataFrame, existing: dict[str, str], summary: IngestSummary) -> pd.DataFrame:
    """Drop rows already stored with the same text; refuse other text under a known id."""
    batch = batch.assign(text_sha256=[text_sha256(t) for t in batch["text"].tolist()])
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
    summary.refused += [
        f"{w}: id {a} is stored with another text (re-ingesting would misalign its annotations)"
        for w, a in zip(batch.loc[other_stored, "_where"], batch.loc[other_stored, "article_id"], strict=True)
    ]
    summary.refused += [
        f"{w}: duplicate id {a} (first at {f}) with another text"
        for w, a, f in zip(batch.loc[other_repeat, "_where"], batch.loc[other_repeat, "article_id"], first_where[other_repeat], strict=True)
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
) -> IngestSummary:
    """Read articles (and brat annotations) from files or folders and add them to the corpus.

    Identical re-ingest is a no-op; another text under a stored id is refused. Everything is read
    and checked before the first write, so a bad file leaves the corpus untouched.
    """
    if fmt is not None and fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    corpus.require()
    if fmt == "brat":
        return _ingest_brat(corpus, paths, encoding, annotator, wait, progress)
    cols = columns or Columns()
    files = _expand(paths, fmt)
    if not files:
        raise IngestError("no input files found (expected .txt, .jsonl, .csv or .parquet)")
    summary = IngestSummary()
    frames = []
    for n, (path, kind) in enumerate(files, 1):
        df, refused = normalise(read_table(path, kind, encoding), cols, f"{kind}:{path.name}", path)
        summary.refused += refused
        frames.append(df)
        if progress:
            progress("reading", n, len(files))
    batch = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    with corpus.writer(wait) as w:
        stored = corpus.read("articles", columns=["article_id", "text_sha256"])
        existing = dict(zip(stored["article_id"], stored["text_sha256"], strict=True))
        new = _dedupe(batch, existing, summary) if len(batch) else batch
        if len(new):
            new = new.drop(columns="_where").assign(ingested_at=datetime.now(timezone.utc))
            w.append("articles", new)
        summary.added = len(new)
    return summary


def _brat_pairs(paths: Iterable[str | Path], annotator: str | None) -> list[tuple[str, Path, Path, str]]:
    """(article_id, txt, ann, annotator) for `X.txt` + `X.ann` / `X_<annotator>.ann` files."""
    txts: dict[str, Path] = {}
    anns: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise IngestError(f"{p}: no such file or directory")
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        for f in files:
            if f.suffix == ".txt":
                if f.stem in txts and txts[f.stem] != f:
                    raise IngestError(f"two texts named {f.stem}.txt: {txts[f.stem]} and {f}")
                txts[f.stem] = f
            elif f.suffix == ".ann":
                anns.append(f)
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
    by_key: dict[tuple[str, str], Path] = {}
    for aid, _, ann, who in pairs:  # two live annotations by one annotator would contradict
        if (aid, who) in by_key:
            raise IngestError(f"two annotation files for {aid} by {who}: {by_key[aid, who]} and {ann}")
        by_key[aid, who] = ann
    paired = {p[0] for p in pairs}
    pairs += [(aid, txt, None, annotator or "import") for aid, txt in txts.items() if aid not in paired]
    return sorted(pairs, key=lambda p: (p[0], p[3]))


def _ingest_brat(corpus, paths, encoding, annotator, wait, progress) -> IngestSummary:
    schema = corpus.schema
    summary = IngestSummary()
    pairs = _brat_pairs(paths, annotator)
    now = datetime.now(timezone.utc)
    texts: dict[str, tuple[str, Path]] = {}
    for aid, txt, _, _ in pairs:
        if aid not in texts:
            texts[aid] = (_decode(txt.read_bytes(), txt, encoding), txt)
    articles = pd.DataFrame(
        [{"article_id": aid, "text": t, "title": t.split("\n", 1)[0].strip(), "_where": str(p)} for aid, (t, p) in texts.items()]
    )
    articles, refused = normalise(articles, Columns(id="article_id", title="title"), "brat", Path("brat"))
    summary.refused += refused
    ok_ids = set(articles["article_id"])
    ann_rows, span_rows, rel_rows, rej_rows = [], [], [], []
    with corpus.writer(wait) as w:
        stored = corpus.read("articles", columns=["article_id", "text_sha256"])
        existing = dict(zip(stored["article_id"], stored["text_sha256"], strict=True))
        new = _dedupe(articles, existing, summary)
        refused_ids = ok_ids - set(new["article_id"]) - {a for a in ok_ids if a in existing and existing[a] == text_sha256(texts[a][0])}
        old_ann = corpus.read("annotations")
        known = set(old_ann["annotation_id"])
        for n, (aid, _, ann, who) in enumerate(pairs, 1):
            if ann is None or aid not in ok_ids or aid in refused_ids:
                continue
            text = texts[aid][0]
            raw = _decode(ann.read_bytes(), ann, encoding)
            digest = hashlib.sha256(raw.encode()).hexdigest()[:12]
            ann_id = f"import-{aid}-{who}-{digest}"
            prev = old_ann[(old_ann["article_id"] == aid) & (old_ann["annotator"] == who) & (old_ann["origin"] == "import")]
            live = prev.loc[~prev["superseded"].fillna(False).astype(bool), "annotation_id"]
            if any(i == ann_id or i.startswith(f"{ann_id}-v") for i in live):
                continue  # this very file is the current version
            if ann_id in known:  # back to an earlier file: a new version, under a new id
                ann_id = f"{ann_id}-v{len(prev) + 1}"
            parsed = parse_ann(raw, text, schema)
            summary.ignored += parsed.ignored
            ann_rows.append({
                "annotation_id": ann_id, "project": None, "article_id": aid, "ls_task_id": None,
                "ls_annotation_id": None, "annotator": who, "origin": "import", "created_at": now,
                "updated_at": now, "lead_time_s": None, "cancelled": False, "version": len(prev) + 1,
                "superseded": False, "deleted_at": None, "pulled_at": now,
            })
            span_rows += [{**s, "annotation_id": ann_id, "article_id": aid, "attributes": attributes_json(s["attributes"]), "offset_repair": None} for s in parsed.spans]
            rel_rows += [{**r, "annotation_id": ann_id} for r in parsed.relations]
            rej_rows += [{**r, "annotation_id": ann_id, "pulled_at": now} for r in parsed.rejects]
            summary.rejected += [f"{ann}: {r['reason']}" for r in parsed.rejects]
            if progress:
                progress("annotations", n, len(pairs))
        if len(new):
            w.append("articles", new.drop(columns="_where").assign(ingested_at=now))
        if ann_rows:
            new_keys = {(r["article_id"], r["annotator"]) for r in ann_rows}
            old = old_ann.copy()
            hit = pd.Series([(a, b) in new_keys for a, b in zip(old["article_id"], old["annotator"], strict=True)], index=old.index, dtype=bool)
            old.loc[hit & (old["origin"] == "import"), "superseded"] = True
            w.replace("annotations", pd.concat([old, pd.DataFrame(ann_rows)], ignore_index=True) if len(old) else ann_rows)
            w.append("spans", span_rows)
            w.append("relations", rel_rows)
            w.append("rejects", rej_rows)
        summary.added = len(new)
        summary.annotations = len(ann_rows)
        summary.spans = len(span_rows)
        summary.relations = len(rel_rows)
    return summary
