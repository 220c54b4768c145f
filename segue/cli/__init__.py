"""The ``segue`` command line: ``segue <noun> <verb>``.

Errors a user can cause print one line on stderr and exit with code 2; nothing prints a
traceback unless ``SEGUE_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys

from segue.errors import SegueError


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    import typer

    from segue.cli.app import app

    try:
        code = app(args=argv, prog_name="segue", standalone_mode=False)
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


def _fail(message: str, code: int) -> None:
    line = " ".join(str(message).split())
    print(f"error: {line}", file=sys.stderr)
    sys.exit(code)
