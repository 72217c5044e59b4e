"""Trainers small enough for multi-process and device tests: a one-weight objective on fixed clips, and a
tiny STM on a generated SYNTHETIC training split."""
import os
from typing import Optional

import torch
from torch import nn

from libs.dataset.davis import DAVIS17
from libs.dataset.sampler import ClipSampler
from libs.dataset.training import TrainClipDataset, build_mixed_dataset, collate_clips
from libs.dataset.transforms import build_train_transforms
from libs.models.checkpoint import read_checkpoint
from libs.models.stm import STM
from libs.training.checkpointer import Checkpointer
from libs.training.curriculum import Curriculum
from libs.training.cyclic import CyclicConfig, CyclicObjective
from libs.training.loaders import PilLoaders
from libs.training.trainer import Trainer, TrainSettings
from libs.utils.dist import DistInfo

SIZE = (32, 48)           # (H, W) of the SYNTHETIC trainer's clips


class TinyModel(nn.Module):
    """One weight, named like the STM it stands for."""

    arch = "tiny"

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))


class TinyObjective(nn.Module):
    """A loss over the clip's frames; 'pred' is the last frame's masks."""

    def __init__(self) -> None:
        super().__init__()
        self.model = TinyModel()

    def forward(self, frames, masks, num_objects):
        """The objective's output: {'loss', 'pred'}."""
        loss = (frames.mean((1, 3, 4)) * self.model.weight).sum() ** 2
        return {"loss": loss, "pred": masks[:, -1]}


class TinyClips(torch.utils.data.Dataset):
    """Four fixed clips [T=2, 3, 4, 4] with one object."""

    def __len__(self) -> int:
        return 4

    def set_epoch(self, epoch: int) -> None:
        """Every epoch shows the same clips."""

    def __getitem__(self, idx):
        frames = torch.full((2, 3, 4, 4), float(idx + 1))
        masks = torch.zeros(2, 2, 4, 4)
        masks[:, 1, :2] = 1
        masks[:, 0] = 1 - masks[:, 1]
        return {"frames": frames, "masks": masks, "num_objects": 1, "name": f"clip{idx}"}


def tiny_trainer(folder: str, dist: DistInfo = DistInfo(), epochs: int = 1, writer=None, evaluate=None,
                 checkpointer: Optional[Checkpointer] = None) -> Trainer:
    """A Trainer of TinyObjective on TinyClips (batch 1, no accumulation), checkpoints in `folder`."""
    objective = TinyObjective()
    settings = TrainSettings(epochs=epochs, batch_size=1, iter_size=1, learning_rate=0.01, gamma=0.1, milestones=(),
                             epoch_per_test=1, checkpoint_dir=folder)
    return Trainer(objective, torch.optim.SGD(objective.parameters(), lr=0.01),
                   PilLoaders(TinyClips(), collate_clips, batch_size=1), Curriculum({}, 1), settings,
                   torch.device("cpu"), dist, writer=writer, evaluate=evaluate, checkpointer=checkpointer)


def synthetic_trainer(data_root: str, ckpt: str, dist: DistInfo = DistInfo(), epochs: int = 2, iter_size: int = 2,
                      seed: int = 0) -> Trainer:
    """A tiny STM (resnet18, keydim 8, valdim 16) trainer on the SYNTHETIC training split under `data_root`."""
    torch.manual_seed(seed)
    reader = DAVIS17(os.path.join(data_root, "SYNTHETIC"), "train")
    data = TrainClipDataset(reader.videos, ClipSampler(3, 2, 1, 10, "SYNTHETIC"), build_train_transforms(SIZE, 2),
                            samples_per_video=2, max_objects=2, seed=seed, name="SYNTHETIC")
    data = build_mixed_dataset([data], [1])
    model = STM("resnet18", keydim=8, valdim=16).eval()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    settings = TrainSettings(epochs=epochs, batch_size=1, iter_size=iter_size, learning_rate=1e-4, gamma=0.1,
                             milestones=(1,), epoch_per_test=1, checkpoint_dir=ckpt, seed=seed)
    return Trainer(CyclicObjective(model, CyclicConfig()), optimizer, PilLoaders(data, collate_clips, batch_size=1),
                   Curriculum(data.clip_samplers(), epochs_per_increment=1), settings, torch.device("cpu"), dist)


def resume(trainer: Trainer, path: str) -> None:
    """Continue `trainer` from checkpoint `path` (read once, as train.py's start decision does)."""
    trainer.resume(read_checkpoint(path), path)


def write_train_val(root: str, train_frames: int, seed: int) -> str:
    """A SYNTHETIC set under root/SYNTHETIC for train.py runs: 2 training videos of `train_frames` frames
    (seed) and 1 validation video of one frame fewer (seed + 1), 40x64; returns `root`."""
    from libs.dataset.synthetic import write_dataset

    folder = os.path.join(root, "SYNTHETIC")
    write_dataset(folder, num_videos=2, num_frames=train_frames, size=(40, 64), seed=seed, split="train")
    write_dataset(folder, num_videos=1, num_frames=train_frames - 1, size=(40, 64), seed=seed + 1, split="val")
    return root
