"""Videos through the one core and the one writer: test.py's and validation's sets, the demo's video and
live input all go through `run_outputs`, which writes each frame's result as it comes, finishes or fails
each video on its own and reports the run; sets are then scored through their contract."""
import functools
import logging
import os
import time
from typing import Callable, Dict, Iterable, Iterator, Optional, Tuple

import numpy as np
import torch

from ..dataset.base import EvaluationSet
from ..dataset.build import build_eval_dataset
from ..evaluation.distributed import mark_done
from ..inference import build_backend, build_core
from ..inference.core import InferenceCore
from ..inference.frames import ObjectTable, network_inputs
from ..inference.scheduler import ERRORS, Event, Frame, Job, JobQueue, Scheduler, video_failure
from ..io.dali_decode import DaliDecoder
from .report import RunReport
from .scoring import score_results
from .videos import prepare_video, read_frames
from .writer import Output, WriteQueue
from ..utils.progress import progress

log = logging.getLogger(__name__)


def job_frames(frames: Iterable[np.ndarray], out: Output, device: torch.device) -> Iterator[Frame]:
    """A video's frames [H, W, 3] uint8 as the core takes them, each kept in `out` until written."""
    return network_inputs(out.letterbox, out.objects, _kept(frames, out.rgb), out.given, device)


def _kept(frames: Iterable[np.ndarray], rgb: Dict[int, np.ndarray]) -> Iterator[np.ndarray]:
    """Pass frames through, remembering each by index until its result is written."""
    for t, frame in enumerate(frames):
        rgb[t] = frame
        yield frame


class OutputRun:
    """Consumes the scheduler's events: writes results, finishes and fails videos, keeps the report."""

    def __init__(self, scheduler: Scheduler, bar, report: RunReport, on_done: Optional[Callable[[str], None]]):
        self.scheduler, self.bar, self.report, self.on_done = scheduler, bar, report, on_done
        self.outputs = {}
        self.writes = WriteQueue()

    def jobs(self, items: Iterable[Tuple[Job, Output]]) -> Iterator[Job]:
        """The jobs of `items`, their outputs remembered."""
        for job, out in items:
            self.outputs[job.key] = out
            yield job

    def handle(self, event: Event) -> None:
        """One event of the scheduler."""
        out = self.outputs.get(event.job.key)
        if out is None:
            return
        try:
            if event.kind == "frame":
                out.seen += 1
                self.bar.update(1)
                if event.probs is None:
                    out.rgb.pop(event.t, None)
                else:
                    self.writes.submit(out, event.t, event.probs)
            elif event.kind == "end":
                self.writes.finish(out)
                self._done(event.job.key, out)
            elif event.kind == "failed":
                self.failed(event.job.key, event.error)
        except ERRORS as err:                  # its results cannot be written: it fails, the others go on
            self.scheduler.drop(event.job.key)
            self.failed(event.job.key, err)

    def _done(self, key, out: Output) -> None:
        """A video's results are all written."""
        self.outputs.pop(key)
        if self.on_done is not None:
            self.on_done(key)
        self.report.done.append(key)
        self.report.frames += out.frames
        log.info("%s: %d frames", out.title, out.frames)

    def failed(self, key, err: BaseException) -> None:
        """Report a video's failure (one line); the progress bar counts its frames as gone."""
        self.report.failed[key] = video_failure(err)
        out = self.outputs.pop(key, None)
        if out is not None and out.total:
            self.bar.update(max(0, out.total - out.seen))
        log.error("video %s FAILED, going on with the others: %s", key, self.report.failed[key])


