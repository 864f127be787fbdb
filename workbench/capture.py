"""The code that trained a model, captured at ``log_model`` and stored with the model.

In a notebook (any IPython shell) that is the cells executed so far, in order, each under an
``# In[n]:`` line as Jupyter's own export writes them; in a script, the script file. Inside a git
repository the commit checked out and the uncommitted changes (``git diff HEAD``) come too. Each file
is cut at the ``max_code_bytes`` setting, and ``training_code/capture.json`` says what was kept, its
size and whether it was cut. ``log_model(..., capture_code=False)`` or ``WORKBENCH_CAPTURE_CODE=0`` turns it off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["CODE_DIR", "CODE_MANIFEST", "GIT_DIFF_FILE", "CapturedCode", "capture_code", "git_commit"]

#: The folder of a model's artifacts that holds the captured code.
CODE_DIR = "training_code"
#: What was captured (source kind, file names, sizes, commit), inside :data:`CODE_DIR`.
CODE_MANIFEST = "capture.json"
#: The file names inside :data:`CODE_DIR`.
NOTEBOOK_FILE = "notebook.py"
GIT_DIFF_FILE = "uncommitted.diff"


@dataclass(frozen=True)
class CapturedCode:
    """The code behind a model: the notebook's cells or the script, and the git state."""

    source: Literal["notebook", "script"] | None
    #: Where it came from: the script's path, or ``None`` for a notebook.
    path: str | None
    #: File name (in :data:`CODE_DIR`) -> text, cut at the size limit.
    files: Mapping[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    #: Files that were longer than the limit and were cut.
    cut: tuple[str, ...] = ()
    #: The script's command-line arguments (``sys.argv[1:]``), so the script can be run again alike.
    args: tuple[str, ...] = ()
    #: The working directory the code ran in (relative paths it read are relative to it).
    workdir: str | None = None
    #: Which ``log_model`` call of the process this was (1 for the first), so a re-run stops at it.
    log_model_call: int = 1

    @property
    def code_file(self) -> str | None:
        """The name of the file holding the notebook's cells or the script."""
        return next((name for name in self.files if name != GIT_DIFF_FILE), None)

    def manifest(self) -> dict[str, Any]:
        """What :func:`save` writes to ``capture.json``."""
        return {"source": self.source, "path": self.path, "code_file": self.code_file,
                "git_commit": self.git_commit,
                "bytes": {name: len(text.encode()) for name, text in self.files.items()},
                "cut": list(self.cut), "args": list(self.args), "workdir": self.workdir,
                "log_model_call": self.log_model_call}

    def save(self, directory: Path) -> Path:
        """Write the files and the manifest into ``directory / CODE_DIR``."""
        folder = directory / CODE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (folder / name).write_text(text)
        (folder / CODE_MANIFEST).write_text(json.dumps(self.manifest(), indent=2))
        return folder


def _notebook_cells() -> str | None:
    """The cells the IPython shell of this process has executed, or ``None`` outside IPython."""
    ipython = sys.modules.get("IPython")  # never imported here: only a running shell has cells
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return None
    cells = shell.user_ns.get("In") or []
    return "\n\n".join(f"# In[{n}]:\n{cell.rstrip()}\n" for n, cell in enumerate(cells) if n and cell.strip())


def _script() -> Path | None:
    """The script this process runs, unless it is a tool's entry point (pytest, an installed command)."""
    if not sys.argv or not sys.argv[0] or sys.argv[0] in ("-c", "-m"):
        return None
    path = Path(sys.argv[0]).resolve()
    installed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    if not path.is_file() or any(path.is_relative_to(root) for root in installed) or "site-packages" in path.parts:
        return None
    return path


def git_commit(path: str | os.PathLike[str] | None = None) -> str | None:
    """The commit checked out in the git repository containing ``path`` (default: the cwd)."""
    commit = (_git(["rev-parse", "HEAD"], path) or "").strip()
    return commit if len(commit) == 40 else None


def _git(args: list[str], cwd: str | os.PathLike[str] | None) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd or os.getcwd(), capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _cut(text: str, limit: int) -> tuple[str, bool]:
    data = text.encode()
    if len(data) <= limit:
        return text, False
    return data[:limit].decode(errors="ignore"), True


def capture_code(max_bytes: int, log_model_call: int = 1) -> CapturedCode | None:
    """The code of this process as it is now (``None`` when there is neither a notebook nor a script),
    each file cut at ``max_bytes``; ``log_model_call`` numbers the ``log_model`` call asking."""
    cells = _notebook_cells()
    script = None if cells is not None else _script()
    if cells is None and script is None:
        return None
    files: dict[str, str] = {}
    if cells is not None:
        files[NOTEBOOK_FILE] = cells
    elif script is not None:
        files[script.name if script.name not in (GIT_DIFF_FILE, CODE_MANIFEST) else "script.py"] = script.read_text(
            errors="replace")
    where = script.parent if script is not None else Path(os.getcwd())
    commit = git_commit(where)
    if commit:
        uncommitted = _git(["diff", "HEAD"], where)
        if uncommitted:
            files[GIT_DIFF_FILE] = uncommitted
    kept: dict[str, str] = {}
    cut = []
    for name, text in files.items():
        kept[name], was_cut = _cut(text, max_bytes)
        if was_cut:
            cut.append(name)
    return CapturedCode("notebook" if cells is not None else "script", str(script) if script else None,
                        MappingProxyType(kept), commit, tuple(cut),
                        args=tuple(sys.argv[1:]) if script is not None else (), workdir=os.getcwd(),
                        log_model_call=log_model_call)
