"""onnxruntime (CPU provider) vs PyTorch eager on the CPU: frames per second of the fast path's steps.

    .venv/bin/python benchmarks/onnx_speed.py                       # resnet18 and resnet50 at 240x427
    .venv/bin/python benchmarks/onnx_speed.py --tiny                # resnet18 at 64x112, seconds
    .venv/bin/python benchmarks/onnx_speed.py --archs resnet50 --size 480 854 --frames 20 --threads 4

For each arch: a random-weight STM (seeded; nothing is downloaded) is saved, exported by the code of
export.py (fp32, folded) and both step sets segment the same generated video with a bank of
max_memory_frames + 1 slots: every frame runs the memorize step (the previous frame) and the segment
step. PyTorch eager runs the fast path's folded channels-last network (test.py's fast_inference True,
compile False). Printed: FPS of each (after --warmup frames), their ratio, the share of pixels whose
label agrees and the largest probability difference (untrained weights leave many near-ties between
labels, so a difference of 1e-4 flips a few pixels), the export's seconds, and the machine's load
average before and after.
"""
import argparse
import os
import sys
import tempfile
import time
from typing import List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

from libs.models import STM, save_weights  # noqa: E402
from libs.onnxrt import OnnxSteps  # noqa: E402
from libs.onnxrt.export import export_folder  # noqa: E402
from libs.dataset.synthetic import video_tensors  # noqa: E402
from libs.inference import InferenceCore, InferenceSettings  # noqa: E402
from libs.inference.backend import Backend  # noqa: E402
from libs.inference.scheduler import Job, run_jobs  # noqa: E402

HEADER = ("| arch | input | threads | PyTorch eager FPS | onnxruntime FPS | onnxruntime / PyTorch | labels agree | "
          "max abs prob diff | export s |\n|---|---|---|---|---|---|---|---|---|")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["resnet18", "resnet50"], help="backbones to measure")
    p.add_argument("--size", nargs=2, type=int, default=[240, 427], metavar=("H", "W"), help="network input")
    p.add_argument("--frames", type=int, default=12, help="timed frames per path")
    p.add_argument("--warmup", type=int, default=2, help="untimed frames first")
    p.add_argument("--objects", type=int, default=2, help="objects in the generated video")
    p.add_argument("--max_memory_frames", type=int, default=4, help="stored frames (bank slots: this + 1)")
    p.add_argument("--save_freq", type=int, default=5, help="a frame joins the stored memory every N frames")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads of both runtimes")
    p.add_argument("--tiny", action="store_true", help="resnet18 at 64x112, 4 frames: a quick check")
    args = p.parse_args(argv)
    if args.tiny:
        args.archs, args.size, args.frames, args.warmup = ["resnet18"], [64, 112], 4, 1
    if min(args.frames, args.warmup + 1, args.objects, args.max_memory_frames, args.threads) < 1:
        p.error("--frames, --objects, --max_memory_frames and --threads must be >= 1, --warmup >= 0")
    return args


def segment(backend: Backend, frames: torch.Tensor, first: torch.Tensor, args: argparse.Namespace) -> torch.Tensor:
    """Probabilities [T, K+1, H, W] of frames [T, 3, H, W] from the first one-hot mask, through the core."""
    settings = InferenceSettings(save_freq=args.save_freq, max_memory_frames=args.max_memory_frames)
    job = Job(0, iter([(frames[t:t + 1], first if t == 0 else None) for t in range(frames.shape[0])]))
    return torch.stack([e.probs for e in run_jobs(InferenceCore(backend, settings), [job]) if e.kind == "frame"])


def timed(backend: Backend, frames: torch.Tensor, first: torch.Tensor, args: argparse.Namespace
          ) -> Tuple[float, torch.Tensor]:
    """(frames per second over the timed frames, probabilities of every frame [T, K+1, H, W])."""
    segment(backend, frames[:args.warmup + 1], first, args)
    start = time.perf_counter()
    probs = segment(backend, frames, first, args)
    return (frames.shape[0] - 1) / (time.perf_counter() - start), probs


def measure(arch: str, args: argparse.Namespace, folder: str) -> str:
    """One table row: export `arch`, then segment the same video with both step sets."""
    size = tuple(args.size)
    torch.manual_seed(0)
    model = STM(arch, 128, 512).eval()            # the released checkpoints' keydim / valdim
    checkpoint = os.path.join(folder, f"{arch}.pth")
    save_weights(model, checkpoint)
    start = time.perf_counter()
    export_folder(model, checkpoint, os.path.join(folder, arch), size, args.max_memory_frames + 1)
    export_s = time.perf_counter() - start
    frames, first = video_tensors(7, args.frames + 1, size, args.objects)
    eager_fps, eager = timed(Backend(model, fast=True), frames, first, args)
    onnx = Backend(model, onnx=OnnxSteps(os.path.join(folder, arch), threads=args.threads))
    onnx_fps, onnx = timed(onnx, frames, first, args)
    agree = float((eager.argmax(1) == onnx.argmax(1)).float().mean())
    diff = float((eager - onnx).abs().max())
    return (f"| {arch} | {size[0]}x{size[1]} | {args.threads} | {eager_fps:.2f} | {onnx_fps:.2f} | "
            f"{onnx_fps / eager_fps:.2f}x | {100 * agree:.2f} % | {diff:.1e} | {export_s:.0f} |")


def main(argv: Optional[List[str]] = None) -> None:
    """Measure every arch and print the table."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.threads} threads; {args.frames} frames, "
          f"{args.objects} objects, {args.max_memory_frames + 1} memory slots; load average {load:.2f}")
    print(HEADER)
    with tempfile.TemporaryDirectory(prefix="onnx_speed_") as folder:
        for arch in args.archs:
            print(measure(arch, args, folder), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
