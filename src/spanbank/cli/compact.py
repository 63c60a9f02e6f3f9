"""`spanbank compact`: fewer, bigger files per table; optionally vacuum old ones."""

import click

from spanbank.cli._common import echo_json, errors_as_click, json_option, wait_option


@click.command()
@click.option(
    "--vacuum",
    is_flag=True,
    help="Also delete files that no version since the oldest exported commit needs.",
)
@click.option(
    "--keep-days",
    type=click.FloatRange(0),  # nan: the library says so in its own words
    default=7,
    show_default=True,
    help="With --vacuum: keep every version of the last N days too.",
)
@json_option
@wait_option
@click.pass_obj
def compact(obj, vacuum, keep_days, as_json, wait):
    """Rewrite each table into few files (rows in the same order) and checkpoint its log.

    Older versions stay readable (`--as-of`) until --vacuum, which keeps whatever the oldest
    commit an export was made of needs.

    Example:

    \b
        spanbank compact --vacuum
    """
    from spanbank.corpus.maintenance import compact as run

    with errors_as_click():
        out = run(obj.corpus, vacuum=vacuum, keep_days=keep_days, wait=wait)
    if as_json:
        echo_json(out)
        return
    for name, t in out["tables"].items():
        click.echo(f"{name}: {t['files_before']} -> {t['files_after']} file(s)")
    if vacuum:
        gone = sum(out["vacuum"]["files_removed"].values())
        click.echo(f"vacuum: {gone} file(s) removed")
