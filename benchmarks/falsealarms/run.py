"""False alarms of the multivariate drift test on unshifted real tables.

For each table, ``--splits`` random 70/30 splits: the 70 % is profiled as ``log_model`` profiles
training data, the 30 % is tested against it with ``detect_drift``'s domain classifier. Nothing is
shifted, so every ``drifted=True`` is a false alarm; their rate should stay at or below the test's
alpha within the binomial margin (the upper end of a one-sided 95 % interval under rate = alpha).
Also prints the share of splits where any per-feature test flags a column, for scale.

    .venv/bin/python benchmarks/falsealarms/run.py [--splits 100] [--tables wine,diabetes]

Then the power on shifted data (``--power-runs``): the test suite's case of a correlation no single
column shows (three N(0, 1) columns; in the current rows two of them correlated by ``rho``), smaller,
so the rate of detection says how much the calibration costs.

Tables (all offline): scikit-learn's bundled breast_cancer, diabetes, wine, digits and iris, and the
*fair* survey from statsmodels with text, category, nullable and datetime columns (the tests'
``real_table``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def tables() -> dict[str, pd.DataFrame]:
    from sklearn import datasets

    from tests.support import real_table

    found = {name: getattr(datasets, f"load_{name}")(as_frame=True).frame.drop(columns="target")
             for name in ("breast_cancer", "diabetes", "wine", "digits", "iris")}
    found["fair (text)"] = real_table(6366)[0]
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--tables", default="")
    parser.add_argument("--out", default="")
    parser.add_argument("--power-runs", type=int, default=50)
    args = parser.parse_args()

    from workbench.monitor.drift import detect_drift
    from workbench.profile import ReferenceProfile

    rows = []
    for name, table in tables().items() if args.splits else ():
        if args.tables and name.split(" ")[0] not in args.tables.split(","):
            continue
        alarms = feature_alarms = 0
        aucs, started = [], time.perf_counter()
        alpha = 0.05
        for seed in range(args.splits):
            order = np.random.default_rng(seed).permutation(len(table))
            cut = int(0.7 * len(table))
            train, held = table.iloc[order[:cut]], table.iloc[order[cut:]]
            report = detect_drift(ReferenceProfile.from_data(train, seed=seed), held)
            mv = report.multivariate
            assert mv is not None
            alpha = mv.alpha
            alarms += mv.drifted
            feature_alarms += bool(report.drifted_features)
            aucs.append(mv.statistic)
        n = args.splits
        margin = stats.binom.ppf(0.95, n, alpha) / n
        rows.append({"table": name, "rows": len(table), "columns": table.shape[1], "splits": n,
                     "multivariate alarms": alarms, "rate": alarms / n, "limit (alpha + margin)": float(margin),
                     "ok": bool(alarms / n <= margin), "mean AUC": float(np.mean(aucs)),
                     "splits with a drifted feature": feature_alarms,
                     "seconds per split": (time.perf_counter() - started) / n})
        print(rows[-1], flush=True)
    print("| table | rows | columns | splits | alarms | rate | limit | mean AUC | splits with a drifted feature | s/split |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['table']} | {r['rows']} | {r['columns']} | {r['splits']} | {r['multivariate alarms']} | "
              f"{r['rate']:.2f} | {r['limit (alpha + margin)']:.2f} | {r['mean AUC']:.3f} | "
              f"{r['splits with a drifted feature']} | {r['seconds per split']:.2f} |")
    power = []
    for rho, n_current in ((0.3, 500), (0.5, 300), (0.5, 1000)):
        found = 0
        for seed in range(args.power_runs):
            rng = np.random.default_rng(1000 + seed)
            reference = pd.DataFrame({f"x{i}": rng.normal(size=3000) for i in range(3)})
            pair = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n_current)
            current = pd.DataFrame({"x0": pair[:, 0], "x1": pair[:, 1], "x2": rng.normal(size=n_current)})
            mv = detect_drift(ReferenceProfile.from_data(reference, seed=seed), current).multivariate
            found += bool(mv is not None and mv.drifted)
        power.append({"rho": rho, "current rows": n_current, "runs": args.power_runs,
                      "detected": found / args.power_runs})
        print(power[-1], flush=True)
    print("| correlation | current rows (reference 3,000) | runs | detected |")
    print("|---|---|---|---|")
    for r in power:
        print(f"| {r['rho']} | {r['current rows']} | {r['runs']} | {r['detected']:.2f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"false_alarms": rows, "power": power}, indent=1))


if __name__ == "__main__":
    main()
