"""Article metadata files (one row per document, TSV or CSV) merged into ingested articles."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from spanbank.corpus.tables import TABLES
from spanbank.errors import IngestError

# metadata column names (lower-cased) that name an article field, by field
FIELD_NAMES = {
    "article_id": ("article_id", "id", "doc_id", "document", "filename", "file", "name"),
    "title": ("title", "headline"),
    "source": ("source", "publisher", "outlet"),
    "published_at": ("published_at", "publication_date", "date", "published"),
    "url": ("url", "link"),
    "language": ("language", "lang"),
}
FIELDS = tuple(f for f in FIELD_NAMES if f != "article_id")


def read_metadata(path: str | Path, stored: Iterable[str] = ()) -> pd.DataFrame:
    """A metadata file as one row per article id: article fields by their usual names, every
    other column kept (as text) under its own name; `.tsv` is tab-separated, else sniffed.

    `stored`: the columns the corpus's articles table has; a column naming one of them (or an
    article column) in another case is refused, as are two columns naming one: a table cannot
    hold both."""
    p = Path(path)
    try:
        raw = p.read_text("utf-8-sig")
    except FileNotFoundError:
        raise IngestError(f"metadata file not found: {p}") from None
    except UnicodeDecodeError:
        raise IngestError(f"{p}: metadata is not UTF-8") from None
    sep = "\t" if p.suffix.lower() == ".tsv" else _sniff_sep(raw)
    reader = csv.DictReader(raw.splitlines(), delimiter=sep)
    _one_name_each(reader.fieldnames or [], p)
    rows = []
    for row in reader:
        if None in row:  # csv puts the fields past the header's under None
            n = len(reader.fieldnames)
            raise IngestError(
                f"{p}: line {reader.line_num} has {n + len(row[None])} fields, the header {n}"
            )
        rows.append(row)
    if not rows:
        raise IngestError(f"{p}: metadata has no rows")
    df = pd.DataFrame(rows, dtype=object)
    renamed = _field_columns(df.columns, p)
    df = df.rename(columns=renamed)
    df = df.drop(columns=[c for c in df.columns if c in _RESERVED and c not in renamed.values()])
    known = {c.lower(): c for c in (*stored, *TABLES["articles"].names)}
    for c in df.columns:
        other = known.get(str(c).lower())
        if other is not None and other != c:
            raise IngestError(
                f"{p}: column {c!r} and the articles column {other!r} differ only in case; "
                f"a table cannot hold both: rename {c!r}"
            )
    df = df.map(lambda v: None if v is None or str(v).strip() in ("", "None", "NA") else v)
    if df["article_id"].isna().any():
        raise IngestError(f"{p}: a row has no id")
    dup = df["article_id"][df["article_id"].duplicated()]
    if len(dup):
        raise IngestError(f"{p}: id {dup.iloc[0]!r} has two rows")
    return _dates(df, p).set_index("article_id", drop=False)


# article columns a metadata file cannot set (the text, and what ingest computes)
_RESERVED = frozenset(TABLES["articles"].names) - set(FIELD_NAMES)


def _one_name_each(names: list[str], path: Path) -> None:
    """Refuse two columns with one name, in any case or spacing (csv keeps the last of two
    equal ones; a table cannot hold two differing in case)."""
    seen: dict[str, str] = {}
    for n in names:
        key = str(n).strip().lower()
        if key in seen:
            raise IngestError(
                f"{path}: column {n!r} is there twice"
                if seen[key] == n
                else f"{path}: columns {seen[key]!r} and {n!r} differ only in case or spacing; "
                "a table cannot hold both: rename one"
            )
        seen[key] = n


def _sniff_sep(raw: str) -> str:
    try:
        return csv.Sniffer().sniff(raw[:4096], delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def _field_columns(columns, path: Path) -> dict[str, str]:
    """{file column: article field} for the first matching name of each field."""
    lower = {str(c).strip().lower(): c for c in columns}
    out = {}
    for field_, names in FIELD_NAMES.items():
        hit = next((lower[n] for n in names if n in lower), None)
        if hit is not None:
            out[hit] = field_
    if "article_id" not in out.values():
        raise IngestError(
            f"{path}: no id column (one of {', '.join(FIELD_NAMES['article_id'])}) in the metadata"
        )
    return out


def _dates(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    if "published_at" not in df.columns:
        return df
    parsed, why = parse_dates(df["published_at"])
    bad = why.notna()
    if bad.any():
        v = df.loc[bad, "published_at"].iloc[0]
        raise IngestError(f"{path}: published_at {v!r} {why[bad].iloc[0]}")
    return df.assign(published_at=parsed)


# the years a stored date may have, in UTC: what Python's datetime holds. Arrow and pandas hold
# year 0 and before too, but every export and `sql` turn dates into datetimes, and died on them.
MIN_YEAR, MAX_YEAR = 1, 9999


def parse_dates(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """`values` as UTC dates, and for each the reason it cannot be one (None when it can):
    not a date, or a date whose year in UTC is outside MIN_YEAR..MAX_YEAR."""
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    why = pd.Series(None, index=values.index, dtype=object)
    why[parsed.isna() & values.notna()] = "is not a date"
    year = parsed.dt.year
    why[(year < MIN_YEAR) | (year > MAX_YEAR)] = (
        f"is outside years {MIN_YEAR}..{MAX_YEAR} in UTC (what every export can write)"
    )
    return parsed, why


def with_metadata(articles: pd.DataFrame, meta: pd.DataFrame | None) -> pd.DataFrame:
    """`articles` with each one's metadata row: fields it gives replace the article's own
    (e.g. a brat text's first line as title), other columns are added."""
    if meta is None:
        return articles
    found = meta.reindex(articles["article_id"]).set_index(articles.index)
    out = articles.copy()
    for col in meta.columns:
        if col == "article_id":
            continue
        if col in out.columns:
            out[col] = found[col].where(found[col].notna(), out[col])
        else:
            out[col] = found[col]
    return out


def metadata_changes(stored: pd.DataFrame, incoming: pd.DataFrame) -> pd.DataFrame:
    """Stored article rows whose metadata `incoming` (same ids, same text) changes, updated.

    Only columns `incoming` carries a value for are compared; the text is never touched.
    """
    cols = [
        c
        for c in incoming.columns
        if c not in _RESERVED and c not in ("article_id", "_where", "text")
    ]
    inc = incoming.drop_duplicates("article_id").set_index("article_id")
    base = stored.set_index("article_id", drop=False)
    ids = [a for a in inc.index if a in base.index]
    if not ids or not cols:
        return stored.iloc[:0]
    old = base.loc[ids].copy()
    changed = pd.Series(False, index=ids)
    for c in cols:
        new = inc.loc[ids, c]
        cur = old[c] if c in old.columns else pd.Series(None, index=ids, dtype=object)
        differs = new.notna() & ~(new.astype(object) == cur.astype(object)).fillna(False)
        changed |= differs
        old[c] = new.where(differs, cur) if c in old.columns else new
    return old[changed.to_numpy()].reset_index(drop=True)