def run_outputs(core: InferenceCore, items: Iterable[Tuple[Job, Output]], title: str, total: Optional[int],
                on_done: Optional[Callable[[str], None]] = None) -> RunReport:
    """Run every video of `items` through `core` and write its results; a video that fails is reported and
    the others go on. `total`: the frames of all videos (None: a stream); `on_done(key)` once a video's
    results are all written (e.g. its completion marker)."""
    report = RunReport()
    start = time.perf_counter()
    scheduler = Scheduler(core, core.settings.align)
    with progress(total, title, unit="frame") as bar:
        run = OutputRun(scheduler, bar, report, on_done)
        try:
            for event in scheduler.run(JobQueue(run.jobs(items), closed=True)):
                run.handle(event)
        finally:
            run.writes.close()
    report.seconds = time.perf_counter() - start
    return report


def _failing(err: BaseException) -> Iterator[Frame]:
    """The frames of a video that could not be prepared: its error, raised where the scheduler reads them."""
    raise err
    yield  # noqa: unreachable: makes this a generator


def set_items(dataset: EvaluationSet, videos_root: str, input_size, fmt: str, device: torch.device,
              decoder: Optional[DaliDecoder], longest_first: bool, prefix: str = "") -> Iterator[Tuple[Job, Output]]:
    """A job and output per video of the set (longest first when batching: fewer idle slots at the end); a
    video that cannot be prepared (masks, sizes, output folder) fails as its job starts, like any other."""
    videos = list(enumerate(dataset.videos))
    if longest_first:
        videos.sort(key=lambda item: -len(item[1].frames))
    for i, video in videos:
        title = f"{prefix}[{i + 1}/{len(dataset.videos)}] {video.name}"
        try:
            prep = prepare_video(video, videos_root, input_size, fmt, dataset.merge_objects)
        except ERRORS as err:
            yield Job(video.name, _failing(err)), Output(title, str, None, ObjectTable(), {}, total=len(video.frames))
            continue
        out = Output(title, video.frame_names.__getitem__, prep.letterbox, ObjectTable(), prep.given, prep.writer,
                     total=len(video.frames))
        yield Job(video.name, job_frames(read_frames(video, prep.size, decoder), out, device)), out


def run_set(core: InferenceCore, dataset: EvaluationSet, out_root: str, input_size, fmt: str, device: torch.device,
            decoder: Optional[DaliDecoder] = None, prefix: str = "") -> RunReport:
    """Segment every video of the set into out_root/<results_subdir>/<video>/ (core.slots at once); a
    finished video's completion marker is written beside (libs/evaluation/distributed.py)."""
    videos_root = os.path.join(out_root, dataset.results_subdir)
    items = set_items(dataset, videos_root, input_size, fmt, device, decoder, core.slots > 1, prefix)
    total = sum(len(v.frames) for v in dataset.videos)
    title = f"{prefix}{len(dataset.videos)} videos, {core.slots} at once"
    return run_outputs(core, items, title, total, functools.partial(mark_done, videos_root))


def run_and_score(core: InferenceCore, dataset: EvaluationSet, out_root: str, input_size, fmt: str,
                  device: torch.device, workers: int = 1, decoder: Optional[DaliDecoder] = None,
                  prefix: str = "") -> RunReport:
    """`run_set`, then score the finished videos as the set's contract says (J&F, zip or none)."""
    report = run_set(core, dataset, out_root, input_size, fmt, device, decoder, prefix)
    if report.done:
        report.score = score_results(dataset, out_root, fmt, workers, report.done)
    return report


def validate(cfg, model: torch.nn.Module, device: torch.device, out_dir: str) -> Optional[float]:
    """Segment the valset as test.py does and return its J&F-Mean, if it has ground truth; a video that
    fails is logged and left out of the score."""
    dataset = build_eval_dataset(cfg)
    training = model.training
    model.eval()
    try:
        core = build_core(cfg, build_backend(cfg, model), len(dataset.videos))
        report = run_and_score(core, dataset, out_dir, cfg.input_size, "index", device, cfg.workers, prefix="val ")
    finally:
        model.train(training)
    if report.failed:
        log.warning("validation: %s", report.failure_summary(out_dir))
    if report.score is not None:
        log.info("validation J&F-Mean %.4f (%s)", report.score, out_dir)
    return report.score



