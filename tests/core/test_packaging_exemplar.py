"""A retrained model rebuilds from the build cache: the start-up stage runs on a model of the same
kind (workbench.packaging.exemplar), and a skops model's snapshot is written where it can be."""

from __future__ import annotations

import os
import pickle
import shutil
import stat
from pathlib import Path

import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

import workbench as wb
from workbench.errors import ConfigurationError
from workbench.integrity import MANIFEST, file_hashes, manifest_bytes
from workbench.packaging import prepare_context
from workbench.packaging.exemplar import model_kind, startup_exemplar
from workbench.registry import download_model
from workbench.serving.flavors import SNAPSHOT_INFO

REQUIREMENTS = "numpy==2.4.6\nscikit-learn==1.9.1\n"


def _folder(model, numeric_data, tmp_path: Path, name: str, **log_options) -> Path:
    X, y = numeric_data
    with wb.start_run(experiment="exemplar-tests"):
        logged = wb.log_model(model.fit(X, y), training_data=X, training_labels=y, **log_options)
    return download_model(logged.model_uri, tmp_path / name)


@pytest.fixture(scope="module")
def forests(numeric_data, tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("forests")
    return (_folder(RandomForestClassifier(n_estimators=5, random_state=0), numeric_data, tmp, "a"),
            _folder(RandomForestClassifier(n_estimators=9, max_depth=3, random_state=1), numeric_data, tmp, "b"))


def test_two_fits_of_one_model_are_one_kind_and_other_models_are_not(forests, numeric_data, tmp_path: Path) -> None:
    first, retrained = forests
    assert model_kind(first, REQUIREMENTS) is not None
    assert model_kind(first, REQUIREMENTS) == model_kind(retrained, REQUIREMENTS)
    # other classes, another way of storing the model, other requirements: other imports
    boosted = _folder(GradientBoostingClassifier(n_estimators=5), numeric_data, tmp_path, "gb")
    pickled = _folder(RandomForestClassifier(n_estimators=5), numeric_data, tmp_path, "pkl",
                      serialization_format="cloudpickle")
    kinds = {model_kind(first, REQUIREMENTS), model_kind(boosted, REQUIREMENTS), model_kind(pickled, REQUIREMENTS),
             model_kind(first, REQUIREMENTS + "lightgbm==4.6.0\n")}
    assert len(kinds) == 4 and None not in kinds


def test_a_pickle_kind_is_read_from_its_opcodes_without_running_them(forests, tmp_path: Path) -> None:
    folder = tmp_path / "planted"
    shutil.copytree(forests[0], folder)
    model_path = folder / "model.pkl"

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    model_path.write_bytes(pickle.dumps(Boom()))
    mlmodel = (folder / "MLmodel").read_text()
    (folder / "MLmodel").write_text(mlmodel.replace("model.skops", "model.pkl").replace(
        "serialization_format: skops", "serialization_format: cloudpickle"))
    kind = model_kind(folder, REQUIREMENTS)
    assert kind is not None and kind != model_kind(forests[0], REQUIREMENTS)
    assert not (tmp_path / "ran").exists()  # read, never unpickled


def test_the_exemplar_of_a_kind_is_kept_private_and_replaced_when_tampered_with(forests, tmp_path: Path) -> None:
    first, retrained = forests
    store = tmp_path / "exemplars"
    kind = model_kind(first, REQUIREMENTS)
    assert not startup_exemplar(first, kind, tmp_path / "ctx1", store)  # the first of its kind
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    assert startup_exemplar(retrained, kind, tmp_path / "ctx2", store)  # the retrained one reuses it
    assert (tmp_path / "ctx2" / "model.skops").read_bytes() == (first / "model.skops").read_bytes()
    # a kept exemplar whose files no longer match its manifest is replaced, never built from
    (store / kind / "model" / "model.skops").write_bytes(b"changed")
    assert not startup_exemplar(retrained, kind, tmp_path / "ctx3", store)
    assert (tmp_path / "ctx3" / "model.skops").read_bytes() == (retrained / "model.skops").read_bytes()
    # a model whose kind is unknown is its own exemplar
    assert not startup_exemplar(first, None, tmp_path / "ctx4", store)
    # a store planted as a link by someone else is refused
    os.symlink(tmp_path / "elsewhere", tmp_path / "planted-store")
    with pytest.raises(ConfigurationError, match="symbolic link"):
        startup_exemplar(first, kind, tmp_path / "ctx5", tmp_path / "planted-store")


def test_the_snapshot_is_written_here_only_for_the_image_versions(registered_model, tmp_path: Path) -> None:
    ctx = prepare_context(registered_model.uri, tmp_path / "ctx")
    assert ctx.snapshot == "context" and (ctx.path / "snapshot" / SNAPSHOT_INFO).is_file()
    dockerfile = ctx.dockerfile.read_text()
    assert "COPY snapshot/ /opt/serving/" in dockerfile and "AS snapshot" not in dockerfile
    assert "COPY startup-model /opt/startup-model" in dockerfile
    # requirements pinning another scikit-learn than this machine's: the build makes the snapshot
    model = download_model(registered_model.uri, tmp_path / "other-versions")
    requirements = (model / "requirements.txt").read_text()
    (model / "requirements.txt").write_text(
        "\n".join("scikit-learn==1.0.2" if line.startswith("scikit-learn==") else line
                  for line in requirements.splitlines()) + "\n")
    (model / MANIFEST).write_bytes(manifest_bytes(file_hashes(model)))  # a folder the user edited and sealed
    other = prepare_context(str(model), tmp_path / "ctx-other")
    assert other.snapshot == "build" and not (other.path / "snapshot").exists()
    dockerfile = other.dockerfile.read_text()
    assert "FROM deps AS snapshot" in dockerfile and "COPY --from=snapshot /opt/serving/ /opt/serving/" in dockerfile
    assert other.kind != ctx.kind  # other requirements, another kind


def test_the_build_stage_writes_a_snapshot_the_server_uses(registered_model, tmp_path: Path) -> None:
    import subprocess
    import sys

    ctx = prepare_context(registered_model.uri, tmp_path / "ctx")
    dest = tmp_path / "serving"
    out = subprocess.run([sys.executable, str(ctx.path / "warmup.py"), "snapshot", str(ctx.path / "model"), str(dest)],
                         capture_output=True, text=True, check=True)
    assert "wrote a snapshot of the model" in out.stdout
    assert (dest / SNAPSHOT_INFO).read_text() == (ctx.path / "snapshot" / SNAPSHOT_INFO).read_text()
