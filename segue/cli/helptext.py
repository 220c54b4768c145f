"""Help texts of commands, laid out for Typer's Rich help (no Rich needed to make them)."""

from __future__ import annotations

import inspect

__all__ = ["paragraphs"]


def paragraphs(text: str) -> str:
    """``text`` (a docstring) with each paragraph on one line, for a command's ``help=``.

    Typer's Rich help joins the lines of a help text's first paragraph only; the later ones
    keep the source's line breaks, so at any other width they break mid-sentence. Rich wraps
    the joined paragraphs to the terminal's width instead. A laid-out paragraph (indented
    lines, a list) is kept as it is.
    """
    return "\n\n".join(_one_line(part) for part in inspect.cleandoc(text).split("\n\n"))


def _one_line(paragraph: str) -> str:
    """A paragraph's lines joined, unless it is laid out (indented lines, a list)."""
    lines = paragraph.splitlines()
    if any(line.startswith((" ", "- ", "* ", "$ ")) for line in lines):
        return paragraph
    return " ".join(paragraph.split())
