"""The training loop: cyclic loss, accumulation, checkpoints that resume exactly, signals, NaN stop."""
import contextlib
import glob
import logging
import os
import random
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from libs.engine.cyclic import CyclicObjective
from libs.engine.schedule import EpochSampler, lr_at
from libs.errors import VOSError
from libs.models.checkpoint import apply_weights, atomic_save, read_checkpoint
from libs.utils.dist import DistInfo

log = logging.getLogger(__name__)


@dataclass
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
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_checkpoint(folder: str) -> str:
    """`resume auto`: the newest checkpoint in `folder`."""
    path = os.path.join(folder, "latest.pth")
    if os.path.isfile(path):
        return path
    found = sorted(glob.glob(os.path.join(folder, "epoch-*.pth")))
    if not found:
        raise VOSError(f"resume auto: no checkpoint in {folder!r} (latest.pth or epoch-*.pth); "
                       "train without `resume`, or pass resume /path/to/checkpoint.pth")
    return found[-1]


class Trainer:
    """Runs epochs of cyclic training; rank 0 saves checkpoints and calls `on_epoch_end`."""

    def __init__(self, objective: CyclicObjective, optimizer: torch.optim.Optimizer, dataset, collate: Callable,
                 settings: TrainSettings, device: torch.device, dist: DistInfo, writer=None,
                 validate: Optional[Callable[[int], Optional[float]]] = None):
        self.objective, self.model = objective, objective.model
        self.wrapped = objective
        if dist.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.wrapped = torch.nn.parallel.DistributedDataParallel(objective, device_ids=ids)
        self.optimizer, self.dataset, self.collate = optimizer, dataset, collate
        self.s, self.device, self.dist, self.writer, self.validate = settings, device, dist, writer, validate
        self.sampler = EpochSampler(len(dataset), settings.seed, dist.rank, dist.world_size)
        self.epoch, self.batch, self.step = 0, 0, 0
        self.stop_requested = False
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

    def save(self, name: Optional[str] = None) -> Optional[str]:
        """Rank 0 writes latest.pth (and `name`) atomically; returns the path."""
        if not self.dist.is_main:
            return None
        try:
            state = self.state()
            path = os.path.join(self.s.checkpoint_dir, "latest.pth")
            atomic_save(state, path)
            if name:
                atomic_save(state, os.path.join(self.s.checkpoint_dir, name))
        except OSError as err:
            raise VOSError(f"cannot write checkpoints to {self.s.checkpoint_dir!r} ({err.strerror}); "
                           "set `checkpoint` to a writable folder") from None
        return path

    def resume(self, path: str) -> None:
        """Load a checkpoint written by `save` (weights strictly, then optimizer, position and RNG)."""
        data = read_checkpoint(path)
        apply_weights(self.model, data, path)
        missing = [k for k in ("optimizer", "epoch", "batch", "step", "rng") if k not in data]
        if missing:
            raise VOSError(f"{path!r} holds weights only (no {', '.join(missing)}): use it as `initial`, not `resume`")
        self.optimizer.load_state_dict(data["optimizer"])
        self.epoch, self.batch, self.step = int(data["epoch"]), int(data["batch"]), int(data["step"])
        if data.get("max_skip") and hasattr(self.dataset, "load_state_dict"):
            self.dataset.load_state_dict(data["max_skip"])
        set_rng_state(data["rng"])
        log.info("resumed from %s at epoch %d, batch %d (step %d)", path, self.epoch + 1, self.batch, self.step)

    # ------------------------------------------------------------ the loop
    def _on_signal(self, signum, _frame) -> None:
        log.warning("signal %d: saving a checkpoint at the next step, then stopping", signum)
        self.stop_requested = True

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
        return up

    def run(self) -> None:
        """Train until `epochs`, SIGINT/SIGTERM or `max_minutes` (checkpoint saved, clean exit)."""
        self.deadline = time.monotonic() + 60.0 * self.s.max_minutes if self.s.max_minutes else float("inf")
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
                          pin_memory=self.device.type == "cuda")

    def _run_epoch(self) -> None:
        lr = lr_at(self.epoch, self.s.learning_rate, self.s.gamma, self.s.milestones)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loader = self._loader()
        total = len(loader) + self.batch
        bar = _progress(total, self.batch, f"epoch {self.epoch + 1}/{self.s.epochs}", self.dist.is_main)
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
        self.save(f"epoch-{self.epoch:04d}.pth")
        if self.validate and self.epoch % self.s.epoch_per_test == 0:
            score = self.validate(self.epoch)
            if score is not None and self.writer:
                self.writer.add_scalar("val/J&F", score, self.epoch)

    def _micro_step(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        k = max(1, int(batch["num_objects"].max()))       # drop object channels no clip of the batch uses
        frames = batch["frames"].to(self.device, non_blocking=True)
        masks = batch["masks"][:, :, :k + 1].to(self.device, non_blocking=True)
        num = batch["num_objects"].to(self.device)
        boundary = (self.batch + 1) % self.s.iter_size == 0
        sync = contextlib.nullcontext() if boundary or not self.dist.distributed else self.wrapped.no_sync()
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                  enabled=self.s.amp)
        with sync:
            with autocast:
                losses = self.wrapped(frames, masks, num)
            (losses["loss"] / self.s.iter_size).backward()
        return losses

    def _optimizer_step(self, loss: torch.Tensor, lr: float, data_time: float, bar, losses, batch) -> None:
        value = loss.item()                  # one host sync per optimizer step
        if not np.isfinite(value):
            last = os.path.join(self.s.checkpoint_dir, "latest.pth")
            raise VOSError(f"training loss became {value} at epoch {self.epoch + 1}, step {self.step + 1}; "
                           f"stopped without saving. The last good checkpoint is {last} (resume from it, "
                           "perhaps with a lower learning_rate)")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        bar.set_postfix(loss=f"{value:.4f}", data=f"{data_time:.3f}s", lr=f"{lr:.2e}")
        bar.update(self.s.iter_size)
        if self.writer and self.dist.is_main:
            self.writer.add_scalar("train/loss", value, self.step)
            self.writer.add_scalar("train/lr", lr, self.step)
            for name, skip in _skips(self.dataset).items():
                self.writer.add_scalar(f"train/max_skip/{name}", skip, self.step)
            if self.batch == self.s.iter_size:
                self.writer.add_images("train/predictions", _grid(batch, losses["pred"]), self.step)


def _skips(dataset) -> Dict[str, int]:
    state = dataset.state_dict() if hasattr(dataset, "state_dict") else {}
    return {k: v.get("max_skip", 0) for k, v in state.items() if isinstance(v, dict)}


def _progress(total: int, done: int, desc: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, initial=done, desc=desc, disable=not enabled, dynamic_ncols=True, leave=False)


def _grid(batch: Dict[str, Any], pred: torch.Tensor) -> torch.Tensor:
    """Last frame of each clip with its predicted objects tinted: [B, 3, H, W] in [0, 1]."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    img = (batch["frames"][:, -1].float() * std + mean).clamp(0, 1)
    labels = pred.float().cpu().argmax(1, keepdim=True)                      # [B, 1, H, W]
    colours = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1]]).float()
    tint = colours[labels.clamp(max=5).squeeze(1)].permute(0, 3, 1, 2)     # [B, 3, H, W]
    return torch.where(labels > 0, 0.5 * img + 0.5 * tint, img)
