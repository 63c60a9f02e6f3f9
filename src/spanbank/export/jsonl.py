"""JSON Lines writer: one `<split>.jsonl` per split, one lossless document per line.

Each line is a document as built by `spanbank.export.docs` (article_id, text, spans with
span_id/start/end/label/text/attributes/fragments (a span's [start, end] parts: one, or
several for a discontinuous span whose `text` joins them with " … "), relations with `head`/`tail` as indices into the
article's `spans` list, meta). Offsets are code points, end-exclusive.
"""

from __future__ import annotations

import json
from pathlib import Path


def dumps(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def encode(split: str, docs: list[dict]) -> bytes:
    """A chunk's lines as UTF-8 (pure: a worker can run it; `JsonlWriter.put` appends them).
    Bytes, not text: they cross from a worker at half the cost and are written as they are."""
    return "".join(dumps(d) + "\n" for d in docs).encode("utf-8")


class JsonlWriter:
    """Streams documents to `jsonl/<split>.jsonl`."""

    name = "jsonl"
    encoder = staticmethod(encode)

    def __init__(self, root: Path, splits: list[str], labels: list[str], schema=None):
        self.dir = Path(root) / "jsonl"
        self.dir.mkdir(parents=True, exist_ok=True)
        # every declared split gets a file, empty or not
        self._files = {s: open(self.dir / f"{s}.jsonl", "wb") for s in splits}

    def write(self, split: str, docs: list[dict]) -> None:
        self.put(split, encode(split, docs))

    def put(self, split: str, lines: bytes) -> None:
        self._files[split].write(lines)

    def close(self) -> dict:
        self.abort()
        return {}

    def abort(self) -> None:
        for fh in self._files.values():
            fh.close()


def read_jsonl(path) -> list[dict]:
    """Documents of one exported `.jsonl` file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
