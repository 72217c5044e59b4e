"""Validation J&F against training time: train.py on generated data for a fixed time, one line per epoch.

    .venv/bin/python benchmarks/training_curve.py --tiny            # CPU check: 1 epoch a run, ~1 min
    python benchmarks/training_curve.py --minutes 9                 # GPU: SYNTHETIC, then STATIC + SYNTHETIC
    python benchmarks/training_curve.py --runs static+synthetic --minutes 9 --out /var/tmp/curve

Generates a SYNTHETIC training/validation set (libs.dataset.synthetic) and a STATIC set (single
generated images with their masks), then runs the real `train.py` once per run, from random weights,
with `max_minutes` as the budget and validation (the one inference engine, J&F-Mean) after every
epoch, and prints the J&F curve read back from each run's train.log, starting with the untrained
weights (epoch 0, scored by test.py). Nothing is downloaded.
"""
import argparse
import os
import re
import subprocess
import sys
from datetime import datetime
from typing import Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

from libs.config import load_cfg  # noqa: E402
from libs.dataset.synthetic import generate_video, video_seed, write_dataset  # noqa: E402
from libs.io import davis_palette, write_image, write_indexed_png  # noqa: E402
from libs.models import STM, save_weights  # noqa: E402
from libs.quickstart import jf_mean  # noqa: E402

# run name -> (trainset, datafreq, max_skip)
RUNS = {"synthetic": (["SYNTHETIC"], [1], [2]),
        "static+synthetic": (["STATIC", "SYNTHETIC"], [1, 1], [1, 2])}
LOG_TIME = re.compile(r"^(\d\d:\d\d:\d\d) ")
VALIDATION = re.compile(r"validation J&F-Mean ([0-9.]+) \(.*epoch-(\d+)\)")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line options; anything after them is passed to train.py as KEY VAL pairs."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="output/training_curve", help="data, checkpoints and logs go here")
    p.add_argument("--runs", default="synthetic,static+synthetic", help=f"comma-separated: {', '.join(RUNS)}")
    p.add_argument("--minutes", type=float, default=9.0, help="training time of each run (max_minutes)")
    p.add_argument("--epochs", type=int, default=100000, help="stop a run after this many epochs (if --minutes "
                   "has not stopped it first)")
    p.add_argument("--videos", type=int, default=200, help="SYNTHETIC training videos (STATIC: as many images)")
    p.add_argument("--val_videos", type=int, default=10)
    p.add_argument("--frames", type=int, default=20, help="frames per generated video")
    p.add_argument("--size", type=int, nargs=2, default=[240, 427], metavar=("H", "W"), help="generated data")
    p.add_argument("--tiny", action="store_true", help="CPU preset: 4 tiny videos and images, keydim 8, "
                   "1 epoch a run (whatever the CPU's speed; at most 5 minutes)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VAL overrides for train.py")
    args = p.parse_args(argv)
    if args.tiny:
        args.minutes, args.epochs, args.videos, args.val_videos = 5.0, 1, 4, 1
        args.frames, args.size = 5, [40, 64]
    unknown = [r for r in args.runs.split(",") if r not in RUNS]
    if unknown:
        p.error(f"--runs: unknown run(s) {', '.join(unknown)}; known: {', '.join(RUNS)}")
    return args


def write_static(out: str, count: int, size: Tuple[int, int], seed: int) -> None:
    """`count` single generated images with their masks in the STATIC layout (JPEGImages/, Annotations/)."""
    os.makedirs(os.path.join(out, "JPEGImages"), exist_ok=True)
    os.makedirs(os.path.join(out, "Annotations"), exist_ok=True)
    for index in range(count):
        frames, labels = generate_video(video_seed(seed, "static", index), 1, size)
        name = f"static-{index:04d}"
        write_image(os.path.join(out, "JPEGImages", name + ".jpg"), frames[0])
        write_indexed_png(os.path.join(out, "Annotations", name + ".png"), labels[0], davis_palette())


def prepare_data(args: argparse.Namespace) -> str:
    """Generate the data sets once under --out/data (kept for later runs); returns data_root."""
    root = os.path.join(args.out, "data")
    size = tuple(args.size)
    if not os.path.isdir(os.path.join(root, "SYNTHETIC")):
        write_dataset(os.path.join(root, "SYNTHETIC"), args.videos, args.frames, size, seed=0, split="train")
        write_dataset(os.path.join(root, "SYNTHETIC"), args.val_videos, args.frames, size, seed=1, split="val")
    if not os.path.isdir(os.path.join(root, "STATIC")):
        write_static(os.path.join(root, "STATIC"), args.videos, size, seed=2)
    return root


