"""Live input: a camera, a network stream or a video file read as one, keeping only the newest frame."""
import math
import os
import threading
import time
from typing import Dict, Iterator, Optional, Tuple

import cv2
import numpy as np

from ..errors import VOSError

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
OPEN_TIMEOUT_MS = 10000          # a network stream that does not answer within this is an error
STOP_POLL_S = 0.1                # how often a waiting reader or consumer looks at the stop flag


def is_live_path(path: str) -> bool:
    """Whether `path` names a camera (an index like '0') or a network stream (rtsp://, http://, ...)."""
    return path.strip().isdigit() or path.strip().lower().startswith(STREAM_SCHEMES)


def _quiet_opencv() -> None:
    """Keep OpenCV's and FFmpeg's own warnings off the console: a failed open becomes one VOSError line."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")        # read when FFmpeg is first used
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def open_capture(path: str) -> Tuple["cv2.VideoCapture", str]:
    """(an opened cv2.VideoCapture, what it is: 'camera 0' / 'stream URL' / 'video file X') or a VOSError."""
    _quiet_opencv()
    path = path.strip()
    if path.isdigit():
        cap, what = cv2.VideoCapture(int(path)), f"camera {path}"
        hint = "check that a camera with this index is connected and not used by another program"
    elif path.lower().startswith(STREAM_SCHEMES):
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
        cap, what = cv2.VideoCapture(path, cv2.CAP_ANY, params), f"stream {path}"
        hint = "check the address, that the stream is running and reachable from here, and its credentials"
    elif os.path.isfile(path):
        cap, what = cv2.VideoCapture(path), f"video file {path}"
        hint = "unsupported codec or corrupt file"
    else:
        raise VOSError(f"video_path {path!r} is no camera index (0, 1, ...), stream URL "
                       f"({', '.join(s[:-3] for s in STREAM_SCHEMES[:4])}, ...) or existing video file")
    if not cap.isOpened():
        cap.release()
        raise VOSError(f"cannot open {what}: {hint}")
    return cap, what


class LiveSource:
    """Frames (RGB [H, W, 3] uint8) of a camera, stream or video file, captured by a reader thread.

    The reader keeps only the newest frame: when the consumer is slower than the source, older frames
    are replaced and counted in `dropped`. `pace` (video files) releases frame i at i / fps seconds after
    the start, as a camera would. The first frame is read when opening (its size is `size`); `stop()`
    (e.g. from a SIGINT handler) ends the iteration before the next frame.
    """

    def __init__(self, path: str, pace: bool = False):
        self.path = path
        cap, self.what = open_capture(path)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps: Optional[float] = float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else None
        ok, bgr = cap.read()
        if not ok or bgr is None:
            cap.release()
            hint = ("; a video file served without byte ranges cannot be read as a stream: leave `live` False "
                    "to download it whole" if path.strip().lower().startswith(("http://", "https://")) else "")
            raise VOSError(f"{self.what} opened but delivered no frame; check that it is streaming{hint}")
        self.size: Tuple[int, int] = tuple(bgr.shape[:2])
        self.pace = pace and self.fps is not None
        self.captured, self.dropped, self.segmented = 1, 0, 0
        self._slot: Optional[Tuple[int, np.ndarray]] = (0, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        self._names: Dict[int, str] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ended = False
        self.interrupted = False                 # stop() was called (Ctrl-C, a key), not the end of the stream
        self._cap = cap
        self._thread: Optional[threading.Thread] = None

    def stop(self) -> None:
        """Ask the iteration to end before the next frame (safe from a signal handler: sets flags only)."""
        self.interrupted = True
        self._stop.set()

    def name(self, t: int) -> str:
        """The file name of the t-th frame yielded: its capture number ('00042'), so gaps show dropped frames."""
        return self._names.pop(t)

    def frames(self) -> Iterator[np.ndarray]:
        """The newest captured frame each time one is asked for, until the source ends or `stop()`.

        The first is always the frame read when opening (the one the first mask is for): the reader
        thread starts once it has been taken.
        """
        try:
            while True:
                taken = self._take()
                if taken is None:
                    return
                index, rgb = taken
                self._names[self.segmented] = f"{index:05d}"
                self.segmented += 1
                if self._thread is None:
                    self._thread = threading.Thread(target=self._read, name="live-reader", daemon=True)
                    self._thread.start()
                yield rgb  # [H, W, 3] uint8 RGB
        finally:
            self.close()

    def _take(self) -> Optional[Tuple[int, np.ndarray]]:
        """Wait for a captured frame and take it; None at the end of the stream or after `stop()`."""
        with self._cond:
            while self._slot is None and not self._ended and not self._stop.is_set():
                self._cond.wait(STOP_POLL_S)
            if self._stop.is_set() or self._slot is None:
                return None
            taken, self._slot = self._slot, None
            return taken

    def _read(self) -> None:
        """The reader thread: capture frames into the one-frame slot until the end or `stop()`."""
        start, index = time.monotonic(), 1
        try:
            while not self._stop.is_set():
                if self.pace and self._stop.wait(max(0.0, start + index / self.fps - time.monotonic())):
                    break
                ok, bgr = self._cap.read()
                if not ok or bgr is None:
                    break
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                with self._cond:
                    self.dropped += self._slot is not None       # replaced before the segmenter took it
                    self._slot, self.captured = (index, rgb), self.captured + 1
                    self._cond.notify()
                index += 1
        finally:
            self._cap.release()
            with self._cond:
                self._ended = True
                self._cond.notify()

    def close(self) -> None:
        """Stop the reader and release the source; a frame captured but never taken counts as dropped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * OPEN_TIMEOUT_MS / 1000)
        else:
            self._cap.release()
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
                self._slot = None


def live_name(path: str) -> str:
    """The output folder name of a live source: 'camera0', the last part of a URL ('cam1' for rtsp://h/cam1)."""
    path = path.strip()
    if path.isdigit():
        return f"camera{int(path)}"
    if not path.lower().startswith(STREAM_SCHEMES):
        return os.path.splitext(os.path.basename(path))[0]
    address = path.split("://", 1)[1].split("?", 1)[0].split("#", 1)[0].rstrip("/")
    last = address.rsplit("/", 1)[-1].rsplit("@", 1)[-1]          # no credentials in a folder name
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.splitext(last)[0]).strip("._")
    return name or "stream"
