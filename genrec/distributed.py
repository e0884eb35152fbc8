"""Sharding work over ``torchrun`` processes and gathering it back in the original order.

Only the shard/gather is distributed (``all_gather_object`` over gloo, which carries Python objects
on CPU and GPU machines alike); everything else runs on rank 0. Without torchrun it is one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice
from typing import Callable, Sequence, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

BARRIER_TIMEOUT = timedelta(hours=6)
"""How long a torchrun process waits for the others: the other ranks wait while the main one reads the training
playlists or builds the training examples, longer on a large corpus than torch's default half hour."""


@dataclass
class Shards:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Shards":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: str) -> str:
        """One GPU per process under torchrun."""
        return f"cuda:{self.local_rank}" if device == "cuda" and self.world > 1 else device

    def split(self, items: Sequence[T], block: int = 1) -> list[T]:
        """This rank's items: every world-th block of ``block`` consecutive items, so shards differ by at most one
        block. Decoding shards whole batches, so a title is padded beside the same titles as in one process (equal
        results also need equal threads per process: BLAS sums in another order with another count)."""
        blocks = range(self.rank * block, len(items), self.world * block)
        return [item for start in blocks for item in items[start:start + block]]

    def gather(self, local: list[T], block: int = 1) -> list[T]:
        """Every rank's items back in the order of the sequence ``split`` was given (with the same ``block``)."""
        if self.world == 1:
            return local
        parts: list[list[T]] = [[] for _ in range(self.world)]
        dist.all_gather_object(parts, local)
        return interleaved(parts, block)

    def from_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` run by rank 0 alone and its result sent to every rank (what all need but only the main
        process should hold the inputs of, e.g. popularity counts without the training playlists)."""
        if self.world == 1:
            return compute()
        box = [compute() if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def interleaved(parts: Sequence[Sequence[T]], block: int) -> list[T]:
    """The ranks' parts (``Shards.split`` of one sequence, rank by rank) back in the sequence's order."""
    streams = [iter(part) for part in parts]
    total, out, index = sum(map(len, parts)), [], 0
    while len(out) < total:
        out.extend(islice(streams[index % len(parts)], block))
        index += 1
    return out


def set_threads_for(shards: Shards) -> None:
    """Share the CPU cores between processes instead of oversubscribing them."""
    if shards.world > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // shards.world))
