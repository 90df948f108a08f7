"""Host (CPU) memory: keep what a training step frees for the next step, instead of returning it to the system.

PyTorch's CPU tensors come straight from the C library's malloc. glibc unmaps blocks above its mmap threshold
on every free (the threshold starts at 128 KiB and adapts up to 32 MiB), and hands the free memory at the top of
its heap back to the system once it exceeds the trim threshold (twice the mmap threshold). A training step frees
most of its activations at its end, so the next step page-faults much of that memory in again, zero-filled;
how much depends on the process's address-space layout. Methods that keep more activations for the backward
pass (the adapters keep their inputs) pay the most; with freed memory kept, steps stop faulting after the first
ones. docs/host-memory.md has the measurements.

`keep_freed_memory()` sets the mmap threshold to glibc's ceiling (32 MiB) and never trims the heap. The
process's resident memory then stays at its peak instead of shrinking between steps. An allocation pattern that
fragments the heap can make it grow instead (Intrinsic-SAID's Fastfood projections on a CPU did);
`return_freed_memory()` fixes the thresholds where glibc's adaptive ones end up, which returns freed memory
after a step as far as the process's memory layout lets it. `apply_host_memory(keep_freed)` picks one of the two.
They are process-wide and last until the process ends. Where the C library is not glibc they do nothing (and say
so by returning False).
"""

from __future__ import annotations

import ctypes

import lightning as L

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD_CEILING = 32 * 2**20  # glibc's largest mmap threshold on 64-bit systems
NEVER_TRIM = 2**31 - 1  # mallopt takes an int: the largest trim threshold it accepts


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None
    except OSError:
        return None


def set_malloc_thresholds(mmap_threshold: int, trim_threshold: int | None = None) -> bool:
    """glibc only: allocations above `mmap_threshold` bytes get a mapping of their own, unmapped when freed, and the
    heap is trimmed when more than `trim_threshold` (default twice the mmap threshold) lies free at its top.
    Setting either stops glibc adapting them. False where there is no glibc (nothing is changed)."""
    libc = _glibc()
    if libc is None:
        return False
    trim = 2 * mmap_threshold if trim_threshold is None else trim_threshold
    return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim))


def keep_freed_memory() -> bool:
    """Keep freed host memory in this process for reuse (see the module's docstring). False without glibc."""
    return set_malloc_thresholds(MMAP_THRESHOLD_CEILING, NEVER_TRIM)


def return_freed_memory() -> bool:
    """Return freed host memory to the system after each step: glibc's thresholds fixed where its adaptive ones
    end up (32 MiB mmap, 64 MiB trim). Bounds the heap where keeping memory lets fragmentation grow it."""
    return set_malloc_thresholds(MMAP_THRESHOLD_CEILING)


def apply_host_memory(keep_freed: bool) -> bool:
    """`keep_freed_memory()` if `keep_freed`, else `return_freed_memory()`: what the `HostMemory` callback does."""
    return keep_freed_memory() if keep_freed else return_freed_memory()


class HostMemory(L.Callback):
    """What the process does with the host memory a step frees, on CPU runs (set from the start of fit, validate,
    test or predict, for the whole process). Runs on a GPU keep the process's malloc defaults.

    Args:
        keep_freed: true keeps it for the next step (glibc's malloc: no heap trimming, 32 MiB mmap threshold),
            so steps do not page-fault it back in (the adapters' steps gain the most). The resident memory stays
            at its peak between steps. false returns it to the system after every step (thresholds fixed at
            32 MiB mmap, 64 MiB trim), for allocation patterns that fragment the heap, such as Intrinsic-SAID's
            Fastfood projections on a CPU (docs/host-memory.md).
    """

    def __init__(self, keep_freed: bool = True) -> None:
        self.keep_freed = keep_freed

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.strategy.root_device.type == "cpu":  # GPU activations never reach glibc: keep its defaults
            apply_host_memory(self.keep_freed)
