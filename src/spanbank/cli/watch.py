"""`spanbank watch`: pull a project live, woken by Label Studio webhooks, polling as fallback."""

from __future__ import annotations

import json

import click

from spanbank.cli._common import (
    FiniteRange,
    errors_as_click,
    json_option,
    key_option,
    project_option,
    quiet_option,
    url_option,
)


@click.command()
@project_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port of the loopback receiver the webhook posts to (0: any free port).",
)
@click.option(
    "--poll",
    type=FiniteRange(min=1),
    default=60.0,
    show_default=True,
    help="Also pull every this many seconds (catches events missed while either side was down).",
)
@click.option(
    "--keep-hook",
    is_flag=True,
    help="On Ctrl-C leave the webhook registered (the next watch reuses it).",
)
@url_option
@key_option
@quiet_option
@json_option
@click.pass_obj
def watch(obj, project, port, poll, keep_hook, url, api_key, quiet, as_json):
    """Pull PROJECT within seconds of each annotation created, updated or deleted; Ctrl-C stops.

    Registers one Label Studio webhook pointing at a receiver on 127.0.0.1 (found again by its
    URL after a restart, never duplicated) and removes it on Ctrl-C unless --keep-hook.

    Example:

    \b
        spanbank watch --project news-batch1 --poll 30
    """
    from spanbank.labelstudio.watch import watch as watch_project
    from spanbank.labelstudio.workflow import run

    def show(record: dict) -> None:
        if not quiet:
            click.echo(json.dumps(record, default=str) if as_json else _line(record))

    with errors_as_click():
        gen = watch_project(
            obj.corpus, project, url=url, api_key=api_key, port=port, poll=poll, keep_hook=keep_hook
        )
        try:
            totals = run(gen, show)
        except KeyboardInterrupt:  # arrived outside the generator: its cleanup still runs
            gen.close()
            totals = {}
    if not quiet:
        click.echo(
            f"stopped: {totals.get('pulls', '?')} pulls, {totals.get('events', '?')} events; "
            f"webhook {totals.get('hook', 'not registered' if totals else 'cleaned up')}",
            err=True,
        )


def _line(record: dict) -> str:
    """One record as a short line: what woke the pull and what it stored."""
    if "error" in record:
        return f"[{record['trigger']}] Warning: {record['error']}"
    if "hook_id" in record:
        how = "reused" if record["reused"] else "registered"
        return f"[hook] webhook {record['hook_id']} {how} -> {record['url']}"
    keys = ("new", "updated", "deleted", "spans", "rejected")
    got = ", ".join(f"{k} {record[k]}" for k in keys if record.get(k))
    return f"[{record['trigger']}] pulled {got or 'nothing new'}"
