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
from ..io import overlay, write_image
from ..io.stream import LiveSource
from ..io.video import VideoFileWriter
from .run import job_frames, run_outputs
from .writer import Output, ResultWriter

log = logging.getLogger("demo")
LIVE_MEMORY_FRAMES = 20      # memory bound on live input when max_memory_frames is 0 (the first frame + the 19 latest)
RATE_FRAMES = 10             # overlay.mp4 plays at the rate these first segmented frames came at
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


class LiveVideo:
    """overlay.mp4 of a live run, written as results come. It plays at the rate the frames were segmented
    (measured over the first RATE_FRAMES, at most the source's rate, at least 1 FPS): a minute of camera
    lasts about a minute."""

    def __init__(self, path: str, source_fps: Optional[float]):
        self.video = VideoFileWriter(path)
        self.source_fps = source_fps
        self.waiting: List[np.ndarray] = []     # the first frames, until the rate is known (at most RATE_FRAMES)
        self.times: List[float] = []

    def write(self, rgb: np.ndarray) -> None:
        """Append one overlay frame [H, W, 3] uint8 RGB."""
        if self.video.fps is not None:
            self.video.write(rgb)
            return
        self.waiting.append(rgb)
        self.times.append(time.monotonic())
        if len(self.waiting) >= RATE_FRAMES:
            self._flush()

    def _flush(self) -> None:
        """Fix the frame rate from the frames seen so far and write them."""
        rate = self.source_fps or 25.0
        if len(self.times) >= 3 and self.times[-1] > self.times[1]:      # from frame 1: frame 0 is the given mask
            measured = (len(self.times) - 2) / (self.times[-1] - self.times[1])
            rate = min(self.source_fps, measured) if self.source_fps else measured
        self.video.set_fps(max(1.0, round(rate, 1)))
        for frame in self.waiting:
            self.video.write(frame)
        self.waiting, self.times = [], []

    def close(self) -> None:
        """Finish the file (playable from here on); no file when no frame was written."""
        if self.waiting:
            self._flush()
        if self.video.count:
            self.video.close()


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
    video = LiveVideo(os.path.join(out, "overlay.mp4"), source.fps) if out else None
    if out:
        os.makedirs(os.path.join(out, "overlay"), exist_ok=True)

    def extra(t: int, name: str, rgb: np.ndarray, lab: np.ndarray) -> None:
        image = overlay(rgb, lab, palette)                           # [H, W, 3] uint8
        if out:
            write_image(os.path.join(out, "overlay", name + ".jpg"), image)
            video.write(image)
        if window is not None:
            window.show(image)

    title = f"live {source.what}"
    spec = Output(title, source.name, letterbox, ObjectTable(), {0: labels},
                  ResultWriter(out, "index", palette) if out else None, extra)
    start = time.perf_counter()
    try:
        report = run_outputs(core, [(Job(title, job_frames(source.frames(), spec, device)), spec)], title, None)
    finally:
        source.close()
        if window is not None:
            window.close()
        if video is not None:
            video.close()
    if report.failed:
        raise VOSError(f"{source.what}: {report.failed[title]}")
    return LiveStats(report.frames, source.captured, source.dropped, time.perf_counter() - start, source.fps,
                     source.interrupted)
