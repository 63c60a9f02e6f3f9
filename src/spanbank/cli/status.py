"""`spanbank status`: what the corpus holds and where each project stands."""

import click

from spanbank.cli._common import as_of_option, echo_json, errors_as_click, json_option
from spanbank.status import corpus_status


@click.command()
@json_option
@as_of_option
@click.pass_obj
def status(obj, as_json, as_of):
    """What the corpus holds and where each project stands (tasks, coverage, progress).

    Per project: tasks pushed, articles still short of the overlap, each annotator's done /
    assigned, and that project's adjudicated, reviewed and conflicting articles.

    Example:

    \b
        spanbank status --json
    """
    with errors_as_click():
        obj_corpus = obj.corpus.at(as_of)
        st = corpus_status(obj_corpus)
    if as_json:
        echo_json(st)
        return
    at = f", commit {st['commit']}" if st["commit"] is not None else ""
    click.echo(f"corpus at {st['corpus']} (schema {st['schema']}{at})")
    click.echo(f"articles: {st['articles']}  spans: {st['spans']}  rejects: {st['rejects']}")
    by_origin = ", ".join(f"{k} {v}" for k, v in st["annotations"].items()) or "none"
    skipped = f" (skipped {st['skipped']})" if st["skipped"] else ""
    stale = (
        f"; {st['stale_gold']} article(s)' gold is stale: re-run `spanbank adjudicate`"
        if st["stale_gold"]
        else ""
    )
    click.echo(f"annotations: {by_origin}{skipped}{stale}")
    for p in st["projects"]:
        click.echo("\n".join(_project_lines(p)))


def _project_lines(p: dict) -> list[str]:
    """A project's status as text: a summary line, then indented details."""
    kind = f" (review of {p['review_of']})" if p["kind"] == "review" else ""
    lines = [
        f"project {p['project']}{kind}: tasks {p['tasks']}, pushed {p['pushed']}, annotated "
        f"{p['annotated']}, pending {p['pending']}, annotators {p['annotators']}, spans {p['spans']}, "
        f"last pull {p['last_pull'] or 'never'}"
    ]
    overlap = (
        f"overlap {p['overlap']}"
        if p["overlap"] is not None
        else "overlap not recorded (taken as 1)"
    )
    if p["under_annotated"]:
        needs = ", ".join(f"{n} need {k} more" for k, n in p["needs_more"].items())
        lines.append(f"  {overlap}: {p['under_annotated']} article(s) short ({needs})")
    else:
        lines.append(f"  {overlap}: every pushed article has its annotators")
    stale = p.get("stale_gold")
    stale = f" (and {stale} stale: re-run `spanbank adjudicate`)" if stale else ""
    lines.append(
        f"  adjudicated {p['adjudicated']}{stale}, reviewed {p['reviewed']}, "
        f"conflicts {p['conflicts']} in {p['with_conflicts']} article(s)"
    )
    for a in p["progress"]:
        skipped = f", skipped {a['skipped']}" if a["skipped"] else ""
        lines.append(f"  {a['annotator']}: done {a['done']} / assigned {a['assigned']}{skipped}")
    if p.get("multi_planned"):
        lines.append(
            f"  multiply annotated: {p['multi_done']} of {p['multi_planned']} planned article(s) done"
        )
    t = p.get("throughput") or {}
    if t.get("articles_per_hour") is not None:
        lines.append(
            f"  throughput: {t['annotations_per_hour']} annotations/hour, "
            f"{t['articles_per_hour']} articles/hour, "
            f"{t['seconds_per_span'] or '-'} s/span over {t['seconds'] / 3600:.2f} h"
        )
    for h in p.get("honeypots") or []:
        f1, alpha = h["span_f1"], h["token_alpha"]
        lines.append(
            f"  honeypots {h['annotator']}: {h['articles']} checked, span F1 {_ci(f1)}, "
            f"token alpha {_ci(alpha)}"
            + (
                f" ({h['gold_remade']} against gold re-made since the push)"
                if h.get("gold_remade")
                else ""
            )
            + (f" ({h['gold_gone']} not scored: their gold is gone)" if h.get("gold_gone") else "")
        )
    return lines


def _ci(v: dict) -> str:
    """A figure with its 95% CI when there is one (NaN prints as n/a)."""
    ci = "" if v["ci_low"] != v["ci_low"] else f" [{_num(v['ci_low'])}, {_num(v['ci_high'])}]"
    return _num(v["value"]) + ci


def _num(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"
