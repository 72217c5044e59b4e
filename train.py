"""Train STM-Cycle with the cyclic loss.

    .venv/bin/python train.py --cfg config.yaml [KEY VAL ...]
    .venv/bin/torchrun --nproc_per_node N train.py --cfg config.yaml [KEY VAL ...]

Under torchrun with --max-restarts, a restarted worker group (TORCHELASTIC_RESTART_COUNT > 0) continues
from this run's checkpoint/latest.pth (see `checkpoint_to_resume`).
"""
import logging
import os
import shlex
import sys
from typing import List

import torch

from libs.dataset.build import build_train_dataset
from libs.dataset.dali import build_dali_loader_factory
from libs.utils.dali import require_dali
from libs.dataset.training import collate_clips
from libs.training.cyclic import CyclicConfig, CyclicObjective
from libs.training.checkpointer import Checkpointer
from libs.training.faults import fault_summary
from libs.training.trainer import Trainer, TrainSettings
from libs.io.paths import atomic_path
from libs.models import build_model
from libs.models.checkpoint import read_checkpoint
from libs.runner import check_writable, validate
from libs.runner.cli import parse_cfg, run_main
from libs.errors import VOSError
from libs.utils.device import resolve_device, usable_workers
from libs.utils.dist import init_distributed, shutdown
from libs.utils.logging import setup_logging

log = logging.getLogger("train")
EXAMPLES = """\
  .venv/bin/python train.py --cfg config.yaml data_root /data initial stm_cycle_r50.pth
  .venv/bin/python train.py --cfg config.yaml resume auto          # continue from <checkpoint>/latest.pth
  .venv/bin/python train.py --cfg configs/quickstart.yaml gpu_id -1    # generated data, no download
  .venv/bin/torchrun --nproc_per_node 4 train.py --cfg config.yaml data_root /data
  .venv/bin/torchrun --nnodes 1:2 --nproc-per-node 4 --max-restarts 3 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
      --rdzv-id run1 train.py --cfg config.yaml checkpoint_every_steps 100    # elastic: the same on each node"""
KEYS = (("data_root", "folder holding the data set folders (see DATASET.md)"),
        ("trainset / datafreq", "training sets and how often each is repeated, e.g. \"['DAVIS17', 'VOS']\" \"[5, 1]\""),
        ("valset", "data set validated every epoch_per_test epochs"),
        ("checkpoint", "folder for checkpoints, train.log, TensorBoard logs"),
        ("initial / resume", "weights to start from / a checkpoint to continue (auto: the latest)"),
        ("arch keydim valdim", "model shape (taken from the checkpoint when it stores them)"),
        ("epochs train_batch learning_rate", "schedule"),
        ("checkpoint_every_steps", "also save latest.pth every N optimizer steps (torchrun restarts resume it)"),
        ("max_bad_samples max_nonfinite_steps", "unreadable samples / non-finite steps tolerated (see README)"),
        ("gpu_id", "CUDA device, -1 for the CPU"))


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam (betas = momentum) or SGD (momentum[0]) with weight decay; one fused kernel per step for
    all parameters with `fast_training` (on this CPU an Adam step took 11 ms instead of 41)."""
    fused = True if cfg.fast_training else None
    if cfg.solver == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, betas=tuple(cfg.momentum),
                                weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=cfg.momentum[0],
                           weight_decay=cfg.weight_decay, fused=fused)


def main() -> None:
    """Build data, model and optimizer from the config; resume if asked; train; validate."""
    cfg = parse_cfg("Train STM-Cycle (cyclic loss) on the config's training sets.", examples=EXAMPLES, keys=KEYS,
                    training=True)
    if cfg.epochs == 0:
        raise VOSError("epochs 0: there is nothing to train and no checkpoint would be written; set epochs "
                       "to 1 or more")
    if cfg.data_backend == "DALI":
        require_dali()     # one clear error line before any work when DALI is not installed
    device = resolve_device(cfg.gpu_id)
    dist = init_distributed(device.type == "cuda", cfg.backend, cfg.init_method)
    if device.type == "cuda":
        device = torch.device(f"cuda:{dist.local_rank}") if dist.distributed else device
    if dist.is_main:
        check_writable(cfg.checkpoint, "checkpoint")
        setup_logging(os.path.join(cfg.checkpoint, "train.log"))
        with atomic_path(os.path.join(cfg.checkpoint, "config.yaml")) as tmp, open(tmp, "w") as f:
            f.write(cfg.dump())
    torch.manual_seed(cfg.seed)
    dataset = build_train_dataset(cfg)
    model = build_model(cfg).to(device).train(not cfg.freeze_bn)   # frozen batch norm: the original
    optimizer = build_optimizer(cfg, model)
    writer = _tensorboard(cfg.checkpoint) if dist.is_main else None
    objective = CyclicObjective(model, cyclic_config(cfg))
    val = (lambda epoch: validate(cfg, model, device, os.path.join(cfg.checkpoint, "val", f"epoch-{epoch:04d}"))
           ) if dist.is_main else None
    checkpointer = Checkpointer(cfg.checkpoint, keep=cfg.keep_checkpoints, writer=dist.is_main)
    trainer = Trainer(objective, optimizer, dataset, collate_clips, train_settings(cfg), device, dist, writer=writer,
                      validate=val, checkpointer=checkpointer)
    if cfg.data_backend == "DALI":
        workers = usable_workers(cfg.workers)
        trainer.loader_factory = build_dali_loader_factory(dataset, device, max(2, workers), workers, cfg.seed)
    if resume := checkpoint_to_resume(cfg.resume, checkpointer, cfg.dump()):
        trainer.resume(resume)
    start_step = trainer.step
    log.info("training %s on %s (%d clips/epoch), %d process(es) x batch %d x iter_size %d = effective batch %d",
             cfg.arch, ", ".join(cfg.trainset), len(dataset), dist.world_size, cfg.train_batch, cfg.iter_size,
             dist.world_size * cfg.train_batch * cfg.iter_size)
    try:
        trainer.run()
    finally:
        if writer:
            writer.close()
        shutdown()
    if dist.is_main:
        _report_end(trainer, cfg.checkpoint, dist.distributed, trained=trainer.step > start_step)


def _report_end(trainer: Trainer, folder: str, distributed: bool, trained: bool = True) -> None:
    """The last line: finished, nothing to do, or where the run was interrupted and the command that continues it."""
    if trainer.epoch >= trainer.s.epochs and not trained:
        log.warning("nothing trained: the checkpoint resumed had already finished epoch %d of epochs %d; no "
                    "checkpoint written (set epochs higher to train more)", trainer.epoch, trainer.s.epochs)
        return
    if trainer.epoch >= trainer.s.epochs:
        faults = fault_summary(trainer.bad.total, trainer.nonfinite.total)
        log.info("finished %d epochs (%d optimizer steps%s); checkpoints in %s", trainer.epoch, trainer.step,
                 f"; {faults}" if faults else "", folder)
        return
    why = f" ({trainer.stop_reason})" if trainer.stop_reason else ""
    nproc = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if distributed else 0
    nodes = " (on every node, with its torchrun node options)" if distributed and nproc < int(
        os.environ.get("WORLD_SIZE", "1")) else ""
    log.warning("training interrupted%s %s (optimizer step %d); saved %s. Resume with%s:\n  %s", why,
                trainer.position(), trainer.step, trainer.checkpointer.latest_path, nodes,
                resume_command(sys.argv, nproc))


def cyclic_config(cfg) -> CyclicConfig:
    """The training objective's settings from the config."""
    return CyclicConfig(mode=cfg.mode, iou_threshold=cfg.iou_threshold, loss=cfg.loss, sdpa=cfg.fast_training,
                        cycle_frames=cfg.cycle_frames)


