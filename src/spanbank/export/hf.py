"""Hugging Face writer: a `DatasetDict` saved with `save_to_disk` under `hf/`, plus Parquet per split.

Columns: `article_id`, `text`, the article's `language`, `title`, `source`, `url`,
`published_at` (ISO 8601 text), `annotator` (pseudonym) and `metadata` (the article's other
columns, e.g. from `ingest --metadata`, as key/value text pairs), `tokens`, `token_starts`/`token_ends` (code points), one
BIO `ClassLabel` sequence per label layer (`ner_tags_SPEAKER`, `ner_tags_QUOTE`, ... so a
SPEAKER nested in a QUOTE survives), and the lossless `spans` (span_id, start, end, label,
text, `attributes` as a struct with one typed field per schema attribute, `fragments`: its (start, end) parts, several for a quote broken
by its cue) and `relations` (head/tail index into `spans`). A discontinuous span is tagged
B-I... on each of its fragments. Tokens are cut at
span boundaries, so every span lies on token boundaries; a span overlapping another of
the same label cannot sit in that label's BIO layer and is counted (it stays in `spans`).

Rows stream into one Arrow file and one Parquet file per split, in batches of a fixed number
of rows (so the files do not depend on `--chunk-size`); `save_to_disk` then copies the memory-mapped Arrow files, so memory stays bounded.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from spanbank.errors import ExportError
from spanbank.export.batches import FixedBatches
from spanbank.export.docs import layer_names, tagged
from spanbank.export.manifest import file_sha256

SCRATCH = "_hf_scratch"


def _datasets():
    try:
        import datasets
    except ImportError:
        raise ExportError(
            "the hf format needs the datasets library: pip install 'spanbank[hf]'"
        ) from None
    return datasets


def tag_column(label: str) -> str:
    return f"ner_tags_{label}"


META = ("language", "title", "source", "url", "published_at", "annotator")


def attribute_names(schema, labels: list[str]) -> list[str]:
    """Every attribute name the exported labels declare, in schema order (one struct field each)."""
    names: list[str] = []
    for lab in labels:
        spec = schema.labels.get(lab) if schema else None
        for attr in spec.attributes.values() if spec else ():
            if attr.name not in names:
                names.append(attr.name)
    return names


def features(labels: list[str], attributes: list[str] | None = None):
    """The `datasets.Features` of the exported rows."""
    ds = _datasets()
    List = getattr(ds, "List", None) or ds.Sequence
    attrs = {a: ds.Value("string") for a in attributes or ()} or {"_": ds.Value("string")}
    cols = {
        "article_id": ds.Value("string"),
        "text": ds.Value("string"),
        **{m: ds.Value("string") for m in META},
        "metadata": List({"key": ds.Value("string"), "value": ds.Value("string")}),
        "tokens": List(ds.Value("string")),
        "token_starts": List(ds.Value("int32")),
        "token_ends": List(ds.Value("int32")),
    }
    for lab in labels:
        cols[tag_column(lab)] = List(ds.ClassLabel(names=layer_names(lab)))
    cols["spans"] = List(
        {
            "span_id": ds.Value("string"),
            "start": ds.Value("int64"),
            "end": ds.Value("int64"),
            "label": ds.Value("string"),
            "text": ds.Value("string"),
            "attributes": attrs,
            "fragments": List({"start": ds.Value("int64"), "end": ds.Value("int64")}),
        }
    )
    cols["relations"] = List(
        {"head": ds.Value("int32"), "tail": ds.Value("int32"), "label": ds.Value("string")}
    )
    return ds.Features(cols)


def to_rows(
    docs: list[dict],
    labels: list[str],
    notes: dict,
    schema: pa.Schema,
    attributes: list[str] | None = None,
) -> dict[str, list]:
    """Documents -> columns (lists; `spans` an Arrow array) in the order of
    `features(labels, attributes)`, whose Arrow schema is `schema`."""
    names = list(attributes or ()) or ["_"]
    cols: dict[str, list] = {
        k: []
        for k in ("article_id", "text", *META, "metadata", "tokens", "token_starts", "token_ends")
    }
    for lab in labels:
        cols[tag_column(lab)] = []
    cols["spans"], cols["relations"] = [], []
    for d in docs:
        text = d["text"]
        starts, ends, tokens, layers, n = tagged(d, labels)
        for k, v in n.items():
            notes[f"bio_{k}"] = notes.get(f"bio_{k}", 0) + v
        cols["article_id"].append(d["article_id"])
        cols["text"].append(text)
        for m in META:
            value = d["meta"].get(m)
            cols[m].append(None if value is None else str(value))
        extra = d["meta"].get("extra") or {}
        cols["metadata"].append([{"key": k, "value": _text(v)} for k, v in sorted(extra.items())])
        cols["tokens"].append(tokens)
        cols["token_starts"].append(starts)
        cols["token_ends"].append(ends)
        for lab in labels:
            cols[tag_column(lab)].append(layers[lab])
        cols["relations"].append(d["relations"])
    cols["spans"] = _spans(docs, names, schema.field("spans").type)
    return cols


SPAN_FIELDS = ("span_id", "start", "end", "label", "text")


def _spans(docs: list[dict], names: list[str], list_type: pa.ListType) -> pa.Array:
    """The documents' spans as one Arrow list array, built column by column (a dict per span
    and per fragment cost more than the rest of the row)."""
    values = {k: [] for k in SPAN_FIELDS}
    attrs: dict[str, list] = {a: [] for a in names}
    frag_starts, frag_ends, frag_offsets, offsets = [], [], [0], [0]
    for d in docs:
        for sp in d["spans"]:
            for k, column in values.items():
                column.append(sp[k])
            for a, column in attrs.items():
                column.append(_text(sp["attributes"].get(a)))
            for a, b in sp["fragments"]:
                frag_starts.append(a)
                frag_ends.append(b)
            frag_offsets.append(len(frag_starts))
        offsets.append(len(values["span_id"]))
    span = list_type.value_type
    types = {f.name: f.type for f in span}
    fragment = types["fragments"].value_type
    fields = [pa.array(values[k], types[k]) for k in SPAN_FIELDS]
    fields.append(
        pa.StructArray.from_arrays(
            [pa.array(attrs[a], types["attributes"].field(a).type) for a in names],
            fields=list(types["attributes"]),
        )
    )
    starts_ends = [
        pa.array(frag_starts, fragment.field(0).type),
        pa.array(frag_ends, fragment.field(1).type),
    ]
    fields.append(
        pa.ListArray.from_arrays(
            pa.array(frag_offsets, pa.int32()),
            pa.StructArray.from_arrays(starts_ends, fields=list(fragment)),
            type=types["fragments"],
        )
    )
    return pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.StructArray.from_arrays(fields, fields=list(span)),
        type=list_type,
    )


def _text(value):
    return None if value is None else str(value)


@dataclass(frozen=True)
class HfEncoder:
    """A chunk's rows as an Arrow table, and notes (pure: a worker can run it)."""

    labels: tuple[str, ...]
    attributes: tuple[str, ...]
    schema: pa.Schema

    def __call__(self, split: str, docs: list[dict]) -> tuple[pa.Table | None, dict]:
        notes: dict[str, int] = {}
        if not docs:
            return None, notes
        cols = to_rows(docs, list(self.labels), notes, self.schema, list(self.attributes))
        return pa.Table.from_pydict(cols, schema=self.schema), notes


