"""J and F with torch, batched over frames (for a GPU); same numbers as `metrics` (integer counts).

The disk dilation is done exactly as a union of centred rectangles, each a separable max-pool:
disk(r) = U_h { |dy| <= h, |dx| <= floor(sqrt(r^2 - h^2)) }, evaluated with nested pools.
"""
import math
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .metrics import _f_from_counts, boundary_radius

FRAME_CHUNK = 16  # frames per batch: bounds memory at about 40 maps of [16, H, W]


def disk_levels(radius: int) -> List[Tuple[int, int]]:
    """(half height, half width) of the rectangles whose union is disk(radius), heights decreasing."""
    widest = {}
    for h in range(radius + 1):
        widest[math.isqrt(radius * radius - h * h)] = h  # keep the tallest h for each width
    return sorted(((h, w) for w, h in widest.items()), reverse=True)


def dilate_disk(maps: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of float 0/1 maps [N, 1, H, W] by disk(radius); zeros outside the image."""
    levels = disk_levels(radius)
    wide = _pool(maps, 0, levels[0][1])
    acc = wide
    for (h_prev, w_prev), (h, w) in zip(levels[:-1], levels[1:]):
        wide = _pool(wide, 0, w - w_prev)
        acc = torch.maximum(_pool(acc, h_prev - h, 0), wide)
    return _pool(acc, levels[-1][0], 0)


def _pool(maps: torch.Tensor, half_h: int, half_w: int) -> torch.Tensor:
    """Max over a (2*half_h+1) x (2*half_w+1) window, same size out (padding never wins)."""
    if half_h == 0 and half_w == 0:
        return maps
    return F.max_pool2d(maps, (2 * half_h + 1, 2 * half_w + 1), stride=1, padding=(half_h, half_w))


def seg2bmap_torch(masks: torch.Tensor) -> torch.Tensor:
    """`metrics.seg2bmap` for bool masks [N, H, W]."""
    out = torch.zeros_like(masks)
    out[:, :-1, :-1] = ((masks[:, :-1, :-1] != masks[:, :-1, 1:]) | (masks[:, :-1, :-1] != masks[:, 1:, :-1])
                        | (masks[:, :-1, :-1] != masks[:, 1:, 1:]))
    out[:, -1, :-1] = masks[:, -1, :-1] != masks[:, -1, 1:]
    out[:, :-1, -1] = masks[:, :-1, -1] != masks[:, 1:, -1]
    return out


def object_scores_torch(gt: torch.Tensor, pred: torch.Tensor, radius: int,
                        void: Optional[torch.Tensor] = None) -> Tuple[np.ndarray, np.ndarray]:
    """J and F [N] of bool mask pairs [N, H, W]; void pixels [N, H, W] are left out of both."""
    if void is not None:
        gt, pred = gt & ~void, pred & ~void
    inter = (gt & pred).sum(dim=(1, 2)).cpu().numpy()
    union = (gt | pred).sum(dim=(1, 2)).cpu().numpy()
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    dtype = torch.float16 if gt.is_cuda else torch.float32
    gt_b, pred_b = seg2bmap_torch(gt), seg2bmap_torch(pred)
    gt_dil = dilate_disk(gt_b[:, None].to(dtype), radius)[:, 0] > 0
    pred_dil = dilate_disk(pred_b[:, None].to(dtype), radius)[:, 0] > 0
    counts = torch.stack([gt_b.sum(dim=(1, 2)), pred_b.sum(dim=(1, 2)),
                          (gt_b & pred_dil).sum(dim=(1, 2)), (pred_b & gt_dil).sum(dim=(1, 2))]).cpu().numpy()
    f = np.array([_f_from_counts(*(int(v) for v in counts[:, i])) for i in range(counts.shape[1])])
    return j.astype(np.float64), f


def label_scores_torch(gt_labels: np.ndarray, pred_labels: np.ndarray, n_objects: int,
                       device: str, bound_th: float) -> Tuple[np.ndarray, np.ndarray]:
    """J and F [K, T] of objects 1..K from label stacks [T, H, W] (uint8/uint16 labels)."""
    frames = gt_labels.shape[0]
    radius = boundary_radius(gt_labels.shape[1], gt_labels.shape[2], bound_th)
    j = np.zeros((n_objects, frames))
    f = np.zeros((n_objects, frames))
    for start in range(0, frames, FRAME_CHUNK):
        stop = min(start + FRAME_CHUNK, frames)
        gt = torch.from_numpy(gt_labels[start:stop].astype(np.int32)).to(device)  # [t, H, W]
        pred = torch.from_numpy(pred_labels[start:stop].astype(np.int32)).to(device)
        for index in range(n_objects):
            j[index, start:stop], f[index, start:stop] = object_scores_torch(
                gt == index + 1, pred == index + 1, radius)
    return j, f


def evaluate_sequence_torch(task, device: str = "cuda"):
    """`davis.evaluate_sequence` with the scoring done by torch on `device` (reading stays on CPU)."""
    from .davis import count_objects, load_pair, read_gt
    from .report import SequenceScores

    first = read_gt(task, task.frames[0])
    n_objects = count_objects(first, task.year)
    scored = task.frames[1:-1]
    pairs = [load_pair(task, frame, first.shape, n_objects) for frame in scored]
    gt = np.stack([p[0] for p in pairs])  # [T, H, W]
    pred = np.stack([p[1] for p in pairs])
    j, f = label_scores_torch(gt, pred, n_objects, device, task.bound_th)
    return SequenceScores(task.name, list(scored), j, f)
