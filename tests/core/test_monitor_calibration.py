"""The multivariate drift test's false alarms on unshifted real data, and one verdict for one window
whether it comes from ``detect_drift`` or a live monitor (benchmarks/falsealarms/run.py measures the
false-alarm rate over 100 splits of six real tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.support import real_table
from workbench.monitor import LiveMonitor, detect_drift
from workbench.profile import ReferenceProfile


def test_unshifted_held_out_rows_of_a_text_table_raise_no_alarm() -> None:
    table, _, _ = real_table(6366)  # every value kind, a 500-level text column among them
    for seed in range(4):
        order = np.random.default_rng(seed).permutation(len(table))
        cut = int(0.7 * len(table))
        report = detect_drift(ReferenceProfile.from_data(table.iloc[order[:cut]]), table.iloc[order[cut:]])
        mv = report.multivariate
        assert mv is not None and not mv.drifted and not report.drifted, report.summary()
        assert 0.44 < mv.statistic < 0.56


def test_a_live_monitor_and_detect_drift_give_one_verdict_and_say_which_tests_ran() -> None:
    rng = np.random.default_rng(6)
    profile = ReferenceProfile.from_data(pd.DataFrame({f"x{i}": rng.normal(size=3000) for i in range(3)}))
    correlated = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], size=2000)
    rows = pd.DataFrame({"x0": correlated[:, 0], "x1": correlated[:, 1], "x2": rng.normal(size=2000)})

    direct = detect_drift(profile, rows)
    monitor = LiveMonitor(profile, window=5000)
    first = monitor.update(rows.iloc[:20])  # too few rows for the domain classifier yet
    assert first is not None and first.drift.multivariate is None
    assert "not run: 20 current rows" in first.drift.multivariate_note
    assert "domain_classifier" not in first.drift.tests
    live = monitor.update(rows.iloc[20:])
    assert live is not None and live.n_rows == len(rows)

    assert direct.drifted and direct.drifted_features == []  # only the multivariate test sees it
    assert live.drift.drifted == direct.drifted and live.drift.drifted_features == direct.drifted_features
    assert live.drift.tests == direct.tests == ("wasserstein", "domain_classifier")
    assert "tests run: wasserstein, domain_classifier" in live.drift.summary()
    carried = monitor.update(rows.iloc[:30])
    assert carried is not None and carried.drift.multivariate is live.drift.multivariate
    assert "domain_classifier" not in carried.drift.tests
    assert "result from the window of" in carried.drift.multivariate_note
    assert detect_drift(profile, rows, multivariate=False).to_dict()["dataset"]["multivariate_note"] == "off"
