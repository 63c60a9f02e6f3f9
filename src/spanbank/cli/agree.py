"""`spanbank agree`: the inter-annotator agreement report."""

from __future__ import annotations

from pathlib import Path

import click

from spanbank.cli._common import (
    FiniteRange,
    as_of_option,
    engine_options,
    json_option,
    project_filter_option,
    quiet_option,
)
from spanbank.errors import SpanbankError


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def _names(corpus) -> dict:
    """pseudonym -> e-mail from the local annotators table (empty when there is none)."""
    table = corpus.read("annotators")
    if not len(table):
        return {}
    return dict(zip(table["annotator"], table["email"].fillna(""), strict=True))


def _resolve(corpus, names: list[str] | None) -> list[str] | None:
    """Pseudonyms for --annotators given as pseudonyms, user names or e-mails (None: all)."""
    from spanbank.annotators import resolve_annotators

    return None if names is None else resolve_annotators(corpus, names)


@click.command()
@project_filter_option
@click.option("--labels", help="Comma-separated labels to compare (default: all labels present).")
@click.option(
    "--annotators",
    help="Comma-separated annotators to compare: pseudonyms, Label Studio user names or e-mails "
    "(default: all).",
)
@click.option(
    "--iou",
    type=FiniteRange(0, 1),
    default=0.5,
    show_default=True,
    help="IoU a span match needs for overlap F1 (0 = any overlap).",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(0),
    default=1000,
    show_default=True,
    help="Bootstrap resamples of articles for the confidence intervals (0 = none).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print the report as CSV, one row per measure.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write a self-contained HTML report with heatmaps to this file.",
)
@click.option(
    "--show-names",
    is_flag=True,
    help="In the HTML page, show each annotator's e-mail beside the pseudonym "
    "(local use only: the file then holds personal data; do not share it).",
)
@engine_options(default="$SPANBANK_WORKERS, else 1")
@quiet_option
@as_of_option
@click.pass_obj
def agree(
    obj,
    project,
    labels,
    annotators,
    iou,
    bootstrap,
    seed,
    as_json,
    as_csv,
    html_path,
    show_names,
    workers,
    scheduler,
    quiet,
    as_of,
):
    """Inter-annotator agreement of the latest human annotations.

    Headline: Krippendorff's alpha over token categories (none / the label of the
    innermost span). Also Fleiss' kappa and AC1 over the same categories, span F1
    (exact and overlap), per-label token layers, unitizing alpha, relation and
    attribution F1, per label, annotator pair and article.

    Example:

    \b
        spanbank agree --project news --labels SPEAKER,QUOTE --html agreement.html
        spanbank agree --json --workers 4      # per-article statistics on 4 local processes
    """
    from spanbank.agreement.render import render_table, to_csv, to_html, to_json
    from spanbank.agreement.report import agreement_report
    from spanbank.labelstudio.identity import require_known_project

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    try:
        obj_corpus = obj.corpus.at(as_of)
        require_known_project(obj_corpus, project)
        report = agreement_report(
            obj_corpus,
            project=project,
            labels=_split(labels),
            annotators=_resolve(obj_corpus, _split(annotators)),
            iou=iou,
            bootstrap=bootstrap,
            seed=seed,
            views=bool(html_path),
            workers=workers,
            scheduler=scheduler,
        )
        names = _names(obj_corpus) if show_names and html_path else None
        page = to_html(report, names) if html_path else None
    except SpanbankError as err:
        raise click.ClickException(str(err)) from err
    if page is not None:
        from spanbank.corpus.store import write_bytes_atomic

        try:  # a temp file renamed over the old page: a full disk or a kill leaves the old one whole
            # with e-mails (--show-names): as private as the annotators table they come from
            write_bytes_atomic(page.encode("utf-8"), Path(html_path), 0o600 if names else None)
        except OSError as err:
            raise click.ClickException(f"cannot write {html_path}: {err.strerror}") from None
        if not quiet:
            click.echo(f"wrote {html_path}", err=True)
    if as_json:
        click.echo(to_json(report))
    elif as_csv:
        click.echo(to_csv(report), nl=False)
    elif not quiet:
        click.echo(render_table(report), nl=False)
