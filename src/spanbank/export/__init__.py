"""Export training datasets: select gold annotations, split by article, stream chunks to format writers.

`export_dataset(corpus, formats, out)` is the one entry point. It reads articles in chunks
(`chunk_size` articles at a time, never the whole corpus as documents), re-checks every
span against its text, hands each chunk to every format writer, and writes everything
into a temporary directory beside `out` that is renamed into place only when complete and
checksummed (`manifest.json`). The same inputs give byte-identical files.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spanbank import gold as gold_mod
from spanbank import outdir, pseudonyms
from spanbank.corpus.annotations import honeypot_tasks
from spanbank.corpus.articles import IdSet, article_batches, article_chunks, article_columns
from spanbank.corpus.delta import read_conform
from spanbank.corpus.maintenance import pin
from spanbank.corpus.metadata import MAX_YEAR, MIN_YEAR
from spanbank.corpus.store import CONFIG_FILE as CORPUS_CONFIG
from spanbank.corpus.tables import TABLES, isin
from spanbank.errors import CorpusError, ExportError
from spanbank.export.brat import BratWriter
from spanbank.export.conll import ConllWriter
from spanbank.export.docs import EMAIL, META_COLUMNS, build_documents
from spanbank.export.goldrows import ChunkFrames, GoldSpool
from spanbank.export.hf import HfWriter
from spanbank.export.jsonl import JsonlWriter
from spanbank.export.manifest import (
    CARD,
    MANIFEST,
    MANIFEST_VERSION,
    Fingerprint,
    checksums,
    dataset_card,
    dumps,
    verify,
)
from spanbank.export.quotes import QuotesWriter
from spanbank.export.spacy import SpacyWriter
from spanbank.export.split import check_names, parse_split, split_codes
from spanbank.parallel import Engine
from spanbank.progress import Event, Progress
from spanbank.throughput import COST_COLUMNS, gold_cost

__all__ = ["FORMATS", "export_dataset", "parse_formats", "verify"]

WRITERS = {
    "jsonl": JsonlWriter,
    "spacy": SpacyWriter,
    "hf": HfWriter,
    "conll": ConllWriter,
    "brat": BratWriter,
    "quotes": QuotesWriter,
}
FORMATS = tuple(WRITERS)
CHUNK_SIZE = 1000
SPLIT_BATCH = 65536  # articles table rows the split pass reads at a time
MAX_SPLITS = 100  # distinct values a --split-by column may hold
# what the export reads of the selected annotation rows (documents' meta, fingerprint, gold rows)
ANN_COLUMNS = (
    "annotation_id",
    "project",
    "article_id",
    "annotator",
    "origin",
    "version",
    "updated_at",
    "selection",
)
# a few distinct values each: held as categories until each chunk is cut (the selection: 110 -> 63
# MB per million articles)
FEW_VALUES = ("project", "annotator", "origin", "selection")
EXPORTS_DIR = "exports"


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """`jsonl,spacy` or a list -> known format names, in order, without repeats."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for f in (str(x).strip().lower() for x in items):
        if not f:
            continue
        if f not in WRITERS:
            raise ExportError(f"unknown export format {f!r}; choose from {', '.join(FORMATS)}")
        if f not in out:
            out.append(f)
    if not out:
        raise ExportError(f"no export format given; choose from {', '.join(FORMATS)}")
    return out


def export_dataset(corpus, formats, out=None, *, wait: bool | float = False, **options) -> dict:
    """Export the corpus's gold annotations as training data; returns a summary dict.

    Holds the corpus lock (`wait` as for other writers) so the export reads one consistent
    corpus and no other export races it; leftovers of a killed export are removed first.
    Options are those of :func:`_export_dataset`.
    """
    with corpus.lock(wait):  # the lock, not the writer: a read-only corpus can be exported
        corpus.record_strays()  # a killed command's writes: named by a commit, so pinned
        view = corpus.frozen()

        def pin_commit(out: Path) -> None:
            """Pin the commit exported, before the export is put in place: no kill, nor a
            vacuum waiting for the lock, comes between an export and its pin (a pin whose
            export then fails keeps a little more history, nothing else)."""
            with contextlib.suppress(OSError):  # a corpus we may not write to keeps no pin
                pin(corpus, view.commit, f"export {out}", locked=True)

        return _export_dataset(view, formats, out, wait=wait, before_swap=pin_commit, **options)


