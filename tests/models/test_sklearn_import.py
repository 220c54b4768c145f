"""Loading a skops file imports skops without scikit-learn's tests and array-API backends,
and skops trusts exactly the types it trusts when imported the ordinary way."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from segue.models.flavors.sklearn import (
    _LEAN_UNLISTED,
    _Holders,
    _walk_only_modules,
    _whichmodule,
)

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


def _report(imports: str, template: str = _REPORT) -> dict:
    """What ``template`` prints (its last line, JSON) after ``imports``, in a new process."""
    out = subprocess.run(
        [sys.executable, "-c", template.format(imports=imports)],
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


_TYPE_LISTS = """
import json, sys
import fastapi, pandas, sqlalchemy.orm, scipy.special  # a server's modules, before skops
import segue.serving.server
{imports}
import skops.io._trusted_types as trusted
import skops.io._utils as utils
print(json.dumps({{
    name: sorted(value) for name, value in vars(trusted).items()
    if name.endswith("_TYPE_NAMES") and name != "SKLEARN_ESTIMATOR_TYPE_NAMES"
}} | {{
    "whichmodule": utils.whichmodule.__module__,
    "loader": type(utils.__loader__).__name__,
    "spec_loader": type(utils.__spec__.loader).__name__,
}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("lean", [False, True])
def test_the_quick_module_lookup_gives_skops_the_same_trusted_types(lean: bool) -> None:
    imports = "from segue.models.flavors import sklearn as flavor\n"
    imports += "flavor.import_lean()\n" if lean else ""
    imports += "flavor._import_skops_io()"
    ours = _report(imports, _TYPE_LISTS)
    plain = _report("import skops.io", _TYPE_LISTS)
    if lean:  # listed by name at load instead (_LEAN_UNLISTED), without sklearn.ensemble
        internal = plain["SKLEARN_INTERNAL_TYPE_NAMES"]
        assert set(internal) - set(ours["SKLEARN_INTERNAL_TYPE_NAMES"]) == _LEAN_UNLISTED
        plain["SKLEARN_INTERNAL_TYPE_NAMES"] = [n for n in internal if n not in _LEAN_UNLISTED]
    assert ours == plain
    assert len(ours["SCIPY_UFUNC_TYPE_NAMES"]) > 200
    assert ours["whichmodule"] == "skops.io._utils"  # skops' own function once imported
    assert ours["loader"] == ours["spec_loader"] == "SourceFileLoader"


@pytest.mark.parametrize("indexed", [False, True])
def test_the_quick_module_lookup_answers_as_getattr_does(monkeypatch, indexed: bool) -> None:
    import types

    import scipy.special
    from skops.io._utils import whichmodule as skops_whichmodule

    assert getattr(scipy.special.expit, "__module__", None) is None  # skops' slow case

    holders = _Holders() if indexed else None
    hidden = types.ModuleType("segue_test_hidden")  # holds `marker` behind __getattr__
    marker = object()
    hidden.__getattr__ = lambda name: marker if name == "marker" else None  # type: ignore
    plain = types.ModuleType("segue_test_plain")
    plain.marker = marker  # type: ignore[attr-defined]
    plain.expit = scipy.special.expit  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "segue_test_hidden", hidden)
    monkeypatch.setitem(sys.modules, "segue_test_plain", plain)

    class Nameless:
        __module__ = None

    def same(obj: object, name: str) -> str:
        ours = _whichmodule(obj, name, skops_whichmodule, holders)
        assert ours == skops_whichmodule(obj, name)
        return ours

    assert same(marker, "marker") == "segue_test_hidden"
    assert same(scipy.special.expit, "expit") not in ("segue_test_plain", "__main__")
    assert same(Nameless(), "nowhere") == "__main__"


def test_the_module_index_follows_modules_loaded_and_values_moved(monkeypatch) -> None:
    import types

    from skops.io._utils import whichmodule as skops_whichmodule

    class Nameless:
        __module__ = None

    value = Nameless()
    holders = _Holders()
    first = types.ModuleType("segue_test_first")
    second = types.ModuleType("segue_test_second")
    monkeypatch.setitem(sys.modules, "segue_test_first", first)

    def found() -> str:
        ours = _whichmodule(value, "value", skops_whichmodule, holders)
        assert ours == skops_whichmodule(value, "value")
        return ours

    assert found() == "__main__"  # the index is built here
    first.value = value  # type: ignore[attr-defined]
    assert found() == "segue_test_first"  # set since, no load: the full scan answers
    del first.value  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "segue_test_second", second)
    second.value = value  # type: ignore[attr-defined]
    assert found() == "segue_test_second"  # a module loaded since: the index is rebuilt
    first.value = value  # type: ignore[attr-defined]
    second.value = None  # type: ignore[attr-defined]
    assert found() == "segue_test_first"  # moved without a load: the full scan answers


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


_LEAN_LOAD = """
import json, sys
from pathlib import Path
from segue.models.flavors import FLAVORS
from segue.models.flavors.sklearn import import_lean
import_lean()
details = json.loads(sys.argv[2])
try:
    model = FLAVORS["sklearn"].load(Path(sys.argv[1]), details)
    outcome = {"predict": model.predict([[0.0, 1.0], [3.0, 2.0]]).tolist()}
except Exception as exc:
    outcome = {"error": f"{type(exc).__name__}: {exc}"}
import skops.io._trusted_types as trusted
outcome["listed"] = len(trusted.SKLEARN_ESTIMATOR_TYPE_NAMES)
outcome["walked"] = "sklearn.gaussian_process" in sys.modules
outcome["ensemble"] = "sklearn.ensemble" in sys.modules
print(json.dumps(outcome))
"""


def _lean_load(path, details: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _LEAN_LOAD, str(path), json.dumps(details)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.splitlines()[-1])


def _saved(tmp_path, model):
    from segue.models.flavors import FLAVORS

    return FLAVORS["sklearn"].save(
        model.fit([[0, 1], [1, 0], [2, 3], [3, 2]], [0, 0, 1, 1]), tmp_path
    )


@pytest.mark.slow
def test_a_lean_server_loads_a_pipeline_without_listing_every_estimator(tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    saved = _saved(tmp_path, make_pipeline(StandardScaler(), LogisticRegression()))
    outcome = _lean_load(tmp_path, saved.details)
    assert outcome == {"predict": [0, 1], "listed": 0, "walked": False, "ensemble": False}


@pytest.mark.slow
def test_a_lean_server_loads_a_hist_gradient_boosting_model(tmp_path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=5, min_samples_leaf=1)
    saved = _saved(tmp_path, model)
    outcome = _lean_load(tmp_path, saved.details)
    assert outcome["predict"] == model.predict([[0.0, 1.0], [3.0, 2.0]]).tolist()
    assert outcome["ensemble"] is True  # imported for the model, not for skops' lists


@pytest.mark.slow
def test_a_lean_server_still_refuses_a_type_not_recorded(tmp_path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    saved = _saved(tmp_path, DecisionTreeClassifier())
    assert saved.details["trusted"] == ["sklearn.tree._tree.Tree"]
    assert "predict" in _lean_load(tmp_path, saved.details)
    refused = _lean_load(tmp_path, {**saved.details, "trusted": []})
    assert "Untrusted types" in refused["error"] and "sklearn.tree._tree.Tree" in refused["error"]


@pytest.mark.slow
def test_the_lean_rule_trusts_exactly_the_estimators_skops_lists() -> None:
    code = """
import inspect, json, sys
import skops.io._trusted_types as trusted
from sklearn.base import BaseEstimator
from segue.models.flavors.sklearn import _skops_default_estimator
names = set()
for name, module in list(sys.modules.items()):
    if name.startswith("sklearn") and module is not None:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseEstimator) and cls.__module__.startswith("sklearn"):
                names.add(f"{cls.__module__}.{cls.__name__}")
names.update(["sklearn.tree._tree.Tree", "os.system", "sklearn.nothing.Here"])
print(json.dumps({
    "listed": sorted(trusted.SKLEARN_ESTIMATOR_TYPE_NAMES),
    "ours": sorted(n for n in names if _skops_default_estimator(n)),
}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.splitlines()[-1])
    assert found["ours"] == found["listed"]
    assert len(found["listed"]) > 100
