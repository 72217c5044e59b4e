"""Scoring of the MOSE, LVOS and SA-V sets once test.py has written their masks: locally where the ground
truth is public (MOSEv2 J&F_new, LVOS J&F, SA-V J&F), else a zip for the set's evaluation server."""
import logging
import os
import zipfile
from typing import Optional, Sequence

from ..dataset.base import SCORE_LVOS, SCORE_MOSE2, SCORE_SAV, SCORE_SERVER, Scoring
from ..errors import VOSError
from ..io.paths import atomic_path

log = logging.getLogger(__name__)


def score_benchmark(dataset, scoring: Scoring, out_root: str, names: Sequence[str]) -> Optional[float]:
    """Score (or pack) the finished videos `names`; the main score when scored locally, else None."""
    results = os.path.join(out_root, dataset.results_subdir)
    name = scoring.results_name or dataset.split
    if scoring.scorer == SCORE_SERVER:
        if len(names) < len(dataset.videos):
            log.warning("not packed for the server: %d video(s) have no masks", len(dataset.videos) - len(names))
            return None
        pack_server_zip(dataset, results, out_root.rstrip("/") + ".zip")
        return None
    if scoring.scorer == SCORE_MOSE2:
        from .mose import score_mose2
        table = score_mose2(scoring.ground_truth, results, name, names)
    elif scoring.scorer == SCORE_LVOS:
        from .lvos import score_lvos
        table = score_lvos(scoring.meta_path, scoring.ground_truth, results, name, names)
    elif scoring.scorer == SCORE_SAV:
        table = _score_sav(scoring, results, out_root, name, names)
    else:
        raise VOSError(f"unknown benchmark scorer {scoring.scorer!r}")
    table.write_csvs(out_root)
    log.info("%s on %s (%s):\n%s", table.main, dataset.root, dataset.split, table.text())
    return table.score


def _score_sav(scoring: Scoring, label_root: str, out_root: str, name: str, names: Sequence[str]):
    """Export the label maps as the per-object PNGs the SA-V evaluator reads, then score them."""
    from .sav import export_objects, score_sav

    pred_root = os.path.join(out_root, "Annotations_6fps")
    count = sum(export_objects(os.path.join(label_root, v), scoring.ground_truth[v], os.path.join(pred_root, v))
                for v in names)
    log.info("SA-V: %d per-object masks in %s (the layout of sav_evaluator.py --pred_root)", count, pred_root)
    return score_sav(scoring.ground_truth, pred_root, name, names)


def pack_server_zip(dataset, results: str, zip_path: str) -> str:
    """Zip <video>/<frame>.png of every frame of every video at the archive's top level (the layout the
    MOSE and LVOS servers read), atomically; VOSError naming the first missing mask."""
    members = []
    for video in dataset.videos:
        for frame in video.frame_names:
            path = os.path.join(results, video.name, frame + ".png")
            if not os.path.isfile(path):
                raise VOSError(f"cannot pack {zip_path}: {path} is missing")
            members.append((path, f"{video.name}/{frame}.png"))
    with atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for path, arcname in members:
                archive.write(path, arcname)
    log.info("submission ready to upload: %s (%d masks, <video>/<frame>.png)", zip_path, len(members))
    return zip_path