def _pseudonym_key(corpus, ann: pd.DataFrame, warnings: list[str]) -> bytes:
    """The key e-mail annotators (left in annotations from before pull stored pseudonyms) are
    exported under: the corpus's, made now if it has none and can be written, so every export
    agrees; else one for this export only, which `warnings` says."""
    key = pseudonyms.stored_key(corpus.path)
    if key is not None:
        return key
    names = ann["annotator"].dropna().unique() if "annotator" in ann else ()  # a few people
    if not any(EMAIL.fullmatch(str(n)) for n in names):
        return secrets.token_bytes(32)  # no e-mail to pseudonymise: the key is never used
    try:
        return pseudonyms.pseudonym_key(corpus)
    except (CorpusError, OSError):
        warnings.append(
            "the corpus has no pseudonym key and none can be made (read-only, or its key was "
            "lost): e-mail annotators get pseudonyms of this export only"
        )
        return secrets.token_bytes(32)


def _unfinished(corpus) -> list[str]:
    """A warning when the commit exported is that of a command killed before it finished
    (`interrupted`), or when a read-only corpus holds writes no commit names and `.writing` names
    their killed command: the export holds what it wrote so far."""
    if corpus.commit is None:
        killed = corpus.killed_command()
        return (
            [
                f"{killed} stopped before it finished (the corpus, read-only, could not record it), "
                "and this export holds what it had written; re-run it"
            ]
            if killed
            else []
        )
    log = corpus.commits()
    if log.empty:
        return []
    last = log.iloc[-1]
    if last["status"] != "interrupted":  # a failed command said so when it failed
        return []
    return [
        f"commit {int(last['commit'])} ({last['command']}) is {last['status']}: that command "
        "stopped before it finished, and this export holds what it had written; re-run it"
    ]


