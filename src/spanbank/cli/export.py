"""`spanbank export`: training datasets in several formats, split by article, with a manifest."""

from __future__ import annotations

from pathlib import Path

import click

from spanbank.cli._common import (
    Progress,
    as_of_option,
    echo_summary,
    engine_options,
    errors_as_click,
    json_option,
    project_filter_option,
    quiet_option,
    wait_option,
)


@click.command()
@click.option(
    "--format",
    "formats",
    required=True,
    help="Comma-separated formats: jsonl, spacy, hf, conll, brat, quotes.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output directory (default: exports/<name>); replaced only when the export is complete.",
)
@click.option("--name", help="Dataset name (default: the corpus directory's name).")
@click.option(
    "--gold",
    default="auto",
    show_default=True,
    help="Which annotation per article: auto (reviewed, then automatic gold, then the single "
    "human annotation, then majority), a strategy name, or an annotator pseudonym.",
)
@click.option("--labels", help="Comma-separated labels to export (default: all schema labels).")
@project_filter_option
@click.option(
    "--split",
    "split_spec",
    help="Split names and fractions (summing to 1) [default: train=0.8,dev=0.1,test=0.1].",
)
@click.option(
    "--split-by",
    help="Articles column holding each article's own split (e.g. compartment from --metadata): "
    "keep the corpus's official train/dev/test instead of hashing.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split hash.")
@click.option(
    "--group-by", help="Articles column whose equal values stay in one split (e.g. source)."
)
@click.option(
    "--chunk-size",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Articles processed and written per chunk (bounds memory).",
)
@engine_options
@wait_option
@quiet_option
@json_option
@as_of_option
@click.pass_obj
def export(
    obj,
    formats,
    out,
    name,
    gold,
    labels,
    project,
    split_spec,
    split_by,
    seed,
    group_by,
    chunk_size,
    workers,
    scheduler,
    wait,
    quiet,
    as_json,
    as_of,
):
    """Export gold annotations as training data, split by article, with manifest.json.

    Example:

    \b
        spanbank export --format jsonl,spacy,hf --split train=0.8,dev=0.1,test=0.1 --seed 1
        spanbank export --format quotes,brat --split-by compartment
    """
    from spanbank.export import export_dataset
    from spanbank.labelstudio.identity import require_known_project

    with errors_as_click(), Progress(quiet or as_json) as bar:
        obj_corpus = obj.corpus.at(as_of)
        require_known_project(obj_corpus, project)
        summary = export_dataset(
            obj_corpus,
            formats,
            out,
            wait=wait,
            gold=gold,
            project=project,
            labels=labels.split(",") if labels else None,  # export_dataset strips and checks them
            split=split_spec,
            seed=seed,
            group_by=group_by,
            split_by=split_by,
            name=name,
            chunk_size=chunk_size,
            workers=workers,
            scheduler=scheduler,
            progress=bar.update,
        )
    if not as_json and not quiet:
        summary = dict(summary)
        summary["splits"] = ", ".join(f"{k}={v}" for k, v in summary["splits"].items())
        summary["label_counts"] = [
            f"{s}: " + ", ".join(f"{lab}={n}" for lab, n in counts.items())
            for s, counts in summary.pop("label_counts").items()
        ]
        summary["formats"] = ", ".join(summary["formats"])
        summary["notes"] = [f"{k}: {v}" for k, v in summary["notes"].items() if v]
    echo_summary(summary, quiet, as_json)
