"""`spanbank train`: train a span model from the corpus's gold."""

import click

from spanbank.cli._common import FiniteRange, Progress, echo_json, errors_as_click
from spanbank.train import EPOCHS


@click.command()
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Model directory to write.",
)
@click.option("--labels", default=None, help="Comma-separated labels (default QUOTE,SPEAKER,CUE).")
@click.option(
    "--gold",
    default="auto",
    show_default=True,
    help="Layer to learn from: auto (gold, else import), or an annotator.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--holdout",
    type=FiniteRange(0, 0.9),
    default=0.1,
    show_default=True,
    help="Share of articles held out.",
)
@click.option("--epochs", type=click.IntRange(1), default=EPOCHS, show_default=True)
@click.option(
    "--width",
    type=click.IntRange(8),
    default=None,
    help="Width of the CNN under the recognizer (default 96; 64 with --depth 2 is faster).",
)
@click.option("--depth", type=click.IntRange(1), default=None, help="CNN layers (default 4).")
@click.pass_obj
def train(obj, out, labels, gold, seed, holdout, epochs, width, depth):
    """Train a spaCy entity-recognizer model; writes the pipeline and card.json to --out.

    The card holds the corpus commit trained from, the labels and the held-out scores.

    Example:

    \b
        spanbank train --out models/polnear --seed 1
    """
    from spanbank.train import train_from_corpus

    with errors_as_click(), Progress(obj.quiet) as bar:
        card = train_from_corpus(
            obj.corpus,
            out,
            [x.strip() for x in labels.split(",")] if labels is not None else None,
            gold=gold,
            seed=seed,
            holdout=holdout,
            epochs=epochs,
            progress=bar.update,
            **{k: v for k, v in (("width", width), ("depth", depth)) if v is not None},
        )
    echo_json({k: v for k, v in card.items() if k != "heldout_articles"})
