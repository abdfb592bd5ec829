"""What a predict run asks of the machine beyond its own work: BLAS on one thread beside the
model (:func:`single_threaded_blas`), one heap for all its threads (:func:`one_malloc_arena`),
freed memory kept for the frame loop (:func:`keep_frame_buffers`) and handed back to the
system between the run's later stages (:func:`release_free_memory`), and the peak memory it
reports (:func:`peak_memory_mb`, its worker processes' :func:`children_peak_memory_mb`);
the machine's memory (:func:`physical_memory_bytes`) and the cores it may run on
(:func:`cpu_cores`), shared between its frame workers and a CPU model's threads.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path


def single_threaded_blas():
    """BLAS on one thread for the run: its matrix products are small (crop resampling, the
    guard's leak fit) and run beside the model; a BLAS pool of its own would fight the model's
    threads for the cores (and spins on a busy machine)."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it BLAS keeps its own setting
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
# What glibc's own adaptive thresholds reach once a frame's buffers have been freed (its
# largest mmap threshold on 64-bit, and the trim threshold it then sets at twice that).
FRAME_LOOP_MMAP = 32 << 20
FRAME_LOOP_TRIM = 64 << 20


@functools.lru_cache(maxsize=1)
def _libc():
    """glibc through ctypes, or None (another C library, or none found). Looked up once a
    process: ``find_library`` runs ``ldconfig`` in a subprocess, and a run asks before every
    cartridge's frames and twice after."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (OSError, AttributeError, TypeError):
        return None


# The most cores on which the predict run's threads share one heap: what was measured (2
# cores, two frame threads beside the model). A GPU server runs up to eight frame threads
# beside the model and the finishing thread; one heap's lock among them is unmeasured there, so
# glibc's own number of heaps stays.
ONE_ARENA_MAX_CORES = 3


def one_malloc_arena(cores: int) -> bool:
    """On a machine of at most ``ONE_ARENA_MAX_CORES`` cores, let every thread of the process
    allocate from one glibc heap (arena), not one each; returns whether it was asked for.

    A frame thread's own arena grows in heaps of at most 64 MiB, which a frame's buffers (a
    frame of 29 MB, its crops of 37 MB and their measurements) fill and empty many times a
    second; glibc hands an emptied heap's pages back and the next frame faults them in again.
    With one arena the frame loop's buffers stay mapped. On 2 cores, runs with and without it
    taking turns: 40 frames (four pairs, each faster with it), 57-65 against 77-84 thousand
    page faults, 0.8-1.1 against 1.5-2.1 s of kernel time, 3.6 % less wall time; 175 frames
    with the report (three pairs), 96-113 against 340-409 thousand page faults, 3.9-4.7
    against 5.3-6.5 s of kernel time (the wall time within the machine's noise), and a peak
    RSS of 614-619 against 720-748 MB (two more pairs). glibc fixes the number of arenas when a
    second thread first allocates, so this is called before any thread starts (the predict
    command's first step); later it changes nothing. Elsewhere a no-op."""
    libc = _libc()
    if libc is None or cores > ONE_ARENA_MAX_CORES:
        return False
    libc.mallopt(_M_ARENA_MAX, 1)
    return True


def keep_frame_buffers() -> None:
    """Before a cartridge's frame loop: let freed blocks of up to 32 MiB stay in the heaps for
    the next frame (glibc's own thresholds once it has adapted to such buffers). Without it
    every cartridge after a process's first ran its frames under the 1 MiB threshold
    :func:`release_free_memory` had set for the report: each frame-sized array of every
    stage was mapped and faulted in afresh, and the kernel's share of the CPU time tripled
    (1.8 to 5.5 s on 60 frames). Elsewhere a no-op."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, FRAME_LOOP_MMAP)
        libc.mallopt(_M_TRIM_THRESHOLD, FRAME_LOOP_TRIM)


def release_free_memory() -> None:
    """Hand freed memory back to the system (glibc's ``malloc_trim``), and from here on unmap
    every block of 1 MiB or more when it is freed. Called after the frame loop and again after
    the events tables are written (reading a thousand journal parts leaves tens of MB of small
    free blocks in the heap).

    numpy's frame-sized buffers come and go many times a second; glibc then keeps them in its
    heaps instead of unmapping them, so the process would carry the loop's peak into the
    report (which loads torch for saliency). glibc also raises its mmap threshold (up to
    32 MiB) after the first large free, after which the report's saliency batches, freed and
    allocated again per batch, pile up in the heap: fixing the threshold at 1 MiB took the
    saliency of 400 crops from +300 MB to +135 MB. The frame loop keeps glibc's default (its
    buffers are reused, and unmapping them would cost page faults: :func:`keep_frame_buffers`
    sets it back for the next cartridge's). Elsewhere a no-op.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    if "pyarrow" in sys.modules:  # Arrow's own allocator keeps freed blocks for reuse
        sys.modules["pyarrow"].default_memory_pool().release_unused()


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, MB.

    Linux's ``VmHWM`` (the high-water mark of this process's own memory); ``ru_maxrss`` is the
    fallback elsewhere, but on Linux a child started by a big process inherits the parent's
    ``ru_maxrss``, so a benchmark worker would report its parent's peak.
    """
    try:
        return _status_kb("self")["VmHWM"] / 1024.0
    except (OSError, ValueError, IndexError, KeyError):
        import resource  # (Unix's only: imported where read, so the module imports anywhere)

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def children_peak_memory_mb() -> float:
    """The peak resident memory of this process's running children (its frame processes, a
    report process), summed, MB: each one's ``VmHWM`` less what it shares with this process,
    which this process counts already: the shared memory it holds now (``RssShmem``: the
    frames' results it handed over) and its mapped files (``RssFile``: the same libraries).
    The children are found through Linux's ``/proc/self/task/*/children``; 0 where that does
    not tell."""
    total = 0.0
    try:
        tasks = list(Path("/proc/self/task").iterdir())
    except OSError:
        return 0.0
    pids = set()
    for task in tasks:
        try:
            pids.update((task / "children").read_text(encoding="ascii").split())
        except OSError:
            continue
    for pid in pids:
        try:
            fields = _status_kb(pid)
            kb = fields["VmHWM"] - fields.get("RssShmem", 0) - fields.get("RssFile", 0)
        except (OSError, ValueError, IndexError, KeyError):
            continue
        total += max(kb, 0) / 1024.0
    return total


def _status_kb(pid: str) -> dict[str, int]:
    """The memory fields (``Vm*``, ``Rss*``) of Linux's ``/proc/<pid>/status``, in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name.startswith(("Vm", "Rss")):
            fields[name] = int(value.split()[0])
    return fields


# The cores a predict process takes as its own when it shares the machine with others: each
# process of ``ctcnet predict --processes N`` is given its share (the machine's cores / N),
# so that its frame workers and model threads are sized to it, not to the whole machine.
CORES_ENV = "CTCNET_CORES"


def physical_memory_bytes() -> int | None:
    """The machine's physical memory in bytes, None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, as a container or taskset sets it),
    shared with the other torchrun ranks of its node (``LOCAL_WORLD_SIZE``), at most
    ``CTCNET_CORES`` where that is set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
    # A node's torchrun ranks divide its cores as --processes' processes do, or each sizes its
    # frame workers and model threads to the whole machine (4 ranks on 16 cores: ~64 threads).
    cores //= _whole_count("LOCAL_WORLD_SIZE") or 1
    return max(1, min(cores, _whole_count(CORES_ENV) or cores))


def _whole_count(name: str) -> int | None:
    """The environment's count ``name``, where it is a whole number above 0 (else None)."""
    text = os.environ.get(name, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def cpu_frame_workers(cores: int | None = None) -> int:
    """Frame threads (read, detect, crop, the guard's measurements) beside a CPU model: one per
    four cores, at least one, and two on a 2-3 core machine. There the frame work is the larger
    part (175 frames: ~36 s of CPU against the model's ~23 s), so with one frame thread the
    model's core waits; with two the OS keeps both cores busy (2 cores, 175 frames,
    ``--no-report``: 35.5 against 38.8 s, medians of 4 alternating runs; ~150 MB more peak
    memory; docs/benchmarks.md)."""
    cores = cpu_cores() if cores is None else cores
    if cores in (2, 3):
        return 2
    return max(1, min(4, cores // 4))


def cpu_model_threads(cores: int | None = None) -> int:
    """Intra-op threads of a CPU model: the cores the frame workers leave, at least one."""
    cores = cpu_cores() if cores is None else cores
    return max(1, cores - cpu_frame_workers(cores))
