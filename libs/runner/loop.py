"""The per-video loop of test.py and validation: segment every video of an evaluation set, go on past
a video that fails, then score what was written."""
import logging
import os
from typing import Optional, Tuple, Union

import torch

from libs.dataset.base import EvaluationSet
from libs.dataset.build import build_eval_dataset
from libs.engine import BatchedEngine, build_set_engine
from libs.engine.inference import InferenceEngine
from libs.errors import VOSError
from libs.io.dali_decode import DaliDecoder
from libs.runner.batched_run import run_videos_batched
from libs.runner.report import RunReport, video_failure
from libs.runner.scoring import score_results
from libs.runner.video import run_video

log = logging.getLogger(__name__)


def run_videos(engine: InferenceEngine, dataset: EvaluationSet, out_root: str, input_size: Tuple[int, int],
               fmt: str, device: torch.device, decoder: Optional[DaliDecoder] = None,
               prefix: str = "") -> RunReport:
    """Segment every video into out_root/<results_subdir>/<video>/; a video that fails is reported
    (one line) and skipped, the others go on."""
    report = RunReport()
    videos_root = os.path.join(out_root, dataset.results_subdir)
    for i, video in enumerate(dataset.videos):
        title = f"{prefix}[{i + 1}/{len(dataset.videos)}] {video.name}"
        try:
            stats = run_video(engine, video, videos_root, input_size, fmt, device, title,
                              dataset.merge_objects, decoder)
        except (VOSError, OSError, torch.cuda.OutOfMemoryError) as err:
            if isinstance(err, torch.cuda.OutOfMemoryError):
                engine.release_memory()              # a bank grown for this video must not sink the next
            report.failed[video.name] = video_failure(err)
            log.error("video %s FAILED, going on with the others: %s", video.name, report.failed[video.name])
            continue
        report.done.append(video.name)
        report.frames, report.seconds = report.frames + stats.frames, report.seconds + stats.seconds
        log.info("video %s: %d frames, %.1f FPS", video.name, stats.frames, stats.fps)
    return report


def run_and_score(engine: Union[InferenceEngine, BatchedEngine], dataset: EvaluationSet, out_root: str, input_size: Tuple[int, int],
                  fmt: str, device: torch.device, workers: int = 1, decoder: Optional[DaliDecoder] = None,
                  prefix: str = "") -> RunReport:
    """`run_videos` (or with a `BatchedEngine`, `run_videos_batched`), then score the finished videos as the
    set's contract says (J&F, zip or none)."""
    run = run_videos_batched if isinstance(engine, BatchedEngine) else run_videos
    report = run(engine, dataset, out_root, input_size, fmt, device, decoder, prefix)
    if report.done:
        report.score = score_results(dataset, out_root, fmt, workers, report.done)
    return report


def validate(cfg, model: torch.nn.Module, device: torch.device, out_dir: str) -> Optional[float]:
    """Segment the valset with the engine (as test.py does) and return J&F-Mean, if it has ground truth;
    a video that fails is logged and left out of the score."""
    dataset = build_eval_dataset(cfg)
    training = model.training
    model.eval()
    try:
        report = run_and_score(build_set_engine(cfg, model, len(dataset.videos)), dataset, out_dir, cfg.input_size, "index", device,
                               cfg.workers, prefix="val ")
    finally:
        model.train(training)
    if report.failed:
        log.warning("validation: %s", report.failure_summary(out_dir))
    if report.score is not None:
        log.info("validation J&F-Mean %.4f (%s)", report.score, out_dir)
    return report.score
