"""A first mask in seconds: OpenCV's GrabCut (no model weights) from a box around the object and optional
foreground / background strokes."""
from typing import Sequence, Tuple

import cv2
import numpy as np

from ..errors import VOSError

ITERATIONS = 5
Points = Sequence[Sequence[float]]


def check_box(box, size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """[x0, y0, x1, y1] (any corner order) clipped to the frame, or a VOSError saying what to draw."""
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box):
        raise VOSError("grabcut needs `box`: [x0, y0, x1, y1] in frame pixels")
    height, width = size
    x0, x1 = sorted((int(round(box[0])), int(round(box[2]))))
    y0, y1 = sorted((int(round(box[1])), int(round(box[3]))))
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise VOSError("the box is too small (under 4 pixels a side); drag a box around the whole object")
    if (x1 - x0) * (y1 - y0) >= 0.98 * width * height:
        raise VOSError("the box covers the whole frame; leave some background outside it")
    return x0, y0, x1, y1


def check_points(points, name: str) -> np.ndarray:
    """A stroke list [[x, y], ...] (or None) as [N, 2] int32, or a VOSError naming it."""
    if not _numeric(points):
        raise VOSError(f"grabcut's `{name}` must be a list of [x, y] points")
    return np.round(np.asarray(points or [], dtype=float).reshape(-1, 2)).astype(np.int32)


def _numeric(points) -> bool:
    """Whether `points` is None or a list of [x, y] number pairs."""
    if points is None:
        return True
    return isinstance(points, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p) for p in points)


def grabcut(frame: np.ndarray, box, fg=None, bg=None, radius: float = 4.0) -> np.ndarray:
    """[H, W] bool: the object inside `box` of `frame` ([H, W, 3] uint8 RGB), pixels on the `fg` strokes
    forced in and on the `bg` strokes forced out (strokes: points [[x, y], ...], `radius` pixels wide)."""
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = check_box(box, (height, width))
    fg, bg = check_points(fg, "fg"), check_points(bg, "bg")
    mask = np.full((height, width), cv2.GC_BGD, np.uint8)                  # [H, W]
    mask[y0:y1, x0:x1] = cv2.GC_PR_FGD
    thickness = max(1, int(round(2 * radius)))
    for points, value in ((fg, cv2.GC_FGD), (bg, cv2.GC_BGD)):
        if len(points):
            cv2.polylines(mask, [points.reshape(-1, 1, 2)], False, int(value), thickness)
            for x, y in points:
                cv2.circle(mask, (int(x), int(y)), max(1, thickness // 2), int(value), -1)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(frame[..., ::-1])
    try:
        cv2.grabCut(bgr, mask, None, bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        raise VOSError("GrabCut could not separate the object from its background here; draw a box with "
                       "background on every side, or paint the object with the brush") from None
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
