"""The export manifest (`manifest.json`: fingerprint, splits, counts, checksums) and dataset card."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import os
import re
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

MANIFEST = "manifest.json"
CARD = "README.md"
MANIFEST_VERSION = 1


RUN_BYTES = 32 << 20  # fingerprint rows held before they are sorted into a run on disk
SLICE = 65536  # rows digested at a time


class Fingerprint:
    """sha256 over what went into an export: sorted (annotation_id, version, updated_at) and text hashes.

    Rows are kept as their hashed bytes (``\x1f``-joined UTF-8), and sorting them gives the
    tuples' order while no field holds a character at or below ``\x1f`` (rows that do are kept
    as tuples, and then everything sorts as tuples). An export's driver `extend`s one with each
    chunk's rows, which it holds as Arrow arrays: a Python bytes object per row costs 33 bytes
    more. Given a `spill` folder, every RUN_BYTES of rows are sorted and written there as a
    run, and the digest merges the runs: the rows held do not grow with the export."""

    def __init__(self, spill: Path | None = None):
        self.annotations: list[bytes | tuple] = []
        self.texts: list[bytes | tuple] = []
        self._held: dict[str, list[pa.Array]] = {"annotations": [], "texts": []}
        self._held_bytes = 0
        self._spill = spill
        self._runs: dict[str, list[Path]] = {"annotations": [], "texts": []}

    def add(self, article_id: str, text: str, annotation_id, version, updated_at) -> None:
        self.texts.append(_row(str(article_id), hashlib.sha256(text.encode("utf-8")).hexdigest()))
        self.annotations.append(_row(str(annotation_id), _s(version), _s(updated_at)))

    def extend(self, texts: list, annotations: list) -> None:
        """Take rows another Fingerprint `add`ed (a chunk's, from a worker)."""
        for name, rows in (("texts", texts), ("annotations", annotations)):
            plain = [r for r in rows if isinstance(r, bytes)]
            if len(plain) < len(rows):
                getattr(self, name).extend(r for r in rows if not isinstance(r, bytes))
            held = pa.array(plain, pa.binary())
            self._held[name].append(held)
            self._held_bytes += held.nbytes
        if self._spill is not None and self._held_bytes >= RUN_BYTES:
            self._write_runs()

    def _write_runs(self) -> None:
        self._spill.mkdir(exist_ok=True)
        for name, held in self._held.items():
            rows = pa.chunked_array(held, pa.binary())
            if len(rows):
                path = self._spill / f"{name}-{len(self._runs[name]):06d}.arrow"
                table = pa.table({"row": rows.take(pc.sort_indices(rows))})
                with pa.OSFile(str(path), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
                    w.write_table(table, max_chunksize=SLICE)
                self._runs[name].append(path)
            held.clear()
        self._held_bytes = 0

    def digests(self) -> dict:
        """The digests; the runs on disk are deleted."""
        try:
            ann, txt = self._digest("annotations"), self._digest("texts")
        finally:
            if self._spill is not None:
                shutil.rmtree(self._spill, ignore_errors=True)
        both = hashlib.sha256((ann + txt).encode()).hexdigest()
        return {"sha256": both, "annotations_sha256": ann, "texts_sha256": txt}

    def _digest(self, name: str) -> str:
        """sha256 of the rows in sorted order, each followed by ``\x1e``."""
        h = hashlib.sha256()
        sources = [_run_slices(p) for p in self._runs[name]]
        sources.append(_held_slices(self._held[name]))
        rows = getattr(self, name)
        if rows:  # tuples among them: sort everything as tuples, in Python
            for row in _sorted(rows + [r for part in sources for s in part for r in s]):
                h.update(row + b"\x1e")
            return h.hexdigest()
        if len(sources) == 1:
            slices = sources[0]
        else:  # each run is sorted: merge them
            merged = heapq.merge(*(itertools.chain.from_iterable(s) for s in sources))
            slices = iter(lambda: list(itertools.islice(merged, SLICE)), [])
        for part in slices:
            h.update(b"\x1e".join(part) + b"\x1e")
        return h.hexdigest()


def _held_slices(held: list[pa.Array]):
    """The held rows in bytewise order (as Python sorts bytes), SLICE at a time: no sorted copy
    of them all."""
    rows = pa.chunked_array(held, pa.binary())
    order = pc.sort_indices(rows)
    for lo in range(0, len(order), SLICE):
        yield rows.take(order[lo : lo + SLICE]).to_pylist()


def _run_slices(path: Path):
    """A run's rows, a record batch (SLICE rows) at a time."""
    reader = pa.ipc.open_file(pa.memory_map(str(path)))
    for i in range(reader.num_record_batches):
        yield reader.get_batch(i).column(0).to_pylist()


_CONTROL = re.compile("[\x00-\x1f]")


def _row(*fields: str) -> bytes | tuple:
    return (
        tuple(fields) if any(_CONTROL.search(f) for f in fields) else "\x1f".join(fields).encode()
    )


def _sorted(rows: list) -> list[bytes]:
    """The rows' bytes in the order of their field tuples."""
    if all(isinstance(r, bytes) for r in rows):
        return sorted(rows)
    tuples = [tuple(r.decode().split("\x1f")) if isinstance(r, bytes) else r for r in rows]
    return ["\x1f".join(t).encode() for t in sorted(tuples)]


def _s(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if hasattr(value, "isoformat"):
        try:
            return value.isoformat()
        except ValueError:  # NaT
            return ""
    return str(value)


HASH_THREADS = min(4, os.cpu_count() or 1)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksums(
    root: Path, known: dict[str, str] | None = None, prefix: str = "", skip: Iterable[str] = ()
) -> dict[str, str]:
    """sha256 of every file under `root` (`prefix` + relative POSIX path -> hex), manifest
    and the folders named in `skip` (directly under `root`) excluded. A file in `known`
    (digests its writer took of the bytes it wrote; taken out as used) is not read."""
    known = {} if known is None else known
    files = [(rel, path) for rel, path in _files(str(root), prefix, set(skip)) if rel != MANIFEST]
    read = _sha256_all([path for rel, path in files if rel not in known])
    return {rel: known.pop(rel) if rel in known else read[path] for rel, path in files}


def _sha256_all(paths: list[str]) -> dict[str, str]:
    """path -> sha256, read by a few threads (hashlib and reads let go of the GIL), each taking
    the next path as it finishes one: an export's few big files do not wait on each other."""
    digests: dict[str, str] = {}
    todo = iter(paths)  # a list iterator: taking the next path is atomic under the GIL

    def work() -> None:
        for path in todo:
            digests[path] = file_sha256(path)

    n = min(HASH_THREADS, len(paths))
    if n < 2:
        work()
        return digests
    with ThreadPoolExecutor(n) as pool:
        running = [pool.submit(work) for _ in range(n)]
    for f in running:
        f.result()  # a file that could not be read raises here
    return digests


def _files(folder: str, prefix: str, skip: set[str] = frozenset()):
    """(relative POSIX path, path) of the files under `folder`, sorted by path; symlinked folders
    and those named in `skip` are not entered. Plain strings: pathlib's objects cost more than
    the hashing of small files."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.name in skip:
            continue
        if e.is_dir(follow_symlinks=False):
            yield from _files(e.path, f"{prefix}{e.name}/")
        elif e.is_file():
            yield prefix + e.name, e.path


def verify(root: str | Path) -> list[str]:
    """Problems with an export directory's files against its manifest (empty list: all good)."""
    root = Path(root)
    try:
        manifest = json.loads((root / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{MANIFEST}: cannot read ({exc})"]
    want = manifest.get("files", {})
    got = checksums(root)
    problems = [f"{f}: missing" for f in want if f not in got]
    problems += [f"{f}: checksum differs" for f in want if f in got and got[f] != want[f]]
    problems += [f"{f}: not in the manifest" for f in got if f not in want]
    return problems + _brat_count_problems(manifest, want)


def _brat_count_problems(manifest: dict, files: dict) -> list[str]:
    """A brat split whose manifest lists another number of `.txt` files than its articles (two
    articles written to one file name, say)."""
    if "brat" not in manifest.get("formats", ()):
        return []
    problems = []
    for name, info in (manifest.get("splits") or {}).items():
        prefix = f"brat/{name}/"
        txt = sum(
            1
            for f in files
            if f.startswith(prefix) and f.endswith(".txt") and "/" not in f[len(prefix) :]
        )
        if isinstance(info, dict) and "articles" in info and txt != info["articles"]:
            problems.append(f"{prefix}: {txt} .txt files for {info['articles']} articles")
    return problems


def dumps(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode(
        "utf-8"
    )


LOADERS = {
    "jsonl": "pandas.read_json('jsonl/train.jsonl', lines=True)",
    "spacy": "list(DocBin().from_disk('spacy/train.spacy').get_docs(spacy.blank('en').vocab))",
    "hf": "datasets.load_from_disk('hf')  # or pandas.read_parquet('hf/parquet/train.parquet')",
    "conll": "spanbank.export.conll.read_conll('conll/train.conll', labels)  # token + one BIO column per label",
    "brat": "spanbank ingest --format brat brat/  # or open brat/ in brat",
    "quotes": "pandas.read_parquet('quotes/quotes.parquet')",
}

FORMAT_NOTES = {
    "jsonl": "one article per line: text, spans (code point offsets, end-exclusive; fragments of a discontinuous span), relations (head/tail = index into spans), meta",
    "spacy": "DocBin per split (a split of more than 2 GiB uncompressed: a folder of .spacy files, <split>/0000.spacy, ..., which spacy train reads in name order); all spans in doc.spans['sc'] (span.id_ = span_id; one Span per fragment, grouped in doc.user_data['groups']); lossless spans, relations, meta in doc.user_data",
    "hf": "DatasetDict: language and article metadata, tokens, token_starts/ends, ner_tags_<LABEL> (BIO ClassLabel per label, per fragment), lossless spans (typed attributes, fragments) and relations",
    "conll": "token<TAB>one BIO tag per label, `-DOCSTART-<TAB>article_id` before each article",
    "brat": "<split>/<article>.txt + .ann (T/R/A lines), annotation.conf",
    "quotes": "one row per QUOTE (fragments joined by ' … ') with type, speaker (said_by), cue, context window; quotes.parquet and quotes.jsonl",
}


def _cost_lines(cost: dict | None) -> list[str]:
    """The card's line on the human time its gold cost (none when nothing was timed)."""
    if not cost or not cost["annotations"]:
        return []
    return [
        f"- human time behind this gold: {cost['hours']:g} h over {cost['annotations']} "
        "timed annotations (Label Studio lead time)"
    ]


def _rounded(value):
    """A figure for people: floats to 3 significant digits."""
    return f"{value:.3g}" if isinstance(value, float) else value


def _split_line(manifest: dict) -> str:
    """How the articles were split, for the card."""
    shares = ", ".join(f"{k}={v:.2g}" for k, v in manifest["split_fractions"].items())
    if manifest.get("split_by"):
        return f"- split: the corpus's own, from column `{manifest['split_by']}` ({shares})"
    unit = f"`{manifest['group_by']}` group" if manifest.get("group_by") else "article"
    return f"- split: by {unit}, seed {manifest['seed']} ({shares})"


def dataset_card(manifest: dict) -> str:
    """A README.md for people: what the export is, its counts and splits, how to load each format."""
    labels = manifest["labels"]
    splits = manifest["splits"]
    lines = [
        f"# {manifest['name']}",
        "",
        f"Annotated news articles exported by spanbank {manifest['spanbank_version']} "
        f"(code `{manifest.get('spanbank_code', 'unknown')}`, "
        f"schema `{manifest['schema']['ident']}`): spans {', '.join(labels)} and their relations.",
        "",
        f"- gold selection: `{manifest['gold']}`"
        + (f", project `{manifest['project']}`" if manifest.get("project") else ""),
        f"- articles: {manifest['articles']}, spans: {manifest['spans']}, relations: {manifest['relations']}",
        f"- corpus fingerprint: `{manifest['fingerprint']['sha256']}`",
        "- languages: "
        + (", ".join(f"{k} ({v})" for k, v in manifest.get("languages", {}).items()) or "none"),
        _split_line(manifest),
        *_cost_lines(manifest.get("human_time")),
        "",
        "## Splits",
        "",
        "| split | articles | " + " | ".join(labels) + " | relations |",
        "|---|---:|" + "---:|" * len(labels) + "---:|",
    ]
    for name, info in splits.items():
        counts = info["label_counts"]
        lines.append(
            f"| {name} | {info['articles']} | "
            + " | ".join(str(counts.get(lab, 0)) for lab in labels)
            + f" | {sum(info['relation_counts'].values())} |"
        )
    lines += ["", "## Formats", ""]
    for fmt in manifest["formats"]:
        lines.append(f"- **{fmt}** (`{fmt}/`): {FORMAT_NOTES[fmt]}.  ")
        lines.append(f"  Load: `{LOADERS[fmt]}`")
    notes = {k: v for k, v in manifest.get("notes", {}).items() if v}
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(notes.items())]
    if manifest.get("agreement"):
        lines += ["", "## Agreement", ""]
        lines += [f"- {k}: {_rounded(v)}" for k, v in manifest["agreement"].items()]
    lines += [
        "",
        "Offsets are Unicode code points into the article text, end-exclusive. Annotators appear "
        "by pseudonym only. `manifest.json` lists the sha256 of every file.",
        "",
    ]
    return "\n".join(lines)
