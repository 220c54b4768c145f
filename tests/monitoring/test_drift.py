"""Drift of logged windows against a model's reference: unseen values, configs, end to end."""

from __future__ import annotations

import dataclasses
import importlib
import json
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import segue
from segue.errors import InvalidArgument
from segue.monitoring.drift import (
    DriftConfig,
    ReferenceData,
    assess,
    compare,
    config_from_options,
    logged_window,
    verdict,
)
from segue.monitoring.service import Monitor
from segue.registry.service import get_registry
from segue.serving.predlog import PredictionLog, PredictionRecord


def training(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.normal(50_000, 8_000, n),
            "plan": rng.choice(["basic", "pro", "team"], n, p=[0.5, 0.3, 0.2]),
        }
    )


@pytest.fixture(scope="module")
def reference() -> ReferenceData:
    return ReferenceData.from_frame(training())


def by_name(features):
    return {f.feature: f for f in features}


# -- compare (pure) ----------------------------------------------------------------------------


def test_same_distribution_does_not_drift(reference):
    features, prediction = compare(reference, training(800, seed=1), None)
    assert not any(f.drifted for f in features)
    assert prediction is None
    assert [f.test for f in features] == ["ks", "ks", "chi2"]


def test_large_windows_use_wasserstein_and_jensen_shannon(reference):
    features, _ = compare(reference, training(3000, seed=2), None)
    assert [f.test for f in features] == ["wasserstein", "wasserstein", "jensenshannon"]
    assert not any(f.drifted for f in features)


def test_a_shifted_feature_drifts_alone(reference):
    current = training(800, seed=3)
    current["age"] += 8
    features = by_name(compare(reference, current, None)[0])
    assert features["age"].drifted and features["age"].p_value < 1e-6
    assert not features["income"].drifted and not features["plan"].drifted


def test_unseen_values_are_reported(reference):
    current = training(500, seed=4)
    current.loc[:9, "plan"] = "enterprise"
    current.loc[:2, "age"] = -50.0
    current.loc[3:6, "age"] = 500.0
    current.loc[7:8, "income"] = np.nan
    features = by_name(compare(reference, current, None)[0])
    assert features["plan"].unseen["new_categories"] == ["enterprise"]
    assert features["age"].unseen == {
        "new_categories": [],
        "below_min": 3,
        "above_max": 4,
        "new_missing": 0,
    }
    assert features["income"].unseen["new_missing"] == 2
    assert features["income"].n_current == 498


def test_missing_values_are_not_new_when_the_reference_had_some():
    frame = training(1000)
    frame.loc[:5, "age"] = np.nan
    frame.loc[:5, "plan"] = None
    reference = ReferenceData.from_frame(frame)
    current = training(300, seed=5)
    current.loc[:3, ["age", "plan"]] = None
    features = by_name(compare(reference, current, None)[0])
    assert features["age"].unseen["new_missing"] == 0
    assert features["plan"].unseen["new_missing"] == 0


def test_a_column_missing_from_the_window_drifts_as_all_missing(reference):
    current = training(300, seed=6).drop(columns=["income"])
    income = by_name(compare(reference, current, None)[0])["income"]
    assert income.drifted and income.n_current == 0 and income.unseen["new_missing"] == 300


def test_categories_beyond_the_profiles_top_are_not_new_if_the_sample_saw_them():
    rng = np.random.default_rng(7)
    values = [f"c{i}" for i in range(30)]
    reference = ReferenceData.from_frame(pd.DataFrame({"city": rng.choice(values, 3000)}))
    assert reference.columns["city"]["other_count"] > 0  # only the top 20 are profiled
    current = pd.DataFrame({"city": [*values, "brand-new"]})
    (city,), _ = compare(reference, current, None)
    assert city.unseen["new_categories"] == ["brand-new"]


def _with_ties_and_nans(n: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "smooth": rng.normal(shift, 1, n),
            "rounded": np.round(rng.normal(shift, 1, n), 1),
            "counts": rng.poisson(3 + shift, n).astype(np.float64),
        }
    )
    for column in frame.columns:
        frame.loc[rng.random(n) < 0.03, column] = np.nan
    return frame


