"""The `spanbank` command line: a thin click skin; each command calls one library function."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from spanbank import __version__, arrowpool, malloctrim
from spanbank.corpus.store import Corpus, default_corpus_dir
from spanbank.errors import SpanbankError

# command name -> module under spanbank.cli defining a click command of that name
COMMANDS = {
    "init": "init",
    "ingest": "ingest",
    "status": "status",
    "schema": "schema",
    "server": "server",
    "push": "push",
    "pull": "pull",
    "agree": "agree",
    "adjudicate": "adjudicate",
    "export": "export",
    "preannotate": "preannotate",
    "annotators": "annotators",
    "doctor": "doctor",
    "watch": "watch",
    "log": "log",
    "sql": "sql",
    "compact": "compact",
    "migrate": "migrate",
    "train": "train",
    "ml-backend": "mlbackend",
}


@dataclass
class Context:
    corpus: Corpus
    quiet: bool = False


class LazyGroup(click.Group):
    """Loads a command's module only when it runs, so `spanbank --help` stays fast."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def invoke(self, ctx):
        """Run the command; an OS error (read-only, disk full, ...) becomes one line, not a traceback."""
        from spanbank.cli._common import os_error_message

        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # `spanbank sql ... | head`: click ends it quietly (exit 1)
            raise
        except OSError as exc:
            raise click.ClickException(os_error_message(exc)) from None

    def get_command(self, ctx, name):
        mod = COMMANDS.get(name)
        if mod is None:
            return None
        module = importlib.import_module(f"spanbank.cli.{mod}")
        return getattr(module, name.replace("-", "_"))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--corpus",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Corpus directory (default: $SPANBANK_CORPUS or ./corpus).",
)
@click.version_option(__version__, prog_name="spanbank")
@click.pass_context
def cli(ctx, corpus):
    """spanbank: annotated news corpora of speakers, quotes, cues and events, with Label Studio.

    Example:

    \b
        spanbank init && spanbank ingest seeds/ && spanbank push --project news --create
    """
    ctx.obj = Context(Corpus(corpus or default_corpus_dir()))


def main() -> None:
    """Entry point: run the CLI, turning library errors into one line and exit code 1."""
    from spanbank.cli._common import interruption, sigterm_as_interrupt

    arrowpool.use()
    malloctrim.tune()
    sigterm_as_interrupt()
    try:
        code = cli.main(standalone_mode=False, prog_name="spanbank")
        if isinstance(code, int) and code:
            sys.exit(code)  # without standalone mode click returns a command's exit code
    except click.exceptions.Abort:  # click's word for a Ctrl-C (or SIGTERM) in a command
        word, code = interruption()
        click.echo("Aborted." if code == 130 else f"{word}.", err=True)
        sys.exit(1 if code == 130 else code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SpanbankError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        word, code = interruption()
        click.echo(f"{word}; re-run the command to continue where it stopped.", err=True)
        sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
