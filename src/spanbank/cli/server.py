"""`spanbank server`: start, stop and inspect the local Label Studio."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from spanbank.cli._common import echo_json, errors_as_click, json_option, quiet_option, wait_option

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Server data directory (default: $SPANBANK_CACHE/server or ~/.cache/spanbank/server).",
)


@click.group()
def server():
    """The local Label Studio (own venv, SQLite, bound to 127.0.0.1).

    Example:

    \b
        spanbank server start && eval "$(spanbank server env)"
    """


@server.command()
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: a free one).")
@data_dir_option
@quiet_option
@json_option
def start(port, data_dir, quiet, as_json):
    """Start the local Label Studio (installing it on first use), or reuse a running one.

    Example:

    \b
        spanbank server start --port 8080
    """
    from spanbank import server as srv

    if not quiet and not as_json:
        click.echo("starting Label Studio (the first start installs it and takes a minute)...", err=True)
    with errors_as_click():
        info = srv.start(port=port, data_dir=data_dir)
    if as_json:
        echo_json(info.as_dict())
        return
    if quiet:
        return
    click.echo(f"Label Studio {'already running' if info.reused else 'running'} at {info.url} (pid {info.pid})")
    click.echo(f"log in as {info.admin_email}; the password is in {info.env_file}")
    click.echo(f"API URL and key: {info.env_file} (commands use it when LABEL_STUDIO_* are unset)")
    click.echo(f"log: {info.log_file}")


@server.command()
@data_dir_option
@quiet_option
def stop(data_dir, quiet):
    """Stop the local Label Studio this tool started.

    Example:

    \b
        spanbank server stop
    """
    from spanbank import server as srv

    with errors_as_click():
        stopped = srv.stop(data_dir)
    if not quiet:
        click.echo("stopped" if stopped else "no local Label Studio was running")


@server.command()
@data_dir_option
@json_option
def status(data_dir, as_json):
    """Say whether the local Label Studio runs, and where.

    Example:

    \b
        spanbank server status --json
    """
    from spanbank import server as srv

    with errors_as_click():
        info = srv.status(data_dir)
    if as_json:
        echo_json({"running": info is not None, **(info.as_dict() if info else {})})
    elif info is None:
        click.echo("not running (start it with `spanbank server start`)")
    else:
        click.echo(f"running at {info.url} (pid {info.pid}); data in {info.data_dir}")
    if info is None:
        raise click.exceptions.Exit(3)


@server.command()
@data_dir_option
def env(data_dir):
    """Print `export LABEL_STUDIO_URL=... LABEL_STUDIO_API_KEY=...` lines for a shell.

    Example:

    \b
        eval "$(spanbank server env)"
    """
    from spanbank import server as srv

    values = srv.read_env_file(srv.env_file_path(data_dir))
    if not values.get(srv.ENV_URL):
        raise click.ClickException("no local Label Studio env file; run `spanbank server start`")
    for name in (srv.ENV_URL, srv.ENV_KEY):
        click.echo(f"export {name}={shlex.quote(values.get(name, ''))}")


@server.command()
@click.argument("old_url")
@click.argument("new_url")
@wait_option
@json_option
@click.pass_obj
def move(obj, old_url, new_url, wait, as_json):
    """Tell the corpus a Label Studio server moved: its records at OLD_URL now name NEW_URL.

    A pull finds a moved server by itself (by its identity, not its URL); use this when the
    old URL was recorded before that, or to fix the records without reaching the server.

    \b
    Example:
        spanbank server move http://old-host:8080 https://labels.example.org
    """
    from spanbank.identity import move_server

    with errors_as_click():
        out = move_server(obj.corpus, old_url, new_url, wait=wait)
    if as_json:
        echo_json(out)
    else:
        changed = ", ".join(f"{k} {v}" for k, v in out["changed"].items()) or "nothing"
        click.echo(f"moved {out['from']} -> {out['to']} (rows rewritten: {changed})")
