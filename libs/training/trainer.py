"""The training loop: cyclic loss, accumulation, checkpoints that resume exactly, signals, faults.

Epochs are counted from 1 in everything a user reads (progress, logs, file names: epoch-0001.pth is
written when the first epoch ends); `Trainer.epoch` is the number of finished epochs.
Faults (libs.training.faults): unreadable samples are replaced and counted, steps with a non-finite loss
or gradient are skipped, and all ranks agree on both (and on stopping) at every optimizer step.
"""
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional

import torch

from ..errors import VOSError
from ..models.checkpoint import apply_weights
from .board import prediction_grid
from .checkpointer import Checkpointer, check_resumable
from .curriculum import CHECKPOINT_KEY, Curriculum
from .cyclic import CyclicObjective
from .faults import BadSamples, NonFiniteSteps, agree, fault_summary, step_health
from .loaders import EpochLoaders
from .rng import rng_state, set_rng_state
from .schedule import EpochSampler, lr_at
from ..utils.dist import DistInfo, wait_for_all, waiting_group
from ..utils.progress import progress

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
    epoch_per_test: int
    checkpoint_dir: str
    seed: int = 0
    amp: bool = False
    config_text: str = ""
    max_minutes: float = 0.0      # stop (checkpoint saved) after this many minutes of `run`; 0 = no limit
    progress_every_s: float = 30.0   # progress line interval when stderr is not a terminal
    checkpoint_every_steps: int = 0  # also save latest.pth every N optimizer steps (0 = at epoch ends only)
    max_bad_samples: float = 0.01    # unreadable samples tolerated per epoch: < 1 a fraction of its clips, else a count
    max_nonfinite_steps: int = 20    # consecutive skipped (non-finite) optimizer steps before stopping


