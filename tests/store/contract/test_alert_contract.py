"""The alert store contract: firings come back as recorded, newest first, on SQLite,
PostgreSQL and REST alike (``alert_store`` in ``conftest.py``)."""

from __future__ import annotations

import math

import pytest

from segue.errors import InvalidArgument
from segue.store.alerts import AlertStore

T0 = 1_700_000_000_000

DELIVERED = [
    {"sink": "webhook", "ok": True, "attempts": 2, "error": None},
    {"sink": "command", "ok": False, "attempts": 1, "error": "exit status 3"},
]


@pytest.fixture
def store(alert_store: AlertStore) -> AlertStore:
    return alert_store


def test_a_firing_comes_back_as_recorded(store):
    recorded = store.record(
        "churn", "drift", "drift_share", 0.5, 0.3, "drift_share 0.5 > 0.3", DELIVERED, at=T0
    )
    assert recorded.id > 0
    assert (recorded.at, recorded.model, recorded.rule, recorded.signal) == (
        T0,
        "churn",
        "drift",
        "drift_share",
    )
    assert (recorded.value, recorded.threshold, recorded.message) == (
        0.5,
        0.3,
        "drift_share 0.5 > 0.3",
    )
    assert recorded.delivered == DELIVERED
    assert store.list("churn") == [recorded]


def test_firings_are_listed_newest_first_per_model_up_to_the_limit(store):
    fired = [
        store.record("churn", f"rule{k}", "error_rate", k / 10, 0.1, f"#{k}", [], at=T0 + k)
        for k in range(5)
    ]
    other = store.record("fraud", "drift", "drift_share", 1.0, 0.3, "fraud", [], at=T0)
    assert store.list("churn") == fired[::-1]
    assert store.list("churn", limit=2) == fired[:2:-1]
    assert store.list("fraud") == [other]
    assert store.list("nobody") == []


def test_a_firing_without_a_time_is_stamped_now(store):
    recorded = store.record("churn", "drift", "drift_share", 0.5, 0.3, "m", [])
    assert recorded.at > T0
    assert store.list("churn") == [recorded]


def test_a_value_that_is_not_a_number_is_recorded_as_none(store):
    for value in (math.nan, math.inf, -math.inf):
        assert store.record("churn", "drift", "psi", value, 0.2, "no data", [], at=T0).value is None
    assert [a.value for a in store.list("churn")] == [None, None, None]


@pytest.mark.parametrize("threshold", [math.nan, math.inf])
def test_a_threshold_must_be_a_finite_number(store, threshold):
    with pytest.raises(InvalidArgument, match="threshold"):
        store.record("churn", "drift", "psi", 0.5, threshold, "m", [], at=T0)
    assert store.list("churn") == []


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_must_be_positive(store, limit):
    with pytest.raises(InvalidArgument, match="limit"):
        store.list("churn", limit)
