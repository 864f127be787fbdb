"""PackageBuilder: a build with a live log and progress; the image's tag, size and labels, or the error."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import panel as pn
import pytest

from workbench.packaging import BuildEvent
from workbench.widgets import PackageBuilder, progress

from driving import control, errors_shown, press, shown_text


def test_the_picker_offers_aliases_and_versions(two_versions) -> None:
    first, second = two_versions
    builder = PackageBuilder(model_name=first.name)
    assert builder.param.model_uri.objects == [f"models:/{first.name}@champion", second.uri, first.uri]
    assert builder.model_uri == f"models:/{first.name}@champion"


def test_a_model_that_cannot_be_packaged_shows_why_and_builds_nothing() -> None:
    builder = PackageBuilder(model_uri="models:/no-such-model-xyz/1")
    press(builder, "Build image")
    assert builder.wait(60)
    assert any("no-such-model-xyz" in e for e in errors_shown(builder))
    assert builder.image is None
    assert not control(builder, pn.widgets.Button, "Build image").disabled


@pytest.mark.docker
def test_a_build_streams_its_log_and_shows_the_image(registered_model, docker_engine, tmp_path: Path) -> None:
    tag = f"workbench-test/widget-build:{uuid.uuid4().hex[:6]}"
    builder = PackageBuilder(model_uri=registered_model.uri, tag=tag)
    press(builder, "Build image")
    assert control(builder, pn.widgets.Button, "Build image").disabled  # one build at a time
    assert builder.wait(900)
    assert errors_shown(builder) == []
    image = builder.image
    assert image.tag == tag and image.model_version == registered_model.version
    shown = shown_text(builder)
    assert tag in shown and "MB" in shown and f"built {tag}" in shown
    assert re.search(r"\[\d+/\d+\] COPY", shown)  # the log's tail names the Dockerfile steps as they ran
    labels = control(builder, pn.widgets.Tabulator, "labels").value
    assert set(labels["label"]) >= set(image.labels) and len(labels)
    bar = builder.__panel__().select(pn.indicators.Progress)[0]
    assert bar.value == 100 and not bar.visible

    import docker

    docker.from_env().images.remove(image.image_id, force=True)


def test_build_events_drive_a_text_progress_bar_from_plain_python() -> None:
    out = io.StringIO()
    with progress.BuildProgress("packaging m", file=out) as bar:
        bar(BuildEvent("context", "sending build context (1.0 MB)"))
        for step in (1, 2, 3, 4):
            bar(BuildEvent("step", f"RUN step {step}", step=step, total_steps=4))
        bar(BuildEvent("done", "built m", step=4, total_steps=4))
    text = out.getvalue()
    assert "packaging m" in text and "4/4 steps" in text
