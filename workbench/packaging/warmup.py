"""Start-up work a model image's build does once, so that every container starts fast.

Run twice by the Dockerfile, with the image's Python:

- ``python warmup.py deps`` in the dependency stage, after the requirements are installed without
  bytecode: imports every requirement's top-level packages (and skops' loader) so that their
  bytecode lands in the build-only cache ``PYTHONPYCACHEPREFIX`` points at. It never reaches the
  image; it only makes the next step quick when a retrained model is rebuilt.
- ``python warmup.py startup MODEL_DIR DEST`` in the start-up stage, with the workbench and a model
  of the image's kind in place (see :mod:`workbench.packaging.exemplar`): starts the server exactly
  as the image's entrypoint does (from a snapshot of the model, when it needs one), sends it the
  model's input example, stops it, and writes the bytecode of every module it imported from the
  image's environment and the workbench into ``DEST/pycache`` (a tree of ``__pycache__`` folders the
  image lays over its own): exactly what serving imports is precompiled, nothing else, which keeps
  the image small while the server starts from bytecode.
- ``python warmup.py snapshot MODEL_DIR DEST`` in the snapshot stage, when the machine that wrote the
  build context could not: the model's snapshot (a skops model pickled once, see
  :mod:`workbench.serving.flavors`) into ``DEST``.

Every step only saves start-up time: a failure is reported and the build goes on (the server then
loads the model and compiles its modules as it starts). The ``deps`` step runs before the
workbench is copied in, so this file imports the workbench only in the ``startup`` step.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

#: Imported in the dependency stage besides every requirement's top-level packages: the server's
#: web stack and skops' loader (which imports all of scikit-learn to list its estimators).
DEPS_STACK = ["starlette.applications", "uvicorn", "uvicorn.protocols.http.h11_impl",
              "uvicorn.protocols.http.httptools_impl", "uvicorn.loops.uvloop", "orjson",
              "prometheus_client", "pandas", "numpy", "click", "yaml", "skops.io", "cloudpickle"]


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


def deps(requirements_file: str = "/tmp/requirements.txt") -> None:
    """Import the serving stack and every requirement, writing bytecode into the build cache."""
    modules = DEPS_STACK + top_level_modules(requirements_file)
    failed = []
    for name in dict.fromkeys(modules):
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - only a start-up optimisation
            failed.append(f"{name} ({type(exc).__name__})")
    print(f"warmup: imported {len(modules) - len(failed)} modules"
          + (f"; skipped {', '.join(failed)}" if failed else ""))


# The server, run as the image's entrypoint runs it; on exit it writes the source files of the
# modules it imported into WORKBENCH_WARMUP_MODULES. uvicorn raises SIGTERM again once it has shut
# down, with the handler it found installed: that handler writes the list.
_SERVER = """
import atexit, json, os, runpy, signal, sys
def _dump(*_):
    files = sorted({m.__file__ for m in list(sys.modules.values())
                    if isinstance(getattr(m, "__file__", None), str) and m.__file__.endswith(".py")})
    with open(os.environ["WORKBENCH_WARMUP_MODULES"], "w") as f:
        json.dump(files, f)
    if _:
        os._exit(0)