def _export_dataset(
    corpus,
    formats: str | Iterable[str],
    out: str | os.PathLike | None = None,
    *,
    gold: str = "auto",
    project: str | None = None,
    labels: Iterable[str] | None = None,
    split: str | dict | None = None,
    seed: int = 0,
    group_by: str | None = None,
    split_by: str | None = None,
    name: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    annotations: pd.DataFrame | None = None,
    agreement: bool = True,
    progress: Progress | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    wait: bool | float = False,
    before_swap: Callable[[Path], None] | None = None,
) -> dict:
    """The export itself (see :func:`export_dataset`).

    `gold` is `auto`, a strategy name or an annotator pseudonym (see `spanbank.gold`);
    `annotations` (one row per article, columns as the annotations table) bypasses that
    selection and reads those annotations' spans straight from the corpus. `split` is
    `train=0.8,dev=0.1,test=0.1` (or a dict); `group_by` names an articles column whose
    equal values always share a split; `split_by` names an articles column holding each
    article's own split (a corpus's official train/dev/test), used instead of the hash.
    Raises ExportError, leaving no partial output. `before_swap(out)` runs once every file is
    written, before the folder is renamed to `out`.
    """
    fmts = parse_formats(formats)
    if split_by is not None and (split is not None or group_by is not None):
        raise ExportError("--split-by keeps the corpus's own split: drop --split and --group-by")
    fractions = parse_split(split)
    if chunk_size < 1:
        raise ExportError("chunk size must be at least 1")
    corpus.require()
    if not corpus.has("articles"):
        raise ExportError(f"corpus {corpus.path} has no articles; ingest some first")
    schema = corpus.schema
    layer_labels = _labels(schema, labels)
    name = name or _default_name(corpus)
    if name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ExportError(
            f"--name {name!r} is a dataset's name, not a path (it makes exports/NAME when no "
            "--out is given): choose a name without '/'; --out sets where it goes"
        )
    out = Path(
        os.path.abspath(out if out is not None else Path(EXPORTS_DIR) / name)
    )  # `.` has no name to swap
    outdir.check(out, "export", _not_an_export, ExportError)  # before the work; again at the end

    gold = gold_mod.resolve_gold(corpus, gold)  # pseudonyms only, from here to the files
    ann, gold_desc = _selection(corpus, gold, project, annotations)
    engine = Engine(workers, scheduler)
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            contextlib.closing(engine)
        )  # whatever happens, a cluster it started stops
        if -(-len(ann) // chunk_size) >= 2:  # the stream will use it: start it while we prepare
            engine.start("spanbank.export", *(["spacy"] if "spacy" in fmts else []))
        chosen_by = (
            {str(k): int(v) for k, v in sorted(ann["selection"].value_counts().items()) if v}
            if "selection" in ann
            else None
        )
        dropped = ann.attrs.get(gold_mod.STALE_DROPPED, 0)
        if dropped:
            chosen_by = dict(sorted({**chosen_by, gold_mod.STALE_DROPPED: dropped}.items()))
        art_cols = set(article_columns(corpus))
        for option, col in (("--group-by", group_by), ("--split-by", split_by)):
            if col is not None and col not in art_cols:
                raise ExportError(
                    f"{option} {col!r} is not an articles column ({', '.join(sorted(art_cols))})"
                )
        warnings: list[str] = _unfinished(corpus)
        key = _pseudonym_key(corpus, ann, warnings)
        if chosen_by and chosen_by.get("stale"):
            warnings.append(
                f"{chosen_by['stale']} article(s)' stored gold predates their annotators' latest "
                "work: adjudicated again from it for this export; re-run `spanbank adjudicate` "
                "to store it"
            )
        single = (chosen_by or {}).get("stale_single", 0)
        if single or dropped:
            warnings.append(
                f"{single + dropped} article(s)' stored gold predates the deletion of their "
                f"annotators' work: exported as the one annotation left ({single}) or left out "
                f"({dropped}); re-run `spanbank adjudicate` to settle it"
            )
        ann = ann[[c for c in ANN_COLUMNS if c in ann]]
        # each chunk's frame goes out with strings, as the selection would have held them
        dtypes = {c: _plain_dtype(ann[c]) for c in FEW_VALUES if c in ann}
        ann = ann.astype({c: "category" for c in dtypes})  # given annotations: held alike
        articles = _unique(
            ann, "article_id", "gold selection gave several annotations for article(s)"
        )
        if split_by is not None:
            at, codes, rows, splits = _official_splits(corpus, ann, articles, split_by)
            counts = np.bincount(codes, minlength=len(splits))
            fractions = {s: round(int(counts[i]) / len(codes), 4) for i, s in enumerate(splits)}
        else:
            at, codes, rows = _split_articles(
                corpus, ann, articles, fractions, seed, group_by, warnings
            )
            splits = list(fractions)
        # before the stream, not after: at its end the driver holds the most
        stored = corpus.stored_schema("annotations")
        cost_cols = [c for c in COST_COLUMNS if c in stored.names]
        batches = corpus.iter_batches("annotations", cost_cols)
        human_time = gold_cost(
            (read_conform(pa.table(b), stored, cost_cols).to_pandas() for b in batches),
            articles,
            project,
        )
        del articles
        # the few honeypots looked up among the selected ids, not these hashed (the 1M export's peak)
        chosen_ids = ann["article_id"]
        honeypots = sorted(set(chosen_ids[isin(chosen_ids, honeypot_tasks(corpus)["article_id"])]))
        # in the order chunks are read: the driver then slices it chunk by chunk
        ann = _reordered(ann, at)
        del at, chosen_ids
        # a parked gold row finds its article through its annotation: one article per annotation
        annotations = _unique(ann, "annotation_id", "annotation(s) given twice")
        in_store, todo = gold_mod.split_stored(corpus, ann, annotations)

        tmp = stack.enter_context(
            outdir.replacing(out, "export", _not_an_export, ExportError, wait)
        )
        writers = []
        try:
            for fmt in fmts:
                writers.append(WRITERS[fmt](tmp, splits, layer_labels, schema))
            chosen = ChunkFrames(tmp / ".selection", ann, chunk_size, dtypes)
            total = len(ann)
            del ann  # the stream reads it back chunk by chunk; parking the rows needs only the ids
            span_source = GoldSpool(
                tmp / ".gold-rows", corpus, annotations, in_store, todo, chunk_size
            )
            del annotations, in_store, todo
            stats = _stream(
                corpus,
                chosen,
                total,
                span_source,
                codes,
                rows,
                splits,
                layer_labels,
                schema,
                writers,
                group_by,
                chunk_size,
                art_cols,
                progress,
                engine,
                tmp / ".fingerprint",
                key,
            )
            span_source.close()
            chosen.close()
            notes = dict(stats.pop("notes"))
            written: dict[str, str] = {}  # digests of the files in the writers' folders
            # hf's close copies its files: the others' files are hashed meanwhile
            with ThreadPoolExecutor(2) as pool:
                closed = [pool.submit(_close, w, tmp) for w in writers]
            for f in closed:
                writer_notes, digests = f.result()
                notes.update(writer_notes)
                written.update(digests)
            hashed = {w.name for w in writers}  # their folders: walked and hashed by `_close`
            writers = []
            agree = _agreement(corpus, project) if agreement else None
            manifest = _manifest(
                name,
                schema,
                gold_desc,
                project,
                layer_labels,
                fmts,
                seed,
                fractions,
                group_by,
                chunk_size,
                stats,
                notes,
                agree,
            )
            manifest["gold_selection"] = chosen_by
            manifest["human_time"] = human_time
            manifest["honeypots"] = honeypots
            manifest["split_by"] = split_by
            # `spanbank export --as-of <commit>` reproduces these files byte for byte
            manifest["corpus_commit"] = corpus.commit
            if warnings:
                manifest["warnings"] = warnings
            (tmp / CARD).write_text(dataset_card(manifest), encoding="utf-8")
            manifest["files"] = dict(sorted({**written, **checksums(tmp, skip=hashed)}.items()))
            (tmp / MANIFEST).write_bytes(dumps(manifest))
            if before_swap is not None:
                before_swap(out)
        except BaseException:
            for w in writers:
                with contextlib.suppress(Exception):
                    w.abort()
            engine.close()  # its workers write brat files into tmp: stop a local cluster's first
            raise
        return {
            "out": str(out),
            "formats": fmts,
            "gold": gold_desc,
            "articles": manifest["articles"],
            "spans": manifest["spans"],
            "relations": manifest["relations"],
            "splits": {s: v["articles"] for s, v in manifest["splits"].items()},
            "label_counts": {s: v["label_counts"] for s, v in manifest["splits"].items()},
            "notes": notes,
            **({"warnings": warnings} if warnings else {}),
            "fingerprint": manifest["fingerprint"]["sha256"],
            "files": len(manifest["files"]),
        }


# --------------------------------------------------------------------------- selection


def _labels(schema, labels) -> list[str]:
    if labels is None:
        return list(schema.labels)
    chosen = [lab.strip() for lab in labels if lab and lab.strip()]
    unknown = [lab for lab in chosen if lab not in schema.labels]
    if unknown:
        raise ExportError(
            f"label(s) {', '.join(unknown)} not in schema {schema.ident} (labels: {', '.join(schema.labels)})"
        )
    if not chosen:
        raise ExportError("--labels is empty")
    return [lab for lab in schema.labels if lab in chosen]  # schema order: stable columns


def _default_name(corpus) -> str:
    return Path(corpus.path).resolve().name or "corpus"


def _selection(corpus, gold, project, annotations):
    """(one annotation row per article, description of the choice)."""
    if annotations is not None:
        ann = annotations.reset_index(drop=True)
        stored = corpus.holds("annotations", "annotation_id", ann["annotation_id"])
        missing = ann.loc[~stored, "annotation_id"].astype(str).tolist()
        if missing:
            raise ExportError(f"annotation(s) not in the corpus: {', '.join(missing[:5])}")
        desc = "given"
    else:
        ann = gold_mod.select_annotations(
            corpus, gold=gold, project=project, columns=ANN_COLUMNS, categories=FEW_VALUES
        )
        desc = gold
    if not len(ann):
        where = f" in project {project!r}" if project else ""
        raise ExportError(
            f"no annotations to export{where} (gold={gold}); pull or import some first"
        )
    return ann, desc


def _plain_dtype(column: pd.Series):
    """The dtype of `column`, or of its categories."""
    dtype = column.dtype
    return dtype.categories.dtype if isinstance(dtype, pd.CategoricalDtype) else dtype


def _unique(ann: pd.DataFrame, column: str, message: str) -> IdSet:
    """`ann[column]`'s ids as an :class:`IdSet` (sorted, not hashed: 10M ids hashed were the
    export's peak), raising `message` with the first ones given more than once."""
    ids = IdSet(pa.array(ann[column].astype(str)))
    if len(ids.repeats):
        again = ann[column].iloc[ids.repeats[:1000]].astype(str).unique()[:5]
        raise ExportError(f"{message}: {', '.join(again)}")
    return ids


def _reordered(frame: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
    """`frame`'s rows at positions `order` (a new index), taken a column at a time and dropped
    from `frame` as they go: the selection is not held twice. The columns come out in one piece
    (a selection put together from ranges is not), so slicing chunks off them copies no more."""
    return pd.DataFrame(
        {c: frame.pop(c).take(order).reset_index(drop=True) for c in list(frame.columns)}
    )


def _split_articles(corpus, ann, articles, fractions, seed, group_by, warnings=None):
    """(the selected articles' rows of `ann` (their ids the IdSet `articles`) in the articles
    table's order, the split of each as a position in `fractions`, their row numbers in the
    table), checking each has a text, a batch of the table at a time; a `group_by` column empty
    for some of them adds a warning to `warnings`."""
    found = _Found(ann, articles)
    codes: list[np.ndarray] = []
    ungrouped, groups_seen = 0, set()
    for batch in found.batches(corpus, ["article_id"] + ([group_by] if group_by else [])):
        keys = batch.column("article_id").to_pylist()
        if group_by:
            # articles without a group value are their own group
            groups = batch.column(group_by).to_pylist()
            ungrouped += sum(g is None for g in groups)
            keys = [
                f"g\x00{g}" if g is not None else f"a\x00{a}"
                for g, a in zip(groups, keys, strict=True)
            ]
            groups_seen.update(k for k in keys if k[0] == "g")
        codes.append(split_codes(keys, fractions, seed).astype(np.int16))
    at, rows = found.result()
    codes = _concat(codes)
    if ungrouped and warnings is not None:
        warnings.append(
            f"--group-by {group_by}: {ungrouped} of {len(at)} article(s) have no value; "
            "each was split on its own"
        )
    # a few big groups can leave a split empty (7 groups: a 10% split about half the time)
    counts = np.bincount(codes, minlength=len(fractions))
    empty = [s for i, (s, f) in enumerate(fractions.items()) if f > 0 and not counts[i]]
    if group_by and empty and warnings is not None:
        warnings.append(
            f"--group-by {group_by}: split(s) {', '.join(empty)} got none of the "
            f"{len(groups_seen) + ungrouped} group(s); try another --seed or --split"
        )
    return at, codes, rows


def _official_splits(corpus, ann, articles, column: str):
    """(the selected articles' rows of `ann` (ids: `articles`) in the articles table's order, the
    split each one's `column` names (a corpus's own train/dev/test) as a position in the split
    names, their row numbers in the table, the split names)."""
    found = _Found(ann, articles)
    values, distinct = [], set()
    for b in found.batches(corpus, ["article_id", column]):
        values.append(b.column(column))
        distinct.update(pc.unique(values[-1]).to_pylist())
        if len(distinct) > MAX_SPLITS:  # an id or a text column: not read on to its end
            raise ExportError(
                f"--split-by {column}: more than {MAX_SPLITS} distinct values; it names each "
                "article's split (train, dev, test), a few values in all"
            )
    at, rows = found.result()
    coded = pa.chunked_array(values).combine_chunks().dictionary_encode()
    raw = coded.dictionary.to_pylist()  # the distinct values: few
    names = [None if v is None or not str(v).strip() else str(v).strip() for v in raw] + [None]
    idx = pc.fill_null(coded.indices, len(raw)).to_numpy(zero_copy_only=False)
    empty = np.flatnonzero(np.array([n is None for n in names])[idx])
    if len(empty):
        first = ann["article_id"].iloc[at[empty[0]]]
        raise ExportError(
            f"--split-by {column}: {len(empty)} article(s) have no value (e.g. {first}); "
            "fill it, or split by hash with --split"
        )
    splits = _split_names({names[i] for i in np.unique(idx)})
    for name in splits:
        parse_split({name: 1})  # the same rule for split names as --split
    check_names([n for n in splits if n is not None])
    lut = np.array([splits.index(n) if n is not None else -1 for n in names], dtype=np.int16)
    return at, lut[idx], rows, splits


class _Found:
    """The articles table's batches, keeping the rows of the articles `ann` selects (its article
    ids, unique, are the IdSet `wanted`); then where each found row is in `ann` and in the
    table, in table order."""

    def __init__(self, ann, wanted: IdSet):
        self.ann = ann
        self.wanted = wanted
        self.at: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.seen = 0

    def batches(self, corpus, cols: list[str]):
        for batch in article_batches(corpus, cols, SPLIT_BATCH):
            at = self.wanted.positions(batch.column("article_id"))
            picked = np.flatnonzero(at >= 0)
            self.rows.append(picked + self.seen)
            self.seen += batch.num_rows
            if len(picked):
                self.at.append(at[picked])
                yield batch.take(pa.array(picked))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows of `ann`, rows of the table), checking every selected article was found once."""
        at = _concat(self.at)
        seen = np.zeros(len(self.ann), dtype=bool)
        seen[at] = True
        if not seen.all():
            missing = self.ann["article_id"].astype(str).to_numpy()[~seen]
            raise ExportError(
                f"{len(missing)} annotated article(s) are not in the articles table: {', '.join(sorted(missing)[:5])}"
            )
        if len(at) != len(self.ann):
            raise ExportError(
                "the articles table holds an article_id twice; the corpus is inconsistent"
            )
        return at, _concat(self.rows)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _split_names(values) -> list[str]:
    """Split names in the usual order (train, dev/validation, test), then the others sorted."""
    usual = ["train", "dev", "validation", "val", "test"]
    present = set(values)
    return [n for n in usual if n in present] + sorted(present - set(usual))


# --------------------------------------------------------------------------- streaming


def _stream(
    corpus,
    chosen,
    total,
    span_source,
    codes,
    rows,
    splits,
    labels,
    schema,
    writers,
    group_by,
    chunk_size,
    art_cols,
    progress,
    engine,
    spill,
    key: bytes,
) -> dict:
    """Read the selected articles chunk by chunk, build and encode each chunk's documents on
    `engine` (in order), and hand the encoded parts to the writers here. `chosen(start, n)`
    gives the selected annotation rows of the `total` articles, and `codes` their split codes,
    in the order the chunks come; `rows` are the articles' row numbers; the fingerprint's
    sorted runs go to the folder `spill`."""
    cols = ["article_id", "text", *[c for c in META_COLUMNS if c in art_cols]]
    cols += sorted(c for c in art_cols if c not in TABLES["articles"].names)  # e.g. --metadata's
    if group_by and group_by not in cols:
        cols.append(group_by)
    stats = {
        "articles": {s: 0 for s in splits},
        "labels": {s: Counter() for s in splits},
        "relations": {s: Counter() for s in splits},
        "notes": Counter(),
        "languages": Counter(),
        "fingerprint": Fingerprint(spill),
        "as_of": None,
    }

    def chunks():
        start = 0
        for pending in article_chunks(corpus, cols, chunk_size, rows=rows):
            chunk = _chunk(pending, chosen, codes, splits, start, span_source, group_by)
            start += chunk["rows"].num_rows
            yield chunk

    context = (labels, list(schema.labels), [w.encoder for w in writers], key)
    done = 0
    encoded = None
    n_chunks = -(-total // chunk_size)
    if progress and engine.distributed:  # a second bar: chunks as the workers finish them

        def encoded(n: int) -> None:
            progress(Event("encoding", n, n_chunks))

    for part in engine.map(_encode_chunk, chunks(), context, done=encoded, total=n_chunks):
        _add_stats(stats, part["stats"])
        for split, payloads in part["splits"]:
            for w, payload in zip(writers, payloads, strict=True):
                w.put(split, payload)
        done += part["stats"]["n"]
        if progress:
            progress(Event("exporting", done, total))
    return stats


def _chunk(batches, chosen, codes, splits, start, span_source, group_by) -> dict:
    """What one chunk's documents are built from: Arrow tables and a frame (cheap to send to a
    worker, which turns them into rows). Its articles are the selection's rows from `start` on."""
    rows = pa.Table.from_batches(batches)
    _check_dates(rows)
    ids = rows.column("article_id").to_pylist()
    chunk_ann = chosen(start, len(ids))
    if chunk_ann["article_id"].tolist() != ids:  # we hold the lock: a bug, not a user's error
        raise AssertionError("the articles came in another order than the selection's")
    spans, rels = span_source(chunk_ann, start)
    names = [splits[c] for c in codes[start : start + len(ids)]]
    return {
        "rows": rows,
        "ann": chunk_ann,
        "spans": spans,
        "relations": rels,
        "split_of": dict(zip(ids, names, strict=True)),
        "group_by": group_by,
    }


