"""``segue monitor drift``: the drift table, JSON and user errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import segue
from segue.cli.monitor import window_bounds
from segue.errors import InvalidArgument
from segue.serving.predlog import PredictionLog, PredictionRecord

#: The registry is touched, but the behaviour under test is the CLI's: SQLite is enough.
sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)

T0 = 1_750_000_000.0


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"age": rng.normal(40, 10, n), "plan": rng.choice(["basic", "pro"], n, p=[0.7, 0.3])}
    )


@pytest.fixture
def served(segue_env):
    data = frame(2000, 0)
    model = LogisticRegression().fit(data[["age"]], (data["age"] > 40).astype(int))

    class AgeOnly:
        def predict(self, X):
            return model.predict(pd.DataFrame(X)[["age"]])

    with segue.start_run(experiment="churn") as run:
        run.log_model(
            AgeOnly(), input_example=data.head(3), reference_data=data, register_as="churn"
        )
    live = frame(400, 1)
    live["age"] += 15
    live.loc[:4, "plan"] = "enterprise"
    log = PredictionLog(segue_env.artifact_uri)
    rows = live.to_dict(orient="records")
    outputs = model.predict(live[["age"]]).tolist()
    for i in range(0, len(rows), 4):
        log.append(
            PredictionRecord(
                f"r{i}",
                T0 + i,
                "churn",
                "1",
                "primary",
                rows[i : i + 4],
                outputs[i : i + 4],
                1,
                200,
            )
        )
    log.flush()
    return segue_env


@sqlite_only
def test_drift_prints_a_table_and_the_verdict(cli, served):
    result = cli("monitor", "drift", "models:/churn/1", "--start", str(T0))
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    age = next(line for line in lines if line.strip().startswith("age"))
    assert "ks" in age and "DRIFT" in age
    plan = next(line for line in lines if line.strip().startswith("plan"))
    assert "chi2" in plan and "1 new (enterprise)" in plan
    assert any("[prediction]" in line and "DRIFT" in line for line in lines)
    # What drifted comes first, then the data set rule with its threshold.
    what = lines.index("2 of 2 features drifted: age, plan; the predictions drifted too")
    assert lines[what + 1] == "Data set drift (the rule: >= 50% of features drifted; here 100%)"


@sqlite_only
def test_drift_json(cli, served):
    report = cli(
        "monitor", "drift", "churn", "--start", "2025-06-15T00:00", "--json", "--method", "age=psi"
    ).json()
    assert report["model"] == "churn" and report["version"] == "1" and report["n_rows"] == 400
    age = report["features"][0]
    assert age["feature"] == "age" and age["test"] == "psi" and age["drifted"]
    assert report["features"][1]["unseen"]["new_categories"] == ["enterprise"]
    assert report["prediction"]["feature"] == "prediction"
    assert report["drifted"] and report["share_threshold"] == 0.5


@sqlite_only
def test_thresholds_change_the_verdict(cli, served):
    report = cli(
        "monitor", "drift", "churn", "--json", "--method", "age=psi", "--threshold", "psi=50"
    ).json()
    assert not report["features"][0]["drifted"] and report["features"][0]["threshold"] == 50


@sqlite_only
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["churn", "--since", "1h"], "no predictions logged for churn"),
        (["churn", "--since", "soon"], "--since"),
        (["churn", "--start", "yesterday"], "--start"),
        (["churn", "--since", "1h", "--start", "0"], "give one"),
        (["churn", "--method", "plan=ks"], "unknown test 'ks'"),
        (["churn", "--threshold", "psi"], "NAME=VALUE"),
        (["nosuch"], "nosuch"),
        (["runs:/0123456789abcdef0123456789abcdef/model"], "registered model"),
    ],
)
def test_errors_are_one_line(cli, served, args, message):
    line = cli("monitor", "drift", *args).error_line()
    assert message in line


def test_window_bounds():
    assert window_bounds("30m", None, None, now=10_000.0) == (8200.0, None)
    assert window_bounds(None, "100", "2024-01-01T00:00:00+00:00") == (100.0, 1704067200.0)
    with pytest.raises(InvalidArgument, match="--end"):
        window_bounds(None, "200", "100")
