"""Live input for the demo: segment a camera or stream as frames arrive, show and/or write the results."""
import logging
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import cv2
import numpy as np
import torch

from ..errors import VOSError
from ..inference.core import InferenceCore
from ..inference.frames import Letterbox, ObjectTable
from ..inference.scheduler import Job
from ..io.stream import LiveSource
from .run import job_frames, run_outputs
from .writer import OverlaySink, OverlayVideo, Output, ResultWriter

log = logging.getLogger("demo")
LIVE_MEMORY_FRAMES = 20      # memory bound on live input when max_memory_frames is 0 (the first frame + the 19 latest)
STOP_KEYS = (ord("q"), 27)   # q and Esc in the window stop the run
WINDOW = "STM-Cycle live (q: stop)"


def live_memory_bound(max_memory_frames: int) -> int:
    """The memory bound of a live run: `max_memory_frames`, or LIVE_MEMORY_FRAMES (logged) when 0/unbounded."""
    if max_memory_frames > 0:
        return max_memory_frames
    log.info("live input: max_memory_frames 0 (unbounded) would grow without end; keeping the first and the "
             "latest %d memory frames (set max_memory_frames N to change)", LIVE_MEMORY_FRAMES)
    return LIVE_MEMORY_FRAMES


def fit_first_mask(labels: np.ndarray, size: Tuple[int, int], mask_path: str, source: str) -> np.ndarray:
    """The first mask [H, W] at the captured frames' size: resized with nearest neighbour (logged) if it differs."""
    if labels.shape == tuple(size):
        return labels
    log.info("mask %s is %dx%d but %s delivers %dx%d frames: resizing the mask (nearest neighbour)",
             mask_path, labels.shape[1], labels.shape[0], source, size[1], size[0])
    resized = cv2.resize(labels, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)   # [H, W] uint8
    if not resized.any():
        raise VOSError(f"mask {mask_path} has no object left at the frames' size {size[1]}x{size[0]}; "
                       "give a mask of the camera's frame size")
    return resized


@contextmanager
def stop_on_sigint(source: LiveSource) -> Iterator[None]:
    """While inside: Ctrl-C (SIGINT) stops `source` after the current frame; a second Ctrl-C quits at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        signal.signal(signal.SIGINT, signal.default_int_handler)      # the next Ctrl-C interrupts
        source.stop()
        log.info("Ctrl-C: stopping after the current frame (press again to quit at once)")

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class LiveWindow:
    """A window showing each result (all calls from the writer thread); q or Esc stops the source."""

    def __init__(self, source: LiveSource):
        self.source = source
        self.opened = False

    @staticmethod
    def check() -> None:
        """A VOSError unless a window can be opened here (a display, and OpenCV built with GUI support)."""
        if os.name != "nt" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise VOSError("show True needs a display (DISPLAY is not set): run on a desktop, or set "
                           "show False to only write the results")
        try:
            cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
            cv2.destroyWindow(WINDOW)
        except cv2.error:
            raise VOSError("show True needs OpenCV built with window support (opencv-python-headless has none): "
                           "install opencv-python in its place, or set show False") from None

    def show(self, rgb: np.ndarray) -> None:
        """Show one overlay [H, W, 3] RGB; a stop key asks the source to stop."""
        if not self.opened:
            cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
            self.opened = True
        cv2.imshow(WINDOW, rgb[..., ::-1])
        if cv2.waitKey(1) & 0xFF in STOP_KEYS:
            self.source.stop()

    def close(self) -> None:
        """Close the window if it was opened."""
        if self.opened:
            cv2.destroyWindow(WINDOW)
            cv2.waitKey(1)


@dataclass
class LiveStats:
    """What a live run did: frames segmented, captured and dropped, and how it ended."""

    segmented: int
    captured: int
    dropped: int
    seconds: float
    source_fps: Optional[float]
    stopped: bool                # by Ctrl-C or a key, not by the end of the stream

    @property
    def fps(self) -> float:
        """Frames segmented per second of the run."""
        return self.segmented / max(self.seconds, 1e-9)

    def summary(self) -> str:
        """One line: achieved FPS and dropped frames."""
        source = f"{self.source_fps:.1f} FPS" if self.source_fps else "rate unknown"
        return (f"live: {self.segmented} frames segmented at {self.fps:.1f} FPS; dropped {self.dropped} of "
                f"{self.captured} captured frames (source {source}); "
                f"{'stopped' if self.stopped else 'end of stream'} after {self.seconds:.1f} s")


def run_live(core: InferenceCore, source: LiveSource, labels: np.ndarray, palette: List[int],
             letterbox: Letterbox, device: torch.device, out: Optional[str],
             window: Optional[LiveWindow] = None) -> LiveStats:
    """Segment `source` from the mask `labels` [H, W] of its first frame through `core`, writing into `out`
    (None: write nothing) indexed PNGs, overlay/ JPEGs and overlay.mp4 (playable when this returns), and
    showing each overlay in `window`. Ends at the end of the stream or when `source.stop()` is called."""
    video = OverlayVideo(os.path.join(out, "overlay.mp4"), source_fps=source.fps) if out else None
    sink = OverlaySink(palette, out, video, window)
    title = f"live {source.what}"
    spec = Output(title, source.name, letterbox, ObjectTable(), {0: labels},
                  ResultWriter(out, "index", palette) if out else None, sink)
    start = time.perf_counter()
    try:
        report = run_outputs(core, [(Job(title, job_frames(source.frames(), spec, device)), spec)], title, None)
    finally:
        source.close()
        sink.close()
    if report.failed:
        raise VOSError(f"{source.what}: {report.failed[title]}")
    return LiveStats(report.frames, source.captured, source.dropped, time.perf_counter() - start, source.fps,
                     source.interrupted)
