"""Inference engine and training step speed: the straightforward fp32 engine next to the fast path.

    .venv/bin/python benchmarks/engine_speed.py --tiny                 # small CPU setting, well under a minute
    python benchmarks/engine_speed.py                                  # on a GPU: the issue's table rows
    python benchmarks/engine_speed.py --arch resnet50 --size 480 854 --loop 10 --frames 60
    python benchmarks/engine_speed.py --long 3000 --max_memory_frames 20 --every 250

Random weights (STM(...)) and synthetic frames (libs.dataset.synthetic); nothing is downloaded.
Each path is one video at a time through an inference core of one slot (libs/inference/core.py
`InferenceCore`, stepped frame by frame). For each setting it prints the frames per second of each path
(plain: the model itself in exact fp32; fast: folded, channels-last copy, SDPA read, mask-only correction;
fast-bf16: the same with the copy's weights in bf16; compiled, compiled-bf16: the fast path's steps
compiled by torch.compile, CUDA graphs on a GPU; by default the bf16 and compiled paths run on CUDA only,
on a CPU name them in --paths), the seconds spent compiling (not in the FPS), the share of output pixels
whose label agrees with the plain path, the peak GPU memory, and the cyclic training step (Adam) in
seconds per iteration and clips per second. On CUDA the original STM-Cycle's figures stand beside ours.
"""
import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from benchmarks.batched_speed import batch_table, parse_sizes  # noqa: E402
from benchmarks.bench_common import (fmt, memory_now, peak_mib, peak_reset, precision_kept, sync,  # noqa: E402
                                     time_memory_read)
from libs.dataset.synthetic import generate_video  # noqa: E402
from libs.training.cyclic import CyclicConfig, cyclic_loss  # noqa: E402
from libs.errors import VOSError  # noqa: E402
from libs.inference.backend import Backend  # noqa: E402
from libs.inference.core import InferenceCore  # noqa: E402
from libs.inference.frames import Letterbox  # noqa: E402
from libs.inference.settings import InferenceSettings  # noqa: E402
from libs.models.checkpoint import load_weights  # noqa: E402
from libs.models.stm import STM  # noqa: E402

# The original's FPS on an H200 (issue 10, 70 frames, save_freq 5, correction_rate 180) per (arch, input
# size, loop); the targets are 5x without correction, 10x with (the first issue's H100 figures were
# 27.3, 8.95, 94.0, 64.0, 29.0, 21.0) ...
ORIGINAL_FPS = {("resnet18", (240, 427), 10): 31.7, ("resnet50", (480, 854), 10): 12.8,
                ("resnet18", (240, 427), 0): 134.7, ("resnet50", (240, 427), 0): 80.8,
                ("resnet18", (480, 854), 0): 39.1, ("resnet50", (480, 854), 0): 27.3}
# ... and seconds per training iteration (3 frames, batch 1, 240x427, Adam) per arch, on an H100.
ORIGINAL_TRAIN = {"resnet18": 0.104, "resnet50": 0.159}
TRAIN_SIZE = (240, 427)
# ATen operators that only make views, allocate or query: not operations for --ops on a CPU (nor are
# to / contiguous / _to_copy-free casts that return their input: they have no computing sub-operator).
NO_KERNEL = {f"aten::{n}" for n in ("empty", "empty_strided", "empty_like", "view", "_unsafe_view", "reshape",
                                    "as_strided", "expand", "permute", "transpose", "t", "unsqueeze", "squeeze",
                                    "slice", "select", "narrow", "alias", "detach", "lift_fresh", "resize_",
                                    "set_", "unflatten", "flatten", "split", "chunk", "unbind", "contiguous",
                                    "to", "type_as", "_reshape_alias", "resolve_conj", "resolve_neg",
                                    "_nnpack_available", "is_nonzero", "item", "_local_scalar_dense")}
PATHS = {"plain": dict(fast=False, amp=False), "fast": dict(fast=True, amp=False),
         "fast-bf16": dict(fast=True, amp=True), "compiled": dict(fast=True, amp=False, compile=True),
         "compiled-bf16": dict(fast=True, amp=True, compile=True)}
GPU_PATHS = ["plain", "fast", "fast-bf16", "compiled", "compiled-bf16"]