class HfWriter:
    name = "hf"

    def __init__(self, root: Path, splits: list[str], labels: list[str], schema=None):
        self.ds = _datasets()
        self.root = Path(root)
        self.splits = splits
        self.labels = list(labels)
        self.attributes = attribute_names(schema, self.labels)
        self.features = features(self.labels, self.attributes)
        self.schema = self.features.arrow_schema
        self.scratch = self.root / SCRATCH
        self.scratch.mkdir(parents=True, exist_ok=True)
        (self.root / "hf" / "parquet").mkdir(parents=True, exist_ok=True)
        self._arrow = {}
        self._parquet = {}
        self._batches = {}
        for s in splits:
            sink = pa.OSFile(str(self.scratch / f"{s}.arrow"), "wb")
            self._arrow[s] = (sink, pa.ipc.new_stream(sink, self.schema))
            self._parquet[s] = pq.ParquetWriter(
                self.root / "hf" / "parquet" / f"{s}.parquet", self.schema, compression="zstd"
            )
            self._batches[s] = FixedBatches(self._writer(s))
        self.notes: dict[str, int] = {}
        self._rows = dict.fromkeys(splits, 0)
        self.encoder = HfEncoder(tuple(self.labels), tuple(self.attributes or ()), self.schema)

    def _writer(self, split: str):
        def write(table: pa.Table) -> None:
            self._arrow[split][1].write_table(table)
            self._parquet[split].write_table(table)

        return write

    def write(self, split: str, docs: list[dict]) -> None:
        self.put(split, self.encoder(split, docs))

    def put(self, split: str, payload) -> None:
        table, notes = payload
        for k, v in notes.items():
            self.notes[k] = self.notes.get(k, 0) + v
        if table is None:
            return
        self._batches[split].put(table)
        self._rows[split] += table.num_rows

    def _close_files(self) -> None:
        for sink, writer in self._arrow.values():
            writer.close()
            sink.close()
        for writer in self._parquet.values():
            writer.close()
        self._arrow, self._parquet = {}, {}

    def close(self) -> dict:
        for batches in self._batches.values():
            batches.close()
        self._close_files()
        ds = self.ds
        was_enabled = ds.is_progress_bar_enabled()
        ds.disable_progress_bars()
        try:
            parts = {}
            # datasets (5.x) cannot load back a split with no rows: leave empty splits out
            # of the DatasetDict (their Parquet file is still written) and say so
            empty = [s for s in self.splits if not self._rows[s]]
            if empty:
                self.notes["empty_splits_left_out"] = len(empty)
            for s in self.splits:
                if s in empty:
                    continue
                path = self.scratch / f"{s}.arrow"
                part = ds.Dataset.from_file(str(path), in_memory=False)
                # datasets gives an in-memory dataset a random fingerprint; ours is its content hash
                part._fingerprint = file_sha256(path)[:16]
                parts[s] = part
            ds.DatasetDict(parts).save_to_disk(str(self.root / "hf"))
            del parts
        finally:
            if was_enabled:
                ds.enable_progress_bars()
        shutil.rmtree(self.scratch)
        return {f"hf_{k}": v for k, v in sorted(self.notes.items())}

    def abort(self) -> None:
        try:
            self._close_files()
        except Exception:  # the export is failing already; its temp dir is removed
            pass
