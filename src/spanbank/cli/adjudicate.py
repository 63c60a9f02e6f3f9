"""`spanbank adjudicate`: gold annotations from several annotators' work."""

from __future__ import annotations

import contextlib

import click

from spanbank.cli._common import (
    Progress,
    echo_json,
    errors_as_click,
    json_option,
    key_option,
    project_filter_option,
    quiet_option,
    url_option,
    wait_option,
)


@click.command()
@click.option(
    "--strategy",
    default="majority",
    show_default=True,
    help="majority, union, intersection or prefer:ANNOTATOR (that annotator wins conflicts).",
)
@project_filter_option
@click.option(
    "--min-votes",
    type=click.IntRange(1),
    help="Annotators a span needs under majority (default: more than half); an article "
    "with fewer annotators keeps none of its spans, each a min_votes conflict.",
)
@click.option(
    "--review",
    is_flag=True,
    help="Push the articles with conflicts to the Label Studio project PROJECT-review, "
    "each annotator's version and the gold attached; pull that project to store the review.",
)
@url_option
@key_option
@wait_option
@quiet_option
@json_option
@click.pass_obj
def adjudicate(obj, strategy, project, min_votes, review, url, api_key, wait, quiet, as_json):
    """Adjudicate articles with several annotators into gold annotations, reporting conflicts.

    Re-running replaces the earlier gold of the same strategy; human annotations are
    never changed. Conflicts go to the corpus's conflicts table. With --review, the
    articles with conflicts go to PROJECT-review in Label Studio, pre-filled with the gold
    for a reviewer to accept or edit; `spanbank pull --project PROJECT-review` then stores
    the reviewed gold, which exports prefer.

    Example:

    \b
        spanbank adjudicate --strategy majority --project news --review
    """
    from spanbank.adjudicate import parse_strategy
    from spanbank.gold import run_adjudication
    from spanbank.labelstudio.identity import require_known_project

    with errors_as_click():
        mode, _ = parse_strategy(strategy)
        if min_votes is not None and mode not in ("majority", "prefer"):
            raise click.UsageError("--min-votes only applies to majority and prefer:ANNOTATOR")
        if review and project is None:
            raise click.UsageError(
                "--review needs --project NAME (the review project is NAME-review)"
            )
        require_known_project(obj.corpus, project)
        # with --review, one writer throughout: one commit, and no writer between the gold and
        # its review tasks
        with obj.corpus.writer(wait) if review else contextlib.nullcontext():
            summary = run_adjudication(
                obj.corpus, strategy, project=project, min_votes=min_votes, wait=wait
            )
            if review:
                from spanbank.labelstudio.review import push_review
                from spanbank.labelstudio.workflow import run

                with Progress(quiet or as_json) as bar:
                    summary["review"] = run(
                        push_review(
                            obj.corpus, project, strategy, url=url, api_key=api_key, wait=wait
                        ),
                        bar.update,
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
    r = s.get("review")
    if r is not None:
        line = f"review: {r['pushed']} article(s) pushed to {r['project']}"
        if r.get("already_in_review"):
            line += f", {r['already_in_review']} already there"
        if r.get("project_url"):
            line += f" ({r['project_url']})"
        lines.append(line)
        if r["articles_with_conflicts"]:
            lines.append(f"after reviewing: spanbank pull --project {r['project']}")
    return "\n".join(lines)
