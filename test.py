"""Segment every video of `valset` and write indexed PNGs; evaluates J&F when ground truth exists.

    python3 test.py --cfg config.yaml initial model.pth [KEY VAL ...]
"""
import logging
import os
from typing import Dict, Iterator, List, Tuple

import numpy as np
import torch

from libs.dataset.base import Video
from libs.dataset.build import build_eval_dataset
from libs.engine import Letterbox, build_engine
from libs.errors import VOSError
from libs.io import davis_palette, read_frame, read_mask, safe_join
from libs.models import build_model
from libs.utils.cli import parse_cfg, run_main
from libs.utils.device import resolve_device
from libs.utils.evaluate import after_test
from libs.utils.logging import setup_logging
from libs.utils.results import ResultWriter, check_writable, segment_and_write

log = logging.getLogger("test")


def load_given(video: Video, merge_objects: bool) -> Tuple[Dict[int, np.ndarray], List[int]]:
    """The masks given as input, by frame index (all ids merged into 1 for single-object sets)."""
    given, palette = {}, video.palette
    for t, path in sorted(video.given.items()):
        labels, pal = read_mask(path)
        if merge_objects:
            labels = np.where(labels == 255, 255, (labels > 0)).astype(np.uint8)
        given[t] = labels
        palette = palette or pal
    first = min(given) if given else None
    if first is None or not np.any((given[first] > 0) & (given[first] < 255)):
        where = video.given.get(first, "no mask file") if first is not None else "no mask file"
        raise VOSError(f"video {video.name!r}: the first given mask ({where}) has no object; "
                       "label objects 1, 2, ... on a 0 background")
    return given, palette or davis_palette()


def read_frames(video: Video, size: Tuple[int, int]) -> Iterator[np.ndarray]:
    """The video's frames in order; a frame of another size is an error naming it."""
    for path in video.frames:
        rgb = read_frame(path)
        if rgb.shape[:2] != size:
            raise VOSError(f"frame {path} is {rgb.shape[1]}x{rgb.shape[0]} but the video's first frame is "
                           f"{size[1]}x{size[0]}: all frames of a video must have one size")
        yield rgb


def check_video(video: Video, given: Dict[int, np.ndarray], size: Tuple[int, int]) -> None:
    """Reject videos the engine cannot segment, naming the file."""
    if len(video.frames) < 2:
        raise VOSError(f"video {video.name!r} has {len(video.frames)} frame(s); at least 2 are needed "
                       "(the first frame's mask is given, later frames are segmented)")
    for t, labels in given.items():
        if labels.shape != size:
            raise VOSError(f"mask {video.given[t]} is {labels.shape[1]}x{labels.shape[0]} but its frame "
                           f"{video.frames[t]} is {size[1]}x{size[0]}")


def main() -> None:
    """Parse the config, segment every video, write masks, evaluate."""
    cfg = parse_cfg("Segment the videos of valset with a trained STM-Cycle model.")
    setup_logging()
    out_root = os.path.join(cfg.output_dir, cfg.valset)
    check_writable(out_root)
    dataset = build_eval_dataset(cfg)
    device = resolve_device(cfg.gpu_id)
    if not cfg.initial:
        log.warning("`initial` is empty: testing an UNTRAINED network (pass initial model.pth)")
    model = build_model(cfg).to(device).eval()
    engine = build_engine(cfg, model)
    log.info("%s %s: %d videos, arch %s, loop %d, on %s", cfg.valset, cfg.valsplit, len(dataset.videos),
             cfg.arch, cfg.loop, device)
    frames_done, seconds = 0, 0.0
    for i, video in enumerate(dataset.videos):
        stats = run_video(cfg, engine, video, dataset, out_root, device, f"[{i + 1}/{len(dataset.videos)}] {video.name}")
        frames_done, seconds = frames_done + stats.frames, seconds + stats.seconds
        log.info("video %s: %d frames, %.1f FPS", video.name, stats.frames, stats.fps)
    log.info("all videos: %d frames in %.1f s, %.2f FPS; results in %s", frames_done, seconds,
             frames_done / max(seconds, 1e-9), out_root)
    finish(cfg, dataset, out_root)


def run_video(cfg, engine, video: Video, dataset, out_root: str, device: torch.device, title: str):
    """Segment one video and write its results under out_root/<video>/."""
    given, palette = load_given(video, getattr(dataset, "merge_objects", False))
    size = read_frame(video.frames[0]).shape[:2]
    check_video(video, given, size)
    letterbox = Letterbox(cfg.input_size, size)
    writer = ResultWriter(safe_join(out_root, video.name), cfg.save_indexed_format, palette)
    return segment_and_write(engine, read_frames(video, size), video.frame_names, given, letterbox,
                             device, [writer], title)


def finish(cfg, dataset, out_root: str) -> None:
    """Evaluate J&F where every frame has ground truth; pack a submission for YouTube-VOS."""
    after_test(dataset, out_root, cfg.save_indexed_format)


if __name__ == "__main__":
    run_main(main)
