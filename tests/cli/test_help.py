"""Help, version and usage errors: the parts of the CLI that need no data."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest
import typer
from typer.main import get_command

import segue
from segue.cli import _plain_flags
from segue.cli.app import app


def _command_paths(command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group below ``command``, as the words that invoke it."""
    found = [path]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += _command_paths(sub, (*path, name))
    return found


COMMANDS = _command_paths(get_command(app))


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch) -> None:
    # Nothing here should touch a store; if something does, it must not be ./.segue.
    monkeypatch.setenv("SEGUE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SEGUE_STORE_URI", raising=False)
    monkeypatch.delenv("SEGUE_ARTIFACT_URI", raising=False)
    monkeypatch.chdir(tmp_path)


def test_the_walk_finds_every_level():
    assert {(), ("runs",), ("runs", "compare"), ("db", "upgrade"), ("quickstart",)} <= set(COMMANDS)
    assert len(COMMANDS) >= 14


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(("segue", *p)))
def test_every_command_has_help_with_an_example(cli, path):
    result = cli(*path, "--help")

    assert result.code == 0, result.err
    assert result.err == ""
    assert f"Usage: {' '.join(('segue', *path))}" in result.out
    assert re.search(r"Examples?: (segue|SEGUE_)", result.out)
    assert "<bool>" not in result.out  # flags show as flags: --json, not --json <bool>


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(("segue", *p)))
def test_help_prose_wraps_whole_paragraphs(cli, path):
    # At 200 columns a paragraph of the description fits on a line or fills it: a short line
    # followed by more of its paragraph is a source line break showing through. Laid-out
    # paragraphs (indented lines, lists, YAML) keep their lines.
    text = cli(*path, "--help").out
    description = text[text.index("Usage:") : text.index("╭")] if "╭" in text else text
    lines = [line[1:].rstrip() for line in description.splitlines()[1:]]
    paragraphs = "\n".join(lines).split("\n\n")
    for paragraph in paragraphs:
        rows = [row for row in paragraph.splitlines() if row]
        if any(row.startswith((" ", "-", "*", "$")) for row in rows):
            continue
        for line, following in itertools.pairwise(rows):
            assert len(line) + 1 + len(following.split()[0]) > 196, (line, following)


def test_short_help_option(cli):
    result = cli("runs", "list", "-h")

    assert result.code == 0
    assert "--order-by" in result.out


def test_version(cli):
    result = cli("--version")

    assert result.code == 0
    assert result.out.strip() == f"segue {segue.__version__}"
    assert result.err == ""


def test_no_arguments_shows_the_help(cli):
    result = cli()

    # Like Typer on its own: the help on stdout, exit code 2, and no empty "error:" line.
    assert result.code == 2
    assert "Usage: segue" in result.out
    for group in ("experiments", "runs", "artifacts", "db", "quickstart"):
        assert group in result.out
    assert result.err == ""


def test_a_group_without_a_verb_shows_its_help(cli):
    result = cli("runs")

    assert result.code == 2
    assert "Usage: segue runs" in result.out
    for verb in ("list", "show", "compare", "delete", "restore"):
        assert verb in result.out
    assert result.err == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["runs", "list", "--bogus"], "No such option: --bogus"),
        (["runs", "list", "--limit", "many"], "--limit"),
        (["runs", "list", "--limit", "0"], "--limit"),
        (["runs", "list", "--limit"], "Option '--limit' requires an argument"),
        (["runs", "show"], "Missing argument"),
        (["artifacts", "get", "3f2a9c1e", "model.pkl"], "--output"),
        (["runs", "frobnicate"], "No such command 'frobnicate'"),
        (["nope"], "No such command 'nope'"),
    ],
)
def test_usage_errors_are_one_line(cli, args, expected):
    line = cli(*args).error_line()

    assert expected in line
    if "requires an argument" not in line:  # click's parser raises that one without a context
        assert "--help`" in line  # the hint where to look


@pytest.mark.parametrize("args", [["serve", "--help"], ["serve", "--port", "-1"]])
def test_serve_alone_answers_as_the_whole_tree(cli, capsys, args):
    # `segue serve …` parses with the serve command alone (an inference server imports no
    # other command): its help and usage errors are the whole tree's, word for word.
    whole = get_command(app)
    _plain_flags(whole)
    try:
        whole.main(args=args, prog_name="segue", standalone_mode=False)
        expected = capsys.readouterr().out
    except typer.TyperException as exc:  # click's usage error, as main() words it
        expected = f"error: {exc.format_message()} (see `{exc.ctx.command_path} --help`)"

    result = cli(*args)

    assert (result.out if result.code == 0 else result.error_line()) == expected


def test_serve_imports_no_other_command():
    code = (
        "import sys\nfrom segue.cli import main\ntry:\n    main(['serve', '--port', '-1'])\n"
        "except SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('segue.cli.'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert done.stdout.split() == ["segue.cli.helptext", "segue.cli.root", "segue.cli.serve"]
