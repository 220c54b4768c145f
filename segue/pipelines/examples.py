"""A retraining pipeline shipped with Segue: ``segue quickstart``'s breast-cancer model,
trained again on its original training data plus the recent traffic whose labels came back.

``segue quickstart --loop`` runs it as the retraining step of a closed loop; run it by hand
with ``segue pipeline run segue.pipelines.examples:retrain_breast_cancer``.

Example:
    >>> from segue.pipelines import run_pipeline
    >>> run_pipeline("segue.pipelines.examples:retrain_breast_cancer", {"since": "1h"}).status
    'FINISHED'
"""

from __future__ import annotations

# At run time, not only for type checkers: the runtime reads the annotations of the steps.
import pandas as pd

from segue.pipelines.spec import Model, pipeline, step

#: The registered model ``segue quickstart`` trains.
MODEL = "breast-cancer"
#: The label column of the training frames.
TARGET = "target"
#: The regularisation strengths the retraining pipeline chooses among.
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)


def breast_cancer_split() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) frames of scikit-learn's breast-cancer data with a ``target`` column:
    the split ``segue quickstart`` selects its champion on, so metrics compare."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer(as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, stratify=data.target, random_state=0
    )
    return X_train.assign(**{TARGET: y_train}), X_test.assign(**{TARGET: y_test})


@step
def original() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The original training and test sets."""
    return breast_cancer_split()


@step(cache=False)  # the log grows between runs with the same params: always read it again
def recent(model: str, since: str) -> pd.DataFrame:
    """The rows ``model`` answered in the last ``since`` that got a feedback label."""
    from segue.pipelines.fresh import labelled_predictions

    fresh = labelled_predictions(model, since=since, label=TARGET)
    print(f"{len(fresh)} labelled rows of {fresh.attrs['predictions']} predicted since {since}")
    return fresh


@step
def combine(train: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """The original training set with the fresh rows appended."""
    return pd.concat([train, fresh[list(train.columns)]], ignore_index=True)


@step
def fit(data: pd.DataFrame, test: pd.DataFrame, folds: int = 5) -> Model:
    """A scaler + logistic regression fitted on ``data``, its ``C`` chosen among
    :data:`C_GRID` by ``folds``-fold cross-validated ROC AUC. Its metrics on ``test`` (the
    champion's test set, so the gates compare like with like) are logged to the step's run,
    where the promotion gates read them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from segue.tracking import fluent

    X, y = data.drop(columns=TARGET), data[TARGET]
    X_test, y_test = test.drop(columns=TARGET), test[TARGET]
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        {"logisticregression__C": list(C_GRID)},
        scoring="roc_auc",
        cv=StratifiedKFold(folds, shuffle=True, random_state=0),
    ).fit(X, y)
    clf = search.best_estimator_
    proba = clf.predict_proba(X_test)[:, 1]
    fluent.log_param("C", search.best_params_["logisticregression__C"])
    fluent.log_metrics(
        {
            "roc_auc": float(roc_auc_score(y_test, proba)),
            "accuracy": float(accuracy_score(y_test, proba >= 0.5)),
            "f1": float(f1_score(y_test, proba >= 0.5)),
            "cv_roc_auc": float(search.best_score_),
            "train_rows": float(len(data)),
        }
    )
    return Model(clf, input_example=X_test.iloc[:5], reference_data=X)


@pipeline(experiment="quickstart")
def retrain_breast_cancer(
    model: str = MODEL, since: str = "1h", alert_id: int | None = None
) -> Model:
    """Retrain ``model`` on the original data plus the labelled traffic of the last
    ``since``; ``alert_id`` is the alert that started it, when a loop did (recorded as a
    param of the run)."""
    train, test = original()
    return fit(combine(train, recent(model, since)), test)
