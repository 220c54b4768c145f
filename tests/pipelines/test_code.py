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


def step_hash(write_module, source: str, name: str) -> str:
    from pathlib import Path

    return code_hash(load_file(Path(write_module(source, name))).step)


CONSTANT = """
import segue

FACTOR = {factor!r}
UNUSED = {unused!r}

@segue.step
def step(x: int) -> int:
    return x * FACTOR
"""


def test_a_change_in_a_module_constant_the_step_reads_changes_the_hash(write_module):
    def of(factor, unused=0):
        return step_hash(write_module, CONSTANT.format(factor=factor, unused=unused), "const")

    assert of(2) == of(2)
    assert of(2) != of(3)
    assert of((1, 2)) != of((1, 3))
    assert of({"a": [1, 2]}) != of({"a": [1, 3]})
    assert of(frozenset({1})) != of(frozenset({2}))
    assert of(2, unused=1) == of(2, unused=2)  # a constant the step does not read


def test_an_instance_of_a_project_class_counts_by_its_class_source(write_module):
    source = """
    import segue

    class Scale:
        def apply(self, x):
            return x * {factor}

    SCALE = Scale()

    @segue.step
    def step(x: int) -> int:
        return SCALE.apply(x)
    """
    assert step_hash(write_module, source.format(factor=2), "inst") != step_hash(
        write_module, source.format(factor=3), "inst"
    )


def test_closed_over_values_and_functions_change_the_hash(write_module):
    source = """
    import segue

    def make(factor):
        def helper(x):
            return x + {inc}

        def inner(x: int) -> int:
            return helper(x) * factor

        return inner

    step = segue.step(make({factor}))
    """

    def of(factor, inc):
        return step_hash(write_module, source.format(factor=factor, inc=inc), "closure")

    assert of(2, 1) == of(2, 1)
    assert of(2, 1) != of(3, 1)  # a closed-over value
    assert of(2, 1) != of(2, 2)  # a closed-over function


def test_a_function_reached_through_a_package_path_is_followed(write_module, tmp_path):
    from pathlib import Path

    package = tmp_path / "flows" / "deep_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from deep_pkg import sub\n")
    (package / "sub.py").write_text("LIMIT = 1\n\ndef fn(x):\n    return x - 1\n")
    flow = write_module(
        """
        import segue
        import deep_pkg

        @segue.step
        def step(x: int) -> int:
            return min(deep_pkg.sub.fn(x), deep_pkg.sub.LIMIT)
        """,
        "uses_deep",
    )

    def of() -> str:
        for name in ("deep_pkg", "deep_pkg.sub"):
            sys.modules.pop(name, None)
        return code_hash(load_file(Path(flow)).step)

    first = of()
    assert first == of()
    (package / "sub.py").write_text("LIMIT = 1\n\ndef fn(x):\n    return x - 2\n")
    second = of()
    assert second != first
    (package / "sub.py").write_text("LIMIT = 2\n\ndef fn(x):\n    return x - 2\n")
    assert of() != second
