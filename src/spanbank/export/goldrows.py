"""The chosen gold's annotation rows, and their span and relation rows, parked on disk by chunk
or range of chunks, so an export's driver holds one range of them at a time instead of every
selected row of the corpus."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from spanbank import gold as gold_mod
from spanbank.corpus.articles import IdSet
from spanbank.corpus.delta import read_conform
from spanbank.corpus.tables import TABLES

BUCKET_ARTICLES = 16_384  # articles whose rows are held at once (~50 MB of rows at 3 KB each)
HELD_BYTES = 64 << 20  # rows held while parking, before they are written to their buckets' files
NAMES = ("spans", "relations")
AT = "_at"  # a parked row's annotation: its row in `ann`


class GoldSpool:
    """`spool(chunk_annotations, start)` -> (spans, relations) of those annotations: the rows the
    whole tables filtered would give, grouped by annotation in the chunk's order, each
    annotation's rows in the order the tables hold them (stored rows, or gold adjudicated in
    memory).

    `ids` are the selected annotations' ids (an IdSet, in the order the export reads the
    articles, `chunk_size` at a time: id r is in chunk r // chunk_size); `in_store` says which
    of them have their rows in the tables, and `todo` (:func:`spanbank.gold.split_stored`) are
    the others, adjudicated again here. Built with one pass over the span and relation tables,
    a batch at a time: each selected row goes to a file of its bucket (a range of export
    chunks) with its annotation's place r. Chunks are asked for in that order (`start`: the
    chunk's first place), so each bucket is read once, sorted by that place, then deleted; a
    chunk's rows are then one contiguous run of it."""

    def __init__(
        self,
        folder: Path,
        corpus,
        ids: IdSet,
        in_store: np.ndarray,
        todo: pd.DataFrame,
        chunk_size: int,
    ):
        self.folder = Path(folder)
        self.folder.mkdir()
        self._files: dict[str, dict[int, list[Path]]] = {n: {} for n in NAMES}
        self._held: dict[str, dict[int, list[pa.Table]]] = {n: {} for n in NAMES}
        self._held_bytes = 0
        self._seq = 0
        self._loaded: tuple[int, tuple] | None = None
        self._bucket_rows = max(1, BUCKET_ARTICLES // chunk_size) * chunk_size
        for name in NAMES:
            cols = TABLES[name].names
            for batch in corpus.iter_batches(name, cols):
                self._park(name, pa.Table.from_batches([batch]), ids, in_store, cols)
        for name, rows in zip(NAMES, gold_mod.computed_rows(corpus, todo), strict=True):
            self._park(name, rows, ids, None, TABLES[name].names)
        self._flush()

    def _park(
        self, name: str, table: pa.Table, ids: IdSet, wanted: np.ndarray | None, cols: list[str]
    ) -> None:
        """Hold `table`'s rows of annotations in `ids` (and `wanted` there, when given) by bucket,
        order kept within a bucket; written out every HELD_BYTES, so rows stored in any order
        make one file per bucket per flush, not per batch."""
        if not table.num_rows:
            return
        at = ids.positions(table.column("annotation_id"))
        ok = at >= 0
        if wanted is not None:
            ok[ok] = wanted[at[ok]]
        b = np.where(ok, at // self._bucket_rows, -1)
        keep = np.flatnonzero(ok)
        if not len(keep):
            return
        order = keep[np.argsort(b[keep], kind="stable")]
        b = b[order]
        table = read_conform(table.take(pa.array(order)), TABLES[name], cols)
        table = table.append_column(AT, pa.array(at[order]))
        cuts = np.flatnonzero(np.diff(b)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(b)], strict=True):
            self._held[name].setdefault(int(b[lo]), []).append(table.slice(lo, hi - lo))
        self._held_bytes += table.nbytes
        if self._held_bytes >= HELD_BYTES:
            self._flush()

    def _flush(self) -> None:
        for name, held in self._held.items():
            for k, parts in held.items():
                path = self.folder / f"{name}-{k:08d}-{self._seq:08d}.arrow"
                self._seq += 1
                with pa.OSFile(str(path), "wb") as f, pa.ipc.new_file(f, parts[0].schema) as w:
                    for part in parts:
                        w.write_table(part)
                self._files[name].setdefault(k, []).append(path)
            held.clear()
        self._held_bytes = 0

    def __call__(self, chunk: pd.DataFrame, start: int) -> tuple[pa.Table, pa.Table]:
        """The rows of `chunk`: the annotations at rows `start`... of the `ann` given. A copy,
        so that sending it to a worker does not send the whole bucket it was cut from."""
        stop = start + len(chunk)
        out = []
        for i, name in enumerate(NAMES):
            parts = [TABLES[name].empty_table()]
            for k in range(start // self._bucket_rows, -(-stop // self._bucket_rows)):
                table, at = self._load(k)[i]
                lo, hi = np.searchsorted(at, [start, stop])
                parts.append(table.take(pa.array(np.arange(lo, hi))))
            out.append(pa.concat_tables(parts))
        return tuple(out)

    def _load(self, k: int) -> tuple:
        """Bucket k's (rows, the row in `ann` of each) per table, sorted by that row."""
        if self._loaded is not None and self._loaded[0] == k:
            return self._loaded[1]
        self._loaded = None  # the previous bucket is done: free it before reading this one
        loaded = []
        for name in NAMES:
            files = self._files[name].pop(k, [])
            tables = [pa.ipc.open_file(pa.memory_map(str(p))).read_all() for p in files]
            for p in files:
                p.unlink()  # the rows stay readable through the mapping until dropped
            if not tables:
                loaded.append((TABLES[name].empty_table(), np.empty(0, dtype=np.int64)))
                continue
            table = pa.concat_tables(tables)
            at = table.column(AT).to_numpy()
            order = np.argsort(at, kind="stable")
            loaded.append((table.drop_columns([AT]).take(pa.array(order)), at[order]))
        self._loaded = (k, tuple(loaded))
        return self._loaded[1]

    def close(self) -> None:
        self._loaded = None
        shutil.rmtree(self.folder, ignore_errors=True)


class ChunkFrames:
    """A frame's rows parked in a file `size` at a time; `frames(start, n)` gives rows `start`
    to `start + n` back, one chunk (`start` a multiple of `size`), as they were, or with columns
    cast back to `dtypes` (the selection's few-valued columns were held as categories). The
    export's selection, held by the driver through the stream, was 115 MB per million articles.
    Pickled, so any frame comes back exactly; the file is the export's own, in its private temp
    folder."""

    def __init__(self, path: Path, frame: pd.DataFrame, size: int, dtypes: dict | None = None):
        self.path = Path(path)
        self.size = size
        self.dtypes = dtypes or {}
        self._ends = [0]
        with open(self.path, "xb") as fh:
            for lo in range(0, len(frame), size):
                fh.write(pickle.dumps(frame.iloc[lo : lo + size], protocol=5))
                self._ends.append(fh.tell())
        self._fh = open(self.path, "rb")  # noqa: SIM115 (closed by close)

    def __call__(self, start: int, n: int) -> pd.DataFrame:
        i, off = divmod(start, self.size)
        if off or i + 1 >= len(self._ends):
            raise IndexError(f"no chunk starts at row {start}")
        self._fh.seek(self._ends[i])
        frame = pickle.loads(self._fh.read(self._ends[i + 1] - self._ends[i]))
        if len(frame) != n:
            raise IndexError(f"the chunk at row {start} has {len(frame)} rows, not {n}")
        return frame.reset_index(drop=True).astype(self.dtypes)

    def close(self) -> None:
        self._fh.close()
        self.path.unlink(missing_ok=True)
