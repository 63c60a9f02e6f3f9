"""`spanbank sql`: DuckDB over the corpus tables, each a view of its current files (or those of
an `--as-of` commit), so nobody needs to know the layout."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from spanbank.corpus import delta
from spanbank.corpus.store import Corpus
from spanbank.corpus.tables import EXTRA_TABLES, LOG_TABLES, ON_DEMAND_TABLES, TABLES
from spanbank.errors import SpanbankError

# personal columns a query sees only with `private`
PRIVATE_COLUMNS = {"annotators": ("email",)}
# the query sees the views and nothing else: no file read or written (`read_parquet` of a table's
# files would show the e-mails the views hide), no extension installed from the network
READ_ONLY = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,  # after these: the statement cannot SET them back
}


def query(corpus: Corpus, sql: str, private: bool = False) -> pa.Table:
    """Run one SQL statement over the corpus tables, and nothing else (`READ_ONLY`); returns
    its result as an Arrow table."""
    try:
        import duckdb
    except ImportError:
        raise SpanbankError("`spanbank sql` needs DuckDB: pip install duckdb") from None
    con = duckdb.connect(":memory:", config=READ_ONLY)
    declared = {**TABLES, **EXTRA_TABLES, **ON_DEMAND_TABLES}
    for name, empty in declared.items():
        hidden = () if private else PRIVATE_COLUMNS.get(name, ())
        # a log table (`commits`, `pins`) is no part of a commit: read whole, then cut to the view
        log = name in LOG_TABLES
        source = Corpus(corpus.path) if log else corpus
        if not source.has(name):  # not made yet (`pins` before the first export): empty
            schema = pa.schema([f for f in empty if f.name not in hidden])
            con.register(name, schema.empty_table())
            continue
        schema = source.stored_schema(name)
        schema = pa.schema([f for f in schema if f.name not in hidden])
        con.register(name, _data(source, name, schema, corpus.commit if log else None))
    try:
        rel = con.sql(sql)
        return rel.to_arrow_table() if rel is not None else pa.table({})
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise SpanbankError(f"sql: {first}") from None
    finally:
        con.close()


def _data(corpus: Corpus, name: str, schema: pa.Schema, upto: int | None):
    """The table's rows as `schema` (a lazy dataset); with `upto`, a log table's rows of commits
    up to that one only. A data file a vacuum removed is a one-line CorpusError."""
    files = [str(f) for f in corpus.table_files(name)]
    with delta.readable(corpus.table_path(name)):
        data = ds.dataset(files, format="parquet", schema=schema)
        return data if upto is None else data.to_table(filter=pc.field("commit") <= upto)


def rows(table: pa.Table) -> list[dict]:
    """A result's rows as Python values; a date or time Python cannot hold (before year 1 or
    after 9999, which DuckDB and Arrow allow) is its ISO text instead of an OverflowError."""
    columns = [_values(col) for col in table.columns]
    return [dict(zip(table.column_names, r, strict=True)) for r in zip(*columns, strict=True)]


def _values(col) -> list:
    try:
        return col.to_pylist()
    except (OverflowError, ValueError):
        return [_cell(v) for v in col]


def _cell(scalar):
    try:
        return scalar.as_py()
    except (OverflowError, ValueError):
        t = scalar.type
        if pa.types.is_struct(t):
            return {f.name: _cell(scalar[f.name]) for f in t}
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            return [_cell(v) for v in scalar.values]
        try:
            return scalar.cast(pa.string()).as_py()
        except pa.ArrowException:
            return f"({t} value outside Python's range)"
