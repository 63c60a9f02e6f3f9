"""Tables handed on in batches of a fixed number of rows, whatever sizes they arrive in.

A file written one batch per write (Arrow's stream, Parquet's row groups) then has the same
bytes whatever `--chunk-size` cut the articles into: the batches depend on the rows alone.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

ROWS = 1000


class FixedBatches:
    """Calls `write(table)` with tables of exactly `rows` rows (the last, at `close`, fewer),
    each one chunk per column, in buffers of its own."""

    def __init__(self, write: Callable[[pa.Table], None], rows: int = ROWS):
        self.write, self.rows = write, rows
        self.pending: list[pa.Table] = []
        self.held = 0

    def put(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.held += table.num_rows
        if self.held < self.rows:
            return
        whole = pa.concat_tables(self.pending)
        cut = self.held - self.held % self.rows
        for start in range(0, cut, self.rows):
            self.write(_copied(whole.slice(start, self.rows)))
        rest = whole.slice(cut)
        self.pending, self.held = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> None:
        if self.held:
            self.write(_copied(pa.concat_tables(self.pending)))
        self.pending, self.held = [], 0


def _copied(table: pa.Table) -> pa.Table:
    """The rows in buffers of their own: a zero-copy slice keeps its parent's offsets, which
    Arrow's stream writes out, so its bytes would depend on where the chunk began."""
    return table.take(pa.array(range(table.num_rows), pa.int64())).combine_chunks()
