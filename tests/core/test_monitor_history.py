"""Window summaries: merged across windows and replicas they give the raw rows' drift and performance.

Two replicas' real prediction logs (the real table's every kind of value: NaN, nullable ints,
categories, strings with gaps, tz datetimes) are summarised per minute beside each log; the merged
summaries are tested as the raw rows are, and the answers compared test by test.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from support import real_table
from workbench.errors import MonitoringError
from workbench.monitor import DriftDetector, DriftSettings, evaluate_performance
from workbench.monitor.summaries import PerformanceCounts, SummaryStore, WindowSummary, summary_store
from workbench.predlog import (
    FeedbackItem,
    LogFolderSource,
    LogRecord,
    PredictionLog,
    StoreSource,
    open_log,
    recent_rows,
)
from workbench.profile import ReferenceProfile
from workbench.serving.codecs import InputBatch

BASE = 494_444 * 3600.0  # a whole hour (in 2026), so minute windows line up


def _log(folder: Path, frame: pd.DataFrame, predicted: np.ndarray, *, first: int, version: str = "1",
         size: int = 25, gap: float = 13.0, log=None) -> list[str]:
    """Log ``frame`` as requests of ``size`` rows, one every ``gap`` seconds (into ``folder``'s SQLite
    log, or ``log``); the request ids."""
    log = log or PredictionLog(folder)
    ids = []
    try:
        for k, start in enumerate(range(0, len(frame), size)):
            chunk = frame.iloc[start:start + size]
            request_id = f"{folder.name}-{k}"
            ids.append(request_id)
            inputs = InputBatch({c: chunk[c] for c in chunk.columns}, len(chunk)).log_inputs()
            log.append([LogRecord(request_id, BASE + (first + k) * gap, "m", version, "invocations", len(chunk), 1.0,
                                  inputs, {"predict": predicted[start:start + size].tolist()})])
    finally:
        log.close()
    return ids


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory):
    """The reference profile of 700 real rows, and 600 other rows logged by two replicas over ~3
    minutes (the second half shifted: older people, more teachers)."""
    table, _, cheated = real_table(1500)
    reference, current = table.iloc[:700], table.iloc[700:1300].reset_index(drop=True)
    shifted = current.copy()
    half = len(shifted) // 2
    shifted.loc[half:, "age"] = shifted.loc[half:, "age"] + 9.5
    shifted.loc[half:, "occupation"] = "teacher"
    predicted = (cheated.iloc[700:1300].to_numpy() + (np.arange(600) % 5 == 0)) % 2  # 80% right
    truth = cheated.iloc[700:1300].to_numpy()
    root = tmp_path_factory.mktemp("replicas")
    folders = [root / "replica-a", root / "replica-b"]
    ids = [_log(folders[0], shifted.iloc[0::2].reset_index(drop=True), predicted[0::2], first=0),
           _log(folders[1], shifted.iloc[1::2].reset_index(drop=True), predicted[1::2], first=1)]
    profile = ReferenceProfile.from_data(reference)
    return profile, folders, ids, truth


def _summaries(folders: list[Path], profile: ReferenceProfile) -> WindowSummary:
    merged = None
    for folder in folders:
        store = SummaryStore(folder / "summaries.db", LogFolderSource(folder))
        store.catch_up(lambda version: profile)
        for summary in store.read():
            merged = summary if merged is None else merged.merge(summary)
    assert merged is not None
    return merged


@pytest.mark.parametrize("settings", [
    DriftSettings(multivariate=False),                                           # KS and chi-squared
    DriftSettings(multivariate=False, small_sample=100),                        # Wasserstein and JS
    DriftSettings(multivariate=False, numeric_test="psi", categorical_test="psi"),
], ids=["ks-chisquare", "wasserstein-js", "psi"])
def test_merged_summaries_give_the_raw_rows_verdicts_and_statistics(replicas, settings) -> None:
    profile, folders, _, _ = replicas
    merged = _summaries(folders, profile)
    raw = recent_rows([str(f) for f in folders], 10_000).frame
    assert merged.rows == len(raw) == 600
    assert merged.end - merged.start > 120  # several minute windows of two replicas, merged

    detector = DriftDetector(settings).fit(profile)
    from_rows = detector.score(raw, multivariate=False)
    from_summaries = detector.score_samples(merged.samples(_grid(profile)), merged.rows)

    assert from_summaries.drifted == from_rows.drifted
    assert from_summaries.n_current == from_rows.n_current
    assert "occupation" in from_rows.drifted_features and ("age" in from_rows.drifted_features or settings.numeric_test)
    for rows_f, summary_f in zip(from_rows.features, from_summaries.features, strict=True):
        what = f"{rows_f.feature} ({rows_f.test})"
        assert summary_f.test == rows_f.test, what
        assert summary_f.drifted == rows_f.drifted, what
        assert summary_f.current_count == rows_f.current_count, what
        assert summary_f.current_missing_rate == rows_f.current_missing_rate, what
        assert summary_f.unseen_categories == rows_f.unseen_categories, what
        if rows_f.test in ("psi", "jensenshannon", "chisquare"):
            assert summary_f.error == 0.0
            assert summary_f.statistic == pytest.approx(rows_f.statistic, rel=1e-12, abs=1e-15), what
        elif rows_f.test is not None:
            assert abs(summary_f.statistic - rows_f.statistic) <= summary_f.error + 1e-12, what
    # Integer-valued features sit on the bin edges: KS and Wasserstein are exact there too.
    for name in ("rate marriage", "educ", "religious"):
        feature = from_summaries[name]
        if feature.test in ("ks", "wasserstein"):
            assert feature.error == 0.0, name
            assert feature.statistic == pytest.approx(from_rows[name].statistic, abs=1e-12), name


def _grid(profile: ReferenceProfile):
    from workbench.monitor.summaries import SummaryGrid

    return SummaryGrid.of(profile)


def test_catching_up_twice_counts_each_row_once_and_later_rows_join_their_window(replicas, tmp_path) -> None:
    profile, folders, _, _ = replicas
    table, _, _ = real_table(200)
    folder = tmp_path / "log"
    _log(folder, table.iloc[:100], np.zeros(100), first=0, gap=7.0)
    store = SummaryStore(folder / "summaries.db", LogFolderSource(folder))
    assert store.catch_up(lambda v: profile, page_size=1) == 100  # page by page, each page committed
    assert store.catch_up(lambda v: profile) == 0
    before = {s.start: s.rows for s in store.read()}
    _log(folder, table.iloc[100:150], np.zeros(50), first=4, gap=7.0)  # the same minute again, and later
    assert store.catch_up(lambda v: profile) == 50
    after = {s.start: s.rows for s in store.read()}
    assert sum(after.values()) == 150 and after[BASE] > before[BASE]
    # A second reader of the same summaries (a new page) sees the same, and adds nothing.
    again = SummaryStore(folder / "summaries.db", LogFolderSource(folder))
    assert again.catch_up(lambda v: profile) == 0 and {s.start: s.rows for s in again.read()} == after
    # The hour they were rolled up into as they were written: the same counts as its minutes merged.
    (hour,) = store.read(BASE, BASE + 3600, every=3600)
    minutes = WindowSummary.merged(store.read(BASE, BASE + 3600))
    assert (hour.start, hour.end, hour.rows) == (BASE, BASE + 3600, 150)
    for name, summary in minutes.features.items():
        rolled = hour.features[name]
        assert (rolled.n_total, rolled.missing) == (summary.n_total, summary.missing), name
        if summary.kind == "numeric":
            assert rolled.counts.tolist() == summary.counts.tolist(), name
            assert rolled.edge_counts.tolist() == summary.edge_counts.tolist(), name
        else:
            assert dict(rolled.categories) == dict(summary.categories), name


def test_summaries_of_different_profiles_refuse_to_merge(replicas) -> None:
    profile, folders, _, _ = replicas
    table, _, _ = real_table(300)
    other = ReferenceProfile.from_data(table.iloc[200:])
    (one,) = [s for s in SummaryStore(folders[0] / "summaries.db", LogFolderSource(folders[0])).read()][:1]
    foreign = WindowSummary(one.start, one.end, one.version, _grid(other).key, 1, one.features)
    with pytest.raises(MonitoringError, match="different reference profiles"):
        one.merge(foreign)


def test_performance_counts_follow_labels_and_corrections_and_equal_the_raw_metrics(replicas) -> None:
    profile, folders, ids, truth = replicas
    # Ground truth for every third row of each replica's requests, then one correction.
    for folder, request_ids, offset in zip(folders, ids, (0, 1), strict=True):
        log = PredictionLog(folder)
        try:
            items = [FeedbackItem(rid, row, int(truth[offset + 2 * (25 * k + row)]), has_truth=True)
                     for k, rid in enumerate(request_ids) for row in range(0, 25, 3)]
            log.record_feedback(items, model_version="1")
            if offset == 0:  # a client corrects its first label
                log.record_feedback([FeedbackItem(request_ids[0], 0, 1 - items[0].truth, has_truth=True)],
                                    model_version="1")
        finally:
            log.close()
    merged = _summaries(folders, profile)
    assert merged.performance is not None
    hours = [s for f in folders for s in SummaryStore(f / "summaries.db", LogFolderSource(f)).read(every=3600)]
    rolled = WindowSummary.merged(hours).performance  # the hours' counts, rolled up as labels arrived
    assert rolled is not None and (rolled.n, dict(rolled.confusion)) == (merged.performance.n, dict(merged.performance.confusion))

    raw = []
    for folder in folders:
        rows = recent_rows(str(folder), 10_000, positions=True).frame
        from workbench.predlog import read_feedback

        feedback = read_feedback(folder).records.drop_duplicates(["prediction_seq", "row"], keep="last")
        labels = feedback[["prediction_seq", "row", "truth"]].set_axis(["seq", "row", "label"], axis=1)
        raw.append(rows.merge(labels, on=["seq", "row"], how="inner"))
    labelled = pd.concat(raw, ignore_index=True)
    expected = evaluate_performance(labelled).windows[0]
    assert merged.performance.n == expected.n == len(labelled)
    assert merged.performance.metrics()["accuracy"] == pytest.approx(expected.metrics["accuracy"], abs=1e-15)
    assert merged.performance.metrics()["f1"] == pytest.approx(expected.metrics["f1"], abs=1e-15)


def test_regression_counts_merge_to_the_raw_mae_rmse_and_r2() -> None:
    table, affairs, _ = real_table(400)
    y = affairs.to_numpy()
    predicted = y * 0.8 + np.linspace(-0.5, 0.7, len(y))
    parts = [PerformanceCounts.of(y[i:i + 57].tolist(), predicted[i:i + 57].tolist()) for i in range(0, len(y), 57)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    frame = pd.DataFrame({"predict": predicted, "label": y, "ts": BASE})
    expected = evaluate_performance(frame).windows[0]
    assert merged.task == "regression"
    for metric in ("mae", "rmse", "r2"):
        assert merged.metrics()[metric] == pytest.approx(expected.metrics[metric], rel=1e-12), metric


def test_the_log_store_keeps_summaries_that_every_monitor_shares(postgres_server, replicas, tmp_path) -> None:
    """On a cluster the summaries are tables of the PostgreSQL store: a second monitor elsewhere finds
    them, adds nothing, and their merged answers are the rows'."""
    profile, _, _, _ = replicas
    table, _, _ = real_table(300)
    deployment = f"summaries-{uuid.uuid4().hex[:6]}"
    for replica, part in (("r1", table.iloc[:150]), ("r2", table.iloc[150:])):
        log = open_log(tmp_path / replica, url=postgres_server, deployment=deployment, replica=replica)
        _log(tmp_path / replica, part.reset_index(drop=True), np.zeros(len(part)), first=0 if replica == "r1" else 2,
             log=log)
    url = f"{postgres_server}?deployment={deployment}"
    first = summary_store(StoreSource(url), tmp_path / "home-a")
    second = summary_store(StoreSource(url), tmp_path / "home-b")  # another machine's monitor
    assert first.where == second.where and not (tmp_path / "home-a").exists()
    assert first.catch_up(lambda v: profile) == 300
    assert second.catch_up(lambda v: profile) == 0
    merged = WindowSummary.merged(second.read())
    assert merged.rows == 300
    rows = recent_rows(url, 10_000).frame
    detector = DriftDetector(DriftSettings(multivariate=False)).fit(profile)
    from_rows = detector.score(rows, multivariate=False)
    from_summaries = detector.score_samples(merged.samples(_grid(profile)), merged.rows)
    assert [(f.feature, f.test, f.drifted) for f in from_summaries.features] == \
        [(f.feature, f.test, f.drifted) for f in from_rows.features]
    for rows_f, summary_f in zip(from_rows.features, from_summaries.features, strict=True):
        if rows_f.test is not None:
            assert abs(summary_f.statistic - rows_f.statistic) <= summary_f.error + 1e-12, rows_f.feature