def _check_dates(rows: pa.Table) -> None:
    """Refuse a date Python's datetime cannot hold (years 1..9999): ingest stored some before it
    refused them, and turning the rows into Python values died on them with a traceback."""
    for name, col in zip(rows.column_names, rows.columns, strict=True):
        if not pa.types.is_timestamp(col.type):
            continue
        year = pc.year(col)
        bad = pc.or_(pc.less(year, MIN_YEAR), pc.greater(year, MAX_YEAR))
        if not pc.any(bad).as_py():
            continue
        i = pc.index(bad, True).as_py()
        raise ExportError(
            f"article {rows.column('article_id')[i].as_py()!r}: its {name} is in year "
            f"{year[i].as_py()}, outside {MIN_YEAR}..{MAX_YEAR}, and cannot be exported (ingest "
            "now refuses such dates; `ingest --format brat DIR --metadata FILE` corrects a brat "
            "article's)"
        )


def _encode_chunk(chunk: dict, context) -> dict:
    """Build a chunk's documents and encode them for every writer, split by split; with the
    chunk's statistics. Pure: it runs on whichever worker the engine picks."""
    labels, known_labels, encoders, key = context
    rows = chunk["rows"].to_pylist()
    if chunk["group_by"]:
        for r in rows:
            r["group"] = r.get(chunk["group_by"])
    ann = {r["article_id"]: r for r in chunk["ann"].to_dict("records")}
    docs, notes = build_documents(
        rows,
        ann,
        chunk["spans"].to_pylist(),
        chunk["relations"].to_pylist(),
        labels=labels,
        known_labels=known_labels,
        key=key,
    )
    stats = {
        "n": len(rows),
        "articles": Counter(),
        "labels": {},
        "relations": {},
        "notes": Counter(notes),
        "languages": Counter(),
        "texts": [],
        "annotations": [],
        "as_of": None,
    }
    fp = Fingerprint()
    by_split: dict[str, list[dict]] = {}
    for d in docs:
        s = chunk["split_of"][d["article_id"]]
        by_split.setdefault(s, []).append(d)
        stats["articles"][s] += 1
        stats["languages"][d["meta"].get("language") or "unknown"] += 1
        stats["labels"].setdefault(s, Counter()).update(sp["label"] for sp in d["spans"])
        stats["relations"].setdefault(s, Counter()).update(r["label"] for r in d["relations"])
        a = ann[d["article_id"]]
        fp.add(
            d["article_id"],
            d["text"],
            a.get("annotation_id"),
            a.get("version"),
            a.get("updated_at"),
        )
        ts = a.get("updated_at")
        if ts is not None and not pd.isna(ts) and (stats["as_of"] is None or ts > stats["as_of"]):
            stats["as_of"] = ts
    stats["texts"], stats["annotations"] = fp.texts, fp.annotations
    return {
        "stats": stats,
        "splits": [
            (split, [enc(split, docs_s) for enc in encoders]) for split, docs_s in by_split.items()
        ],
    }


