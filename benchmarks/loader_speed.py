"""Training data loader speed: the PIL DataLoader (with workers) next to the DALI backend, and a training step.

    .venv/bin/python benchmarks/loader_speed.py                        # CPU, 480x854 frames -> 240x427 clips
    .venv/bin/python benchmarks/loader_speed.py --data /tmp/loaderbench --batches 20
    python benchmarks/loader_speed.py --device cuda --workers 8 --threads 4 --batch 8   # on a GPU machine

Generates (or reuses) a SYNTHETIC training set, then prints clips per second of each loader after one
warm-up batch (the DALI figure includes the Python side that samples the clips), the Python side
alone, and the time of one cyclic training step of a small STM on the same batches, with the ratios.
"""
import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from libs.config import load_cfg  # noqa: E402
from libs.dataset.build import build_train_dataset  # noqa: E402
from libs.dataset.dali.plan import ClipPlanDataset  # noqa: E402
from libs.dataset.synthetic import write_dataset  # noqa: E402
from libs.dataset.training import collate_clips  # noqa: E402
from libs.training.schedule import EpochSampler  # noqa: E402


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="folder to keep the generated data in (reused if present)")
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--input_size", type=int, nargs=2, default=(240, 427), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=4, help="clips per batch (train_batch)")
    parser.add_argument("--batches", type=int, default=10, help="timed batches per loader (after one warm-up)")
    parser.add_argument("--workers", type=int, default=2, help="PIL DataLoader workers")
    parser.add_argument("--threads", type=int, default=2, help="DALI CPU threads")
    parser.add_argument("--plan_workers", type=int, default=0,
                        help="processes that plan DALI clips (0: the main process; train.py uses `workers`)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (DALI's GPU graph and the step)")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--steps", type=int, default=1, help="timed training steps (0: skip)")
    parser.add_argument("--step_clips", type=int, default=1, help="clips in the timed training step's batch")
    return parser.parse_args()


def build_dataset(args: argparse.Namespace):
    """The SYNTHETIC training data set (generated on first use) and its config."""
    root = args.data or tempfile.mkdtemp(prefix="loader-speed-")
    marker = os.path.join(root, f"ready-{args.videos}x{args.frames}-{args.height}x{args.width}")
    if not os.path.exists(marker):
        start = time.perf_counter()
        write_dataset(os.path.join(root, "SYNTHETIC"), args.videos, args.frames, (args.height, args.width),
                      seed=3, split="train")
        open(marker, "w").close()
        print(f"generated {args.videos} videos x {args.frames} frames ({args.height}x{args.width}) in "
              f"{time.perf_counter() - start:.1f}s under {root}")
    samples = max(1, -(-(args.batches + 1) * args.batch // args.videos))
    cfg = load_cfg(None, ["data_root", root, "trainset", "['SYNTHETIC']", "datafreq", "[1]", "max_skip", "[5]",
                          "input_size", str(list(args.input_size)), "samples_per_video", str(samples),
                          "arch", args.arch, "max_training_obj", "3"])
    return build_train_dataset(cfg), cfg


def time_batches(batches, count: int, device: torch.device):
    """(clips per second over `count` batches after a warm-up one, the batches seen)."""
    iterator = iter(batches)
    seen = [next(iterator)]
    start = time.perf_counter()
    for _ in range(count):
        seen.append(next(iterator))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    return count * seen[0]["frames"].shape[0] / elapsed, seen


def time_plans(dataset, count: int) -> float:
    """Clips per second of the DALI backend's Python side alone (sampling, masks, parameters), one process."""
    plans = ClipPlanDataset(dataset)
    start = time.perf_counter()
    for i in range(count):
        plans[i]
    return count / (time.perf_counter() - start)


def time_steps(cfg, batch, steps: int, device: torch.device) -> float:
    """Seconds of one cyclic training step (forward, backward, Adam) of the STM of `cfg` on `batch`
    (the fastest of `steps`, after one warm-up step on a GPU)."""
    from libs.training.cyclic import CyclicConfig, CyclicObjective
    from libs.models import build_model

    model = build_model(cfg).to(device).eval()
    objective = CyclicObjective(model, CyclicConfig(cfg.mode, cfg.iou_threshold, cfg.loss))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    frames, masks = batch["frames"].to(device), batch["masks"].to(device)
    num = batch["num_objects"].to(device)
    times = []
    for _ in range(steps + (device.type == "cuda")):
        start = time.perf_counter()
        objective(frames, masks, num)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times[-steps:])


def line(label: str, text: str) -> None:
    """Print one result row."""
    print(f"{label:<52} {text}")


def main() -> int:
    """Run the measurements and print them."""
    args = parse_args()
    device = torch.device(args.device)
    dataset, cfg = build_dataset(args)
    sampler = EpochSampler(len(dataset), seed=0)
    print(f"{len(dataset)} clips of {cfg.sampled_frames} frames, {args.height}x{args.width} -> "
          f"{args.input_size[0]}x{args.input_size[1]}, batch {args.batch}, {args.batches} timed batches, "
          f"device {device}, {os.cpu_count()} CPUs")
    pil = DataLoader(dataset, batch_size=args.batch, sampler=sampler, num_workers=args.workers,
                     collate_fn=collate_clips, drop_last=True, pin_memory=device.type == "cuda")
    pil_rate, seen = time_batches(pil, args.batches, device)
    line(f"PIL DataLoader ({args.workers} workers)", f"{pil_rate:8.1f} clips/s")
    from libs.dataset.dali.loader import DaliLoaders

    loaders = DaliLoaders(dataset, args.batch, device, threads=args.threads, workers=args.plan_workers)
    dali_rate, _ = time_batches(loaders.epoch(0, sampler), args.batches, device)
    graph = "GPU" if device.type == "cuda" else "CPU"
    line(f"DALI ({graph} graph, {args.threads} threads, {args.plan_workers} planning workers)",
         f"{dali_rate:8.1f} clips/s = {dali_rate / pil_rate:.2f} x PIL")
    plan_rate = time_plans(dataset, min(len(dataset), args.batches * args.batch))
    line("DALI's Python side alone (1 process)", f"{plan_rate:8.1f} clips/s")
    if args.steps:
        clips = min(args.step_clips, args.batch)
        step = time_steps(cfg, {k: v[:clips] for k, v in seen[-1].items()}, args.steps, device)
        line(f"training step ({cfg.arch}, {clips} clip(s), {args.steps} timed)",
             f"{clips / step:8.2f} clips/s ({step:.2f} s a step)")
        print(f"loading takes {clips / step / pil_rate:.3f} (PIL) and {clips / step / dali_rate:.3f} (DALI) "
              "of the training time of the same clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
