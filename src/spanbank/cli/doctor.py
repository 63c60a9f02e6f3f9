"""`spanbank doctor`: find (and with --fix supersede) annotations stored twice by past server restarts."""

from __future__ import annotations

import click

from spanbank.cli._common import echo_json, errors_as_click, json_option, quiet_option, wait_option

SHOWN = 20


@click.command()
@click.option(
    "--fix", is_flag=True, help="Mark every copy but one superseded (nothing is deleted)."
)
@wait_option
@quiet_option
@json_option
@click.pass_obj
def doctor(obj, fix, wait, quiet, as_json):
    """Find one Label Studio annotation stored under two server tags (a restart on a new port,
    before servers had a stable identity) and, with --fix, supersede the copies.

    \b
    Example:
        spanbank doctor            # show the copies
        spanbank doctor --fix      # keep one of each; agreement no longer pairs a person with herself
    """
    from spanbank.doctor import doctor as run_doctor

    with errors_as_click():
        report = run_doctor(obj.corpus, fix=fix, wait=wait)
    if as_json:
        echo_json(report)
        return
    if quiet:
        return
    n = report["duplicates"]
    if not n:
        click.echo("no duplicate annotations")
        return
    click.echo(
        f"{n} annotation cop{'y' if n == 1 else 'ies'} of a Label Studio annotation stored under another server tag:"
    )
    for c in report["copies"][:SHOWN]:
        click.echo(
            f"  {c['annotation_id']} (project {c['project']}, article {c['article_id']}) duplicates {c['kept']}"
        )
    if n > SHOWN:
        click.echo(f"  ... and {n - SHOWN} more (--json lists all)")
    for pair in report["same_annotator"]:
        click.echo(f"annotator {pair['copy']} is {pair['kept']} (the same Label Studio user)")
    if fix:
        click.echo(
            f"superseded {report['superseded']} cop{'y' if n == 1 else 'ies'}; nothing deleted"
        )
    else:
        click.echo("run `spanbank doctor --fix` to supersede the copies (nothing is deleted)")
