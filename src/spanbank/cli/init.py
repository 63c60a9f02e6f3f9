"""`spanbank init`: create a corpus directory."""

import click

from spanbank.cli._common import errors_as_click
from spanbank.corpus import Corpus


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Label schema YAML (default: the bundled news schema).",
)
@click.pass_obj
def init(obj, directory, schema_path):
    """Create a corpus directory with its config and label schema.

    Example:

    \b
        spanbank init corpus/
    """
    with errors_as_click():
        corpus = Corpus.init(directory or obj.corpus.path, schema_path)
        click.echo(f"Corpus ready at {corpus.path} (schema {corpus.schema.ident}).")
