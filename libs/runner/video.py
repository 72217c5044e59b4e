"""Segment one video with the engine and write its masks: shared by test.py, the demo and validation."""
import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Deque, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch

from libs.engine.inference import InferenceEngine, segment_video
from libs.engine.preprocess import Letterbox
from libs.errors import VOSError
from libs.dataset.base import Video
from libs.io import (davis_palette, heatmap_overlay, overlay, read_frame, read_mask, safe_join, write_image,
                     write_indexed_png)
from libs.io.dali_decode import DaliDecoder
from libs.io.masks import void_note
from libs.utils.constants import VOID_LABEL
from libs.utils.progress import progress

log = logging.getLogger(__name__)
FORMATS = ("index", "segmentation", "heatmap", "mask")
MAX_PENDING_WRITES = 16         # frames segmented ahead of the writer thread
Names = Union[Sequence[str], Callable[[int], str]]      # output names: a list, or t -> name for a stream


@dataclass
class VideoStats:
    """How long a video took."""

    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        """Frames per second."""
        return self.frames / max(self.seconds, 1e-9)


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

    def write(self, name: str, probs: np.ndarray, letterbox: Letterbox, rgb: Optional[np.ndarray],
              given: Optional[GivenLabels] = None) -> np.ndarray:
        """probs [K+1, th, tw] -> writes `name`.png; returns the labels [H, W] uint8. A frame whose mask
        was `given` is written with the given labels (see `GivenLabels`), not the network's."""
        labels = letterbox.labels(probs) if given is None else given.labels(letterbox.labels(probs))
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
        return labels


def segment_and_write(engine: InferenceEngine, frames: Iterable[np.ndarray], names: Names,
                      given: Dict[int, np.ndarray], letterbox: Letterbox, device: torch.device,
                      writers: List[ResultWriter], title: str, extra=None) -> VideoStats:
    """Run the engine over `frames` and write every frame's result with each writer (in a background
    thread); `extra(t, rgb, labels)` is called per written frame (e.g. the demo's overlay video).

    `names`: the frames' output names, or for a stream of unknown length (a camera) a function giving
    the t-th frame's name once it has been read. Memory stays bounded whatever the length: a frame is
    kept only until its result is written, at most MAX_PENDING_WRITES results wait for the writer.
    """
    name_of = names.__getitem__ if isinstance(names, Sequence) else names
    total = len(names) if isinstance(names, Sequence) else None
    start, done = time.perf_counter(), 0
    cache: Dict[int, np.ndarray] = {}
    with progress(total, title, unit="frame") as bar, ThreadPoolExecutor(max_workers=1) as pool:
        pending: Deque[Future] = deque()
        for t, probs in segment_video(engine, letterbox, _keep(frames, cache), given, device):
            rgb, name = cache.pop(t), name_of(t)
            if probs is not None:
                pending.append(pool.submit(_write_all, writers, name, probs, letterbox, rgb, extra, t,
                                           GivenLabels.of(given, t)))
                done += 1
            while len(pending) > MAX_PENDING_WRITES:     # bounded: results wait on the device, not pile up
                pending.popleft().result()
            bar.update(1)
        while pending:
            pending.popleft().result()
    return VideoStats(done, time.perf_counter() - start)


def _keep(frames: Iterable[np.ndarray], cache: Dict[int, np.ndarray]) -> Iterable[np.ndarray]:
    """Pass frames through, remembering each until its result is written."""
    for t, rgb in enumerate(frames):
        cache[t] = rgb
        yield rgb


def _write_all(writers, name, probs, letterbox, rgb, extra, t, given: Optional[GivenLabels]) -> None:
    """On the writer thread: copy the probabilities to the host (the only wait for the device), write."""
    probs = probs.float().cpu().numpy()                                  # [K+1, th, tw]
    labels = None
    for writer in writers:
        labels = writer.write(name, probs, letterbox, rgb, given)
    if extra is not None:
        if labels is None:
            labels = letterbox.labels(probs) if given is None else given.labels(letterbox.labels(probs))
        extra(t, rgb, labels)


