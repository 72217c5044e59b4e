"""Train STM-Cycle with the cyclic loss.

    .venv/bin/python train.py --cfg config.yaml [KEY VAL ...]
    .venv/bin/torchrun --nproc_per_node N train.py --cfg config.yaml [KEY VAL ...]
"""
import logging
import os

import torch

from libs.dataset.build import build_train_dataset
from libs.dataset.dali import build_dali_loader_factory
from libs.utils.dali import require_dali
from libs.dataset.training import collate_clips
from libs.engine.cyclic import CyclicConfig, CyclicObjective
from libs.engine.trainer import Trainer, TrainSettings, latest_checkpoint
from libs.io.paths import atomic_path
from libs.models import build_model
from libs.runner import check_writable, validate
from libs.utils.cli import parse_cfg, run_main
from libs.utils.device import resolve_device
from libs.utils.dist import init_distributed, shutdown
from libs.utils.logging import setup_logging

log = logging.getLogger("train")
EXAMPLES = """\
  .venv/bin/python train.py --cfg config.yaml data_root /data initial stm_cycle_r50.pth
  .venv/bin/python train.py --cfg config.yaml resume auto          # continue from <checkpoint>/latest.pth
  .venv/bin/python train.py --cfg configs/quickstart.yaml gpu_id -1    # generated data, no download
  .venv/bin/torchrun --nproc_per_node 4 train.py --cfg config.yaml data_root /data"""
KEYS = (("data_root", "folder holding the data set folders (see DATASET.md)"),
        ("trainset / datafreq", "training sets and how often each is repeated, e.g. \"['DAVIS17', 'VOS']\" \"[5, 1]\""),
        ("valset", "data set validated every epoch_per_test epochs"),
        ("checkpoint", "folder for checkpoints, train.log, TensorBoard logs"),
        ("initial / resume", "weights to start from / a checkpoint to continue (auto: the latest)"),
        ("arch keydim valdim", "model shape (taken from the checkpoint when it stores them)"),
        ("epochs train_batch learning_rate", "schedule"),
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
    settings = TrainSettings(cfg.epochs, cfg.train_batch, cfg.iter_size, cfg.learning_rate, cfg.gamma,
                             tuple(cfg.milestone), cfg.epochs_per_increment, cfg.epoch_per_test, cfg.checkpoint,
                             cfg.seed, cfg.workers, cfg.amp, cfg.dump(), cfg.max_minutes)
    objective = CyclicObjective(model, CyclicConfig(cfg.mode, cfg.iou_threshold, cfg.loss, cfg.fast_training))
    val = (lambda epoch: validate(cfg, model, device, os.path.join(cfg.checkpoint, "val", f"epoch-{epoch:04d}"))
           ) if dist.is_main else None
    trainer = Trainer(objective, optimizer, dataset, collate_clips, settings, device, dist, writer, val)
    if cfg.data_backend == "DALI":
        trainer.loader_factory = build_dali_loader_factory(dataset, device, max(2, cfg.workers), cfg.workers, cfg.seed)
    if cfg.resume:
        trainer.resume(latest_checkpoint(cfg.checkpoint) if cfg.resume == "auto" else cfg.resume)
    log.info("training %s on %s (%d clips/epoch), %d process(es) x batch %d x iter_size %d = effective batch %d",
             cfg.arch, ", ".join(cfg.trainset), len(dataset), dist.world_size, cfg.train_batch, cfg.iter_size,
             dist.world_size * cfg.train_batch * cfg.iter_size)
    try:
        trainer.run()
    finally:
        if writer:
            writer.close()
        shutdown()
    log.info("stopped at epoch %d, step %d; checkpoints in %s", trainer.epoch, trainer.step, cfg.checkpoint)


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
