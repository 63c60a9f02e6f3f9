"""`spanbank preannotate --out FILE`: the rule tagger over any selection of the corpus, on the
engine (in-process, local Dask workers or a cluster), written as one predictions file.

A row per predicted span: article_id, span_id, label, start, end, text, attributes (JSON),
score, fragments, links (JSON list of {label, to}: the span's outgoing relations). The file
is what `push --preannotate FILE` reads. Batches are tagged on workers and written here, in
table order, so the file is byte-identical wherever the batches ran; it is written to a temp
file and renamed, so it is whole or absent.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spanbank.corpus.articles import article_chunks, selection_frame
from spanbank.corpus.store import (
    PLAIN_FILE,
    remove_dead_temps,
    temp_prefix,
)
from spanbank.errors import SpanbankError
from spanbank.outdir import check_name, corpus_around, stem_beside
from spanbank.parallel import Engine, asked_workers, engine
from spanbank.progress import Event

BATCH = 500  # articles per part sent to a worker
NOTHING_FOUND = "nothing found"
SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("span_id", pa.string()),
        ("label", pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("text", pa.string()),
        ("attributes", pa.string()),
        ("score", pa.float64()),
        ("fragments", pa.list_(pa.struct([("start", pa.int64()), ("end", pa.int64())]))),
        ("links", pa.string()),
    ]
)


def skip_reason(language, model_language: str | None = None) -> str | None:
    """Why an article in `language` gets no predictions from the rules (`model_language` None)
    or from a model trained for `model_language`; None when it is tagged."""
    from spanbank.preannotate import LANGUAGES, language_code

    lang = language_code(language)
    if model_language is None:
        return None if lang in LANGUAGES else f"no rules for language {lang!r}"
    if lang != model_language:
        return f"model is for {model_language!r}, article is {lang!r}"
    return None


def for_workers(model_dir: str | None) -> str | None:
    """`model_dir` as workers elsewhere find it: absolute (a relative one names a folder of
    this process's working directory, which a `dask worker` does not share)."""
    return model_dir if model_dir in (None, "rules") else os.path.abspath(model_dir)


def model_language(model_dir: str | None) -> str | None:
    """The language the model in `model_dir` was trained for (its card's "lang"); None for the rules."""
    if model_dir in (None, "rules"):
        return None
    from spanbank.model import CARD, check
    from spanbank.preannotate import language_code

    card = json.loads((check(model_dir) / CARD).read_text("utf-8"))
    return language_code(card.get("lang"))


def tag_articles(texts, languages, model_dir: str | None = None) -> list[tuple[dict, str | None]]:
    """Each article's {spans, relations} and why it has none (None when it has some): the rule
    tagger in the article's language, or the model in `model_dir` (in one batch) for articles in
    its language."""
    from spanbank.preannotate import preannotate

    model_lang = model_language(model_dir)
    texts = [t if isinstance(t, str) else "" for t in texts]
    languages = list(languages)
    out = [({"spans": [], "relations": []}, skip_reason(lang, model_lang)) for lang in languages]
    ok = [i for i, (_, why) in enumerate(out) if why is None]
    if model_lang is None:
        got = [preannotate(texts[i], languages[i]) for i in ok]
    else:
        from spanbank.model import loaded, predict

        got = predict(loaded(model_dir), [texts[i] for i in ok])
    for i, tagged in zip(ok, got, strict=True):
        out[i] = (tagged, None if tagged["spans"] else NOTHING_FOUND)
    return out


def tag_in_parts(
    texts, languages, model_dir: str | None = None, eng: Engine | None = None
) -> list[tuple[dict, str | None]]:
    """tag_articles over parts of BATCH articles on `eng` (None: in-process unless
    $SPANBANK_WORKERS or $DASK_SCHEDULER_ADDRESS asks), in order: the same list wherever they ran."""
    return list(_parts(tag_articles, texts, languages, model_dir, eng))


def uncertain_first(
    texts, languages, model_dir: str, eng: Engine | None = None, keep: int | None = None
) -> tuple[np.ndarray, dict[int, tuple[dict, str | None]]]:
    """The articles' positions, most uncertain first (stable; one not in the model's language
    scores -1 and goes last), and the tagging (as tag_articles) of the first `keep` of them (all
    when None), so the batch picked from them need not be tagged again. The driver holds the
    scores and at most `keep` taggings."""
    scores: list[float] = []
    best: list[tuple[float, int]] = []  # min-heap of the `keep` highest (score, -position)
    kept: dict[int, tuple[dict, str | None]] = {}
    for pos, (score, tagged) in enumerate(
        _parts(_scored, texts, languages, model_dir, eng, keep != 0)
    ):
        scores.append(score)
        if keep is None:
            kept[pos] = tagged
        elif keep > 0 and (len(best) < keep or (score, -pos) > best[0]):
            if len(best) == keep:
                kept.pop(-heapq.heappop(best)[1])
            heapq.heappush(best, (score, -pos))
            kept[pos] = tagged
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return order, kept


def _scored(
    texts, languages, model_dir: str, with_tagging: bool
) -> list[tuple[float, tuple | None]]:
    from spanbank.model import uncertainty

    tagged = tag_articles(texts, languages, model_dir)
    return [
        (uncertainty(t) if "uncertainty" in t else -1.0, (t, why) if with_tagging else None)
        for t, why in tagged
    ]


def _parts(fn, texts, languages, model_dir, eng: Engine | None, *args) -> Iterator:
    """fn's per-article results over parts of BATCH articles (plain lists, cheap to pickle) on
    `eng` (None: in-process unless $SPANBANK_WORKERS or $DASK_SCHEDULER_ADDRESS asks), in order."""
    texts, languages = list(texts), list(languages)
    parts = ((texts[i : i + BATCH], languages[i : i + BATCH]) for i in range(0, len(texts), BATCH))
    own = engine(asked_workers(None, None), None) if eng is None else contextlib.nullcontext(eng)
    with own as e:
        for out in e.map(_apply, parts, fn, for_workers(model_dir), *args):
            yield from out


def _apply(part: tuple[list, list], fn, model_dir, *args):
    return fn(*part, model_dir, *args)


def tag_batch(batch: pa.Table, model_dir: str | None = None) -> tuple[pa.Table, Counter]:
    """Tag a batch of articles (article_id, text, language): their span rows, and why articles
    got none. Runs on a worker: pure, picklable in and out."""
    rows: dict[str, list] = {f.name: [] for f in SCHEMA}
    why: Counter = Counter()
    n = batch.num_rows
    langs = batch.column("language").to_pylist() if "language" in batch.column_names else [None] * n
    tagged = tag_articles(batch.column("text").to_pylist(), langs, model_dir)
    for aid, (out, reason) in zip(batch.column("article_id").to_pylist(), tagged, strict=True):
        if reason is not None:
            why[reason] += 1
        links: dict[str, list] = {}
        for r in out["relations"]:
            links.setdefault(r["from_span_id"], []).append(
                {"label": r["label"], "to": r["to_span_id"]}
            )
        for s in out["spans"]:
            rows["article_id"].append(aid)
            for k in ("span_id", "label", "start", "end", "text", "score", "fragments"):
                rows[k].append(s[k])
            rows["attributes"].append(json.dumps(s["attributes"], ensure_ascii=False))
            rows["links"].append(json.dumps(links.get(s["span_id"], []), ensure_ascii=False))
    return pa.table(rows, schema=SCHEMA), why


def write_predictions(
    corpus,
    out: str | os.PathLike,
    *,
    where: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    model_dir: str | None = None,
):
    """Tag the selected articles with the rule tagger (or the model in `model_dir`) and write `out` (.parquet or .jsonl).

    A generator of progress events; its return value is the summary.
    """
    out = Path(out)
    if out.suffix not in (".parquet", ".jsonl"):
        raise SpanbankError(f"--out {out}: name a .parquet or .jsonl file")
    check_out(out)
    chosen = None
    if where:
        from spanbank.labelstudio.push import select_articles

        frame, _ = select_articles(selection_frame(corpus, where), where=where)
        chosen = pa.array(frame["article_id"].tolist(), pa.string())
    cols = ["article_id", "text", "language"]
    total = len(corpus.read("articles", columns=["article_id"])) if chosen is None else len(chosen)
    batches = _batches(corpus, cols, chosen)
    why: Counter = Counter()
    summary = {"out": str(out), "articles": 0, "spans": 0, "tagger": _tagger_version(model_dir)}
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = temp_stem(out.name)
    remove_dead_temps(out.parent, stem)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(stem), suffix=".tmp", dir=out.parent)
    os.fchmod(fd, PLAIN_FILE)  # it becomes `out`: readable as a plain open()'s would be
    os.close(fd)
    try:
        with engine(workers, scheduler) as eng, _Sink(Path(tmp), out.suffix) as sink:
            finished: list[int] = []  # parts the workers finished, in Dask's order
            for (table, reasons), n in eng.map(
                functools.partial(_tag_counted, model_dir=for_workers(model_dir)),
                batches,
                done=finished.append if eng.distributed else None,
                total=-(-total // BATCH),
            ):
                while finished:
                    yield Event("tagged parts", finished.pop(0), None)
                sink.write(table)
                why.update(reasons)
                summary["articles"] += n
                summary["spans"] += table.num_rows
                yield Event("tag", summary["articles"], total)
            for n in finished:
                yield Event("tagged parts", n, None)
            summary["engine"] = eng.describe()  # after: where the parts did run
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    summary["without_predictions"] = dict(sorted(why.items()))
    return summary


def check_out(out: Path) -> None:
    """Refuse an --out that writing it could harm: one inside a corpus (its tables' folders
    are the corpus's), a symlink (it would become a plain file), a folder or special file, and
    an existing file that is not a predictions file of ours (an empty one holds nothing)."""
    check_name(out, SpanbankError)
    for folder in (out.parent, *out.parent.parents):  # the nearest one that exists must be a folder
        if folder.exists():
            if not folder.is_dir():
                raise SpanbankError(f"--out {out}: {folder} is a file, not a folder")
            break
    folder = corpus_around(out.parent)
    if folder is not None:
        raise SpanbankError(
            f"--out {out} is inside the spanbank corpus {folder}; write predictions outside it"
        )
    if out.is_symlink():
        raise SpanbankError(
            f"--out {out} is a symlink, which would be replaced by a plain file; name a file"
        )
    if not out.exists():
        return
    if not out.is_file():
        raise SpanbankError(f"--out {out} exists and is not a file; choose another --out")
    problem = _not_predictions(out)
    if problem:
        raise SpanbankError(
            f"--out {out} is not a spanbank predictions file ({problem}) and would be replaced; "
            "choose another --out"
        )


def _not_predictions(path: Path) -> str | None:
    """Why `path` is not a predictions file `write_predictions` wrote, or None."""
    if path.stat().st_size == 0:
        return None
    if path.suffix == ".parquet":
        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowException):
            return "not a Parquet file"
        return None if names == SCHEMA.names else "other columns"
    with open(path, "rb") as fh:
        first = fh.readline(1 << 20)
    try:
        row = json.loads(first)
    except ValueError:
        return "its first line is not JSON"
    if not isinstance(row, dict) or list(row) != SCHEMA.names:
        return "its first line is not a predicted span"
    return None


