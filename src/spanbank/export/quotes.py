"""Quotes table writer: one row per QUOTE with its speaker, cue and context, as Parquet and JSONL.

`quotes/quotes.parquet` and `quotes/quotes.jsonl` hold the same rows: article_id, split,
the quote (span_id, start, end, text, type, fragments), its speaker(s) via `said_by` and
cue(s) via `cue` (texts joined with " | " when there are several; offsets of the first), and
a context window of about CONTEXT characters either side, cut at word boundaries (`context`,
`context_start`, `context_end`). A quote broken by its cue is one row: `quote_text` joins
its fragments with " … ", `quote_start`/`quote_end` are its outer bounds and
`quote_fragments` its parts. Offsets are integers; a missing one is null (pandas reads the
columns as nullable `Int64`, never floats with NaN). Rows come split by split (in the
order the splits are named), each split's in article order.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from spanbank.export.batches import FixedBatches
from spanbank.export.jsonl import dumps

CONTEXT = 200
SCRATCH = "_quotes_scratch"
QUOTE, CUE = "QUOTE", "CUE"
LINKS = {"said_by": "speaker", "cue": "cue"}

SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("split", pa.string()),
        ("quote_span_id", pa.string()),
        ("quote_start", pa.int64()),
        ("quote_end", pa.int64()),
        ("quote_text", pa.string()),
        ("quote_type", pa.string()),
        ("quote_fragments", pa.list_(pa.struct([("start", pa.int64()), ("end", pa.int64())]))),
        ("speaker_text", pa.string()),
        ("speaker_start", pa.int64()),
        ("speaker_end", pa.int64()),
        ("speaker_span_ids", pa.list_(pa.string())),
        ("cue_text", pa.string()),
        ("cue_start", pa.int64()),
        ("cue_end", pa.int64()),
        ("cue_span_ids", pa.list_(pa.string())),
        ("context", pa.string()),
        ("context_start", pa.int64()),
        ("context_end", pa.int64()),
    ]
)


def _with_pandas_types(schema: pa.Schema) -> pa.Schema:
    """`schema` plus the pandas metadata that makes pandas read int columns as nullable Int64."""
    empty = pd.DataFrame(
        {
            f.name: pd.Series(dtype="Int64" if pa.types.is_integer(f.type) else object)
            for f in schema
        }
    )
    return pa.Table.from_pandas(empty, schema=schema, preserve_index=False).schema


SCHEMA = _with_pandas_types(SCHEMA)


def context_window(text: str, start: int, end: int, context: int = CONTEXT) -> tuple[int, int]:
    """About `context` characters either side of [start, end), shrunk to whole words."""
    lo, hi = max(0, start - context), min(len(text), end + context)
    if lo > 0 and not text[lo - 1].isspace():  # mid-word: start after the cut word
        nxt = next((i for i in range(lo, start) if text[i].isspace()), start)
        lo = nxt + 1 if nxt < start else start
    if hi < len(text) and not text[hi].isspace() and not text[hi - 1].isspace():
        prev = next((i for i in range(hi - 1, end - 1, -1) if text[i].isspace()), end)
        hi = prev if prev > end else end
    return lo, hi


def quote_rows(doc: dict, split: str, context: int = CONTEXT) -> list[dict]:
    """One row per QUOTE span of a document (see the module docstring for the columns)."""
    spans, text = doc["spans"], doc["text"]
    linked: dict[int, dict[str, list[int]]] = {}
    for rel in doc["relations"]:
        role = LINKS.get(rel["label"])
        if role is None:
            continue
        head, tail = rel["head"], rel["tail"]
        if spans[head]["label"] != QUOTE and spans[tail]["label"] == QUOTE:
            head, tail = tail, head  # tolerate a link stored the other way round
        linked.setdefault(head, {}).setdefault(role, []).append(tail)
    rows = []
    for i, sp in enumerate(spans):
        if sp["label"] != QUOTE:
            continue
        s, e = sp["start"], sp["end"]
        lo, hi = context_window(text, s, e, context)
        row = {
            "article_id": doc["article_id"],
            "split": split,
            "quote_span_id": sp["span_id"],
            "quote_start": s,
            "quote_end": e,
            "quote_text": sp["text"],
            "quote_type": sp["attributes"].get("type"),
            "quote_fragments": [{"start": a, "end": b} for a, b in sp["fragments"]]
            if len(sp.get("fragments") or ()) > 1
            else None,
        }
        for role in ("speaker", "cue"):
            idx = sorted(set(linked.get(i, {}).get(role, [])), key=lambda k: (spans[k]["start"], k))
            row[f"{role}_text"] = " | ".join(spans[k]["text"] for k in idx) if idx else None
            row[f"{role}_start"] = spans[idx[0]]["start"] if idx else None
            row[f"{role}_end"] = spans[idx[0]]["end"] if idx else None
            row[f"{role}_span_ids"] = [spans[k]["span_id"] for k in idx]
        row.update({"context": text[lo:hi], "context_start": lo, "context_end": hi})
        rows.append(row)
    return rows


def encode(split: str, docs: list[dict]) -> tuple[pa.Table | None, bytes]:
    """A chunk's quote rows as an Arrow table and JSON lines in UTF-8 (pure: a worker can run
    it)."""
    rows = [r for d in docs for r in quote_rows(d, split)]
    if not rows:
        return None, b""
    lines = "".join(dumps(r) + "\n" for r in rows).encode("utf-8")
    return pa.Table.from_pylist(rows, schema=SCHEMA), lines


class QuotesWriter:
    """Each split's rows spooled apart, joined split after split at `close`: the rows come in
    split order, then article order, and the files are the same whatever the chunk size."""

    name = "quotes"
    encoder = staticmethod(encode)

    def __init__(self, root: Path, splits: list[str], labels: list[str], schema=None):
        self.dir = Path(root) / "quotes"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(root) / SCRATCH
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.splits = list(splits)
        self._files: list = []
        self._arrow, self._jsonl = {}, {}
        for s in self.splits:
            sink = self._open(pa.OSFile(str(self.scratch / f"{s}.arrow"), "wb"))
            self._arrow[s] = self._open(pa.ipc.new_stream(sink, SCHEMA))
            self._jsonl[s] = self._open(open(self.scratch / f"{s}.jsonl", "wb"))  # noqa: SIM115
        self.count = 0

    def _open(self, f):
        self._files.insert(0, f)  # closed newest first: a stream before its sink
        return f

    def write(self, split: str, docs: list[dict]) -> None:
        self.put(split, encode(split, docs))

    def put(self, split: str, payload) -> None:
        table, lines = payload
        if table is None:
            return
        self.count += table.num_rows
        self._arrow[split].write_table(table)
        self._jsonl[split].write(lines)

    def close(self) -> dict:
        self.abort()
        with (
            pq.ParquetWriter(self.dir / "quotes.parquet", SCHEMA, compression="zstd") as parquet,
            open(self.dir / "quotes.jsonl", "wb") as jsonl,
        ):
            batches = FixedBatches(parquet.write_table)
            for s in self.splits:
                with open(self.scratch / f"{s}.jsonl", "rb") as part:
                    shutil.copyfileobj(part, jsonl)
                with pa.memory_map(str(self.scratch / f"{s}.arrow")) as source:
                    for batch in pa.ipc.open_stream(source):
                        batches.put(pa.Table.from_batches([batch]))
            batches.close()
        shutil.rmtree(self.scratch)
        return {"quotes": self.count}

    def abort(self) -> None:
        for f in self._files:
            f.close()
        self._files = []
