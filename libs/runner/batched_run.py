"""test.py and validation with batch_videos > 1: the set's videos through one `BatchedEngine`, each
video's masks written at its own resolution as its frames come, a failing video leaving its slot."""
import logging
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Deque, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from libs.dataset.base import EvaluationSet, Video
from libs.engine.batched import BatchedEngine
from libs.engine.inference import to_device
from libs.engine.preprocess import Letterbox
from libs.errors import VOSError
from libs.io.dali_decode import DaliDecoder
from libs.runner.batched_loop import BatchScheduler, Event, Job
from libs.runner.report import RunReport, video_failure
from libs.runner.video import MAX_PENDING_WRITES, GivenLabels, ResultWriter, _write_all, prepare_video, read_frames
from libs.utils.constants import VOID_LABEL
from libs.utils.progress import progress

log = logging.getLogger(__name__)
ERRORS = (VOSError, OSError, torch.cuda.OutOfMemoryError)


@dataclass
class _Output:
    """One video on its way: where its results go and what is still being written."""

    title: str
    names: List[str]
    letterbox: Letterbox
    writer: ResultWriter
    given: Dict[int, np.ndarray]                                  # masks given as input, by frame index
    rgb: Dict[int, np.ndarray] = field(default_factory=dict)     # frames kept until their result is written
    pending: Deque[Future] = field(default_factory=deque)
    frames: int = 0
    start: float = field(default_factory=time.perf_counter)


def _frames(video: Video, out: _Output, given: Dict[int, np.ndarray], size: Tuple[int, int],
            device: torch.device, decoder: Optional[DaliDecoder]) -> Iterator[Tuple[torch.Tensor, Optional[torch.Tensor]]]:
    """The video's frames [1, 3, th, tw] on the device with the masks given for them (as `segment_video`)."""
    for t, rgb in enumerate(read_frames(video, size, decoder)):
        out.rgb[t] = rgb
        mask = None
        if t in given:
            labels = np.where(given[t] == VOID_LABEL, 0, given[t])
            mask = to_device(out.letterbox.mask(labels, int(labels.max())), device)   # [1, K+1, th, tw]
        yield to_device(out.letterbox.frame(rgb), device), mask


class BatchedRun:
    """Segments the videos of a set through a `BatchedEngine` and writes their results."""

    def __init__(self, engine: BatchedEngine, dataset: EvaluationSet, out_root: str, input_size, fmt: str,
                 device: torch.device, decoder: Optional[DaliDecoder] = None, prefix: str = ""):
        self.engine, self.dataset, self.fmt, self.device, self.decoder = engine, dataset, fmt, device, decoder
        self.input_size, self.prefix = input_size, prefix
        self.videos_root = os.path.join(out_root, dataset.results_subdir)
        self.outputs: Dict[str, _Output] = {}
        self.report = RunReport()

    def _jobs(self) -> Iterator[Job]:
        """A job per video, longest first (fewer slots idle at the end); a video that cannot be prepared
        (masks, sizes, output folder) fails here."""
        videos = self.dataset.videos
        total = len(videos)
        for i in sorted(range(total), key=lambda i: -len(videos[i].frames)):
            video = videos[i]
            try:
                prep = prepare_video(video, self.videos_root, self.input_size, self.fmt, self.dataset.merge_objects)
            except ERRORS as err:
                self._failed(video.name, err)
                continue
            out = _Output(f"{self.prefix}[{i + 1}/{total}] {video.name}", video.frame_names, prep.letterbox,
                          prep.writer, prep.given)
            self.outputs[video.name] = out
            yield Job(video.name, _frames(video, out, prep.given, prep.size, self.device, self.decoder))

    def _failed(self, name: str, err: BaseException) -> None:
        """Report a video's failure (one line) and forget it."""
        self.report.failed[name] = video_failure(err)
        self.outputs.pop(name, None)
        log.error("video %s FAILED, going on with the others: %s", name, self.report.failed[name])

    def run(self) -> RunReport:
        """Every video of the set; the report's FPS counts the segmented frames over the whole run."""
        start = time.perf_counter()
        jobs = self._jobs()
        align = self.engine.save_freq if self.engine.loop > 0 else 1
        total = sum(len(v.frames) for v in self.dataset.videos)
        title = f"{self.prefix}{len(self.dataset.videos)} videos, {self.engine.slots} at once"
        with progress(total, title, unit="frame") as bar, ThreadPoolExecutor(max_workers=1) as pool:
            while True:
                scheduler = BatchScheduler(self.engine, jobs, align)
                try:
                    for event in scheduler.events():
                        self._handle(event, pool, scheduler, bar)
                    break
                except torch.cuda.OutOfMemoryError as err:     # every video in the batch fails, the rest go on
                    self.engine.release_memory()
                    for name in scheduler.in_flight():
                        self._failed(name, err)
        self.report.seconds = time.perf_counter() - start
        return self.report

    def _handle(self, event: Event, pool: ThreadPoolExecutor, scheduler: BatchScheduler, bar) -> None:
        """Write a frame's result (on the writer thread), finish or fail a video."""
        out = self.outputs.get(event.key)
        if out is None:
            return
        if event.kind == "failed":
            self._failed(event.key, event.error)
        elif event.kind == "end":
            self._finish(event.key, out, scheduler)
        else:
            rgb = out.rgb.pop(event.t)
            bar.update(1)
            if event.probs is not None:
                out.pending.append(pool.submit(_write_all, [out.writer], out.names[event.t], event.probs,
                                               out.letterbox, rgb, None, event.t,
                                               GivenLabels.of(out.given, event.t)))
                out.frames += 1
            while len(out.pending) > MAX_PENDING_WRITES:
                self._wait(event.key, out, scheduler)

    def _wait(self, name: str, out: _Output, scheduler: BatchScheduler) -> bool:
        """Wait for the oldest write of a video; False (and the video failed) if it could not be written."""
        try:
            out.pending.popleft().result()
            return True
        except ERRORS as err:
            scheduler.drop(name)
            self._failed(name, err)
            out.pending.clear()
            return False

    def _finish(self, name: str, out: _Output, scheduler: BatchScheduler) -> None:
        """A video's frames are all segmented: wait for its writes, then it is done."""
        while out.pending:
            if not self._wait(name, out, scheduler):
                return
        seconds = time.perf_counter() - out.start
        self.outputs.pop(name, None)
        self.report.done.append(name)
        self.report.frames += out.frames
        log.info("video %s: %d frames in %.1f s (with %d other videos at once)", name, out.frames, seconds,
                 self.engine.slots - 1)


def run_videos_batched(engine: BatchedEngine, dataset: EvaluationSet, out_root: str, input_size: Tuple[int, int],
                       fmt: str, device: torch.device, decoder: Optional[DaliDecoder] = None,
                       prefix: str = "") -> RunReport:
    """`run_videos` with `engine.slots` videos segmented together (continuous batching)."""
    return BatchedRun(engine, dataset, out_root, input_size, fmt, device, decoder, prefix).run()