class Trainer:
    """Runs epochs of cyclic training on the batches `loaders` gives each epoch, with the max_skip
    `curriculum` moved to each epoch; the checkpointer writes (rank 0 only), rank 0 evaluates while the
    other ranks wait for it at a barrier that allows for a long validation."""

    def __init__(self, objective: CyclicObjective, optimizer: torch.optim.Optimizer, loaders: EpochLoaders,
                 curriculum: Curriculum, settings: TrainSettings, device: torch.device, dist: DistInfo, *,
                 writer=None, evaluate: Optional[Callable[[int], Optional[float]]] = None,
                 checkpointer: Optional[Checkpointer] = None):
        self.objective, self.model = objective, objective.model
        self.wrapped, self.waiting = objective, None
        if dist.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.wrapped = torch.nn.parallel.DistributedDataParallel(objective, device_ids=ids)
            self.waiting = waiting_group()      # every rank creates it, in the same order
        self.optimizer, self.loaders, self.curriculum = optimizer, loaders, curriculum
        self.s, self.device, self.dist, self.writer, self.evaluate = settings, device, dist, writer, evaluate
        self.checkpointer = checkpointer or Checkpointer(settings.checkpoint_dir, writer=dist.is_main)
        self.sampler = EpochSampler(len(loaders), settings.seed, dist.rank, dist.world_size)
        self.epoch, self.batch, self.step = 0, 0, 0
        self.bad, self.nonfinite = BadSamples(settings.max_bad_samples), NonFiniteSteps(settings.max_nonfinite_steps)
        self.stop_requested = False
        self.pid = os.getpid()            # the process whose signal handler stops the run (not a worker)
        self.stop_reason = ""             # why `run` stopped early ('' when it finished every epoch)
        self.deadline = float("inf")      # time.monotonic() at which `run` stops (max_minutes)

    # ------------------------------------------------------------ checkpoints
    def state(self) -> Dict[str, Any]:
        """Everything needed to continue exactly where the loop stands."""
        return {"state_dict": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch, "batch": self.batch, "step": self.step, "arch": self.model.arch,
                CHECKPOINT_KEY: self.curriculum.state_dict(),
                "rng": rng_state(), "config": self.s.config_text, "world_size": self.dist.world_size}

    def save(self, epoch: Optional[int] = None) -> Optional[str]:
        """latest.pth (and epoch-NNNN.pth for `epoch`) through the checkpointer; None off rank 0. Every rank
        calls it at the same step: when the writer fails (disk full), every rank raises a VOSError."""
        path, error = None, None
        if self.checkpointer.writer:
            try:
                path = self.checkpointer.save(self.state(), epoch)
            except VOSError as err:
                error = err
        if self.waiting is not None:
            failed = torch.tensor([float(error is not None)])
            torch.distributed.all_reduce(failed, group=self.waiting)      # the gloo group: waits for a slow write
            if failed.item() and error is None:
                raise VOSError("rank 0 could not write a checkpoint (its error line says why); stopped")
        if error is not None:
            raise error
        return path

    def resume(self, data: Dict[str, Any], path: str) -> None:
        """Continue from checkpoint `data` (read from `path`, written by `save`): weights strictly, then
        optimizer, position, curriculum and RNG."""
        apply_weights(self.model, data, path)          # a model of another shape: named first
        check_resumable(data, path)
        self.optimizer.load_state_dict(data["optimizer"])
        self.epoch, self.batch, self.step = int(data["epoch"]), int(data["batch"]), int(data["step"])
        self.curriculum.load_checkpoint(data)
        set_rng_state(data["rng"])
        log.info("resumed from %s %s (optimizer step %d)", path, self.position(), self.step)
        written = int(data.get("world_size", self.dist.world_size))
        if written != self.dist.world_size and self.batch:
            log.warning("%s was written by %d processes, this run has %d: the rest of epoch %d is sharded "
                        "anew, so some of its clips may be seen twice or not at all", path, written,
                        self.dist.world_size, self.epoch + 1)

    # ------------------------------------------------------------ the loop
    def _on_signal(self, signum, _frame) -> None:
        if os.getpid() != self.pid:       # a DataLoader worker forked with this handler: the main process stops
            return
        name = signal.Signals(signum).name
        log.warning("%s: saving a checkpoint at the next step, then stopping", name)
        self.stop_requested, self.stop_reason = True, name

    def _time_is_up(self) -> bool:
        """Whether max_minutes have passed by rank 0's clock (the other ranks say no; `_agree` sums)."""
        return bool(self.s.max_minutes) and self.dist.is_main and time.monotonic() >= self.deadline

    def _agree(self, finite: bool) -> bool:
        """One all-reduce per optimizer step: whether every rank's loss and gradients are finite; counts the
        replaced samples of all ranks; stops every rank when one was signalled or rank 0's time is up."""
        bad, nonfinite, stop, up = agree([self.bad.pending, not finite, self.stop_requested, self._time_is_up()],
                                         self.device, self.dist.distributed)
        self.bad.pending = 0
        self.bad.add(int(bad), self.epoch + 1)
        if up:
            log.warning("max_minutes %g reached: saving a checkpoint, then stopping (resume auto continues)",
                        self.s.max_minutes)
            self.stop_reason = f"max_minutes {self.s.max_minutes:g}"
        if stop and not self.stop_requested:
            self.stop_reason = self.stop_reason or "a signal to another process"
        self.stop_requested = self.stop_requested or bool(stop or up)
        return not nonfinite

    def run(self) -> None:
        """Train until `epochs`, SIGINT/SIGTERM or `max_minutes` (checkpoint saved, clean exit)."""
        self.deadline = time.monotonic() + 60.0 * self.s.max_minutes if self.s.max_minutes else float("inf")
        self.pid = os.getpid()
        self.bad.max_bad_samples, self.nonfinite.max_consecutive = self.s.max_bad_samples, self.s.max_nonfinite_steps
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.epoch < self.s.epochs and not self.stop_requested:
                self._run_epoch()
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    def _loader(self) -> Iterable[Dict[str, Any]]:
        """This epoch's batches from the current position, after moving the curriculum to the epoch."""
        self.curriculum.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch, skip=self.batch * self.s.batch_size)
        return self.loaders.epoch(self.epoch, self.sampler)

    def _run_epoch(self) -> None:
        lr = lr_at(self.epoch, self.s.learning_rate, self.s.gamma, self.s.milestones)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loader = self._loader()
        total = len(loader) + self.batch
        self.bad.start_epoch(total * self.s.batch_size * self.dist.world_size)
        self.nonfinite.epoch_count = 0
        bar = progress(total, f"epoch {self.epoch + 1}/{self.s.epochs}", unit="batch", initial=self.batch,
                       enabled=self.dist.is_main, every_s=self.s.progress_every_s)
        accum, names, tic = None, [], time.perf_counter()
        for batch in loader:
            data_time = time.perf_counter() - tic
            self.bad.note(batch.get("bad", ()))
            names += batch["names"]
            losses = self._micro_step(batch)
            accum = losses["loss"].detach() if accum is None else accum + losses["loss"].detach()
            self.batch += 1
            if self.batch % self.s.iter_size == 0:
                before = self.step
                self._optimizer_step(accum / self.s.iter_size, lr, data_time, bar, losses, batch, names)
                accum, names = None, []
                if self._checkpoint_step(stepped=self.step != before, last=total - self.batch < self.s.iter_size):
                    bar.close()
                    return
            tic = time.perf_counter()
        bar.close()
        self.optimizer.zero_grad(set_to_none=True)     # an incomplete accumulation is dropped
        self.epoch, self.batch = self.epoch + 1, 0
        self._end_epoch()

    def _checkpoint_step(self, stepped: bool, last: bool) -> bool:
        """After an optimizer step: save and return True when stopping; else save latest.pth every
        checkpoint_every_steps steps (not after the epoch's last step: the epoch's end saves)."""
        if self.stop_requested:
            self.save()
            return True
        every = self.s.checkpoint_every_steps
        if every and stepped and not last and self.step % every == 0:
            self.save()                 # latest.pth only: what `resume auto` and a torchrun restart continue from
        return False

    def _end_epoch(self) -> None:
        """Checkpoint and (every epoch_per_test epochs) validation on rank 0; then every rank meets the
        others at a barrier whose timeout allows for the longest validation, so no rank sits in a
        training collective (NCCL aborts those after 10 minutes) while rank 0 validates."""
        self.save(self.epoch)
        summary = fault_summary(self.bad.epoch_count, self.nonfinite.epoch_count, self.bad.files)
        if summary and self.dist.is_main:
            log.warning("epoch %d/%d: %s", self.epoch, self.s.epochs, summary)
        if self.evaluate and self.epoch % self.s.epoch_per_test == 0:
            score = self.evaluate(self.epoch)
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

    def _optimizer_step(self, loss: torch.Tensor, lr: float, data_time: float, bar, losses, batch,
                        names=()) -> None:
        """Step the optimizer on the accumulated gradients, unless a rank's loss or gradient is non-finite:
        then the whole accumulated step is skipped (gradients dropped, optimizer state untouched)."""
        value, finite = step_health(loss, self.model.parameters())     # one host sync per optimizer step
        finite = self._agree(finite)
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite.record(finite, value, f"epoch {self.epoch + 1}/{self.s.epochs} batch {self.batch}",
                              names, self.checkpointer.latest_path)
        if not finite:
            bar.update(self.s.iter_size)
            return
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
        for name, skip in self.curriculum.max_skips().items():
            self.writer.add_scalar(f"train/max_skip/{name}", skip, self.step)
        if self.batch == self.s.iter_size:
            self.writer.add_images("train/predictions", prediction_grid(batch["frames"], losses["pred"]), self.step)
