"""Content hashes of what the workbench stores with a model, checked before anything is loaded or run.

At ``log_model`` the workbench hashes every file of the logged model (the flavor's files and MLmodel,
the captured code ``training_code/*``, the snapshot manifest, the reference profile, ...) into
``workbench/hashes.json`` beside them, and records that manifest's own SHA-256 as the logged model's
tag ``workbench.artifacts_sha256``: the tag lives in the tracking store's database, the files in its
artifact store. Before a model is loaded (deploy, serve, package, diff), its profile read, or its
code run (reproduce), the files are checked against the manifest and the manifest against the tag;
a difference is an :class:`~workbench.errors.IntegrityError` naming the file.

What it catches: files changed, replaced or removed in the artifact store after logging (by anyone
who can write there but not the tracking database, or by a damaged disk or copy). What it cannot
catch: someone who can write both the artifacts and the tag, exactly as MLflow's own pickles; so
reproducing another user's model asks for consent (``trust=True``). Models logged before this, or by
MLflow directly, carry no manifest and are loaded as MLflow loads them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from workbench.errors import IntegrityError

__all__ = ["MANIFEST", "TAG_DIGEST", "digest", "file_hashes", "manifest_bytes", "verify_files", "verify_folder"]

#: Where the manifest sits among the model's files.
MANIFEST = "workbench/hashes.json"
#: The logged model's tag holding the manifest's SHA-256.
TAG_DIGEST = "workbench.artifacts_sha256"

_ADVICE = ("Nothing of it was loaded or run. Someone or something changed the model's stored files after "
           "log_model: log the model again from its source, or restore its artifacts")


def digest(data: bytes) -> str:
    """The SHA-256 of ``data``, hex."""
    return hashlib.sha256(data).hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by its relative POSIX path (the manifest itself left out)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): _file_digest(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.relative_to(folder).as_posix() != MANIFEST}


def manifest_bytes(hashes: Mapping[str, str]) -> bytes:
    """The manifest file's content for ``hashes`` (sorted, so the same files give the same digest)."""
    return json.dumps({"sha256": dict(sorted(hashes.items()))}, indent=1, sort_keys=True).encode()


def _read_manifest(raw: bytes | None, expected: str | None, what: str) -> dict[str, str] | None:
    if raw is None:
        if expected is not None:
            raise IntegrityError(f"{what}: {MANIFEST} is missing, though log_model recorded it. {_ADVICE}")
        return None
    if expected is not None and digest(raw) != expected:
        raise IntegrityError(f"{what}: {MANIFEST} changed since log_model (its hash is not the one the tracking "
                             f"store recorded). {_ADVICE}")
    try:
        hashes = json.loads(raw)["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{what}: {MANIFEST} is not a manifest. {_ADVICE}") from exc
    return {str(k): str(v) for k, v in hashes.items()}


def verify_files(files: Mapping[str, bytes], manifest: bytes | None, expected: str | None, what: str) -> None:
    """Check ``files`` (relative path -> content) against the manifest and the manifest against
    ``expected``; a file the manifest does not list is refused too, when there is a manifest."""
    hashes = _read_manifest(manifest, expected, what)
    if hashes is None:
        return
    for name, data in files.items():
        if name not in hashes:
            raise IntegrityError(f"{what}: {name} was not stored by log_model. {_ADVICE}")
        if digest(data) != hashes[name]:
            raise IntegrityError(f"{what}: {name} changed since log_model. {_ADVICE}")


def verify_folder(folder: Path, expected: str | None, what: str, *, only: Iterable[str] | None = None) -> None:
    """Check the model files in ``folder`` (or the ``only`` paths, or paths under those folders)
    against its manifest and the manifest against ``expected`` (``None``: the tag is not known, and
    a folder without a manifest is not checked). Files the manifest does not list are left alone:
    the model's flavor reads only files its MLmodel (a listed file) names."""
    folder = Path(folder)
    path = folder / MANIFEST
    hashes = _read_manifest(path.read_bytes() if path.is_file() else None, expected, what)
    if hashes is None:
        return
    prefixes = tuple(only) if only is not None else None
    for name, wanted in hashes.items():
        if prefixes is not None and not any(name == p or name.startswith(p.rstrip("/") + "/") for p in prefixes):
            continue
        file = folder / name
        if not file.is_file() or file.is_symlink():
            raise IntegrityError(f"{what}: {name} is missing. {_ADVICE}")
        if _file_digest(file) != wanted:
            raise IntegrityError(f"{what}: {name} changed since log_model. {_ADVICE}")
