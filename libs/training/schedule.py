"""Learning-rate schedule and the deterministic, sharded, resumable order of training clips."""
from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler


def lr_at(epoch: int, base_lr: float, gamma: float, milestones: Sequence[int]) -> float:
    """base_lr x gamma^(milestones reached by `epoch`).

    (The original multiplied the learning rate by itself at each milestone; this is the intended step decay.)
    """
    return base_lr * gamma ** sum(1 for m in milestones if epoch >= m)


class EpochSampler(Sampler):
    """A permutation of the data set seeded by (seed, epoch), sharded across ranks, skippable."""

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.size, self.seed, self.rank, self.world = size, seed, rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Use `epoch`'s order and leave out this rank's first `skip` indices (a resumed epoch)."""
        self.epoch, self.skip = epoch, skip

    def _shard(self) -> list:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        per_rank = -(-self.size // self.world)
        order += order[:per_rank * self.world - self.size]       # every rank gets as many
        return order[self.rank::self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self._shard()[self.skip:])

    def __len__(self) -> int:
        return max(0, -(-self.size // self.world) - self.skip)
