"""The geometric steps of the training transform: portrait transposition, shrink, border crop, affine and
flip (torchvision, one draw per clip), fit-and-pad to the input size, and the visible-object crop."""
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from .dali.draft import PlanDraft, affine_forward, flip_matrix, scale_matrix, unsupported
from .step import Clip, Step, resize_clip, uniform


class TransposePortrait(Step):
    """Clips taller than wide are transposed (rows become columns) to landscape, as the original's training
    transform did before any other step; landscape and square clips pass unchanged."""

    def plan(self, draft: PlanDraft, masks: Sequence[np.ndarray]) -> None:
        """The plan's later steps see the transposed size; the window and the map swap x and y."""
        if draft.geometry or draft.fitted or draft.shrunk != draft.raw:
            raise unsupported(self, " after a shrink, crop, affine or resize")
        height, width = draft.size
        if height > width:
            draft.transposed = True
            draft.raw = draft.shrunk = draft.size = draft.fit = draft.pad = draft.out_size = (width, height)
            draft.crop = (0, 0, width, height)

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        if frames.shape[-2] <= frames.shape[-1]:
            return frames, masks
        return (tv_tensors.Image(frames.transpose(-1, -2).contiguous()),   # [T, 3, W, H]
                tv_tensors.Mask(masks.transpose(-1, -2).contiguous()))     # [T, W, H]


# torchvision transforms whose draw Paired makes itself (the same draws as their own forward), so that
# the DALI planner can take the parameters from `Paired.draw_params`
_DRAWN = (v2.RandomAffine, v2.RandomHorizontalFlip)


class Paired(Step):
    """Run one torchvision v2 transform on the whole clip: one parameter draw for all frames and masks."""

    def __init__(self, transform: v2.Transform) -> None:
        self.transform = transform

    def draw_params(self, size: Sequence[int]) -> Optional[Dict[str, Any]]:
        """The transform's parameters for a clip of `size` (H, W), drawn from torch's global generator as
        its own forward draws them; None when a random flip is not applied. Only for the `_DRAWN` types."""
        if isinstance(self.transform, v2.RandomHorizontalFlip) and bool(torch.rand(1) >= self.transform.p):
            return None
        return self.transform.make_params([tv_tensors.Image(torch.empty((0, *size), dtype=torch.uint8))])

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        if type(self.transform) not in _DRAWN:
            return self.transform(frames, masks)
        params = self.draw_params(tuple(frames.shape[-2:]))
        if params is None:
            return frames, masks
        return self.transform.transform(frames, params), self.transform.transform(masks, params)

    def plan(self, draft: PlanDraft, masks: Sequence[np.ndarray]) -> None:
        """RandomAffine (about the centre, zero fill) and RandomHorizontalFlip join the plan's affine map."""
        inner = self.transform
        draft.require(self, geometry=False, why=" after ResizePad")
        if type(inner) is v2.RandomAffine and inner.center is None and inner.fill in (0, None):
            params = self.draw_params(draft.size)
            draft.forward = affine_forward(params["angle"], params["translate"], params["scale"], params["shear"],
                                           draft.size) @ draft.forward
            draft.fill_zero = True
        elif type(inner) is v2.RandomHorizontalFlip:
            if self.draw_params(draft.size) is not None:
                draft.forward = flip_matrix(draft.size[1]) @ draft.forward
        else:
            raise unsupported(self)
        draft.geometry = True


