"""Fresh training data: the prediction log joined with the labels fed back."""

from __future__ import annotations

import pandas as pd
import pytest

import segue
from segue.errors import InvalidArgument
from segue.pipelines.fresh import labelled_predictions


@pytest.fixture
def logged(segue_env, ops):
    """``cancer`` v1 (champion) asked about 20 rows, one a second from T0; 15 labelled, one of
    them with a label that is not a class."""
    trained = ops.train_cancer()
    segue.get_registry().set_alias("cancer", "champion", 1)
    rows = trained.X.iloc[:20]
    ids = ops.log_predictions(
        segue_env.artifact_uri, "cancer", "1", rows, trained.pipeline.predict(rows)
    )
    labels = [int(v) for v in trained.y.iloc[:15]]
    labels[3] = 7  # not a class of the model: skipped, as monitoring skips it
    ops.log_feedback(
        segue_env.artifact_uri, "cancer", ids[:15], labels, [ops.T0 + 100 + i for i in range(15)]
    )
    return trained


def test_the_labelled_rows_come_back_as_features_and_label(logged, ops):
    fresh = labelled_predictions("models:/cancer@champion", since=ops.T0, label="target")

    kept = [i for i in range(15) if i != 3]
    expected = logged.X.iloc[kept].reset_index(drop=True)
    assert list(fresh.columns) == [*logged.X.columns, "target"]
    pd.testing.assert_frame_equal(fresh[list(logged.X.columns)], expected)
    assert fresh["target"].tolist() == [int(logged.y.iloc[i]) for i in kept]
    assert fresh.attrs == {
        "predictions": 20,
        "skipped": {"not a class of the model (0, 1)": 1},
    }
    # Ready to append to the original training set.
    original = logged.X.assign(target=logged.y)
    both = pd.concat([original, fresh], ignore_index=True)
    assert len(both) == len(original) + 14
    assert dict(both.dtypes) == dict(original.dtypes)


def test_since_takes_a_duration_back_from_now_and_until_bounds_the_window(logged, ops):
    # 5 s back from T0 + 15: rows 10..19, of which 10..14 are labelled.
    recent = labelled_predictions("cancer", since="5s", now=ops.T0 + 15)
    assert recent["label"].tolist() == [int(logged.y.iloc[i]) for i in range(10, 15)]
    window = labelled_predictions("cancer", since=ops.T0, until=ops.T0 + 5)
    assert window["label"].tolist() == [int(logged.y.iloc[i]) for i in (0, 1, 2, 4)]
    assert labelled_predictions("cancer", since=ops.T0 + 15).empty  # nothing labelled there


def test_a_pinned_version_reads_only_its_own_predictions(logged, ops, segue_env):
    ids = ops.log_predictions(
        segue_env.artifact_uri,
        "cancer",
        "2",
        logged.X.iloc[20:25],
        [0] * 5,
        start=ops.T0 + 50,
        prefix="v2-",
    )
    ops.log_feedback(segue_env.artifact_uri, "cancer", ids, [1] * 5, [ops.T0 + 200] * 5)

    assert len(labelled_predictions("models:/cancer/1")) == 14
    assert len(labelled_predictions("cancer")) == 19  # every version the log holds


def test_nothing_logged_gives_an_empty_frame_with_the_columns(segue_env, ops):
    trained = ops.train_cancer()

    fresh = labelled_predictions("models:/cancer/1")

    assert fresh.empty
    assert list(fresh.columns) == [*trained.X.columns, "label"]
    assert fresh.attrs["predictions"] == 0


def test_a_label_column_named_like_a_feature_is_refused(logged):
    with pytest.raises(InvalidArgument, match="'mean radius' is an input of cancer"):
        labelled_predictions("cancer", label="mean radius")


def test_runs_uris_and_bad_since_are_refused(logged):
    with pytest.raises(InvalidArgument, match="model URI 'runs:"):
        labelled_predictions("runs:/abc/model")
    with pytest.raises(InvalidArgument, match="--since"):
        labelled_predictions("cancer", since="yesterday")
