"""The base of the training transform's steps: a clip type, the `Step` class (applied to tensors with
data_backend PIL, planned for DALI with data_backend DALI), and the helpers the steps share."""
from typing import Sequence, Tuple, Union

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from .dali.draft import PlanDraft, unsupported

Clip = Tuple[tv_tensors.Image, tv_tensors.Mask]
ArrayClip = Union[np.ndarray, Sequence[np.ndarray]]


def uniform(low: float, high: float) -> float:
    """A uniform float in [low, high) from torch's global generator."""
    return float(torch.empty(()).uniform_(low, high))


def resize_clip(frames: torch.Tensor, masks: torch.Tensor, size: Sequence[int]) -> Clip:
    """Frames resized bilinearly (no antialiasing, like cv2 at test time), masks nearest, to `size` (H, W).

    Masks use NEAREST_EXACT, which samples at pixel centres as bilinear does; plain NEAREST would
    shift them by up to a pixel against the frames.
    """
    out_frames = F.resize(tv_tensors.Image(frames), list(size), antialias=False)
    out_masks = F.resize(tv_tensors.Mask(masks), list(size), interpolation=v2.InterpolationMode.NEAREST_EXACT)
    return tv_tensors.Image(out_frames), tv_tensors.Mask(out_masks)


class Step:
    """A step of the training transform: `__call__` applies it to a clip of tensors; `plan` adds it to a
    clip's DALI plan (by default it has none: the step runs only with data_backend PIL)."""

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        raise NotImplementedError

    def plan(self, draft: PlanDraft, masks: Sequence[np.ndarray]) -> None:
        """Add the step to `draft`, the plan of a clip with raw masks T x [h, w], drawing its parameters
        as `__call__` does."""
        raise unsupported(self)


def has_plan(step) -> bool:
    """Whether data_backend DALI can apply `step` (it is a Step with its own `plan`)."""
    return isinstance(step, Step) and type(step).plan is not Step.plan
