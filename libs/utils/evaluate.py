"""After masks are written: J&F where ground truth exists (test.py, validation), a zip for YouTube-VOS."""
import logging
import os
from typing import Optional

import torch

from libs.engine import build_engine

log = logging.getLogger(__name__)


def evaluate_folder(dataset, results: str, workers: int = 1) -> Optional[float]:
    """Score `results` against a DAVIS-layout reader with full ground truth; writes CSVs and a plot."""
    from libs.evaluation.davis import evaluate_davis

    year = int(getattr(dataset, "year", 2017))
    scores = evaluate_davis(dataset.root, results, dataset.split, year,
                            sequences=[v.name for v in dataset.videos], workers=max(1, workers))
    scores.write_csvs(results)
    scores.plot(results)
    log.info("J&F on %s (%s):\n%s", dataset.root, dataset.split, scores.tables_text())
    return float(scores.global_row["J&F-Mean"])


def after_test(dataset, out_root: str, fmt: str, workers: int = 1) -> Optional[float]:
    """Evaluate DAVIS-style sets with full ground truth; pack YouTube-VOS results for the server."""
    if fmt != "index":
        log.info("save_indexed_format %s: overlays are not evaluated", fmt)
        return None
    if getattr(dataset, "meta_path", None):
        from libs.evaluation.youtube import pack_submission

        zip_path = out_root.rstrip("/") + ".zip"
        count = pack_submission(out_root, dataset.meta_path, zip_path,
                                jpeg_root=os.path.join(dataset.split_dir, "JPEGImages"))
        log.info("YouTube-VOS submission ready to upload: %s (%d masks, layout checked)", zip_path, count)
        return None
    if getattr(dataset, "has_full_gt", False):
        return evaluate_folder(dataset, out_root, workers)
    log.info("no ground truth for every frame of %s: not evaluated", dataset.root)
    return None


def validate(cfg, model: torch.nn.Module, device: torch.device, out_dir: str) -> Optional[float]:
    """Segment the valset with the engine (as test.py does) and return J&F-Mean, if it has ground truth."""
    from libs.dataset.build import build_eval_dataset
    from libs.utils.results import run_video

    dataset = build_eval_dataset(cfg)
    engine = build_engine(cfg, model)
    training = model.training
    model.eval()
    try:
        for video in dataset.videos:
            run_video(engine, video, out_dir, cfg.input_size, "index", device, f"val {video.name}",
                      getattr(dataset, "merge_objects", False))
    finally:
        model.train(training)
    score = after_test(dataset, out_dir, "index", cfg.workers)
    if score is not None:
        log.info("validation J&F-Mean %.4f (%s)", score, out_dir)
    return score
