"""DAVIS region similarity J and boundary accuracy F, with the official toolkit's definitions.

Definitions (DAVIS 2017 evaluation package, facts only):
- J = |G & P| / |G | P| over non-void pixels; a frame where both are empty scores 1.
- F: boundary maps of G and P (1 px, see `seg2bmap`), each matched to the other within a disk of
  radius ceil(0.008 * image diagonal); precision = matched P boundary / P boundary, recall =
  matched G boundary / G boundary, F = 2PR / (P + R). Empty boundaries: both empty -> F = 1,
  one empty -> F = 0. A mask covering the whole image has an empty boundary.
- Statistics per object: Mean, Recall (fraction of frames > 0.5), Decay (mean of the first
  quarter of the frames minus mean of the last quarter; the toolkit stores its bin edges as
  uint8, so they wrap past 255 frames).
Here every function works on all objects of a frame at once and crops F to the objects.
"""
import math
from typing import List, Optional, Tuple

import cv2
import numpy as np

BOUND_TH = 0.008  # boundary tolerance as a fraction of the image diagonal
_BLOCK_2X2 = np.ones((2, 2), dtype=np.uint8)


def boundary_radius(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Disk radius in pixels for F: bound_th >= 1 is taken as pixels, else ceil(bound_th * diagonal)."""
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"bound_th in pixels must be a whole number, got {bound_th}")
        return int(bound_th)
    diagonal = np.sqrt(np.float64(height * height + width * width))
    return int(np.ceil(bound_th * diagonal))


def disk(radius: int) -> np.ndarray:
    """Structuring element {(dy, dx): dy^2 + dx^2 <= radius^2} as a [2r+1, 2r+1] uint8 array."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius).astype(np.uint8)


def seg2bmap(masks: np.ndarray) -> np.ndarray:
    """1-px boundary of binary masks [..., H, W]: a pixel differing from its E, S or SE neighbour.

    On the last row only the E neighbour counts, on the last column only the S one, and the
    bottom-right pixel is never a boundary, so mask edges lying on the image border are not boundary.
    """
    seg = masks.astype(bool, copy=False)
    out = np.zeros(seg.shape, dtype=bool)
    core = out[..., :-1, :-1]
    core |= seg[..., :-1, :-1] != seg[..., :-1, 1:]
    core |= seg[..., :-1, :-1] != seg[..., 1:, :-1]
    core |= seg[..., :-1, :-1] != seg[..., 1:, 1:]
    out[..., -1, :-1] = seg[..., -1, :-1] != seg[..., -1, 1:]
    out[..., :-1, -1] = seg[..., :-1, -1] != seg[..., 1:, -1]
    return out


def db_eval_iou(annotation: np.ndarray, segmentation: np.ndarray,
                void_pixels: Optional[np.ndarray] = None) -> np.ndarray:
    """J for masks [..., H, W] (any leading shape) -> [...]; void pixels are left out of both sets."""
    _check_shapes(annotation, segmentation, void_pixels)
    gt = annotation.astype(bool, copy=False)
    pred = segmentation.astype(bool, copy=False)
    valid = None if void_pixels is None else ~void_pixels.astype(bool, copy=False)
    inter_map, union_map = gt & pred, gt | pred
    if valid is not None:
        inter_map &= valid
        union_map &= valid
    inter = np.count_nonzero(inter_map, axis=(-2, -1))
    union = np.count_nonzero(union_map, axis=(-2, -1))
    return _ratio_or_one(inter, union)


def db_eval_boundary(annotation: np.ndarray, segmentation: np.ndarray,
                     void_pixels: Optional[np.ndarray] = None, bound_th: float = BOUND_TH) -> np.ndarray:
    """F for masks [..., H, W] (any leading shape) -> [...]; void pixels are removed from both masks."""
    _check_shapes(annotation, segmentation, void_pixels)
    gt = annotation.astype(bool, copy=False)
    pred = segmentation.astype(bool, copy=False)
    if void_pixels is not None:
        valid = ~void_pixels.astype(bool, copy=False)
        gt, pred = gt & valid, pred & valid
    height, width = gt.shape[-2:]
    kernel = disk(boundary_radius(height, width, bound_th))
    flat_gt = gt.reshape(-1, height, width)  # [N, H, W]
    flat_pred = pred.reshape(-1, height, width)
    scores = [boundary_f(flat_gt[i], flat_pred[i], kernel) for i in range(flat_gt.shape[0])]
    return np.asarray(scores, dtype=np.float64).reshape(gt.shape[:-2])


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """`seg2bmap` of one uint8 0/1 mask [H, W] in one OpenCV call: max != min over the 2x2 block
    (pixel, E, S, SE); OpenCV ignores neighbours beyond the border, which gives the same border rules."""
    return cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, _BLOCK_2X2, anchor=(0, 0))


def boundary_f(gt: np.ndarray, pred: np.ndarray, kernel: np.ndarray) -> float:
    """F of one binary mask pair [H, W] with a dilation kernel from `disk`; works on their bounding box."""
    x, y, w, h = cv2.boundingRect((gt | pred).view(np.uint8))
    if w == 0:
        return 1.0
    rows, cols = _crop(y, y + h - 1, x, x + w - 1, gt.shape)
    return _crop_f(gt[rows, cols].view(np.uint8), pred[rows, cols].view(np.uint8), kernel)


def _crop(y0: int, y1: int, x0: int, x1: int, shape: Tuple[int, int]) -> Tuple[slice, slice]:
    """Window around a box (inclusive corners) holding every boundary pixel of what lies inside:
    one row/column before it (boundaries are offset up-left) and one after it, or the image edge."""
    return (slice(max(y0 - 1, 0), min(y1 + 2, shape[0])), slice(max(x0 - 1, 0), min(x1 + 2, shape[1])))


