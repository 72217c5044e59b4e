"""torchrun / DDP helpers; the environment is read only when `init_distributed` is called."""
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes logs and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def init_distributed(use_cuda: bool, backend: str = "nccl", init_method: str = "env://") -> DistInfo:
    """Join the torchrun process group if WORLD_SIZE > 1 (NCCL on GPUs, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend if use_cuda else "gloo", store=attempt_store(init_method, rank, world),
                            rank=rank, world_size=world)
    return DistInfo(rank, world, local)


def attempt_store(init_method: str, rank: int, world: int) -> dist.Store:
    """The rendezvous store of `init_method`, its keys prefixed by torchrun's restart count: with c10d
    rendezvous the workers of every attempt share the agent's store, and a restarted group would
    otherwise read the gloo addresses that the dead workers of an earlier attempt left there."""
    store, _, _ = next(dist.rendezvous(init_method, rank, world))
    return dist.PrefixStore(f"attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/", store)


# How long ranks wait for rank 0 at the end of an epoch (checkpoint + validation). NCCL gives its
# collectives 10 minutes, far less than a YouTube-VOS validation or DAVIS with correction at R50.
VALIDATION_WAIT = timedelta(hours=24)


def waiting_group(timeout: timedelta = VALIDATION_WAIT):
    """A gloo group of all ranks whose barrier waits up to `timeout`; every rank must create it, in the
    same order as its other groups."""
    return dist.new_group(backend="gloo", timeout=timeout)


def wait_for_all(group) -> None:
    """Block until every rank of `group` (from `waiting_group`) has arrived."""
    dist.barrier(group=group)


def shutdown() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
