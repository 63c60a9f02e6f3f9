"""`spanbank migrate`: convert a format-1 corpus to Delta tables."""

import click

from spanbank.cli._common import echo_json, errors_as_click, json_option, wait_option


@click.command()
@json_option
@wait_option
@click.pass_obj
def migrate(obj, as_json, wait):
    """Convert a corpus of single Parquet files (format 1) to Delta tables (format 2).

    Every row is checked after the copy; the old files are kept in `.format1/`.

    Example:

    \b
        spanbank --corpus old-corpus migrate
    """
    from spanbank.corpus.maintenance import migrate as run

    with errors_as_click():
        out = run(obj.corpus, wait=wait)
    if as_json:
        echo_json(out)
        return
    for name, n in out["tables"].items():
        click.echo(f"{name}: {n} rows")
    click.echo(f"format 2; the old files are in {out['kept']}")
