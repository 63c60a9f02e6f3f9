"""`spanbank log`: the corpus's commits, newest first."""

import click

from spanbank.cli._common import echo_json, errors_as_click, json_option


@click.command()
@click.option("-n", "limit", type=click.IntRange(1), default=None, help="Show only the newest N.")
@json_option
@click.pass_obj
def log(obj, limit, as_json):
    """The commits: one per command that wrote, with its time, command line and table versions.

    `--as-of N` on export, agree, status and sql reads the corpus as it was at commit N.

    Example:

    \b
        spanbank log -n 5
    """
    with errors_as_click():
        rows = obj.corpus.commits().iloc[::-1]
    if limit:
        rows = rows.head(limit)
    if as_json:
        echo_json(
            [{**r, "committed_at": r["committed_at"].isoformat()} for r in rows.to_dict("records")]
        )
        return
    for r in rows.itertuples():
        status = "" if r.status == "ok" else f" [{r.status}]"
        click.echo(f"{r.commit:>5}  {r.committed_at:%Y-%m-%d %H:%M:%S}Z  {r.command}{status}")
