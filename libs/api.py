"""Segment a video from Python (scripts, notebooks, the browser app): open it, give masks at any frame,
propagate them with the one inference engine, read or export the results.

    session = VideoSession.open("clip.mp4", "model.pth", loop=0, gpu_id=-1)
    session.add_mask(0, labels)                 # [H, W] uint8: 0 background, objects 1, 2, ...
    for t, labels in session.propagate():       # frame by frame, as the engine goes
        ...
    session.export("out/clip")                  # indexed PNGs, overlay/*.jpg, overlay.mp4
"""
import logging
import os
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from yacs.config import CfgNode

from libs.config import get_cfg, merge_file, merge_values, validate
from libs.engine import InferenceEngine, Letterbox, build_engine, segment_video
from libs.errors import VOSError
from libs.io import FrameSource, davis_palette, full_palette, read_frame, write_image, write_indexed_png
from libs.io import overlay as draw_overlay, write_video
from libs.models import build_model
from libs.runner.cli import adopt_initial
from libs.utils.constants import VOID_LABEL
from libs.utils.device import resolve_device
from libs.utils.progress import progress

log = logging.getLogger(__name__)
FrameInput = Union[str, Sequence[Union[np.ndarray, str]]]
DEFAULT_FPS = 25.0


def session_config(checkpoint: str, cfg_file: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None
                   ) -> CfgNode:
    """Defaults (then `cfg_file`), `overrides` checked like command-line keys, `initial` = `checkpoint`, and
    the model keys (arch, keydim, valdim) a train.py checkpoint stores, with its training input_size unless
    `cfg_file` or `overrides` set one, as the scripts take them; frozen."""
    overrides = dict(overrides or {})
    if "initial" in overrides:
        raise VOSError("pass the checkpoint as VideoSession.open's second argument, not as initial=...")
    cfg = get_cfg()
    given = merge_file(cfg, cfg_file) if cfg_file else set()
    given |= merge_values(cfg, dict(overrides, initial=checkpoint or ""), "in VideoSession.open")
    adopt_initial(cfg, given)
    validate(cfg)
    cfg.freeze()
    return cfg


def load_frames(video: FrameInput) -> Tuple[List[np.ndarray], List[str], float]:
    """(frames [H, W, 3] uint8 RGB, frame names, fps) of a video file, a folder of frames, or a list of
    frames (arrays or image paths); at least 2 frames of one size."""
    if isinstance(video, (str, os.PathLike)):
        source = FrameSource(os.fspath(video))
        if len(source) < 2:
            raise VOSError(f"{video} has {len(source)} frame(s); at least 2 are needed")
        return list(source.frames()), list(source.names), source.fps
    if not isinstance(video, (list, tuple)):
        raise VOSError(f"video must be a video file, a folder of frames or a list of frames; got a "
                       f"{type(video).__name__}")
    frames = [_as_rgb(item, i) for i, item in enumerate(video)]
    if len(frames) < 2:
        raise VOSError(f"the list of frames has {len(frames)} frame(s); at least 2 are needed")
    for i, frame in enumerate(frames):
        if frame.shape != frames[0].shape:
            raise VOSError(f"frame {i} is {frame.shape[1]}x{frame.shape[0]} but frame 0 is "
                           f"{frames[0].shape[1]}x{frames[0].shape[0]}; all frames must have one size")
    return frames, [f"{i:05d}" for i in range(len(frames))], DEFAULT_FPS


def _as_rgb(item: Union[np.ndarray, str], index: int) -> np.ndarray:
    """One list entry as [H, W, 3] uint8 RGB: an image path is read, an array must already be that."""
    if isinstance(item, (str, os.PathLike)):
        return read_frame(os.fspath(item))
    frame = np.asarray(item)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise VOSError(f"frame {index} of the list must be an [H, W, 3] uint8 RGB array or an image path; "
                       f"got shape {frame.shape} {frame.dtype}")
    return frame


