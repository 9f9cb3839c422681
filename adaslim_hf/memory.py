"""Keep the memory a process frees for its next allocations (glibc's malloc), instead of returning it.

By default glibc serves every allocation above its mmap threshold (128 KiB, raised dynamically up to 32 MiB)
with a fresh ``mmap`` and gives it back with ``munmap`` when it is freed, so every large tensor's pages fault
in again at first touch. On this project's 2-core machine that costs about 2.5 us per 4 KiB page: writing a
fresh 64 MB tensor takes ~40 ms of faults for ~5 ms of work (``torch.sigmoid`` of 16 M floats: 45-54 ms into
a new tensor, 4-5 ms into a reused one). A training step allocates and frees hundreds of such tensors
(activations of batch x seconds x 64 kHz frames). With ``reuse_freed_memory()`` the freed chunks stay in
the heap and the next step reuses them: a stage-1 step at batch 8 x 4 s took 6.78 s instead of 8.16 s and a
stage-2 step 3.02 s instead of 5.09 s in scripts/benchmark_training.py (docs/training.md), for a
peak resident size about 15% higher that the process keeps until it exits (3.48 against 3.01 GB there).

It changes the allocator of the whole process, so the library never calls it on import: the training loop
(``TrainingSettings.reuse_freed_memory``, on by default) and the ``adaslim`` commands do, and
``ADASLIM_REUSE_FREED_MEMORY=0`` in the environment turns it off everywhere. Elsewhere than glibc on Linux
it does nothing.
"""

import ctypes
import os
import sys

# mallopt parameters, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4

ENVIRONMENT_SWITCH = "ADASLIM_REUSE_FREED_MEMORY"


def reuse_freed_memory(top_pad_mib: int = 64) -> bool:
    """Tell glibc's malloc to serve large allocations from the heap (no mmap), never to trim the heap, and to
    grow it ``top_pad_mib`` MiB at a time. Returns True when applied; False when turned off by
    ``ADASLIM_REUSE_FREED_MEMORY=0`` or when the C library is not glibc (nothing changes then)."""
    if os.environ.get(ENVIRONMENT_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl, or no C library under that name
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = mallopt(_M_MMAP_MAX, 0) == 1
    applied &= mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    applied &= mallopt(_M_TOP_PAD, top_pad_mib << 20) == 1
    return bool(applied)


__all__ = ["ENVIRONMENT_SWITCH", "reuse_freed_memory"]
