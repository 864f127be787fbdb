"""Giving memory back to the system after a large request.

glibc's allocator keeps what a process freed for later use: after a request of many megabytes, a
server would hold its peak size for good (freed blocks in the heap and in the arenas of the model's
and the log's threads, and a raised mmap threshold). :func:`release_memory` asks glibc to return the
free memory at the top of each arena and whole free pages inside them (``malloc_trim``); the server
calls it once the answer to a large request is sent. On other C libraries it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

__all__ = ["RELEASE_AFTER_BYTES", "release_memory"]

#: Requests with a body at least this large are followed by :func:`release_memory`.
RELEASE_AFTER_BYTES = 1024 * 1024


@functools.cache
def _malloc_trim() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to ask
        return None


def release_memory() -> bool:
    """Return free heap memory to the system (glibc's ``malloc_trim(0)``); whether any was."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