@dataclass(frozen=True)
class Setting:
    """One engine measurement: model, input size, correction iterations."""

    arch: str
    size: Tuple[int, int]
    loop: int

    def label(self) -> str:
        """'resnet18 240x427 loop 10'."""
        return f"{self.arch} {self.size[0]}x{self.size[1]} loop {self.loop}"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="small CPU preset (overrides dims, frames, save_freq, "
                   "training batch): resnet18 keydim 16 valdim 32, 64x112, 6 frames, loop 1, save_freq 2, 1 thread")
    p.add_argument("--arch", default=None, help="one setting instead of the table (with --size and --loop)")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"))
    p.add_argument("--loop", type=int, default=None, help="correction iterations")
    p.add_argument("--keydim", type=int, default=128)
    p.add_argument("--valdim", type=int, default=512)
    p.add_argument("--objects", type=int, default=2, help="objects in the synthetic video")
    p.add_argument("--frames", type=int, default=40, help="frames of the timed video")
    p.add_argument("--save_freq", type=int, default=5)
    p.add_argument("--rate", type=float, default=150.0, help="correction_rate")
    p.add_argument("--max_memory_frames", type=int, default=None, help="0: unbounded (default; 20 with --long)")
    p.add_argument("--paths", default=None, help="comma-separated engine paths (default: plain,fast; on CUDA "
                   "plain,fast,fast-bf16,compiled,compiled-bf16; '' for the training rows only)")
    p.add_argument("--train_batch", type=int, default=8, help="the larger training batch (besides 1)")
    p.add_argument("--train_iters", type=int, default=10, help="timed training iterations (0: no training rows)")
    p.add_argument("--long", type=int, default=0, metavar="N", help="run one N-frame video and print the memory curve")
    p.add_argument("--read", default="", metavar="M1,M2", help="time the memory read alone (bank + attention) "
                   "with these numbers of memory frames, random keys")
    p.add_argument("--every", type=int, default=100, help="--long: print a line every this many frames")
    p.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda when available)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default; --tiny: 1)")
    p.add_argument("--ops", action="store_true", help="count GPU operations (CPU: leaf ATen operators) per "
                   "frame in one extra profiled run of the first 11 frames per path")
    p.add_argument("--batch_videos", default="", metavar="B1,B2", help="instead of the engine table: a set of "
                   "--set_videos videos segmented B at a time (e.g. 1,2,4,8), for each of --batch_loops, on the "
                   "first of --paths")
    p.add_argument("--set_videos", type=int, default=8, help="--batch_videos: videos in the set")
    p.add_argument("--batch_loops", default="0,10", help="--batch_videos: correction iterations of its rows")
    p.add_argument("--cudnn_benchmark", action="store_true", help="torch.backends.cudnn.benchmark for every path")
    p.add_argument("--weights", default="", help="a checkpoint to load instead of random weights")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.batch_videos and parse_sizes(args.batch_videos) is None:
        p.error(f"--batch_videos {args.batch_videos}: give positive integers separated by commas, e.g. 1,2,4,8")
    if args.tiny:
        args.arch, args.size = args.arch or "resnet18", args.size or [64, 112]
        args.loop = 1 if args.loop is None else args.loop
        args.keydim, args.valdim, args.frames, args.save_freq = 16, 32, 6, 2
        args.train_batch, args.train_iters, args.threads = 2, min(args.train_iters, 2), args.threads or 1
        args.device = args.device or "cpu"
    return args


def settings(args: argparse.Namespace) -> List[Setting]:
    """The issue's table rows, or the one setting named on the command line."""
    if args.arch is None and args.size is None and args.loop is None:
        return [Setting(a, s, loop) for (a, s, loop) in ORIGINAL_FPS]
    return [Setting(args.arch or "resnet50", tuple(args.size or (480, 854)), args.loop or 0)]


def make_video(size: Tuple[int, int], num_frames: int, objects: int, seed: int,
               device: torch.device) -> Tuple[List[torch.Tensor], torch.Tensor, List[np.ndarray]]:
    """Synthetic video: T frames [1, 3, H, W] normalised, first mask [1, K+1, H, W], labels T x [H, W].

    Videos longer than 60 frames replay the first 60 back and forth (only those are on the device).
    """
    made = min(num_frames, 60)
    rgb, labels = generate_video(seed, made, size, objects)
    order = [i % (2 * made - 2) if made > 1 else 0 for i in range(num_frames)]
    order = [i if i < made else 2 * made - 2 - i for i in order]
    box = Letterbox(size, size)
    distinct = [box.frame(x).to(device) for x in rgb]                                # made x [1, 3, H, W]
    first = box.mask(labels[0], objects).to(device)                                  # [1, K+1, H, W]
    return [distinct[i] for i in order], first, [labels[i] for i in order]


