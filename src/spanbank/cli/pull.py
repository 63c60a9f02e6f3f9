"""`spanbank pull`: fetch annotations from a Label Studio project into the corpus."""

from __future__ import annotations

import click

from spanbank.cli._common import (
    Progress,
    echo_summary,
    errors_as_click,
    json_option,
    key_option,
    project_option,
    quiet_option,
    resume_on_interrupt,
    url_option,
    wait_option,
)


@click.command()
@project_option
@click.option(
    "--full",
    is_flag=True,
    help="Re-check every annotated task, not only those changed since the last pull.",
)
@url_option
@key_option
@wait_option
@quiet_option
@json_option
@click.pass_obj
def pull(obj, project, full, url, api_key, wait, quiet, as_json):
    """Pull new, edited and deleted annotations of PROJECT; verify offsets; store versions.

    Example:

    \b
        spanbank pull --project news-batch1 --json
    """
    from spanbank.labelstudio.pull import pull as pull_annotations
    from spanbank.labelstudio.pull import pull_warnings
    from spanbank.labelstudio.workflow import run

    with resume_on_interrupt("pull"), errors_as_click(), Progress(quiet or as_json) as bar:
        summary = run(
            pull_annotations(obj.corpus, project, url=url, api_key=api_key, full=full, wait=wait),
            bar.update,
        )
    if summary.get("moved_from") and not quiet and not as_json:
        click.echo(
            f"Label Studio server moved from {summary['moved_from']} to {summary['ls_url']}; "
            "followed it (same server: nothing imported twice)",
            err=True,
        )
    echo_summary(summary, quiet, as_json)
    for line in pull_warnings(summary):
        click.echo(f"Warning: {line}", err=True)