@pytest.mark.parametrize("rows", [900, 30_000])
def test_ks_and_chi2_verdicts_are_scipys_on_the_same_samples(rows):
    from scipy import stats as sstats

    from segue.data.profile import bin_counts

    reference = ReferenceData.from_frame(_with_ties_and_nans(20_000, 0, 0.0))
    for shift in (0.0, 0.03, 0.3):
        current = _with_ties_and_nans(rows, 1, shift)
        for test in ("ks", "chi2"):
            config = DriftConfig(methods=dict.fromkeys(current.columns, test))
            for feature in compare(reference, current, None, config)[0]:
                new = current[feature.feature].to_numpy()
                new = new[np.isfinite(new)]
                if test == "ks":
                    old = reference.sample[feature.feature].to_numpy()
                    expected = sstats.ks_2samp(old[np.isfinite(old)], new)
                else:
                    histogram = reference.columns[feature.feature]["histogram"]
                    table = [histogram["counts"], bin_counts(new, histogram["edges"])]
                    expected = sstats.chi2_contingency(np.array(table), correction=False)
                assert feature.statistic == pytest.approx(expected.statistic, rel=1e-12)
                assert feature.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
                assert feature.drifted == (expected.pvalue < 0.05)
                assert feature.n_current == len(new)


def test_a_large_window_gets_the_same_report_on_threads_as_on_one(monkeypatch):
    # The package exports the function compare, which hides its module's name.
    compare_module = importlib.import_module("segue.monitoring.drift.compare")
    data = _with_ties_and_nans(20_000, 2, 0.0).assign(plan=training(20_000)["plan"])
    labels = (data["smooth"].fillna(0) > 0).to_numpy()
    reference = ReferenceData.from_frame(data, predictions=labels[:5000])
    current = _with_ties_and_nans(300_000, 3, 0.05).assign(plan=training(300_000)["plan"])
    logged = np.empty(len(current), dtype=object)
    logged[:] = (current["smooth"].fillna(0) > 1.0).tolist()
    config = DriftConfig(methods={"rounded": "ks", "counts": "chi2"})
    threaded = compare(reference, current, logged, config)
    monkeypatch.setattr(compare_module, "_THREADED_VALUES", 10**18)
    assert compare(reference, current, logged, config) == threaded
    features, prediction = threaded
    assert [f.feature for f in features] == ["smooth", "rounded", "counts", "plan"]
    assert prediction is not None and prediction.drifted


def test_methods_and_thresholds_are_configurable(reference):
    current = training(800, seed=8)
    config = DriftConfig(methods={"age": "psi", "plan": "jensenshannon"}, psi=0.0001)
    features = by_name(compare(reference, current, None, config)[0])
    assert features["age"].test == "psi" and features["age"].threshold == 0.0001
    assert features["age"].drifted  # any sampling noise exceeds so low a threshold
    assert features["plan"].test == "jensenshannon" and features["plan"].p_value is None


def test_a_numeric_only_test_on_a_category_is_refused(reference):
    with pytest.raises(InvalidArgument, match=r"'plan'.*unknown test 'ks'"):
        compare(reference, training(100), None, DriftConfig(methods={"plan": "ks"}))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"numeric_large": "magic"}, "numeric_large: unknown test 'magic'"),
        ({"p_value": 1.5}, "p_value"),
        ({"psi": -1.0}, "psi"),
        ({"share": 0.0}, "share"),
        ({"large_threshold_rows": 0}, "large_threshold_rows"),
    ],
)
def test_bad_configs_are_refused(changes, message):
    with pytest.raises(InvalidArgument, match=message):
        DriftConfig(**changes)


def test_config_from_cli_options():
    config = config_from_options(["age=psi"], ["psi=0.1", "share=0.3", "large_threshold_rows=50"])
    assert config.methods == {"age": "psi"}
    assert (config.psi, config.share, config.large_threshold_rows) == (0.1, 0.3, 50)
    with pytest.raises(InvalidArgument, match="COLUMN=TEST"):
        config_from_options(["age"], [])
    with pytest.raises(InvalidArgument, match="unknown name"):
        config_from_options([], ["speed=1"])
    with pytest.raises(InvalidArgument, match="not a number"):
        config_from_options([], ["psi=high"])


def test_prediction_drift_of_labels_and_numbers():
    frame = training(2000)
    labels = (frame["age"] > 40).astype(int).to_numpy()
    reference = ReferenceData.from_frame(frame, predictions=labels)
    _, same = compare(reference, frame.head(500), labels[:500].astype(object), DriftConfig())
    assert same.kind == "categorical" and not same.drifted
    _, flipped = compare(reference, frame.head(500), np.ones(500, dtype=object), DriftConfig())
    assert flipped.drifted
    scores = ReferenceData.from_frame(frame, predictions=frame["age"].to_numpy() / 100)
    _, shifted = compare(scores, frame.head(500), frame["age"].to_numpy()[:500] / 50, DriftConfig())
    assert shifted.kind == "numeric" and shifted.test == "ks" and shifted.drifted


