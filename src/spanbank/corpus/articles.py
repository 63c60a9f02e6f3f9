"""Reading articles: metadata without text, texts by id, batches in table order."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spanbank.corpus.delta import readable


class IdSet:
    """A set of ids indexed once, for looking up batch after batch. `pc.is_in` hashes its whole
    value set on every call, which made a pass over N articles choosing N ids quadratic; a
    pandas index of them held a Python string each, about 100 MB per million ids. Here they are
    one sorted array of fixed-width bytes, searched by bisection: 26 MB per million ids of 18
    characters; sorting also finds repeated ids, so nothing is hashed (a hash of 10M ids was an
    export's peak). Ids much longer than most (or with NUL characters) go to a pandas index
    instead. A missing id never matches."""

    def __init__(self, ids: pa.Array | pa.ChunkedArray):
        self.size = len(ids)
        lengths = pc.binary_length(ids)
        self.width = int(pc.max(lengths).as_py() or 0)
        self.index = None
        if self.width > max(64, 4 * (pc.mean(lengths).as_py() or 0)):
            self._index(ids)
            return
        raw, fits = _fixed_width(ids, self.width)
        missing = np.asarray(ids.is_null())
        if not (fits | missing).all():
            self._index(ids)
            return
        if missing.any():
            keep = np.flatnonzero(~missing)
            raw = raw[keep]
            order = keep[np.argsort(raw, kind="stable")]
        else:
            order = np.argsort(raw, kind="stable")
        del missing
        raw.sort(kind="stable")  # in place: the bytes are not held twice (10M ids: 180 MB)
        self.sorted = raw
        # stable: an id's first place comes first among its equals
        first = np.ones(len(order), dtype=bool)
        first[1:] = self.sorted[1:] != self.sorted[:-1]
        self.repeats = np.sort(order[~first])
        if len(self.repeats):
            self.sorted, order = self.sorted[first], order[first]
        self.order = order

    def _index(self, ids: pa.Array) -> None:
        values = pd.Index(ids.to_numpy(zero_copy_only=False), dtype=object)
        again = values.duplicated()
        missing = np.asarray(ids.is_null())
        self.repeats = np.flatnonzero(again & ~missing)
        self.first = np.flatnonzero(~again & ~missing)
        self.index = values[self.first]

    def __len__(self) -> int:
        """How many distinct ids the set holds."""
        return len(self.index) if self.index is not None else len(self.sorted)

    def positions(self, column) -> np.ndarray:
        """Each of `column`'s ids' first place among the ids given, -1 when it is not in the
        set. (`repeats`: the places of ids given again after their first.)"""
        if self.index is not None:
            found = self.index.get_indexer(column.to_numpy(zero_copy_only=False))
            found = np.where(found >= 0, self.first[found], -1)
            return np.where(np.asarray(column.is_null()), -1, found)
        raw, fits = _fixed_width(column, self.width)
        if not len(self.sorted):
            return np.full(len(raw), -1, dtype=np.int64)
        i = np.minimum(np.searchsorted(self.sorted, raw), len(self.sorted) - 1)
        return np.where(fits & (self.sorted[i] == raw), self.order[i], -1)

    def mask(self, column) -> pa.Array:
        """True where `column`'s id is in the set."""
        return pa.array(self.positions(column) >= 0)


def _fixed_width(column, width: int) -> tuple[np.ndarray, np.ndarray]:
    """`column`'s strings as NUL-padded bytes of `width` (numpy "S"), and whether each is one the
    set could hold: not missing, not longer than `width`, without NUL (numpy drops trailing NULs
    when it compares). Gathered from Arrow's buffers a slice at a time, without Python strings,
    a chunk at a time (a selection put together from ranges is not copied whole first)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    n, w = len(column), max(width, 1)
    out = np.zeros((n, w), dtype=np.uint8)
    fits = np.empty(n, dtype=bool)
    at = 0
    for arr in chunks:
        _gather(arr, width, out[at : at + len(arr)], fits[at : at + len(arr)])
        at += len(arr)
    return out.view(f"S{w}").ravel(), fits


def _gather(arr: pa.Array, width: int, out: np.ndarray, fits: np.ndarray) -> None:
    """One chunk of :func:`_fixed_width`, into `out` and `fits`."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())
    n, w = len(arr), out.shape[1]
    _, offs, data = arr.buffers()
    kind = np.int64 if pa.types.is_large_string(arr.type) else np.int32  # pandas' str: large
    offsets = np.frombuffer(offs, dtype=kind, count=arr.offset + n + 1)[arr.offset :]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(1, np.uint8)
    lengths = np.diff(offsets)
    fits[:] = (lengths <= width) & ~np.asarray(arr.is_null())
    place = np.arange(w)
    for lo in range(0, n, ID_SLICE):  # the gather's index is 8 bytes per byte of ids
        hi = min(n, lo + ID_SLICE)
        inside = place < np.minimum(lengths[lo:hi], w)[:, None]
        block = out[lo:hi]
        block[inside] = data[(offsets[lo:hi, None] + place)[inside]]
        fits[lo:hi] &= ~((block == 0) & inside).any(axis=1)


ID_SLICE = 1 << 15


def article_columns(corpus) -> list[str]:
    """The articles table's column names."""
    return corpus.stored_schema("articles").names


def selection_frame(corpus, where: str | None = None) -> pd.DataFrame:
    """What a selection needs: `article_id` and its row (`_row`), plus every metadata column
    when a `where` filter may read them; `attach_rows` fetches the rest for the few picked."""
    frame = article_meta(corpus) if where else corpus.read("articles", columns=["article_id"])
    return frame.assign(_row=np.arange(len(frame), dtype=np.int64))


def attach_rows(corpus, todo: pd.DataFrame) -> pd.DataFrame:
    """`todo` (with `_row`) with every articles column, text included, read by position."""
    cols = [c for c in article_columns(corpus) if c not in todo.columns or c == "article_id"]
    order = np.argsort(todo["_row"].to_numpy(), kind="stable")
    got = corpus.take("articles", todo["_row"].to_numpy()[order], cols).to_pandas()
    got.index = todo.index[order]
    got = got.loc[todo.index]
    if not (got["article_id"].to_numpy() == todo["article_id"].to_numpy()).all():
        raise AssertionError("articles table changed during selection")  # we hold the lock
    return pd.concat([todo.drop(columns="_row"), got.drop(columns="article_id")], axis=1)


def article_meta(corpus) -> pd.DataFrame:
    """Every articles column but `text`, in table order: what selection filters on."""
    return corpus.read("articles", columns=[c for c in article_columns(corpus) if c != "text"])


def attach_text(corpus, todo: pd.DataFrame) -> pd.DataFrame:
    """`todo` with its articles' text (`texts_of`)."""
    if "text" in todo.columns:
        return todo
    if todo.empty:
        return todo.assign(text=pd.Series(dtype=object))
    return todo.assign(text=todo["article_id"].map(texts_of(corpus, todo["article_id"])))


def texts_of(corpus, ids) -> dict[str, str]:
    """{article id: text} of the stored articles among `ids`, read only from the row groups that
    hold them: the texts of a corpus are most of its size, and a command that needs a few must
    not hold them all (pull, adjudicate and agree each read every text)."""
    texts: dict[str, str] = {}
    unique = sorted({str(a) for a in ids})
    if not unique:
        return texts
    wanted = IdSet(pa.array(unique, pa.string()))
    for f in corpus.table_files("articles"):
        with readable(f.parent):
            pf = pq.ParquetFile(f)
            for g in range(pf.num_row_groups):
                hit = wanted.mask(pf.read_row_group(g, columns=["article_id"]).column(0))
                if not pc.any(hit).as_py():
                    continue
                found = pf.read_row_group(g, columns=["article_id", "text"]).filter(hit)
                got = zip(found.column(0).to_pylist(), found.column(1).to_pylist(), strict=True)
                texts.update(got)
                if len(texts) >= len(wanted):
                    return texts
    return texts


def article_batches(corpus, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Articles table batches in append order (deterministic), reading only `columns`."""
    return corpus.iter_batches("articles", columns, batch_size)


def article_chunks(
    corpus,
    columns: list[str],
    size: int,
    wanted: pa.Array | None = None,
    rows: np.ndarray | None = None,
) -> Iterator[list[pa.RecordBatch]]:
    """Articles in table order in chunks of `size` rows (the last one smaller), only the ids in
    `wanted` when given, or only the rows numbered in `rows` (sorted, counted from 0 in table
    order: no hashing of ids); a chunk is a list of record batch slices."""
    pending: list[pa.RecordBatch] = []
    held = 0
    chosen = IdSet(wanted) if wanted is not None else None
    offset = 0
    for batch in article_batches(corpus, columns, size):
        if rows is not None:
            lo, hi = np.searchsorted(rows, [offset, offset + batch.num_rows])
            picked = rows[lo:hi] - offset
            offset += batch.num_rows
            batch = batch.take(pa.array(picked))
        elif chosen is not None:
            batch = batch.filter(chosen.mask(batch.column("article_id")))
        while batch.num_rows:
            take = min(size - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == size:
                yield pending
                pending, held = [], 0
    if held:
        yield pending
