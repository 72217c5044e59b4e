"""NVIDIA DALI training data backend (`data_backend DALI`): Python samples clips, DALI decodes and augments.

The Python side (libs.dataset.dali.plan) runs the data sets' own sampling and draws every augmentation
parameter exactly as the PIL backend does; DALI (libs.dataset.dali.graph) decodes the JPEG frames
(`mixed` decoder on a GPU, CPU decoder without one) and applies one resize window, one affine warp
(bilinear for frames, nearest for masks), colour jitter, padding and normalisation per clip. The
batches equal `collate_clips`'s: frames [B, T, 3, H, W] float32, masks [B, T, K+1, H, W] float32
one-hot on the training device, num_objects LongTensor [B], names.

    loaders = DaliLoaders(dataset, batch_size, device, threads=2, workers=1, seed=0)
    Trainer(objective, optimizer, loaders, curriculum, ...)     # asks loaders.epoch(epoch, sampler) each epoch
"""
from typing import Any, Dict, Iterator, List, Optional

import torch
from torch.utils.data import DataLoader

from .plan import ClipPlan, ClipPlanDataset
from ...errors import VOSError
from .available import require_dali


def _plan_list(plans: List[ClipPlan]) -> List[ClipPlan]:
    """DataLoader collate: keep the plans of a batch as a list."""
    return list(plans)


class DaliRunner:
    """The DALI pipelines of one process (one per kind of clip, built on first use) and batch assembly."""

    def __init__(self, device: torch.device, threads: int = 2, seed: int = 0) -> None:
        self.device = torch.device(device)
        self.device_id: Optional[int] = None
        if self.device.type == "cuda":
            self.device_id = self.device.index if self.device.index is not None else torch.cuda.current_device()
        elif self.device.type != "cpu":
            raise VOSError(f"data_backend DALI runs on a CUDA device or the CPU, not {self.device}")
        self.threads, self.seed = threads, seed
        self.pipes: Dict[Any, Any] = {}

    def _pipe(self, key, max_frames: int):
        """The pipeline for clips of `key` (encoded, fill_zero, clamp) taking up to `max_frames` frames a run."""
        from .graph import build_pipeline

        known = self.pipes.get(key)
        if known is None or known[0] < max_frames:
            pipe = build_pipeline(key[0], key[1], max_frames, self.device_id, self.threads, self.seed, clamp=key[2])
            self.pipes[key] = known = (max_frames, pipe)
        return known[1]

    def batch(self, plans: List[ClipPlan]) -> Dict[str, Any]:
        """The training batch of `plans` (the format of collate_clips) on the runner's device."""
        from .graph import output_shapes, run_pipeline

        count, (height, width), objects = output_shapes(plans)
        size = len(plans)
        frames = torch.empty(size, count, 3, height, width, dtype=torch.float32, device=self.device)
        labels = torch.empty(size, count, height, width, 1, dtype=torch.uint8, device=self.device)
        groups: Dict[Any, List[int]] = {}
        for i, plan in enumerate(plans):
            groups.setdefault(plan.key, []).append(i)
        for key, members in groups.items():
            pipe = self._pipe(key, len(plans) * count)
            if len(members) == size:                      # the usual case: DALI writes into the batch itself
                run_pipeline(pipe, plans, frames.view(-1, 3, height, width), labels.view(-1, height, width, 1))
                continue
            part_frames = torch.empty(len(members) * count, 3, height, width, device=self.device)
            part_labels = torch.empty(len(members) * count, height, width, 1, dtype=torch.uint8, device=self.device)
            run_pipeline(pipe, [plans[i] for i in members], part_frames, part_labels)
            index = torch.tensor(members, device=self.device)
            frames[index] = part_frames.view(len(members), count, 3, height, width)
            labels[index] = part_labels.view(len(members), count, height, width, 1)
        return {"frames": frames, "masks": self._one_hot(labels[..., 0], objects),
                "num_objects": torch.tensor([p.num_objects for p in plans], dtype=torch.long),
                "names": [p.name for p in plans], "bad": [record for p in plans for record in p.bad]}

    def _one_hot(self, labels: torch.Tensor, objects: int) -> torch.Tensor:
        """Ids [B, T, H, W] (0..k) -> float32 one-hot [B, T, objects + 1, H, W]."""
        channels = torch.arange(objects + 1, dtype=labels.dtype, device=self.device).view(1, 1, -1, 1, 1)
        return (labels.unsqueeze(2) == channels).float()


class DaliLoader:
    """One epoch of DALI batches: the sampler's indices, planned by `workers` processes, built by DALI."""

    def __init__(self, runner: DaliRunner, dataset, sampler, batch_size: int, workers: int = 0) -> None:
        self.runner, self.plans = runner, ClipPlanDataset(dataset)
        self.sampler, self.batch_size, self.workers = sampler, batch_size, workers

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        plans = DataLoader(self.plans, batch_size=self.batch_size, sampler=self.sampler, num_workers=self.workers,
                           collate_fn=_plan_list, drop_last=True)
        for batch in plans:
            yield self.runner.batch(batch)


class DaliLoaders:
    """The trainer's EpochLoaders with DALI (libs.training.loaders): each epoch a DaliLoader over the epoch's
    clip order. Built once per run: checks now that DALI imports and that every training data set's
    transform can run in DALI; `threads` are DALI's CPU threads, `workers` the processes that plan clips
    (0: in this process)."""

    def __init__(self, dataset, batch_size: int, device: torch.device, threads: int = 2, workers: int = 0,
                 seed: int = 0) -> None:
        require_dali()
        ClipPlanDataset(dataset)
        self.dataset, self.batch_size, self.workers = dataset, batch_size, workers
        self.runner = DaliRunner(device, threads, seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def epoch(self, epoch: int, sampler) -> DaliLoader:
        """The batches of `epoch` (0-based) in `sampler`'s order."""
        self.dataset.set_epoch(epoch)
        return DaliLoader(self.runner, self.dataset, sampler, self.batch_size, self.workers)
