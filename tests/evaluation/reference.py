"""Slow, literal statement of the DAVIS J/F definitions, used to cross-check libs.evaluation.

Written independently of libs/evaluation/metrics.py: pixel loops for the boundary, scipy's binary
dilation for the tolerance disk, and the per-object bookkeeping of the semi-supervised task.
"""
import math
from typing import List, Tuple

import numpy as np
from scipy import ndimage


def boundary_pixels(mask: np.ndarray) -> np.ndarray:
    """Pixel (y, x) is boundary when it differs from an existing E, S or SE neighbour; the
    bottom-right pixel has none of those and is never boundary."""
    height, width = mask.shape
    out = np.zeros((height, width), dtype=bool)
    for y in range(height):
        for x in range(width):
            if y == height - 1 and x == width - 1:
                continue
            if y == height - 1:
                neighbours = [(y, x + 1)]
            elif x == width - 1:
                neighbours = [(y + 1, x)]
            else:
                neighbours = [(y, x + 1), (y + 1, x), (y + 1, x + 1)]
            out[y, x] = any(mask[y, x] != mask[q] for q in neighbours)
    return out


def tolerance(height: int, width: int) -> int:
    """ceil(0.008 * diagonal)."""
    return math.ceil(0.008 * math.sqrt(height * height + width * width))


def f_score(gt: np.ndarray, pred: np.ndarray, radius: int) -> float:
    """Boundary F with matching inside a disk of `radius`."""
    gt_b, pred_b = boundary_pixels(gt), boundary_pixels(pred)
    offsets = np.arange(-radius, radius + 1)
    footprint = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius ** 2
    n_gt, n_pred = int(gt_b.sum()), int(pred_b.sum())
    if n_gt == 0 and n_pred == 0:
        return 1.0
    if n_gt == 0 or n_pred == 0:
        return 0.0
    precision = (pred_b & ndimage.binary_dilation(gt_b, footprint)).sum() / n_pred
    recall = (gt_b & ndimage.binary_dilation(pred_b, footprint)).sum() / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def j_score(gt: np.ndarray, pred: np.ndarray) -> float:
    """Intersection over union, 1 when both are empty."""
    union = np.logical_or(gt, pred).sum()
    return 1.0 if union == 0 else np.logical_and(gt, pred).sum() / union


def sequence_scores(gts: List[np.ndarray], preds: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """J, F [K, T-2] of a 2017 sequence: K from the first GT frame (255 -> background), first and
    last frames skipped."""
    cleaned = [np.where(g == 255, 0, g) for g in gts]
    n_objects = int(cleaned[0].max())
    scored = range(1, len(gts) - 1)
    radius = tolerance(*gts[0].shape)
    j = np.array([[j_score(cleaned[t] == k, preds[t] == k) for t in scored] for k in range(1, n_objects + 1)])
    f = np.array([[f_score(cleaned[t] == k, preds[t] == k, radius) for t in scored]
                  for k in range(1, n_objects + 1)])
    return j.reshape(n_objects, len(scored)), f.reshape(n_objects, len(scored))