def test_a_history_per_period_shows_when_drift_began_and_where_accuracy_crossed_its_threshold(replicas) -> None:
    """Minute by minute over both replicas: the first minutes are like the reference, the shifted
    half drifts; each crossing alerts once, at the period it happened in."""
    from workbench.monitor import summaries_history

    profile, folders, _, _ = replicas
    stores = [SummaryStore(folder / "summaries.db", LogFolderSource(folder)) for folder in folders]
    for store in stores:
        store.catch_up(lambda v: profile)
    summaries = [s for store in stores for s in store.read()]
    since, until = pd.Timestamp(BASE, unit="s", tz="UTC"), pd.Timestamp(BASE + 3600, unit="s", tz="UTC")
    history = summaries_history(summaries, lambda v: profile, since=since, until=until, every=60,
                                settings=DriftSettings(multivariate=False), thresholds={"accuracy": 0.9},
                                min_labels=5)
    frame = history.frame
    assert int(frame["rows"].sum()) == 600 and frame["start"].is_monotonic_increasing
    assert (frame["end"] - frame["start"]).eq(pd.Timedelta(minutes=1)).all()
    occupation = history.features[history.features["feature"] == "occupation"]
    assert not occupation["drifted"].iloc[0] and occupation["drifted"].iloc[-1]  # calm first, shifted later
    began = occupation.loc[occupation["drifted"], "start"].iloc[0]
    (alert,) = [a for a in history.alerts if a.kind == "feature_drift" and a.feature == "occupation"]
    assert alert.time == began + pd.Timedelta(minutes=1)  # raised once, at the end of its period
    assert history.report is not None and "occupation" in history.report.drifted_features
    # Labels, where the performance test sent them: accuracy below 0.9 alerts once per version.
    labelled = frame[frame["labelled"] >= 5]
    below = "accuracy" in frame.columns and bool((labelled["accuracy"] < 0.9).any())
    assert [a.test for a in history.alerts if a.kind == "performance"] == (["accuracy"] if below else [])
    assert history.headline().startswith(f"last 1 h: 600 rows in {frame['start'].nunique()} periods, drift in ")