def build_model(arch: str, keydim: int, valdim: int, weights: str, device: torch.device) -> STM:
    """A randomly initialised (or loaded) STM in eval mode."""
    model = STM(arch, keydim=keydim, valdim=valdim)
    if weights:
        load_weights(model, weights)
    return model.to(device).eval()


def make_core(model: STM, args: argparse.Namespace, loop: int, path: str, bound: int) -> InferenceCore:
    """An inference core of one slot (the single-video path) for `path`."""
    settings = InferenceSettings(save_freq=args.save_freq, loop=loop, correction_rate=args.rate,
                                 max_memory_frames=bound, **PATHS[path])
    return InferenceCore(Backend.from_settings(model, settings), settings, slots=1)


def run_engine(core: InferenceCore, frames: List[torch.Tensor], first: torch.Tensor) -> torch.Tensor:
    """Step one video through the core; labels of the segmented frames [T-1, H, W] uint8 (on the device)."""
    if core.keys:
        core.stop(0)
    core.start(0, frames[0], first)
    return torch.stack([core.step({0: frame})[0].argmax(0).to(torch.uint8) for frame in frames[1:]])


def time_engine(engine: InferenceCore, frames: List[torch.Tensor], first: torch.Tensor,
                device: torch.device) -> Tuple[float, torch.Tensor, Optional[float], Optional[float]]:
    """(segmented frames per second, labels [T-1, H, W], peak MiB, compile seconds) after a warm-up video:
    3 frames, or for a compiled engine the whole video (every graph its memory growth needs is compiled
    there; compile seconds = that run's time minus the timed run's)."""
    compiled = engine.settings.compile
    warm = frames if compiled else frames[:3]
    start = time.perf_counter()
    run_engine(engine, warm, first)
    sync(device)
    warm_s = time.perf_counter() - start
    peak_reset(device)
    start = time.perf_counter()
    labels = run_engine(engine, frames, first)
    sync(device)
    seconds = time.perf_counter() - start
    compile_s = max(0.0, warm_s - seconds) if compiled else None
    return (len(frames) - 1) / seconds, labels, peak_mib(device), compile_s


def ops_per_frame(engine: InferenceCore, frames: List[torch.Tensor], first: torch.Tensor,
                  device: torch.device, count: int = 11) -> float:
    """Operations per segmented frame from one profiled run over the first `count` frames: on CUDA the
    kernels and copies (launches a GPU pays for whatever their size), on a CPU the ATen operators the
    code calls (outermost ones, so a convolution counts once whatever its CPU kernel does inside) that
    compute (views, allocations and casts to the tensor's own type left out; inductor's fused CPU kernels
    are not profiler events, so a compiled path's CPU count holds only the library operators it calls)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    frames = frames[:count]
    with profile(activities=activities) as prof:
        run_engine(engine, frames, first)
        sync(device)
    if device.type == "cuda":
        n = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    else:
        n = sum(1 for e in prof.events() if e.name.startswith("aten::") and _outermost(e) and _computes(e))
    return n / (len(frames) - 1)


def _outermost(event) -> bool:
    """Whether no ATen operator encloses this profiler event."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return False
        parent = parent.cpu_parent
    return True


def _computes(event) -> bool:
    """Whether an ATen operator computes: it is not a view, allocation or query, or something it calls is."""
    return event.name not in NO_KERNEL or any(_computes(c) for c in event.cpu_children if c.name.startswith("aten::"))


def engine_rows(args: argparse.Namespace, setting: Setting, paths: List[str], device: torch.device) -> List[Dict]:
    """Time every path on one setting; agreement is measured against the plain path's labels."""
    torch.manual_seed(args.seed)
    model = build_model(setting.arch, args.keydim, args.valdim, args.weights, device)
    frames, first, _ = make_video(setting.size, args.frames, args.objects, args.seed, device)
    rows, reference = [], None
    for path in paths:
        with precision_kept():
            engine = make_core(model, args, setting.loop, path, args.max_memory_frames or 0)
            fps, labels, peak, compile_s = time_engine(engine, frames, first, device)
            reference = labels if reference is None else reference
            agree = (labels == reference).float().mean().item() * 100
            ops = ops_per_frame(engine, frames, first, device) if args.ops else None
        rows.append(dict(setting=setting, path=path, fps=fps, agree=agree, peak=peak, ops=ops, compile=compile_s))
    return rows


