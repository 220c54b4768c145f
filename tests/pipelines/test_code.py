"""Code hashes: a step's source plus the project code it calls, transitively."""

from __future__ import annotations

import json
import sys

from segue.pipelines.code import code_hash, is_project_file
from segue.pipelines.targets import load_file

STEP = """
import json
import segue
{imports}

def helper(x):
    return x + {inc}

def outer_helper(x):
    return helper(x) * 2

@segue.step
def step(x: int) -> int:
    return json.loads(json.dumps(outer_helper(x))) + {own}
"""


def hash_of(write_module, *, inc=1, own=0, imports="", name="mod") -> str:
    path = write_module(STEP.format(inc=inc, own=own, imports=imports), name)
    from pathlib import Path

    return code_hash(load_file(Path(path)).step)


def test_the_same_code_gives_the_same_hash(write_module):
    assert hash_of(write_module) == hash_of(write_module)


def test_a_change_in_the_step_changes_the_hash(write_module):
    assert hash_of(write_module, own=0) != hash_of(write_module, own=1)


def test_a_change_in_a_helper_called_through_another_changes_the_hash(write_module):
    assert hash_of(write_module, inc=1) != hash_of(write_module, inc=2)


def test_a_helper_module_called_by_attribute_is_followed(write_module, tmp_path):
    from pathlib import Path

    helpers = write_module("def clean(x):\n    return x - 1\n", "helpers_attr")
    flow = write_module(
        """
        import segue
        import helpers_attr

        @segue.step
        def step(x: int) -> int:
            return helpers_attr.clean(x)
        """,
        "uses_attr",
    )
    first = code_hash(load_file(Path(flow)).step)
    Path(helpers).write_text("def clean(x):\n    return x - 2\n")
    sys.modules.pop("helpers_attr")
    second = code_hash(load_file(Path(flow)).step)
    assert first != second


def test_a_helper_imported_by_name_is_followed(write_module):
    from pathlib import Path

    helpers = write_module("def clean(x):\n    return x - 1\n", "helpers_name")
    flow = write_module(
        """
        import segue
        from helpers_name import clean

        @segue.step
        def step(x: int) -> int:
            return clean(x)
        """,
        "uses_name",
    )
    first = code_hash(load_file(Path(flow)).step)
    Path(helpers).write_text("def clean(x):\n    return x - 3\n")
    sys.modules.pop("helpers_name")
    assert code_hash(load_file(Path(flow)).step) != first


def test_library_code_is_not_project_code():
    assert not is_project_file(json.__file__)
    import pandas

    assert not is_project_file(pandas.__file__)
    import segue

    assert not is_project_file(segue.__file__)
    assert is_project_file(__file__)
    assert not is_project_file(None)
    assert not is_project_file("<stdin>")
