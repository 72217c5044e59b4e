"""The one per-frame loop: videos (jobs) go through one inference core, as many at once as it has slots;
when a video ends or fails, the next one takes its place at its first given mask (continuous batching)."""
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Dict, Hashable, Iterable, Iterator, Optional, Tuple

import torch

from ..errors import VOSError
from .core import InferenceCore

Frame = Tuple[torch.Tensor, Optional[torch.Tensor]]     # x [1, 3, H, W] on the device, given one-hot masks or None
log = logging.getLogger(__name__)
ERRORS = (VOSError, OSError, torch.cuda.OutOfMemoryError)


@dataclass(eq=False)
class Job:
    """One video: `frames` yields each frame with the masks given for it (or None); `on_event`, if set,
    receives its events when the scheduler runs in a thread of its own."""

    key: Hashable
    frames: Iterator[Frame]
    on_event: Optional[Callable[["Event"], None]] = None


@dataclass
class Event:
    """What happened to a job: a frame's result ('frame': probs [K+1, H, W], None before the first given
    mask), its end ('end'), its failure ('failed': `error`) or its end when dropped ('stopped')."""

    kind: str
    job: Job
    t: int = -1
    probs: Optional[torch.Tensor] = None
    error: Optional[BaseException] = None


class JobQueue:
    """Jobs from an iterable (read as slots free up) and as they are put (from any thread): `poll` never
    blocks, `wait` does until a job comes or the queue is closed."""

    def __init__(self, jobs: Iterable[Job] = (), closed: bool = False):
        self._source: Optional[Iterator[Job]] = iter(jobs)
        self._queue: "queue.Queue[Job]" = queue.Queue()
        self.closed = closed
        self._ahead: Optional[Job] = None

    def put(self, job: Job) -> None:
        """Add a job."""
        self._queue.put(job)

    def poll(self) -> Optional[Job]:
        """The next job, or None when there is none now."""
        job, self._ahead = self._ahead, None
        if job is None and self._source is not None:
            job = next(self._source, None)
            if job is None:
                self._source = None
        if job is None:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return None
        return job

    @property
    def exhausted(self) -> bool:
        """Closed and empty: no job will come."""
        return self.closed and self._source is None and self._ahead is None and self._queue.empty()

    def wait(self, timeout: float = 1.0) -> None:
        """Block until a job is there (or `timeout`)."""
        if self._ahead is None and self._source is None and not self.exhausted:
            try:
                self._ahead = self._queue.get(timeout=timeout)
            except queue.Empty:
                pass


