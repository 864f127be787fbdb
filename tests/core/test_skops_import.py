"""Loading scikit-learn models imports skops, and skops lists every scikit-learn estimator: that must
not import PyTorch (660 MB in every model server) when it happens to be installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from tests.conftest import need

_PROBE = """
import sys
from workbench._skops import skops_io
skops_io()
print("torch" in sys.modules)
import sklearn.externals.array_api_compat.torch as shim  # asked for by name, the real shim still loads
print(hasattr(shim, "asarray") and "torch" in sys.modules)
"""


def test_skops_comes_without_pytorch_and_the_shim_still_loads_when_asked() -> None:
    need(importlib.util.find_spec("torch") is not None, "torch is not installed: `make setup` installs the test extra")
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "True"]
