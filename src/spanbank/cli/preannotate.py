"""`spanbank preannotate --eval`: score the rule-based tagger against gold in the corpus."""

import click

from spanbank.cli._common import echo_json, errors_as_click, json_option, project_filter_option


@click.command()
@click.option(
    "--eval",
    "do_eval",
    is_flag=True,
    required=True,
    help="Evaluate the tagger against the corpus's gold.",
)
@project_filter_option
@click.option(
    "--gold",
    default="auto",
    show_default=True,
    help="Which annotation is gold: auto, a strategy or an annotator.",
)
@json_option
@click.pass_obj
def preannotate(obj, do_eval, project, gold, as_json):
    """Evaluate the rule-based quote/cue/speaker tagger on your own gold data.

    Exact and overlap F1 per label and for quote -> speaker/cue links. Predictions are pushed
    with `spanbank push --preannotate rules`.

    Example:

    \b
        spanbank preannotate --eval --project news
    """
    from spanbank.tagger_eval import evaluate_tagger

    with errors_as_click():
        res = evaluate_tagger(obj.corpus, project, gold)
    if as_json:
        echo_json(res)
        return
    click.echo(f"{res['tagger']} on {res['articles']} article(s), gold={res['gold']}")
    click.echo(
        f"{'label':<16}{'exact P':>9}{'R':>7}{'F1':>7}{'overlap P':>11}{'R':>7}{'F1':>7}{'gold':>6}"
    )
    for key, ex in res["exact"].items():
        ov = res["overlap"][key]
        cells = [ex["precision"], ex["recall"], ex["f1"], ov["precision"], ov["recall"], ov["f1"]]
        fmt = ["nan" if c != c else f"{c:.3f}" for c in cells]
        click.echo(
            f"{key:<16}{fmt[0]:>9}{fmt[1]:>7}{fmt[2]:>7}{fmt[3]:>11}{fmt[4]:>7}{fmt[5]:>7}{ex['n_gold']:>6}"
        )