def test_the_verdict_says_what_drifted_before_the_data_set_rule(reference):
    current = training(800, seed=3)
    current["age"] += 8
    report = assess(reference, current, None, DriftConfig())
    assert verdict(report) == (
        "1 of 3 features drifted: age",
        "No data set drift (the rule: >= 50% of features drifted; here 33%)",
    )
    current["income"] *= 1.5
    both = assess(reference, current, None, DriftConfig(share=0.6))
    assert verdict(both)[0] == "2 of 3 features drifted: age, income"
    assert verdict(both)[1] == "Data set drift (the rule: >= 60% of features drifted; here 67%)"
    calm = assess(reference, training(800, seed=1), None, DriftConfig())
    assert verdict(calm)[0] == "0 of 3 features drifted"


def test_a_verdict_names_at_most_ten_features_and_counts_the_rest():
    rng = np.random.default_rng(0)
    wide = pd.DataFrame({f"f{i:02d}": rng.normal(0, 1, 500) for i in range(30)})
    shifted = wide.copy() + 5.0
    report = assess(ReferenceData.from_frame(wide), shifted, None, DriftConfig())
    what, rule = verdict(report)
    assert what.startswith("30 of 30 features drifted: f00, f01,")
    assert what.endswith("f09 and 20 more")
    assert rule == "Data set drift (the rule: >= 50% of features drifted; here 100%)"


def test_old_packages_fall_back_to_the_histogram(reference):
    old = ReferenceData(columns=reference.columns)
    current = training(800, seed=9)
    current["income"] *= 1.2
    features = by_name(compare(old, current, None)[0])
    assert features["income"].drifted and not features["age"].drifted


# -- end to end --------------------------------------------------------------------------------

T0 = 1_750_000_000.0


def _records(frame: pd.DataFrame, model, t0: float, version: str = "1"):
    rows = frame.to_dict(orient="records")
    outputs = model.predict(frame[["age", "income"]]).tolist()
    for i in range(0, len(rows), 10):  # 10 rows a request
        yield PredictionRecord(
            f"r{t0}-{i}",
            t0 + i / 100,
            "churn",
            version,
            "primary",
            rows[i : i + 10],
            outputs[i : i + 10],
            1.0,
            200,
        )


@pytest.fixture
def monitor(segue_env) -> Monitor:
    return Monitor(get_registry(), segue_env.artifact_uri)


@pytest.fixture
def served(segue_env):
    """churn v1 logged with reference data; a normal hour at T0, a shifted one at T0 + 3600."""
    data = training(4000)
    labels = (data["age"] + np.random.default_rng(1).normal(0, 5, len(data)) > 40).astype(int)
    model = LogisticRegression(max_iter=1000).fit(data[["age", "income"]], labels)

    class Wrapped:
        """The model takes the plan column too (and ignores it)."""

        def predict(self, X):
            return model.predict(pd.DataFrame(X)[["age", "income"]])

    with segue.start_run(experiment="churn") as run:
        run.log_model(
            Wrapped(), input_example=data.head(5), reference_data=data, register_as="churn"
        )
    log = PredictionLog(segue_env.artifact_uri)
    for record in _records(training(1500, seed=11), model, T0):
        log.append(record)
    shifted = training(1500, seed=12)
    shifted["income"] += 6_000
    for record in _records(shifted, model, T0 + 3600):
        log.append(record)
    canary = training(50, seed=13)
    canary["age"] += 100
    for record in _records(canary, model, T0 + 10):
        log.append(dataclasses.replace(record, role="canary"))
    log.flush()
    return segue_env


def test_the_package_holds_a_sample_and_reference_predictions(served, monitor):
    reference = monitor.reference(monitor.resolve("models:/churn/1"))
    assert reference.sample is not None and len(reference.sample) == 4000
    assert list(reference.sample.columns) == ["age", "income", "plan"]
    assert reference.predictions["kind"] == "categorical"
    assert len(reference.predictions["sample"]) == 4000
    assert reference.notes == ()
    assert json.dumps(reference.predictions)


def test_the_window_explodes_logged_rows(served):
    frame, predictions = logged_window(served.artifact_uri, "churn", "1", start=T0, end=T0 + 3600)
    assert len(frame) == 1500 == len(predictions)  # the canary is left out
    assert list(frame.columns) == ["age", "income", "plan"]