atexit.register(_dump)
signal.signal(signal.SIGTERM, _dump)
sys.argv = ["workbench", *sys.argv[1:]]
runpy.run_module("workbench", run_name="__main__")
"""

#: Where the image's own Python code lives: the bytecode of these folders is kept (the base image's
#: standard library brings its own).
KEPT_ROOTS = ("/opt/venv-model/", "/opt/workbench/")


def keep_bytecode(source: Path, dest: Path) -> bool:
    """Write the bytecode of ``source`` (already compiled into the build cache) as a hash-checked
    ``.pyc`` in ``dest``, which mirrors the image's folders: ``dest/opt/.../__pycache__/x.pyc``.

    Hash-checked (PEP 552), not stamped with the source's modification time: the build cache may
    put the same files into the image with other times, and a stamped ``.pyc`` would then be ignored.
    """
    cached = Path(importlib.util.cache_from_source(str(source)))
    if not cached.is_file():
        return False
    data = cached.read_bytes()
    flags = int.from_bytes(data[4:8], "little")
    if data[:4] != importlib.util.MAGIC_NUMBER or flags != 0:
        return False
    header = data[:4] + (0b11).to_bytes(4, "little") + importlib.util.source_hash(source.read_bytes())
    target = dest / source.parent.relative_to("/") / "__pycache__" / Path(importlib.util.cache_from_source(
        str(source))).name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(header + data[16:])
    return True


def _example_request(model_dir: Path) -> bytes | None:
    example = model_dir / "serving_input_example.json"
    return example.read_bytes() if example.is_file() else None


def startup(model_dir: str, dest: str, timeout: float = 300.0) -> None:
    """Start the server once on the model (from its snapshot, as the image will) and keep the
    bytecode of what it imported in ``DEST/pycache``."""
    from workbench.serving.command import serve_args

    model, out = Path(model_dir), Path(dest)
    with tempfile.TemporaryDirectory() as tmp:
        snapshot_dir = Path(tmp) / "snapshot"
        snapshot(model_dir, str(snapshot_dir))
        port_file, modules_file = Path(tmp) / "port", Path(tmp) / "modules.json"
        env = {**os.environ, "WORKBENCH_WARMUP_MODULES": str(modules_file), "WORKBENCH_HOME": tmp}
        cmd = [sys.executable, "-c", _SERVER, *serve_args(model, snapshot=snapshot_dir, port=0,
                                                          log_dir=Path(tmp) / "log", port_file=port_file)]
        server = subprocess.Popen(cmd, env=env)
        started = time.monotonic()
        try:
            while not port_file.exists() and server.poll() is None and time.monotonic() - started < timeout:
                time.sleep(0.1)
            if port_file.exists():
                print(f"warmup: the server was ready after {time.monotonic() - started:.1f} s")
                body = _example_request(model)
                if body is not None:
                    request = urllib.request.Request(
                        f"http://127.0.0.1:{port_file.read_text()}/invocations", data=body,
                        headers={"Content-Type": "application/json"})
                    try:
                        urllib.request.urlopen(request, timeout=60).read()
                    except Exception as exc:  # noqa: BLE001 - a model may refuse its example
                        print(f"warmup: the input example was not answered ({exc})")
            else:
                print("warmup: the server did not start; its modules compile when the image starts")
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    server.kill()
        if not modules_file.exists():
            print("warmup: the server's modules are not known; they compile when the image starts")
            return
        sources = [Path(f) for f in json.loads(modules_file.read_text()) if f.startswith(KEPT_ROOTS)]
        kept = sum(keep_bytecode(source, out / "pycache") for source in sources if source.is_file())
        print(f"warmup: kept the bytecode of the {kept} modules the server imported")


def snapshot(model_dir: str, dest: str) -> None:
    """Write the model's snapshot into ``DEST`` (see :mod:`workbench.serving.flavors`)."""
    from workbench.serving.flavors import write_snapshot

    try:
        wrote = write_snapshot(Path(model_dir), Path(dest))
        print(f"warmup: {'wrote a snapshot of the model' if wrote else 'the model loads fast as it is'}")
    except Exception as exc:  # noqa: BLE001 - the server then loads the model the usual way
        Path(dest).mkdir(parents=True, exist_ok=True)
        print(f"warmup: no snapshot ({type(exc).__name__}: {exc})")


def main() -> None:
    if sys.argv[1:2] == ["deps"]:
        deps(*sys.argv[2:3])
    elif sys.argv[1:2] == ["snapshot"] and len(sys.argv) == 4:
        snapshot(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["startup"] and len(sys.argv) == 4:
        startup(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit("usage: warmup.py deps [REQUIREMENTS] | warmup.py startup MODEL_DIR DEST | "
                         "warmup.py snapshot MODEL_DIR DEST")


if __name__ == "__main__":
    main()
