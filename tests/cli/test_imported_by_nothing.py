"""The CLI is an edge: no module of Segue imports it (only the console script runs it).

import-linter's contract in pyproject.toml lists the packages; this walks every module, so a
new one cannot slip past the list.
"""

from __future__ import annotations

import grimp


def _is_cli(module: str) -> bool:
    return module == "segue.cli" or module.startswith("segue.cli.")


def test_no_module_outside_the_cli_imports_it():
    graph = grimp.build_graph("segue")

    importers = {
        (module, imported)
        for module in graph.modules
        if not _is_cli(module)
        for imported in graph.find_modules_directly_imported_by(module)
        if _is_cli(imported)
    }

    assert importers == set()
    assert "segue.quickstart" in graph.modules  # the walk sees the top-level modules too