def _tag_counted(batch: pa.Table, model_dir: str | None = None):
    return tag_batch(batch, model_dir), batch.num_rows


# room for any pid in a temp file's name: pid_max is at most 2**22 (7 digits)
PID_DIGITS = 7


def temp_stem(name: str) -> str:
    """What `.NAME.<pid>.XXXXXXXX.tmp` starts with: a NAME too long for it is shortened (see
    outdir.stem_beside), alike for every pid (a stem cut to fit the writer's own pid missed a
    killed writer's leftover when their pids had different numbers of digits)."""
    return stem_beside(name, len(".") + PID_DIGITS + len(".") + 8 + len(".tmp"))


def _tagger_version(model_dir: str | None = None) -> str:
    if model_dir not in (None, "rules"):
        return f"model:{model_dir}"
    from spanbank.preannotate import TAGGER_VERSION

    return TAGGER_VERSION


def _batches(corpus, cols: list[str], chosen: pa.Array | None):
    """Article batches of BATCH rows in table order, only the chosen ones when given."""
    for slices in article_chunks(corpus, cols, BATCH, chosen):
        yield _own(slices)


def _own(slices: list[pa.Table]) -> pa.Table:
    """The slices as one table with buffers of its own: a slice pickles its whole row group."""
    t = pa.Table.from_batches(slices)
    return t.take(pa.array(range(t.num_rows), pa.int64()))


class _Sink:
    """The predictions file being written: Parquet, or JSONL (one span per line)."""

    def __init__(self, path: Path, suffix: str):
        self.path, self.suffix = path, suffix

    def __enter__(self):
        if self.suffix == ".parquet":
            self._out = pq.ParquetWriter(self.path, SCHEMA, compression="zstd")
        else:
            self._out = open(self.path, "w", encoding="utf-8")
        return self

    def write(self, table: pa.Table) -> None:
        if self.suffix == ".parquet":
            self._out.write_table(table)
            return
        for row in table.to_pylist():
            self._out.write(json.dumps(row, ensure_ascii=False) + "\n")

    def __exit__(self, *exc):
        self._out.close()
        if exc[0] is None:
            with open(self.path, "rb") as fh:
                os.fsync(fh.fileno())
