"""Continuous batching: the videos of a set go through one `BatchedEngine`, B at a time; when a video
ends (or fails), the next one takes its slot at its first frame."""
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import torch

from libs.engine.batched import BatchedEngine
from libs.errors import VOSError

Frame = Tuple[torch.Tensor, Optional[torch.Tensor]]     # x [1, 3, H, W] on the device, given masks or None


@dataclass
class Job:
    """One video to segment: `frames` yields each frame with the masks given for it (or None)."""

    key: Any
    frames: Iterator[Frame]


@dataclass
class Event:
    """What happened to a video: a frame's result ('frame': probs [K+1, H, W] or None before the first
    given mask), its end ('end') or its failure ('failed': `error`)."""

    kind: str
    key: Any
    t: int = -1
    probs: Optional[torch.Tensor] = None
    error: Optional[BaseException] = None


class BatchScheduler:
    """Feeds the jobs through the engine's slots in lockstep. `align`: a video starts only on steps that
    are multiples of it (save_freq when correcting, so that all videos correct on the same steps and the
    batched correction is not run for a few videos at a time)."""

    def __init__(self, engine: BatchedEngine, jobs: Iterator[Job], align: int = 1):
        self.engine, self.jobs, self.align = engine, jobs, max(1, align)
        self.running: List[Optional[Job]] = [None] * engine.slots
        self.next_t: List[int] = [0] * engine.slots
        self.dropped: Set[Any] = set()
        self.exhausted = False
        self.tick = 0

    def in_flight(self) -> List[Any]:
        """The keys of the videos in the slots now."""
        return [job.key for job in self.running if job is not None]

    def drop(self, key: Any) -> None:
        """Take a video out of its slot at the next step (e.g. its results cannot be written)."""
        self.dropped.add(key)

    def events(self) -> Iterator[Event]:
        """Run every job; yields their events as the batch goes."""
        while True:
            frames: Dict[int, torch.Tensor] = {}
            given: Dict[int, torch.Tensor] = {}
            yield from self._pull(frames, given)
            if self.tick % self.align == 0:
                yield from self._fill(frames, given)
            if not frames and not any(self.running):
                if self.exhausted:
                    return
                self.tick += 1
                continue
            if frames:
                out = self.engine.step(frames, given)
                for b in frames:
                    yield Event("frame", self.running[b].key, self.next_t[b] - 1, out[b])
            self.tick += 1

    def _pull(self, frames: Dict[int, torch.Tensor], given: Dict[int, torch.Tensor],
              only: Optional[int] = None) -> Iterator[Event]:
        """The next frame of every running video (or of slot `only`); those that end, fail or were dropped
        leave their slot."""
        for b, job in enumerate(self.running):
            if job is None or (only is not None and b != only):
                continue
            if job.key in self.dropped:
                self._free(b)
                continue
            try:
                x, mask = next(job.frames)
            except StopIteration:
                self._free(b)
                yield Event("end", job.key)
                continue
            except (VOSError, OSError) as err:
                self._free(b)
                yield Event("failed", job.key, error=err)
                continue
            frames[b] = x
            if mask is not None:
                given[b] = mask
            self.next_t[b] += 1

    def _free(self, b: int) -> None:
        """Slot b has no video."""
        self.engine.stop(b)
        self.running[b] = None

    def _fill(self, frames: Dict[int, torch.Tensor], given: Dict[int, torch.Tensor]) -> Iterator[Event]:
        """Free slots take the next videos, started at their first given mask; the frame after it is
        segmented in this step already."""
        for b in range(self.engine.slots):
            while self.running[b] is None and not self.exhausted:
                job = next(self.jobs, None)
                if job is None:
                    self.exhausted = True
                    break
                yield from self._start(b, job)
                yield from self._pull(frames, given, only=b)

    def _start(self, b: int, job: Job) -> Iterator[Event]:
        """Read a job up to its first given mask (frames before it have no result) and start it in slot b."""
        t = 0
        try:
            for x, mask in job.frames:
                if mask is not None:
                    self.engine.start(b, x, mask)
                    self.running[b], self.next_t[b] = job, t + 1
                    yield Event("frame", job.key, t, mask[0])
                    return
                yield Event("frame", job.key, t, None)
                t += 1
        except (VOSError, OSError) as err:
            yield Event("failed", job.key, error=err)
            return
        yield Event("end", job.key)
