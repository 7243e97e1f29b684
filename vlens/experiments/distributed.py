"""Many processes on one or many machines: `torchrun` / `accelerate launch` around `vlens run`.

    torchrun --nproc-per-node 8 -m vlens run global1 --model ckpt/ --data videomme:/data --device cuda --out runs/vm
    accelerate launch --num-processes 8 -m vlens run global1 ...           # same environment variables

Both launchers set RANK, WORLD_SIZE, LOCAL_RANK (and MASTER_ADDR/PORT). `vlens.run.run` reads them
here: rank r of W takes every W-th sample of its `--shard` (one model per rank, on `cuda:LOCAL_RANK`
when `--device cuda`), writes its own part file of the store, and meets the others at a barrier;
rank 0 then writes the report. The only communication is that barrier and a gather of the
per-rank counts, over a gloo process group (CPU sockets, whatever device the model is on), so the
same code runs across nodes and in CI with two CPU processes.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch.distributed as dist

# Ranks finish their shares at different times (videos differ in length); the barrier waits that
# long before gloo gives up. Override with VLENS_DIST_TIMEOUT_S.
DEFAULT_TIMEOUT_S = 48 * 3600


@dataclass(frozen=True)
class World:
    """This process's place among the launched processes (rank 0 of 1 without a launcher)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """The world the launcher (torchrun, accelerate launch) describes in the environment.

    Raises:
        ValueError: the variables are inconsistent (e.g. RANK ≥ WORLD_SIZE).
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if size < 1 or not 0 <= rank < size:
        raise ValueError(
            f"RANK={rank} WORLD_SIZE={size} in the environment are inconsistent; launch with torchrun "
            "or accelerate launch, or unset them"
        )
    return World(rank, size, local)


def shard_for(user_shard: tuple[int, int], w: World) -> tuple[int, int]:
    """Combine `--shard i/n` with the launcher's ranks: rank r of W takes the r-th W-th of shard i,
    i.e. shard (i + n·r) of n·W, a subset of the samples `--shard i/n` alone would take."""
    i, n = user_shard
    return i + n * w.rank, n * w.size


def device_for(device: str, w: World) -> str:
    """`cuda` (no index) becomes `cuda:LOCAL_RANK` in a multi-process run: one model per GPU."""
    if w.size > 1 and device == "cuda":
        return f"cuda:{w.local_rank}"
    return device


@contextmanager
def process_group(w: World) -> Iterator[None]:
    """A gloo process group for the barrier and the gather (none for a single process; an existing
    group, e.g. accelerate's, is used as it is and left open)."""
    created = False
    if w.size > 1 and not dist.is_initialized():
        timeout = datetime.timedelta(seconds=float(os.environ.get("VLENS_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S)))
        dist.init_process_group("gloo", rank=w.rank, world_size=w.size, timeout=timeout)
        created = True
    try:
        yield
    finally:
        if created:
            dist.destroy_process_group()


def gather(obj: object, w: World) -> list:
    """Every rank's `obj` (a picklable value), in rank order; `[obj]` for one process. Also a barrier."""
    if w.size == 1 or not dist.is_initialized():
        return [obj]
    out: list = [None] * w.size
    dist.all_gather_object(out, obj)
    return out


def barrier(w: World) -> None:
    """Wait for every rank (no-op for one process)."""
    if w.size > 1 and dist.is_initialized():
        dist.barrier()