class RandomCropKeepSize(Step):
    """Cut 0..max_fraction of the size from each border, then resize back to the original size."""

    def __init__(self, max_fraction: float = 0.1) -> None:
        self.max_fraction = max_fraction

    def draw_params(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """(top, left, height, width) of the kept window of a (height, width) clip."""
        top, bottom = (int(uniform(0, self.max_fraction) * height) for _ in range(2))
        left, right = (int(uniform(0, self.max_fraction) * width) for _ in range(2))
        return top, left, max(height - top - bottom, 1), max(width - left - right, 1)

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        height, width = frames.shape[-2:]
        top, left, cut_h, cut_w = self.draw_params(height, width)
        frames = F.crop(frames, top, left, cut_h, cut_w)   # [T, 3, h, w]
        masks = F.crop(masks, top, left, cut_h, cut_w)     # [T, h, w]
        return resize_clip(frames, masks, (height, width))

    def plan(self, draft: PlanDraft, masks: Sequence[np.ndarray]) -> None:
        """The kept window becomes the plan's raw-frame window, scaled back to the size."""
        draft.require(self, why=" after an affine, flip or resize")
        height, width = draft.size
        draft.crop = top, left, cut_h, cut_w = self.draw_params(height, width)
        draft.forward = scale_matrix(width / cut_w, height / cut_h)
        draft.geometry = True


class ShrinkToCover(Step):
    """Shrink (never enlarge) to the smallest size that still covers `size` (H, W), keeping the aspect.

    Run before the geometric augmentation when the clip is later resized to fit `size`: the output
    keeps its resolution while every later step touches far fewer pixels.
    """

    def __init__(self, size: Sequence[int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        new_size = cover_size(frames.shape[-2], frames.shape[-1], self.size)
        if new_size is None:
            return frames, masks
        shrunk = F.resize(frames, list(new_size), antialias=True)   # [T, 3, h, w]
        labels = F.resize(masks, list(new_size), interpolation=v2.InterpolationMode.NEAREST_EXACT)
        return tv_tensors.Image(shrunk), tv_tensors.Mask(labels)

    def plan(self, draft: PlanDraft, masks: Sequence[np.ndarray]) -> None:
        """The plan reads the raw frame through the shrunk size (one resize with the crop)."""
        draft.require(self, why=" after a crop, affine or resize")
        shrunk = cover_size(*draft.size, self.size)
        if shrunk is not None:
            draft.shrunk = draft.size = shrunk
            draft.crop = (0, 0, *draft.size)


def cover_size(height: int, width: int, size: Sequence[int]) -> Optional[Tuple[int, int]]:
    """The smallest (h, w) with the aspect of (height, width) that still covers `size` (H, W); None when
    (height, width) must not shrink (it already is that small)."""
    scale = max(size[0] / height, size[1] / width)
    if scale >= 1.0:
        return None
    return max(round(height * scale), int(size[0])), max(round(width * scale), int(size[1]))


def fit_size(height: int, width: int, size: Sequence[int]) -> Tuple[int, int]:
    """The (h, w) with the aspect of (height, width) that fits `size` (H, W), truncated as at test time."""
    scale = min(size[0] / height, size[1] / width)
    return min(max(int(height * scale), 1), size[0]), min(max(int(width * scale), 1), size[1])


class ResizePad(Step):
    """Resize to fit `size` (H, W) keeping the aspect ratio, then pad evenly with zeros to exactly `size`."""

    def __init__(self, size: Sequence[int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        new_h, new_w = fit_size(frames.shape[-2], frames.shape[-1], self.size)
        frames, masks = resize_clip(frames, masks, (new_h, new_w))
        top, left = (self.size[0] - new_h) // 2, (self.size[1] - new_w) // 2
        padding = [left, top, self.size[1] - new_w - left, self.size[0] - new_h - top]
        return F.pad(frames, padding, fill=0), F.pad(masks, padding, fill=0)

    def plan(self, draft: PlanDraft, masks: Sequence[np.ndarray]) -> None:
        """The plan's fit size, its scaling in the affine map, and the padding."""
        if draft.fitted:
            raise unsupported(self, " twice")
        height, width = draft.size
        draft.fit = fit_size(height, width, self.size)
        draft.forward = scale_matrix(draft.fit[1] / width, draft.fit[0] / height) @ draft.forward
        draft.pad = ((self.size[0] - draft.fit[0]) // 2, (self.size[1] - draft.fit[1]) // 2)
        draft.size = draft.out_size = self.size
        draft.fitted = True


class RandomCropVisible(Step):
    """Random `size` (H, W) window (upscaling first if needed) in which the first frame shows an object
    (data_backend PIL only: no `plan`)."""

    def __init__(self, size: Sequence[int], tries: int = 20) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.tries = tries

    def _window(self, first_mask: torch.Tensor) -> Tuple[int, int]:
        """Top-left corner of a window that contains an object pixel of `first_mask` [H, W] when possible."""
        height, width = first_mask.shape
        top = left = 0
        for _ in range(self.tries):
            top = int(torch.randint(0, height - self.size[0] + 1, ()))
            left = int(torch.randint(0, width - self.size[1] + 1, ()))
            if bool((first_mask[top:top + self.size[0], left:left + self.size[1]] > 0).any()):
                return top, left
        points = torch.nonzero(first_mask > 0)   # [N, 2]: fall back to centring on a random object pixel
        if len(points) == 0:
            return top, left
        y, x = (int(v) for v in points[int(torch.randint(0, len(points), ()))])
        top = min(max(y - self.size[0] // 2, 0), height - self.size[0])
        left = min(max(x - self.size[1] // 2, 0), width - self.size[1])
        return top, left

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        height, width = frames.shape[-2:]
        scale = max(self.size[0] / height, self.size[1] / width, 1.0)
        if scale > 1.0:
            new_size = (max(round(height * scale), self.size[0]), max(round(width * scale), self.size[1]))
            frames, masks = resize_clip(frames, masks, new_size)
        top, left = self._window(masks[0])
        return (F.crop(frames, top, left, *self.size), F.crop(masks, top, left, *self.size))
