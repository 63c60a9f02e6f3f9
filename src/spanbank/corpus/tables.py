"""Every corpus table's typed schema, and the cast of rows to it (no file is opened here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spanbank.errors import CorpusError

TS = pa.timestamp("us", tz="UTC")
# a discontinuous span's ordered parts; null for a contiguous one (start/end are the outer bounds)
FRAGMENTS = pa.list_(pa.struct([("start", pa.int64()), ("end", pa.int64())]))

TABLES: dict[str, pa.Schema] = {
    "articles": pa.schema(
        [
            ("article_id", pa.string()),
            ("title", pa.string()),
            ("text", pa.large_string()),
            ("source", pa.string()),
            ("url", pa.string()),
            ("published_at", TS),
            ("language", pa.string()),
            ("origin", pa.string()),
            ("text_sha256", pa.string()),
            ("ingested_at", TS),
        ]
    ),
    "tasks": pa.schema(
        [
            ("project", pa.string()),
            ("ls_url", pa.string()),
            ("ls_project_id", pa.int64()),
            ("article_id", pa.string()),
            ("ls_task_id", pa.int64()),
            ("batch_id", pa.string()),
            ("pushed_at", TS),
            ("schema_version", pa.string()),
        ]
    ),
    "annotations": pa.schema(
        [
            ("annotation_id", pa.string()),
            ("project", pa.string()),
            ("article_id", pa.string()),
            ("ls_task_id", pa.int64()),
            ("ls_annotation_id", pa.int64()),
            ("annotator", pa.string()),
            ("origin", pa.string()),
            ("created_at", TS),
            ("updated_at", TS),
            ("lead_time_s", pa.float64()),
            ("cancelled", pa.bool_()),
            ("version", pa.int64()),
            ("superseded", pa.bool_()),
            ("deleted_at", TS),
            ("pulled_at", TS),
        ]
    ),
    "spans": pa.schema(
        [
            ("annotation_id", pa.string()),
            ("span_id", pa.string()),
            ("article_id", pa.string()),
            ("label", pa.string()),
            ("start", pa.int64()),
            ("end", pa.int64()),
            ("text", pa.string()),
            ("attributes", pa.string()),
            ("offset_repair", pa.string()),
            ("fragments", FRAGMENTS),
        ]
    ),
    "relations": pa.schema(
        [
            ("annotation_id", pa.string()),
            ("from_span_id", pa.string()),
            ("to_span_id", pa.string()),
            ("label", pa.string()),
        ]
    ),
    "rejects": pa.schema(
        [
            ("annotation_id", pa.string()),
            ("span_id", pa.string()),
            ("reason", pa.string()),
            ("raw", pa.string()),
            ("pulled_at", TS),
        ]
    ),
    "annotators": pa.schema(
        [
            ("annotator", pa.string()),
            ("ls_url", pa.string()),
            ("ls_user_id", pa.int64()),
            ("email", pa.string()),
        ]
    ),
    # one row per writing command: every table's version after it (spanbank.corpus.commits)
    "commits": pa.schema(
        [
            ("commit", pa.int64()),
            ("committed_at", TS),
            ("command", pa.string()),
            ("status", pa.string()),
            ("versions", pa.string()),
        ]
    ),
}

# tables the code adds beyond the documented ones; they too exist, empty and typed, from `init` on
EXTRA_TABLES: dict[str, pa.Schema] = {
    "projects": pa.schema(
        [
            ("project", pa.string()),
            ("ls_url", pa.string()),
            ("ls_project_id", pa.int64()),
            ("schema_version", pa.string()),
            ("created_at", TS),
            ("pull_cursor", TS),
            ("last_pull_at", TS),
        ]
    ),
    # push --overlap-share / --honeypots: per task, annotators planned and whether it is a gold check
    "task_plans": pa.schema(
        [
            ("project", pa.string()),
            ("ls_url", pa.string()),
            ("article_id", pa.string()),
            ("ls_task_id", pa.int64()),
            ("batch_id", pa.string()),
            ("overlap", pa.int64()),
            ("honeypot", pa.bool_()),
            ("honeypot_gold", pa.string()),
            ("planned_at", TS),
        ]
    ),
    "conflicts": pa.schema(
        [
            ("article_id", pa.string()),
            ("project", pa.string()),
            ("strategy", pa.string()),
            ("group_id", pa.string()),
            ("kind", pa.string()),
            ("detail", pa.string()),
        ]
    ),
}
# the one table created on first use (by spanbank.labelstudio.identity), not at `init`
ON_DEMAND_TABLES: dict[str, pa.Schema] = {
    "servers": pa.schema(
        [
            ("server_id", pa.string()),
            ("ls_url", pa.string()),
            ("tag", pa.string()),
            ("basis", pa.string()),
            ("org_id", pa.int64()),
            ("org_created_at", pa.string()),
            ("first_seen_at", TS),
            ("moved_from", pa.string()),
            ("moved_at", TS),
        ]
    ),
}
# push --batch-size/--sample: the articles each batch picked, recorded before its import, so
# that a push stopped half-way is finished by the next rather than picked anew
BATCHES_TABLE = "push_batches"
ON_DEMAND_TABLES[BATCHES_TABLE] = pa.schema(
    [
        ("project", pa.string()),
        ("ls_url", pa.string()),
        ("batch_id", pa.string()),
        ("article_id", pa.string()),
        ("picked_at", TS),
    ]
)
# push --honeypots: each honeypot's gold spans as they were when it was pushed, so that a later
# `adjudicate` re-making that gold does not move the answer it is checked against
HONEYPOT_SPANS = "honeypot_spans"
ON_DEMAND_TABLES[HONEYPOT_SPANS] = pa.schema([("project", pa.string()), *TABLES["spans"]])
# commits an export was made of: `compact --vacuum` keeps what reading them needs
ON_DEMAND_TABLES["pins"] = pa.schema(
    [("commit", pa.int64()), ("pinned_at", TS), ("reason", pa.string())]
)
# tables about the corpus's history, not its data: no version of theirs is part of a commit
LOG_TABLES = frozenset({"commits", "pins"})
PROJECTS_TABLE = "projects"  # per project: LS id, schema, pull cursor
CONFLICTS_TABLE = "conflicts"  # per disagreement adjudication could not settle
SERVERS_TABLE = "servers"
SERVER_COLUMNS = ON_DEMAND_TABLES[SERVERS_TABLE].names
PROJECT_COLUMNS = EXTRA_TABLES[PROJECTS_TABLE].names
# columns added beyond a table's declared schema, by the code that writes them
ADDED_COLUMNS: dict[str, pa.Schema] = {
    # pull: the server an annotation came from, a digest of its result, why it is not live;
    # adjudicate: a digest of the human annotations automatic gold was made from, its --min-votes
    "annotations": pa.schema(
        [
            ("ls_url", pa.string()),
            ("result_sha", pa.string()),
            ("invalid_reason", pa.string()),
            ("inputs_digest", pa.string()),
            ("min_votes", pa.int64()),
        ]
    ),
    # review.push_review: a review project's kind and the project it reviews
    "projects": pa.schema([("kind", pa.string()), ("review_of", pa.string())]),
}
# declared columns older files and writers may lack: read and written as null when absent
OPTIONAL_COLUMNS: dict[str, frozenset[str]] = {"spans": frozenset({"fragments"})}
# tables holding personal data (annotators' e-mails): owner-only, like the pseudonym key
PRIVATE_TABLES = frozenset({"annotators"})
PRIVATE_MODE = 0o600


def empty_table(name: str) -> pa.Table:
    return TABLES[name].empty_table()


def to_arrow(name: str, data) -> pa.Table:
    """Cast rows (DataFrame, list of dicts or Arrow table) to the table's typed schema.

    Missing declared columns are an error; extra columns are kept as they are.
    """
    if isinstance(data, list):
        data = pd.DataFrame(data) if data else pd.DataFrame(columns=TABLES[name].names)
    if isinstance(data, pd.DataFrame):
        data = data.reset_index(drop=True)
        absent = [c for c in OPTIONAL_COLUMNS.get(name, ()) if c not in data.columns]
        if absent:
            data = data.assign(**dict.fromkeys(absent))
        missing = [f.name for f in TABLES[name] if f.name not in data.columns]
        if missing:
            raise CorpusError(f"{name}: rows lack column(s) {', '.join(missing)}")
        arrays, fields = [], []
        for f in TABLES[name]:
            col = data[f.name]
            try:
                if pa.types.is_timestamp(f.type):
                    col = pd.to_datetime(col, utc=True)
                elif (
                    pa.types.is_integer(f.type)
                    or pa.types.is_floating(f.type)
                    or pa.types.is_boolean(f.type)
                    or pa.types.is_list(f.type)
                ):
                    col = col.astype(object).where(col.notna(), None)
                arrays.append(column_array(col, f.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
                raise CorpusError(
                    f"{name}: column {f.name} cannot be stored as {f.type}: {exc}"
                ) from None
            fields.append(f)
        extra = [c for c in data.columns if c not in TABLES[name].names]
        for c in extra:
            arrays.append(column_array(data[c]))
            fields.append(pa.field(c, arrays[-1].type))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    table = with_optional_columns(name, data)
    missing = [f.name for f in TABLES[name] if f.name not in table.column_names]
    if missing:
        raise CorpusError(f"{name}: rows lack column(s) {', '.join(missing)}")
    cols = [f.name for f in TABLES[name]] + [
        c for c in table.column_names if c not in TABLES[name].names
    ]
    table = table.select(cols)
    target = pa.schema(
        list(TABLES[name]) + [table.schema.field(c) for c in cols[len(TABLES[name]) :]]
    )
    try:
        return table.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise CorpusError(f"{name}: rows do not fit the table's types: {exc}") from None


def with_optional_columns(name: str, table: pa.Table, columns: list[str] | None = None) -> pa.Table:
    """`table` with the optional columns it lacks (of `columns`, when given) added as nulls."""
    for c in OPTIONAL_COLUMNS.get(name, ()):
        if c not in table.column_names and (columns is None or c in columns):
            table = table.append_column(
                TABLES[name].field(c), pa.nulls(table.num_rows, TABLES[name].field(c).type)
            )
    return table.select(columns) if columns else table


def column_array(col: pd.Series, type_: pa.DataType | None = None) -> pa.Array:
    """pa.array of a column; tz-aware datetimes go through UTC epoch values (pandas 3 warns otherwise)."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        type_ = type_ or pa.timestamp("us", tz="UTC")
        col = col.dt.tz_convert(None).to_numpy()
    return pa.array(col, type=type_, from_pandas=True)


def isin(values, candidates) -> np.ndarray:
    """`values.isin(candidates)` for string ids, as a bool array computed by Arrow. pandas' own
    `isin` on its Arrow-backed strings makes Python objects for every candidate: at 250,000 ids
    that was 1.4 s of an export's gold selection."""
    if isinstance(candidates, set | frozenset):
        candidates = list(candidates)
    vals = pa.array(values, type=pa.string(), from_pandas=True)
    cand = pa.array(candidates, type=pa.string(), from_pandas=True)
    return pc.is_in(vals, value_set=cand).to_numpy(zero_copy_only=False)
