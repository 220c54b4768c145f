"""Drift speed: Segue's ``compare`` vs Evidently's DataDriftPreset, measured in one run.

Data: a seeded reference and current frame of N rows x 20 numeric features (default 1,000,000);
5 features of the current frame are shifted or rescaled. Segue compares the current frame with
the reference as a model package stores it (the profile of all N reference rows plus a 5,000-row
sample, built once at log time and timed separately); Evidently gets both full frames. Segue is
told to use, per column, the test Evidently picked, and the per-feature verdicts are compared.
Then every feature by each test: KS and chi-square also run through SciPy (``ks_2samp``,
``chi2_contingency``) on the same samples, whose verdicts Segue must give; the floor is one
NumPy sort of every current column. Last, the step before a report of a model's traffic:
reading the window back from the prediction log's JSON, as the server logs it (columns and
rows) and as records (timed once each; --skip-window skips it).

Run in the bench environment (Evidently 0.7 needs pandas<3):
    pip install evidently "pandas<3" && python benchmarks/monitoring.py
Without Evidently the script says so and runs the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import time

import numpy as np
import pandas as pd

FEATURES = 20
#: feature -> (shift in standard deviations, scale factor)
CHANGES = {
    "f00": (0.3, 1.0),
    "f03": (0.5, 1.0),
    "f07": (1.0, 1.0),
    "f11": (0.0, 1.6),
    "f15": (-0.4, 1.2),
}
_EVIDENTLY_TESTS = {
    "wasserstein distance (normed)": "wasserstein",
    "k-s p_value": "ks",
    "jensen-shannon distance": "jensenshannon",
    "chi-square p_value": "chi2",
    "psi": "psi",
}


def make_data(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(FEATURES)]
    means = rng.uniform(-5, 5, FEATURES)
    stds = rng.uniform(0.5, 3, FEATURES)
    reference = pd.DataFrame(rng.normal(means, stds, size=(rows, FEATURES)), columns=names)
    current = pd.DataFrame(rng.normal(means, stds, size=(rows, FEATURES)), columns=names)
    for i, name in enumerate(names):
        if name in CHANGES:
            shift, scale = CHANGES[name]
            centred = current[name] - means[i]
            current[name] = means[i] + centred * scale + shift * stds[i]
    return reference, current


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[float, dict]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current, reference)
    elapsed = time.perf_counter() - start
    verdicts = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        test = _EVIDENTLY_TESTS[re.sub(r"\s+", " ", config["method"]).strip().lower()]
        value, threshold = float(metric["value"]), float(config["threshold"])
        drifted = value < threshold if test in ("ks", "chi2") else value >= threshold
        verdicts[config["column"]] = (test, value, drifted)
    return elapsed, verdicts


def run_segue(
    reference,
    current: pd.DataFrame,
    methods: dict[str, str],
    repeat: int = 1,
    predictions: np.ndarray | None = None,
) -> tuple[tuple[float, float], dict]:
    """Best (wall, CPU) seconds of ``repeat`` drift reports (every feature's test and the data
    set verdict), end to end from the logged frame and the stored reference, and the
    per-feature results. CPU time (all threads) is printed too: on a shared machine it moves
    less with the load than the wall time does."""
    from segue.monitoring.drift import DriftConfig, assess, verdict

    config = DriftConfig(methods=methods)
    best = (math.inf, math.inf)
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        report = assess(reference, current, predictions, config)
        verdict(report)
        best = min(best, (time.perf_counter() - start, time.process_time() - cpu))
    return best, {f.feature: (f.test, f.statistic, f.p_value, f.drifted) for f in report.features}


def run_scipy(reference, current: pd.DataFrame, test: str) -> tuple[float, dict]:
    """SciPy's own test on the same samples Segue tests (the reference sample or histogram
    and every finite current value): the verdicts Segue must give, and their cost."""
    from scipy import stats as sstats

    from segue.data.profile import bin_counts

    start = time.perf_counter()
    results = {}
    for name in current.columns:
        values = current[name].to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        if test == "ks":
            old = reference.sample[name].to_numpy(dtype=np.float64)
            result = sstats.ks_2samp(old[np.isfinite(old)], values)
        else:
            histogram = reference.columns[name]["histogram"]
            table = np.array([histogram["counts"], bin_counts(values, histogram["edges"])])
            result = sstats.chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False)
        results[name] = (float(result.statistic), float(result.pvalue), result.pvalue < 0.05)
    return time.perf_counter() - start, results


def window_read(
    current: pd.DataFrame, shape: str, rows_per_request: int = 100
) -> tuple[float, float]:
    """(wall, CPU) seconds to turn the current rows, logged as the prediction log holds them
    (one JSON text per request), back into the frame and predictions a report tests: the step
    before the report when it reads a model's traffic. ``shape``: ``"split"``, what the server
    logs for one numeric block (``{"columns", "data"}``), or ``"records"`` (one object a row,
    what it logged before and what other writers may log)."""
    import orjson

    from segue.monitoring.drift import window_frame

    inputs, outputs = [], []
    columns = list(current.columns)
    values = np.ascontiguousarray(current.to_numpy())
    for i in range(0, len(current), rows_per_request):
        if shape == "split":
            rows = values[i : i + rows_per_request]
            text = orjson.dumps(
                {"dataframe_split": {"columns": columns, "data": rows}},
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
        else:
            text = orjson.dumps(current.iloc[i : i + rows_per_request].to_dict(orient="records"))
        inputs.append(text.decode())
        outputs.append(orjson.dumps([0] * min(rows_per_request, len(current) - i)).decode())
    start, cpu = time.perf_counter(), time.process_time()
    window_frame(inputs, outputs)
    return time.perf_counter() - start, time.process_time() - cpu


def sort_floor(current: pd.DataFrame, repeat: int) -> float:
    """Best time of ``repeat`` single-threaded sorts of every current column: what an exact
    KS costs at the least on one core."""
    columns = [current[name].to_numpy() for name in current.columns]
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        for values in columns:
            np.sort(values)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="Segue runs (best is reported)")
    parser.add_argument(
        "--skip-window", action="store_true", help="do not time reading the logged window"
    )
    args = parser.parse_args()

    from segue.monitoring.drift import ReferenceData

    reference, current = make_data(args.rows)
    print(f"{args.rows:,} rows x {FEATURES} numeric features; shifted: {', '.join(CHANGES)}")
    print(f"load average (1, 5, 15 min): {_load()}")

    start = time.perf_counter()
    stored = ReferenceData.from_frame(reference)
    print(
        f"segue reference (profile + 5,000-row sample, once at log time): "
        f"{time.perf_counter() - start:.2f} s"
    )

    try:
        evidently_s, evidently = run_evidently(reference, current)
    except ImportError:
        evidently_s, evidently = math.nan, {}
        print(
            "Evidently is not importable here (pip install evidently 'pandas<3' in a bench "
            "environment to compare): its run is left out and Segue uses its own test choice"
        )
    methods = {name: test for name, (test, _, _) in evidently.items()}
    segue_s, segue = run_segue(stored, current, methods, args.repeat)

    if evidently:
        print(f"\n{'feature':8} {'test':12} {'segue':>10} {'evidently':>10}  verdicts")
        agree = 0
        for name in reference.columns:
            test, ours, _, our_drift = segue[name]
            _, theirs, their_drift = evidently[name]
            same = our_drift == their_drift
            agree += same
            mark = "DRIFT" if our_drift else "ok"
            print(
                f"{name:8} {test:12} {ours:10.4f} {theirs:10.4f}  {mark:5} "
                f"{'same' if same else 'DIFFERENT (evidently: ' + str(their_drift) + ')'}"
            )
        print(f"verdicts agree with Evidently on {agree}/{FEATURES} features")

    floor_s = sort_floor(current, args.repeat)
    width = 56
    title = f"Segue drift report, end to end (best of {args.repeat})"
    print(f"\n{title:{width}} wall s (CPU s)")
    label = "  tests as Evidently picks them" if evidently else "  default tests"
    print(f"{label:{width}} {_times(segue_s)}   ({segue[next(iter(segue))][0]})")
    with_predictions, logged = _with_predictions(stored, current)
    seconds, _ = run_segue(with_predictions, current, methods, args.repeat, logged)
    print(f"{label + ' + label predictions':{width}} {_times(seconds)}")
    for test in ("ks", "chi2", "psi", "jensenshannon", "wasserstein"):
        seconds, ours = run_segue(
            stored, current, dict.fromkeys(current.columns, test), args.repeat
        )
        line = f"{'  every feature by ' + test:{width}} {_times(seconds)}"
        if test in ("ks", "chi2"):
            scipy_s, theirs = run_scipy(stored, current, test)
            agree = sum(ours[name][3] == theirs[name][2] for name in current.columns)
            exact = sum(
                ours[name][1] == theirs[name][0] and ours[name][2] == theirs[name][1]
                for name in current.columns
            )
            line += (
                f"   SciPy on the same samples {scipy_s:6.3f} s ({scipy_s / seconds[0]:.1f}x); "
                f"verdicts agree {agree}/{FEATURES}, statistic and p-value identical "
                f"{exact}/{FEATURES}"
            )
        print(line)
    print(f"{'floor: np.sort of every column, one thread':{width}} {floor_s:7.3f}")
    if not args.skip_window:
        for shape in ("split", "records"):
            seconds = window_read(current, shape)
            label = f"reading the window from logged JSON, {shape} (once)"
            print(f"{label:{width}} {_times(seconds)}")
    if evidently:
        print(f"{'Evidently DataDriftPreset':{width}} {evidently_s:7.2f}")
        print(f"ratio: Segue is {evidently_s / segue_s[0]:.1f}x faster than Evidently")
    print(f"load average (1, 5, 15 min): {_load()}")


def _with_predictions(stored, current: pd.DataFrame):
    """The reference with a classifier's labels on its sample, and the labels of the current
    rows as a logged window holds them (Python objects)."""
    from segue.data.profile import prediction_profile

    def labels(frame: pd.DataFrame) -> np.ndarray:
        return (frame["f01"].to_numpy() > frame["f02"].to_numpy()).astype(np.int64)

    logged = np.empty(len(current), dtype=object)
    logged[:] = labels(current).tolist()
    profile = prediction_profile(labels(stored.sample))
    return dataclasses.replace(stored, predictions=profile), logged


def _times(seconds: tuple[float, float]) -> str:
    return f"{seconds[0]:7.3f} ({seconds[1]:.3f})"


def _load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