def _close(writer, tmp: Path) -> tuple[dict, dict[str, str]]:
    """Close a writer; its notes, and the sha256 of the files in its folder (those it took of
    what it wrote, the others read back)."""
    notes = writer.close()
    folder = tmp / writer.name
    if not folder.is_dir():
        return notes, {}
    return notes, checksums(folder, dict(getattr(writer, "digests", {})), f"{writer.name}/")


def _add_stats(stats: dict, part: dict) -> None:
    for s, n in part["articles"].items():
        stats["articles"][s] += n
    for key in ("labels", "relations"):
        for s, counts in part[key].items():
            stats[key][s].update(counts)
    stats["notes"].update(part["notes"])
    stats["languages"].update(part["languages"])
    stats["fingerprint"].extend(part["texts"], part["annotations"])
    ts = part["as_of"]
    if ts is not None and (stats["as_of"] is None or ts > stats["as_of"]):
        stats["as_of"] = ts


# --------------------------------------------------------------------------- manifest and files


def _agreement(corpus, project) -> dict | None:
    """Headline agreement figures when the corpus has overlapping annotations; None otherwise."""
    try:
        from spanbank.agreement.report import agreement_report

        # cheap check first: the report reads whole tables, pointless without overlap
        live = corpus.latest_annotations(project=project)
        if not (live.groupby("article_id")["annotator"].nunique() >= 2).any():
            return None
        report = agreement_report(corpus, project=project, bootstrap=0)
        summary = {
            k: v.get("value") if isinstance(v, dict) else v
            for k, v in report.get("summary", {}).items()
        }
        summary = {k: (None if isinstance(v, float) and v != v else v) for k, v in summary.items()}
        articles = report.get("coverage", {}).get("articles_with_2plus", 0)
        if not articles:
            return None
        return {"articles_with_2plus": articles, **summary}
    except Exception:  # agreement is a courtesy in the manifest; never a reason to fail an export
        return None


