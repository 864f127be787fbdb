"""Giving memory back to the system after a large request.

glibc's allocator keeps what a process freed for later use: after a request of many megabytes, a
server would hold its peak size for good (freed blocks in the heap and in the arenas of the model's
and the log's threads, and a raised mmap threshold), and a body caught in a reference cycle waits
for the garbage collector. :func:`release_memory` asks glibc to return the
free memory at the top of each arena and whole free pages inside them (``malloc_trim``); the server
calls it once the answer to a large request is sent. :func:`return_large_blocks` (called when the
server starts) keeps glibc from raising its mmap threshold, so that blocks of 128 KiB and more
(a request's body, its columns) go back to the system as soon as they are freed. On other C
libraries both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from typing import Any

__all__ = ["RELEASE_AFTER_BYTES", "release_memory", "return_large_blocks"]

#: Requests with a body at least this large are followed by :func:`release_memory`.
RELEASE_AFTER_BYTES = 1024 * 1024


#: glibc's ``mallopt`` parameter M_MMAP_THRESHOLD, and the size it is fixed at.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 128 * 1024


@functools.cache
def _glibc(function: str) -> Any:
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), function)
    except (OSError, AttributeError):  # not glibc: nothing to ask
        return None


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold at 128 KiB (its default, which it otherwise raises up to 32 MiB
    after the first large block is freed); whether it was set."""
    mallopt = _glibc("mallopt")
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) if mallopt is not None else False


def release_memory() -> bool:
    """Collect garbage, then return free heap memory to the system (glibc's ``malloc_trim(0)``);
    whether any was. A request's body can sit in reference cycles (the HTTP stack's objects)
    that only a full collection frees, which would otherwise come whenever enough allocations add up."""
    gc.collect()
    trim = _glibc("malloc_trim")
    return bool(trim(0)) if trim is not None else False
