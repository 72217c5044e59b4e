"""The training loop: cyclic loss, accumulation, checkpoints that resume exactly, signals, NaN stop.

Epochs are counted from 1 in everything a user reads (progress, logs, file names: epoch-0001.pth is
written when the first epoch ends); `Trainer.epoch` is the number of finished epochs.
"""
import contextlib
import logging
import os
import random
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from libs.engine.checkpointer import Checkpointer
from libs.engine.cyclic import CyclicObjective
from libs.engine.schedule import EpochSampler, lr_at
from libs.errors import VOSError
from libs.utils.constants import IMAGENET_MEAN, IMAGENET_STD
from libs.utils.dist import DistInfo, wait_for_all, waiting_group
from libs.utils.progress import progress

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class TrainSettings:
    """Everything the loop needs besides the model and the data."""

    epochs: int
    batch_size: int
    iter_size: int
    learning_rate: float
    gamma: float
    milestones: tuple
    epochs_per_increment: int
    epoch_per_test: int
    checkpoint_dir: str
    seed: int = 0
    workers: int = 0
    amp: bool = False
    config_text: str = ""
    max_minutes: float = 0.0      # stop (checkpoint saved) after this many minutes of `run`; 0 = no limit
    progress_every_s: float = 30.0   # progress line interval when stderr is not a terminal