def train_options(args: argparse.Namespace, run: str, data_root: str) -> List[str]:
    """train.py KEY VAL pairs of one run: random init, learned batch norm, validation every epoch."""
    trainset, datafreq, max_skip = RUNS[run]
    opts = ["data_root", data_root, "checkpoint", os.path.join(args.out, run), "resume", "",
            "trainset", str(trainset), "datafreq", str(datafreq), "max_skip", str(max_skip),
            "valset", "SYNTHETIC", "max_minutes", str(args.minutes), "epochs", str(args.epochs), "epoch_per_test", "1",
            "arch", "resnet18", "backbone_weights", "", "freeze_bn", "False", "learning_rate", "2e-4",
            "weight_decay", "0", "milestone", "[]", "iter_size", "1", "train_batch", "8", "samples_per_video", "4",
            "input_size", str(list(args.size)), "loop", "0", "epochs_per_increment", "2", "max_skip_increment", "1",
            "max_skip_cap", "5", "max_training_obj", "3", "workers", "4"]
    if args.tiny:
        opts += ["keydim", "8", "valdim", "16", "train_batch", "2", "samples_per_video", "2", "workers", "0",
                 "gpu_id", "-1"]
    return opts + args.opts


def read_curve(log_path: str) -> List[Tuple[int, float, float]]:
    """(epoch, minutes since the run's first log line, J&F-Mean) for every validation in a train.log."""
    curve, start = [], None
    with open(log_path) as f:
        lines = f.read().splitlines()
    for line in lines:
        stamp = LOG_TIME.match(line)
        if not stamp:
            continue
        now = datetime.strptime(stamp.group(1), "%H:%M:%S")
        start = start or now
        found = VALIDATION.search(line)
        if found:
            minutes = ((now - start).total_seconds() % 86400) / 60.0
            curve.append((int(found.group(2)), minutes, float(found.group(1))))
    return curve


def untrained_score(opts: List[str], folder: str) -> Tuple[str, Optional[float]]:
    """Save the run's random initial weights (so that training starts from them) and score them with
    test.py on the validation set: (weights path, J&F-Mean)."""
    cfg = load_cfg(os.path.join(ROOT, "config.yaml"), opts)
    torch.manual_seed(cfg.seed)
    os.makedirs(folder, exist_ok=True)
    weights = os.path.join(folder, "untrained.pth")
    save_weights(STM(cfg.arch, cfg.keydim, cfg.valdim), weights)
    cmd = [sys.executable, "test.py", "--cfg", "config.yaml"] + opts + [
        "initial", weights, "output_dir", os.path.join(folder, "untrained-output")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return weights, (jf_mean(done.stdout + done.stderr) if done.returncode == 0 else None)


def main(argv: Optional[List[str]] = None) -> int:
    """Generate data, score and train each run for --minutes, print the curves; returns the exit status."""
    args = parse_args(argv)
    data_root = prepare_data(args)
    curves: Dict[str, List[Tuple[int, float, float]]] = {}
    for run in args.runs.split(","):
        folder = os.path.join(args.out, run)
        log_path = os.path.join(folder, "train.log")
        if os.path.exists(log_path):
            os.remove(log_path)                      # this run's lines only
        opts = train_options(args, run, data_root)
        weights, before = untrained_score(opts, folder)
        cmd = [sys.executable, "train.py", "--cfg", "config.yaml"] + opts + ["initial", weights]
        print("$ python3 " + " ".join(cmd[1:]), flush=True)
        done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        curves[run] = ([(0, 0.0, before)] if before is not None else []) + read_curve(log_path)
    print("\n| run | epoch | minutes | validation J&F-Mean |\n| --- | --- | --- | --- |")
    for run, curve in curves.items():
        for epoch, minutes, score in curve:
            print(f"| {run} | {epoch} | {minutes:.1f} | {score:.4f} |")
        if not curve:
            print(f"| {run} | - | - | no epoch finished in {args.minutes:g} minutes: raise --minutes or lower "
                  "--videos |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
