"""The one way the workbench keeps things private to the user running it: folders 0700 and files
0600, created without following symbolic links, and checked to belong to this user.

Another local user must not read the workspace (prediction logs hold every input, router configs
hold admin tokens), and must not be able to steer a write into a file of theirs: a folder that
exists already is opened with ``O_NOFOLLOW`` and refused unless this user owns it; a file is
written to a fresh temporary name beside it (``O_EXCL``, so never through a planted link) and moved
into place, so it is 0600 from its first byte, every time, and a reader sees the old or the new
content, never half.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from workbench.errors import ConfigurationError

__all__ = ["check_private", "create_private", "private_folder", "write_private"]


_HINT = "choose another place (WORKBENCH_HOME for the workspace)"


def check_private(fd: int, path: Path, *, tighten: bool = True, hint: str = _HINT) -> os.stat_result:
    """The ``fstat`` of the open folder ``fd``, refused unless this user owns it; one of ours that
    others may enter is tightened to 0700 (``tighten``) or refused."""
    info = os.fstat(fd)
    if info.st_uid != os.geteuid():
        raise ConfigurationError(
            f"{path} belongs to another user (uid {info.st_uid}), not to you (uid {os.geteuid()}): someone "
            f"may have created it to read or redirect your data. Remove it, or {hint}")
    if info.st_mode & 0o077:
        if not tighten:
            raise ConfigurationError(
                f"{path} is not private to you (mode {oct(info.st_mode & 0o777)}, others may enter it): "
                f"remove it, or {hint}")
        os.fchmod(fd, 0o700)
    return info


def private_folder(path: Path, *, tighten: bool = True, hint: str = _HINT) -> Path:
    """``path`` as a folder only this user can enter: created 0700 (its missing parents with the
    usual modes), or an existing one checked (:func:`check_private`) without following a link at
    ``path`` itself. A link or a folder of another user is a :class:`ConfigurationError` whose
    message ends with ``hint`` (what to do instead)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        kind = "a symbolic link" if path.is_symlink() else "not a folder"
        raise ConfigurationError(
            f"{path} is {kind}, where the workbench keeps private files (someone may have put it there "
            f"to redirect them): remove it, or {hint}") from exc
    try:
        check_private(fd, path, tighten=tighten, hint=hint)
    finally:
        os.close(fd)
    return path


def create_private(path: Path) -> None:
    """Create ``path`` empty and 0600 unless it exists (never through a link); SQLite files are
    created so before SQLite opens them, and SQLite gives their journals the same mode."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` 0600 and atomically (a fresh temporary file, fsynced, then
    renamed over it): whatever was there, a link included, is replaced, never written through."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
