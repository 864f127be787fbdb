"""A window of measured performance shows as a reader would want it in a notebook (issue 33 item 10):
times in UTC words, counts, metrics to 3 decimals, and a metric it could not measure says why."""

from __future__ import annotations

import pandas as pd

from workbench.monitor import evaluate_performance


def test_a_window_of_one_class_shows_its_period_and_why_auc_is_missing() -> None:
    start = pd.Timestamp("2026-12-06 12:59:22", tz="UTC").timestamp()
    frame = pd.DataFrame({"predict": [1, 1, 0, 1], "label": [1, 1, 1, 1], "ts": [start, start + 60, start + 120, start + 288]})
    window = evaluate_performance(frame).windows[-1]
    text = repr(window)
    assert text.startswith("WindowPerformance(4 labelled rows, 2026-12-06 12:59:22 to 13:04:10 UTC: accuracy 0.750")
    assert "mappingproxy" not in text and "nan" not in text and "1796" not in text  # no epoch floats
    assert "auc not measured (needs both classes" in text
    shown = window._repr_html_()
    assert "Measured performance" in shown and "2026-12-06 12:59:22 to 13:04:10 UTC" in shown
    assert "<td style='text-align:left;padding:1px 0'>0.750</td>" in shown
