"""Scale-out: many cartridges shared across processes, GPUs and nodes with torch.distributed.

Launch with ``torchrun`` (``torchrun --nproc_per_node 4 -m ctcnet predict ...``, or across nodes
with ``--nnodes``/``--rdzv_endpoint``): torchrun starts the processes and sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; ``distributed_context`` joins the process group (NCCL on GPUs,
Gloo on CPUs), each rank takes its share of the cartridges (``shard``: static, balanced by frame
count, every cartridge exactly once, like ``DistributedSampler`` without its padding, which
would run a cartridge twice into the same folder), runs on GPU ``LOCAL_RANK``, and a barrier
lets rank 0 write the run index once everyone has finished. The jobs of an array
(``--shard K/N``) start at different times, so they split by a hash of each sample's name
instead, which a cartridge added or removed between them does not move.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ctcnet.errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a torchrun launch (rank 0 of 1 when run alone)."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes the run index."""
        return self.rank == 0


def env_info() -> DistInfo:
    """Rank, world size and local rank as torchrun (or any launcher) sets them; one that is
    no whole number (a job template's leftover, set empty) is refused in one line."""
    def whole(name: str, default: int) -> int:
        text = os.environ.get(name)
        if text is None:
            return default
        try:
            return int(text)
        except ValueError:
            raise InputError(f"{name}={text!r} is no whole number (torchrun sets it; a job "
                             f"template's leftover?): unset {name}") from None

    return DistInfo(whole("RANK", 0), whole("WORLD_SIZE", 1), whole("LOCAL_RANK", 0))


def shard(items: Sequence[T], rank: int, world_size: int,
          weight: Callable[[T], float] | None = None,
          key: Callable[[T], str] | None = None) -> list[T]:
    """This rank's share of ``items``: each item exactly once across ranks.

    Without ``key``, loads balanced: items are dealt largest first to the least loaded rank
    (deterministic, so every rank computes the same assignment from the same items without
    talking to the others). With ``key`` (an item's name), by a hash of that name alone, so an
    item's rank does not depend on the other items: jobs that start at different times (an
    array's) may see a folder that gained or lost items between them, and each item still has
    exactly one rank. Order within a share follows the input order.
    """
    if world_size <= 1:
        return list(items)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    if key is not None:
        return [it for it in items if stable_rank(key(it), world_size) == rank]
    weights = [float(weight(it)) if weight else 1.0 for it in items]
    order = sorted(range(len(items)), key=lambda i: (-weights[i], i))
    load = [0.0] * world_size
    owner = [0] * len(items)
    for i in order:
        r = min(range(world_size), key=lambda k: (load[k], k))
        owner[i] = r
        load[r] += weights[i]
    return [it for i, it in enumerate(items) if owner[i] == rank]


def stable_rank(name: str, world_size: int) -> int:
    """The rank a name falls to among ``world_size``: the same in every process, run and
    Python (a SHA-256 of the name, not ``hash``, which differs between processes)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % world_size


@contextlib.contextmanager
def distributed_context(device: str = "auto") -> Iterator[tuple[DistInfo, str]]:
    """Join the process group when launched by torchrun; yields (info, device for this rank).

    Single-process runs (no ``WORLD_SIZE``) pass through untouched.
    """
    info = env_info()
    if info.world_size <= 1:
        yield info, device
        return
    # A launcher sets them all; WORLD_SIZE without them is a leftover, which torch's
    # rendezvous met with a traceback ("environment variable RANK expected, but not set").
    unset = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if unset:
        raise InputError(f"WORLD_SIZE={info.world_size} without {', '.join(unset)}: not set by "
                         "torchrun (a job template's leftover?); unset WORLD_SIZE, or run under "
                         "torchrun")
    import torch
    import torch.distributed as dist

    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
        device = f"cuda:{info.local_rank}"
    else:
        device = "cpu"
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        yield info, device
        barrier()
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank, when a process group is running (a no-op otherwise)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
