"""glibc's malloc thresholds, set once for the large short-lived buffers of chunk I/O.

A tile stream allocates and frees a buffer of a few hundred KiB to a few MiB per chunk (bytes read,
decoded tiles, the codecs' own scratch). glibc serves blocks above ``M_MMAP_THRESHOLD`` with
``mmap`` and returns a heap's free top to the kernel once it passes ``M_TRIM_THRESHOLD``; both start
low (128 KiB) and only grow after a large ``mmap``-ed block is freed. Until then, and whenever the
window of live tiles shrinks, the memory goes back to the kernel and comes back as fresh pages: a
page fault per 4 KiB, zeroed by the kernel, on every chunk. Measured on the 512x512 uint16 tiles of
``benchmarks/bench_stream.py`` (local disk, 2 cores): 15,000-19,000 minor faults per 537 MB streamed,
~1,500 with the thresholds below, and 8-9% more MB/s.

:func:`tune_malloc` sets the thresholds glibc itself adopts after freeing one 32 MiB block
(``mmap`` above 32 MiB, trim above 64 MiB), once per process, when the first pool of decode threads
is made. It does nothing off glibc, when the process already tunes malloc (``GLIBC_TUNABLES`` or a
``MALLOC_*`` variable in the environment), or when ``NGIO_ASYNC_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_malloc"]

MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3
_OPT_OUT = "NGIO_ASYNC_MALLOC_TUNING"

_lock = threading.Lock()
_result: bool | None = None


def _wanted() -> bool:
    if os.environ.get(_OPT_OUT, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if "GLIBC_TUNABLES" in os.environ or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds (see the module); whether they are set. Idempotent."""
    global _result
    with _lock:
        if _result is None:
            _result = False
            if _wanted():
                try:
                    mallopt = ctypes.CDLL(None).mallopt
                except (OSError, AttributeError):
                    return False
                mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
                mallopt.restype = ctypes.c_int
                _result = (
                    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                    and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
                )
        return _result
