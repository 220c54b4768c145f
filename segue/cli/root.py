"""The root ``segue`` command: its Typer app and options, shared by every build of the tree.

:mod:`segue.cli.app` hangs every command on it. ``segue serve`` hangs only itself
(:func:`serve_app`): an inference server that imported the other twenty command modules,
their tables and clients, would start later and hold them for nothing.
"""

from __future__ import annotations

import typer

from segue.version import __version__

__all__ = ["add_serve", "new_app", "serve_app"]


def new_app() -> typer.Typer:
    """The root app, with ``--version`` and ``--help``/``-h``, and no commands yet."""
    app = typer.Typer(
        name="segue",
        help="Segue: track experiments, register models, serve and monitor them.",
        epilog="Example: segue quickstart",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    return app


def add_serve(app: typer.Typer) -> None:
    """Add ``segue serve``."""
    from segue.cli import serve

    app.command(
        "serve", epilog="Example: segue serve models:/churn@champion --port 8000 --workers 2"
    )(serve.serve)


def serve_app() -> typer.Typer:
    """The root app with ``segue serve`` alone (what ``segue serve …`` parses with)."""
    app = new_app()
    add_serve(app)
    return app


def _version(value: bool) -> None:
    if value:
        print(f"segue {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Segue: track experiments, register models, serve and monitor them."""
