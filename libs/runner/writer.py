"""The one writer of results: each frame's masks (indexed PNG or overlay) and the overlays of the demo and
live input (JPEGs, overlay.mp4, a window), written on one background thread behind a bounded queue."""
import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Optional

import numpy as np
import torch

from ..errors import VOSError
from ..inference.frames import Letterbox, ObjectTable
from ..io import heatmap_overlay, overlay, write_image, write_indexed_png
from ..io.video import VideoFileWriter
from ..utils.constants import VOID_LABEL

log = logging.getLogger(__name__)
FORMATS = ("index", "segmentation", "heatmap", "mask")
MAX_PENDING_WRITES = 16         # frames segmented ahead of the writer thread, per video
RATE_FRAMES = 10                # overlay.mp4 of a stream plays at the rate these first results came at
Extra = Callable[[int, str, np.ndarray, np.ndarray], None]     # (t, name, rgb, labels): an extra output


def check_writable(folder: str, key: str = "output_dir") -> None:
    """Create `folder` or raise a VOSError saying it cannot be written and which config `key` to change."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as err:
        raise VOSError(f"folder {folder!r} is not writable ({err.strerror}); set `{key}` to a "
                       "folder you can write") from None


def clear_earlier_results(folder: str, inputs: Sequence[str], extra: Sequence[str] = ()) -> int:
    """Remove what an earlier run wrote into this video's own result folder: its PNGs, and the `extra`
    files or folders (relative to `folder`: the demo's overlay/*.jpg and overlay.mp4); nothing else, and
    never a folder that holds one of the run's `inputs` (a VOSError then). Returns how many files went."""
    if not os.path.isdir(folder):
        return 0
    here = os.path.realpath(folder)
    for path in inputs:
        if os.path.realpath(os.path.dirname(os.path.abspath(path))) == here:
            raise VOSError(f"the results folder {folder} holds the input {path}: set `output_dir` to another "
                           "folder (results there would be mixed with, or replace, the input files)")
    stale = [e.path for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(".png")]
    for name in extra:
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            stale += [e.path for e in os.scandir(path) if e.is_file() and e.name.lower().endswith(".jpg")]
        elif os.path.isfile(path):
            stale.append(path)
    for path in stale:
        os.remove(path)
    if stale:
        log.info("removed %d result file(s) of an earlier run from %s", len(stale), folder)
    return len(stale)


@dataclass
class GivenLabels:
    """The mask given for a frame, as written: at the first given frame exactly the given labels (void
    255 written as background 0); at a later one (objects appearing later) the given objects where the
    mask has one, the prediction elsewhere."""

    mask: np.ndarray          # [H, W] uint8 labels at the frame's resolution, void already 0
    whole: bool               # True: the first given mask (every pixel given)

    @classmethod
    def of(cls, given: Dict[int, np.ndarray], t: int) -> Optional["GivenLabels"]:
        """The given labels of frame t, or None when no mask was given for it."""
        if t not in given:
            return None
        return cls(np.where(given[t] == VOID_LABEL, 0, given[t]).astype(np.uint8), t == min(given))

    def labels(self, predicted: np.ndarray) -> np.ndarray:
        """[H, W] predicted labels -> [H, W] labels written."""
        return self.mask if self.whole else np.where(self.mask > 0, self.mask, predicted).astype(np.uint8)

    def heat(self, predicted: np.ndarray) -> np.ndarray:
        """[H, W] predicted object probability -> [H, W]: 1 on given objects."""
        given = (self.mask > 0).astype(np.float32)
        return given if self.whole else np.maximum(given, predicted)


class ResultWriter:
    """Writes a frame's result as an indexed PNG or an overlay ('segmentation', 'heatmap', 'mask')."""

    def __init__(self, folder: str, fmt: str, palette: List[int]):
        if fmt not in FORMATS:
            raise VOSError(f"save_indexed_format must be one of {', '.join(FORMATS)}; got {fmt!r}")
        self.folder, self.fmt, self.palette = folder, fmt, palette
        os.makedirs(folder, exist_ok=True)

    def write(self, name: str, probs: np.ndarray, labels: np.ndarray, letterbox: Letterbox, rgb: np.ndarray,
              given: Optional[GivenLabels]) -> None:
        """Write `name`.png: the labels [H, W] uint8 (indexed), or an overlay of them, or of the heat of the
        probabilities [K+1, th, tw] ('heatmap'; 1 on given objects)."""
        path = os.path.join(self.folder, name + ".png")
        if self.fmt == "index":
            write_indexed_png(path, labels, self.palette)
        elif self.fmt == "segmentation":
            write_image(path, overlay(rgb, labels, self.palette))
        elif self.fmt == "mask":
            write_image(path, overlay(rgb, (labels > 0).astype(np.uint8), self.palette))
        else:
            heat = letterbox.heat(probs) if given is None else given.heat(letterbox.heat(probs))
            write_image(path, heatmap_overlay(rgb, heat))


class OverlayVideo:
    """overlay.mp4 written as results come, at `fps`; with fps None (a stream) at the rate they come
    (measured over the first RATE_FRAMES, at most `source_fps`, at least 1 FPS): a minute of camera lasts
    about a minute."""

    def __init__(self, path: str, fps: Optional[float] = None, source_fps: Optional[float] = None):
        self.video = VideoFileWriter(path, fps)
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

    def close(self, complete: bool = True) -> None:
        """Finish the file (playable from here on); no file when no frame was written or not `complete`."""
        if complete and self.waiting:
            self._flush()
        if complete and self.video.count:
            self.video.close()
        elif self.video.count:
            self.video.close(VOSError("the run did not finish"))


class OverlaySink:
    """The overlays of one video's results, an extra output of the writer: overlay/<name>.jpg in `folder`,
    the frames of `video` (overlay.mp4), and `window` (live input's); each optional."""

    def __init__(self, palette: List[int], folder: Optional[str] = None, video: Optional[OverlayVideo] = None,
                 window=None):
        self.palette, self.folder, self.video, self.window = palette, folder, video, window
        if folder:
            os.makedirs(os.path.join(folder, "overlay"), exist_ok=True)

    def __call__(self, t: int, name: str, rgb: np.ndarray, labels: np.ndarray) -> None:
        """Frame t's overlay (`Extra`): labels [H, W] drawn over rgb [H, W, 3]."""
        image = overlay(rgb, labels, self.palette)                  # [H, W, 3] uint8
        if self.folder:
            write_image(os.path.join(self.folder, "overlay", name + ".jpg"), image)
        if self.video is not None:
            self.video.write(image)
        if self.window is not None:
            self.window.show(image)

    def close(self, complete: bool = True) -> None:
        """Close the window and finish the video (dropped when the run is not `complete`)."""
        if self.window is not None:
            self.window.close()
        if self.video is not None:
            self.video.close(complete)


@dataclass(eq=False)
class Output:
    """Where one video's results go: its frames' names, the letterbox and object table that map the
    network's probabilities back to labels at the frame's size, the masks given as input (written as given)
    and the writers; frames wait here until their result is written."""

    title: str
    name: Callable[[int], str]                       # t -> output file name (without extension)
    letterbox: Optional[Letterbox]                   # None: a video that failed before it started
    objects: ObjectTable
    given: Dict[int, np.ndarray]                     # masks given as input, by frame index
    writer: Optional[ResultWriter] = None
    extra: Optional[Extra] = None
    total: Optional[int] = None                      # frames of the video (None: a stream)
    rgb: Dict[int, np.ndarray] = field(default_factory=dict)
    pending: Deque[Future] = field(default_factory=deque)
    frames: int = 0                                  # results written (or queued)
    seen: int = 0                                    # frames the scheduler reported

    def write(self, t: int, probs: torch.Tensor, rgb: np.ndarray) -> None:
        """On the writer thread: the probabilities [K+1, th, tw] to the host (the only wait for the
        device), labels with the given ids, every writer."""
        probs = probs.float().cpu().numpy()
        given = GivenLabels.of(self.given, t)
        labels = self.objects.to_ids(self.letterbox.labels(probs))
        labels = labels if given is None else given.labels(labels)
        name = self.name(t)
        if self.writer is not None:
            self.writer.write(name, probs, labels, self.letterbox, rgb, given)
        if self.extra is not None:
            self.extra(t, name, rgb, labels)


class WriteQueue:
    """One background thread writes every video's results; each video has at most MAX_PENDING_WRITES waiting
    (the device waits, results do not pile up)."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer")

    def submit(self, out: Output, t: int, probs: torch.Tensor) -> None:
        """Queue frame t's result; waits while the video has too many queued (its errors surface here)."""
        out.pending.append(self.pool.submit(out.write, t, probs, out.rgb.pop(t)))
        out.frames += 1
        while len(out.pending) > MAX_PENDING_WRITES:
            out.pending.popleft().result()

    @staticmethod
    def finish(out: Output) -> None:
        """Wait until the video's results are written (its errors surface here)."""
        while out.pending:
            out.pending.popleft().result()

    def close(self) -> None:
        """Wait for the thread's last write and end it."""
        self.pool.shutdown(wait=True)
