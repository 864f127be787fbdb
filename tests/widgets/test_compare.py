"""VersionComparison, the "Compare versions" tab of ModelReview: what a reviewer sees when comparing two
versions of a model (trained by a script, max_depth 3 then 5)."""

from __future__ import annotations

import html
import uuid

import mlflow
import panel as pn
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.tree import DecisionTreeClassifier

import workbench as wb
from workbench.widgets import ModelReview, VersionComparison
from workbench.widgets.compare import default_pair

from driving import control, errors_shown, shown_text


@pytest.fixture(scope="module")
def answers_differing(depth_versions) -> tuple[int, int]:
    """How many of version 1's reference rows the two trees answer differently, counted by refitting them
    here (the same data and seed as the script) and asking each: (rows differing, rows)."""
    data = load_breast_cancer(as_frame=True)
    trees = [DecisionTreeClassifier(max_depth=depth, random_state=0).fit(data.data, data.target) for depth in (3, 5)]
    profile = wb.load_profile(wb.format_model_uri(depth_versions.name, depth_versions.first))
    rows = profile.sample[list(profile.feature_names)]
    return int((trees[0].predict(rows) != trees[1].predict(rows)).sum()), len(rows)


@pytest.fixture(scope="module")
def review(depth_versions) -> ModelReview:
    """The review of version 2 with its Compare versions tab open and loaded (the tests read it, and
    put back what they change)."""
    page = ModelReview(model_name=depth_versions.name, version=depth_versions.second, section="Compare versions")
    assert page.wait(120)
    return page


def _table(component: VersionComparison):
    return control(component, pn.widgets.Tabulator, "differences").value


def test_the_tab_compares_the_version_before_with_the_one_reviewed(review, depth_versions,
                                                                    answers_differing) -> None:
    compare = review.component("Compare versions")
    assert isinstance(compare, VersionComparison)
    assert control(compare, pn.widgets.Select, "Version A").value == depth_versions.first
    assert control(compare, pn.widgets.Select, "Version B").value == depth_versions.second
    assert errors_shown(compare) == []

    table = _table(compare)
    params = table[table["kind"] == "param"]
    assert params[["name", "a", "b"]].values.tolist() == [["max_depth", "3", "5"]]
    assert set(table["kind"]) == {"param", "metric", "code", "predictions"}  # same data, signature, packages

    differing, rows = answers_differing
    assert differing > 0
    shown = shown_text(compare)
    assert f"{differing} of {rows} answers differ ({differing / rows:.1%})" in shown
    assert compare.result.summary() in shown  # the summary line, as wb.diff says it
    assert "Not compared" not in shown  # everything could be compared


def test_the_code_diff_shows_the_changed_line_coloured_and_escaped(review, depth_versions) -> None:
    code = shown_text(review.component("Compare versions"))
    escaped = html.escape(depth_versions.changed_line)  # &lt;script&gt; ...
    assert f"<div style='background:#dafbe1'>+{escaped}</div>" in code  # added, green
    assert "<div style='background:#ffebe9'>-max_depth = 3</div>" in code  # removed, red
    assert "<script>" not in code and "<b>not bold</b>" not in code  # the code's text never becomes markup
    assert "a/train_tree.py" in code and "b/train_tree.py" in code


def test_the_kind_buttons_filter_the_table(review) -> None:
    compare = review.component("Compare versions")
    buttons = control(compare, pn.widgets.CheckButtonGroup, "Show")
    try:
        buttons.value = ["param", "code"]  # as a user unticks the others
        assert set(_table(compare)["kind"]) == {"param", "code"}
        buttons.value = []
        assert _table(compare).empty
    finally:
        buttons.value = list(wb.DIFFERENCE_KINDS)
    assert "metric" in set(_table(compare)["kind"])


def test_the_comparison_follows_the_version_picked_and_the_version_reviewed(review, depth_versions) -> None:
    compare = review.component("Compare versions")
    try:
        control(compare, pn.widgets.Select, "Version A").value = depth_versions.second
        assert compare.wait(120)
        assert _table(compare).empty
        assert f"no differences between models:/{depth_versions.name}/{depth_versions.second}" in shown_text(compare)
        assert compare.result.rows_compared > 0
        assert f"0 of {compare.result.rows_compared} answers differ (0.0%)" in shown_text(compare)

        review.version = depth_versions.first  # the oldest reviewed: compared with the one after it
        assert review.wait(120)
        assert (compare.a, compare.b) == (depth_versions.first, depth_versions.second)
        assert _table(compare)[["name", "a", "b"]].values.tolist()[0] == ["max_depth", "3", "5"]
    finally:
        review.version = depth_versions.second
        review.wait(120)
    assert (compare.a, compare.b) == (depth_versions.first, depth_versions.second)


def _register(name: str, depth: int) -> wb.ModelVersion:
    data = load_breast_cancer(as_frame=True)
    with wb.start_run(experiment="compare-versions"):
        mlflow.log_param("max_depth", depth)
        model = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(data.data, data.target)
        return wb.register(wb.log_model(model, training_data=data.data, capture_code=False), name)


def test_a_model_with_one_version_says_there_is_nothing_to_compare() -> None:
    only = _register(f"compare-one-{uuid.uuid4().hex[:6]}", 3)
    compare = ModelReview(model_name=only.name).component("Compare versions")
    assert compare.wait(10)
    assert errors_shown(compare) == []
    shown = shown_text(compare)  # an empty state saying what would appear and how to get it
    assert f"{only.name} has only one version (v{only.version})" in shown
    assert "Register another version of it to compare two versions here" in shown
    assert control(compare, pn.widgets.Select, "Version A").disabled
    assert compare.result is None and _table(compare).empty


def test_a_version_deleted_while_the_page_is_open_is_a_message_not_a_traceback() -> None:
    name = f"compare-gone-{uuid.uuid4().hex[:6]}"
    first = _register(name, 2)
    _register(name, 4)  # the second version the page compares it with
    compare = VersionComparison(model_name=name)
    assert compare.wait(120) and errors_shown(compare) == []
    mlflow.MlflowClient().delete_model_version(name, first.version)  # a teammate deletes it meanwhile
    compare.compare()  # as when the reviewer picks the versions again
    assert compare.wait(120)
    errors = errors_shown(compare)
    assert len(errors) == 1 and f"has no version {first.version}" in errors[0] and "Traceback" not in errors[0]
    assert compare.result is None and _table(compare).empty  # nothing stale stays on the page


def test_default_pair_compares_the_reviewed_version_with_its_neighbour() -> None:
    assert default_pair(["3", "1", "2"]) == ("2", "3")
    assert default_pair(["1", "2", "3"], "2") == ("1", "2")
    assert default_pair(["1", "2", "3"], "1") == ("1", "2")
    assert default_pair(["10", "9"], None) == ("9", "10")  # by number, not by text
    assert default_pair(["1"], "1") == (None, None)
