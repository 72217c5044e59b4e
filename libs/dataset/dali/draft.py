"""The plan of one clip for the DALI graph while a ClipTransform's steps plan themselves (each step's `plan`
in libs/dataset/transforms.py): the raw-frame window, one affine map, the fit and padding, the jitter and
the object relabelling. NumPy and OpenCV only (no DALI).
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from ...errors import VOSError
from ...utils.constants import VOID_LABEL

Size = Tuple[int, int]


def scale_matrix(sx: float, sy: float) -> np.ndarray:
    """[3, 3] scaling of x by sx and y by sy."""
    return np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def shift_matrix(tx: float, ty: float) -> np.ndarray:
    """[3, 3] translation by (tx, ty)."""
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def flip_matrix(width: int) -> np.ndarray:
    """[3, 3] horizontal flip of an image `width` pixels wide."""
    return np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def affine_forward(angle: float, translate: Sequence[float], scale: float, shear: Sequence[float],
                   size: Size) -> np.ndarray:
    """[3, 3] source -> output map of torchvision's tensor affine, in pixel coordinates (centres at +0.5).

    torchvision rotates, scales and shears about the image centre (R(a) S(s) SHy SHx, then translates),
    and samples its output through the inverse of that map.
    """
    rot, sx, sy = np.radians(angle), np.radians(shear[0]), np.radians(shear[1])
    a = np.cos(rot - sy) / np.cos(sy)
    b = -np.cos(rot - sy) * np.tan(sx) / np.cos(sy) - np.sin(rot)
    c = np.sin(rot - sy) / np.cos(sy)
    d = -np.sin(rot - sy) * np.tan(sx) / np.cos(sy) + np.cos(rot)
    rss = np.array([[a * scale, b * scale, 0.0], [c * scale, d * scale, 0.0], [0.0, 0.0, 1.0]])
    centre = shift_matrix(size[1] / 2.0, size[0] / 2.0)
    return centre @ shift_matrix(*translate) @ rss @ np.linalg.inv(centre)


def warp_mask(mask: np.ndarray, roi, work: Size, inverse: np.ndarray, fit: Size, fill_zero: bool) -> np.ndarray:
    """What the DALI graph makes of mask [h, w]: nearest resize of the `roi` window, then nearest warp."""
    y0, x0, y1, x1 = roi
    rows = np.clip(np.floor(y0 + (np.arange(work[0]) + 0.5) * (y1 - y0) / work[0]), 0, mask.shape[0] - 1)
    cols = np.clip(np.floor(x0 + (np.arange(work[1]) + 0.5) * (x1 - x0) / work[1]), 0, mask.shape[1] - 1)
    window = np.ascontiguousarray(mask[rows.astype(np.intp)][:, cols.astype(np.intp)])  # [h', w']
    to_index = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    full = np.vstack([inverse.astype(np.float64), [0.0, 0.0, 1.0]])
    index_map = (np.linalg.inv(to_index) @ full @ to_index)[:2]     # dst index -> src index
    border = cv2.BORDER_CONSTANT if fill_zero else cv2.BORDER_REPLICATE
    return cv2.warpAffine(window, index_map, (fit[1], fit[0]), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                          borderMode=border, borderValue=0)           # [fit_h, fit_w]


def unsupported(step, why: str = "") -> VOSError:
    """The error for a transform step the DALI graph cannot apply (or not at that place)."""
    inner = getattr(step, "transform", None)
    name = type(step).__name__ + (f"({type(inner).__name__})" if inner is not None else "")
    return VOSError(f"data_backend DALI cannot apply the training transform step {name}{why}; "
                    "use data_backend PIL for this transform")


class PlanDraft:
    """The plan of one clip while the transform's steps are walked (`step.plan(draft, masks)`)."""

    def __init__(self, height: int, width: int) -> None:
        self.raw = self.shrunk = self.size = (height, width)   # (h, w) as the steps see them (transposed or not)
        self.transposed = False               # raw frames are portrait and the steps see them transposed
        self.crop = (0, 0, height, width)     # (top, left, h, w) in the shrunk image
        self.forward = np.eye(3)              # working image -> current image
        self.geometry = False                 # a crop / affine / flip happened
        self.fitted = self.void_cleared = self.fill_zero = False
        self.fit = self.pad = self.out_size = (height, width)
        self.contrast, self.shift, self.centre, self.clamp = 1.0, 0.0, 0.0, False
        self.lookup: Optional[np.ndarray] = None
        self.num_objects = 0

    def roi(self) -> Tuple[float, float, float, float]:
        """The raw-frame window (y0, x0, y1, x1) of the crop, in the frame file's orientation: the shrink
        and the crop in one resize."""
        top, left, height, width = self.crop
        fy, fx = self.raw[0] / self.shrunk[0], self.raw[1] / self.shrunk[1]
        y0, x0, y1, x1 = top * fy, left * fx, (top + height) * fy, (left + width) * fx
        return (x0, y0, x1, y1) if self.transposed else (y0, x0, y1, x1)

    def work_size(self) -> Size:
        """(h, w) of the working image (the resized window), in the frame file's orientation."""
        height, width = self.crop[2:]
        return (width, height) if self.transposed else (height, width)

    def inverse(self) -> np.ndarray:
        """[2, 3] float32 output (fit) point -> working-image point (x, y); a transposition swaps x and y."""
        inverse = np.linalg.inv(self.forward)
        return (inverse[[1, 0]] if self.transposed else inverse[:2]).astype(np.float32)

    def first_mask(self, masks: Sequence[np.ndarray]) -> np.ndarray:
        """The first frame's mask [fit_h, fit_w] as the planned geometry (and void clearing) leaves it."""
        first = warp_mask(masks[0], self.roi(), self.work_size(), self.inverse(), self.fit, self.fill_zero)
        return np.where(first == VOID_LABEL, 0, first) if self.void_cleared else first

    def require(self, step, *, geometry: bool = True, fitted: bool = True, why: str = "") -> None:
        """A VOSError when `step` comes after a crop / affine / flip (`geometry`) or after ResizePad (`fitted`)."""
        if (geometry and self.geometry) or (fitted and self.fitted):
            raise unsupported(step, why)