class Scheduler:
    """Feeds jobs through the core in lockstep. `align`: a video starts only on steps that are multiples of
    it (save_freq when correcting: the videos then correct on the same steps, in one batched correction).
    An error of one video (unreadable frame, VOSError) fails it alone; running out of GPU memory, at a
    video's start or during a step, fails the videos in the core and frees its memory; the others go on."""

    def __init__(self, core: InferenceCore, align: int = 1):
        self.core, self.align = core, max(1, align)
        self.running: Dict[Hashable, Job] = {}
        self.next_t: Dict[Hashable, int] = {}
        self._dropped: set = set()
        self._lock = threading.Lock()

    def drop(self, key: Hashable) -> None:
        """Take a video out at the next step (from any thread): it ends with a 'stopped' event."""
        with self._lock:
            self._dropped.add(key)

    def run(self, jobs: JobQueue) -> Iterator[Event]:
        """Run every job of `jobs` until it is exhausted; yields their events as the batch goes."""
        tick = 0
        while True:
            frames: Dict[Hashable, torch.Tensor] = {}
            given: Dict[Hashable, torch.Tensor] = {}
            yield from self._pull(frames, given)
            if tick % self.align == 0:
                yield from self._fill(jobs, frames, given)
            tick += 1
            if not self.running:
                if jobs.exhausted:
                    return
                if tick % self.align == 0:
                    jobs.wait()
                continue
            yield from self._step(frames, given)

    def _step(self, frames: Dict[Hashable, torch.Tensor], given: Dict[Hashable, torch.Tensor]) -> Iterator[Event]:
        """One batched step of every running video."""
        try:
            out = self.core.step(frames, given)
        except torch.cuda.OutOfMemoryError as err:
            yield from self._fail_all(err)
            return
        for key, probs in out.items():
            yield Event("frame", self.running[key], self.next_t[key] - 1, probs)

    def _fail_all(self, err: BaseException) -> Iterator[Event]:
        """Every video in the core fails (out of GPU memory); the memory is freed for the next ones."""
        self.core.release_memory()
        failed, self.running = list(self.running.values()), {}
        for job in failed:
            yield Event("failed", job, error=err)

    def _leave(self, key: Hashable) -> None:
        """A video leaves the core."""
        self.running.pop(key, None)
        if key in self.core.keys:
            self.core.stop(key)

    def _pull(self, frames: Dict[Hashable, torch.Tensor], given: Dict[Hashable, torch.Tensor]) -> Iterator[Event]:
        """The next frame of every running video; those that end, fail or were dropped leave the core."""
        with self._lock:
            dropped, self._dropped = self._dropped, set()
        for key, job in list(self.running.items()):
            if key in dropped:
                self._leave(key)
                yield Event("stopped", job)
                continue
            event = self._next_frame(job, frames, given)
            if event is not None:
                self._leave(key)
                yield event

    def _next_frame(self, job: Job, frames: Dict[Hashable, torch.Tensor], given: Dict[Hashable, torch.Tensor]
                    ) -> Optional[Event]:
        """Read a running job's next frame into `frames`/`given`; its end or failure event otherwise."""
        try:
            x, mask = next(job.frames)
        except StopIteration:
            return Event("end", job)
        except ERRORS as err:
            return Event("failed", job, error=err)
        frames[job.key] = x
        if mask is not None:
            given[job.key] = mask
        self.next_t[job.key] += 1
        return None

    def _fill(self, jobs: JobQueue, frames: Dict[Hashable, torch.Tensor], given: Dict[Hashable, torch.Tensor]
              ) -> Iterator[Event]:
        """Free slots take the next jobs, started at their first given mask; the frame after it is segmented in
        this step already."""
        while self.core.free > 0 and not jobs.exhausted:
            job = jobs.poll()
            if job is None:
                return
            started = yield from self._start(job)
            if started:
                event = self._next_frame(job, frames, given)
                if event is not None:
                    self._leave(job.key)
                    yield event

    def _start(self, job: Job) -> Iterator[Event]:
        """Read a job up to its first given mask (frames before it have no result) and start it in the core;
        returns (as the generator's value) whether it runs."""
        t = 0
        self.running[job.key], self.next_t[job.key] = job, 0     # registered first: a failure finds it
        try:
            for x, mask in job.frames:
                if mask is not None:
                    self.core.start(job.key, x, mask)
                    self.next_t[job.key] = t + 1
                    yield Event("frame", job, t, mask[0])
                    return True
                yield Event("frame", job, t, None)
                t += 1
        except torch.cuda.OutOfMemoryError as err:
            yield from self._fail_all(err)
            return False
        except ERRORS as err:
            self._leave(job.key)
            yield Event("failed", job, error=err)
            return False
        self._leave(job.key)
        yield Event("end", job)
        return False


def video_failure(err: BaseException) -> str:
    """The one-line reason of an error that stopped one video (VOSError, OSError, out of GPU memory)."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return "out of GPU memory (try a smaller input_size, or max_memory_frames N)"
    if isinstance(err, VOSError):
        return str(err).splitlines()[0]
    where = f" ({err.filename})" if getattr(err, "filename", None) else ""
    return f"cannot read or write a file{where}: {getattr(err, 'strerror', None) or err}"


class SharedScheduler:
    """A scheduler in a thread of its own that any thread submits jobs to (the browser app's tabs): their
    videos are batched together; each job's events go to its `on_event`."""

    def __init__(self, core: InferenceCore, align: int = 1):
        self.scheduler = Scheduler(core, align)
        self.jobs = JobQueue()
        self._thread: Optional[threading.Thread] = None
        self._start_lock = threading.Lock()

    def submit(self, job: Job) -> None:
        """Run `job` with the others (its events go to job.on_event, in the scheduler's thread)."""
        self.jobs.put(job)
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name="scheduler")
                self._thread.start()

    def drop(self, key: Hashable) -> None:
        """End a submitted video at the next step."""
        self.scheduler.drop(key)

    def _loop(self) -> None:
        """Run jobs for ever; an event handler's error is the job's own (it is dropped), never the loop's."""
        for event in self.scheduler.run(self.jobs):
            try:
                event.job.on_event(event)
            except Exception:                     # that video's failure; the other videos go on
                log.exception("video %s: its results could not be taken; it is stopped", event.job.key)
                self.scheduler.drop(event.job.key)


def run_jobs(core: InferenceCore, jobs: Iterable[Job], align: int = 1) -> Iterator[Event]:
    """The events of the jobs of `jobs` (read as slots free up) run through `core` in the calling thread."""
    yield from Scheduler(core, align).run(JobQueue(jobs, closed=True))

