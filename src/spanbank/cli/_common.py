"""Shared CLI pieces: progress bars on stderr that `--quiet` silences, and error conversion."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import signal
import sys

import click

from spanbank.errors import SpanbankError
from spanbank.progress import Event

# options several commands share, each defined here once (as sqlite-utils' output_options)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="Print no progress or summary.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
wait_option = click.option(
    "--wait",
    is_flag=True,
    help="Wait for another spanbank process to release the corpus instead of failing.",
)
url_option = click.option(
    "--url",
    default=None,
    help="Label Studio URL (default: $LABEL_STUDIO_URL, then the local server).",
)
key_option = click.option(
    "--api-key",
    default=None,
    help="API key (default: $LABEL_STUDIO_API_KEY, then the local server).",
)
project_option = click.option(
    "--project",
    required=True,
    help="Label Studio project title (push creates it only with --create).",
)
as_of_option = click.option(
    "--as-of",
    "as_of",
    default=None,
    metavar="COMMIT|TIME",
    help="Read the corpus as it was at this commit (`spanbank log` lists them) or time.",
)
project_filter_option = click.option("--project", help="Only annotations of this project.")


CORES = "$SPANBANK_WORKERS, else this process, then this machine's cores if the work is big"


def engine_options(f=None, *, default: str = CORES):
    """--workers and --scheduler: where a heavy stage runs (spanbank.parallel). `default` says
    what --workers defaults to (`@engine_options(default="1 ...")` for an opt-in stage)."""
    if f is None:
        return lambda g: engine_options(g, default=default)
    f = click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Run on this Dask cluster (tcp://HOST:8786; default: $DASK_SCHEDULER_ADDRESS).",
    )(f)
    return click.option(
        "--workers",
        type=click.IntRange(1),
        default=None,
        help=f"Local worker processes (default: {default}; 1 runs in this process).",
    )(f)


@contextlib.contextmanager
def errors_as_click():
    """Turn a SpanbankError into `Error: <one line>` and exit code 1."""
    try:
        yield
    except SpanbankError as exc:
        raise click.ClickException(str(exc)) from None


@contextlib.contextmanager
def resume_on_interrupt(command: str):
    """Turn Ctrl-C (or SIGTERM) into one line saying how to resume `spanbank <command>`, and exit
    code 130 (143)."""
    try:
        yield
    except KeyboardInterrupt:
        word, code = interruption()
        click.echo(
            f"{word}: what was already stored is kept; run the same `spanbank {command}` "
            "again to resume.",
            err=True,
        )
        sys.exit(code)  # not click's Exit: `spanbank.cli.main` runs click with standalone_mode off


_TERMINATED = []  # holds True once SIGTERM arrived


def sigterm_as_interrupt() -> None:
    """Let SIGTERM (`kill`, `timeout`, a service manager's stop) end a command the way Ctrl-C
    does: temp files and folders removed, a local Dask cluster stopped, a watch's webhook taken
    down. A second SIGTERM ends the process at once. Left alone when SIGTERM is handled already."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum, frame):
        _TERMINATED.append(True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)


def interruption() -> tuple[str, int]:
    """How the command was stopped, and the exit code a shell gives for it (128 + the signal)."""
    return ("Terminated", 143) if _TERMINATED else ("Interrupted", 130)


# what to do about an OS error, by errno; `{path}` is the file it concerns
_OS_ADVICE = {
    errno.EROFS: "{path} is on a read-only file system; commands that only read the corpus "
    "(status, agree, export) work, to change it make it writable or copy it elsewhere",
    errno.EACCES: "permission denied for {path}; check its owner and mode (ls -l) or run as its owner",
    errno.EPERM: "operation not permitted on {path}; check its owner and mode (ls -l) or run as its owner",
    errno.ENOSPC: "no space left on the device holding {path}; free some space and run the command "
    "again (the corpus keeps its last complete state)",
    errno.EDQUOT: "disk quota exceeded writing {path}; free some space and run the command again "
    "(the corpus keeps its last complete state)",
    errno.EFBIG: "{path} grew past the largest file allowed here (see `ulimit -f` and the file "
    "system's limit); raise the limit or write elsewhere, then run the command again",
    errno.ENAMETOOLONG: "file name too long: {path}; use a shorter path or name",
    errno.ENOENT: "no such file or directory: {path}",
    errno.ENOTDIR: "not a directory: {path}",
    errno.EISDIR: "is a directory, not a file: {path}",
    errno.EMFILE: "too many open files; raise `ulimit -n` and run the command again",
    errno.EIO: "input/output error on {path}; the disk or network file system failed, check it",
}
_ERRNO_IN_TEXT = re.compile(r"\[errno (\d+)\]", re.IGNORECASE)


def os_error_message(exc: OSError) -> str:
    """One line for an OS error: what happened, to which file, and what to do.

    pyarrow's own file errors carry no errno attribute, only `[Errno N]` in their text.
    """
    code = exc.errno
    if code is None:
        m = _ERRNO_IN_TEXT.search(str(exc))
        code = int(m.group(1)) if m else None
    path = exc.filename if exc.filename is not None else _path_in_text(str(exc))
    advice = _OS_ADVICE.get(code)
    if advice is not None:
        return advice.format(path=os.fsdecode(path) if path is not None else "a file")
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    return f"{reason}: {os.fsdecode(path)}" if path is not None else reason


def _path_in_text(text: str) -> str | None:
    """The file a pyarrow error names (`... file 'x' ...` / `... x: ...`), if any."""
    m = re.search(r"'([^']+)'", text)
    return m.group(1) if m else None


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

    def update(self, event: Event) -> None:
        """Draw one progress event (a bar per stage)."""
        if self._progress is None:
            return
        stage, done, total = event
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


class FiniteRange(click.FloatRange):
    """click's FloatRange without nan and inf (nan compares false with both bounds)."""

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if not math.isfinite(value):
            self.fail(f"{value} is not a finite number", param, ctx)
        return value