def rng_state() -> Dict[str, Any]:
    """Python, NumPy, torch (and CUDA) RNG states in a weights_only-loadable form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos,
                                                     has_gauss, cached], "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what `rng_state` saved."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        set_cuda_rng_states(list(state["cuda"]))


def set_cuda_rng_states(states: List[torch.Tensor]) -> None:
    """Restore one saved generator state per CUDA device, as far as both exist; says so when the
    checkpoint was written with another number of devices (resuming on fewer or more GPUs)."""
    count = torch.cuda.device_count()
    for index, state in enumerate(states[:count]):
        torch.cuda.set_rng_state(state, index)
    if len(states) != count:
        log.warning("the checkpoint holds CUDA RNG states of %d device(s), this machine has %d: restored %d; "
                    "the run continues, but not bit for bit as on the original devices",
                    len(states), count, min(len(states), count))


def ignore_stop_signals(_worker_id: int) -> None:
    """In a DataLoader worker: ignore SIGINT and SIGTERM, which Ctrl-C, `timeout` or a cluster send to the
    whole process group; the main process stops the run and then the workers (torch's own SIGTERM handler
    would kill the worker, and the main process would stop with a traceback instead of a checkpoint)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Trainer:
    """Runs epochs of cyclic training; the checkpointer writes (rank 0 only), rank 0 validates while the
    other ranks wait for it at a barrier that allows for a long validation."""

    def __init__(self, objective: CyclicObjective, optimizer: torch.optim.Optimizer, dataset, collate: Callable,
                 settings: TrainSettings, device: torch.device, dist: DistInfo, *, writer=None,
                 validate: Optional[Callable[[int], Optional[float]]] = None,
                 checkpointer: Optional[Checkpointer] = None):
        self.objective, self.model = objective, objective.model
        self.wrapped, self.waiting = objective, None
        if dist.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.wrapped = torch.nn.parallel.DistributedDataParallel(objective, device_ids=ids)
            self.waiting = waiting_group()      # every rank creates it, in the same order
        self.optimizer, self.dataset, self.collate = optimizer, dataset, collate
        self.s, self.device, self.dist, self.writer, self.validate = settings, device, dist, writer, validate
        self.checkpointer = checkpointer or Checkpointer(settings.checkpoint_dir, writer=dist.is_main)
        self.sampler = EpochSampler(len(dataset), settings.seed, dist.rank, dist.world_size)
        self.epoch, self.batch, self.step = 0, 0, 0
        self.stop_requested = False
        self.pid = os.getpid()            # the process whose signal handler stops the run (not a worker)
        self.stop_reason = ""             # why `run` stopped early ('' when it finished every epoch)
        self.deadline = float("inf")      # time.monotonic() at which `run` stops (max_minutes)
        # optional: (dataset, sampler, batch_size) -> iterable of collated batches (e.g. a DALI pipeline)
        self.loader_factory: Optional[Callable] = None

    # ------------------------------------------------------------ checkpoints
    def state(self) -> Dict[str, Any]:
        """Everything needed to continue exactly where the loop stands."""
        return {"state_dict": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch, "batch": self.batch, "step": self.step, "arch": self.model.arch,
                "max_skip": self.dataset.state_dict() if hasattr(self.dataset, "state_dict") else {},
                "rng": rng_state(), "config": self.s.config_text}

    def save(self, epoch: Optional[int] = None) -> Optional[str]:
        """latest.pth (and epoch-NNNN.pth for `epoch`) through the checkpointer; None off rank 0."""
        if not self.checkpointer.writer:
            return None
        return self.checkpointer.save(self.state(), epoch)

    def resume(self, path: str) -> None:
        """Load a checkpoint written by `save` (weights strictly, then optimizer, position and RNG)."""
        data = self.checkpointer.load(path, self.model)
        self.optimizer.load_state_dict(data["optimizer"])
        self.epoch, self.batch, self.step = int(data["epoch"]), int(data["batch"]), int(data["step"])
        if data.get("max_skip") and hasattr(self.dataset, "load_state_dict"):
            self.dataset.load_state_dict(data["max_skip"])
        set_rng_state(data["rng"])
        log.info("resumed from %s %s (optimizer step %d)", path, self.position(), self.step)

    # ------------------------------------------------------------ the loop
    def _on_signal(self, signum, _frame) -> None:
        if os.getpid() != self.pid:       # a DataLoader worker forked with this handler: the main process stops
            return
        name = signal.Signals(signum).name
        log.warning("%s: saving a checkpoint at the next step, then stopping", name)
        self.stop_requested, self.stop_reason = True, name

    def _time_is_up(self) -> bool:
        """Whether max_minutes have passed; rank 0's clock decides so that every rank stops at one step."""
        if not self.s.max_minutes:
            return False
        up = time.monotonic() >= self.deadline
        if self.dist.distributed:
            flag = torch.tensor([float(up)], device=self.device)
            torch.distributed.broadcast(flag, src=0)
            up = bool(flag.item())
        if up:
            log.warning("max_minutes %g reached: saving a checkpoint, then stopping (resume auto continues)",
                        self.s.max_minutes)
            self.stop_reason = f"max_minutes {self.s.max_minutes:g}"
        return up

    def run(self) -> None:
        """Train until `epochs`, SIGINT/SIGTERM or `max_minutes` (checkpoint saved, clean exit)."""
        self.deadline = time.monotonic() + 60.0 * self.s.max_minutes if self.s.max_minutes else float("inf")
        self.pid = os.getpid()
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.epoch < self.s.epochs and not self.stop_requested:
                self._run_epoch()
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    def _loader(self):
        """This epoch's batches from the current position (the PIL DataLoader unless a factory is set)."""
        self.dataset.set_epoch(self.epoch, self.s.epochs_per_increment)
        self.sampler.set_epoch(self.epoch, skip=self.batch * self.s.batch_size)
        if self.loader_factory is not None:
            return self.loader_factory(self.dataset, self.sampler, self.s.batch_size)
        return DataLoader(self.dataset, batch_size=self.s.batch_size, sampler=self.sampler,
                          num_workers=self.s.workers, collate_fn=self.collate, drop_last=True,
                          worker_init_fn=ignore_stop_signals,
                          pin_memory=self.device.type == "cuda")

    def _run_epoch(self) -> None:
        lr = lr_at(self.epoch, self.s.learning_rate, self.s.gamma, self.s.milestones)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loader = self._loader()
        bar = progress(len(loader) + self.batch, f"epoch {self.epoch + 1}/{self.s.epochs}", unit="batch",
                       initial=self.batch, enabled=self.dist.is_main, every_s=self.s.progress_every_s)
        accum, tic = None, time.perf_counter()
        for batch in loader:
            data_time = time.perf_counter() - tic
            losses = self._micro_step(batch)
            accum = losses["loss"].detach() if accum is None else accum + losses["loss"].detach()
            self.batch += 1
            if self.batch % self.s.iter_size == 0:
                self._optimizer_step(accum / self.s.iter_size, lr, data_time, bar, losses, batch)
                accum = None
                if self._time_is_up():
                    self.stop_requested = True
                if self.stop_requested:
                    self.save()
                    bar.close()
                    return
            tic = time.perf_counter()
        bar.close()
        self.optimizer.zero_grad(set_to_none=True)     # an incomplete accumulation is dropped
        self.epoch, self.batch = self.epoch + 1, 0
        self._end_epoch()

    def _end_epoch(self) -> None:
        """Checkpoint and (every epoch_per_test epochs) validation on rank 0; then every rank meets the
        others at a barrier whose timeout allows for the longest validation, so no rank sits in a
        training collective (NCCL aborts those after 10 minutes) while rank 0 validates."""
        self.save(self.epoch)
        if self.validate and self.epoch % self.s.epoch_per_test == 0:
            score = self.validate(self.epoch)
            if score is not None and self.writer:
                self.writer.add_scalar("val/J&F", score, self.epoch)
        if self.waiting is not None:
            wait_for_all(self.waiting)

    def position(self) -> str:
        """Where the loop stands, as the progress bar and `resume` count: 'in epoch 1/2 after batch 5'."""
        if self.batch == 0:
            return f"after epoch {self.epoch}/{self.s.epochs}"
        return f"in epoch {self.epoch + 1}/{self.s.epochs} after batch {self.batch}"

    def _micro_step(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        k = max(1, int(batch["num_objects"].max()))       # drop object channels no clip of the batch uses
        frames = batch["frames"].to(self.device, non_blocking=True)
        masks = batch["masks"][:, :, :k + 1].to(self.device, non_blocking=True)
        num = batch["num_objects"].to(self.device)
        boundary = (self.batch + 1) % self.s.iter_size == 0
        sync = contextlib.nullcontext() if boundary or not self.dist.distributed else self.wrapped.no_sync()
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.s.amp)
        with sync:
            with autocast:
                losses = self.wrapped(frames, masks, num)
            (losses["loss"] / self.s.iter_size).backward()
        return losses

    def _optimizer_step(self, loss: torch.Tensor, lr: float, data_time: float, bar, losses, batch) -> None:
        value = loss.item()                  # one host sync per optimizer step
        if not np.isfinite(value):
            raise VOSError(f"training loss became {value} at epoch {self.epoch + 1}, step {self.step + 1}; "
                           f"stopped without saving. The last good checkpoint is {self.checkpointer.latest_path} "
                           "(resume from it, perhaps with a lower learning_rate)")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        bar.set_postfix(loss=f"{value:.4f}", data=f"{data_time:.3f}s", lr=f"{lr:.2e}")
        bar.update(self.s.iter_size)
        if self.writer and self.dist.is_main:
            self._log_step(value, lr, losses, batch)

    def _log_step(self, value: float, lr: float, losses: Dict[str, torch.Tensor], batch: Dict[str, Any]) -> None:
        """TensorBoard scalars of a step, and the prediction grid at the epoch's first step."""
        self.writer.add_scalar("train/loss", value, self.step)
        self.writer.add_scalar("train/lr", lr, self.step)
        for name, skip in _skips(self.dataset).items():
            self.writer.add_scalar(f"train/max_skip/{name}", skip, self.step)
        if self.batch == self.s.iter_size:
            self.writer.add_images("train/predictions", prediction_grid(batch["frames"], losses["pred"]), self.step)


def _skips(dataset) -> Dict[str, int]:
    state = dataset.state_dict() if hasattr(dataset, "state_dict") else {}
    return {k: v.get("max_skip", 0) for k, v in state.items() if isinstance(v, dict)}


_TINTS = ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1))   # background, objects 1..5


def prediction_grid(frames: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Last frame of each clip (frames [B, T, 3, H, W], normalised) with its predicted objects (pred
    [B, K+1, H, W]) tinted: [B, 3, H, W] in [0, 1], on the frames' device (the GPU with DALI)."""
    device = frames.device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    img = (frames[:, -1].float() * std + mean).clamp(0, 1)                     # [B, 3, H, W]
    labels = pred.detach().float().to(device).argmax(1, keepdim=True)          # [B, 1, H, W]
    colours = torch.tensor(_TINTS, dtype=torch.float32, device=device)
    tint = colours[labels.clamp(max=len(_TINTS) - 1).squeeze(1)].permute(0, 3, 1, 2)   # [B, 3, H, W]
    return torch.where(labels > 0, 0.5 * img + 0.5 * tint, img)
