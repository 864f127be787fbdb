"""Precompile, inside a model image's build, exactly the modules serving imports.

Run by the Dockerfile's dependency stage (``python warmup.py LOADER_MODULE``) after the requirements
are installed without bytecode: importing the serving stack and every installed requirement's
top-level packages writes ``.pyc`` files for what is really imported, and nothing else. That keeps
the image small (bytecode for a whole scientific stack is ~90 MB) while the server still starts
from bytecode. Import failures are reported and ignored: this step only saves start-up time.

This file runs with the image's Python and must not import the workbench.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import sys

SERVING_STACK = [
    "mlflow.pyfunc", "mlflow.pyfunc.scoring_server", "mlflow.models", "mlflow.exceptions",
    "starlette.applications", "starlette.routing", "uvicorn", "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.http.httptools_impl", "uvicorn.loops.uvloop", "orjson", "prometheus_client",
    "pandas", "numpy", "click", "yaml",
]


def top_level_modules(requirements_file: str) -> list[str]:
    """Top-level import names of the distributions listed in a requirements file."""
    names: list[str] = []
    for line in open(requirements_file):
        name = line.split("==")[0].split(">=")[0].split("[")[0].strip()
        if not name or name.startswith("#"):
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        top = dist.read_text("top_level.txt")
        if top:
            names.extend(t.strip() for t in top.splitlines() if t.strip() and not t.startswith("_"))
        else:
            files = {str(f).split("/")[0] for f in dist.files or [] if "/" in str(f)}
            names.extend(f for f in files if not f.endswith((".dist-info", ".libs")) and f.isidentifier())
    return names


def main() -> None:
    modules = SERVING_STACK + sys.argv[1:] + top_level_modules("/tmp/requirements.txt")
    failed = []
    for name in dict.fromkeys(modules):
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - only a start-up optimisation
            failed.append(f"{name} ({type(exc).__name__})")
    print(f"warmup: precompiled imports of {len(modules) - len(failed)} modules"
          + (f"; skipped {', '.join(failed)}" if failed else ""))


if __name__ == "__main__":
    main()
