"""A notebook's head start: ``import workbench`` in a Jupyter kernel readies MLflow and the warm
server process between cells (in the kernel's own thread, never beside a cell's imports), writes
nothing, and leaves every other process alone."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from workbench.requirements import _distributions_of_modules

pytestmark = pytest.mark.slow

_PROBE = """
import json, os, sys, pathlib
from workbench import warmup
from workbench.deployment import warm
left = warmup.pending()  # the kernel was idle for a while: the steps ran on their own, between cells
finished = warmup.wait(120)
print(json.dumps({
    "left while idle": left,
    "finished": finished,
    "mlflow_ready": all(m in sys.modules for m in warmup.MODULES),
    "warm_process": warm.socket_path().exists(),
    "wrote": sorted(p.name for p in pathlib.Path(os.getcwd()).iterdir()),
}))
"""


def test_the_module_map_is_the_standard_librarys() -> None:
    assert dict(_distributions_of_modules()) == metadata.packages_distributions()


def test_a_notebook_kernel_gets_mlflow_and_the_warm_process_ready_and_writes_nothing(tmp_path: Path) -> None:
    runtime = Path(tempfile.mkdtemp(prefix="wu", dir="/tmp"))  # its own warm process (short socket path)
    folder = tmp_path / "notebook"
    folder.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import workbench as wb"),
                                         nbformat.v4.new_code_cell(_PROBE)])
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "WORKBENCH_HOME": str(tmp_path / "elsewhere")}
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    try:
        with client.setup_kernel(env=env):
            client.execute_cell(nb.cells[0], 0)
            time.sleep(20)  # the user reads and types; the kernel is idle
            client.execute_cell(nb.cells[1], 1)
        seen = json.loads(nb.cells[1].outputs[0]["text"])
        assert seen == {"left while idle": 0, "finished": True, "mlflow_ready": True, "warm_process": True,
                        "wrote": []}
        assert not (tmp_path / "elsewhere").exists()  # no workspace is made before the user uses one
    finally:
        env_here = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
        subprocess.run([sys.executable, "-c", "from workbench.deployment import warm; warm.shutdown()"],
                       env=env_here, timeout=60, check=False)
        shutil.rmtree(runtime, ignore_errors=True)


def test_a_script_starts_nothing(tmp_path: Path) -> None:
    probe = ("import sys, threading, workbench\n"
             "print(sorted(t.name for t in threading.enumerate()), 'mlflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['MainThread'] False"
