"""`spanbank preannotate`: the rule tagger's predictions to a file (--out), or its scores
against the corpus's gold (--eval)."""

import click

from spanbank.cli._common import (
    Progress,
    echo_json,
    echo_summary,
    engine_options,
    errors_as_click,
    json_option,
    project_filter_option,
    quiet_option,
)


@click.command()
@click.option(
    "--eval",
    "do_eval",
    is_flag=True,
    help="Evaluate the tagger against the corpus's gold.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write predictions for the selected articles to this .parquet or .jsonl file.",
)
@click.option(
    "--model",
    default="rules",
    show_default=True,
    help="Which tagger: rules, or a model directory from `spanbank train` (--eval then scores its held-out articles).",
)
@click.option("--where", default=None, help="Only articles matching this filter on their columns.")
@engine_options
@quiet_option
@project_filter_option
@click.option(
    "--gold",
    default="auto",
    show_default=True,
    help="Which annotation is gold: auto, a strategy or an annotator.",
)
@json_option
@click.pass_obj
def preannotate(obj, do_eval, out, model, where, workers, scheduler, quiet, project, gold, as_json):
    """Predict quotes, cues and speakers with the rule tagger (--out), or score it on your gold (--eval).

    --out tags every article (or those matching --where) on the engine (--workers,
    --scheduler) and writes one row per span; `spanbank push --preannotate FILE` sends them.
    --eval gives exact and overlap F1 per label and for quote -> speaker/cue links.

    Example:

    \b
        spanbank preannotate --out preds.parquet --where "source == 'reuters'"
        spanbank preannotate --eval --project news
    """
    from spanbank.tagger_eval import evaluate_tagger

    if do_eval == (out is not None):
        raise click.UsageError("give one of --eval and --out")
    if model != "rules":
        from spanbank.model import check_labels, load

        with errors_as_click():
            load(model)
            check_labels(model, obj.corpus.schema)
    if out is not None:
        from spanbank.labelstudio.workflow import run
        from spanbank.predict import write_predictions

        with errors_as_click(), Progress(quiet or as_json) as bar:
            summary = run(
                write_predictions(
                    obj.corpus,
                    out,
                    where=where,
                    workers=workers,
                    scheduler=scheduler,
                    model_dir=model,
                ),
                bar.update,
            )
        echo_summary(summary, quiet, as_json)
        return

    with errors_as_click():
        res = evaluate_tagger(
            obj.corpus, project, gold, workers=workers, scheduler=scheduler, model_dir=model
        )
    if as_json:
        echo_json(res)
        return
    click.echo(f"{res['tagger']} on {res['articles']} article(s), gold={res['gold']}")
    _echo_left_out(res.get("left_out") or {})
    modes = ("exact", "overlap", "any")
    head = "".join(f"{m + ' P':>11}{'R':>7}{'F1':>7}" for m in modes)
    click.echo(f"{'label':<16}{head}{'gold':>6}  (overlap: IoU >= 0.5)")
    for key, ex in res["exact"].items():
        cells = [res[m][key][k] for m in modes for k in ("precision", "recall", "f1")]
        fmt = ["nan" if c != c else f"{c:.3f}" for c in cells]
        row = "".join(f"{fmt[i]:>11}{fmt[i + 1]:>7}{fmt[i + 2]:>7}" for i in range(0, 9, 3))
        click.echo(f"{key:<16}{row}{ex['n_gold']:>6}")


def _echo_left_out(left_out: dict) -> None:
    """One line per reason naming the articles the model was not scored on (10 at most)."""
    by: dict = {}
    for aid, why in left_out.items():
        by.setdefault(why, []).append(aid)
    for why, ids in sorted(by.items()):
        more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
        click.echo(f"left out {len(ids)} article(s) ({why}): {', '.join(ids[:10])}{more}")
