"""How the process allocates: memory given back after a burst of large bodies.

glibc serves allocations below a moving threshold (it grows up to 32 MB as large blocks are
freed) from its heap, and a heap fragmented by many 300 KB bodies is not returned to the system
when they are freed: a proxy whose queue once filled would keep that RSS for good. Fixing the
threshold at 128 KiB serves every body-sized buffer with its own mapping, which ``free`` unmaps.
Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
"""glibc's mallopt parameter number (malloc.h)."""
MMAP_THRESHOLD = 128 * 1024


def give_back_large_buffers() -> bool:
    """Serve allocations of ``MMAP_THRESHOLD`` or more with their own mappings; ``True`` when
    the allocator took the setting."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False  # not glibc
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
