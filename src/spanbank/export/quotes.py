"""Quotes table writer: one row per QUOTE with its speaker, cue and context, as Parquet and JSONL.

`quotes/quotes.parquet` and `quotes/quotes.jsonl` hold the same rows: article_id, split,
the quote (span_id, start, end, text, type), its speaker(s) via `said_by` and cue(s) via
`cue` (texts joined with " | " when there are several; offsets of the first), and a context
window of CONTEXT characters either side (`context`, `context_start`, `context_end`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from spanbank.export.jsonl import dumps

CONTEXT = 200
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
        lo, hi = max(0, s - context), min(len(text), e + context)
        row = {
            "article_id": doc["article_id"],
            "split": split,
            "quote_span_id": sp["span_id"],
            "quote_start": s,
            "quote_end": e,
            "quote_text": sp["text"],
            "quote_type": sp["attributes"].get("type"),
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


class QuotesWriter:
    name = "quotes"

    def __init__(self, root: Path, splits: list[str], labels: list[str], schema=None):
        self.dir = Path(root) / "quotes"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._parquet = pq.ParquetWriter(self.dir / "quotes.parquet", SCHEMA, compression="zstd")
        self._jsonl = open(self.dir / "quotes.jsonl", "w", encoding="utf-8", newline="\n")
        self.count = 0

    def write(self, split: str, docs: list[dict]) -> None:
        rows = [r for d in docs for r in quote_rows(d, split)]
        if not rows:
            return
        self.count += len(rows)
        self._parquet.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))
        self._jsonl.write("".join(dumps(r) + "\n" for r in rows))

    def close(self) -> dict:
        self.abort()
        return {"quotes": self.count}

    def abort(self) -> None:
        self._parquet.close()
        self._jsonl.close()
