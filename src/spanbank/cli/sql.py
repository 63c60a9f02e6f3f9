"""`spanbank sql`: DuckDB over the corpus tables."""

import csv
import math
import sys

import click

from spanbank.cli._common import as_of_option, echo_json, errors_as_click, json_option


@click.command()
@click.argument("statement")
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print the result as CSV.")
@click.option("--private", is_flag=True, help="Let the query see annotators' e-mails.")
@as_of_option
@click.pass_obj
def sql(obj, statement, as_json, as_csv, private, as_of):
    """Run a SQL query (DuckDB) over the corpus tables, each a view named like the table.

    Annotators' e-mails are hidden unless --private. The query reads these views only: no
    file, no network (DuckDB's external access is off). Every table is there, empty when the
    corpus has none yet (`pins` before the first export).

    With --json, a number that is not finite (NaN, Infinity, -Infinity) is null, as JSON has
    no such numbers. A date or time Python cannot hold (before year 1 or after 9999) is
    shown as its ISO text, e.g. "0000-12-31 00:00:00.000000".

    Example:

    \b
        spanbank sql "SELECT label, count(*) FROM spans GROUP BY label"
    """
    from spanbank.corpus.sql import query
    from spanbank.corpus.sql import rows as rows_of

    if as_json and as_csv:
        raise click.UsageError("give one of --json and --csv")
    with errors_as_click():
        table = query(obj.corpus.at(as_of), statement, private=private)
    rows = rows_of(table)
    if as_json:
        echo_json(_finite(rows))
    elif as_csv:
        out = csv.writer(sys.stdout)
        out.writerow(table.column_names)
        out.writerows([r[c] for c in table.column_names] for r in rows)
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(*table.column_names)
        for r in rows:
            t.add_row(*("" if r[c] is None else str(r[c]) for c in table.column_names))
        Console().print(t)


def _finite(obj):
    """`obj` with every float that is not finite (inf, -inf, NaN) as None: JSON has no such
    numbers (Python's json writes `Infinity`, which JSON readers refuse)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
