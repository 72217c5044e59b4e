"""engine_speed.py --batch_videos 1,2,4,8: a set of synthetic videos segmented B at a time through one
inference core of B slots (continuous batching, libs/inference/scheduler.py `run_jobs`); data-set FPS,
operators per segmented frame, peak memory."""
import time
from typing import Dict, List, Optional, Tuple

import torch
from torch.profiler import ProfilerActivity, profile

from libs.inference.backend import Backend
from libs.inference.core import InferenceCore
from libs.inference.scheduler import Job, run_jobs
from libs.inference.settings import InferenceSettings

Video = Tuple[List[torch.Tensor], torch.Tensor]      # frames [1, 3, H, W] each, first masks [1, K+1, H, W]


def make_set(args, size: Tuple[int, int], device: torch.device, make_video) -> List[Video]:
    """--set_videos synthetic videos of --frames frames with 1..--objects objects (the same length, so that
    the table shows what a batched step saves; a set of unequal lengths also has a tail where fewer videos
    than slots are left)."""
    videos = []
    for i in range(args.set_videos):
        frames, first, _ = make_video(size, args.frames, 1 + i % args.objects, args.seed + i, device)
        videos.append((frames, first))
    return videos


def run_set(core: InferenceCore, videos: List[Video]) -> int:
    """Segment every video through `core` (as many at once as it has slots; a core of one slot is the
    single-video path); returns the segmented frames. Results stay on the device (nothing is copied back)."""
    jobs = (Job(i, iter([(x, first if t == 0 else None) for t, x in enumerate(frames)]))
            for i, (frames, first) in enumerate(videos))
    return sum(1 for e in run_jobs(core, jobs, core.settings.align) if e.kind == "frame" and e.t > 0)


def _count_ops(prof, device: torch.device, outermost, computes) -> int:
    """Operations in a profile: CUDA kernels and copies, or outermost computing ATen operators on a CPU."""
    if device.type == "cuda":
        return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    return sum(1 for e in prof.events() if e.name.startswith("aten::") and outermost(e) and computes(e))


def batch_row(args, model, videos: List[Video], path_kw: Dict, loop: int, slots: int, device: torch.device,
              helpers) -> Dict:
    """One row: FPS over the set after a warm-up run, peak MiB, operators per segmented frame (--ops)."""
    sync, peak_reset, peak_mib, outermost, computes = helpers
    settings = InferenceSettings(save_freq=args.save_freq, loop=loop, correction_rate=args.rate,
                                 max_memory_frames=args.max_memory_frames or 0, **path_kw)
    core = InferenceCore(Backend.from_settings(model, settings), settings, slots)
    warm = videos if settings.compile else [(f[:3], m) for f, m in videos[:slots]]
    run_set(core, warm)
    sync(device)
    peak_reset(device)
    start = time.perf_counter()
    frames = run_set(core, videos)
    sync(device)
    fps = frames / (time.perf_counter() - start)
    ops = None
    if args.ops:
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            counted = run_set(core, videos)
            sync(device)
        ops = _count_ops(prof, device, outermost, computes) / counted
    return dict(slots=slots, fps=fps, ops=ops, peak=peak_mib(device))


def print_batch_rows(label: str, path: str, rows: List[Dict]) -> None:
    """Markdown rows with the ratios to batch 1."""
    base = rows[0]
    for r in rows:
        ops_ratio = None if r["ops"] is None else base["ops"] / r["ops"]
        ops = "-" if r["ops"] is None else f"{r['ops']:.0f}"
        peak = "-" if r["peak"] is None else f"{r['peak']:.0f}"
        print(f"| {label} | {path} | {r['slots']} | {r['fps']:.2f} | {r['fps'] / base['fps']:.2f}x | {ops} "
              f"| {'-' if ops_ratio is None else f'{ops_ratio:.2f}x'} | {peak} |", flush=True)


def batch_table(args, settings, path: str, path_kw: Dict, device: torch.device, build_model, make_video,
                helpers) -> None:
    """The --batch_videos table: per setting, one row per batch size."""
    sizes = [int(b) for b in args.batch_videos.split(",")]
    print(f"\nbatch_videos: a set of {args.set_videos} videos ({args.frames} frames, 1 to {args.objects} "
          f"objects), path {path}; FPS = segmented frames per second over the set; "
          f"ops/frame fall = batch 1's ops/frame over this row's")
    print("| setting | path | batch_videos | set FPS | vs batch 1 | ops/frame | ops/frame fall | peak MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for setting in settings:
        torch.manual_seed(args.seed)
        model = build_model(setting.arch, args.keydim, args.valdim, args.weights, device)
        videos = make_set(args, setting.size, device, make_video)
        rows = [batch_row(args, model, videos, path_kw, setting.loop, b, device, helpers) for b in sizes]
        print_batch_rows(f"{setting.label()}, {args.set_videos} videos", path, rows)


def parse_sizes(text: str) -> Optional[str]:
    """The --batch_videos value if every entry is a positive integer, else None."""
    try:
        return text if all(int(b) >= 1 for b in text.split(",")) else None
    except ValueError:
        return None