def _versions(fmts) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in [
        "pyarrow",
        *(["spacy"] if "spacy" in fmts else []),
        *(["datasets"] if "hf" in fmts else []),
    ]:
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def _manifest(
    name,
    schema,
    gold,
    project,
    labels,
    fmts,
    seed,
    fractions,
    group_by,
    chunk_size,
    stats,
    notes,
    agree,
) -> dict:
    from spanbank import __version__
    from spanbank.fingerprint import CODE, fingerprint

    splits = {
        s: {
            "articles": stats["articles"][s],
            "label_counts": {lab: stats["labels"][s].get(lab, 0) for lab in labels},
            "relation_counts": dict(sorted(stats["relations"][s].items())),
        }
        for s in fractions
    }
    as_of = stats["as_of"]
    return {
        "manifest_version": MANIFEST_VERSION,
        "name": name,
        "spanbank_version": __version__,
        "spanbank_code": fingerprint()[CODE],  # the version alone does not tell two trees apart
        "tools": _versions(fmts),
        "schema": {"name": schema.name, "version": schema.version, "ident": schema.ident},
        "gold": gold,
        "project": project,
        "labels": labels,
        "formats": fmts,
        "seed": seed,
        "split_fractions": fractions,
        "group_by": group_by,
        "chunk_size": chunk_size,
        "articles": sum(v["articles"] for v in splits.values()),
        "spans": sum(sum(v["label_counts"].values()) for v in splits.values()),
        "relations": sum(sum(v["relation_counts"].values()) for v in splits.values()),
        "splits": splits,
        "languages": dict(sorted(stats["languages"].items())),
        "fingerprint": stats["fingerprint"].digests(),
        # deterministic stand-in for a creation time: the newest annotation that went in
        "corpus_as_of": as_of.isoformat() if as_of is not None else None,
        "notes": dict(sorted((k, int(v)) for k, v in notes.items())),
        "agreement": agree,
    }


