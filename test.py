"""Segment every video of `valset` and write indexed PNGs; evaluates J&F when ground truth exists.

    python3 test.py --cfg config.yaml initial model.pth [KEY VAL ...]
"""
import logging
import os

from libs.dataset.build import build_eval_dataset
from libs.engine import build_engine
from libs.io.dali_decode import build_frame_decoder
from libs.models import build_model
from libs.utils.cli import parse_cfg, run_main
from libs.utils.device import resolve_device
from libs.utils.evaluate import after_test
from libs.utils.logging import setup_logging
from libs.utils.results import check_writable, run_video

log = logging.getLogger("test")


def main() -> None:
    """Parse the config, segment every video, write masks, evaluate."""
    cfg = parse_cfg("Segment the videos of valset with a trained STM-Cycle model.")
    setup_logging()
    dataset = build_eval_dataset(cfg)
    device = resolve_device(cfg.gpu_id)
    decoder = build_frame_decoder(cfg.data_backend, device)
    out_root = os.path.join(cfg.output_dir, cfg.valset)
    check_writable(out_root)
    if not cfg.initial:
        log.warning("`initial` is empty: testing an UNTRAINED network (pass initial model.pth)")
    model = build_model(cfg).to(device).eval()
    engine = build_engine(cfg, model)
    log.info("%s %s: %d videos, arch %s, loop %d, on %s", cfg.valset, cfg.valsplit, len(dataset.videos),
             cfg.arch, cfg.loop, device)
    frames_done, seconds = 0, 0.0
    merge = getattr(dataset, "merge_objects", False)
    # YouTube-VOS results are laid out as the server's zip: Annotations/<video>/<frame>.png
    videos_root = os.path.join(out_root, "Annotations") if getattr(dataset, "meta_path", None) else out_root
    for i, video in enumerate(dataset.videos):
        stats = run_video(engine, video, videos_root, cfg.input_size, cfg.save_indexed_format, device,
                          f"[{i + 1}/{len(dataset.videos)}] {video.name}", merge, decoder)
        frames_done, seconds = frames_done + stats.frames, seconds + stats.seconds
        log.info("video %s: %d frames, %.1f FPS", video.name, stats.frames, stats.fps)
    log.info("all videos: %d frames in %.1f s, %.2f FPS; results in %s", frames_done, seconds,
             frames_done / max(seconds, 1e-9), out_root)
    after_test(dataset, out_root, cfg.save_indexed_format, cfg.workers)


if __name__ == "__main__":
    run_main(main)
