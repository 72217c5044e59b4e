"""One video and its masks: masks given at any frame, propagated forward or backward through the one
inference core (a core of its own, or a scheduler shared with other sessions), read or exported."""
import os
import threading
from typing import Dict, Iterator, List, MutableMapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import VOSError
from .backend import Backend
from .core import InferenceCore
from .frames import Letterbox, ObjectTable, network_inputs
from .scheduler import Event, Job, SharedScheduler, run_jobs, video_failure
from .settings import InferenceSettings
from ..io import davis_palette, full_palette, overlay as draw_overlay, write_image, write_indexed_png, write_video
from ..utils.constants import VOID_LABEL


class VideoSession:
    """Frames (a sequence: len() and [t] -> [H, W, 3] uint8 RGB) and their masks. Results are [H, W] uint8
    labels at the frames' size with the object ids as given; a frame given a mask keeps exactly that mask.
    Thread-safe: masks can be read while a propagation runs, and a new propagation or mask ends the one
    under way before its next frame. `scheduler`: propagations run in that shared scheduler's thread
    (batched with other sessions: `submit`); otherwise `propagate` runs them on a core of the session's own.
    `results`: where results are kept (a mapping; the app's keeps them on disk), else in memory."""

    def __init__(self, frames: Sequence[np.ndarray], names: List[str], fps: float, backend: Backend,
                 settings: InferenceSettings, input_size: Tuple[int, int], title: str = "video",
                 palette: Optional[Sequence[int]] = None, scheduler: Optional[SharedScheduler] = None,
                 results: Optional[MutableMapping[int, np.ndarray]] = None):
        self.frames, self.names, self.fps, self.title = frames, names, fps, title
        self.backend, self.settings, self.scheduler = backend, settings, scheduler
        self.size: Tuple[int, int] = tuple(frames[0].shape[:2])       # (H, W)
        self.letterbox = Letterbox(input_size, self.size)
        self.palette = full_palette(palette) if palette else davis_palette()
        self._given: Dict[int, np.ndarray] = {}
        self._results = {} if results is None else results      # frame -> labels
        self._pending: Optional[int] = None       # earliest frame given a mask since the last propagation
        self._lock = threading.Lock()              # guards masks and the propagation's state
        self._core_lock = threading.Lock()         # one frame at a time through the session's own core
        self._core: Optional[InferenceCore] = None
        self._running = False
        self._generation = 0                       # the latest propagation; older ones end at their next frame
        self._job: Optional[Job] = None
        self.error = ""                            # why the last propagation failed ('' when it did not)
        self.progress: Tuple[int, int] = (0, 0)    # frames done, frames to do (of the current propagation)

    @classmethod
    def open(cls, video, checkpoint: str, cfg_file: Optional[str] = None, **overrides) -> "VideoSession":
        """A session on `video` (file, folder or list of frames) with the weights of `checkpoint` (a train.py
        checkpoint or released weights; '' = untrained); `overrides` are config keys (loop=0, gpu_id=-1)."""
        from ..api import open_session             # the config's edge
        return open_session(video, checkpoint, cfg_file, overrides)

    def __len__(self) -> int:
        return len(self.frames)

    def index(self, frame: int) -> int:
        """`frame` checked against the video's length (negative counts from the end)."""
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
            raise VOSError(f"frame must be an integer index, got {frame!r}")
        t = int(frame) + (len(self) if frame < 0 else 0)
        if not 0 <= t < len(self):
            raise VOSError(f"frame {frame} does not exist: the video has frames 0..{len(self) - 1}")
        return t

    def add_mask(self, frame: int, labels: np.ndarray) -> None:
        """Give the complete mask of `frame` ([H, W] labels: new objects, or a correction of a result), at any
        time: a propagation under way ends before its next frame. The next `propagate()` starts from the
        earliest frame given a mask since the last one."""
        t = self.index(frame)
        labels = check_labels(labels, t, self.size)
        with self._lock:
            self._supersede()
            self._given[t] = labels
            self._results[t] = labels.copy()
            self._pending = t if self._pending is None else min(self._pending, t)

    def restore(self, given: Dict[int, np.ndarray], results: Optional[Dict[int, np.ndarray]] = None) -> None:
        """Replace the given masks by `given` (as add_mask gives them) and, unless None, every result by
        `results` (saved masks after a restart, masks with an object deleted); not while a propagation runs."""
        given = {self.index(t): check_labels(m, t, self.size) for t, m in given.items()}
        if results is not None:
            results = {self.index(t): np.asarray(m, np.uint8) for t, m in results.items()}
        if results and any(m.shape != tuple(self.size) for m in results.values()):
            raise VOSError(f"every restored mask must be {self.size[1]}x{self.size[0]}")
        with self._lock:
            if self._running:
                raise VOSError("a propagation is running; stop it before replacing the masks")
            self._given, self._pending = given, None
            if results is not None:
                self._results.clear()
                self._results.update(results)
            self._results.update({t: m.copy() for t, m in given.items()})

    def _supersede(self) -> None:
        """End the propagation under way (under the lock)."""
        self._generation += 1
        self._running = False
        if self._job is not None and self.scheduler is not None:
            self.scheduler.drop(self._job.key)
        self._job = None

    def _begin(self, start: Optional[int], end: Optional[int], reverse: bool) -> Tuple[Job, List[int]]:
        """A new propagation's job over the frames of `_plan`, superseding the one under way."""
        order = self._plan(start, end, reverse)
        with self._lock:
            self._supersede()
            self._running, self._pending, self.error = True, None, ""
            given = {i: self._given[t] for i, t in enumerate(order) if i > 0 and t in self._given}
            given[0] = self._results[order[0]]
            self.progress = (0, len(order))
            generation, objects = self._generation, ObjectTable()     # the objects of this propagation's masks
            self._job = Job((id(self), generation), self._inputs(order, given, objects))
            self._job.on_event = lambda event: self._take(event, order, given, generation, objects)
        return self._job, order

    def _inputs(self, order: List[int], given: Dict[int, np.ndarray], objects: ObjectTable):
        """The job's frames on the device, with the masks given for them (object ids mapped to channels)."""
        frames = (self.frames[t] for t in order)
        return network_inputs(self.letterbox, objects, frames, given, self.backend.device)

    def propagate(self, start: Optional[int] = None, end: Optional[int] = None, reverse: bool = False
                  ) -> Iterator[Tuple[int, np.ndarray]]:
        """Propagate the mask of frame `start` to `end` (inclusive; default the last frame, or 0 when
        `reverse`), yielding (frame index, labels [H, W] uint8) as each frame is segmented, `start` first.
        Earlier results stay; `stop()`, leaving the loop, `add_mask` or another propagation ends it with
        the finished frames kept."""
        job, _ = self._begin(start, end, reverse)
        return self._run(job)

    def submit(self, start: Optional[int] = None, end: Optional[int] = None, reverse: bool = False) -> None:
        """`propagate` in the shared scheduler's thread (batched with other sessions); returns at once."""
        if self.scheduler is None:
            raise VOSError("this session has no shared scheduler: iterate propagate() instead")
        job, _ = self._begin(start, end, reverse)
        self.scheduler.submit(job)

    def _run(self, job: Job) -> Iterator[Tuple[int, np.ndarray]]:
        """The job through the session's own core, one frame per `next`; ends when superseded."""
        with self._core_lock:
            if self._core is None:
                self._core = InferenceCore(self.backend, self.settings)
            for key in list(self._core.keys):        # an abandoned propagation's video
                self._core.stop(key)
            events = run_jobs(self._core, [job], self.settings.align)
        try:
            while True:
                with self._core_lock:
                    if self._job is not job:
                        return
                    event = next(events, None)
                if event is None:
                    return
                item = job.on_event(event)
                if item is not None:
                    yield item
        finally:
            events.close()
            with self._core_lock:
                if job.key in self._core.keys:
                    self._core.stop(job.key)
                if self._job is job:
                    self._running = False

    def _take(self, event: Event, order: List[int], given: Dict[int, np.ndarray], generation: int,
              objects: ObjectTable) -> Optional[Tuple[int, np.ndarray]]:
        """Store a frame's result unless superseded; returns (t, labels). The end of the job: not running."""
        if event.kind == "frame":
            i = event.t
            labels = given[i] if i in given else objects.to_ids(
                self.letterbox.labels(event.probs.float().cpu().numpy()))
            with self._lock:
                if self._generation != generation:
                    return None
                self._results[order[i]] = labels
                self.progress = (i + 1, len(order))
            return order[i], labels
        with self._lock:
            if self._generation == generation:
                self._running, self._job = False, None
                if event.kind == "failed":
                    self.error = video_failure(event.error)
        if event.kind == "failed" and self.scheduler is None:
            raise event.error
        return None

    def stop(self) -> None:
        """Stop the propagation under way after the frame it is segmenting (from any thread)."""
        with self._lock:
            job = self._job
        if job is None:
            return
        if self.scheduler is not None:
            self.scheduler.drop(job.key)
        else:
            with self._lock:
                self._job, self._running = None, False

    def _plan(self, start: Optional[int], end: Optional[int], reverse: bool) -> List[int]:
        """The frames to run, in the core's order; the first one must have a mask with an object."""
        if start is None:
            start = self._default_start(reverse)
        start = self.index(start)
        end = self.index(end if end is not None else (0 if reverse else len(self) - 1))
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

    @property
    def running(self) -> bool:
        """Whether a propagation is running."""
        return self._running

    def mask(self, frame: int) -> Optional[np.ndarray]:
        """The labels of `frame` [H, W] uint8 (given or propagated), or None when it has none yet."""
        t = self.index(frame)
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


def check_labels(labels, t: int, size: Tuple[int, int]) -> np.ndarray:
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
