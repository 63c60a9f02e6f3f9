"""`spanbank status`: what the corpus holds and where each project stands."""

import click

from spanbank.cli._common import echo_json, errors_as_click, json_option
from spanbank.status import corpus_status


@click.command()
@json_option
@click.pass_obj
def status(obj, as_json):
    """Counts of articles and annotations, and per project: pushed, annotated, pending.

    Example:

    \b
        spanbank status --json
    """
    with errors_as_click():
        st = corpus_status(obj.corpus)
    if as_json:
        echo_json(st)
        return
    click.echo(f"corpus {st['corpus']} (schema {st['schema']})")
    click.echo(f"articles: {st['articles']}  spans: {st['spans']}  rejects: {st['rejects']}")
    by_origin = ", ".join(f"{k} {v}" for k, v in st["annotations"].items()) or "none"
    click.echo(f"annotations: {by_origin}")
    for p in st["projects"]:
        extra = f", adjudicated {p['adjudicated']}, reviewed {p['reviewed']}"
        if "with_conflicts" in p:
            extra += f", with conflicts {p['with_conflicts']}"
        click.echo(
            f"project {p['project']}: pushed {p['pushed']}, annotated {p['annotated']}, pending {p['pending']}, "
            f"annotators {p['annotators']}, last pull {p['last_pull'] or 'never'}{extra}"
        )