def _crop_f(gt: np.ndarray, pred: np.ndarray, kernel: np.ndarray) -> float:
    """F of two uint8 0/1 masks cropped by `_crop` (crop edges act as the image border)."""
    gt_b = boundary_map(np.ascontiguousarray(gt))  # [h, w]
    pred_b = boundary_map(np.ascontiguousarray(pred))
    n_gt, n_pred = cv2.countNonZero(gt_b), cv2.countNonZero(pred_b)
    if n_gt == 0 or n_pred == 0:
        return _f_from_counts(n_gt, n_pred, 0, 0)
    pred_hit = cv2.countNonZero(cv2.bitwise_and(pred_b, cv2.dilate(gt_b, kernel)))
    gt_hit = cv2.countNonZero(cv2.bitwise_and(gt_b, cv2.dilate(pred_b, kernel)))
    return _f_from_counts(n_gt, n_pred, gt_hit, pred_hit)


def _f_from_counts(n_gt: int, n_pred: int, gt_hit: int, pred_hit: int) -> float:
    """F from boundary pixel counts, with the toolkit's rules for empty boundaries."""
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0  # precision 1 & recall 0, or the reverse
    precision = pred_hit / float(n_pred)
    recall = gt_hit / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def object_boxes(gt_labels: np.ndarray, pred_labels: np.ndarray,
                 n_objects: int) -> List[Optional[Tuple[int, int, int, int]]]:
    """Per object 1..K, the box (y0, y1, x0, x1, inclusive) of its GT and predicted pixels, or None.

    One pass for all objects: each pixel becomes the bit 1 << label, OR-reduced along rows and columns.
    """
    if n_objects >= 64:
        return [_box_of((gt_labels == k) | (pred_labels == k)) for k in range(1, n_objects + 1)]
    one = np.uint8(1) if n_objects < 8 else np.uint64(1)
    wide = np.uint8 if n_objects < 8 else np.uint64
    bits = np.left_shift(one, gt_labels.astype(wide, copy=False))  # [H, W], 0 for labels >= width
    bits |= np.left_shift(one, pred_labels.astype(wide, copy=False))
    row_bits = np.bitwise_or.reduce(bits, axis=1)  # [H]
    col_bits = np.bitwise_or.reduce(bits, axis=0)  # [W]
    boxes = []
    for k in range(1, n_objects + 1):
        rows = np.flatnonzero((row_bits >> k) & 1)
        if rows.size == 0:
            boxes.append(None)
            continue
        cols = np.flatnonzero((col_bits >> k) & 1)
        boxes.append((int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])))
    return boxes


def _box_of(mask: np.ndarray) -> Optional[Tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) inclusive box of a bool mask [H, W], None if empty."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    return None if w == 0 else (y, y + h - 1, x, x + w - 1)


def frame_scores(gt_labels: np.ndarray, pred_labels: np.ndarray, n_objects: int,
                 kernel: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """J and F [K] of objects 1..K in one frame, from label maps [H, W] (0 = background).

    Every object is scored on the crop around its GT and predicted pixels (both empty: J = F = 1).
    """
    j_scores = np.ones(n_objects, dtype=np.float64)
    f_scores = np.ones(n_objects, dtype=np.float64)
    for index, box in enumerate(object_boxes(gt_labels, pred_labels, n_objects)):
        if box is None:
            continue
        rows, cols = _crop(*box, gt_labels.shape)
        gt = (gt_labels[rows, cols] == index + 1).view(np.uint8)  # [h, w] crop
        pred = (pred_labels[rows, cols] == index + 1).view(np.uint8)
        inter = cv2.countNonZero(cv2.bitwise_and(gt, pred))
        union = cv2.countNonZero(cv2.bitwise_or(gt, pred))
        j_scores[index] = inter / union
        f_scores[index] = _crop_f(gt, pred, kernel)
    return j_scores, f_scores


def db_statistics(values: np.ndarray) -> Tuple[float, float, float]:
    """(Mean, Recall, Decay) of one object's per-frame scores [T] (NaNs ignored, as the toolkit)."""
    values = np.asarray(values, dtype=np.float64)
    mean = _nanmean(values)
    recall = _nanmean((values > 0.5).astype(np.float64))
    edges = np.round(np.linspace(1, len(values), 5) + 1e-10) - 1
    edges = edges.astype(np.int64) % 256  # the toolkit keeps the edges as uint8: they wrap, and
    first = values[edges[0]:(edges[1] + 1) % 256]  # so does edge + 1 (255 + 1 -> 0, empty bin)
    last = values[edges[3]:(edges[4] + 1) % 256]
    return mean, recall, _nanmean(first) - _nanmean(last)


def _nanmean(values: np.ndarray) -> float:
    """Mean of the non-NaN values; NaN when there are none."""
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else math.nan


def _ratio_or_one(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """inter / union, 1 where the union is empty."""
    inter = np.asarray(inter, dtype=np.float64)
    union = np.asarray(union, dtype=np.float64)
    out = np.ones_like(union)
    np.divide(inter, union, out=out, where=union != 0)
    return out


def _check_shapes(annotation: np.ndarray, segmentation: np.ndarray, void: Optional[np.ndarray]) -> None:
    """ValueError naming both shapes when the arrays do not match."""
    if annotation.shape != segmentation.shape:
        raise ValueError(f"annotation {annotation.shape} and segmentation {segmentation.shape} differ")
    if annotation.ndim < 2:
        raise ValueError(f"masks need at least 2 dimensions [H, W], got shape {annotation.shape}")
    if void is not None and void.shape != annotation.shape[-void.ndim:]:
        raise ValueError(f"void pixels {void.shape} do not match annotation {annotation.shape}")
