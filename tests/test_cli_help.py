"""Every command's --help: examples shown as written and parseable; shared options alike everywhere."""

from __future__ import annotations

import shlex

import click
import pytest
from click.testing import CliRunner

from spanbank.cli import cli

SHARED = ("--wait", "--quiet", "--json", "--url", "--api-key")


def _commands(group: click.Group = cli, path: tuple[str, ...] = ()):
    """(path, command) of the root group and every command and subcommand under it."""
    ctx = click.Context(group)
    if not path:
        yield (), group
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield path + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path + (name,))


def _example(help_text: str) -> list[str]:
    """The lines of the example block of a rendered --help (after `Example:`, up to a blank line)."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() in ("Example:", "Examples:"))
    block = []
    for line in lines[start + 1 :]:
        if not line.strip():
            if block:
                break
            continue
        block.append(line.strip())
    return block


def _argvs(line: str) -> list[list[str]]:
    """The spanbank invocations of one shell line: split at `&&`/`;`/`|`, redirections dropped,
    `eval "$(...)"` opened up. Every command on the line must be spanbank or eval."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    out, cmd, tokens = [], [], list(lex)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("&&", ";", "|"):
            out.append(cmd)
            cmd = []
        elif tok in (">", ">>", "<"):
            i += 1  # the redirection's target
        else:
            cmd.append(tok)
        i += 1
    out.append(cmd)
    argvs = []
    for cmd in out:
        assert cmd, f"empty command in example {line!r}"
        if cmd[0] == "eval":
            assert len(cmd) == 2 and cmd[1].startswith("$(") and cmd[1].endswith(")"), line
            argvs += _argvs(cmd[1][2:-1])
        else:
            assert cmd[0] == "spanbank", (
                f"example line {line!r} does not run spanbank (re-wrapped?)"
            )
            argvs.append(cmd[1:])
    return argvs


def _parse(argv: list[str]) -> click.Context:
    """Parse argv as `spanbank` would, down to the leaf command, without running anything."""
    ctx = click.Context(cli, info_name="spanbank")
    rest = click.Command.parse_args(cli, ctx, list(argv))
    group = cli
    while True:
        name, cmd, rest = group.resolve_command(ctx, rest)
        if not isinstance(cmd, click.Group):
            return cmd.make_context(name, rest, parent=ctx)
        ctx = click.Context(cmd, info_name=name, parent=ctx)
        rest = click.Command.parse_args(cmd, ctx, rest)
        group = cmd


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    "path", [p for p, _ in _commands()], ids=lambda p: " ".join(p) or "spanbank"
)
def test_example_is_shown_as_written_and_parses(path):
    cmd = dict(_commands())[path]
    written = _example(cmd.help.replace("\b", ""))
    shown = _example(_help(path))
    assert shown == written, f"`spanbank {' '.join(path)} --help` re-wraps its example"
    for line in shown:
        for argv in _argvs(line):
            ctx = _parse(argv)
            assert not path or cmd in _ancestors(ctx), f"{line!r} does not run `{' '.join(path)}`"


def _ancestors(ctx: click.Context):
    while ctx is not None:
        yield ctx.command
        ctx = ctx.parent


def test_a_rewrapped_example_is_caught():
    """The checks above see what a paste would run: a wrapped line is not a command."""
    with pytest.raises(AssertionError, match="re-wrapped"):
        _argvs("--preannotate rules")
    assert _argvs('spanbank server start && eval "$(spanbank server env)"') == [
        ["server", "start"],
        ["server", "env"],
    ]
    assert _argvs("spanbank schema config > config.xml") == [["schema", "config"]]
    with pytest.raises(click.MissingParameter):
        _parse(["push", "--batch-size", "200"])


def test_the_push_example_keeps_its_preannotate_option():
    ctx = _parse(_argvs(_example(_help(("push",)))[0])[0])
    assert ctx.params["preannotate"] == "rules"


@pytest.mark.parametrize("name", SHARED)
def test_shared_options_are_defined_once(name):
    """Every command taking a shared option takes the same one: same flags, same help."""
    found = {}
    for path, cmd in _commands():
        for param in cmd.params:
            if name in param.opts:
                found[path] = (tuple(param.opts), tuple(param.secondary_opts), param.help)
    assert len(found) >= 1, name
    assert len(set(found.values())) == 1, {" ".join(p): v for p, v in found.items()}


def test_quiet_has_q_everywhere():
    for path, cmd in _commands():
        for param in cmd.params:
            if "--quiet" in param.opts:
                assert "-q" in param.opts, f"spanbank {' '.join(path)}: --quiet without -q"


def test_project_option_texts_are_shared():
    """--project is one of two shared options: the target project (required) or a filter."""
    texts = {
        param.help for _, cmd in _commands() for param in cmd.params if "--project" in param.opts
    }
    assert len(texts) == 2, texts
