"""Shared CLI pieces: progress bars on stderr that `--quiet` silences, and error conversion."""

from __future__ import annotations

import contextlib
import json
import sys

import click

from spanbank.errors import SpanbankError

# options several commands share, each defined here once (as sqlite-utils' output_options)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="Print no progress or summary.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
wait_option = click.option(
    "--wait", is_flag=True, help="Wait for another spanbank process to release the corpus instead of failing."
)
url_option = click.option("--url", default=None, help="Label Studio URL (default: $LABEL_STUDIO_URL, then the local server).")
key_option = click.option("--api-key", default=None, help="API key (default: $LABEL_STUDIO_API_KEY, then the local server).")
project_option = click.option("--project", required=True, help="Label Studio project title (push creates it only with --create).")
project_filter_option = click.option("--project", help="Only annotations of this project.")


@contextlib.contextmanager
def errors_as_click():
    """Turn a SpanbankError into `Error: <one line>` and exit code 1."""
    try:
        yield
    except SpanbankError as exc:
        raise click.ClickException(str(exc)) from None


@contextlib.contextmanager
def resume_on_interrupt(command: str):
    """Turn Ctrl-C into one line saying how to resume `spanbank <command>`, and exit code 130."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo(f"Interrupted: what was already stored is kept; run the same `spanbank {command}` "
                   "again to resume.", err=True)
        sys.exit(130)  # not click's Exit: `spanbank.cli.main` runs click with standalone_mode off


class Progress:
    """A rich progress bar on stderr, or nothing when quiet or stderr is not a terminal."""

    def __init__(self, quiet: bool = False):
        self.enabled = not quiet and sys.stderr.isatty()
        self._progress = None
        self._tasks: dict[str, int] = {}

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(console=Console(stderr=True), transient=True)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, stage: str, done: int, total: int | None = None) -> None:
        if self._progress is None:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=total)
        self._progress.update(self._tasks[stage], completed=done, total=total)


def echo_json(data) -> None:
    """Print JSON with NaN as null (undefined figures stay visible as null, not 0)."""
    click.echo(json.dumps(_nan_to_none(data), indent=2, sort_keys=True, default=str))


def _nan_to_none(obj):
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def echo_summary(summary: dict, quiet: bool, as_json: bool) -> None:
    """Print a summary dict as JSON or as `key: value` lines."""
    if as_json:
        echo_json(summary)
    elif not quiet:
        for key, value in summary.items():
            if isinstance(value, (list, dict)) and not value:
                continue
            if isinstance(value, list):
                click.echo(f"{key}:")
                for item in value:
                    click.echo(f"  - {_scalar(item)}")
            elif isinstance(value, dict):
                click.echo(f"{key}: " + ", ".join(f"{k} {_scalar(v)}" for k, v in value.items()))
            else:
                click.echo(f"{key}: {_scalar(value)}")


def _scalar(value):
    """A summary value as JSON writes it when Python's spelling differs (true, false, null)."""
    if value is None or isinstance(value, bool) or (isinstance(value, float) and value != value):
        return json.dumps(_nan_to_none(value))
    return value
