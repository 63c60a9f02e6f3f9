"""`spanbank server`: start, stop and inspect the local Label Studio."""

from __future__ import annotations

import shlex
import sys
import time
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
    """The local Label Studio (own venv, SQLite, 127.0.0.1 only, no telemetry).

    Example:

    \b
        spanbank server start && eval "$(spanbank server env)"
        spanbank server add-user ana@example.org
    """


@server.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port (default: the one it used last time, else a free one).",
)
@data_dir_option
@quiet_option
@json_option
def start(port, data_dir, quiet, as_json):
    """Start the local Label Studio (installing it on first use), or reuse a running one.

    Example:

    \b
        spanbank server start
        spanbank server start --port 8080 --data-dir ./ls-data
    """
    from spanbank.labelstudio import server as srv

    with errors_as_click():
        info = srv.start(
            port=port, data_dir=data_dir, progress=None if quiet or as_json else _elapsed_printer()
        )
    if as_json:
        echo_json(info.as_dict())
        return
    if quiet:
        return
    click.echo(
        f"Label Studio {'already running' if info.reused else 'running'} at {info.url} (pid {info.pid})"
    )
    if info.port_changed:
        click.echo(
            "note: it runs on another port than last time, so its URL changed; push and pull "
            "follow it",
            err=True,
        )
    click.echo(
        f"log in as {info.admin_email}; password: `spanbank server password{_dir_arg(data_dir)}`"
    )
    click.echo(f"add annotators: `spanbank server add-user EMAIL{_dir_arg(data_dir)}`")
    if data_dir is None:
        click.echo(
            f"API URL and key: {info.env_file} (commands use it when LABEL_STUDIO_* are unset)"
        )
    else:  # commands look for the default server only: point them at this one
        click.echo(
            f"API URL and key: {info.env_file}; for commands to use this server: "
            f'eval "$(spanbank server env{_dir_arg(data_dir)})"'
        )
    click.echo(f"log: {info.log_file}")


def _elapsed_printer():
    """A progress callback printing `[  12 s] message` on stderr, timed from the first call."""
    t0 = time.monotonic()

    def say(message: str) -> None:
        click.echo(f"[{time.monotonic() - t0:4.0f} s] {message}...", err=True)

    return say


def _dir_arg(data_dir) -> str:
    return f" --data-dir {shlex.quote(str(data_dir))}" if data_dir else ""


@server.command()
@data_dir_option
@quiet_option
def stop(data_dir, quiet):
    """Stop the local Label Studio this tool started.

    Example:

    \b
        spanbank server stop
    """
    from spanbank.labelstudio import server as srv

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
    from spanbank.labelstudio import server as srv

    with errors_as_click():
        info = srv.status(data_dir)
    if as_json:
        echo_json({"running": info is not None, **(info.as_dict() if info else {})})
    elif info is None:
        click.echo("not running (start it with `spanbank server start`)")
    else:
        click.echo(f"running at {info.url} (pid {info.pid}); data in {info.data_dir}")
    if info is None:
        # SystemExit, not click's Exit: `main` runs click with standalone_mode=False, where
        # click turns Exit into a return value and the process would exit 0
        sys.exit(3)


@server.command("add-user")
@click.argument("email")
@data_dir_option
@json_option
def add_user(email, data_dir, as_json):
    """Create an annotator account and print its one-time password.

    Open signup is off: this is how annotators get in (or send them the invite link from
    Label Studio's Organization page). Give them the password privately; they can change it
    under Account & Settings.

    Example:

    \b
        spanbank server add-user ana@example.org
    """
    from spanbank.labelstudio import server as srv

    with errors_as_click():
        user = srv.add_user(email, data_dir)
    if as_json:
        echo_json({"email": user.email, "password": user.password, "login_url": user.login_url})
        return
    click.echo(f"created {user.email}; log in at {user.login_url}")
    click.echo(f"one-time password (shown once, not stored): {user.password}")


@server.command()
@data_dir_option
def password(data_dir):
    """Print the admin's password (log in as admin@localhost).

    Example:

    \b
        spanbank server password
    """
    from spanbank.labelstudio import server as srv

    values = srv.read_env_file(srv.env_file_path(data_dir))
    if not values.get("LABEL_STUDIO_PASSWORD"):
        raise click.ClickException("no local Label Studio env file; run `spanbank server start`")
    click.echo(values["LABEL_STUDIO_PASSWORD"])


@server.command()
@data_dir_option
def env(data_dir):
    """Print `export LABEL_STUDIO_URL=... LABEL_STUDIO_API_KEY=...` lines for a shell.

    Example:

    \b
        eval "$(spanbank server env)"
    """
    from spanbank.labelstudio import server as srv

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
    NEW_URL is stored as push and pull store it: a `user:password@` in it is dropped.

    Example:

    \b
        spanbank server move http://old-host:8080 https://labels.example.org
    """
    from spanbank.labelstudio.identity import move_server

    with errors_as_click():
        out = move_server(obj.corpus, old_url, new_url, wait=wait)
    if as_json:
        echo_json(out)
    else:
        changed = ", ".join(f"{k} {v}" for k, v in out["changed"].items()) or "nothing"
        click.echo(f"moved {out['from']} -> {out['to']} (rows rewritten: {changed})")
