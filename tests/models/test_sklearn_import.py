"""Loading a skops file imports skops without scikit-learn's tests and array-API backends,
and skops trusts exactly the types it trusts when imported the ordinary way."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from segue.models.flavors.sklearn import _walk_only_modules

_REPORT = """
import json, sys
{imports}
import skops.io._trusted_types as trusted
print(json.dumps({{
    "estimators": sorted(trusted.SKLEARN_ESTIMATOR_TYPE_NAMES),
    "torch": "torch" in sys.modules,
    "tests": sorted(m for m in sys.modules if m.startswith("sklearn.") and ".tests" in m),
}}))
"""


def _report(imports: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _REPORT.format(imports=imports)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.slow
def test_skops_trusts_the_same_estimators_without_importing_tests_or_torch() -> None:
    ours = _report("from segue.models.flavors.sklearn import _import_skops_io\n_import_skops_io()")
    plain = _report("import skops.io")
    assert ours["estimators"] == plain["estimators"]
    assert len(ours["estimators"]) > 100
    assert ours["tests"] == []
    assert ours["torch"] is False


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("sklearn.linear_model.tests", True),
        ("sklearn.linear_model.tests.test_logistic", True),
        ("sklearn.externals.array_api_compat.torch", True),
        ("sklearn.externals.array_api_compat.cupy", True),
        ("sklearn.externals.array_api_compat.numpy", False),
        ("sklearn.linear_model", False),
        ("sklearn.utils._testing", False),
        ("torch", False),
        ("mypkg.tests", False),
    ],
)
def test_walk_only_modules(name: str, refused: bool) -> None:
    assert _walk_only_modules(name) is refused
