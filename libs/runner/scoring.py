"""After masks are written: score them as the evaluation set's contract says (J&F, YouTube-VOS zip, none)."""
import logging
import os
from typing import Optional, Sequence

from ..dataset.base import BENCHMARK_SCORERS, SCORE_DAVIS, SCORE_YOUTUBE, EvaluationSet, Scoring
from ..utils.device import usable_workers

log = logging.getLogger(__name__)


def score_results(dataset: EvaluationSet, out_root: str, fmt: str, workers: int = 1,
                  videos: Optional[Sequence[str]] = None) -> Optional[float]:
    """Score the masks under `out_root` (only `videos`, default all); the J&F-Mean when J&F applies."""
    if fmt != "index":
        log.info("save_indexed_format %s: overlays are not evaluated", fmt)
        return None
    scoring = dataset.scoring()
    names = [v.name for v in dataset.videos] if videos is None else list(videos)
    if not names:
        log.info("no video was segmented: nothing to score")
        return None
    if scoring.scorer == SCORE_YOUTUBE:
        if len(names) < len(dataset.videos):
            log.warning("not packed for the YouTube-VOS server: %d video(s) have no masks",
                        len(dataset.videos) - len(names))
            return None
        pack_for_server(scoring, out_root)
        return None
    if scoring.scorer in BENCHMARK_SCORERS:     # MOSE, LVOS, SA-V: libs.evaluation.benchmarks
        from ..evaluation.benchmarks import score_benchmark
        return score_benchmark(dataset, scoring, out_root, names)
    if scoring.scorer == SCORE_DAVIS:
        return score_davis(dataset, scoring, os.path.join(out_root, dataset.results_subdir), names, workers)
    log.info("no ground truth for every frame of %s: not evaluated", dataset.root)
    return None


def score_davis(dataset: EvaluationSet, scoring: Scoring, results: str, names: Sequence[str],
                workers: int) -> Optional[float]:
    """J&F of `names` against their ground-truth folders; writes the CSVs and plot into `results`. A video
    with fewer than 3 annotated frames (the first and last are not scored) is left out with a warning."""
    from ..evaluation.davis import evaluate_davis, list_pngs

    listed = {name: list_pngs(scoring.ground_truth[name]) for name in names}   # None: no folder (an error later)
    short = [name for name, frames in listed.items() if frames is not None and len(frames) < 3]
    ground_truth = {name: scoring.ground_truth[name] for name in names if name not in short}
    if short:
        log.warning("not scored (fewer than 3 annotated frames; the first and last are never scored): %s",
                    ", ".join(short))
    if not ground_truth:
        return None
    year = 2016 if scoring.merge_objects else 2017      # 2016: one merged foreground per video
    scores = evaluate_davis(dataset.root, results, scoring.results_name or dataset.split, year,
                            workers=usable_workers(max(1, workers)), ground_truth=ground_truth)
    scores.benchmark = scoring.benchmark or scores.benchmark
    scores.write_csvs(results)
    scores.plot(results)
    log.info("J&F on %s (%s):\n%s", dataset.root, dataset.split, scores.tables_text())
    return float(scores.global_row["J&F-Mean"])


def pack_for_server(scoring: Scoring, out_root: str) -> str:
    """Zip out_root/Annotations as the YouTube-VOS server expects (layout checked); the zip's path."""
    from ..evaluation.youtube import pack_submission

    zip_path = out_root.rstrip("/") + ".zip"
    count = pack_submission(out_root, scoring.meta_path, zip_path, jpeg_root=scoring.frames_root)
    log.info("YouTube-VOS submission ready to upload: %s (%d masks, layout checked)", zip_path, count)
    return zip_path
