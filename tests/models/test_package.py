"""Tests for the model package: manifest, hashes, signature enforcement through LoadedModel."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LinearRegression, LogisticRegression

import segue
from segue.data.frames import dataset_digest, to_frame
from segue.errors import IntegrityError, InvalidArgument
from segue.models.package import (
    MANIFEST,
    LoadedModel,
    Manifest,
    build_package,
    load_package,
    read_manifest,
    sha256_file,
    verify_files,
)
from segue.models.signature import SchemaWarning

COLUMNS = ["radius", "texture", "smoothness"]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, [0, 1, 4]]
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return pd.DataFrame(X, columns=COLUMNS), np.where(y == 1, "benign", "malignant")


@pytest.fixture(scope="module")
def classifier(data) -> LogisticRegression:
    X, y = data
    return LogisticRegression().fit(X, y)


def package(model, tmp_path: Path, **kwargs) -> tuple[Manifest, Path]:
    directory = tmp_path / "package"
    return build_package(model, directory, **kwargs), directory


@pytest.fixture
def loaded(classifier, data, tmp_path) -> LoadedModel:
    X, _ = data
    _, directory = package(classifier, tmp_path, input_example=X.head(5), reference_data=X)
    return load_package(directory, source="test")


# -- predicting through the signature -------------------------------------------------------


def test_predict_on_a_frame_an_array_and_records(loaded, classifier, data):
    X, _ = data
    expected = classifier.predict(X)
    np.testing.assert_array_equal(loaded.predict(X), expected)
    np.testing.assert_array_equal(loaded.predict(X.to_numpy()), expected)
    np.testing.assert_array_equal(loaded.predict(X.to_dict(orient="records")), expected)
    np.testing.assert_array_equal(loaded.predict(X[COLUMNS[::-1]]), expected)


def test_a_missing_column_is_invalid_and_named(loaded, data):
    X, _ = data
    with pytest.raises(InvalidArgument, match="missing column 'texture' \\(expected float64\\)"):
        loaded.predict(X.drop(columns="texture"))
    records = X.drop(columns="smoothness").head(3).to_dict(orient="records")
    with pytest.raises(InvalidArgument, match="'smoothness'"):
        loaded.predict_proba(records)


def test_an_extra_column_warns_at_the_callers_line_and_is_dropped(loaded, classifier, data):
    X, _ = data
    with pytest.warns(SchemaWarning, match="extra column\\(s\\) 'customer_id'") as caught:
        predicted = loaded.predict(X.assign(customer_id=np.arange(len(X))))
    with pytest.warns(SchemaWarning) as caught_proba:
        loaded.predict_proba(X.assign(customer_id=1).head(2))
    np.testing.assert_array_equal(predicted, classifier.predict(X))
    # The warning points at this test's lines, not at Segue's own code.
    assert [w.filename for w in [*caught, *caught_proba]] == [__file__, __file__]


def test_a_category_column_is_read_by_its_values_as_the_server_reads_them(tmp_path):
    frame = pd.DataFrame({"city": ["Oslo", "Lima", "Oslo"], "n": [1, 2, 3]})
    build_package(_CityModel(), tmp_path / "pkg", input_example=frame)
    model = load_package(tmp_path / "pkg", source="test", trust=True)

    as_category = frame.assign(city=frame["city"].astype("category"))

    assert model.predict(as_category).tolist() == model.predict(frame).tolist() == [4, 4, 4]


class _CityModel:
    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return X["city"].str.len().to_numpy() + X["n"].to_numpy() * 0


def test_ints_are_widened_to_the_floats_the_model_takes(loaded, classifier, data):
    X, _ = data
    ints = X.round().astype("int64")
    np.testing.assert_array_equal(loaded.predict(ints), classifier.predict(ints.astype(float)))
    np.testing.assert_array_equal(
        loaded.predict([{"radius": 1, "texture": 0, "smoothness": -1}]),
        classifier.predict(pd.DataFrame([[1.0, 0.0, -1.0]], columns=COLUMNS)),
    )


def test_a_wrong_dtype_is_invalid(loaded):
    with pytest.raises(InvalidArgument, match="column 'radius' expected float64, got string"):
        loaded.predict([{"radius": "big", "texture": 0.1, "smoothness": 0.2}])


def test_a_classifier_predicts_probabilities_and_records_its_classes(loaded, classifier, data):
    X, _ = data
    np.testing.assert_array_equal(loaded.predict_proba(X), classifier.predict_proba(X))
    assert loaded.classes == ["benign", "malignant"]
    assert loaded.signature.classes == ("benign", "malignant")
    assert loaded.flavor == "sklearn"


def test_a_regressor_has_no_predict_proba(data, tmp_path):
    X, _ = data
    model = LinearRegression().fit(X, X["radius"] * 2)
    _, directory = package(model, tmp_path, input_example=X.head(3))
    loaded = load_package(directory, source="models:/size/1")
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))
    assert loaded.classes is None
    with pytest.raises(InvalidArgument, match="models:/size/1: its sklearn flavor has no predict"):
        loaded.predict_proba(X)


def test_without_an_input_example_there_is_no_signature(classifier, data, tmp_path):
    X, _ = data
    manifest, directory = package(classifier, tmp_path)
    assert manifest.signature is None
    assert not (directory / "input_example.json").exists()
    loaded = load_package(directory, source="test")
    assert loaded.signature is None and loaded.classes is None
    np.testing.assert_array_equal(loaded.predict(X), classifier.predict(X))


# -- the manifest ---------------------------------------------------------------------------


def test_the_manifest_lists_every_file_with_its_hash(classifier, data, tmp_path):
    X, _ = data
    manifest, directory = package(classifier, tmp_path, input_example=X.head(5), reference_data=X)
    on_disk = sorted(
        p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()
    )
    assert sorted([*manifest.files, MANIFEST]) == on_disk
    assert set(manifest.files) == {
        "model/model.skops",
        "input_example.json",
        "reference_profile.json",
        "reference_sample.parquet",
    }
    for rel, meta in manifest.files.items():
        assert meta == {
            "sha256": sha256_file(directory / rel),
            "size": (directory / rel).stat().st_size,
        }
    assert read_manifest(directory) == manifest
    assert Manifest.from_json((directory / MANIFEST).read_bytes(), "x") == manifest
    assert (manifest.flavor, manifest.framework, manifest.pickle_based) == (
        "sklearn",
        "scikit-learn",
        False,
    )
    assert manifest.format == "segue-model/1"
    assert manifest.python_version and manifest.created_at > 0
    example = json.loads((directory / "input_example.json").read_text())
    assert example["columns"] == COLUMNS and len(example["data"]) == 5


def test_requirements_are_pinned(classifier, tmp_path):
    manifest, _ = package(classifier, tmp_path)
    pins = dict(r.split("==") for r in manifest.requirements)
    assert all(version for version in pins.values())
    assert pins["scikit-learn"] == metadata.version("scikit-learn")
    assert pins["skops"] == metadata.version("skops")
    assert pins["numpy"] == metadata.version("numpy")
    assert pins["segue"] == segue.__version__
    # Fitted on a DataFrame, and given one by its signature: it cannot predict without pandas.
    assert pins["pandas"] == metadata.version("pandas")


def test_pandas_is_required_only_when_the_model_takes_frames(tmp_path):
    X = np.arange(12.0).reshape(6, 2)
    on_arrays = LinearRegression().fit(X, X.sum(axis=1))
    on_frame = LinearRegression().fit(pd.DataFrame(X, columns=["a", "b"]), X.sum(axis=1))

    tensor = build_package(on_arrays, tmp_path / "arrays", input_example=X[:2])
    no_example = build_package(on_frame, tmp_path / "frame")

    assert not any(r.startswith("pandas==") for r in tensor.requirements)
    assert f"pandas=={metadata.version('pandas')}" in no_example.requirements


def test_reference_data_is_profiled_and_its_digest_recorded(classifier, data, tmp_path):
    X, _ = data
    manifest, directory = package(classifier, tmp_path, reference_data=X)
    assert manifest.reference == {
        "digest": dataset_digest(to_frame(X)),
        "n_rows": len(X),
        "n_columns": 3,
    }
    profile = json.loads((directory / "reference_profile.json").read_text())
    assert json.dumps(profile)  # strict JSON
    assert "reference_profile.json" in manifest.files
    manifest, directory = package(classifier, tmp_path / "bare")
    assert manifest.reference is None
    assert not (directory / "reference_profile.json").exists()


def test_run_and_data_sets_are_recorded(classifier, tmp_path):
    datasets = [
        {"name": "churn", "context": "train", "digest": "1" * 64},
        {"name": "churn", "context": "test", "digest": "2" * 64},
    ]
    manifest, directory = package(classifier, tmp_path, run_id="abc123", datasets=datasets)
    assert manifest.run_id == "abc123"
    assert manifest.datasets == datasets
    assert read_manifest(directory).datasets == datasets


def test_an_input_example_the_model_cannot_predict_on_is_invalid(classifier, tmp_path):
    bad = pd.DataFrame({"a": [1.0]})
    with pytest.raises(InvalidArgument, match="input_example: the model could not predict"):
        package(classifier, tmp_path, input_example=bad)


@pytest.mark.parametrize(
    "example",
    [
        np.array([[1.0, np.nan], [np.inf, 2.0]]),
        [[1.0, float("nan")], [float("inf"), 2.0]],
    ],
    ids=["array", "lists"],
)
def test_missing_values_in_an_input_example_are_written_as_null(example, tmp_path):
    def row_sums(X):
        return np.nansum(np.asarray(X, dtype=float), axis=1)

    package(row_sums, tmp_path, input_example=example)
    written = json.loads((tmp_path / "package" / "input_example.json").read_text())
    assert written == [[1.0, None], [None, 2.0]]


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b"{}", b'{"format": "segue-model/0"}', b'{"format": "segue-model/1"}'],
    ids=["text", "list", "empty", "old-format", "missing-fields"],
)
def test_a_malformed_manifest_is_invalid(raw):
    with pytest.raises(InvalidArgument, match="where: not a Segue model manifest"):
        Manifest.from_json(raw, "where")


def test_a_manifest_with_unknown_fields_is_invalid(classifier, tmp_path):
    manifest, _ = package(classifier, tmp_path)
    data = json.loads(manifest.to_json()) | {"surprise": 1}
    with pytest.raises(InvalidArgument, match="not a Segue model manifest"):
        Manifest.from_json(json.dumps(data).encode(), "where")


# -- integrity ------------------------------------------------------------------------------


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_tampered_file_is_refused_by_name(classifier, tmp_path):
    manifest, directory = package(classifier, tmp_path)
    flip_a_byte(directory / "model" / "model.skops")
    with pytest.raises(IntegrityError, match=r"model file 'model/model.skops' does not match"):
        verify_files(directory, manifest)
    with pytest.raises(IntegrityError, match=r"'model/model.skops'"):
        load_package(directory, source="test")


def test_a_truncated_or_missing_file_is_refused(classifier, data, tmp_path):
    X, _ = data
    manifest, directory = package(classifier, tmp_path, input_example=X.head(2))
    example = directory / "input_example.json"
    example.write_bytes(example.read_bytes()[:-1])
    with pytest.raises(IntegrityError, match=r"'input_example.json'"):
        verify_files(directory, manifest)
    example.unlink()
    with pytest.raises(IntegrityError, match=r"'input_example.json' is missing"):
        load_package(directory, source="test")


def test_the_manifest_must_be_the_one_expected(classifier, tmp_path):
    _, directory = package(classifier, tmp_path)
    digest = hashlib.sha256((directory / MANIFEST).read_bytes()).hexdigest()
    assert load_package(directory, source="t", manifest_digest=digest).flavor == "sklearn"
    with pytest.raises(IntegrityError, match="differs from the sha256:000000000000 recorded"):
        load_package(directory, source="t", manifest_digest="0" * 64)
    with pytest.raises(InvalidArgument, match=r"no segue-model.json"):
        load_package(tmp_path, source="t")


class Doubler:
    def predict(self, X):
        return np.asarray(X) * 2


def test_pickle_based_packages_need_trust_unless_verified(tmp_path):
    manifest, directory = package(Doubler(), tmp_path)
    assert manifest.pickle_based is True
    with pytest.raises(InvalidArgument, match=r"pickle-based .* trust=True"):
        load_package(directory, source="./doubler")
    assert load_package(directory, source="t", trust=True).predict([[1, 2]]).tolist() == [[2, 4]]
    assert load_package(directory, source="t", verified=True).predict([[3]]).tolist() == [[6]]
    # Trust does not excuse tampering.
    flip_a_byte(directory / "model" / "model.pkl")
    with pytest.raises(IntegrityError):
        load_package(directory, source="t", trust=True)
