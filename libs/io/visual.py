"""Pictures for people: masks and probability maps drawn over frames."""
from typing import Optional, Sequence

import cv2
import numpy as np

from .images import full_palette


def _check_pair(frame: np.ndarray, plane: np.ndarray, what: str) -> None:
    """ValueError unless `frame` is [H, W, 3] uint8 and `plane` is [H, W]."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be [H, W, 3] uint8, got {frame.shape} {frame.dtype}")
    if plane.shape != frame.shape[:2]:
        raise ValueError(f"{what} shape {plane.shape} does not match frame size {frame.shape[:2]}")


def overlay(frame: np.ndarray, labels: np.ndarray, palette: Optional[Sequence[int]],
            alpha: float = 0.5) -> np.ndarray:
    """[H, W, 3] uint8: objects of `labels` [H, W] tinted with their palette colour, outlined 1 px."""
    frame = np.asarray(frame)
    labels = np.asarray(labels)
    _check_pair(frame, labels, "labels")
    table = np.asarray(full_palette(palette), dtype=np.float32).reshape(256, 3)
    colours = table[labels.astype(np.uint8)]  # [H, W, 3]
    out = frame.astype(np.float32)
    fg = labels > 0  # [H, W]
    out[fg] = out[fg] * (1.0 - alpha) + colours[fg] * alpha
    edge = np.zeros_like(fg)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    contour = edge & fg  # object pixels next to another label
    out[contour] = colours[contour]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def heatmap_overlay(frame: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8: `frame` blended 50/50 with the JET colour map of `prob` [H, W] in [0, 1]."""
    frame = np.asarray(frame)
    prob = np.asarray(prob, dtype=np.float32)
    _check_pair(frame, prob, "probability map")
    scaled = np.rint(np.clip(np.nan_to_num(prob, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)
    heat_bgr = cv2.applyColorMap(scaled, cv2.COLORMAP_JET)  # [H, W, 3] BGR
    heat = heat_bgr[..., ::-1].astype(np.float32)
    blended = 0.5 * frame.astype(np.float32) + 0.5 * heat
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