def checkpoint_to_resume(resume: str, checkpointer: Checkpointer, config_text: str) -> str:
    """The checkpoint to continue from ('' = start afresh). A worker group that torchrun restarted
    (TORCHELASTIC_RESTART_COUNT > 0) continues from latest.pth when this run wrote it (the same config);
    otherwise, and on the first start, `resume` decides (auto: the newest checkpoint of the folder)."""
    restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or "0")
    if restarts and os.path.isfile(checkpointer.latest_path):
        if read_checkpoint(checkpointer.latest_path).get("config") == config_text:
            log.info("torchrun restart %d: continuing from %s", restarts, checkpointer.latest_path)
            return checkpointer.latest_path
        log.warning("torchrun restart %d: %s was written with another config, so not by this run: starting as "
                    "the first attempt did", restarts, checkpointer.latest_path)
    if resume == "auto":
        return checkpointer.latest()
    return resume


def train_settings(cfg) -> TrainSettings:
    """The loop's settings from the config."""
    return TrainSettings(epochs=cfg.epochs, batch_size=cfg.train_batch, iter_size=cfg.iter_size,
                         learning_rate=cfg.learning_rate, gamma=cfg.gamma, milestones=tuple(cfg.milestone),
                         epochs_per_increment=cfg.epochs_per_increment, epoch_per_test=cfg.epoch_per_test,
                         checkpoint_dir=cfg.checkpoint, seed=cfg.seed, workers=usable_workers(cfg.workers), amp=cfg.amp,
                         config_text=cfg.dump(), max_minutes=cfg.max_minutes,
                         progress_every_s=cfg.progress_every_s, checkpoint_every_steps=cfg.checkpoint_every_steps,
                         max_bad_samples=cfg.max_bad_samples, max_nonfinite_steps=cfg.max_nonfinite_steps)


def resume_command(argv: List[str], nproc: int = 0) -> str:
    """The command line (shell-quoted) that continues this run: the same arguments with `resume auto`;
    `nproc` > 0: launched by torchrun with that many processes per node."""
    flags, pairs, i = [], [], 1
    while i < len(argv):
        if argv[i].startswith("--"):
            takes_value = "=" not in argv[i] and i + 1 < len(argv)
            if not argv[i].startswith("--local"):           # torchrun's own --local_rank is not repeated
                flags += argv[i:i + 1 + takes_value]
            i += 1 + takes_value
        else:
            pairs, i = argv[i:], len(argv)
    kept = [item for key, value in zip(pairs[0::2], pairs[1::2]) if key != "resume" for item in (key, value)]
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd() + os.sep) else sys.executable
    launcher = [python]
    if nproc:
        torchrun = os.path.join(os.path.dirname(python), "torchrun")
        launcher = [torchrun if os.path.isfile(torchrun) else "torchrun", "--nproc_per_node", str(nproc)]
    return shlex.join([*launcher, argv[0], *flags, *kept, "resume", "auto"])


def _tensorboard(folder: str):
    """A TensorBoard writer under checkpoint/tb, or None if tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
        return None
    return SummaryWriter(os.path.join(folder, "tb"))


if __name__ == "__main__":
    run_main(main)
