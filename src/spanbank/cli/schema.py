"""`spanbank schema`: show, render and check label schemas."""

import click
import yaml

from spanbank.cli._common import errors_as_click
from spanbank.schema import load_schema


def _load(obj, path):
    return load_schema(path) if path else obj.corpus.schema


path_arg = click.argument("path", required=False, type=click.Path(dir_okay=False))


@click.group()
def schema():
    """Show a label schema, its Label Studio config, or check a schema file.

    Example:

    \b
        spanbank schema config > config.xml
    """


@schema.command()
@path_arg
@click.pass_obj
def show(obj, path):
    """Print the schema (the corpus's, or PATH's).

    Example:

    \b
        spanbank schema show
    """
    with errors_as_click():
        s = _load(obj, path)
    labels = {
        name: {"attributes": {a.name: list(a.values) for a in lab.attributes.values()}}
        if lab.attributes
        else {}
        for name, lab in s.labels.items()
    }
    rels = {r.name: f"{r.source} -> {r.target}" for r in s.relations.values()}
    click.echo(
        yaml.safe_dump(
            {"schema": s.ident, "labels": labels, "relations": rels}, sort_keys=False
        ).rstrip()
    )


@schema.command()
@path_arg
@click.pass_obj
def config(obj, path):
    """Print the Label Studio labeling config (XML) generated from the schema.

    Example:

    \b
        spanbank schema config schemas/news.yaml
    """
    with errors_as_click():
        click.echo(_load(obj, path).label_config(), nl=False)


@schema.command()
@path_arg
@click.pass_obj
def validate(obj, path):
    """Check a schema file; exit 1 with the problem if it is invalid.

    Example:

    \b
        spanbank schema validate schemas/news.yaml
    """
    with errors_as_click():
        s = _load(obj, path)
    click.echo(f"ok: {s.ident}, {len(s.labels)} labels, {len(s.relations)} relations")
