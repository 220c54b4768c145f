"""The ``segue`` command line: ``segue <noun> <verb>``.

Errors a user can cause print one line on stderr and exit with code 2; nothing prints a
traceback unless ``SEGUE_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from segue.errors import SegueError


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    import typer

    try:
        command = _command(sys.argv[1:] if argv is None else argv)
        code = command.main(args=argv, prog_name="segue", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        _fail("aborted", 130)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            # `segue` or `segue runs` alone: the help is the message, and Rich printed it
            # already (Typer matches by name too: the class lives in its vendored click).
            print(exc.format_message(), end="")
            sys.exit(2)
        # Usage errors: a missing argument, an unknown option, a value of the wrong type.
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _fail(f"{message}{hint}", 2)
    except SegueError as exc:
        _fail(str(exc), 2)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except OSError as exc:
        # A path the user named cannot be read or written.
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}", 2)
    except Exception as exc:
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            _fail(f"cannot use the metadata database (SEGUE_STORE_URI): {reason}", 2)
        if os.environ.get("SEGUE_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set SEGUE_DEBUG=1 for details)", 1)
    sys.exit(code if isinstance(code, int) else 0)


def _command(argv: list[str]) -> Any:
    """The command tree to parse ``argv`` with.

    ``segue serve …`` needs only its own command (:func:`segue.cli.root.serve_app`): an
    inference server is spared the import of every other command and of the Rich tables
    they print with (0.1 s of CPU and 60 modules before it starts loading its model). It
    prints no table, so it needs no fresh console either; anything else gets the whole tree.
    """
    import typer

    if argv[:1] == ["serve"]:
        from segue.cli.root import serve_app

        app = serve_app()
    else:
        from segue.cli.app import app
        from segue.cli.output import use_environment

        use_environment()
    command = typer.main.get_command(app)
    _plain_flags(command)
    return command


def _plain_flags(command: Any, help_names: list[str] | None = None) -> None:
    """Show boolean flags as flags in ``--help`` (``--json``), not as ``--json <bool>``, and
    each paragraph of a command's help as one line (:func:`~segue.cli.helptext.paragraphs`).

    Typer's Rich help prints a type beside every option, flags included; an empty metavar is
    what it prints instead. ``--help`` itself is made (and kept) by click on first use, so it
    is made here, with the names the root command declares.
    """
    import click

    if help_names is None:
        help_names = command.context_settings.get("help_option_names", ["--help"])
    from segue.cli.helptext import paragraphs

    if getattr(command, "help", None):  # every command's later paragraphs wrap whole too
        command.help = paragraphs(command.help)
    help_option = command.get_help_option(click.Context(command, help_option_names=help_names))
    for param in [*getattr(command, "params", []), help_option]:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub, help_names)


def _fail(message: str, code: int) -> None:
    line = " ".join(str(message).split())
    print(f"error: {line}", file=sys.stderr)
    sys.exit(code)