def check_labels(labels: Any, t: int, size: Tuple[int, int]) -> np.ndarray:
    """`labels` as [H, W] uint8 (0 background, 1..254 objects, 255 void) or a VOSError naming frame `t`."""
    arr = np.asarray(labels)
    if arr.shape != tuple(size):
        raise VOSError(f"the mask for frame {t} is {arr.shape[1] if arr.ndim > 1 else '?'}x{arr.shape[0]} "
                       f"but the video's frames are {size[1]}x{size[0]}; give an [H, W] label array")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise VOSError(f"the mask for frame {t} must hold integer labels (0 background, objects 1, 2, ...); "
                       f"got {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > VOID_LABEL):
        raise VOSError(f"the mask for frame {t} has labels outside 0..255")
    arr = arr.astype(np.uint8)
    if not np.any((arr > 0) & (arr < VOID_LABEL)):
        raise VOSError(f"the mask for frame {t} has no object; paint at least one object (labels 1, 2, ...)")
    return arr


class VideoSession:
    """One video and its masks: masks given at any frame, results propagated from them by the engine.

    Frames are decoded once and kept in memory (H x W x 3 bytes each). Results are [H, W] uint8 labels at
    the frames' size; a frame given a mask keeps exactly that mask. Thread-safe: masks can be read while a
    propagation runs (the browser app does), and a new propagation or mask supersedes the one under way.
    """

    def __init__(self, frames: List[np.ndarray], names: List[str], fps: float, engine: InferenceEngine,
                 input_size: Tuple[int, int], device: torch.device, title: str = "video",
                 palette: Optional[Sequence[int]] = None):
        self.frames, self.names, self.fps, self.title = frames, names, fps, title
        self.engine, self.device = engine, device
        self.size: Tuple[int, int] = tuple(frames[0].shape[:2])       # (H, W)
        self.letterbox = Letterbox(input_size, self.size)
        self.palette = full_palette(palette) if palette else davis_palette()
        self._given: Dict[int, np.ndarray] = {}
        self._results: Dict[int, np.ndarray] = {}
        self._pending: Optional[int] = None       # earliest frame given a mask since the last propagation
        self._lock = threading.Lock()              # guards masks and the propagation's state
        self._engine_lock = threading.Lock()       # one frame at a time through the engine
        self._stop = threading.Event()
        self._running = False
        self._generation = 0                       # the latest propagation; older ones end at their next frame
        self.progress: Tuple[int, int] = (0, 0)    # frames done, frames to do (of the current propagation)

    @classmethod
    def open(cls, video: FrameInput, checkpoint: str, cfg_file: Optional[str] = None, **overrides: Any
             ) -> "VideoSession":
        """A session on `video` (file, folder or list of frames) with the weights of `checkpoint` (a train.py
        checkpoint or released weights; '' = untrained); `overrides` are config keys (loop=0, gpu_id=-1)."""
        cfg = session_config(checkpoint, cfg_file, overrides)
        frames, names, fps = load_frames(video)
        if not checkpoint:
            log.warning("no checkpoint: the network is UNTRAINED and its masks are meaningless")
        device = resolve_device(cfg.gpu_id)
        model = build_model(cfg).to(device).eval()
        title = os.path.basename(os.path.normpath(video)) if isinstance(video, str) else "frames"
        return cls(frames, names, fps, build_engine(cfg, model), tuple(cfg.input_size), device, title)

    def __len__(self) -> int:
        return len(self.frames)

    def _index(self, frame: int) -> int:
        """`frame` checked against the video's length (negative counts from the end)."""
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
            raise VOSError(f"frame must be an integer index, got {frame!r}")
        t = int(frame) + (len(self) if frame < 0 else 0)
        if not 0 <= t < len(self):
            raise VOSError(f"frame {frame} does not exist: the video has frames 0..{len(self) - 1}")
        return t

    def add_mask(self, frame: int, labels: Any) -> None:
        """Give the complete mask of `frame` ([H, W] labels: new objects, or a correction of a result), at any
        time: a propagation still under way ends before its next frame. The next `propagate()` starts from
        the earliest frame given a mask since the last one."""
        t = self._index(frame)
        labels = check_labels(labels, t, self.size)
        with self._lock:
            self._generation += 1
            self._running = False
            self._given[t] = labels
            self._results[t] = labels.copy()
            self._pending = t if self._pending is None else min(self._pending, t)

    def propagate(self, start: Optional[int] = None, end: Optional[int] = None, reverse: bool = False
                  ) -> Iterator[Tuple[int, np.ndarray]]:
        """Propagate the mask of frame `start` to `end` (inclusive; default the last frame, or 0 when
        `reverse`), yielding (frame index, labels [H, W] uint8) as the engine segments each frame, `start`
        first. Earlier results stay; `stop()`, leaving the loop, `add_mask` or another `propagate()` ends it
        with the finished frames kept."""
        order = self._plan(start, end, reverse)
        with self._lock:
            self._generation += 1
            self._running, self._pending = True, None
            self._stop.clear()
            given = {i: self._given[t] for i, t in enumerate(order) if i > 0 and t in self._given}
            given[0] = self._results[order[0]]
            self.progress = (0, len(order))
        return self._run(order, given, self._generation)

    def _plan(self, start: Optional[int], end: Optional[int], reverse: bool) -> List[int]:
        """The frames to run, in the engine's order; the first one must have a mask with an object."""
        if start is None:
            start = self._default_start(reverse)
        start = self._index(start)
        end = self._index(end if end is not None else (0 if reverse else len(self) - 1))
        if (end < start) != reverse and end != start:
            way = "before" if reverse else "after"
            raise VOSError(f"end frame {end} must come {way} start frame {start} (reverse={reverse})")
        mask = self._results.get(start)
        if mask is None or not np.any((mask > 0) & (mask < VOID_LABEL)):
            raise VOSError(f"frame {start} has no mask with an object to propagate; add_mask({start}, labels) "
                           "first (or start from a frame that has one)")
        step = -1 if reverse else 1
        return list(range(start, end + step, step))

    def _default_start(self, reverse: bool) -> int:
        """The earliest frame given a mask since the last propagation, else the first (last) given frame."""
        if self._pending is not None:
            return self._pending
        if not self._given:
            raise VOSError("no frame has a mask yet: add_mask(frame, labels) before propagating")
        return max(self._given) if reverse else min(self._given)

    def _run(self, order: List[int], given: Dict[int, np.ndarray], generation: int
             ) -> Iterator[Tuple[int, np.ndarray]]:
        """The engine over `order`; each result is stored before it is yielded, unless a later call
        (add_mask, propagate) superseded this propagation: then it ends without storing."""
        steps = segment_video(self.engine, self.letterbox, (self.frames[t] for t in order), given, self.device)
        try:
            with progress(len(order), self.title, unit="frame") as bar:
                for i, t in enumerate(order):
                    with self._engine_lock:
                        if self._generation != generation:
                            return
                        probs = next(steps)[1]                         # [K+1, th, tw] on the device
                    labels = given[i] if i in given else self.letterbox.labels(probs.float().cpu().numpy())
                    with self._lock:
                        if self._generation != generation:
                            return
                        self._results[t] = labels
                        self.progress = (i + 1, len(order))
                    bar.update(1)
                    yield t, labels
                    if self._stop.is_set():
                        break
        finally:
            steps.close()
            with self._lock:
                if self._generation == generation:
                    self._running = False

    def stop(self) -> None:
        """Ask the propagation under way to stop after the frame it is segmenting (from another thread)."""
        self._stop.set()

    @property
    def running(self) -> bool:
        """Whether a propagation is running."""
        return self._running

    def mask(self, frame: int) -> Optional[np.ndarray]:
        """The labels of `frame` [H, W] uint8 (given or propagated), or None when it has none yet."""
        t = self._index(frame)
        with self._lock:
            labels = self._results.get(t)
            return None if labels is None else labels.copy()

    def masks(self) -> Dict[int, np.ndarray]:
        """Frame index -> labels [H, W] uint8 of every frame that has a mask, in frame order."""
        with self._lock:
            return {t: self._results[t].copy() for t in sorted(self._results)}

    def mask_frames(self) -> List[int]:
        """The frames that have a mask (given or propagated), in order."""
        with self._lock:
            return sorted(self._results)

    def given_frames(self) -> List[int]:
        """The frames given a mask by add_mask, in order."""
        with self._lock:
            return sorted(self._given)

    def export(self, folder: str, overlay: bool = True, video: bool = True) -> str:
        """Write `<name>.png` (indexed, with the palette) per frame with a mask, `overlay/<name>.jpg` and
        `overlay.mp4` (every frame, masks drawn over those that have one), each file atomically; returns
        `folder`."""
        results = self.masks()
        if not results:
            raise VOSError("nothing to export: no frame has a mask yet")
        os.makedirs(folder, exist_ok=True)
        for t, labels in results.items():
            write_indexed_png(os.path.join(folder, self.names[t] + ".png"), labels, self.palette)
            if overlay:
                write_image(os.path.join(folder, "overlay", self.names[t] + ".jpg"), self.overlay(t, labels))
        if video:
            frames = (self.overlay(t, results.get(t)) for t in range(len(self)))
            write_video(os.path.join(folder, "overlay.mp4"), frames, self.fps)
        return folder

    def overlay(self, t: int, labels: Optional[np.ndarray]) -> np.ndarray:
        """Frame `t` [H, W, 3] uint8 with `labels` drawn over it (the frame itself when None)."""
        return self.frames[t] if labels is None else draw_overlay(self.frames[t], labels, self.palette)
