"""Segment every video of `valset` and write indexed PNGs; scores them when the set has ground truth.

    .venv/bin/python test.py --cfg config.yaml initial model.pth [KEY VAL ...]
    .venv/bin/torchrun --nproc-per-node 8 test.py --cfg config.yaml initial model.pth [KEY VAL ...]

Under torchrun the videos are shared out among the ranks (balanced by frame count); rank 0 waits for all,
then scores the whole set once. A group restarted by torchrun (--max-restarts) skips finished videos.
"""
import logging
import os

import torch

from libs.dataset.build import build_eval_dataset
from libs.errors import VOSError
from libs.evaluation import distributed
from libs.inference import build_backend, build_core
from libs.io.dali_decode import build_frame_decoder
from libs.models import build_model
from libs.runner import check_writable, run_and_score, run_set, score_results
from libs.runner.cli import parse_cfg, run_main
from libs.utils.device import resolve_device, usable_workers
from libs.utils.dist import init_distributed, shutdown, waiting_group
from libs.utils.logging import setup_logging

log = logging.getLogger("test")
EXAMPLES = """\
  .venv/bin/python test.py --cfg config.yaml initial model.pth data_root /data
  .venv/bin/python test.py --cfg config.yaml initial stm_cycle_r18.pth arch resnet18 valset DAVIS16 loop 0
  .venv/bin/python test.py --cfg configs/quickstart.yaml initial quickstart/checkpoint/latest.pth gpu_id -1
  .venv/bin/python test.py --cfg config.yaml initial model.pth valset FOLDER data_root data   # data/FOLDER/"""
KEYS = (("initial", "weights to test (train.py checkpoints also set arch/keydim/valdim)"),
        ("data_root", "folder holding the data set folders (DAVIS17/, FOLDER/, ...; see DATASET.md)"),
        ("valset / valsplit", "data set and split to segment (DAVIS17 val, VOS val, FOLDER, SYNTHETIC, ...)"),
        ("arch keydim valdim", "model shape (resnet50 128 512 for released R50 checkpoints)"),
        ("output_dir", "results go to <output_dir>/<valset>/"),
        ("loop", "test-time correction iterations (0 = off, faster)"),
        ("batch_videos", "videos segmented together (1: one at a time; more: more frames/s on a GPU)"),
        ("save_indexed_format", "index (PNG ids, scored) | segmentation | heatmap | mask (overlays)"),
        ("gpu_id", "CUDA device, -1 for the CPU"))


def cpu_expectation(arch: str, input_size, loop: int) -> str:
    """What a CPU run costs, and the keys that make it cheaper that are not set already (README: "On a CPU")."""
    size = f"{input_size[0]}x{input_size[1]}"
    cheaper = (["loop 0"] if loop > 0 else []) + \
        (["input_size '[120, 214]'"] if input_size[0] * input_size[1] > 120 * 214 else [])
    text = (f"on the CPU: {arch} at {size}, loop {loop}; config.yaml's ResNet-50 at 240x427 with loop 10 takes "
            "a minute or more per frame on 2 cores (README: 'On a CPU')")
    tips = ([f"add `{' '.join(cheaper)}`"] if cheaper else []) + \
        ([] if arch == "resnet18" else ["test a ResNet-18 checkpoint"])
    return text + (f"; for a quick look {', or '.join(tips)}" if tips else "")


def main() -> None:
    """Parse the config, segment every video (going on past a failing one), write masks, score."""
    cfg = parse_cfg("Segment the videos of valset with a trained STM-Cycle model.", examples=EXAMPLES, keys=KEYS)
    setup_logging()
    group = init_distributed(cfg.gpu_id >= 0 and torch.cuda.is_available())
    waiting = waiting_group() if group.distributed else None     # gloo, waits as long as rank 0 scores
    dataset = build_eval_dataset(cfg)
    device = resolve_device(cfg.gpu_id if cfg.gpu_id < 0 or not group.distributed else group.local_rank)
    decoder = build_frame_decoder(cfg.data_backend, device)
    out_root = os.path.join(cfg.output_dir, cfg.valset)
    if group.is_main:
        check_writable(out_root, "output_dir")
    if not cfg.initial:
        log.warning("`initial` is empty: testing an UNTRAINED network (pass initial model.pth)")
    share = dataset
    if group.distributed:
        share, skipped = distributed.rank_share(dataset, group.rank, group.world_size,
                                                os.path.join(out_root, dataset.results_subdir),
                                                distributed.restart_count(os.environ))
        log.info("rank %d of %d: %d videos (%d finished before the restart)", group.rank, group.world_size,
                 len(share.videos), len(skipped))
    model = build_model(cfg).to(device).eval()
    core = build_core(cfg, build_backend(cfg, model), len(share.videos))
    log.info("%s %s: %d videos, arch %s, loop %d, on %s", cfg.valset, cfg.valsplit, len(share.videos),
             cfg.arch, cfg.loop, device)
    if device.type == "cpu":
        log.info(cpu_expectation(cfg.arch, tuple(cfg.input_size), cfg.loop))
    if group.distributed:
        report = run_rank(cfg, core, dataset, share, out_root, device, decoder, waiting)
    else:
        report = run_and_score(core, dataset, out_root, cfg.input_size, cfg.save_indexed_format, device,
                               usable_workers(cfg.workers), decoder)
    log.info("all videos: %d frames in %.1f s, %.2f FPS; results in %s", report.frames, report.seconds,
             report.fps, out_root)
    shutdown()
    if report.failed:
        raise VOSError(report.failure_summary(out_root))


def run_rank(cfg, core, dataset, share, out_root: str, device, decoder, waiting):
    """Segment this rank's share; rank 0 waits for every rank, then scores the whole set once (the other
    ranks return their own report, without failures: rank 0 reports those of all)."""
    report = run_set(core, share, out_root, cfg.input_size, cfg.save_indexed_format, device, decoder)
    videos_root = os.path.join(out_root, dataset.results_subdir)
    parts = distributed.gather_reports(waiting, report.done, report.failed)
    if torch.distributed.get_rank() != 0:
        report.failed = {}
        return report
    unseen = distributed.unseen_results(parts, videos_root)
    if unseen:
        raise VOSError(f"rank 0 cannot see the results of video {unseen[0]!r} in {videos_root}: with several "
                       "nodes, output_dir must be a folder that every node shares (a network file system)")
    report.done = distributed.finished_videos(dataset, videos_root)
    report.failed = distributed.merge_failures([failed for _, failed in parts], report.done)
    if report.done:
        report.score = score_results(dataset, out_root, cfg.save_indexed_format, usable_workers(cfg.workers),
                                     report.done)
    return report


if __name__ == "__main__":
    run_main(main)
