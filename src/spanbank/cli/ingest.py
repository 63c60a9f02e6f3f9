"""`spanbank ingest`: add articles (and brat annotations) to the corpus."""

import click

from spanbank.cli._common import (
    Progress,
    echo_summary,
    engine_options,
    errors_as_click,
    json_option,
    quiet_option,
    wait_option,
)
from spanbank.corpus.ingest import FORMATS, Columns, ingest_paths


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), help="Input format (default: by file suffix)."
)
@click.option(
    "--id-col",
    help="Column holding the article id (default: article_id or id; else a hash of the text).",
)
@click.option(
    "--text-col", default="text", show_default=True, help="Column holding the article text."
)
@click.option("--title-col", help="Column holding the title.")
@click.option("--source-col", help="Column holding the outlet.")
@click.option("--url-col", help="Column holding the URL.")
@click.option("--date-col", help="Column holding the publication date.")
@click.option("--language-col", help="Column holding the language code.")
@click.option(
    "--encoding", default="utf-8", show_default=True, help="Text encoding of the input files."
)
@click.option(
    "--annotator", help="brat: annotator name for .ann files without a _<annotator> suffix."
)
@click.option(
    "--metadata",
    type=click.Path(dir_okay=False),
    help="brat: a TSV/CSV file, one row per document (id or filename column; publisher, date, "
    "title... and any other columns, kept). Updates stored articles with the same text.",
)
@wait_option
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Leave out files that cannot be read (each is reported with its reason) instead of stopping.",
)
@click.option(
    "--strict", is_flag=True, help="Exit with status 1 when any row is refused or any file skipped."
)
@engine_options(default="$SPANBANK_WORKERS, else 1; brat: else this machine's cores")
@quiet_option
@json_option
@click.pass_obj
def ingest(
    obj,
    paths,
    fmt,
    id_col,
    text_col,
    title_col,
    source_col,
    url_col,
    date_col,
    language_col,
    encoding,
    annotator,
    metadata,
    wait,
    skip_bad,
    strict,
    workers,
    scheduler,
    quiet,
    as_json,
):
    """Add articles from txt, jsonl, csv, parquet files (.gz read too) or brat folders.

    A .txt file's first line is its title; its text is stored unchanged.

    Example:

    \b
        spanbank ingest seeds/ articles.jsonl --id-col uid
        spanbank ingest --format brat data/brat/ --annotator alice
        spanbank ingest --format brat polnear/ --metadata polnear/metadata.tsv
        spanbank ingest downloads/ --skip-bad --strict
    """
    cols = Columns(
        id=id_col,
        text=text_col,
        title=title_col,
        source=source_col,
        url=url_col,
        published_at=date_col,
        language=language_col,
    )
    with errors_as_click(), Progress(quiet) as bar:
        summary = ingest_paths(
            obj.corpus,
            paths,
            fmt,
            cols,
            encoding,
            annotator,
            wait,
            bar.update,
            skip_bad,
            metadata=metadata,
            workers=workers,
            scheduler=scheduler,
        )
    echo_summary(summary.as_dict(), quiet, as_json)
    refused = len(summary.refused) + len(summary.rejected) + len(summary.skipped)
    if strict and refused:
        raise click.ClickException(
            f"--strict: {refused} row(s), span(s) or file(s) refused or skipped (reasons above); the rest was stored"
        )
