"""`spanbank push`: send a batch of not-yet-pushed articles to a Label Studio project."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from spanbank.cli._common import (
    FiniteRange,
    Progress,
    echo_summary,
    engine_options,
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
    "--batch-size",
    type=click.IntRange(1),
    default=None,
    help="Push at most N articles (default: all not yet pushed).",
)
@click.option(
    "--overlap",
    type=click.IntRange(1),
    default=None,
    help="Annotators per task (the project's maximum_annotations).",
)
@click.option(
    "--sample",
    type=click.IntRange(1),
    default=None,
    help="Push a random sample of N not-yet-pushed articles.",
)
@click.option(
    "--overlap-share",
    type=FiniteRange(0, 1),
    default=None,
    help="Share of the batch's articles that get --overlap annotators; the rest get one "
    "(e.g. 0.2: agreement on a fifth of the batch).",
)
@click.option(
    "--stratify",
    default=None,
    help="Articles column whose values each get their share of --overlap-share, e.g. source.",
)
@click.option(
    "--honeypots",
    default=None,
    help="Mix in articles that already have gold, as a share of the batch (e.g. 5%); "
    "status and agree score each annotator against that gold.",
)
@click.option(
    "--select",
    type=click.Choice(["random", "oldest", "uncertain"]),
    default=None,
    help="Which unpushed articles first: random, oldest (published_at), or uncertain "
    "(where the --preannotate model:DIR is least sure).",
)
@click.option(
    "--ml-backend",
    "ml_backend",
    default=None,
    metavar="URL",
    help="Connect this ML backend (e.g. `spanbank ml-backend`'s http://127.0.0.1:9090) to the project, "
    "so Label Studio asks it for predictions when a task is opened.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of --sample, --overlap-share and --honeypots.",
)
@click.option(
    "--ids",
    "ids_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="File of article ids, one a line (pushed in that order).",
)
@click.option(
    "--where", default=None, help="pandas query on article columns, e.g. \"source == 'reuters'\"."
)
@click.option(
    "--preannotate",
    default="none",
    show_default=True,
    help="Predictions: rules, none, model:DIR (a model from spanbank train), or a Parquet/JSONL file of spans.",
)
@click.option(
    "--update-config",
    is_flag=True,
    help="Replace the project's labeling config when it differs from the schema.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(1, 5000),
    default=2500,
    show_default=True,
    help="Tasks per import request at most; a request is also cut at 16 million characters "
    "of text, under Label Studio's limit on a request's size.",
)
@click.option(
    "--create",
    is_flag=True,
    help="Create the project if Label Studio has none of this title (asked on a terminal).",
)
@click.option(
    "--repush-missing",
    is_flag=True,
    help="Push again articles recorded as pushed whose tasks are gone (project deleted or recreated in Label Studio).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be pushed; change nothing.")
@engine_options(default="$SPANBANK_WORKERS, else 1")
@url_option
@key_option
@wait_option
@quiet_option
@json_option
@click.pass_obj
def push(
    obj,
    project,
    batch_size,
    overlap,
    sample,
    overlap_share,
    stratify,
    honeypots,
    select,
    ml_backend,
    seed,
    ids_file,
    where,
    preannotate,
    update_config,
    chunk_size,
    create,
    repush_missing,
    dry_run,
    workers,
    scheduler,
    url,
    api_key,
    wait,
    quiet,
    as_json,
):
    """Push articles not yet in project PROJECT to Label Studio as tasks.

    Creates the project from the corpus schema with --create (or when you say yes on a
    terminal); safe to re-run (it never makes a second task for an article, even after a crash).

    Example:

    \b
        spanbank push --project news-batch1 --create --batch-size 200 --overlap 2 --preannotate rules
        spanbank push --project news-batch2 --overlap 2 --overlap-share 0.2 --stratify source --honeypots 5%
        spanbank push --project news-batch3 --select uncertain --preannotate model:models/v1 --workers 4
    """
    from spanbank.errors import ProjectMissingError
    from spanbank.labelstudio.push import push_batch
    from spanbank.labelstudio.workflow import run

    ids = None
    if ids_file is not None:
        ids = [line.strip() for line in ids_file.read_text("utf-8").splitlines() if line.strip()]

    planned = overlap_share is not None or honeypots or stratify
    extra = (
        {"overlap_share": overlap_share, "stratify": stratify, "honeypots": honeypots}
        if planned
        else {}
    )
    if select:
        if planned:
            raise click.UsageError(
                "--select does not combine with --overlap-share/--stratify/--honeypots"
            )
        extra["select"] = select
    if ml_backend:
        extra["ml_backend"] = ml_backend
    if planned:  # the planned push wraps push_batch with the same options
        from spanbank.labelstudio.operations import push_planned

    make = push_planned if planned else push_batch

    def attempt(create_project: bool) -> dict:
        with Progress(quiet or as_json) as bar:
            return run(
                make(
                    obj.corpus,
                    project,
                    url=url,
                    api_key=api_key,
                    batch_size=batch_size,
                    overlap=overlap,
                    sample=sample,
                    seed=seed,
                    ids=ids,
                    where=where,
                    preannotate=preannotate,
                    update_config=update_config,
                    dry_run=dry_run,
                    wait=wait,
                    chunk_size=chunk_size,
                    create=create_project,
                    repush_missing=repush_missing,
                    workers=workers,
                    scheduler=scheduler,
                    **extra,
                ),
                bar.update,
            )

    with resume_on_interrupt("push"), errors_as_click():
        try:
            summary = attempt(create)
        except ProjectMissingError as exc:
            if create or not sys.stdin.isatty():
                raise
            click.echo(str(exc), err=True)
            if not click.confirm(f"create project {project} now?", default=False, err=True):
                raise
            summary = attempt(True)
    if summary.get("moved_from") and not quiet and not as_json:
        click.echo(
            f"Label Studio server moved from {summary['moved_from']} to {summary['ls_url']}; "
            "followed it (same server, same records)",
            err=True,
        )
    echo_summary(summary, quiet, as_json)