def merged_foreground(labels: np.ndarray) -> np.ndarray:
    """labels [H, W] -> one object (1) on background 0, void kept: as the DAVIS 2016 rules score it.
    A 0/255 mask (the DAVIS 2016 package's) has its foreground at 255, which is otherwise void."""
    binary = bool(np.isin(labels, (0, VOID_LABEL)).all())
    void = (labels == VOID_LABEL) & (not binary)
    return np.where(void, VOID_LABEL, labels > 0).astype(np.uint8)


def load_given(video: Video, merge_objects: bool) -> Tuple[Dict[int, np.ndarray], List[int]]:
    """The masks given as input, by frame index (all ids merged into 1 for single-object sets)."""
    given, palette = {}, video.palette
    for t, path in sorted(video.given.items()):
        labels, pal = read_mask(path)
        if (note := void_note(labels)) is not None:
            log.info("%s: %s", path, note)
        if merge_objects:
            labels = merged_foreground(labels)
        given[t] = labels
        palette = palette or pal
    first = min(given) if given else None
    if first is None or not np.any((given[first] > 0) & (given[first] < VOID_LABEL)):
        where = video.given.get(first, "no mask file") if first is not None else "no mask file"
        raise VOSError(f"video {video.name!r}: the first given mask ({where}) has no object; "
                       "label objects 1, 2, ... on a 0 background")
    return given, palette or davis_palette()


def read_frames(video: Video, size: Tuple[int, int], decoder: Optional[DaliDecoder] = None) -> Iterator[np.ndarray]:
    """The video's frames in order (PIL, or `decoder`: DALI); a frame of another size is an error naming it."""
    frames = decoder.images(video.frames) if decoder is not None else (read_frame(p) for p in video.frames)
    for path, rgb in zip(video.frames, frames):
        if rgb.shape[:2] != size:
            raise VOSError(f"frame {path} is {rgb.shape[1]}x{rgb.shape[0]} but the video's first frame is "
                           f"{size[1]}x{size[0]}: all frames of a video must have one size")
        yield rgb  # [H, W, 3] uint8 RGB


def check_video(video: Video, given: Dict[int, np.ndarray], size: Tuple[int, int]) -> None:
    """Reject videos the engine cannot segment, naming the file."""
    if len(video.frames) < 2:
        raise VOSError(f"video {video.name!r} has {len(video.frames)} frame(s); at least 2 are needed "
                       "(the first frame's mask is given, later frames are segmented)")
    for t, labels in given.items():
        if labels.shape != size:
            raise VOSError(f"mask {video.given[t]} is {labels.shape[1]}x{labels.shape[0]} but its frame "
                           f"{video.frames[t]} is {size[1]}x{size[0]}")


@dataclass
class PreparedVideo:
    """A data set video ready to segment: its given masks, frame size, letterbox and result writer."""

    given: Dict[int, np.ndarray]
    size: Tuple[int, int]
    letterbox: Letterbox
    writer: ResultWriter


def prepare_video(video: Video, out_dir: str, input_size, fmt: str, merge_objects: bool = False) -> PreparedVideo:
    """Check a video, load its given masks and make its result folder out_dir/<video>/; results an earlier
    run left there are removed once the video's first frame and masks load (VOSError/OSError otherwise)."""
    if video.problem:
        raise VOSError(video.problem)
    given, palette = load_given(video, merge_objects)
    size = read_frame(video.frames[0]).shape[:2]
    check_video(video, given, size)
    folder = safe_join(out_dir, video.name)
    clear_earlier_results(folder, [video.frames[0], *video.given.values()])
    return PreparedVideo(given, size, Letterbox(input_size, size), ResultWriter(folder, fmt, palette))


def run_video(engine: InferenceEngine, video: Video, out_dir: str, input_size, fmt: str, device: torch.device,
              title: str, merge_objects: bool = False, decoder: Optional[DaliDecoder] = None) -> VideoStats:
    """Segment one data set video and write its results into out_dir/<video>/ (`decoder`: DALI, None: PIL);
    results an earlier run left in that folder are removed once the video's first frame and masks load."""
    prep = prepare_video(video, out_dir, input_size, fmt, merge_objects)
    return segment_and_write(engine, read_frames(video, prep.size, decoder), video.frame_names, prep.given,
                             prep.letterbox, device, [prep.writer], title)