def _not_an_export(out: Path) -> str | None:
    """Why `out` is not provably a previous export (its manifest lists every file in it), or None.

    The manifest lists files, not folders: an empty folder (brat's for an empty split, as
    jsonl writes an empty file for one) holds nothing that replacing it could lose."""
    try:
        manifest = json.loads((out / MANIFEST).read_text("utf-8"))
    except FileNotFoundError:
        return f"no {MANIFEST}"
    except (OSError, ValueError):
        return f"{MANIFEST} is not readable JSON"
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if (
        not isinstance(files, dict)
        or "manifest_version" not in manifest
        or "spanbank_version" not in manifest
    ):
        return f"{MANIFEST} was not written by spanbank"
    if (out / CORPUS_CONFIG).exists():
        return "it holds a corpus"
    listed = set(files) | {MANIFEST}
    folders = {parent.as_posix() for f in listed for parent in PurePosixPath(f).parents}
    for root, dirs, names in os.walk(out):
        rel = Path(root).relative_to(out).as_posix()
        for d in dirs:
            path = d if rel == "." else f"{rel}/{d}"
            if (Path(root, d) / CORPUS_CONFIG).exists():
                return f"{path}/ holds a corpus"
            if Path(root, d).is_symlink() or (path not in folders and not _empty(Path(root, d))):
                return f"{path}/ is not in its manifest"
        for n in names:
            path = n if rel == "." else f"{rel}/{n}"
            if path not in listed or Path(root, n).is_symlink():
                return f"{path} is not in its manifest"
    return None


def _empty(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return next(entries, None) is None
