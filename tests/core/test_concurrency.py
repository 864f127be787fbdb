"""The embedded SQLite store under concurrent writers: the kernel, served models, background jobs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import workbench as wb

WRITER = textwrap.dedent(
    """
    import json, sys, time
    import mlflow
    import workbench as wb

    seconds = float(sys.argv[1])
    errors, logged = [], 0
    with wb.start_run(experiment="concurrent") as run:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if logged % 10 == 9:
                    mlflow.log_metrics({"loss": 1.0 / (logged + 1), "acc": logged / 1e6}, step=logged)
                    mlflow.set_tag("last_batch", str(logged))
                else:
                    mlflow.log_metric("loss", 1.0 / (logged + 1), step=logged)
                logged += 1
            except Exception as exc:  # counted, not raised: the test reports every failure
                errors.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps({"run_id": run.info.run_id, "logged": logged, "errors": errors}))
    """
)


def test_eight_processes_log_metrics_at_once_without_errors_or_losses(fresh_workspace, tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env_home = {"WORKBENCH_HOME": str(fresh_workspace.home)}
    import os

    env = {**os.environ, **env_home}
    # All eight start on a workspace that does not exist yet: store creation races too.
    procs = [
        subprocess.Popen([sys.executable, str(script), "5"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert [r["errors"] for r in results] == [[]] * 8
    assert all(r["logged"] > 20 for r in results), [r["logged"] for r in results]
    for r in results:
        history = wb.metric_history(r["run_id"], "loss")
        assert len(history) == r["logged"]
        assert history["step"].tolist() == list(range(r["logged"]))
    assert len(wb.runs("concurrent")) == 8
