"""MOSEv2 scores as its official evaluation (MOSE-api `MOSEv2/.../tools/score.py` and `metricsv2.py`)
defines them (facts only, no code of it here). MOSEv1 is scored with the DAVIS toolkit's J&F.

Per object (the ids of the first ground-truth frame), on every frame but the first and the last:
- J = (|G & P| + 1) / (|G | P| + 1), and 1 when G | P is empty;
- F (standard): DAVIS boundary F with radius ceil(0.008 * image diagonal);
- F_new (the adaptive boundary, "J&F-dot"): the radius is ceil(0.1 * sqrt(object area in the ground
  truth)) (with an empty ground truth ceil(0.1 * diagonal)), capped at 0.008 * diagonal; when the cap
  applies, F and F_new both use the radius 0.008 * diagonal itself, not rounded up (a fractional disk
  as skimage draws it: offsets arange(-r, r + 1), kept where dx^2 + dy^2 <= r^2);
- disappearance / reappearance: the frames where the ground truth is empty split the object's frames
  into segments; J and F_new are averaged per segment as the evaluator does.
Global: means over every object; J&F_new = (J + F_new) / 2 is the main score, J&F = (J + F) / 2.
"""
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import VOSError
from .davis import list_pngs
from .metrics import boundary_f
from .png import read_label_png
from .tables import ScoreTable
from ..utils.constants import VOID_LABEL

GLOBAL = ["J&F_new", "J", "F_new", "disappear_J&F_new", "reappear_J&F_new", "F", "J&F"]
PER_OBJECT = ["Sequence", "J&F_new", "J", "F_new", "F"]
AREA_TH = 0.1           # adaptive radius: this fraction of sqrt(object area)
DIAG_TH = 0.008         # standard radius: this fraction of the image diagonal


def skimage_disk(radius: float) -> np.ndarray:
    """The disk skimage.morphology.disk draws for a possibly fractional radius, as uint8."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius ** 2).astype(np.uint8)


def radii(gt: np.ndarray) -> Tuple[float, float]:
    """(standard radius, adaptive radius) for a ground-truth object mask [H, W]."""
    diagonal = DIAG_TH * float(np.linalg.norm(gt.shape))
    area = np.count_nonzero(gt)
    adaptive = math.ceil(AREA_TH * math.sqrt(area)) if area else math.ceil(AREA_TH * float(np.linalg.norm(gt.shape)))
    adaptive = min(diagonal, adaptive)
    if adaptive < diagonal:
        return float(math.ceil(diagonal)), float(adaptive)
    return diagonal, diagonal


def frame_metrics(gt: np.ndarray, pred: np.ndarray) -> Tuple[float, float, float]:
    """(J, F, F_new) of one object in one frame, bool masks [H, W]."""
    union = np.count_nonzero(gt | pred)
    j = min(1.0, (np.count_nonzero(gt & pred) + 1) / (union + 1)) if union else 1.0
    standard, adaptive = radii(gt)
    f = boundary_f(gt, pred, skimage_disk(standard))
    f_new = f if adaptive == standard else boundary_f(gt, pred, skimage_disk(adaptive))
    return j, f, f_new


def segment_means(j: np.ndarray, f: np.ndarray, empty: np.ndarray) -> Tuple[Optional[float], Optional[float]]:
    """(disappearance J&F_new, reappearance J&F_new) of one object, None where it has no such segment."""
    disappear = list(np.flatnonzero(~empty[:-1] & empty[1:]) + 1)
    if empty[0]:
        disappear.insert(0, 0)
    reappear = list(np.flatnonzero(empty[:-1] & ~empty[1:]) + 1)
    gone = [(j[s:(reappear[i] if i < len(reappear) else len(empty))].mean(),
             f[s:(reappear[i] if i < len(reappear) else len(empty))].mean())
            for i, s in enumerate(disappear) if s > 0]
    back = [(j[s:(disappear[i + 1] if i + 1 < len(disappear) else len(empty))].mean(),
             f[s:(disappear[i + 1] if i + 1 < len(disappear) else len(empty))].mean())
            for i, s in enumerate(reappear)]

    def jf(parts: List[Tuple[float, float]]) -> Optional[float]:
        """(mean J + mean F_new) / 2 over segments, None without any."""
        return (np.mean([p[0] for p in parts]) + np.mean([p[1] for p in parts])) / 2 if parts else None

    return jf(gone), jf(back)


def load_frames(gt_dir: str, pred_dir: str, video: str) -> Tuple[List[np.ndarray], List[np.ndarray], List[int]]:
    """Ground-truth and predicted label maps of the scored frames, and the object ids (of frame 0)."""
    frames = list_pngs(gt_dir) or []
    if len(frames) < 3:
        raise VOSError(f"MOSE: video {video!r} has {len(frames)} annotated frames in {gt_dir}; at least 3 needed")
    first = read_label_png(os.path.join(gt_dir, frames[0] + ".png"))
    ids = sorted(int(i) for i in np.unique(first) if 0 < i < VOID_LABEL)
    gts, preds = [], []
    for frame in frames[1:-1]:
        path = os.path.join(pred_dir, frame + ".png")
        if not os.path.isfile(path):
            raise VOSError(f"MOSE: video {video!r}: result {path} is missing (every frame but the first and "
                           "last is scored)")
        gts.append(read_label_png(os.path.join(gt_dir, frame + ".png")))
        preds.append(read_label_png(path))
        if preds[-1].shape != gts[-1].shape:
            raise VOSError(f"MOSE: {path} is not the size of its ground truth {gts[-1].shape[::-1]}")
    return gts, preds, ids


def score_video(gt_dir: str, pred_dir: str, video: str) -> List[Dict[str, object]]:
    """One row per object of a video: J, F, F_new and its disappearance/reappearance J&F_new."""
    gts, preds, ids = load_frames(gt_dir, pred_dir, video)
    rows = []
    for obj in ids:
        values = np.array([frame_metrics(g == obj, p == obj) for g, p in zip(gts, preds)])   # [T, 3]
        empty = np.array([not np.any(g == obj) for g in gts])
        gone, back = segment_means(values[:, 0], values[:, 2], empty)
        j, f, f_new = values.mean(axis=0)
        rows.append({"Sequence": f"{video}_{obj}", "J": j, "F": f, "F_new": f_new, "J&F_new": (j + f_new) / 2,
                     "disappear": gone, "reappear": back})
    return rows


def score_mose2(ground_truth: Dict[str, str], results: str, name: str, videos: Sequence[str]) -> ScoreTable:
    """MOSEv2 scores of `videos` (ground_truth: video -> folder of its full ground truth)."""
    table = ScoreTable(name, "J&F_new as the MOSEv2 evaluation scores it", GLOBAL, PER_OBJECT, "J&F_new")
    for video in sorted(videos):
        table.rows += score_video(ground_truth[video], os.path.join(results, video), video)
    if not table.rows:
        raise VOSError("MOSE: no object to score (the first ground-truth frames hold no object id)")

    def mean(key: str) -> float:
        """Mean over the objects that have a value for `key`."""
        kept = [r[key] for r in table.rows if r[key] is not None]
        return float(np.mean(kept)) if kept else math.nan

    j, f, f_new = mean("J"), mean("F"), mean("F_new")
    table.global_row = {"J&F_new": (j + f_new) / 2, "J": j, "F_new": f_new, "disappear_J&F_new": mean("disappear"),
                        "reappear_J&F_new": mean("reappear"), "F": f, "J&F": (j + f) / 2}
    return table
