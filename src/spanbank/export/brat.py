"""brat standoff writer: `brat/<split>/<article>.txt` + `.ann` (T, R, A lines) and `annotation.conf`.

Offsets are code points (what brat counts for text written by Python). A span crossing a
line end stays one contiguous `T` span; its text field has line ends (every character Python
breaks lines at: form feed, U+2028, ...) shown as spaces (an `.ann` line cannot hold them).
A discontinuous span is one `T` line with its fragments
(`T1 QUOTE 7 16;26 42`), their texts joined by a space as brat writes them. An attribute
whose name several labels use with other values is written `<name>_<LABEL>` (brat declares
each attribute once), and read back as `<name>` by the brat import. Files are named by article_id; an id that is not a safe file
name is percent-encoded, one too long for a file name is shortened with a hash and listed in
`article_ids.json`. `spanbank ingest --format brat brat/` re-imports everything under the same ids.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from spanbank.corpus.brat import IDS_FILE, article_id_of, file_stem
from spanbank.errors import ExportError

# every character str.splitlines breaks a line at (brat's Python reader does), and tab
_BREAKS = re.compile("[\t\n\v\f\r\x1c-\x1e\x85\u2028\u2029]")


def to_ann(doc: dict, attr_names: dict[tuple[str, str], str] | None = None) -> str:
    """A document's `.ann` text; `attr_names` maps (label, attribute) to its declared name."""
    lines = []
    attr_n = 0
    text = doc["text"]
    for i, sp in enumerate(doc["spans"], 1):
        parts = sp.get("fragments") or [[sp["start"], sp["end"]]]
        offs = ";".join(f"{s} {e}" for s, e in parts)
        shown = _BREAKS.sub(" ", " ".join(text[s:e] for s, e in parts))
        lines.append(f"T{i}\t{sp['label']} {offs}\t{shown}")
        for name, value in sorted(sp["attributes"].items()):
            if value is None:
                continue
            attr_n += 1
            declared = (attr_names or {}).get((sp["label"], name), name)
            lines.append(f"A{attr_n}\t{declared} T{i} {value}")
    for k, rel in enumerate(doc["relations"], 1):
        lines.append(f"R{k}\t{rel['label']} Arg1:T{rel['head'] + 1} Arg2:T{rel['tail'] + 1}")
    return "\n".join(lines) + ("\n" if lines else "")


def attribute_names(schema, labels: list[str]) -> dict[tuple[str, str], str]:
    """(label, attribute) -> the name brat declares it under: the attribute's own name, or
    `<name>_<LABEL>` when labels share the name with other values (QUOTE and EVENT `type`)."""
    specs: dict[str, list[tuple[str, tuple]]] = {}
    for lab in labels:
        spec = schema.labels.get(lab) if schema else None
        for attr in spec.attributes.values() if spec else ():
            specs.setdefault(attr.name, []).append((lab, attr.values))
    out = {}
    for name, owners in specs.items():
        shared = len({values for _, values in owners}) > 1
        for lab, _ in owners:
            out[lab, name] = f"{name}_{lab}" if shared else name
    return out


def annotation_conf(schema, labels: list[str]) -> str:
    """brat's `annotation.conf` for the exported labels: each attribute declared for its own
    label(s) with its own values (see `attribute_names`)."""
    lines = ["[entities]", *labels, "", "[relations]"]
    for rel in schema.relations.values() if schema else ():
        if rel.source in labels and rel.target in labels:
            lines.append(f"{rel.name}\tArg1:{rel.source}, Arg2:{rel.target}")
    lines.append("<OVERLAP>\tArg1:<ENTITY>, Arg2:<ENTITY>, <OVL-TYPE>:<ANY>")
    lines += ["", "[events]", "", "[attributes]"]
    attrs: dict[str, tuple[list[str], list[str]]] = {}
    names = attribute_names(schema, labels)
    for lab in labels:
        spec = schema.labels.get(lab) if schema else None
        for attr in spec.attributes.values() if spec else ():
            owners, values = attrs.setdefault(names[lab, attr.name], ([], []))
            owners.append(lab)
            values += [v for v in attr.values if v not in values]
    for name, (owners, values) in attrs.items():
        lines.append(f"{name}\tArg:{'|'.join(owners)}, Value:{'|'.join(values)}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BratEncoder:
    """A chunk's files, per article: (stem, article_id when the stem is hashed, and the sha256
    of its .txt and .ann when written here, else their bytes). They are written where the
    export's folder `dir` is seen (in the driver, or on a worker sharing its file system), so
    texts do not travel back; elsewhere the driver writes them."""

    attr_names: tuple
    dir: str

    def __call__(self, split: str, docs: list[dict]) -> list[tuple]:
        names = dict(self.attr_names)
        folder = os.path.join(self.dir, split)
        here = os.path.isdir(folder)  # a temp folder's path: seen elsewhere only when shared
        out = []
        for d in docs:
            stem = file_stem(d["article_id"])
            hashed = d["article_id"] if article_id_of(stem) != d["article_id"] else None
            files = (d["text"].encode("utf-8"), to_ann(d, names).encode("utf-8"))
            if here:
                files = tuple(_write(os.path.join(folder, stem), files))
            out.append((stem, hashed, here, *files))
        return out


def _write(base: str, files: tuple[bytes, bytes]):
    """Write an article's .txt and .ann; yield their sha256 (hex) for the manifest."""
    for ext, data in zip((".txt", ".ann"), files, strict=True):
        with open(base + ext, "wb") as fh:
            fh.write(data)
        yield hashlib.sha256(data).hexdigest()


class BratWriter:
    name = "brat"

    def __init__(self, root: Path, splits: list[str], labels: list[str], schema=None):
        self.dir = Path(root) / "brat"
        self.ids: dict[str, str] = {}
        self.digests: dict[str, str] = {}  # path in the export -> sha256, for the manifest
        self.attr_names = attribute_names(schema, list(labels))
        self.encoder = BratEncoder(tuple(sorted(self.attr_names.items())), str(self.dir))
        for s in splits:
            (self.dir / s).mkdir(parents=True, exist_ok=True)
        (self.dir / "annotation.conf").write_text(
            annotation_conf(schema, list(labels)), encoding="utf-8"
        )

    def write(self, split: str, docs: list[dict]) -> None:
        self.put(split, self.encoder(split, docs))

    def put(self, split: str, files: list[tuple]) -> None:
        folder = self.dir / split
        for stem, hashed, written, txt, ann in files:
            if f"brat/{split}/{stem}.txt" in self.digests:  # `file_stem` gives none: a guard
                raise ExportError(
                    f"brat: two articles in split {split!r} would share the file name {stem!r}"
                )
            if hashed is not None:  # the name alone does not give the id back
                self.ids[f"{split}/{stem}"] = hashed
            if not written:
                txt, ann = _write(str(folder / stem), (txt, ann))
            self.digests[f"brat/{split}/{stem}.txt"] = txt
            self.digests[f"brat/{split}/{stem}.ann"] = ann

    def close(self) -> dict:
        if self.ids:
            text = json.dumps(dict(sorted(self.ids.items())), indent=1, ensure_ascii=False) + "\n"
            (self.dir / IDS_FILE).write_text(text, encoding="utf-8")
        return {}

    def abort(self) -> None:
        pass