def train_clips(size: Tuple[int, int], batch: int, objects: int, seed: int,
                device: torch.device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`batch` clips of 3 consecutive synthetic frames: frames [B, 3, 3, H, W], masks [B, 3, K+1, H, W], K [B]."""
    frames, _, labels = make_video(size, batch + 2, objects, seed, device)
    box = Letterbox(size, size)
    masks = torch.stack([box.mask(lab, objects)[0] for lab in labels]).to(device)    # [T, K+1, H, W]
    clip_frames = torch.stack([torch.cat(frames[b:b + 3]) for b in range(batch)])    # [B, 3, 3, H, W]
    clip_masks = torch.stack([masks[b:b + 3] for b in range(batch)])                 # [B, 3, K+1, H, W]
    return clip_frames, clip_masks, torch.full((batch,), objects, dtype=torch.long, device=device)


def time_training(args: argparse.Namespace, arch: str, size: Tuple[int, int], batch: int, amp: bool,
                  device: torch.device) -> Dict:
    """Seconds per cyclic training iteration (forward, backward, Adam step) after one warm-up iteration."""
    torch.manual_seed(args.seed)
    model = build_model(arch, args.keydim, args.valdim, args.weights, device)   # eval: frozen batch norm
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, fused=True if amp else None)
    frames, masks, num = train_clips(size, batch, args.objects, args.seed, device)
    cfg = CyclicConfig(sdpa=amp)     # the fast training row: bf16 autocast, SDPA memory read, fused Adam

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = cyclic_loss(model, frames, masks, num, cfg)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    peak_reset(device)
    start = time.perf_counter()
    for _ in range(args.train_iters):
        step()
    sync(device)
    seconds = (time.perf_counter() - start) / args.train_iters
    return dict(arch=arch, size=size, batch=batch, precision="bf16+fast" if amp else "fp32", seconds=seconds,
                clips=batch / seconds, peak=peak_mib(device))


def print_engine_header() -> None:
    """The engine table's header (rows follow per setting as they are measured)."""
    print("| setting | path | FPS | vs plain | original FPS | vs original | agree % | peak MiB | ops/frame "
          "| compile s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)


def print_engine_rows(rows: List[Dict], on_cuda: bool) -> None:
    """Markdown rows: per setting and path, FPS, ratio to the first path, the original's FPS and ratio,
    agreement, peak memory, operations per frame, compile seconds."""
    plain: Dict[Setting, float] = {}
    for r in rows:
        s = r["setting"]
        plain.setdefault(s, r["fps"])
        original = ORIGINAL_FPS.get((s.arch, tuple(s.size), s.loop)) if on_cuda else None
        ratio = None if original is None else r["fps"] / original
        print(f"| {s.label()} | {r['path']} | {r['fps']:.2f} | {r['fps'] / plain[s]:.2f}x | {fmt(original, '.2f')} "
              f"| {fmt(ratio, '.2f')}{'x' if ratio else ''} | {r['agree']:.2f} | {fmt(r['peak'], '.0f')} "
              f"| {fmt(r['ops'], '.0f')} | {fmt(r['compile'], '.1f')} |", flush=True)


def print_train_table(rows: List[Dict], on_cuda: bool) -> None:
    """Markdown table: s/iteration and clips/s per batch and precision, beside the original's batch-1 figure."""
    print("| training | batch | precision | s/it | clips/s | vs fp32 batch 1 | original clips/s | vs original "
          "| peak MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    base: Dict[str, float] = {}
    for r in rows:
        key = f"{r['arch']} {r['size'][0]}x{r['size'][1]} 3 frames"
        base.setdefault(key, r["clips"])
        sec = ORIGINAL_TRAIN.get(r["arch"]) if on_cuda and tuple(r["size"]) == TRAIN_SIZE else None
        original = None if sec is None else 1.0 / sec
        ratio = None if original is None else r["clips"] / original
        print(f"| {key} | {r['batch']} | {r['precision']} | {r['seconds']:.3f} | {r['clips']:.2f} "
              f"| {r['clips'] / base[key]:.2f}x | {fmt(original, '.2f')} | {fmt(ratio, '.2f')}{'x' if ratio else ''} "
              f"| {fmt(r['peak'], '.0f')} |")


def run_long(args: argparse.Namespace, setting: Setting, paths: List[str], device: torch.device) -> None:
    """One --long N-frame video per path with bounded memory; a line every --every frames (the memory curve)."""
    torch.manual_seed(args.seed)
    model = build_model(setting.arch, args.keydim, args.valdim, args.weights, device)
    frames, first, _ = make_video(setting.size, args.long, args.objects, args.seed, device)   # 60 on the device
    bound = 20 if args.max_memory_frames is None else args.max_memory_frames
    for path in paths:
        with precision_kept():
            core = make_core(model, args, setting.loop, path, bound)
            peak_reset(device)
            core.start(0, frames[0], first)
            tic, last = time.perf_counter(), 0
            for t in range(1, args.long):
                core.step({0: frames[t]})
                if t % args.every == 0 or t == args.long - 1:
                    sync(device)
                    now = time.perf_counter()
                    stored = len(core.bank.rows[0].frame_ids)
                    print(f"long | {setting.label()} | {path} | frame {t} | {(t - last) / (now - tic):.2f} FPS "
                          f"| memory frames {stored}/{bound or 'all'} | {memory_now(device)}", flush=True)
                    tic, last = now, t


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark; returns the exit status."""
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    on_cuda = device.type == "cuda"
    paths = [p for p in args.paths.split(",") if p] if args.paths is not None else (
        GPU_PATHS if on_cuda else ["plain", "fast"])
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise VOSError(f"--paths: unknown path(s) {', '.join(unknown)}; known: {', '.join(PATHS)}")
    print(f"device {device} ({torch.cuda.get_device_name(device) if on_cuda else f'{torch.get_num_threads()} threads'})"
          f", torch {torch.__version__}, keydim {args.keydim}, valdim {args.valdim}, {args.objects} objects, "
          f"save_freq {args.save_freq}, {'loaded weights' if args.weights else 'random weights'}, "
          f"cudnn.benchmark {args.cudnn_benchmark}", flush=True)
    if args.long or args.read:
        for setting in settings(args):
            if args.read:
                print(f"memory read, {setting.size[0]}x{setting.size[1]} (h*w = positions per frame)")
                time_memory_read(args, setting.size, device)
            if args.long:
                run_long(args, setting, paths, device)
        return 0
    if args.batch_videos:           # only the batched table
        batch_settings = [Setting(s.arch, s.size, int(loop)) for s in dict.fromkeys(
            Setting(s.arch, s.size, 0) for s in settings(args)) for loop in args.batch_loops.split(",")]
        batch_table(args, batch_settings, (paths or ["fast"])[0], PATHS[(paths or ["fast"])[0]], device,
                    build_model, make_video, (sync, peak_reset, peak_mib, _outermost, _computes))
        return 0
    if paths:
        print(f"\nengine: {args.frames} frames (FPS over the {args.frames - 1} segmented ones), agreement = share "
              f"of pixels labelled as by the {paths[0]} path")
        print_engine_header()
    for setting in settings(args) if paths else []:
        print_engine_rows(engine_rows(args, setting, paths, device), on_cuda)
    if on_cuda and paths:
        print("targets (the issue): 10x the original's FPS with correction, 5x without; 4x its training clips/s; "
              "peak memory no higher; fast-bf16 J&F within 0.3 of fp32")
    if args.train_iters:
        training_rows(args, paths, device)
    return 0


def training_rows(args: argparse.Namespace, paths: List[str], device: torch.device) -> None:
    """Time the training step per arch, batch (1 and --train_batch) and precision; print the table."""
    on_cuda = device.type == "cuda"
    archs = sorted({s.arch for s in settings(args)})
    size = tuple(args.size) if args.size else TRAIN_SIZE
    precisions = (False, True) if on_cuda or any(p.endswith("bf16") for p in paths) else (False,)
    train = [time_training(args, arch, size, batch, amp, device)
             for arch in archs for batch in (1, args.train_batch) for amp in precisions]
    print(f"\ntraining: cyclic_loss + Adam, {args.train_iters} timed iterations after one warm-up")
    print_train_table(train, on_cuda)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VOSError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
