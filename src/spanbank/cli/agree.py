"""`spanbank agree`: the inter-annotator agreement report."""

from __future__ import annotations

import click

from spanbank.errors import SpanbankError


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


@click.command()
@click.option("--project", help="Only annotations of this project.")
@click.option("--labels", help="Comma-separated labels to compare (default: all labels present).")
@click.option("--annotators", help="Comma-separated annotators to compare (default: all).")
@click.option(
    "--iou",
    type=click.FloatRange(0, 1),
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
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the report as CSV, one row per measure.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write a self-contained HTML report with heatmaps to this file.",
)
@click.option("--quiet", is_flag=True, help="Print nothing except --json/--csv output.")
@click.pass_obj
def agree(
    obj, project, labels, annotators, iou, bootstrap, seed, as_json, as_csv, html_path, quiet
):
    """Inter-annotator agreement of the latest human annotations.

    Span F1 (exact and overlap), token-level kappa/alpha/AC1, unitizing alpha and
    relation F1, per label, annotator pair and article.

    Example:

        spanbank agree --project news --labels SPEAKER,QUOTE --html agreement.html
    """
    from spanbank.agreement_report import agreement_report, render_table, to_csv, to_html, to_json
    from spanbank.identity import require_known_project

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    try:
        require_known_project(obj.corpus, project)
        report = agreement_report(
            obj.corpus,
            project=project,
            labels=_split(labels),
            annotators=_split(annotators),
            iou=iou,
            bootstrap=bootstrap,
            seed=seed,
        )
        page = to_html(report) if html_path else None
    except SpanbankError as err:
        raise click.ClickException(str(err)) from err
    if page is not None:
        try:
            with open(html_path, "w", encoding="utf-8") as fh:
                fh.write(page)
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
