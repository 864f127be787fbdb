"""Settings from the environment and from configure()."""

from __future__ import annotations

from pathlib import Path

import pytest

import workbench as wb
from workbench.errors import ConfigurationError, StoreUnavailableError


def test_defaults_put_everything_in_a_workspace_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("WORKBENCH_HOME", "WORKBENCH_TRACKING_URI", "WORKBENCH_REGISTRY_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = wb.Settings.from_env()
    assert settings.home == tmp_path / ".workbench"
    assert settings.embedded
    assert settings.store_uri == f"sqlite:///{tmp_path}/.workbench/mlflow.db"
    assert settings.artifact_root == tmp_path / ".workbench" / "artifacts"


def test_tracking_uri_switches_to_a_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_TRACKING_URI", "http://mlflow.team:5000")
    settings = wb.Settings.from_env()
    assert not settings.embedded
    assert settings.store_uri == settings.model_registry_uri == "http://mlflow.team:5000"


def test_a_bad_number_in_the_environment_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_MAX_BATCH_SIZE", "many")
    with pytest.raises(ConfigurationError, match="WORKBENCH_MAX_BATCH_SIZE='many' is not a whole number"):
        wb.Settings.from_env()


def test_configure_rejects_unknown_settings() -> None:
    with pytest.raises(ConfigurationError, match="unknown setting"):
        wb.configure(hme="/tmp/x")


def test_settings_round_trip_through_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = wb.Settings(home=tmp_path, user="ada", max_batch_size=32, base_image="local/py:3.11")
    for key, value in settings.as_env().items():
        monkeypatch.setenv(key, value)
    assert wb.Settings.from_env() == settings


def test_unwritable_workspace_gets_a_clear_error(tmp_path: Path, session_workspace: wb.Settings) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    wb.configure(home=blocker / "ws")
    try:
        with pytest.raises(StoreUnavailableError, match="Set WORKBENCH_HOME to a folder you can write to"):
            wb.experiments()
    finally:
        wb.configure(session_workspace)
