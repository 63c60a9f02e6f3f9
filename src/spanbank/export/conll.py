"""CoNLL writer: `conll/<split>.conll`, one token per line with one BIO column per label layer.

Columns are tab-separated: the token, then `B-/I-/O` tags for each label in schema order
(one column per layer, so nested spans of different labels survive). Each article starts
with a `-DOCSTART-` line (its second column is the article_id) and a blank line; a blank line
ends it. Tokens are regex words/punctuation cut at span boundaries (as in the hf format).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spanbank.export.docs import layer_names, tagged

DOCSTART = "-DOCSTART-"


def to_conll(doc: dict, labels: list[str], notes: dict) -> str:
    _, _, tokens, layers, n = tagged(doc, labels)
    for k, v in n.items():
        notes[f"conll_{k}"] = notes.get(f"conll_{k}", 0) + v
    columns = []
    for lab in labels:
        names = layer_names(lab)
        columns.append([names[t] for t in layers[lab]])
    lines = map("\t".join, zip(tokens, *columns, strict=True))
    return "\n".join([f"{DOCSTART}\t{doc['article_id']}", "", *lines]) + "\n\n"


@dataclass(frozen=True)
class ConllEncoder:
    """A chunk's CoNLL text as UTF-8, and notes (pure: a worker can run it)."""

    labels: tuple[str, ...]

    def __call__(self, split: str, docs: list[dict]) -> tuple[bytes, dict]:
        notes: dict[str, int] = {}
        text = "".join(to_conll(d, list(self.labels), notes) for d in docs)
        return text.encode("utf-8"), notes


class ConllWriter:
    name = "conll"

    def __init__(self, root: Path, splits: list[str], labels: list[str], schema=None):
        self.dir = Path(root) / "conll"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.labels = list(labels)
        self._files = {s: open(self.dir / f"{s}.conll", "wb") for s in splits}
        self.notes: dict[str, int] = {}
        self.encoder = ConllEncoder(tuple(self.labels))

    def write(self, split: str, docs: list[dict]) -> None:
        self.put(split, self.encoder(split, docs))

    def put(self, split: str, payload: tuple[bytes, dict]) -> None:
        text, notes = payload
        self._files[split].write(text)
        for k, v in notes.items():
            self.notes[k] = self.notes.get(k, 0) + v

    def close(self) -> dict:
        self.abort()
        return dict(sorted(self.notes.items()))

    def abort(self) -> None:
        for fh in self._files.values():
            fh.close()


def read_conll(path, labels: list[str]) -> list[dict]:
    """Parse an exported `.conll` file back into [{article_id, tokens, tags: {label: [...]}}]."""
    docs: list[dict] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line.startswith(DOCSTART):
                docs.append(
                    {
                        "article_id": line.split("\t", 1)[1],
                        "tokens": [],
                        "tags": {lab: [] for lab in labels},
                    }
                )
            elif line:
                token, *tags = line.split("\t")
                docs[-1]["tokens"].append(token)
                for lab, tag in zip(labels, tags, strict=False):
                    docs[-1]["tags"][lab].append(tag)
    return docs