def test_drift_report_flags_the_shifted_feature_only(served, monitor):
    normal = monitor.drift("models:/churn/1", start=T0, end=T0 + 3600)
    assert normal.n_rows == 1500 and normal.version == "1" and normal.model == "churn"
    assert not any(f.drifted for f in normal.features) and not normal.drifted
    assert normal.prediction is not None and not normal.prediction.drifted
    shifted = monitor.drift("churn", start=T0 + 3600)
    assert [f.feature for f in shifted.features if f.drifted] == ["income"]
    assert shifted.drift_share == pytest.approx(1 / 3) and not shifted.drifted
    assert shifted.features[1].test == "wasserstein"  # 1,500 rows: a large window


def test_an_empty_window_is_a_clear_error(served, monitor):
    with pytest.raises(InvalidArgument, match=r"no predictions logged for churn .* between"):
        monitor.drift("churn", start=time.time(), end=None)


def test_a_package_without_reference_data_is_a_clear_error(segue_env, monitor):
    with segue.start_run(experiment="bare") as run:
        run.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), register_as="bare")
    with pytest.raises(InvalidArgument, match="reference_data"):
        monitor.drift("bare")


def test_an_alias_move_during_a_report_cannot_mix_versions(served, alias_moves_after_first_resolve):
    registry = get_registry()
    data = training(4000, seed=20)
    data["income"] += 20_000  # version 2 was trained on richer customers
    with segue.start_run(experiment="churn") as run:
        run.log_model(
            LogisticRegression().fit(data[["age", "income"]], data["age"] > 40),
            input_example=data[["age", "income"]].head(5),
            reference_data=data[["age", "income"]],
            register_as="churn",
        )
    registry.set_alias("churn", "champion", 1)
    log = PredictionLog(served.artifact_uri)
    for i in range(0, 200, 10):  # version 2's traffic in the same hour
        rows = data[["age", "income"]].iloc[i : i + 10].to_dict(orient="records")
        log.append(
            PredictionRecord(f"v2-{i}", T0 + 5 + i, "churn", "2", "primary", rows, [1] * 10, 1, 200)
        )
    log.close()
    moving = alias_moves_after_first_resolve(registry, "churn")

    report = Monitor(moving, served.artifact_uri).drift("churn@champion", start=T0, end=T0 + 3600)

    assert moving.versions == [1]  # resolved once, before the alias moved
    assert registry.resolve("models:/churn@champion").version == 2  # it did move
    assert report.version == "1" and report.n_rows == 1500  # version 1's reference and traffic
    assert [f.feature for f in report.features] == ["age", "income", "plan"]
    assert not report.drifted


# --- the logged window's frame --------------------------------------------------------------


def test_window_frame_reads_split_and_record_inputs_in_order():
    from segue.monitoring.drift import window_frame

    inputs = [
        '{"dataframe_split":{"columns":["a","b"],"data":[[1.0,2.0],[3.0,null]]}}',
        '{"dataframe_split":{"columns":["a","b"],"data":[[5.0,6.0]]}}',
        '[{"a":7.0,"b":8.0}]',
        '{"dataframe_split":{"columns":["b","a"],"data":[[10.0,9.0]]}}',
        # outputs do not line up: left out
        '{"dataframe_split":{"columns":["a","b"],"data":[[11.0,12.0]]}}',
        # a row narrower than its columns
        '{"dataframe_split":{"columns":["a","b"],"data":[[13.0]]}}',
    ]
    outputs = ["[0,1]", "[1]", "[0]", "[1]", "[0,1]", "[0]"]

    frame, predictions = window_frame(inputs, outputs)

    assert list(frame.columns) == ["a", "b"]
    assert frame["a"].tolist() == [1.0, 3.0, 5.0, 7.0, 9.0, 13.0]
    np.testing.assert_array_equal(frame["b"], [2.0, np.nan, 6.0, 8.0, 10.0, np.nan])
    assert frame["a"].dtype == np.float64
    assert predictions.tolist() == [0, 1, 1, 0, 1, 0]


def test_logged_inputs_read_back_as_records():
    from segue.monitoring.segments import decode_inputs

    split = '{"dataframe_split":{"columns":["a","b"],"data":[[1,2],[3,4]]}}'
    # A record of someone else's that only looks like the split shape stays as it was.
    alike = '{"columns":["a","b"],"data":[[1,2]]}'
    texts = [split, '[{"a":5}]', None, '{"columns":1}', alike]

    assert decode_inputs(texts).tolist() == [
        [{"a": 1, "b": 2}, {"a": 3, "b": 4}],
        [{"a": 5}],
        None,
        {"columns": 1},
        {"columns": ["a", "b"], "data": [[1, 2]]},
    ]
