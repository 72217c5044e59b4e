"""Segment your own video from the mask of its first frame, or a camera / stream as it comes.

    .venv/bin/python demo/demo.py --cfg demo/demo.yaml [video_path my.mp4 mask_path first.png initial model.pth]
    .venv/bin/python demo/demo.py --cfg demo/demo.yaml video_path 0 mask_path first.png [show True]

Writes indexed PNGs, overlay JPEGs and an mp4 of the overlay into {output_dir}/{video name}/.
"""
import logging
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from libs.errors import VOSError  # noqa: E402
from libs.inference import build_backend, build_core  # noqa: E402
from libs.inference.frames import Letterbox, ObjectTable  # noqa: E402
from libs.inference.scheduler import Job  # noqa: E402
from libs.io import FrameSource, load_first_mask, safe_join  # noqa: E402
from libs.io.dali_decode import build_frame_decoder  # noqa: E402
from libs.io.remote import download_video, is_http_url  # noqa: E402
from libs.io.stream import LiveSource, is_live_path, live_name  # noqa: E402
from libs.models import build_model  # noqa: E402
from libs.runner import (Output, OverlaySink, OverlayVideo, ResultWriter, check_writable,  # noqa: E402
                         clear_earlier_results, job_frames, run_outputs)
from libs.runner.cli import parse_cfg, run_main  # noqa: E402
from libs.runner.live import LiveWindow, fit_first_mask, live_memory_bound, run_live, stop_on_sigint  # noqa: E402
from libs.utils.device import resolve_device  # noqa: E402
from libs.utils.logging import setup_logging  # noqa: E402

log = logging.getLogger("demo")
EXAMPLES = """\
  .venv/bin/python demo/demo.py --cfg demo/demo.yaml initial quickstart/checkpoint/epoch-0006.pth input_size '[48, 84]'
      the bundled sample with the weights `make quickstart` trained
  .venv/bin/python demo/demo.py --cfg demo/demo.yaml video_path my.mp4 mask_path first.png initial model.pth
  .venv/bin/python demo/demo.py --cfg demo/demo.yaml video_path frames/ mask_path frames_mask.png \\
      initial stm_cycle_r50.pth arch resnet50 gpu_id -1
  .venv/bin/python demo/demo.py --cfg demo/demo.yaml video_path 0 mask_path first.png initial model.pth show True
      camera 0 as it comes (or video_path rtsp://... / http://...); Ctrl-C stops"""
KEYS = (("video_path", "a folder of frames, a video file (.mp4, .avi, .mov, ...; also at an http(s):// URL: "
                       "downloaded whole), a camera index (0) or a stream URL (rtsp://, an MJPEG/HLS http://)"),
        ("live show", "live True: a video file read as a stream; show True: a window (live input)"),
        ("mask_path", "the first frame's mask PNG (ids 1, 2, ... on a 0 background)"),
        ("initial", "trained weights (train.py checkpoints also set arch/keydim/valdim)"),
        ("arch keydim valdim", "model shape of a released checkpoint (resnet50 128 512 for R50)"),
        ("output_dir", "results go to <output_dir>/<video name>/"),
        ("loop", "test-time correction iterations (0 = off, faster)"),
        ("gpu_id", "CUDA device, -1 for the CPU"))


def video_name(path: str) -> str:
    """'clips/dog.mp4' -> 'dog'; 'frames/dog/' -> 'dog'."""
    base = os.path.basename(os.path.normpath(path))
    return os.path.splitext(base)[0] if os.path.isfile(path) else base


def warn_untrained() -> None:
    """Say loudly that the network has no trained weights."""
    log.warning("!" * 72)
    log.warning("`initial` is empty: the network is UNTRAINED and its masks are meaningless.")
    log.warning("Pass `initial /path/to/model.pth` (a released STM-Cycle checkpoint or your own).")
    log.warning("!" * 72)


def main() -> None:
    """Segment `video_path` from `mask_path` and write masks, overlays and an overlay video."""
    cfg = parse_cfg("Segment a video (folder of frames or video file) from its first frame's mask.",
                    examples=EXAMPLES, keys=KEYS)
    setup_logging()
    if not cfg.video_path or not cfg.mask_path:
        raise VOSError("set video_path (a folder of frames or a video file) and mask_path (the first "
                       "frame's mask PNG), e.g. in demo/demo.yaml or as `video_path X mask_path Y`")
    if is_http_url(cfg.video_path) and not (cfg.live or cfg.show or not cfg.write_results):
        # a video file at a URL: every frame, as a local file (show and write_results False are live options)
        with tempfile.TemporaryDirectory(prefix="stm-cycle-download-") as folder:
            path = download_video(cfg.video_path, folder, live_name(cfg.video_path))
            if path is not None:
                return file_main(cfg, path, live_name(cfg.video_path))
    if cfg.live or is_live_path(cfg.video_path):
        return live_main(cfg)
    return file_main(cfg, cfg.video_path, video_name(cfg.video_path))


