"""Train STM-Cycle with the cyclic loss.

    .venv/bin/python train.py --cfg config.yaml [KEY VAL ...]
    .venv/bin/torchrun --nproc_per_node N train.py --cfg config.yaml [KEY VAL ...]

Where the run starts (fresh, `initial`, `resume`, `resume auto`, a torchrun restart) is decided once, by
libs.training.start.decide_start, which reads that checkpoint once.
"""
import logging
import os
import shlex
import sys
from typing import Any, Dict, List, Optional, Set, Tuple

import torch

from yacs.config import CfgNode

from libs.dataset.build import build_train_dataset, check_dataset_names
from libs.dataset.dali.loader import DaliLoaders
from libs.dataset.training import MixedDataset, collate_clips
from libs.errors import VOSError
from libs.io.paths import atomic_path
from libs.models import build_model
from libs.models.checkpoint import apply_weights
from libs.runner import check_writable, validate
from libs.runner.cli import adopt_checkpoint_config, parse_cfg, run_main
from libs.training.checkpointer import Checkpointer
from libs.training.curriculum import Curriculum
from libs.training.cyclic import CyclicConfig, CyclicObjective
from libs.training.faults import fault_summary
from libs.training.loaders import EpochLoaders, PilLoaders
from libs.training.start import Start, decide_start, torchrun_restarts
from libs.training.trainer import Trainer, TrainSettings
from libs.dataset.dali.available import require_dali
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
    """Decide where the run starts, build data, model and optimizer from the config; train; validate."""
    start, cfg = parse_training_cfg()
    if cfg.epochs == 0:
        raise VOSError("epochs 0: there is nothing to train and no checkpoint would be written; set epochs "
                       "to 1 or more")
    check_dataset_names(cfg)
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
    start.log_notes()
    torch.manual_seed(cfg.seed)
    trainer, writer, clips = build_trainer(cfg, start, device, dist)
    start_step = trainer.step
    log.info("training %s on %s (%d clips/epoch), %d process(es) x batch %d x iter_size %d = effective batch %d",
             cfg.arch, ", ".join(cfg.trainset), clips, dist.world_size, cfg.train_batch, cfg.iter_size,
             dist.world_size * cfg.train_batch * cfg.iter_size)
    try:
        trainer.run()
    finally:
        if writer:
            writer.close()
        shutdown()
    if dist.is_main:
        _report_end(trainer, cfg.checkpoint, dist.distributed, trained=trainer.step > start_step)


def parse_training_cfg(argv: Optional[List[str]] = None) -> Tuple[Start, CfgNode]:
    """The run's start (decide_start: the checkpoint read once) and its config, whose model keys (arch,
    keydim, valdim) follow that checkpoint's."""
    starts: List[Start] = []

    def adopt(cfg: CfgNode, _given: Set[str]) -> None:
        starts.append(decide_start(cfg.resume, cfg.initial, cfg.checkpoint,
                                   lambda data: data.get("config") == _adopted(cfg, data).dump(), torchrun_restarts()))
        adopt_checkpoint_config(cfg, starts[0].data, starts[0].path)

    cfg = parse_cfg("Train STM-Cycle (cyclic loss) on the config's training sets.", argv, examples=EXAMPLES,
                    keys=KEYS, adjust=adopt)
    return starts[0], cfg


def _adopted(cfg: CfgNode, data: Dict[str, Any]) -> CfgNode:
    """A copy of `cfg` with the model keys of checkpoint `data` (the config a run starting from it saves)."""
    copy = cfg.clone()
    adopt_checkpoint_config(copy, data, "", quiet=True)
    return copy


def build_trainer(cfg: CfgNode, start: Start, device: torch.device, dist) -> Tuple[Trainer, Any, int]:
    """(trainer at the run's start, TensorBoard writer or None, clips per epoch) from the config."""
    dataset = build_train_dataset(cfg)
    model = build_model(cfg, load_initial=False).to(device).train(not cfg.freeze_bn)   # frozen batch norm: the original
    if start.kind == "initial":
        apply_weights(model, start.data, start.path)
    writer = _tensorboard(cfg.checkpoint) if dist.is_main else None
    evaluate = (lambda epoch: validate(cfg, model, device, os.path.join(cfg.checkpoint, "val", f"epoch-{epoch:04d}"))
                ) if dist.is_main else None
    trainer = Trainer(CyclicObjective(model, cyclic_config(cfg)), build_optimizer(cfg, model),
                      build_loaders(cfg, dataset, device), Curriculum(dataset.clip_samplers(), cfg.epochs_per_increment),
                      train_settings(cfg), device, dist, writer=writer, evaluate=evaluate,
                      checkpointer=Checkpointer(cfg.checkpoint, keep=cfg.keep_checkpoints, writer=dist.is_main))
    if start.resumes:
        trainer.resume(start.data, start.path)
    return trainer, writer, len(dataset)


def build_loaders(cfg: CfgNode, dataset: MixedDataset, device: torch.device) -> EpochLoaders:
    """Each epoch's batches: PIL DataLoader workers, or DALI (data_backend DALI)."""
    workers = usable_workers(cfg.workers)
    if cfg.data_backend == "DALI":
        return DaliLoaders(dataset, cfg.train_batch, device, max(2, workers), workers, cfg.seed)
    return PilLoaders(dataset, collate_clips, cfg.train_batch, workers, pin_memory=device.type == "cuda")


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


def train_settings(cfg) -> TrainSettings:
    """The loop's settings from the config."""
    return TrainSettings(epochs=cfg.epochs, batch_size=cfg.train_batch, iter_size=cfg.iter_size,
                         learning_rate=cfg.learning_rate, gamma=cfg.gamma, milestones=tuple(cfg.milestone),
                         epoch_per_test=cfg.epoch_per_test, checkpoint_dir=cfg.checkpoint, seed=cfg.seed, amp=cfg.amp,
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
