"""`spanbank adjudicate`: gold annotations from several annotators' work."""

from __future__ import annotations

import click

from spanbank.cli._common import echo_json, errors_as_click, json_option, quiet_option


@click.command()
@click.option(
    "--strategy",
    default="majority",
    show_default=True,
    help="majority, union, intersection or prefer:ANNOTATOR (that annotator wins conflicts).",
)
@click.option("--project", help="Only annotations of this project (the gold is stored under it).")
@click.option(
    "--min-votes",
    type=click.IntRange(1),
    help="Annotators a span needs under majority (default: more than half).",
)
@click.option("--wait", is_flag=True, help="Wait for another process holding the corpus lock.")
@quiet_option
@json_option
@click.pass_obj
def adjudicate(obj, strategy, project, min_votes, wait, quiet, as_json):
    """Adjudicate articles with several annotators into gold annotations, reporting conflicts.

    Re-running replaces the earlier gold of the same strategy; human annotations are
    never changed. Conflicts go to the corpus's conflicts table.

    Example:

        spanbank adjudicate --strategy majority --project news
    """
    from spanbank.adjudicate import parse_strategy
    from spanbank.gold import run_adjudication

    with errors_as_click():
        parse_strategy(strategy)
        if min_votes is not None and strategy != "majority" and not strategy.startswith("prefer:"):
            raise click.UsageError("--min-votes only applies to majority and prefer:ANNOTATOR")
        summary = run_adjudication(
            obj.corpus, strategy, project=project, min_votes=min_votes, wait=wait
        )
    if as_json:
        echo_json(summary)
    elif not quiet:
        click.echo(_render(summary))


def _render(s: dict) -> str:
    where = f", project {s['project']}" if s["project"] is not None else ""
    lines = [
        f"adjudicated {s['articles']} article(s) by {s['strategy']}{where}: "
        f"{s['spans_kept']} span(s), {s['relations_kept']} relation(s) kept",
    ]
    if s["skipped_single_annotator"]:
        lines.append(f"skipped {s['skipped_single_annotator']} article(s) with one annotator")
    if s["replaced"]:
        lines.append(f"replaced {s['replaced']} earlier gold annotation(s)")
    kinds = ", ".join(f"{k} {v}" for k, v in s["conflicts_by_kind"].items())
    lines.append(
        f"conflicts: {s['conflicts']} in {s['articles_with_conflicts']} article(s)"
        + (f" ({kinds})" if kinds else "")
    )
    return "\n".join(lines)