def file_main(cfg, video_path: str, name: str) -> None:
    """Segment every frame of the folder or video file `video_path` into {output_dir}/`name`/."""
    if cfg.show or not cfg.write_results:
        raise VOSError("show and write_results apply to live input (a camera index, a stream URL); for a "
                       "video file add `live True` to read it as a stream")
    source = FrameSource(video_path)
    if len(source) < 2:
        raise VOSError(f"{cfg.video_path} has {len(source)} frame(s); at least 2 are needed")
    labels, palette = first_mask(cfg.mask_path)
    if labels.shape != tuple(source.size):
        raise VOSError(f"mask {cfg.mask_path} is {labels.shape[1]}x{labels.shape[0]} but the frames of "
                       f"{cfg.video_path} are {source.size[1]}x{source.size[0]}")
    device = resolve_device(cfg.gpu_id)
    decoder = build_frame_decoder(cfg.data_backend, device)
    out = safe_join(cfg.output_dir, name)
    check_writable(out, "output_dir")
    if not cfg.initial:
        warn_untrained()
    model = build_model(cfg).to(device).eval()
    inputs = source.paths[:1] if source.paths else [video_path]          # the first frame names a folder's path
    clear_earlier_results(out, inputs + [cfg.mask_path], extra=("overlay", "overlay.mp4"))
    sink = OverlaySink(palette, out, OverlayVideo(os.path.join(out, "overlay.mp4"), fps=source.fps))
    spec = Output(name, source.names.__getitem__, Letterbox(cfg.input_size, source.size), ObjectTable(), {0: labels},
                  ResultWriter(out, "index", palette), sink, total=len(source))
    job = Job(name, job_frames(source.frames(decoder), spec, device))
    complete = False
    try:
        report = run_outputs(build_core(cfg, build_backend(cfg, model)), [(job, spec)], name, len(source))
        complete = not report.failed
    finally:
        sink.close(complete)
    if report.failed:
        raise VOSError(f"{video_path}: {report.failed[name]}")
    log.info("%d frames at %.1f FPS: masks, overlay/ and overlay.mp4 in %s", report.frames, report.fps, out)


def live_main(cfg) -> None:
    """Segment a camera, a stream or (live True) a video file as frames arrive, with a bounded memory."""
    check_live_keys(cfg)
    labels, palette = first_mask(cfg.mask_path)
    source = LiveSource(cfg.video_path, pace=not is_live_path(cfg.video_path))
    try:
        labels = fit_first_mask(labels, source.size, cfg.mask_path, source.what)
        out = safe_join(cfg.output_dir, live_name(cfg.video_path)) if cfg.write_results else None
        if out:
            check_writable(out, "output_dir")
        device = resolve_device(cfg.gpu_id)
        core = live_core(cfg, device)
        if out:                  # as a file's run: an earlier run's results in this folder go first
            clear_earlier_results(out, [p for p in (cfg.video_path, cfg.mask_path) if os.path.isfile(p)],
                                  extra=("overlay", "overlay.mp4"))
        window = LiveWindow(source) if cfg.show else None
        with stop_on_sigint(source):
            stats = run_live(core, source, labels, palette, Letterbox(cfg.input_size, source.size), device,
                             out, window)
    finally:
        source.close()
    log.info(stats.summary())
    if out:
        log.info("masks, overlay/ and overlay.mp4 in %s", out)


def first_mask(path: str):
    """The first frame's labels [H, W] and palette (load_first_mask: never without an object); how the
    file's values became labels is logged."""
    labels, palette, note = load_first_mask(path)
    if note:
        log.info("%s: %s", path, note)
    return labels, palette


def check_live_keys(cfg) -> None:
    """Reject live-input settings that cannot work (one line each); say which keys do not apply."""
    if not cfg.show and not cfg.write_results:
        raise VOSError("show False and write_results False: nothing would be shown or written; set one True")
    if os.path.isdir(cfg.video_path):
        raise VOSError(f"video_path {cfg.video_path} is a folder of frames: live input is a camera index, a "
                       "stream URL or a video file; set live False for a folder")
    if cfg.show:
        LiveWindow.check()
    if cfg.data_backend != "PIL":
        log.info("data_backend %s does not apply to live input: OpenCV reads its frames", cfg.data_backend)


def live_core(cfg, device):
    """The core of a live run: the config's, with its memory bounded (max_memory_frames 0 becomes a bound)."""
    if not cfg.initial:
        warn_untrained()
    backend = build_backend(cfg, build_model(cfg).to(device).eval())
    return build_core(cfg, backend, max_memory_frames=live_memory_bound(cfg.max_memory_frames))


if __name__ == "__main__":
    run_main(main)
